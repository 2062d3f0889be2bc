//! Ports: the small traits the domain and handlers use; `aws` implements them against AWS,
//! `fake` in memory for unit tests.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::consumer::QueueMessage;
use crate::domain::contact::Contact;
use crate::domain::counters::{Counter, Counters, UserKey};
use crate::domain::ids::{NotificationId, RoomId, TenantId, UserId};
use crate::domain::notification::{Channel, Notification};
use crate::domain::unsubscribe::LinkSigner;
use crate::error::{CallError, StoreError};

/// Why a counter transaction did not commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitError {
    /// These messages are already stored (their Put's attribute_not_exists failed); ids are
    /// unique per user only, so each comes with its user.
    Duplicates(Vec<(UserKey, NotificationId)>),
    /// Conflict, version mismatch or throttling: back off and retry.
    Retryable(String),
    Fatal(String),
}

/// One user's share of a commit: the user's new messages.
#[derive(Debug, Clone, PartialEq)]
pub struct UserWrites {
    pub user: UserKey,
    pub messages: Vec<Notification>,
}

/// Unread counters and the message log.
#[async_trait]
pub trait CounterStore: Send + Sync {
    /// One TransactWriteItems for one or more users (at most one share per user): for each,
    /// Put each message (attribute_not_exists) and ADD the coalesced increments to its rooms
    /// and TOTAL. All of it commits, or none.
    async fn commit(&self, writes: &[UserWrites]) -> Result<(), CommitError>;
    /// TOTAL and every room, strongly consistent.
    async fn read_counters(&self, user: &UserKey) -> Result<Counters, StoreError>;
    /// Whether each notification was committed already (its message item exists), in order:
    /// a redelivered campaign notification of a cancelled campaign may have been.
    async fn applied(&self, messages: &[Notification]) -> Result<Vec<bool>, StoreError>;
    /// Sets each room to 0 if its version is still the one seen, and subtracts the sum from
    /// TOTAL, in one transaction.
    async fn zero_rooms(
        &self,
        user: &UserKey,
        rooms: &[(RoomId, Counter)],
    ) -> Result<(), CommitError>;
    /// Sets TOTAL to the sum of the rooms in `seen`, in one transaction that holds only if
    /// TOTAL and every room still have the versions seen (reconcile must not act on a torn
    /// read).
    async fn repair_total(&self, user: &UserKey, seen: &Counters) -> Result<(), CommitError>;
}

/// Which users one reconcile partition covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserSet {
    /// One segment of a parallel Scan over every TOTAL item.
    Segment { segment: u32, segments: u32 },
    /// One shard of the users whose counters changed in `hour` (UTC `YYYYMMDDHH`).
    Changed { hour: String, shard: u32 },
}

/// One page of users; `next` continues the same set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsersPage {
    pub users: Vec<UserKey>,
    pub next: Option<String>,
}

/// Finding users for reconcile, and where its last run stopped.
#[async_trait]
pub trait UserIndex: Send + Sync {
    async fn users_page(
        &self,
        set: &UserSet,
        cursor: Option<String>,
    ) -> Result<UsersPage, StoreError>;
    /// The JSON checkpoint stored under `name`, if any.
    async fn load_checkpoint(&self, name: &str) -> Result<Option<String>, StoreError>;
    async fn save_checkpoint(&self, name: &str, json: &str) -> Result<(), StoreError>;
}

/// One message in a user's inbox as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageView {
    pub id: String,
    pub room_id: String,
    pub title: String,
    pub body: String,
    pub created_at: String,
    pub read: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// A page of messages, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagePage {
    pub messages: Vec<MessageView>,
    pub next_cursor: Option<String>,
}

