//! The message log as the inbox API lists it (`aws/dynamodb/messages.rs`,
//! `fake/messages.rs`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::counters::UserKey;
use crate::domain::ids::RoomId;
use crate::error::StoreError;

/// One message in a user's inbox as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageView {
    pub id: String,
    pub room_id: String,
    pub title: String,
    pub body: String,
    pub created_at: String,
    pub read: bool,
    /// Read, or seen (one by one, or everything at once).
    #[serde(default)]
    pub seen: bool,
    /// Hidden from the list when it asks `archived=false`; counts are unchanged.
    #[serde(default)]
    pub archived: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// Whether one message is read and seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadState {
    pub read: bool,
    /// Read, marked seen, or seen with everything.
    pub seen: bool,
}

/// One inbox message as the seen and archive marks find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    pub id: String,
    pub log_key: String,
    pub room: RoomId,
    /// Its commit stamp (see `CommitStamp`).
    pub stamp: u64,
    pub seen: bool,
    pub archived: bool,
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
    ) -> Result<MessagePage, StoreError> {
        self.list_messages_where(user, room, limit, cursor, None)
            .await
    }
    /// `list_messages`, keeping only archived (`Some(true)`) or unarchived (`Some(false)`)
    /// messages: a page may then hold fewer than `limit`, and `next_cursor` goes on.
    async fn list_messages_where(
        &self,
        user: &UserKey,
        room: Option<&RoomId>,
        limit: u32,
        cursor: Option<&str>,
        archived: Option<bool>,
    ) -> Result<MessagePage, StoreError>;
    /// The user's inbox messages with these ids (as the list shows them), in order; `None`
    /// for an id the log does not hold as an inbox message.
    async fn find_messages(
        &self,
        user: &UserKey,
        ids: &[String],
    ) -> Result<Vec<Option<MessageRef>>, StoreError>;
    /// Sets or clears a message's archived flag (`false`: the log does not hold it).
    async fn set_archived(
        &self,
        user: &UserKey,
        log_key: &str,
        archived: bool,
    ) -> Result<bool, StoreError>;
    /// Whether the message logged under `log_key` in `room` is read (a mark-read of its room
    /// committed after it) and seen, strongly consistent, from the message and its room
    /// alone; `None` when the log has no such inbox message.
    async fn read_state(
        &self,
        user: &UserKey,
        room: &RoomId,
        log_key: &str,
    ) -> Result<Option<ReadState>, StoreError>;
}
