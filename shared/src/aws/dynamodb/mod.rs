//! DynamoDB adapter of the inbox table: message log, room and TOTAL counters, and what
//! reconcile reads. The layout (see `docs/storage.md`), all under `pk = T#<tenant>#U#<user>`:
//!
//! | sk | item |
//! |---|---|
//! | `M#<log key>` | inbox message (log key: ULID from ingest, so the table lists newest first) |
//! | `L#<log key>` | message for other channels only (log and idempotency record) |
//! | `I#<id>` | idempotency record of a client-chosen id (its log key differs from the id) |
//! | `R#<room>` | room counter: `unread`, `version`, `stamp`, `read_at` |
//! | `TOTAL` | total counter: `unread`, `unseen`, `version` |
//!
//! Outside the users' partitions: `CHANGED#<hour>#<shard>` items, the change log reconcile
//! reads (`users.rs`), and `RECONCILE`, its checkpoints.
//!
//! No local secondary index: the sparse GSI `by_room` (`room_pk`, `sk`) lists one room.

mod counters;
mod messages;
#[cfg(feature = "stream")]
pub mod stream;
mod users;

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::domain::counters::UserKey;
use crate::domain::ids::{RoomId, TenantId, UserId};
use crate::ports::clock::{Clock, SystemClock};

use super::item::{decode_key, encode_key, n, number, s};

pub const TOTAL_SK: &str = "TOTAL";
pub const BY_ROOM_INDEX: &str = "by_room";

/// The partition key of one user.
pub fn user_pk(user: &UserKey) -> String {
    format!("T#{}#U#{}", user.tenant, user.user)
}

/// `T#<tenant>#U#<user>` back into a key (ids cannot contain `#`).
pub fn parse_user_pk(pk: &str) -> Option<UserKey> {
    let rest = pk.strip_prefix("T#")?;
    let (tenant, user) = rest.split_once("#U#")?;
    Some(UserKey {
        tenant: TenantId::parse(tenant, "tenant").ok()?,
        user: UserId::parse(user, "user").ok()?,
    })
}

fn room_sk(room: &RoomId) -> String {
    format!("R#{room}")
}

/// The `by_room` index's partition: one user's room.
fn room_pk(pk: &str, room: &RoomId) -> String {
    format!("{pk}#R#{room}")
}

/// A string attribute, empty when absent.
fn text(item: &HashMap<String, AttributeValue>, key: &str) -> String {
    super::item::text(item, key).unwrap_or_default()
}

/// The inbox table.
#[derive(Debug, Clone)]
pub struct DynamoInbox {
    client: Client,
    table: String,
    /// Message log retention, for the TTL attribute `expires_at`.
    retention_days: u32,
    /// `Limit` of reconcile's Scan and index pages (None: DynamoDB's 1 MB pages).
    page_limit: Option<i32>,
    /// The time of expiries, change marks and checkpoints.
    clock: Arc<dyn Clock>,
}

impl DynamoInbox {
    pub fn new(client: Client, table: impl Into<String>, retention_days: u32) -> Self {
        Self {
            client,
            table: table.into(),
            retention_days,
            page_limit: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Another clock than the system's (tests move time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Smaller reconcile pages (tests use it to walk many pages of a small table).
    pub fn with_page_limit(mut self, limit: i32) -> Self {
        self.page_limit = Some(limit);
        self
    }
}
