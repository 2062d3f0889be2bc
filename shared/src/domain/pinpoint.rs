//! Amazon Pinpoint endpoint exports (newline-delimited JSON, one endpoint a line) read into
//! contact changes: each endpoint becomes a JSON merge patch of its user's contact. Opt-outs
//! stay opt-outs (`OptOut: ALL` withholds marketing consent, as Pinpoint's campaigns honoured
//! it), inactive endpoints are skipped, and a malformed line is an error that names its line
//! and changes nothing.

use serde_json::{json, Value};

use super::device::{check_token, Platform};
use super::ids::UserId;
use super::time::canonical_time_zone;

/// What one line of an export asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum EndpointLine {
    /// Merge `patch` into `user`'s contact.
    Apply { user: UserId, patch: Value },
    /// Register a device token as `user`'s (APNs, its sandbox, FCM); `patch` carries the
    /// rest of the endpoint (time zone, locale, opt-out) for the contact, `{}` when nothing.
    Device {
        user: UserId,
        platform: Platform,
        token: String,
        patch: Value,
    },
    /// Nothing to import, and why (an inactive endpoint, a channel herald has no use for).
    Skip(String),
}

/// Reads one line (blank lines are skipped). `Err` says what is wrong with it.
pub fn parse_endpoint(line: &str) -> Result<EndpointLine, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(EndpointLine::Skip("blank line".into()));
    }
    let endpoint: Value =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    if !endpoint.is_object() {
        return Err("not a JSON object".into());
    }
    let text = |path: &[&str]| -> Option<&str> {
        path.iter()
            .try_fold(&endpoint, |v, key| v.get(key))
            .and_then(Value::as_str)
    };
    let user = text(&["User", "UserId"]).ok_or("no User.UserId: herald keys contacts by user")?;
    let user = UserId::parse(user, "User.UserId").map_err(|e| e.message)?;
    if let Some(status) = text(&["EndpointStatus"]) {
        if !status.eq_ignore_ascii_case("ACTIVE") {
            return Ok(EndpointLine::Skip(format!("EndpointStatus {status}")));
        }
    }
    let address = text(&["Address"]).ok_or("no Address")?;
    let channel = text(&["ChannelType"]).ok_or("no ChannelType")?;
    let mut patch = match channel {
        "EMAIL" => json!({ "email": address }),
        "SMS" => json!({ "phone": address }),
        "APNS" | "APNS_SANDBOX" | "APNS_VOIP" | "APNS_VOIP_SANDBOX" | "GCM" | "BAIDU" | "ADM" => {
            if address.starts_with("arn:") {
                // Already an SNS platform endpoint: the contact's own push list.
                json!({ "push": [address] })
            } else if let Some(platform) = Platform::of_pinpoint_channel(channel) {
                // A device token, as Pinpoint kept them: registered as the user's device.
                check_token(address, "Address").map_err(|e| e.message)?;
                return Ok(EndpointLine::Device {
                    user,
                    platform,
                    token: address.to_owned(),
                    patch: extras(&endpoint, json!({})),
                });
            } else {
                return Ok(EndpointLine::Skip(format!(
                    "{channel} device token: herald registers APNs, APNs sandbox and FCM devices only"
                )));
            }
        }
        other => return Ok(EndpointLine::Skip(format!("ChannelType {other}"))),
    };
    patch = extras(&endpoint, patch);
    Ok(EndpointLine::Apply { user, patch })
}

/// `patch` with what the endpoint says of its user besides the address: the time zone, the
/// locale, and an opt-out.
fn extras(endpoint: &Value, mut patch: Value) -> Value {
    let text = |path: &[&str]| -> Option<&str> {
        path.iter()
            .try_fold(endpoint, |v, key| v.get(key))
            .and_then(Value::as_str)
    };
    if let Some(zone) = text(&["Demographic", "Timezone"]).and_then(canonical_time_zone) {
        patch["timezone"] = json!(zone);
    }
    if let Some(locale) = text(&["Demographic", "Locale"]) {
        // Pinpoint writes en_US; herald's templates look up en-US.
        patch["locale"] = json!(locale.replace('_', "-"));
    }
    if text(&["OptOut"]).is_some_and(|o| o.eq_ignore_ascii_case("ALL")) {
        patch["preferences"] = json!({ "marketing": false });
    }
    patch
}

