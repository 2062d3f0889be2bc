//! A user's contact: addresses per channel, preferences and quiet hours, and the rules
//! `deliver` applies with them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::notification::{Category, Channel};
use super::time::canonical_time_zone;
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

// What openapi.yaml states of each field (`tests/tests/api_constraints.rs` holds the two to each
// other, and these patterns to the checks below). Patterns are ECMA-262, as JSON Schema's.
pub const MAX_PUSH_ENDPOINTS: usize = 20;
/// SNS endpoint ARNs are well under this.
pub const MAX_ARN_LEN: usize = 256;
pub const ENDPOINT_ARN_PATTERN: &str = r"^arn:([\s\S]*:)?endpoint/";
pub const MAX_LOCALE_LEN: usize = 35;
pub const LOCALE_PATTERN: &str = "^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$";
pub const MAX_EMAIL_CHARS: usize = 254;
/// Something@domain.tld: no white space (Unicode's), commas or angle brackets anywhere.
pub const EMAIL_PATTERN: &str = concat!(
    r"^[^@\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000,<>]+",
    r"@[^.\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000,<>]",
    r"([^\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000,<>]*\.)+",
    r"[^.\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000,<>]+$"
);
pub const PHONE_PATTERN: &str = r"^\+[0-9]{8,15}$";
pub const CLOCK_PATTERN: &str = "^([01][0-9]|2[0-3]):[0-5][0-9]$";
impl Contact {
    /// Parses a request body, naming the field at fault: the body must be an object of the
    /// known fields, each of its type and within its bound.
    pub fn parse(body: &Value) -> Result<Contact, FieldError> {
        let object = body
            .as_object()
            .ok_or_else(|| FieldError::body("invalid_body", "a contact must be a JSON object"))?;
        // Unknown fields are refused even when null (the contract has no others).
        if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(FieldError::new(
                "unknown_field",
                unknown,
                format!("{} is not a contact field", shown(unknown)),
            ));
        }
        // Absent and null are the same at the top level (a merge patch clears with null);
        // the rest is serde's, its errors naming the field by its path.
        let present: serde_json::Map<String, Value> = object
            .iter()
            .filter(|(_, value)| !value.is_null())
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let contact: Contact = FieldError::from_json(&Value::Object(present), "")?;
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
            if arn.chars().count() > MAX_ARN_LEN
                || !arn.starts_with("arn:")
                || !arn.contains(":endpoint/")
            {
                return Err(FieldError::new(
                    "invalid_endpoint",
                    &format!("push[{i}]"),
                    "push entries must be SNS platform endpoint ARNs",
                ));
            }
        }
        if let Some(zone) = &contact.timezone {
            if !crate::domain::time::is_time_zone(zone) {
                return Err(FieldError::new(
                    "invalid_timezone",
                    "timezone",
                    format!("{} is not an IANA time zone", shown(zone)),
                ));
            }
        }
        if let Some(locale) = &contact.locale {
            if !is_locale(locale) {
                return Err(FieldError::new(
                    "invalid_locale",
                    "locale",
                    format!(
                        "{} is not a language tag such as en, en-US or zh-Hant-TW",
                        shown(locale)
                    ),
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

    /// The contact after a `PUT` (`merge: false`: the body replaces it) or a `PATCH` (`merge:
    /// true`: the body is a JSON merge patch, RFC 7396: the fields given change, `null`
    /// clears one, the rest stays). Marketing consent never changes implicitly: a body that
    /// does not name `preferences.marketing` keeps the stored consent, or `default_consent`
    /// for a new contact. The result is validated as a whole, naming the field at fault.
    pub fn apply(
        stored: Option<&Contact>,
        body: &Value,
        merge: bool,
        default_consent: bool,
    ) -> Result<Contact, FieldError> {
        if !body.is_object() {
            return Err(FieldError::body(
                "invalid_body",
                "a contact must be a JSON object",
            ));
        }
        let consent = stored.map_or(default_consent, |c| c.preferences.marketing);
        let mut next = match (merge, stored) {
            (true, Some(stored)) => {
                let mut value = serde_json::to_value(stored)
                    .map_err(|e| FieldError::body("internal", e.to_string()))?;
                // A zone stored before names had to be spelled exactly is spelled so now, so
                // a patch that leaves it alone is not refused for it.
                if let Some(zone) = stored.timezone.as_deref().and_then(canonical_time_zone) {
                    value["timezone"] = Value::String(zone);
                }
                merge_patch(&mut value, body);
                value
            }
            (true, None) => {
                let mut value = Value::Object(serde_json::Map::new());
                merge_patch(&mut value, body);
                value
            }
            (false, _) => body.clone(),
        };
        // Not named: the stored (or default) consent. A `preferences` of the wrong type is
        // left for the validation below to name.
        match next.get_mut("preferences") {
            None | Some(Value::Null) => {
                next["preferences"] = serde_json::json!({ "marketing": consent });
            }
            Some(Value::Object(preferences)) if !preferences.contains_key("marketing") => {
                preferences.insert("marketing".into(), Value::Bool(consent));
            }
            Some(_) => {}
        }
        Contact::parse(&next)
    }

    /// A merge patch checked on its own, before any stored contact is read: each value it
    /// gives must be valid for its field (the 400 names it), whatever it is merged onto, and
    /// it names no field a contact does not have (not even to clear it).
    pub fn check_patch(patch: &Value) -> Result<(), FieldError> {
        if let Some(field) = unknown_patch_field(patch, "") {
            return Err(FieldError::new(
                "unknown_field",
                &field,
                format!("{} is not a contact field", shown(&field)),
            ));
        }
        // Merged onto a contact with every field set, each field the patch gives is checked
        // within a whole contact (a lone quiet_hours.start meets an end, as a stored one would).
        let complete = Contact {
            email: Some("check@example.com".into()),
            phone: Some("+15555550100".into()),
            push: Vec::new(),
            locale: Some("en".into()),
            timezone: Some("UTC".into()),
            preferences: Preferences::default(),
            quiet_hours: Some(QuietHours {
                start: "22:00".into(),
                end: "07:00".into(),
            }),
        };
        Contact::apply(Some(&complete), patch, true, true).map(|_| ())
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
    let ok = email.chars().count() <= MAX_EMAIL_CHARS
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
            format!("{} is not an email address", shown(email)),
        ))
    }
}

/// A contact's fields, as openapi.yaml's `Contact` lists them.
const FIELDS: [&str; 7] = [
    "email",
    "phone",
    "push",
    "locale",
    "timezone",
    "preferences",
    "quiet_hours",
];

/// The fields of the object at `path` of a contact (nested objects only).
fn known_fields(path: &str) -> Option<&'static [&'static str]> {
    match path {
        "" => Some(&FIELDS),
        "preferences" => Some(&["channels", "marketing"]),
        "preferences.channels" => Some(&["inbox", "email", "sms", "push"]),
        "quiet_hours" => Some(&["start", "end"]),
        _ => None,
    }
}

