//! Campaigns: one API call that sends one notification to every user of an audience, at a
//! chosen time (or each recipient's local time) and rate. This module holds the request's
//! validation, the stored campaign, the work items the fan-out passes along its queue, the
//! progress marks consumers leave, and the planning of a page (who goes now, with which
//! delay, and who waits for a later instant). No AWS here.

use std::collections::BTreeMap;

use jiff::{civil, tz::TimeZone, SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use super::audience::{
    audience_header, read_audience, AudienceFile, AudienceRead, AudienceUnreadable,
};
use super::ids::{CampaignId, NotificationId, RoomId, TenantId, UserId};
use super::notification::{
    check_text, parse_category, parse_channels, parse_data, Category, Channel, Notification,
    MAX_BODY_CHARS, MAX_TITLE_CHARS,
};
use crate::domain::delivery::SkipReason;
use crate::error::FieldError;

/// Most users an inline audience may list (larger audiences come from S3).
pub const MAX_INLINE_USERS: usize = 10_000;
/// Users per stored chunk of an inline audience (128-char ids: well under DynamoDB's 400 KB).
pub const INLINE_CHUNK: usize = 1_000;
/// Users one page of the fan-out enqueues at most.
pub const PAGE_USERS: usize = 500;
/// `rate_per_second` bounds.
pub const MIN_RATE: u32 = 1;
pub const MAX_RATE: u32 = 10_000;
/// SQS's longest message delay.
pub const MAX_DELAY_SECONDS: u32 = 900;
/// A recipient whose instant is further ahead than this is held for a release schedule.
pub const HOLD_BEYOND_SECONDS: i64 = 600;
/// A release fires this long before its instant: its messages then wait out the rest as an
/// SQS delay, so they arrive on time even if the schedule fires a little late.
pub const RELEASE_LEAD_SECONDS: i64 = 300;
/// Room of campaign notifications that name none.
pub const DEFAULT_ROOM: &str = "marketing";
const MAX_NAME_CHARS: usize = 200;

/// Where a campaign's fan-out stands. `done` is decided when read (see `Campaign::status_now`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignStatus {
    Scheduled,
    Running,
    Done,
    Cancelled,
    Failed,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Running => "running",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }
}

/// Who gets the campaign, as requested.
#[derive(Debug, Clone, PartialEq)]
pub enum Audience {
    Users(Vec<UserId>),
    S3 { bucket: String, key: String },
}

/// Who gets the campaign, as stored (inline users live in chunks of their own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum AudienceSpec {
    Inline {
        users: u64,
        chunks: u32,
    },
    S3 {
        bucket: String,
        key: String,
        /// CSV: the `user_id` column (the first line is the header); plain list: none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        column: Option<usize>,
        /// The object's ETag when the campaign was created: every read asks for this version
        /// (`If-Match`). `None`: stored before files were pinned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        etag: Option<String>,
    },
}

