//! One-time schedules onto the campaign queue (`aws/scheduler.rs`, `fake/scheduler.rs`).

use async_trait::async_trait;

use crate::error::StoreError;

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