/// Reading the message log.
#[async_trait]
pub trait MessageLog: Send + Sync {
    /// Newest first; `cursor` is the opaque `next_cursor` of the previous page.
    async fn list_messages(
        &self,
        user: &UserKey,
        room: Option<&RoomId>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<MessagePage, StoreError>;
}

/// Contacts, delivery status and suppression: everything `deliver` looks up.
#[async_trait]
pub trait Directory: Send + Sync {
    async fn contact(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Option<Contact>, StoreError>;
    /// The contacts of several users of one tenant (those that have one), read together:
    /// the inbox-writer reads a whole batch's at once. Eventually consistent is enough here.
    async fn contacts(
        &self,
        tenant: &TenantId,
        users: &[UserId],
    ) -> Result<std::collections::HashMap<UserId, Contact>, StoreError> {
        let mut out = std::collections::HashMap::new();
        for user in users {
            if let Some(contact) = self.contact(tenant, user).await? {
                out.insert(user.clone(), contact);
            }
        }
        Ok(out)
    }
    /// The contact with its version (0: none stored yet).
    async fn contact_versioned(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<(Option<Contact>, u64), StoreError>;
    /// Stores the contact as version `expected + 1` if the stored version is still
    /// `expected` (`StoreError::VersionConflict` otherwise), and with it whose `pseudonym`
    /// this is (what an unsubscribe link names instead of the user id). Returns the new
    /// version.
    async fn put_contact(
        &self,
        tenant: &TenantId,
        user: &UserId,
        contact: &Contact,
        pseudonym: &str,
        expected: u64,
    ) -> Result<u64, StoreError>;
    /// The user a pseudonym stands for, if a contact was stored under it.
    async fn user_of_pseudonym(
        &self,
        tenant: &TenantId,
        pseudonym: &str,
    ) -> Result<Option<UserId>, StoreError>;
    /// One user's records of one notification, by direct reads of its channel keys.
    async fn user_delivery_status(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
        user: &UserId,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
    /// Status of one notification on every channel it has a record for.
    async fn delivery_status(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
    /// Moves a claimed delivery on (to sent, skipped, failed, or retrying when its holder
    /// releases it), on condition that `record.claim` still holds it: a copy that did not
    /// claim never writes. `false`: the claim was no longer held (nothing written).
    async fn settle_delivery(
        &self,
        tenant: &TenantId,
        record: &DeliveryRecord,
    ) -> Result<bool, StoreError>;
    /// Claims one delivery (`record`'s notification, user and channel, in state `Sending`,
    /// with its own `claim` token) with a conditional write: it succeeds when there is no
    /// record yet, when the last attempt failed or was released for a retry, or when a claim
    /// is older than `stale_before` (its holder died). Only the caller that claims may send,
    /// and `Claimed::previous` tells it what the record said before.
    async fn claim_delivery(
        &self,
        tenant: &TenantId,
        record: &DeliveryRecord,
        stale_before: &str,
    ) -> Result<Claim, StoreError>;
    /// Whether `address` (email or phone) is suppressed for this tenant or for every tenant.
    async fn is_suppressed(&self, tenant: &TenantId, address: &str) -> Result<bool, StoreError>;
    /// Never send to `address` again: for `tenant`, or for every tenant when `None`.
    async fn suppress(
        &self,
        tenant: Option<&TenantId>,
        address: &str,
        reason: &str,
    ) -> Result<(), StoreError>;
}

/// The secret that signs unsubscribe links: fetched once, then kept.
#[async_trait]
pub trait LinkKeys: Send + Sync {
    async fn signer(&self) -> Result<LinkSigner, StoreError>;
}

/// What happened to one notification on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub notification_id: NotificationId,
    /// Client-chosen ids are unique per user only, so the user is part of the record's key.
    pub user_id: UserId,
    pub channel: Channel,
    pub state: DeliveryState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub updated_at: String,
    /// The claim (a token of the attempt that holds it) that wrote this record: only that
    /// holder may move it on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// Push: the devices that already have it, so that any later copy skips them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent_to: Vec<String>,
    /// Skipped: why (campaign progress counts skips by reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<crate::domain::delivery::SkipReason>,
    /// Keyed per user (campaign jobs): a campaign's one notification id would otherwise put
    /// every recipient's record in one partition, the first to throttle in a burst.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_user: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Sent,
    /// Not sent on purpose: no address, opted out, suppressed.
    Skipped,
    Failed,
    /// Claimed by one copy of the job, which is sending it now.
    Sending,
    /// The provider may have accepted it, but its answer was lost (or the claim's holder
    /// stopped mid-send): final, never sent again automatically (a DLQ entry says so).
    Unknown,
    /// Released by its holder after a send that certainly did not go out (throttled, or
    /// refused for now): queued again with a delay, claimable by the next copy.
    Retrying,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Sent => "sent",
            DeliveryState::Skipped => "skipped",
            DeliveryState::Failed => "failed",
            DeliveryState::Sending => "sending",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Unknown => "unknown",
        }
    }

    /// A claim may be taken over from these: a retry, or another try after a failure that
    /// certainly sent nothing. Never from `Unknown`, which may have gone out.
    pub fn claimable(self) -> bool {
        matches!(self, DeliveryState::Failed | DeliveryState::Retrying)
    }
}

/// What a delivery claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds it: send, then settle the outcome. `previous`: the record it took
    /// over (a released retry, a failure being redriven, or an abandoned `Sending` claim).
    Claimed {
        previous: Option<Box<DeliveryRecord>>,
    },
    /// Already sent, skipped (with its reason) or unknown: nothing to do.
    Settled(DeliveryState, Option<crate::domain::delivery::SkipReason>),
    /// Another copy holds it since this time (RFC 3339) and has not recorded an outcome.
    Held { since: String },
}

/// A message for a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Unique within one send call (SQS batch entry id).
    pub id: String,
    pub body: String,
    pub attributes: Vec<(String, String)>,
    pub delay_seconds: Option<i32>,
    /// X-Ray trace header (`Root=…;Parent=…;Sampled=…`) sent as `AWSTraceHeader`.
    pub trace_header: Option<String>,
}

