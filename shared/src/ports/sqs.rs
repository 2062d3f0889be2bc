//! Queues: sending to one, and the one a consumer reads with its acks (`aws/sqs.rs`,
//! `fake/sqs.rs`).

use async_trait::async_trait;
use serde::Serialize;

use crate::error::CallError;

/// One received message, whether from a Lambda event or ReceiveMessage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// ApproximateReceiveCount: 1 on first delivery.
    pub receive_count: u32,
    /// The X-Ray trace the sender was in (`AWSTraceHeader`), to hand on to what this
    /// message causes.
    pub trace_header: Option<String>,
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