impl AudienceSpec {
    /// Users known up front (inline); an S3 list is counted as it is read.
    pub fn known_size(&self) -> Option<u64> {
        match self {
            Self::Inline { users, .. } => Some(*users),
            Self::S3 { .. } => None,
        }
    }
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
        let Some(obj) = body.as_object() else {
            return Err(FieldError::body(
                "invalid_type",
                "the body must be a JSON object",
            ));
        };
        const KNOWN: [&str; 12] = [
            "name",
            "title",
            "body",
            "channels",
            "category",
            "room_id",
            "data",
            "audience",
            "send_at",
            "local_time",
            "timezone",
            "rate_per_second",
        ];
        if let Some(unknown) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(FieldError::new(
                "unknown_field",
                unknown,
                format!(
                    "unknown field {unknown:?}; expected one of {}",
                    KNOWN.join(", ")
                ),
            ));
        }
        let string = |name: &str| -> Result<Option<String>, FieldError> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(FieldError::new(
                    "invalid_type",
                    name,
                    format!("{name} must be a string"),
                )),
            }
        };
        let text = |name: &str, max: usize| -> Result<String, FieldError> {
            let s = string(name)?.ok_or_else(|| {
                FieldError::new("missing_field", name, format!("{name} is required"))
            })?;
            check_text(&s, name, max)?;
            Ok(s)
        };
        let name = text("name", MAX_NAME_CHARS)?;
        let title = text("title", MAX_TITLE_CHARS)?;
        let body_text = text("body", MAX_BODY_CHARS)?;
        let channels = parse_channels(obj.get("channels"), "channels")?;
        let category = match string("category")? {
            None => Category::Marketing,
            Some(s) => parse_category(&s, "category")?,
        };
        let room_id = RoomId::parse(
            string("room_id")?.unwrap_or_else(|| DEFAULT_ROOM.to_owned()),
            "room_id",
        )?;
        let data = parse_data(obj.get("data"), "data")?;
        let audience = parse_audience(obj.get("audience"))?;
        let local_time = match obj.get("local_time") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(FieldError::new(
                    "invalid_type",
                    "local_time",
                    "local_time must be true or false",
                ))
            }
        };
        let timezone = match obj.get("timezone") {
            None | Some(Value::Null) => "UTC".to_owned(),
            Some(Value::String(zone)) if TimeZone::get(zone).is_ok() => zone.clone(),
            Some(other) => {
                return Err(FieldError::new(
                    "invalid_value",
                    "timezone",
                    format!("timezone {other} is not an IANA time zone such as Europe/Berlin"),
                ))
            }
        };
        let send_at = parse_send_at(obj.get("send_at"), local_time, now)?;
        let rate_per_second = match obj.get("rate_per_second") {
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
    let zoned = text
        .parse::<Timestamp>()
        .ok()
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

/// The instant `wall` is reached in the zone furthest ahead (UTC+14).
pub fn earliest_instant(wall: civil::DateTime) -> Timestamp {
    fixed_instant(wall, 14)
}

/// The instant `wall` is reached in the zone furthest behind (UTC-12).
pub fn latest_instant(wall: civil::DateTime) -> Timestamp {
    fixed_instant(wall, -12)
}

fn fixed_instant(wall: civil::DateTime, hours: i8) -> Timestamp {
    let zone = TimeZone::fixed(jiff::tz::offset(hours));
    zone.to_ambiguous_timestamp(wall)
        .compatible()
        .unwrap_or(Timestamp::MAX)
}

/// When `wall` is reached in `zone` (an IANA name; unknown names fall back to `fallback`).
/// A wall time skipped by a DST change is sent at the same distance after the gap, and one
/// that happens twice at its first occurrence (jiff's "compatible" rule, as RFC 5545).
pub fn local_instant(wall: civil::DateTime, zone: Option<&str>, fallback: &str) -> Timestamp {
    let tz = zone
        .and_then(|z| TimeZone::get(z).ok())
        .or_else(|| TimeZone::get(fallback).ok())
        .unwrap_or(TimeZone::UTC);
    tz.to_ambiguous_timestamp(wall)
        .compatible()
        .unwrap_or(Timestamp::MAX)
}

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    pub tenant: TenantId,
    pub id: CampaignId,
    pub name: String,
    pub title: String,
    pub body: String,
    pub channels: Vec<Channel>,
    pub category: Category,
    pub room_id: RoomId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    pub audience: AudienceSpec,
    /// RFC 3339 as given (the creation time for "now").
    pub send_at: String,
    /// The wall-clock time of `send_at` (`local_time` sends at this in each zone).
    pub send_at_wall: String,
    #[serde(default)]
    pub local_time: bool,
    pub timezone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<u32>,
    pub status: CampaignStatus,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Every recipient enqueued or held: the fan-out is over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fanned_out_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// `local_time`: the instants (RFC 3339) of its release schedules, as pages held
    /// recipients for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<String>,
}

