//! What providers tell herald after a send: SES events (bounce, complaint, delivery,
//! reject), published by the configuration set to the feedback topic, and inbound SMS
//! replies (two-way SMS: STOP and its synonyms). A hard bounce, a complaint or a STOP
//! suppresses the address for good; the rest is only counted. A bounce or complaint
//! without a valid tenant tag (mail herald did not send) suppresses nothing unless the
//! operator asks for it (`UntaggedPolicy`).

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ids::TenantId;

/// The SES message tag that carries the tenant (hex: tag values allow only `[A-Za-z0-9_-]`).
pub const TENANT_TAG: &str = "herald-tenant";

/// One thing to do about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    /// Never send to `address` again: for `tenant`, or for every tenant when `None` (an SMS
    /// STOP is addressed to the sending number, which all tenants share).
    Suppress {
        tenant: Option<TenantId>,
        address: String,
        reason: String,
    },
    /// Nothing to change (a delivery, a transient bounce): counted under `kind`.
    Noted { kind: String },
    /// A hard bounce or complaint whose mail carries no valid tenant tag, under
    /// `UntaggedPolicy::Record`: nothing is suppressed, the event is logged and counted.
    Untagged {
        address: String,
        reason: String,
        /// SES's id of the mail (`mail.messageId`), to find the event again.
        mail_id: Option<String>,
    },
}

/// What a hard bounce or complaint without a valid tenant tag does (`UNTAGGED_BOUNCES`).
/// herald tags every email it sends, so such an event is about mail sent by something
/// else through the same configuration set, or a tag lost on the way: suppressing the
/// address for every tenant would silence it for tenants that never had a problem with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UntaggedPolicy {
    /// Suppress nothing; log the event (address hashed) and count it (default).
    #[default]
    Record,
    /// Suppress the address for every tenant.
    Global,
}

impl std::str::FromStr for UntaggedPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "record" => Ok(Self::Record),
            "global" => Ok(Self::Global),
            _ => Err("use record or global".into()),
        }
    }
}

/// An address as logs may show it: the first 16 hex digits of its SHA-256 (lowercased
/// first), enough to match log lines about one address without writing it down.
pub fn address_digest(address: &str) -> String {
    Sha256::digest(address.to_ascii_lowercase().as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The tenant as an SES tag value.
pub fn tenant_tag(tenant: &TenantId) -> String {
    tenant
        .as_str()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Parses one queue message body: an SES event or inbound SMS, raw or inside an SNS
/// envelope. `untagged` decides what a suppressing SES event without a valid tenant tag
/// does. `Err` for anything else (poison: to the DLQ with the reason).
pub fn parse(body: &str, untagged: UntaggedPolicy) -> Result<Vec<Feedback>, String> {
    let mut value: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    // SNS → SQS without raw delivery wraps the event: {"Type": "Notification", "Message": "..."}.
    if value["Type"] == "Notification" {
        let inner = value["Message"]
            .as_str()
            .ok_or("an SNS envelope without Message")?;
        value = serde_json::from_str(inner).map_err(|e| format!("SNS Message is not JSON: {e}"))?;
    }
    if let Some(kind) = value["eventType"]
        .as_str()
        .or_else(|| value["notificationType"].as_str())
    {
        return Ok(ses_event(kind, &value, untagged));
    }
    if let (Some(from), Some(text)) = (
        value["originationNumber"].as_str(),
        value["messageBody"].as_str(),
    ) {
        return Ok(vec![sms_reply(from, text)]);
    }
    Err("neither an SES event nor an inbound SMS".into())
}

fn ses_event(kind: &str, event: &Value, untagged: UntaggedPolicy) -> Vec<Feedback> {
    let tenant = event["mail"]["tags"][TENANT_TAG][0]
        .as_str()
        .and_then(tenant_from_tag);
    let mail_id = event["mail"]["messageId"].as_str().map(str::to_owned);
    let suppress = |list: &Value, field: &str, reason: String| -> Vec<Feedback> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r[field].as_str())
            .map(|address| {
                let address = address.to_ascii_lowercase();
                let reason = reason.clone();
                match (&tenant, untagged) {
                    (Some(tenant), _) => Feedback::Suppress {
                        tenant: Some(tenant.clone()),
                        address,
                        reason,
                    },
                    (None, UntaggedPolicy::Global) => Feedback::Suppress {
                        tenant: None,
                        address,
                        reason,
                    },
                    (None, UntaggedPolicy::Record) => Feedback::Untagged {
                        address,
                        reason,
                        mail_id: mail_id.clone(),
                    },
                }
            })
            .collect()
    };
    match kind {
        "Bounce" if event["bounce"]["bounceType"] == "Permanent" => suppress(
            &event["bounce"]["bouncedRecipients"],
            "emailAddress",
            format!(
                "hard bounce ({})",
                event["bounce"]["bounceSubType"]
                    .as_str()
                    .unwrap_or("General")
            ),
        ),
        "Complaint" => suppress(
            &event["complaint"]["complainedRecipients"],
            "emailAddress",
            "complaint".into(),
        ),
        "Bounce" => vec![Feedback::Noted {
            kind: "transient bounce".into(),
        }],
        other => vec![Feedback::Noted {
            kind: other.to_ascii_lowercase(),
        }],
    }
}

fn tenant_from_tag(hex: &str) -> Option<TenantId> {
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect();
    TenantId::parse(String::from_utf8(bytes?).ok()?, "tenant").ok()
}

/// Opt-out keywords: AWS End User Messaging SMS's required ones (ARRET, CANCEL, END,
/// OPT-OUT, OPTOUT, QUIT, REMOVE, STOP, TD, UNSUBSCRIBE) and CTIA's STOPALL and REVOKE.
const STOP_WORDS: [&str; 12] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "OPT-OUT",
    "REVOKE",
    "REMOVE",
    "ARRET",
    "TD",
];

