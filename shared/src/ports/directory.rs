//! The directory: contacts, delivery records and their claims, suppressions
//! (`aws/directory.rs`, `fake/directory.rs`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::contact::Contact;
use crate::domain::ids::{NotificationId, TenantId, UserId};
use crate::domain::notification::Channel;
use crate::error::StoreError;

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
        stale_before: jiff::Timestamp,
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
    #[serde(with = "crate::domain::time::as_millis")]
    pub updated_at: jiff::Timestamp,
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
    /// Another copy holds it since this time and has not recorded an outcome.
    Held { since: jiff::Timestamp },
}