impl Campaign {
    /// The campaign `request` describes, before it is stored.
    pub fn new(
        tenant: TenantId,
        id: CampaignId,
        request: &CampaignRequest,
        audience: AudienceSpec,
        now: Timestamp,
    ) -> Self {
        let (send_at, wall) = match &request.send_at {
            Some(at) => (format!("{:.0}", at.instant), at.wall),
            None => (format!("{now:.3}"), TimeZone::UTC.to_datetime(now)),
        };
        Self {
            tenant,
            id,
            name: request.name.clone(),
            title: request.title.clone(),
            body: request.body.clone(),
            channels: request.channels.clone(),
            category: request.category,
            room_id: request.room_id.clone(),
            data: request.data.clone(),
            audience,
            send_at,
            send_at_wall: wall.to_string(),
            local_time: request.local_time,
            timezone: request.timezone.clone(),
            rate_per_second: request.rate_per_second,
            status: CampaignStatus::Scheduled,
            created_at: format!("{now:.3}"),
            started_at: None,
            fanned_out_at: None,
            cancelled_at: None,
            failure: None,
            releases: Vec::new(),
        }
    }

    pub fn wall(&self) -> Option<civil::DateTime> {
        self.send_at_wall.parse().ok()
    }

    /// When its first recipient is due: `send_at`, or with `local_time` the instant its wall
    /// time comes first on Earth (UTC+14).
    pub fn first_instant(&self) -> Option<Timestamp> {
        if self.local_time {
            self.wall().map(earliest_instant)
        } else {
            self.send_at.parse().ok()
        }
    }

    /// Users one page takes: at a set rate, about a minute's worth, so a page's delays stay
    /// far below SQS's 15-minute limit.
    pub fn page_users(&self) -> usize {
        match self.rate_per_second {
            Some(rate) => (rate as usize * 60).clamp(1, PAGE_USERS),
            None => PAGE_USERS,
        }
    }

    /// The status a reader sees: a running campaign whose fan-out is over and whose every
    /// notification is committed or skipped is done.
    pub fn status_now(&self, progress: &Progress) -> CampaignStatus {
        match self.status {
            CampaignStatus::Running
                if self.fanned_out_at.is_some()
                    && progress.held == 0
                    && progress.settled >= progress.enqueued =>
            {
                CampaignStatus::Done
            }
            status => status,
        }
    }

    /// The notification this campaign sends `user`. Its id is the same on every attempt
    /// (campaign + time), and unique within the user's inbox: a page handled twice counts
    /// once through the inbox's exactly-once path.
    pub fn notification_for(
        &self,
        user: UserId,
        page: u32,
        slot: u32,
        created_at: &str,
    ) -> Notification {
        Notification {
            tenant: self.tenant.clone(),
            id: self.notification_id(),
            user_id: user,
            room_id: self.room_id.clone(),
            title: self.title.clone(),
            body: self.body.clone(),
            channels: self.channels.clone(),
            category: self.category,
            data: self.data.clone(),
            created_at: created_at.to_owned(),
            log_key: None,
            correlation_id: Some(format!("campaign:{}", self.id)),
            campaign: Some(CampaignRef {
                id: self.id.clone(),
                page,
                slot,
            }),
        }
    }

    /// A ULID whose time is `send_at` and whose randomness comes from the campaign id: time
    /// ordered in the inbox, and the same for every user and every retry.
    pub fn notification_id(&self) -> NotificationId {
        let millis = self
            .send_at
            .parse::<Timestamp>()
            .map(|t| t.as_millisecond().max(0) as u64)
            .unwrap_or(0);
        let digest = fnv128(self.id.as_str().as_bytes());
        let ulid = ulid::Ulid::from_parts(millis, digest);
        NotificationId::parse(ulid.to_string(), "id").unwrap_or_else(|_| NotificationId::generate())
    }
}

