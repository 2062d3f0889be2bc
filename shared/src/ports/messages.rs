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
    /// Whether the message logged under `log_key` in `room` is read (a mark-read of its room
    /// committed after it), strongly consistent; `None` when the log has no such inbox
    /// message.
    async fn is_read(
        &self,
        user: &UserKey,
        room: &RoomId,
        log_key: &str,
    ) -> Result<Option<bool>, StoreError>;
}
