//! SNS adapter: SMS to phone numbers, push to platform endpoints (GCM/APNS).

use async_trait::async_trait;
use aws_sdk_sns::Client;
use serde_json::json;

use super::{send_error, SendCodes};
use aws_sdk_sns::types::MessageAttributeValue;

use crate::ports::{MobileSender, SendError, Sms};

#[derive(Debug, Clone)]
pub struct SnsMobile {
    client: Client,
}

impl SnsMobile {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// SNS codes meaning "not now"; retried later.
const THROTTLING: &[&str] = &[
    "Throttled",
    "ThrottledException",
    "KMSThrottling",
    "KMSThrottlingException",
];
/// Codes that are final for this phone number or endpoint.
const REJECTED: &[&str] = &[
    "EndpointDisabled",
    "EndpointDisabledException",
    "InvalidParameter",
    "InvalidParameterException",
    "InvalidParameterValue",
    "InvalidParameterValueException",
    "PlatformApplicationDisabled",
    "PlatformApplicationDisabledException",
];

/// The number opted out of SMS at SNS (a STOP reply, or the account's opt-out list).
const OPTED_OUT: &[&str] = &["OptedOut", "OptedOutException"];

const CODES: SendCodes = SendCodes {
    throttling: THROTTLING,
    rejected: REJECTED,
    opted_out: OPTED_OUT,
};

#[async_trait]
impl MobileSender for SnsMobile {
    async fn send_sms(&self, sms: &Sms) -> Result<String, SendError> {
        let kind = if sms.promotional {
            "Promotional"
        } else {
            "Transactional"
        };
        let sms_type = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(kind)
            .build()
            .map_err(|e| SendError::Other(crate::error::CallError::message(e.to_string())))?;
        let out = self
            .client
            .publish()
            .phone_number(&sms.to)
            .message(&sms.text)
            .message_attributes("AWS.SNS.SMS.SMSType", sms_type)
            .send()
            .await
            .map_err(|e| send_error(e, &CODES))?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }

    async fn send_push(
        &self,
        endpoint_arn: &str,
        title: &str,
        body: &str,
    ) -> Result<String, SendError> {
        // One payload per platform; `default` for the rest.
        let gcm = json!({"notification": {"title": title, "body": body}}).to_string();
        let apns = json!({"aps": {"alert": {"title": title, "body": body}}}).to_string();
        let message = json!({"default": format!("{title}: {body}"), "GCM": gcm, "APNS": apns, "APNS_SANDBOX": apns});
        let out = self
            .client
            .publish()
            .target_arn(endpoint_arn)
            .message_structure("json")
            .message(message.to_string())
            .send()
            .await
            .map_err(|e| send_error(e, &CODES))?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }
}

/// SNS platform endpoints of registered devices.
#[derive(Debug, Clone)]
pub struct SnsEndpoints {
    client: Client,
}

impl SnsEndpoints {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// The endpoint ARN SNS names when refusing to create a second endpoint for a token whose
/// existing endpoint has other attributes ("Endpoint <arn> already exists with the same
/// Token, but different attributes").
fn existing_endpoint(message: &str) -> Option<&str> {
    let start = message.find("arn:")?;
    message[start..].split_whitespace().next()
}

#[async_trait]
impl crate::ports::PushEndpoints for SnsEndpoints {
    async fn endpoint_for(
        &self,
        application_arn: &str,
        token: &str,
    ) -> Result<String, crate::error::StoreError> {
        let created = self
            .client
            .create_platform_endpoint()
            .platform_application_arn(application_arn)
            .token(token)
            .send()
            .await;
        let arn = match created {
            Ok(out) => out.endpoint_arn().unwrap_or_default().to_owned(),
            Err(e) => {
                let existing = e
                    .as_service_error()
                    .and_then(aws_smithy_types::error::metadata::ProvideErrorMetadata::message)
                    .and_then(existing_endpoint)
                    .map(str::to_owned);
                match existing {
                    Some(arn) => arn,
                    None => return Err(super::store_error(e)),
                }
            }
        };
        // An endpoint SNS disabled (the provider refused the token once) is enabled again by
        // a fresh registration, with the token the app has now.
        let attributes = self
            .client
            .get_endpoint_attributes()
            .endpoint_arn(&arn)
            .send()
            .await
            .map_err(super::store_error)?;
        let attributes = attributes.attributes().cloned().unwrap_or_default();
        let enabled = attributes
            .get("Enabled")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if !enabled || attributes.get("Token").map(String::as_str) != Some(token) {
            self.client
                .set_endpoint_attributes()
                .endpoint_arn(&arn)
                .attributes("Enabled", "true")
                .attributes("Token", token)
                .send()
                .await
                .map_err(super::store_error)?;
        }
        Ok(arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_existing_endpoint_is_read_from_snss_refusal() {
        let message = "Invalid parameter: Token Reason: Endpoint arn:aws:sns:us-east-1:1:endpoint/GCM/app/abc already exists with the same Token, but different attributes.";
        assert_eq!(
            existing_endpoint(message),
            Some("arn:aws:sns:us-east-1:1:endpoint/GCM/app/abc")
        );
        assert_eq!(existing_endpoint("Invalid parameter: Token"), None);
    }
}