fn fnv128(bytes: &[u8]) -> u128 {
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013B;
    bytes
        .iter()
        .fold(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d, |h, b| {
            (h ^ u128::from(*b)).wrapping_mul(PRIME)
        })
}

/// Which campaign (and where in its fan-out) a notification or delivery job came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CampaignRef {
    pub id: CampaignId,
    pub page: u32,
    pub slot: u32,
}

/// What a consumer did with one campaign notification. Each mark names a set of slots (per
/// page) and a counter: the counter moves only when the slot is new to its set, so marking
/// twice (a redelivery) counts once, and progress is read from the counters alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProgressMark {
    /// The writer took it: in the inbox, and its delivery jobs queued.
    Committed,
    /// The writer did not take it (campaign cancelled, user opted out): no inbox item, no
    /// delivery.
    Dropped(SkipReason),
    /// A channel sent it.
    Sent(Channel),
    /// A channel did not send it, on purpose.
    Skipped(Channel, SkipReason),
    /// A channel failed for good (its job is in the DLQ with the reason).
    Failed(Channel),
}

impl ProgressMark {
    /// The set of slots that makes this mark count once: the writer's outcome (one per
    /// notification), or one outcome per channel.
    pub fn dedupe_set(self) -> &'static str {
        match self {
            Self::Committed | Self::Dropped(_) => "settled",
            Self::Sent(c) | Self::Skipped(c, _) | Self::Failed(c) => match c {
                Channel::Inbox => "d_inbox",
                Channel::Email => "d_email",
                Channel::Sms => "d_sms",
                Channel::Push => "d_push",
            },
        }
    }

    /// The counter this mark adds one to.
    pub fn counter(self) -> String {
        match self {
            Self::Committed => "committed".into(),
            Self::Dropped(reason) => format!("dropped_{}", reason.as_str()),
            Self::Sent(c) => format!("sent_{}", c.as_str()),
            Self::Skipped(_, reason) => format!("skipped_{}", reason.as_str()),
            Self::Failed(_) => "failed".into(),
        }
    }
}

/// How many counter items a campaign's progress is spread over (a page's marks go to shard
/// `page % COUNTER_SHARDS`): reading progress reads these and the campaign, whatever its size.
pub const COUNTER_SHARDS: u32 = 16;

/// A campaign's progress counters by name (`ProgressMark::counter`, plus `enqueued`,
/// `audience`, `held`, `invalid`), summed over wherever they are kept.
pub type Counters = BTreeMap<String, u64>;

/// Exact counts, read from the campaign's counters: the same few items for 100 users or 10 M.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Users read from the audience so far (all of them once the fan-out is over).
    pub audience: u64,
    pub enqueued: u64,
    pub committed: u64,
    pub sent: BTreeMap<Channel, u64>,
    /// Sends not made on purpose (the inbox's or a channel's), by reason in `skipped_by`.
    pub skipped: u64,
    /// `cancelled`, `opted_out`, `suppressed`, `no_address`.
    pub skipped_by: BTreeMap<String, u64>,
    pub failed: u64,
    /// Recipients waiting for their local time (`local_time`): enqueued when it comes. Once
    /// the campaign is cancelled they never will be, and count as skipped (cancelled).
    pub held: u64,
    /// Audience file lines that were not a user id: skipped (and logged with their offset).
    pub invalid: u64,
    /// Notifications the writer took or dropped, each once: the fan-out is done when this
    /// reaches `enqueued`.
    #[serde(skip)]
    pub settled: u64,
}

