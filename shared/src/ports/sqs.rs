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

/// A message waiting in a dead-letter queue, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The message's id in the DLQ (what a redrive of chosen messages names).
    pub message_id: String,
    pub body: String,
    /// `herald-reason`: why herald dead-lettered it. None: SQS moved it there itself, after
    /// the source queue's `maxReceiveCount` receives (a consumer that kept failing or timing
    /// out on it).
    pub reason: Option<String>,
    /// When it was sent to the DLQ (SQS's `SentTimestamp`; for a message SQS moved there,
    /// when it was first sent to its source queue).
    pub sent_at: Option<jiff::Timestamp>,
    /// Receives of it in the DLQ (each listing counts one).
    pub receive_count: u32,
    /// Its message attributes but herald's own (what goes back with it on a redrive).
    pub attributes: Vec<(String, String)>,
}

/// How many messages a DLQ holds (SQS's approximate counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DeadLetterDepth {
    /// Waiting to be read.
    pub messages: u64,
    /// Received by someone (a listing or a redrive) and not yet visible again.
    pub in_flight: u64,
}

/// Which messages a redrive moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedriveSelection {
    /// Whatever the DLQ gives, up to this many.
    All { max: usize },
    /// These messages, by id (looked for among the first messages the DLQ gives).
    Chosen(Vec<String>),
}

/// What a redrive did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Redriven {
    /// Ids of the messages now back on the source queue (and gone from the DLQ).
    pub moved: Vec<String>,
    /// Chosen ids the DLQ did not give: moved already, or beyond what one call looks at.
    pub not_found: Vec<String>,
    /// Messages the source queue refused, with why: left in the DLQ.
    pub failed: Vec<RedriveFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedriveFailure {
    pub id: String,
    pub error: String,
}

/// One dead-letter queue and the queue its messages came from. Every call does bounded work:
/// a listing or a redrive looks at a fixed number of messages at most.
#[async_trait]
pub trait DeadLetterQueue: Send + Sync {
    async fn depth(&self) -> Result<DeadLetterDepth, QueueError>;
    /// Up to `max` messages, left where they are (visible again when the call returns).
    async fn list(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError>;
    /// Moves the selected messages back to the source queue: each is sent there first, then
    /// deleted from the DLQ, so a crash between the two leaves a copy in both, never none
    /// (herald's consumers take a message twice as once).
    async fn redrive(&self, selection: &RedriveSelection) -> Result<Redriven, QueueError>;
}
