//! Frequency caps: at most `limit` sends of a category on a channel per user in any sliding
//! `window_seconds` (e.g. marketing push: 3 per 24 h), set per tenant.
//!
//! Each (user, category, channel) keeps the sends still inside its window, by notification,
//! in one item written under optimistic locking: `admit` decides from what was read, and the
//! write holds only if nobody wrote in between. A notification already counted is admitted
//! again without counting twice, so a retried or redelivered job never spends the cap twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::channel::{Category, Channel};
use crate::error::FieldError;

/// Most sends a cap allows per window.
pub const MAX_CAP_LIMIT: u32 = 1_000;
pub const MIN_CAP_WINDOW_SECONDS: u32 = 60;
pub const MAX_CAP_WINDOW_SECONDS: u32 = 30 * 24 * 3600;

/// One cap: this category on this channel, at most `limit` per `window_seconds` per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    pub category: Category,
    pub channel: Channel,
    pub limit: u32,
    pub window_seconds: u32,
}

/// A tenant's caps, as `PUT /v1/frequency-caps` replaces them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapSettings {
    pub caps: Vec<FrequencyCap>,
}

impl CapSettings {
    /// Reads and checks the body; errors name the field.
    pub fn parse(value: &Value) -> Result<CapSettings, FieldError> {
        let settings: CapSettings = FieldError::from_json(value, "")?;
        for (i, cap) in settings.caps.iter().enumerate() {
            let at = format!("caps[{i}]");
            if cap.channel == Channel::Inbox {
                return Err(FieldError::new(
                    "invalid_value",
                    &format!("{at}.channel"),
                    format!("{at}.channel: caps apply to email, sms and push"),
                ));
            }
            if !(1..=MAX_CAP_LIMIT).contains(&cap.limit) {
                return Err(FieldError::new(
                    "out_of_range",
                    &format!("{at}.limit"),
                    format!("{at}.limit must be 1-{MAX_CAP_LIMIT}"),
                ));
            }
            if !(MIN_CAP_WINDOW_SECONDS..=MAX_CAP_WINDOW_SECONDS).contains(&cap.window_seconds) {
                return Err(FieldError::new(
                    "out_of_range",
                    &format!("{at}.window_seconds"),
                    format!(
                        "{at}.window_seconds must be {MIN_CAP_WINDOW_SECONDS}-{MAX_CAP_WINDOW_SECONDS}"
                    ),
                ));
            }
            if settings.caps[..i]
                .iter()
                .any(|c| c.category == cap.category && c.channel == cap.channel)
            {
                return Err(FieldError::new(
                    "duplicate",
                    &at,
                    format!("{at}: one cap per category and channel"),
                ));
            }
        }
        Ok(settings)
    }

    /// The cap on this category and channel, if any.
    pub fn cap_for(&self, category: Category, channel: Channel) -> Option<FrequencyCap> {
        self.caps
            .iter()
            .find(|c| c.category == category && c.channel == channel)
            .copied()
    }
}

/// One user's sends under one cap, as stored: notification id → when it was counted
/// (milliseconds since the epoch), and the item's version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapWindow {
    pub sent: BTreeMap<String, i64>,
    pub version: u64,
}

/// What a cap says about one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Within the cap: write these sends (the window pruned, this one added) at the version
    /// read, then send.
    Count(BTreeMap<String, i64>),
    /// This notification was counted already (an earlier attempt): send without counting.
    Counted,
    /// The cap is full: skip. `oldest` is when the first send of the window was.
    Capped { oldest: i64 },
}

/// Decides one send of notification `key` at `now_ms` against `cap` and what was read.
pub fn admit(window: &CapWindow, cap: &FrequencyCap, key: &str, now_ms: i64) -> Admission {
    if window.sent.contains_key(key) {
        return Admission::Counted;
    }
    let since = now_ms - i64::from(cap.window_seconds) * 1000;
    let mut live: BTreeMap<String, i64> = window
        .sent
        .iter()
        .filter(|(_, at)| **at > since)
        .map(|(k, at)| (k.clone(), *at))
        .collect();
    if live.len() >= cap.limit as usize {
        let oldest = live.values().copied().min().unwrap_or(now_ms);
        return Admission::Capped { oldest };
    }
    live.insert(key.to_owned(), now_ms);
    Admission::Count(live)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cap(limit: u32) -> FrequencyCap {
        FrequencyCap {
            category: Category::Marketing,
            channel: Channel::Push,
            limit,
            window_seconds: 3600,
        }
    }

    #[test]
    fn counts_up_to_the_limit_then_caps_until_the_window_slides() {
        let mut window = CapWindow::default();
        for (i, at) in [0, 1_000, 2_000].into_iter().enumerate() {
            match admit(&window, &cap(3), &format!("n{i}"), at) {
                Admission::Count(sent) => window.sent = sent,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            admit(&window, &cap(3), "n3", 3_000),
            Admission::Capped { oldest: 0 }
        );
        // An hour after the first send, it has left the window: one more fits, and the
        // stored window loses what is out of it.
        match admit(&window, &cap(3), "n3", 3_600_000) {
            Admission::Count(sent) => {
                assert_eq!(sent.keys().collect::<Vec<_>>(), ["n1", "n2", "n3"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_counted_notification_is_never_counted_twice() {
        let window = CapWindow {
            sent: BTreeMap::from([("n1".to_owned(), 10)]),
            version: 1,
        };
        assert_eq!(admit(&window, &cap(1), "n1", 20), Admission::Counted);
        assert!(matches!(
            admit(&window, &cap(1), "n2", 20),
            Admission::Capped { .. }
        ));
    }

    #[test]
    fn settings_name_each_bad_field() {
        let ok = json!({"category": "marketing", "channel": "push", "limit": 3, "window_seconds": 86400});
        assert!(CapSettings::parse(&json!({ "caps": [ok] })).is_ok());
        let cases = [
            (
                "channel",
                json!("inbox"),
                "caps[0].channel",
                "invalid_value",
            ),
            ("limit", json!(0), "caps[0].limit", "out_of_range"),
            ("limit", json!(-1), "caps[0].limit", "invalid_value"),
            (
                "window_seconds",
                json!(59),
                "caps[0].window_seconds",
                "out_of_range",
            ),
            (
                "category",
                json!("promo"),
                "caps[0].category",
                "invalid_value",
            ),
            ("every", json!(1), "caps[0].every", "unknown_field"),
        ];
        for (field, value, path, code) in cases {
            let mut bad = ok.clone();
            bad[field] = value;
            let err = CapSettings::parse(&json!({ "caps": [bad] })).unwrap_err();
            assert_eq!(
                (err.field.as_deref(), err.code.as_str()),
                (Some(path), code)
            );
        }
        let twice = CapSettings::parse(&json!({ "caps": [ok, ok] })).unwrap_err();
        assert_eq!(twice.field.as_deref(), Some("caps[1]"));
    }
}