impl Progress {
    /// Progress from the counters, as the campaign's `status` makes them read.
    pub fn from_counters(
        counters: &Counters,
        known_audience: Option<u64>,
        status: CampaignStatus,
    ) -> Self {
        let get = |name: &str| counters.get(name).copied().unwrap_or(0);
        let mut progress = Progress {
            audience: known_audience.unwrap_or_else(|| get("audience")),
            enqueued: get("enqueued"),
            committed: get("committed"),
            failed: get("failed"),
            held: get("held"),
            invalid: get("invalid"),
            ..Progress::default()
        };
        for channel in Channel::ALL {
            let sent = get(&format!("sent_{}", channel.as_str()));
            if sent > 0 {
                progress.sent.insert(channel, sent);
            }
        }
        for reason in SkipReason::ALL {
            let dropped = get(&format!("dropped_{}", reason.as_str()));
            let skipped = get(&format!("skipped_{}", reason.as_str()));
            progress.settled += dropped;
            if dropped + skipped > 0 {
                progress
                    .skipped_by
                    .insert(reason.as_str().to_owned(), dropped + skipped);
            }
            progress.skipped += dropped + skipped;
        }
        progress.settled += progress.committed;
        if status == CampaignStatus::Cancelled && progress.held > 0 {
            // Held recipients are never released after a cancel.
            *progress
                .skipped_by
                .entry(SkipReason::Cancelled.as_str().to_owned())
                .or_default() += progress.held;
            progress.skipped += progress.held;
            progress.held = 0;
        }
        progress
    }

    /// Recipients enqueued whose notification the writer has not yet taken or dropped.
    pub fn pending(&self) -> u64 {
        self.enqueued.saturating_sub(self.settled)
    }
}

/// Work on the campaign queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CampaignWork {
    /// From the campaign's schedule: begin the fan-out.
    Start {
        tenant: TenantId,
        campaign: CampaignId,
    },
    /// Read the audience from `cursor` and enqueue one page of users.
    Page {
        tenant: TenantId,
        campaign: CampaignId,
        page: u32,
        cursor: u64,
    },
    /// From a release schedule: enqueue the users held for instant `at`, a group at a time
    /// (`after`: the key of the group the previous part released).
    Release {
        tenant: TenantId,
        campaign: CampaignId,
        at: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
    },
}

impl CampaignWork {
    pub fn tenant(&self) -> &TenantId {
        match self {
            Self::Start { tenant, .. }
            | Self::Page { tenant, .. }
            | Self::Release { tenant, .. } => tenant,
        }
    }

    pub fn campaign(&self) -> &CampaignId {
        match self {
            Self::Start { campaign, .. }
            | Self::Page { campaign, .. }
            | Self::Release { campaign, .. } => campaign,
        }
    }
}

/// One recipient of a page, and where they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub user: UserId,
    pub slot: u32,
    /// From the contact (`local_time` only).
    pub timezone: Option<String>,
}

/// What a page does with its recipients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PagePlan {
    /// Enqueue now, each with this SQS delay in seconds.
    pub now: Vec<(Recipient, u32)>,
    /// Hold until a release at this instant (minute precision).
    pub held: BTreeMap<Timestamp, Vec<Recipient>>,
}

/// Plans a page at `now`: with a rate, the page's users are spread one `1/rate` apart; with
/// `local_time`, each waits for their own instant, up to `HOLD_BEYOND_SECONDS` as a delay and
/// beyond that held for a release.
pub fn plan_page(campaign: &Campaign, recipients: Vec<Recipient>, now: Timestamp) -> PagePlan {
    let mut plan = PagePlan::default();
    let wall = campaign.wall().filter(|_| campaign.local_time);
    for (index, recipient) in recipients.into_iter().enumerate() {
        let pace = campaign
            .rate_per_second
            .map_or(0, |rate| (index as u64 / u64::from(rate.max(1))) as i64);
        let wait = match wall {
            Some(wall) => {
                let at = local_instant(wall, recipient.timezone.as_deref(), &campaign.timezone);
                let seconds = now.duration_until(at).as_secs();
                if seconds > HOLD_BEYOND_SECONDS {
                    let minute = at
                        .round(
                            jiff::TimestampRound::new()
                                .smallest(jiff::Unit::Minute)
                                .mode(jiff::RoundMode::Floor),
                        )
                        .unwrap_or(at);
                    plan.held.entry(minute).or_default().push(recipient);
                    continue;
                }
                seconds.max(0)
            }
            None => 0,
        };
        let delay = (wait + pace).clamp(0, i64::from(MAX_DELAY_SECONDS)) as u32;
        plan.now.push((recipient, delay));
    }
    plan
}

