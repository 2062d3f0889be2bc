//! The stored campaign, the work items its queue carries, and its progress: the marks
//! consumers leave and the counts read from them.

use std::collections::BTreeMap;

use jiff::{civil, tz::TimeZone, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::request::CampaignRequest;
use super::zone::earliest_instant;
use super::PAGE_USERS;
use crate::domain::delivery::SkipReason;
use crate::domain::ids::{CampaignId, CampaignRef, NotificationId, RoomId, TenantId, UserId};
use crate::domain::notification::{Category, Channel, Notification};
use crate::domain::time;

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
    /// As given, to the second (the creation time for "now").
    #[serde(with = "time::as_compact")]
    pub send_at: Timestamp,
    /// The wall-clock time of `send_at` (`local_time` sends at this in each zone).
    #[serde(with = "time::as_civil")]
    pub send_at_wall: civil::DateTime,
    #[serde(default)]
    pub local_time: bool,
    pub timezone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<u32>,
    pub status: CampaignStatus,
    #[serde(with = "time::as_millis")]
    pub created_at: Timestamp,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::as_millis_option"
    )]
    pub started_at: Option<Timestamp>,
    /// Every recipient enqueued or held: the fan-out is over.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::as_millis_option"
    )]
    pub fanned_out_at: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::as_millis_option"
    )]
    pub cancelled_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// `local_time`: the instants of its release schedules, as pages held recipients for them.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "time::as_compact_vec"
    )]
    pub releases: Vec<Timestamp>,
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
        // Kept to the second as given (to the millisecond for "now"): the notification id
        // is made from it and must be the same after a round trip through storage.
        let (send_at, wall) = match &request.send_at {
            Some(at) => (time::truncated(at.instant, jiff::Unit::Second), at.wall),
            None => (
                time::truncated(now, jiff::Unit::Millisecond),
                TimeZone::UTC.to_datetime(now),
            ),
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
            send_at_wall: wall,
            local_time: request.local_time,
            timezone: request.timezone.clone(),
            rate_per_second: request.rate_per_second,
            status: CampaignStatus::Scheduled,
            created_at: time::truncated(now, jiff::Unit::Millisecond),
            started_at: None,
            fanned_out_at: None,
            cancelled_at: None,
            failure: None,
            releases: Vec::new(),
        }
    }

    /// When its first recipient is due: `send_at`, or with `local_time` the instant its wall
    /// time comes first on Earth (UTC+14).
    pub fn first_instant(&self) -> Option<Timestamp> {
        if self.local_time {
            Some(earliest_instant(self.send_at_wall))
        } else {
            Some(self.send_at)
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
        created_at: Timestamp,
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
            created_at,
            log_key: None,
            correlation_id: Some(format!("campaign:{}", self.id)),
            campaign: Some(CampaignRef {
                id: self.id.clone(),
                page,
                slot,
            }),
            workflow: None,
            steps: None,
            digest: None,
        }
    }

    /// A ULID whose time is `send_at` and whose randomness comes from the campaign id: time
    /// ordered in the inbox, and the same for every user and every retry.
    pub fn notification_id(&self) -> NotificationId {
        let millis = self.send_at.as_millisecond().max(0) as u64;
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
        #[serde(with = "time::as_compact")]
        at: Timestamp,
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::campaign::testing::*;

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
            "2026-03-27T12:00:00Z".parse().unwrap(),
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