/// The first key of a merge patch at `path` that names no contact field, as a path.
fn unknown_patch_field(patch: &Value, path: &str) -> Option<String> {
    let (Value::Object(map), Some(names)) = (patch, known_fields(path)) else {
        return None;
    };
    map.iter().find_map(|(key, inner)| {
        let at = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        if names.contains(&key.as_str()) {
            unknown_patch_field(inner, &at)
        } else {
            Some(at)
        }
    })
}

/// RFC 7396 JSON merge patch: objects merge key by key, `null` removes, anything else
/// replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(map) = target {
                for (key, value) in fields {
                    if value.is_null() {
                        map.remove(key);
                    } else {
                        merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// A BCP 47 language tag, loosely: a 2–8 letter language, then up to 8-character
/// alphanumeric subtags separated by `-` (or `_`, as POSIX locales write it).
fn is_locale(tag: &str) -> bool {
    let mut subtags = tag.split(['-', '_']);
    let language = subtags.next().unwrap_or_default();
    tag.len() <= MAX_LOCALE_LEN
        && (2..=8).contains(&language.len())
        && language.chars().all(|c| c.is_ascii_alphabetic())
        && subtags
            .all(|s| (1..=8).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// A value quoted for an error message, cut to 64 characters: errors never echo a
/// 100,000-character input back.
fn shown(value: &str) -> String {
    format!("{:?}", clipped(value, 64))
}

/// `text` cut to `max` characters, marked with an ellipsis when cut.
fn clipped(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// "HH:MM" (two digits each) → minutes after midnight.
fn parse_clock(value: &str) -> Option<u32> {
    let [h1, h2, b':', m1, m2] = value.as_bytes() else {
        return None;
    };
    let digit = |b: &u8| b.is_ascii_digit().then(|| u32::from(b - b'0'));
    let (h, m) = (digit(h1)? * 10 + digit(h2)?, digit(m1)? * 10 + digit(m2)?);
    (h < 24 && m < 60).then_some(h * 60 + m)
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
            Contact::parse(&json!({"emial": 1}))
                .unwrap_err()
                .field
                .as_deref(),
            Some("emial"),
            "the field is named as sent, without quotes"
        );
    }

    #[test]
    fn every_field_is_typed_and_bounded_and_the_body_is_an_object() {
        for body in [json!([]), json!("x"), json!(null), json!(7)] {
            let e = Contact::parse(&body).unwrap_err();
            assert_eq!((e.code.as_str(), e.field), ("invalid_body", None), "{body}");
        }
        let long = "x".repeat(100_000);
        let cases = [
            (json!({"email": 5}), "email"),
            (json!({"push": "arn"}), "push"),
            (
                json!({"preferences": {"marketing": "no"}}),
                "preferences.marketing",
            ),
            (json!({"quiet_hours": [1]}), "quiet_hours[0]"),
            (json!({"locale": long}), "locale"),
            (json!({"locale": "english please"}), "locale"),
            (json!({"locale": "e"}), "locale"),
            (json!({"timezone": long}), "timezone"),
            (json!({"email": format!("a@{long}.com")}), "email"),
            (
                json!({"push": [format!("arn:aws:sns:x:1:endpoint/{long}")]}),
                "push[0]",
            ),
            (json!({"preferences": long}), "preferences"),
        ];
        for (body, field) in cases {
            let e = Contact::parse(&body).unwrap_err();
            assert_eq!(
                e.field.as_deref(),
                Some(field),
                "{}",
                &body.to_string()[..40.min(body.to_string().len())]
            );
            assert!(e.message.len() < 400, "the error does not echo the input");
        }
        for locale in ["en", "en-US", "zh-Hant-TW", "pt_BR", "de-CH-1996"] {
            assert!(
                Contact::parse(&json!({ "locale": locale })).is_ok(),
                "{locale}"
            );
        }
    }

    #[test]
    fn patch_merges_put_replaces_and_consent_never_changes_implicitly() {
        let stored = Contact::parse(&json!({
            "email": "a@b.co", "phone": "+15555550100",
            "preferences": {"marketing": false, "channels": {"sms": false}}
        }))
        .unwrap();
        let arn = "arn:aws:sns:us-east-1:1:endpoint/GCM/app/x";
        let patched = Contact::apply(Some(&stored), &json!({"push": [arn]}), true, true).unwrap();
        assert_eq!(
            patched.email.as_deref(),
            Some("a@b.co"),
            "PATCH keeps the rest"
        );
        assert_eq!(patched.push, vec![arn.to_owned()]);
        assert!(!patched.preferences.marketing, "no silent re-opt-in");
        assert_eq!(
            patched.preferences.channels.get(&Channel::Sms),
            Some(&false)
        );
        let cleared = Contact::apply(Some(&stored), &json!({"phone": null}), true, true).unwrap();
        assert_eq!(
            (cleared.phone, cleared.email.as_deref()),
            (None, Some("a@b.co"))
        );
        let replaced = Contact::apply(Some(&stored), &json!({"push": [arn]}), false, true).unwrap();
        assert_eq!(replaced.email, None, "PUT replaces");
        assert!(!replaced.preferences.marketing, "…but keeps the consent");
        let opted_in = Contact::apply(
            Some(&stored),
            &json!({"preferences": {"marketing": true}}),
            true,
            false,
        )
        .unwrap();
        assert!(opted_in.preferences.marketing && opted_in.email.is_some());
        assert!(
            !Contact::apply(None, &json!({"email": "n@b.co"}), true, false)
                .unwrap()
                .preferences
                .marketing,
            "new contacts get the configured default"
        );
        assert!(
            Contact::apply(None, &json!({"email": "n@b.co"}), false, true)
                .unwrap()
                .preferences
                .marketing
        );
        let bad = Contact::apply(Some(&stored), &json!({"email": "nope"}), true, true);
        assert_eq!(bad.unwrap_err().field.as_deref(), Some("email"));
        for merge in [true, false] {
            let bad = Contact::apply(Some(&stored), &json!({"preferences": "x"}), merge, true);
            assert_eq!(bad.unwrap_err().field.as_deref(), Some("preferences"));
        }
        assert!(Contact::apply(Some(&stored), &json!([1]), true, true).is_err());
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
