//! `POST /v1/campaigns`: the request, validated against the clock; every error names its
//! field.

use jiff::{civil, SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::Value;

use super::zone::{earliest_instant, latest_instant};
use super::{DEFAULT_ROOM, MAX_INLINE_USERS, MAX_NAME_CHARS, MAX_RATE, MIN_RATE};
use crate::domain::ids::{RoomId, UserId};
use crate::domain::notification::{
    check_text, parse_channels, parse_data, Category, Channel, MAX_BODY_CHARS, MAX_TITLE_CHARS,
};
use crate::error::FieldError;

/// Who gets the campaign, as requested.
#[derive(Debug, Clone, PartialEq)]
pub enum Audience {
    Users(Vec<UserId>),
    S3 { bucket: String, key: String },
}

/// `POST /v1/campaigns` as sent: types checked by serde (an error names the field by its
/// path), the rest by `CampaignRequest::parse`. Absent and `null` are the same; the fields
/// with errors of their own (`audience`, `send_at`, …) are read on from JSON.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    channels: Option<Value>,
    #[serde(default)]
    category: Option<Category>,
    #[serde(default)]
    room_id: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    audience: Option<Value>,
    #[serde(default)]
    send_at: Option<Value>,
    #[serde(default)]
    local_time: Option<bool>,
    #[serde(default)]
    timezone: Option<Value>,
    #[serde(default)]
    rate_per_second: Option<Value>,
}

/// `POST /v1/campaigns`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignRequest {
    pub name: String,
    pub title: String,
    pub body: String,
    pub channels: Vec<Channel>,
    pub category: Category,
    pub room_id: RoomId,
    pub data: Option<Value>,
    pub audience: Audience,
    /// `None`: "now".
    pub send_at: Option<SendAt>,
    pub local_time: bool,
    /// Recipients without a timezone in their contact: this zone (`local_time` only).
    pub timezone: String,
    pub rate_per_second: Option<u32>,
}

/// `send_at` as given: the instant, and the wall-clock time `local_time` uses.
#[derive(Debug, Clone, PartialEq)]
pub struct SendAt {
    pub instant: Timestamp,
    pub wall: civil::DateTime,
}

impl CampaignRequest {
    /// Validates the JSON body against `now`; every error names its field.
    pub fn parse(body: &Value, now: Timestamp) -> Result<Self, FieldError> {
        let request: CampaignBody = FieldError::from_json(body, "")?;
        let text = |value: Option<String>, name: &str, max: usize| -> Result<String, FieldError> {
            let s = value.ok_or_else(|| {
                FieldError::new("missing_field", name, format!("{name} is required"))
            })?;
            check_text(&s, name, max)?;
            Ok(s)
        };
        let name = text(request.name, "name", MAX_NAME_CHARS)?;
        let title = text(request.title, "title", MAX_TITLE_CHARS)?;
        let body_text = text(request.body, "body", MAX_BODY_CHARS)?;
        let channels = parse_channels(request.channels.as_ref(), "channels")?;
        let category = request.category.unwrap_or(Category::Marketing);
        let room_id = RoomId::parse(
            request.room_id.unwrap_or_else(|| DEFAULT_ROOM.to_owned()),
            "room_id",
        )?;
        let data = parse_data(request.data.as_ref(), "data")?;
        let audience = parse_audience(request.audience.as_ref())?;
        let local_time = request.local_time.unwrap_or(false);
        let timezone = match &request.timezone {
            None | Some(Value::Null) => "UTC".to_owned(),
            Some(Value::String(zone)) if crate::domain::time::is_time_zone(zone) => zone.clone(),
            Some(other) => {
                return Err(FieldError::new(
                    "invalid_value",
                    "timezone",
                    format!("timezone {other} is not an IANA time zone such as Europe/Berlin"),
                ))
            }
        };
        let send_at = parse_send_at(request.send_at.as_ref(), local_time, now)?;
        let rate_per_second = match &request.rate_per_second {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(r) if (MIN_RATE as u64..=MAX_RATE as u64).contains(&r) => Some(r as u32),
                _ => {
                    return Err(FieldError::new(
                        "out_of_range",
                        "rate_per_second",
                        format!(
                            "rate_per_second must be a whole number from {MIN_RATE} to {MAX_RATE}"
                        ),
                    ))
                }
            },
        };
        Ok(Self {
            name,
            title,
            body: body_text,
            channels,
            category,
            room_id,
            data,
            audience,
            send_at,
            local_time,
            timezone,
            rate_per_second,
        })
    }

    /// When the campaign's schedule fires: `send_at`, or with `local_time` the first instant
    /// any recipient's clock shows it (UTC+14). `None`: now.
    pub fn first_instant(&self) -> Option<Timestamp> {
        let at = self.send_at.as_ref()?;
        Some(if self.local_time {
            earliest_instant(at.wall)
        } else {
            at.instant
        })
    }
}

