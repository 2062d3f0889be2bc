//! Digest windows: each (user, key)'s open window, the events that joined each window, and a
//! join record per event (`aws/digests.rs`, `fake/digests.rs`).

use async_trait::async_trait;

use crate::domain::counters::UserKey;
use crate::domain::digest::{DigestEvent, JoinPlan, Joined, OpenWindow};
use crate::error::StoreError;
use crate::ports::CommitError;

#[async_trait]
pub trait Digests: Send + Sync {
    /// The (user, key)'s window as stored, strongly consistent.
    async fn open_window(
        &self,
        user: &UserKey,
        key: &str,
    ) -> Result<Option<OpenWindow>, StoreError>;
    /// One transaction: `event` under its window with a join record, and the open window
    /// joined (it must still be that window, unsealed and open at `now`) or replaced by the
    /// event's own (the one replaced must still be the one read). `Duplicates` when the event
    /// has a join record already; `Retryable` when the window changed.
    async fn add_event(
        &self,
        user: &UserKey,
        key: &str,
        plan: &JoinPlan,
        event: &DigestEvent,
        now: jiff::Timestamp,
        window_seconds: u32,
    ) -> Result<(), CommitError>;
    /// Where an event went, from its join record.
    async fn joined(
        &self,
        user: &UserKey,
        key: &str,
        event_id: &str,
    ) -> Result<Option<Joined>, StoreError>;
    /// Seals `window` if it is still the open one (nothing joins it after); a window already
    /// replaced was closed anyway.
    async fn seal(&self, user: &UserKey, key: &str, window: &str) -> Result<(), StoreError>;
    /// The window's first `limit` events, oldest first, and how many it has, strongly
    /// consistent (call after `seal`: the set is final).
    async fn events(
        &self,
        user: &UserKey,
        key: &str,
        window: &str,
        limit: usize,
    ) -> Result<(Vec<DigestEvent>, u64), StoreError>;
}
