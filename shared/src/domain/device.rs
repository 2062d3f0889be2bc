//! Push devices as apps have them: the token an app got from APNs or FCM, its platform, and
//! the SNS platform endpoint herald made for it. The request of `PUT /v1/users/{user}/
//! devices/{token}` is checked here.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// Most devices one user keeps; registering another drops the one registered longest ago.
pub const MAX_DEVICES_PER_USER: usize = 10;
/// Longer than any APNs (64 hex digits) or FCM (about 160 characters) token.
pub const MAX_TOKEN_LEN: usize = 512;
/// An app's own name for itself (a bundle id, a package name), kept for the reader.
pub const MAX_APP_LEN: usize = 128;
/// openapi.yaml's patterns (`tests/tests/api_constraints.rs` holds them to the checks here).
pub const TOKEN_PATTERN: &str = "^[A-Za-z0-9._:-]+$";
/// Any character but a control character (Unicode's Cc, as `char::is_control` reads it).
pub const NO_CONTROL_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f]*$";

/// Where a token comes from: which SNS platform application pushes to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// Apple Push Notification service, production.
    Apns,
    /// APNs' sandbox (development builds).
    ApnsSandbox,
    /// Firebase Cloud Messaging (SNS's `GCM`).
    Fcm,
}

impl Platform {
    pub const ALL: [Platform; 3] = [Platform::Apns, Platform::ApnsSandbox, Platform::Fcm];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Apns => "apns",
            Platform::ApnsSandbox => "apns_sandbox",
            Platform::Fcm => "fcm",
        }
    }

    /// The platform of a Pinpoint endpoint's `ChannelType`, for those SNS can push to.
    pub fn of_pinpoint_channel(channel: &str) -> Option<Platform> {
        match channel {
            "APNS" => Some(Platform::Apns),
            "APNS_SANDBOX" => Some(Platform::ApnsSandbox),
            "GCM" => Some(Platform::Fcm),
            _ => None,
        }
    }
}

/// One registered device of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub token: String,
    pub platform: Platform,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The SNS platform endpoint pushes go to.
    pub endpoint_arn: String,
    #[serde(with = "crate::domain::time::as_millis")]
    pub registered_at: Timestamp,
}

/// The body of a registration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub platform: Platform,
    #[serde(default)]
    pub app: Option<String>,
}

impl Registration {
    /// The body, checked: a 400 names the field at fault.
    pub fn parse(body: &serde_json::Value) -> Result<Self, FieldError> {
        let registration: Registration = FieldError::from_json(body, "")?;
        if let Some(app) = &registration.app {
            if app.is_empty()
                || app.chars().count() > MAX_APP_LEN
                || app.chars().any(char::is_control)
            {
                return Err(FieldError::new(
                    "invalid_value",
                    "app",
                    format!("app must be 1-{MAX_APP_LEN} characters, without control characters"),
                ));
            }
        }
        Ok(registration)
    }
}

/// A device token as APNs and FCM hand them out: 1-512 characters of letters, digits and
/// `. _ : -` (an FCM token has `:` and `-`, an APNs token is hex).
pub fn check_token(token: &str, field: &str) -> Result<(), FieldError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(FieldError::new(
            "invalid_token",
            field,
            format!("{field} must be 1-{MAX_TOKEN_LEN} characters long"),
        ));
    }
    if let Some(bad) = token
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(FieldError::new(
            "invalid_token",
            field,
            format!("{field} contains {bad:?}; a device token has A-Z a-z 0-9 . _ : - only"),
        ));
    }
    Ok(())
}

/// The user's push endpoints: the contact's own (SNS endpoint ARNs it was given) and those
/// of the registered devices, each once, in that order.
pub fn push_endpoints(contact_push: &[String], devices: &[Device]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for arn in contact_push
        .iter()
        .chain(devices.iter().map(|d| &d.endpoint_arn))
    {
        if !out.contains(arn) {
            out.push(arn.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn tokens_and_bodies_are_checked_naming_the_field() {
        assert!(check_token(&"a1".repeat(32), "token").is_ok());
        assert!(check_token("fcm:APA91b-x_y.z", "token").is_ok());
        for bad in ["", "a b", "a/b", "ä", &"x".repeat(MAX_TOKEN_LEN + 1)] {
            assert_eq!(
                check_token(bad, "token").unwrap_err().field.as_deref(),
                Some("token"),
                "{bad:?}"
            );
        }
        let ok = Registration::parse(&json!({"platform": "apns_sandbox", "app": "com.example"}));
        assert_eq!(ok.unwrap().platform, Platform::ApnsSandbox);
        for (body, field) in [
            (json!({"platform": "blackberry"}), "platform"),
            (json!({}), "platform"),
            (json!({"platform": "fcm", "app": ""}), "app"),
            (json!({"platform": "fcm", "colour": 1}), "colour"),
        ] {
            let e = Registration::parse(&body).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{body}: {e:?}");
        }
    }

    #[test]
    fn endpoints_merge_the_contacts_and_the_devices_once_each() {
        let device = |arn: &str| Device {
            token: "t".into(),
            platform: Platform::Fcm,
            app: None,
            endpoint_arn: arn.into(),
            registered_at: Timestamp::UNIX_EPOCH,
        };
        assert_eq!(
            push_endpoints(&["a".into(), "b".into()], &[device("b"), device("c")]),
            ["a", "b", "c"]
        );
        assert_eq!(Platform::of_pinpoint_channel("GCM"), Some(Platform::Fcm));
        assert_eq!(Platform::of_pinpoint_channel("BAIDU"), None);
    }
}