fn parse_audience(value: Option<&Value>) -> Result<Audience, FieldError> {
    let missing = || {
        FieldError::new(
            "missing_field",
            "audience",
            "audience is required: {\"users\": [ids...]} or {\"s3\": \"s3://bucket/key\"}",
        )
    };
    let Some(Value::Object(obj)) = value else {
        return Err(missing());
    };
    // Exactly one of the two, as openapi.yaml's oneOf states it: no other key, not even null.
    if let Some(other) = obj.keys().find(|k| !matches!(k.as_str(), "users" | "s3")) {
        return Err(FieldError::new(
            "unknown_field",
            &format!("audience.{other}"),
            "audience takes users or s3 only",
        ));
    }
    match (obj.get("users"), obj.get("s3")) {
        (Some(_), Some(_)) => Err(FieldError::new(
            "invalid_value",
            "audience",
            "audience takes either users or s3, not both",
        )),
        (Some(Value::Array(users)), None) => {
            if users.is_empty() {
                return Err(FieldError::new(
                    "empty",
                    "audience.users",
                    "audience.users must list at least one user",
                ));
            }
            if users.len() > MAX_INLINE_USERS {
                return Err(FieldError::new(
                    "too_many",
                    "audience.users",
                    format!(
                        "audience.users lists {}; at most {MAX_INLINE_USERS} inline (use an S3 file for more)",
                        users.len()
                    ),
                ));
            }
            let mut seen = std::collections::HashSet::with_capacity(users.len());
            let mut parsed = Vec::with_capacity(users.len());
            for (i, user) in users.iter().enumerate() {
                let field = format!("audience.users[{i}]");
                let Some(id) = user.as_str() else {
                    return Err(FieldError::new(
                        "invalid_type",
                        &field,
                        format!("{field} must be a string"),
                    ));
                };
                let id = UserId::parse(id, &field)?;
                // A user listed twice gets one notification.
                if seen.insert(id.clone()) {
                    parsed.push(id);
                }
            }
            Ok(Audience::Users(parsed))
        }
        (Some(_), None) => Err(FieldError::new(
            "invalid_type",
            "audience.users",
            "audience.users must be an array of user ids",
        )),
        (None, Some(Value::String(uri))) => {
            let parsed = uri
                .strip_prefix("s3://")
                .and_then(|rest| rest.split_once('/'))
                .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty());
            match parsed {
                Some((bucket, key)) => Ok(Audience::S3 {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                }),
                None => Err(FieldError::new(
                    "invalid_value",
                    "audience.s3",
                    "audience.s3 must look like s3://bucket/key",
                )),
            }
        }
        (None, Some(_)) => Err(FieldError::new(
            "invalid_type",
            "audience.s3",
            "audience.s3 must be a string s3://bucket/key",
        )),
        (None, None) => Err(missing()),
    }
}

/// openapi.yaml's `send_at` pattern: "now", or RFC 3339 with an offset as the contract
/// writes it (upper-case `T` and `Z`, seconds, at most nanoseconds). jiff reads more forms.
pub const SEND_AT_PATTERN: &str = concat!(
    r"^(now|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?",
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))$"
);

/// Whether `text` has the shape of `SEND_AT_PATTERN`'s time (the calendar is jiff's to check).
fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    let fixed = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !fixed {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return false;
        }
        rest = &fraction[n..];
    }
    match rest {
        [b'Z'] => true,
        // RFC 3339's offsets: hours 00-23, minutes 00-59 (jiff reads up to 25:59).
        [sign, h1, h2, b':', m1, m2] => {
            matches!(sign, b'+' | b'-')
                && matches!((h1, h2), (b'0'..=b'1', b'0'..=b'9') | (b'2', b'0'..=b'3'))
                && matches!((m1, m2), (b'0'..=b'5', b'0'..=b'9'))
        }
        _ => false,
    }
}