/// An inbound SMS as AWS End User Messaging SMS publishes it to the two-way topic
/// (`originationNumber`: who replied, `messageBody`: what). Like AWS, which opts a number
/// out when its message begins with an opt-out keyword, the first word decides
/// (case and punctuation aside): "Stop." and "STOP sending these" are a STOP too.
fn sms_reply(from: &str, text: &str) -> Feedback {
    let word = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_ascii_uppercase();
    if STOP_WORDS.contains(&word.as_str()) {
        Feedback::Suppress {
            tenant: None,
            address: from.to_owned(),
            reason: format!("SMS reply {word}"),
        }
    } else {
        Feedback::Noted {
            kind: "sms reply".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tenant() -> TenantId {
        TenantId::parse("acme.eu", "t").unwrap()
    }

    #[test]
    fn hard_bounces_and_complaints_suppress_for_the_tagged_tenant() {
        let tag = tenant_tag(&tenant());
        let bounce = json!({"eventType": "Bounce", "mail": {"tags": {TENANT_TAG: [tag]}},
            "bounce": {"bounceType": "Permanent", "bounceSubType": "NoEmail",
                "bouncedRecipients": [{"emailAddress": "Gone@Example.com"}]}});
        assert_eq!(
            parse(&bounce.to_string(), UntaggedPolicy::Record).unwrap(),
            vec![Feedback::Suppress {
                tenant: Some(tenant()),
                address: "gone@example.com".into(),
                reason: "hard bounce (NoEmail)".into()
            }]
        );
        // The same inside an SNS envelope, as notificationType (SES notifications).
        let complaint = json!({"notificationType": "Complaint", "mail": {"tags": {TENANT_TAG: [tag]}},
            "complaint": {"complainedRecipients": [{"emailAddress": "angry@example.com"}]}});
        let envelope = json!({"Type": "Notification", "Message": complaint.to_string()});
        assert!(matches!(
            &parse(&envelope.to_string(), UntaggedPolicy::Record).unwrap()[0],
            Feedback::Suppress { address, reason, .. } if address == "angry@example.com" && reason == "complaint"
        ));
    }

    #[test]
    fn transient_bounces_and_deliveries_change_nothing_and_junk_is_refused() {
        let soft = json!({"eventType": "Bounce", "bounce": {"bounceType": "Transient",
            "bouncedRecipients": [{"emailAddress": "full@example.com"}]}});
        assert_eq!(
            parse(&soft.to_string(), UntaggedPolicy::Record).unwrap(),
            vec![Feedback::Noted {
                kind: "transient bounce".into()
            }]
        );
        let delivered = json!({"eventType": "Delivery", "mail": {}});
        assert_eq!(
            parse(&delivered.to_string(), UntaggedPolicy::Record).unwrap(),
            vec![Feedback::Noted {
                kind: "delivery".into()
            }]
        );
        assert!(parse("{oops", UntaggedPolicy::Record).is_err());
        assert!(parse("{\"hello\": 1}", UntaggedPolicy::Record).is_err());
    }

    #[test]
    fn an_sms_stop_suppresses_the_number_for_every_tenant() {
        let stop = json!({"originationNumber": "+15555550100", "messageBody": " stop "});
        assert_eq!(
            parse(&stop.to_string(), UntaggedPolicy::Record).unwrap(),
            vec![Feedback::Suppress {
                tenant: None,
                address: "+15555550100".into(),
                reason: "SMS reply STOP".into()
            }]
        );
        let hello = json!({"originationNumber": "+15555550100", "messageBody": "hello"});
        assert!(matches!(
            parse(&hello.to_string(), UntaggedPolicy::Record).unwrap()[0],
            Feedback::Noted { .. }
        ));
    }

    /// The payload AWS End User Messaging SMS publishes for a reply to the number
    /// (two-way SMS), and the opt-out keywords it honours, first word of the message.
    #[test]
    fn an_inbound_sms_as_aws_publishes_it_is_a_stop_when_its_first_word_opts_out() {
        let reply = |text: &str| {
            json!({"originationNumber": "+14255550182", "destinationNumber": "+12125550101",
                "messageKeyword": "KEYWORD_123456789012", "messageBody": text,
                "inboundMessageId": "cae173d2-66b9-564c-8309-21f858e9fb84",
                "previousPublishedMessageId": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"})
            .to_string()
        };
        for (text, word) in [
            ("STOP", "STOP"),
            ("Stop.", "STOP"),
            ("stop sending these", "STOP"),
            ("opt-out", "OPT-OUT"),
            ("Remove me", "REMOVE"),
            ("arret", "ARRET"),
            ("TD", "TD"),
            ("Unsubscribe!", "UNSUBSCRIBE"),
        ] {
            let raw = reply(text);
            // Raw delivery (the template's subscription) and inside an SNS envelope.
            let envelope = json!({"Type": "Notification", "Message": raw}).to_string();
            for body in [&raw, &envelope] {
                assert_eq!(
                    parse(body, UntaggedPolicy::Record).unwrap(),
                    vec![Feedback::Suppress {
                        tenant: None,
                        address: "+14255550182".into(),
                        reason: format!("SMS reply {word}")
                    }],
                    "{text:?}"
                );
            }
        }
        for text in ["", "  ", "please don't stop", "STOPPED?", "help"] {
            assert!(
                matches!(
                    parse(&reply(text), UntaggedPolicy::Record).unwrap()[..],
                    [Feedback::Noted { .. }]
                ),
                "{text:?}"
            );
        }
    }

    /// Regression: a bounce without the tenant tag used to suppress the address for every
    /// tenant (`tenant: None`).
    #[test]
    fn an_untagged_or_badly_tagged_bounce_suppresses_nothing_unless_asked() {
        let bounce = |tags: Value| {
            json!({"eventType": "Bounce", "mail": {"messageId": "ses-1", "tags": tags},
                "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                    "bouncedRecipients": [{"emailAddress": "Gone@Example.com"}]}})
            .to_string()
        };
        let complaint = json!({"notificationType": "Complaint", "mail": {},
            "complaint": {"complainedRecipients": [{"emailAddress": "angry@example.com"}]}})
        .to_string();
        for body in [
            bounce(json!({})),
            bounce(json!({TENANT_TAG: ["zz"]})),
            bounce(json!({TENANT_TAG: [tenant_tag(&tenant()) + "0"]})),
            bounce(json!({"other": ["x"]})),
        ] {
            assert_eq!(
                parse(&body, UntaggedPolicy::default()).unwrap(),
                vec![Feedback::Untagged {
                    address: "gone@example.com".into(),
                    reason: "hard bounce (General)".into(),
                    mail_id: Some("ses-1".into()),
                }],
                "{body}"
            );
        }
        assert!(matches!(
            &parse(&complaint, UntaggedPolicy::default()).unwrap()[..],
            [Feedback::Untagged { address, mail_id: None, .. }] if address == "angry@example.com"
        ));
        // The operator's choice: every tenant.
        assert_eq!(
            parse(&bounce(json!({})), "global".parse().unwrap()).unwrap(),
            vec![Feedback::Suppress {
                tenant: None,
                address: "gone@example.com".into(),
                reason: "hard bounce (General)".into()
            }]
        );
        assert_eq!("record".parse(), Ok(UntaggedPolicy::Record));
        assert!("everyone".parse::<UntaggedPolicy>().is_err());
    }

    #[test]
    fn an_address_digest_is_stable_short_and_case_blind() {
        let digest = address_digest("Gone@Example.com");
        assert_eq!(digest, address_digest("gone@example.com"));
        assert_eq!(digest.len(), 16);
        assert!(!digest.contains('@'));
        assert_ne!(digest, address_digest("other@example.com"));
    }
}