impl OutgoingMessage {
    pub fn json<T: Serialize>(id: impl Into<String>, value: &T) -> Result<Self, serde_json::Error> {
        Ok(Self {
            id: id.into(),
            body: serde_json::to_string(value)?,
            attributes: Vec::new(),
            delay_seconds: None,
            trace_header: None,
        })
    }
}

/// Why a queue did not take a message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    /// The queue refused this entry (SQS's code and message for it).
    #[error("{code}: {message}")]
    Entry { code: String, message: String },
    /// The call failed as a whole: network, throttling, permissions.
    #[error("{0}")]
    Call(#[source] CallError),
    /// The message could not be built (e.g. a bad attribute), or a fake's injected failure.
    #[error("{0}")]
    Invalid(String),
}

/// Sending to one queue. Returns, per message in order, whether the queue accepted it.
#[async_trait]
pub trait QueueSender: Send + Sync {
    async fn send(&self, messages: &[OutgoingMessage]) -> Vec<Result<(), QueueError>>;
}

/// The queue a consumer reads, and its acks.
#[async_trait]
pub trait SourceQueue: Send + Sync {
    /// Up to `max` messages, waiting up to `wait_seconds` for the first (long polling).
    async fn receive(&self, max: usize, wait_seconds: i32)
        -> Result<Vec<QueueMessage>, QueueError>;
    /// Acks committed messages. A failed delete is logged, not returned: the message comes
    /// back and is recognised as a duplicate.
    async fn delete(&self, messages: &[&QueueMessage]);
    /// Makes each message visible again after its delay. Failures are logged: the queue's
    /// visibility timeout applies instead.
    async fn change_visibility(&self, retries: &[(&QueueMessage, std::time::Duration)]);
    /// Moves each message to the dead-letter queue with its reason; per message, in order.
    async fn dead_letter(&self, poison: &[(&QueueMessage, &str)]) -> Vec<Result<(), QueueError>>;
}

/// An email ready for SES.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    /// The HTML part (both parts are rendered from `templates/email/`).
    pub html: String,
    /// SES message tags; they come back in the SES events (the tenant, for suppression).
    pub tags: Vec<(String, String)>,
    /// One-click unsubscribe for marketing mail (RFC 8058).
    pub list_unsubscribe: Option<String>,
}