/// The SQS delay of a held recipient released at `now` for `at`.
pub fn release_delay(at: Timestamp, now: Timestamp) -> u32 {
    now.duration_until(at)
        .as_secs()
        .clamp(0, i64::from(MAX_DELAY_SECONDS)) as u32
}

/// Delay before the page after one of `users` users: at a set rate, the time the page's
/// users take to go out, so a campaign never runs ahead of its rate.
pub fn next_page_delay(campaign: &Campaign, users: usize) -> u32 {
    campaign.rate_per_second.map_or(0, |rate| {
        (users as u64)
            .div_ceil(u64::from(rate.max(1)))
            .min(u64::from(MAX_DELAY_SECONDS)) as u32
    })
}

/// The name of the one-time schedule that releases `campaign`'s users held for `at`
/// (schedule names are unique: creating it twice is recognised).
pub fn release_schedule_name(campaign: &CampaignId, at: Timestamp) -> String {
    format!("herald-{}-r{}", campaign, at.as_second())
}

/// The name of the schedule that starts `campaign`.
pub fn start_schedule_name(campaign: &CampaignId) -> String {
    format!("herald-{campaign}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-03-27T12:00:00Z".parse().unwrap()
    }

    fn request(extra: Value) -> Value {
        let mut body = json!({
            "name": "spring", "title": "Spring sale", "body": "20% off", "channels": ["inbox"],
            "audience": {"users": ["u1", "u2", "u1"]}, "send_at": "2026-03-28T09:00:00+01:00"
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    }

    fn field_of(body: Value) -> String {
        CampaignRequest::parse(&body, now())
            .unwrap_err()
            .field
            .unwrap_or_default()
    }

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

    #[test]
    fn local_instants_across_a_dst_change_in_three_zones() {
        // Europe switches to summer time on 2026-03-29 at 01:00 UTC; New York already did on
        // 2026-03-08; Tokyo has no DST.
        let wall: civil::DateTime = "2026-03-29T09:00:00".parse().unwrap();
        let at = |zone| local_instant(wall, Some(zone), "UTC").to_string();
        assert_eq!(at("Europe/Berlin"), "2026-03-29T07:00:00Z", "CEST, UTC+2");
        assert_eq!(at("America/New_York"), "2026-03-29T13:00:00Z", "EDT, UTC-4");
        assert_eq!(at("Asia/Tokyo"), "2026-03-29T00:00:00Z", "JST, UTC+9");
        // The day before, Berlin was still on UTC+1.
        let before: civil::DateTime = "2026-03-28T09:00:00".parse().unwrap();
        assert_eq!(
            local_instant(before, Some("Europe/Berlin"), "UTC").to_string(),
            "2026-03-28T08:00:00Z"
        );
        // 02:30 does not exist in Berlin that night: sent at 03:30 CEST.
        let gap: civil::DateTime = "2026-03-29T02:30:00".parse().unwrap();
        assert_eq!(
            local_instant(gap, Some("Europe/Berlin"), "UTC").to_string(),
            "2026-03-29T01:30:00Z"
        );
        // 02:30 happens twice on 2026-10-25: the first one.
        let fold: civil::DateTime = "2026-10-25T02:30:00".parse().unwrap();
        assert_eq!(
            local_instant(fold, Some("Europe/Berlin"), "UTC").to_string(),
            "2026-10-25T00:30:00Z"
        );
        // Unknown or missing zones use the campaign's.
        assert_eq!(
            local_instant(wall, None, "Asia/Tokyo"),
            local_instant(wall, Some("Nowhere/Else"), "Asia/Tokyo")
        );
    }

    fn campaign(extra: Value) -> Campaign {
        let request = CampaignRequest::parse(&request(extra), now()).unwrap();
        Campaign::new(
            TenantId::parse("t", "t").unwrap(),
            CampaignId::parse("01KCAMPAIGN0000000000000000", "id").unwrap(),
            &request,
            AudienceSpec::Inline {
                users: 2,
                chunks: 1,
            },
            now(),
        )
    }

    fn recipients(zones: &[Option<&str>]) -> Vec<Recipient> {
        zones
            .iter()
            .enumerate()
            .map(|(i, z)| Recipient {
                user: UserId::parse(format!("u{i}"), "u").unwrap(),
                slot: i as u32,
                timezone: z.map(str::to_owned),
            })
            .collect()
    }

    #[test]
    fn a_page_waits_for_each_recipients_local_time() {
        let c = campaign(json!({"send_at": "2026-03-29T09:00:00Z", "local_time": true}));
        // 06:55 UTC: Berlin's 09:00 (07:00Z) is 5 minutes away, Tokyo's has passed, New
        // York's (13:00Z) is hours away.
        let at: Timestamp = "2026-03-29T06:55:00Z".parse().unwrap();
        let plan = plan_page(
            &c,
            recipients(&[
                Some("Europe/Berlin"),
                Some("Asia/Tokyo"),
                Some("America/New_York"),
            ]),
            at,
        );
        let now: Vec<(u32, u32)> = plan.now.iter().map(|(r, d)| (r.slot, *d)).collect();
        assert_eq!(now, vec![(0, 300), (1, 0)]);
        let held: Vec<(String, Vec<u32>)> = plan
            .held
            .iter()
            .map(|(t, rs)| (t.to_string(), rs.iter().map(|r| r.slot).collect()))
            .collect();
        assert_eq!(held, vec![("2026-03-29T13:00:00Z".to_owned(), vec![2])]);
    }

    #[test]
    fn a_rate_spreads_a_page_and_paces_the_next() {
        let c = campaign(json!({"rate_per_second": 2}));
        assert_eq!(c.page_users(), 120);
        let plan = plan_page(&c, recipients(&[None; 5]), now());
        let delays: Vec<u32> = plan.now.iter().map(|(_, d)| *d).collect();
        assert_eq!(delays, vec![0, 0, 1, 1, 2]);
        assert_eq!(next_page_delay(&c, 120), 60);
        let unpaced = campaign(json!({}));
        assert_eq!(unpaced.page_users(), PAGE_USERS);
        assert_eq!(next_page_delay(&unpaced, PAGE_USERS), 0);
    }

    #[test]
    fn a_stored_campaign_knows_when_its_first_recipient_is_due() {
        let plain = campaign(json!({"send_at": "2026-03-29T09:00:00+02:00"}));
        assert_eq!(
            plain.first_instant(),
            Some("2026-03-29T07:00:00Z".parse().unwrap())
        );
        // local_time: 09:00 comes first at UTC+14, the evening before in UTC.
        let local = campaign(json!({"send_at": "2026-03-29T09:00:00+02:00", "local_time": true}));
        assert_eq!(
            local.first_instant(),
            Some("2026-03-28T19:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn notification_ids_are_deterministic_and_differ_between_campaigns() {
        let a = campaign(json!({}));
        let mut b = a.clone();
        b.id = CampaignId::parse("01KCAMPAIGN0000000000000001", "id").unwrap();
        assert_eq!(a.notification_id(), a.clone().notification_id());
        assert_ne!(a.notification_id(), b.notification_id());
        let n = a.notification_for(
            UserId::parse("u1", "u").unwrap(),
            3,
            7,
            "2026-03-27T12:00:00Z",
        );
        assert_eq!(
            n.log_key(),
            n.id.as_str(),
            "the id is the time-ordered log key"
        );
        assert_eq!(n.campaign.as_ref().map(|c| (c.page, c.slot)), Some((3, 7)));
        assert!(n.check().is_ok());
    }
}
