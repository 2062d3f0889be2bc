//! The live feed's two sides: who is connected (`Connections`: the connections table,
//! `aws/connections.rs`, `fake/live.rs`) and the sockets themselves (`Sockets`: API
//! Gateway's management API, `aws/live.rs`, `fake/live.rs`).

use async_trait::async_trait;

use crate::domain::counters::UserKey;
use crate::domain::live::Connection;
use crate::error::{CallError, StoreError};

/// Each user's open WebSockets.
#[async_trait]
pub trait Connections: Send + Sync {
    /// Records an open connection (`$connect`).
    async fn add(&self, connection: &Connection) -> Result<(), StoreError>;
    /// Forgets a connection (`$disconnect`, or a post answered 410 Gone); none is fine.
    async fn remove(&self, user: &UserKey, connection_id: &str) -> Result<(), StoreError>;
    /// The user's connections not yet expired.
    async fn of_user(&self, user: &UserKey) -> Result<Vec<Connection>, StoreError>;
}

/// Why a frame did not reach a socket.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PostError {
    /// The socket is closed (410 Gone): its record can go.
    #[error("connection gone")]
    Gone,
    /// Throttled, timed out or refused: this frame is lost; the next one carries the
    /// current counts again, and a client re-reads them when it reconnects.
    #[error("{0}")]
    Failed(#[source] CallError),
}

/// Frames to open sockets (`@connections/{id}`).
#[async_trait]
pub trait Sockets: Send + Sync {
    async fn post(&self, connection_id: &str, frame: &str) -> Result<(), PostError>;
}
