//! Reconcile's view of the inbox table: pages of users, and where its last run stopped
//! (`aws/dynamodb/users.rs`, `fake/users.rs`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::counters::UserKey;
use crate::error::StoreError;

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

/// One item of the change log: users whose counters changed, logged in `hour`, in one of
/// its shards. `id` names it within the shard (`domain::reconcile::change_log_entries`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeLogEntry {
    pub hour: String,
    pub shard: u32,
    pub id: String,
    pub users: Vec<UserKey>,
}

/// Where the inbox stream's consumer logs the users whose counters changed; reconcile's
/// `Changed` sets read it back.
#[async_trait]
pub trait ChangeLog: Send + Sync {
    /// Writes `entry` (again: the same entry written twice is one item).
    async fn log_changes(&self, entry: &ChangeLogEntry) -> Result<(), StoreError>;
}
