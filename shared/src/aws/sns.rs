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
