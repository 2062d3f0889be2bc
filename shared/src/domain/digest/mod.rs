//! Digests: a notification's outside channels (email, SMS, push) bundled per user and key.
//! The first event of a (user, key) opens a window; later ones join it until it closes; at its
//! end one message per channel lists them ("3 new comments on your post").
//!
//! Each event joins exactly one window, in one transaction with the window's open pointer and
//! a join record that makes a redelivered event a duplicate. The window's delivery jobs belong
//! to the event that opened it (its notification id is the digest's, so each channel is
//! claimed once); when they are due, the window is sealed (no event joins after) and read.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::check_id;
use super::text::{check_text, MAX_TITLE_CHARS};
use crate::error::FieldError;

pub mod join;

pub const MAX_DIGEST_WINDOW_SECONDS: u32 = 7 * 24 * 3600;
/// Most events a digest lists; it counts them all.
pub const MAX_LISTED_EVENTS: usize = 50;
/// The placeholder a digest's title replaces with the number of events.
pub const COUNT_PLACEHOLDER: &str = "{count}";

/// A notification's `digest`: events with the same `key` for the same user within
/// `window_seconds` of the first become one message per channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    pub key: String,
    pub window_seconds: u32,
    /// The digest's title; `{count}` becomes the number of events. Default: `{count} new:
    /// <the latest event's title>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

impl Digest {
    pub fn parse(value: &Value, at: &str) -> Result<Digest, FieldError> {
        let digest: Digest = FieldError::from_json(value, at)?;
        digest.check(at)?;
        Ok(digest)
    }

    /// Key, window and title within bounds; errors name the field below `at`.
    pub fn check(&self, at: &str) -> Result<(), FieldError> {
        let digest = self;
        check_id(&digest.key, &format!("{at}.key"))?;
        if !(1..=MAX_DIGEST_WINDOW_SECONDS).contains(&digest.window_seconds) {
            let field = format!("{at}.window_seconds");
            return Err(FieldError::new(
                "out_of_range",
                &field,
                format!("{field} must be 1-{MAX_DIGEST_WINDOW_SECONDS} (7 days)"),
            ));
        }
        if let Some(title) = &digest.title {
            check_text(title, &format!("{at}.title"), MAX_TITLE_CHARS)?;
        }
        Ok(())
    }
}

/// What a digest's delivery job carries: the digest and the window it delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestRef {
    #[serde(flatten)]
    pub digest: Digest,
    pub window: String,
}

/// One event as its digest lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestEvent {
    pub id: String,
    pub title: String,
    pub body: String,
    #[serde(with = "super::time::as_millis")]
    pub created_at: jiff::Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// The window a (user, key) has open, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenWindow {
    pub window: String,
    pub closes_at: jiff::Timestamp,
    /// Its delivery has begun: nothing joins it any more.
    pub sealed: bool,
}

/// What one event does with the window it finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinPlan {
    /// Join the open window (which must still be `window`, open and unsealed when written).
    Join(OpenWindow),
    /// Open a window of its own, replacing the closed or sealed one (which must still be
    /// the one read when written).
    Open {
        replacing: Option<String>,
        closes_at: jiff::Timestamp,
    },
}

/// Joins the window found if it is open at `now`, else opens one closing `window_seconds`
/// from now.
pub fn plan_join(
    found: Option<&OpenWindow>,
    window_seconds: u32,
    now: jiff::Timestamp,
) -> JoinPlan {
    match found {
        Some(open) if !open.sealed && open.closes_at > now => JoinPlan::Join(open.clone()),
        _ => JoinPlan::Open {
            replacing: found.map(|o| o.window.clone()),
            closes_at: now + jiff::SignedDuration::from_secs(window_seconds.into()),
        },
    }
}

/// Where an event went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub window: String,
    pub closes_at: jiff::Timestamp,
    /// This event opened the window: its delivery jobs are the digest's.
    pub opened: bool,
}

/// The digest's title and body: `title` with `{count}` (default `{count} new: <latest>`),
/// and one line per listed event, newest last, with how many more when not all are listed.
pub fn summary(digest: &Digest, events: &[DigestEvent], total: u64) -> (String, String) {
    let latest = events.last().map_or("", |e| e.title.as_str());
    let title = match &digest.title {
        Some(t) => t.replace(COUNT_PLACEHOLDER, &total.to_string()),
        None => format!("{total} new: {latest}"),
    };
    let mut lines: Vec<String> = events.iter().map(|e| format!("• {}", e.title)).collect();
    let unlisted = total.saturating_sub(events.len() as u64);
    if unlisted > 0 {
        lines.push(format!("and {unlisted} more"));
    }
    let title: String = title.chars().take(MAX_TITLE_CHARS).collect();
    (title, lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn an_open_window_is_joined_and_a_closed_or_sealed_one_replaced() {
        let open = OpenWindow {
            window: "w1".into(),
            closes_at: at(60),
            sealed: false,
        };
        assert_eq!(
            plan_join(Some(&open), 60, at(59)),
            JoinPlan::Join(open.clone())
        );
        assert_eq!(
            plan_join(Some(&open), 30, at(60)),
            JoinPlan::Open {
                replacing: Some("w1".into()),
                closes_at: at(90)
            }
        );
        let sealed = OpenWindow {
            sealed: true,
            ..open
        };
        assert!(matches!(
            plan_join(Some(&sealed), 30, at(1)),
            JoinPlan::Open { .. }
        ));
        assert_eq!(
            plan_join(None, 5, at(0)),
            JoinPlan::Open {
                replacing: None,
                closes_at: at(5)
            }
        );
    }

    #[test]
    fn the_summary_counts_every_event_and_lists_the_kept_ones() {
        let event = |i: i64| DigestEvent {
            id: format!("e{i}"),
            title: format!("Comment {i}"),
            body: "b".into(),
            created_at: at(i),
            data: None,
        };
        let digest = Digest {
            key: "post-1".into(),
            window_seconds: 60,
            title: Some("{count} new comments on your post".into()),
        };
        let (title, body) = summary(&digest, &[event(1), event(2)], 12);
        assert_eq!(title, "12 new comments on your post");
        assert_eq!(body, "• Comment 1\n• Comment 2\nand 10 more");
        let plain = Digest {
            title: None,
            ..digest
        };
        assert_eq!(summary(&plain, &[event(1)], 1).0, "1 new: Comment 1");
    }

    #[test]
    fn a_bad_digest_names_its_field() {
        for (value, field) in [
            (json!({"key": "a b", "window_seconds": 60}), "d.key"),
            (json!({"key": "k", "window_seconds": 0}), "d.window_seconds"),
            (
                json!({"key": "k", "window_seconds": 604_801}),
                "d.window_seconds",
            ),
            (
                json!({"key": "k", "window_seconds": 60, "title": " "}),
                "d.title",
            ),
            (json!({"key": "k"}), "d.window_seconds"),
            (
                json!({"key": "k", "window_seconds": 60, "every": 1}),
                "d.every",
            ),
        ] {
            let err = Digest::parse(&value, "d").unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field), "{value}");
        }
        assert!(Digest::parse(&json!({"key": "k", "window_seconds": 604_800}), "d").is_ok());
    }
}
