//! Unread counters: the transactions that move them, and the reads that check them
//! (`aws/dynamodb/counters.rs`, `fake/counters.rs`).

use async_trait::async_trait;

use crate::domain::counters::{Counter, Counters, UserKey};
use crate::domain::ids::{NotificationId, RoomId};
use crate::domain::notification::Notification;
use crate::error::StoreError;
use crate::ports::messages::MessageRef;

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
    /// Marks one inbox message seen: its `seen` flag, and one less unseen in its room and in
    /// TOTAL (both versions bumped), in one transaction. Flagged already: nothing,
    /// `Ok(false)`. Its room read or seen since it was found (the transaction's condition
    /// on the room's marks), or a count that would go below 0: nothing, `Retryable`: find it
    /// again (it is seen now).
    async fn mark_seen(&self, user: &UserKey, message: &MessageRef) -> Result<bool, CommitError>;
    /// Sets each room's unseen to 0 if its version is still the one seen (messages stamped
    /// up to now list as seen), and subtracts the sum from TOTAL's unseen, in one transaction.
    async fn zero_unseen(
        &self,
        user: &UserKey,
        rooms: &[(RoomId, Counter)],
    ) -> Result<(), CommitError>;
}