/// Merges a push endpoint into the patch's list rather than replacing the stored one: the
/// patch for `push` is the stored list plus the new ARN.
pub fn with_stored_push(patch: &mut Value, stored: &[String]) {
    if let Some(Value::Array(new)) = patch.get("push").cloned() {
        let mut all: Vec<Value> = stored.iter().map(|a| json!(a)).collect();
        for arn in new {
            if !all.contains(&arn) {
                all.push(arn);
            }
        }
        patch["push"] = Value::Array(all);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(line: &str) -> (String, Value) {
        match parse_endpoint(line).unwrap() {
            EndpointLine::Apply { user, patch } => (user.to_string(), patch),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_channel_becomes_its_contact_field() {
        let (user, patch) = apply(
            r#"{"ChannelType":"EMAIL","Address":"a@example.com","EndpointStatus":"ACTIVE","OptOut":"NONE","User":{"UserId":"u1"},"Demographic":{"Timezone":"Europe/Berlin","Locale":"de_DE"}}"#,
        );
        assert_eq!(user, "u1");
        assert_eq!(
            patch,
            json!({"email": "a@example.com", "timezone": "Europe/Berlin", "locale": "de-DE"})
        );
        let (_, patch) = apply(
            r#"{"ChannelType":"SMS","Address":"+15555550100","OptOut":"ALL","User":{"UserId":"u1"}}"#,
        );
        assert_eq!(
            patch,
            json!({"phone": "+15555550100", "preferences": {"marketing": false}})
        );
        let (_, patch) = apply(
            r#"{"ChannelType":"GCM","Address":"arn:aws:sns:us-east-1:1:endpoint/GCM/app/x","User":{"UserId":"u1"}}"#,
        );
        assert_eq!(
            patch["push"][0],
            "arn:aws:sns:us-east-1:1:endpoint/GCM/app/x"
        );
    }

    #[test]
    fn inactive_endpoints_tokens_and_other_channels_are_skipped_with_a_reason() {
        for line in [
            r#"{"ChannelType":"EMAIL","Address":"a@x.com","EndpointStatus":"INACTIVE","User":{"UserId":"u1"}}"#,
            r#"{"ChannelType":"BAIDU","Address":"f00dfeed","User":{"UserId":"u1"}}"#,
            r#"{"ChannelType":"VOICE","Address":"+15555550100","User":{"UserId":"u1"}}"#,
            "",
        ] {
            assert!(
                matches!(parse_endpoint(line), Ok(EndpointLine::Skip(_))),
                "{line}"
            );
        }
    }

    #[test]
    fn device_tokens_become_devices_of_their_user() {
        let line = r#"{"ChannelType":"APNS","Address":"f00dfeed","OptOut":"ALL","User":{"UserId":"u1"},"Demographic":{"Timezone":"Europe/Paris"}}"#;
        assert_eq!(
            parse_endpoint(line).unwrap(),
            EndpointLine::Device {
                user: UserId::parse("u1", "u").unwrap(),
                platform: Platform::Apns,
                token: "f00dfeed".into(),
                patch: json!({"timezone": "Europe/Paris", "preferences": {"marketing": false}}),
            }
        );
        let gcm = r#"{"ChannelType":"GCM","Address":"fcm:tok-1","User":{"UserId":"u2"}}"#;
        assert!(matches!(
            parse_endpoint(gcm).unwrap(),
            EndpointLine::Device {
                platform: Platform::Fcm,
                ..
            }
        ));
        let bad = r#"{"ChannelType":"GCM","Address":"tok with space","User":{"UserId":"u2"}}"#;
        assert!(parse_endpoint(bad).is_err());
    }

    #[test]
    fn malformed_lines_are_errors() {
        for line in [
            "{not json",
            "[1,2]",
            r#"{"ChannelType":"EMAIL","Address":"a@x.com"}"#,
            r#"{"ChannelType":"EMAIL","Address":"a@x.com","User":{"UserId":"bad id"}}"#,
            r#"{"Address":"a@x.com","User":{"UserId":"u1"}}"#,
        ] {
            assert!(parse_endpoint(line).is_err(), "{line}");
        }
    }

    #[test]
    fn push_arns_add_to_the_stored_ones() {
        let mut patch = json!({"push": ["arn:b"]});
        with_stored_push(&mut patch, &["arn:a".to_owned(), "arn:b".to_owned()]);
        assert_eq!(patch["push"], json!(["arn:a", "arn:b"]));
    }
}