fn parse_send_at(
    value: Option<&Value>,
    local_time: bool,
    now: Timestamp,
) -> Result<Option<SendAt>, FieldError> {
    let text = match value {
        Some(Value::String(s)) => s,
        None | Some(Value::Null) => {
            return Err(FieldError::new(
                "missing_field",
                "send_at",
                "send_at is required: an RFC 3339 time with an offset, or \"now\"",
            ))
        }
        Some(_) => {
            return Err(FieldError::new(
                "invalid_type",
                "send_at",
                "send_at must be a string",
            ))
        }
    };
    if text == "now" {
        if local_time {
            return Err(FieldError::new(
                "invalid_value",
                "send_at",
                "local_time needs a wall-clock send_at, not \"now\"",
            ));
        }
        return Ok(None);
    }
    let zoned = is_rfc3339(text)
        .then(|| text.parse::<Timestamp>().ok())
        .flatten()
        .and_then(|instant| {
            // The offset as written keeps the wall-clock time the caller meant.
            let offset = jiff::fmt::temporal::Pieces::parse(text.as_str()).ok()?.offset()?;
            let offset = match offset {
                jiff::fmt::temporal::PiecesOffset::Numeric(n) => n.offset(),
                _ => jiff::tz::Offset::UTC,
            };
            Some((instant, offset.to_datetime(instant)))
        })
        .ok_or_else(|| {
            FieldError::new(
                "invalid_value",
                "send_at",
                format!("send_at {text:?} is not an RFC 3339 time with an offset, such as 2026-12-01T09:00:00+01:00"),
            )
        })?;
    let (instant, wall) = zoned;
    // With local_time, the last zone (UTC-12) must still be ahead of now.
    let last = if local_time {
        latest_instant(wall)
    } else {
        instant
    };
    if last < now - SignedDuration::from_secs(60) {
        return Err(FieldError::new(
            "in_the_past",
            "send_at",
            format!("send_at {text} is in the past"),
        ));
    }
    Ok(Some(SendAt { instant, wall }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::campaign::testing::*;

    #[test]
    fn a_valid_request_defaults_to_marketing_and_drops_repeated_users() {
        let r = CampaignRequest::parse(&request(json!({})), now()).unwrap();
        assert_eq!(r.category, Category::Marketing);
        assert_eq!(r.room_id.as_str(), DEFAULT_ROOM);
        assert_eq!(
            r.audience,
            Audience::Users(vec![
                UserId::parse("u1", "u").unwrap(),
                UserId::parse("u2", "u").unwrap()
            ])
        );
        let at = r.send_at.unwrap();
        assert_eq!(at.instant, "2026-03-28T08:00:00Z".parse().unwrap());
        assert_eq!(at.wall.to_string(), "2026-03-28T09:00:00");
    }

    /// The forms openapi.yaml states and no others: jiff alone would read a lower-case `t`,
    /// an offset of +24:00 or an audience with a stray key.
    #[test]
    fn send_at_and_audience_are_what_the_contract_states() {
        for send_at in [
            "2026-03-28T09:00:00+24:00",
            "2026-03-28T09:00:00+01:60",
            "2026-03-28t09:00:00Z",
            "2026-03-28 09:00:00Z",
            "2026-03-28T09:00Z",
            "2026-03-28T09:00:00+0100",
        ] {
            assert_eq!(
                field_of(request(json!({ "send_at": send_at }))),
                "send_at",
                "{send_at}"
            );
        }
        assert!(CampaignRequest::parse(
            &request(json!({"send_at": "2026-03-28T09:00:00.5+01:00"})),
            now()
        )
        .is_ok());
        assert_eq!(
            field_of(request(json!({"audience": {"users": ["u1"], "s3": null}}))),
            "audience"
        );
        assert_eq!(
            field_of(request(json!({"audience": {"users": ["u1"], "list": "x"}}))),
            "audience.list"
        );
    }

    #[test]
    fn bad_input_names_its_field() {
        assert_eq!(
            field_of(request(json!({"send_at": "2026-03-27T11:00:00Z"}))),
            "send_at"
        );
        assert_eq!(field_of(request(json!({"send_at": "tomorrow"}))), "send_at");
        assert_eq!(
            field_of(request(json!({"audience": {"users": []}}))),
            "audience.users"
        );
        assert_eq!(field_of(request(json!({"audience": null}))), "audience");
        assert_eq!(
            field_of(request(json!({"audience": {"users": ["ok", "bad/id"]}}))),
            "audience.users[1]"
        );
        assert_eq!(
            field_of(request(json!({"audience": {"s3": "http://x"}}))),
            "audience.s3"
        );
        assert_eq!(
            field_of(request(json!({"channels": ["fax"]}))),
            "channels[0]"
        );
        assert_eq!(
            field_of(request(json!({"rate_per_second": 0}))),
            "rate_per_second"
        );
        assert_eq!(
            field_of(request(json!({"rate_per_second": 10001}))),
            "rate_per_second"
        );
        assert_eq!(
            field_of(request(json!({"timezone": "Mars/Olympus"}))),
            "timezone"
        );
        assert_eq!(field_of(request(json!({"colour": "red"}))), "colour");
        assert_eq!(field_of(request(json!({"title": null}))), "title");
        assert_eq!(field_of(request(json!({"title": 7}))), "title");
        assert_eq!(field_of(request(json!({"category": 1}))), "category");
        assert_eq!(field_of(request(json!({"category": "loud"}))), "category");
        assert_eq!(field_of(request(json!({"room_id": ["r"]}))), "room_id");
        assert_eq!(field_of(request(json!({"room_id": "no/slash"}))), "room_id");
        let many: Vec<String> = (0..=MAX_INLINE_USERS).map(|i| format!("u{i}")).collect();
        assert_eq!(
            field_of(request(json!({"audience": {"users": many}}))),
            "audience.users"
        );
    }

    #[test]
    fn local_time_accepts_a_time_that_has_passed_in_some_zones_only() {
        // 12:30 wall clock: past in UTC+0 (now is 12:00Z + ...), still ahead in UTC-12.
        let body = request(json!({"send_at": "2026-03-27T11:30:00Z", "local_time": true}));
        assert!(CampaignRequest::parse(&body, now()).is_ok());
        let body = request(json!({"send_at": "2026-03-27T11:30:00Z"}));
        assert!(CampaignRequest::parse(&body, now()).is_err());
        let body = request(json!({"send_at": "now", "local_time": true}));
        assert!(CampaignRequest::parse(&body, now()).is_err());
    }
}