/// Why a send failed; the provider's error (code, text and the SDK error as `source`)
/// inside. Only `Unknown` may have gone out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// The provider answered "not now": certainly not sent, retry later.
    #[error("throttled: {0}")]
    Throttled(#[source] CallError),
    /// The provider refused it for good (this message or address).
    #[error("rejected: {0}")]
    Rejected(#[source] CallError),
    /// The recipient opted out at the provider (SNS `OptedOut`): a suppression, not an error.
    #[error("opted out: {0}")]
    OptedOut(#[source] CallError),
    /// Not sent: it failed before the request left, or the provider answered with an error
    /// that is neither of the above.
    #[error("{0}")]
    Other(#[source] CallError),
    /// The answer was lost (timeout, connection dropped, 5xx): the provider may have
    /// accepted it. Never sent again automatically.
    #[error("outcome unknown: {0}")]
    Unknown(#[source] CallError),
}

/// One SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    /// E.164.
    pub to: String,
    /// At most 1,600 characters (what SNS takes).
    pub text: String,
    /// Marketing goes as SNS's Promotional type (cheaper, may be delayed, honours quiet
    /// hours at the carrier); the rest as Transactional (highest delivery priority).
    pub promotional: bool,
}

#[async_trait]
pub trait EmailSender: Send + Sync {
    /// Returns the provider's message id.
    async fn send_email(&self, email: &Email) -> Result<String, SendError>;
}

/// SMS and mobile push, both through SNS.
#[async_trait]
pub trait MobileSender: Send + Sync {
    async fn send_sms(&self, sms: &Sms) -> Result<String, SendError>;
    async fn send_push(
        &self,
        endpoint_arn: &str,
        title: &str,
        body: &str,
    ) -> Result<String, SendError>;
}

/// The time, as a port: deliver's quiet hours depend on it, and tests fix it.
pub trait Clock: Send + Sync {
    fn now(&self) -> jiff::Timestamp;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

/// One page of a campaign's fan-out, recorded once it is enqueued.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageRecord {
    pub page: u32,
    /// Users read from the audience for this page (held ones included).
    pub users: u64,
    /// Enqueued now (the held are counted when released).
    pub enqueued: u64,
    /// Lines that were not a valid user id.
    pub invalid: u64,
    /// Where the next page starts, and whether there is one.
    pub next_cursor: u64,
    pub last: bool,
    /// Recipients waiting for a release at an instant (RFC 3339), as (slot, user).
    pub held: Vec<(String, Vec<(u32, UserId)>)>,
    /// The page after this one is on the queue.
    pub next_sent: bool,
}

/// One page's recipients held for one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldGroup {
    pub key: String,
    pub page: u32,
    /// (slot, user).
    pub recipients: Vec<(u32, UserId)>,
    /// Already released (by an earlier attempt of the same release step).
    pub released: bool,
}

/// Campaigns, their inline audiences and their progress.
#[async_trait]
pub trait CampaignStore: Send + Sync {
    /// Stores a new campaign with its inline audience chunks in one transaction. Under an
    /// idempotency key used before, nothing is written and the first campaign is returned.
    async fn create_campaign(
        &self,
        campaign: &crate::domain::campaign::Campaign,
        chunks: &[Vec<UserId>],
        idempotency_key: Option<&str>,
    ) -> Result<crate::domain::campaign::Campaign, StoreError>;
    async fn campaign(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
    ) -> Result<Option<crate::domain::campaign::Campaign>, StoreError>;
    /// Newest first, `limit` at a time; `after` is the previous page's cursor.
    async fn campaigns(
        &self,
        tenant: &TenantId,
        limit: usize,
        after: Option<&str>,
    ) -> Result<(Vec<crate::domain::campaign::Campaign>, Option<String>), StoreError>;
    /// Moves the status from one of `from` to `to`, stamping `at` (started, cancelled or
    /// failed time, with `detail` as the failure). `false`: the status was none of `from`.
    async fn transition(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        from: &[crate::domain::campaign::CampaignStatus],
        to: crate::domain::campaign::CampaignStatus,
        at: &str,
        detail: Option<&str>,
    ) -> Result<bool, StoreError>;
    async fn mark_fanned_out(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        at: &str,
    ) -> Result<(), StoreError>;
    async fn audience_chunk(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        chunk: u32,
    ) -> Result<Vec<UserId>, StoreError>;
    /// Records a page once, with the campaign's counts and its held recipients, in one
    /// transaction. `Some(existing)`: it was recorded before (nothing changed).
    async fn record_page(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        page: &PageRecord,
    ) -> Result<Option<PageRecord>, StoreError>;
    async fn mark_next_sent(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        page: u32,
    ) -> Result<(), StoreError>;
    /// Up to `limit` groups of recipients held for instant `at`, after group key `after`, in
    /// key order, released or not (a release goes a group at a time from its position, and a
    /// redelivered step finds the group it released before).
    async fn held(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        at: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HeldGroup>, StoreError>;
    /// Claims the fan-out step `step` (queueing page 0, the page after page n, the next part
    /// of a release) for `token`, the queue message that does it: `true` for the first
    /// claimer and for the same message again (a redelivery after a crash), `false` for any
    /// other message, a duplicate whose step another message already took.
    async fn claim_step(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        step: &str,
        token: &str,
    ) -> Result<bool, StoreError>;
    /// Marks a held group released and counts it as enqueued, once. `false`: it was already.
    async fn release_group(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        group: &str,
        enqueued: u64,
    ) -> Result<bool, StoreError>;
    /// Leaves progress marks: each adds one to its counter unless its slot is already in the
    /// mark's set (`ProgressMark::dedupe_set`), so marking twice counts once.
    async fn mark(
        &self,
        tenant: &TenantId,
        marks: &[(
            crate::domain::campaign::CampaignRef,
            crate::domain::campaign::ProgressMark,
        )],
    ) -> Result<(), StoreError>;
    /// Exact counts over every page.
    async fn progress(
        &self,
        campaign: &crate::domain::campaign::Campaign,
    ) -> Result<crate::domain::campaign::Progress, StoreError>;
}

/// One-time schedules that put a payload on the campaign queue (EventBridge Scheduler).
#[async_trait]
pub trait Scheduler: Send + Sync {
    /// Creates schedule `name` firing at `at`; one that exists already counts as created.
    async fn schedule_once(
        &self,
        name: &str,
        at: jiff::Timestamp,
        payload: &str,
    ) -> Result<(), StoreError>;
    /// Deletes schedule `name`; a missing one is fine.
    async fn delete_schedule(&self, name: &str) -> Result<(), StoreError>;
}

pub use crate::domain::campaign::{AudienceFile, AudienceRead, AudienceUnreadable};

/// Audience files in S3, read in ranges (never whole into memory).
#[async_trait]
pub trait AudienceFiles: Send + Sync {
    /// `Ok(None)`: no such object. The file's version (`etag`) is the one its header was
    /// read from.
    async fn inspect(&self, bucket: &str, key: &str) -> Result<Option<AudienceFile>, StoreError>;
    /// Up to `max` users from byte `cursor` on (the header line skipped at 0 for a CSV), of
    /// version `etag` only (`None`: whatever is there).
    async fn read(
        &self,
        bucket: &str,
        key: &str,
        etag: Option<&str>,
        column: Option<usize>,
        cursor: u64,
        max: usize,
    ) -> Result<AudienceRead, AudienceError>;
}

/// Reading an audience file failed.
#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    /// The file cannot be read as the campaign pinned it (gone, changed, denied): retrying
    /// does not help, the campaign fails.
    #[error(transparent)]
    Unreadable(#[from] AudienceUnreadable),
    /// Anything else: retried.
    #[error(transparent)]
    Store(#[from] StoreError),
}
