//! A user's contact: addresses per channel, preferences and quiet hours, and the rules
//! `deliver` applies with them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::notification::{Category, Channel};
use crate::error::FieldError;

/// What `PUT /v1/users/{user}/contact` stores.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// E.164, e.g. +15555550100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// SNS platform endpoint ARNs of the user's devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub push: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// IANA zone, e.g. Europe/Berlin; quiet hours are in this zone (UTC when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default)]
    pub preferences: Preferences,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
}

/// Opt-outs: a channel set to false gets nothing; `marketing: false` opts out of campaigns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    #[serde(default)]
    pub channels: BTreeMap<Channel, bool>,
    #[serde(default = "yes")]
    pub marketing: bool,
}

fn yes() -> bool {
    true
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            channels: BTreeMap::new(),
            marketing: true,
        }
    }
}

/// Local times between which marketing is held back, e.g. 22:00–07:00.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    pub start: String,
    pub end: String,
}

const MAX_PUSH_ENDPOINTS: usize = 20;

impl Contact {
    /// Parses a request body, naming the field at fault.
    pub fn parse(body: &Value) -> Result<Contact, FieldError> {
        let contact: Contact = serde_json::from_value(body.clone())
            .map_err(|e| FieldError::body("invalid_body", format!("contact: {e}")))?;
        if let Some(email) = &contact.email {
            check_email(email)?;
        }
        if let Some(phone) = &contact.phone {
            let digits = phone.strip_prefix('+').unwrap_or("");
            if !(8..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(FieldError::new(
                    "invalid_phone",
                    "phone",
                    "phone must be E.164, e.g. +15555550100",
                ));
            }
        }
        if contact.push.len() > MAX_PUSH_ENDPOINTS {
            return Err(FieldError::new(
                "too_many",
                "push",
                format!("at most {MAX_PUSH_ENDPOINTS} push endpoints"),
            ));
        }
        for (i, arn) in contact.push.iter().enumerate() {
            if !arn.starts_with("arn:") || !arn.contains(":endpoint/") {
                return Err(FieldError::new(
                    "invalid_endpoint",
                    &format!("push[{i}]"),
                    "push entries must be SNS platform endpoint ARNs",
                ));
            }
        }
        if let Some(zone) = &contact.timezone {
            if jiff::tz::TimeZone::get(zone).is_err() {
                return Err(FieldError::new(
                    "invalid_timezone",
                    "timezone",
                    format!("{zone:?} is not an IANA time zone"),
                ));
            }
        }
        if let Some(q) = &contact.quiet_hours {
            parse_clock(&q.start)
                .ok_or_else(|| FieldError::new("invalid_time", "quiet_hours.start", "use HH:MM"))?;
            parse_clock(&q.end)
                .ok_or_else(|| FieldError::new("invalid_time", "quiet_hours.end", "use HH:MM"))?;
        }
        Ok(contact)
    }

    /// Whether this user takes `category` messages on `channel` at all.
    pub fn allows(&self, channel: Channel, category: Category) -> bool {
        let channel_on = self
            .preferences
            .channels
            .get(&channel)
            .copied()
            .unwrap_or(true);
        channel_on && (category == Category::Transactional || self.preferences.marketing)
    }

    /// Seconds until quiet hours end, if `now` falls inside them (marketing only waits).
    pub fn quiet_for(&self, now: jiff::Timestamp) -> Option<u32> {
        let q = self.quiet_hours.as_ref()?;
        let (start, end) = (parse_clock(&q.start)?, parse_clock(&q.end)?);
        let zone = self
            .timezone
            .as_deref()
            .and_then(|z| jiff::tz::TimeZone::get(z).ok())
            .unwrap_or(jiff::tz::TimeZone::UTC);
        let local = now.to_zoned_datetime(zone).time();
        let minute = u32::from(local.hour() as u8) * 60 + u32::from(local.minute() as u8);
        let inside = if start <= end {
            minute >= start && minute < end
        } else {
            minute >= start || minute < end
        };
        inside.then(|| ((end + 24 * 60 - minute) % (24 * 60)) * 60)
    }
}

fn check_email(email: &str) -> Result<(), FieldError> {
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c == ',' || c == '<' || c == '>');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "invalid_email",
            "email",
            format!("{email:?} is not an email address"),
        ))
    }
}

/// "HH:MM" → minutes after midnight.
fn parse_clock(value: &str) -> Option<u32> {
    let (h, m) = value.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && value.len() == 5).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_full_contact() {
        let c = Contact::parse(&json!({
            "email": "ada@example.com", "phone": "+15555550100",
            "push": ["arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/abc"],
            "timezone": "Europe/Berlin",
            "preferences": {"channels": {"sms": false}, "marketing": false},
            "quiet_hours": {"start": "22:00", "end": "07:00"}
        }))
        .unwrap();
        assert!(!c.allows(Channel::Sms, Category::Transactional));
        assert!(c.allows(Channel::Email, Category::Transactional));
        assert!(!c.allows(Channel::Email, Category::Marketing));
    }

    #[test]
    fn names_the_bad_field() {
        let cases = [
            (json!({"email": "nope"}), "email"),
            (json!({"phone": "555"}), "phone"),
            (json!({"push": ["arn:x"]}), "push[0]"),
            (json!({"timezone": "Mars/Olympus"}), "timezone"),
            (
                json!({"quiet_hours": {"start": "25:00", "end": "07:00"}}),
                "quiet_hours.start",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(
                Contact::parse(&body).unwrap_err().field.as_deref(),
                Some(field),
                "{body}"
            );
        }
        assert_eq!(
            Contact::parse(&json!({"emial": 1})).unwrap_err().code,
            "invalid_body"
        );
    }

    #[test]
    fn quiet_hours_wrap_midnight_in_the_users_zone() {
        let c = Contact {
            timezone: Some("Europe/Berlin".into()),
            quiet_hours: Some(QuietHours {
                start: "22:00".into(),
                end: "07:00".into(),
            }),
            ..Contact::default()
        };
        // 22:30 UTC = 23:30 in Berlin (CET, winter): quiet for 7.5 hours.
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        assert_eq!(c.quiet_for(at("2026-11-23T22:30:00Z")), Some(450 * 60));
        assert_eq!(c.quiet_for(at("2026-11-23T12:00:00Z")), None);
    }
}
