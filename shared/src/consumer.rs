//! The SQS consumer core, shared by the Lambda event handler and the long-polling worker.
//!
//! A `BatchHandler` decides each message's fate; `QueueBinding::settle` acts on it:
//! committed messages are deleted explicitly (DeleteMessageBatch), retries get their
//! visibility pushed out with backoff and are reported as batch item failures, and poison
//! (unparsable, invalid, or out of receives) is moved to the DLQ with the reason attached.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName,
};
use aws_sdk_sqs::Client;
use tokio_util::sync::CancellationToken;

use crate::aws::describe;
use crate::aws::sqs::{SqsSender, MAX_BATCH};
use crate::config::{ConfigError, Vars};
use crate::ports::{OutgoingMessage, QueueSender};

/// Message attribute carrying why a message was dead-lettered.
pub const DLQ_REASON_ATTRIBUTE: &str = "herald-reason";
pub const DLQ_SOURCE_ATTRIBUTE: &str = "herald-source-message-id";

/// One received message, whether from a Lambda event or ReceiveMessage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// ApproximateReceiveCount: 1 on first delivery.
    pub receive_count: u32,
}

/// What to do with one message once the handler is through with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Its effect is committed: delete it.
    Done,
    /// Not finished (throttled, conflict budget spent, store down): deliver again later.
    Retry(String),
    /// Can never succeed: to the DLQ with this reason.
    Poison(String),
}

/// Decides the fate of each message in a batch.
#[async_trait]
pub trait BatchHandler: Send + Sync {
    /// One disposition per message, in the batch's order.
    async fn handle(&self, batch: &[QueueMessage]) -> Vec<Disposition>;
}

/// A source queue, its DLQ and the retry rules for it.
#[derive(Debug, Clone)]
pub struct QueueBinding {
    pub client: Client,
    pub queue_url: String,
    pub dlq_url: String,
    /// The queue's redrive maxReceiveCount: a retry at this count goes to the DLQ with reason.
    pub max_receive_count: u32,
    /// Visibility timeout before retry n is base * 2^(n-1), capped.
    pub retry_base: Duration,
    pub retry_cap: Duration,
}

impl QueueBinding {
    /// Reads the queue and DLQ URLs from the named variables, plus `MAX_RECEIVE_COUNT` and
    /// `RETRY_BASE_SECONDS` (default 2; retries back off up to 5 minutes).
    pub fn from_vars(
        vars: &Vars,
        client: Client,
        queue_var: &str,
        dlq_var: &str,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            client,
            queue_url: vars.required(queue_var)?,
            dlq_url: vars.required(dlq_var)?,
            max_receive_count: vars.max_receive_count()?,
            retry_base: Duration::from_secs(vars.parsed_or("RETRY_BASE_SECONDS", 2)?),
            retry_cap: Duration::from_secs(300),
        })
    }

    /// Acts on each disposition; returns the message ids that remain unfinished.
    pub async fn settle(
        &self,
        batch: &[QueueMessage],
        dispositions: Vec<Disposition>,
    ) -> Vec<String> {
        let mut delete = Vec::new();
        let mut retry = Vec::new();
        let mut poison = Vec::new();
        // A handler that answers for fewer messages than it got leaves the rest unfinished.
        let missing = batch.len().saturating_sub(dispositions.len());
        let dispositions = dispositions.into_iter().chain(std::iter::repeat_n(
            Disposition::Retry("no disposition from the handler".into()),
            missing,
        ));
        for (message, disposition) in batch.iter().zip(dispositions) {
            match disposition {
                Disposition::Done => delete.push(message),
                Disposition::Retry(reason) if message.receive_count >= self.max_receive_count => {
                    poison.push((
                        message,
                        format!("gave up after {} receives: {reason}", message.receive_count),
                    ))
                }
                Disposition::Retry(reason) => {
                    tracing::warn!(message_id = %message.message_id, %reason, "will retry");
                    retry.push(message)
                }
                Disposition::Poison(reason) => poison.push((message, reason)),
            }
        }
        if !poison.is_empty() {
            let moved = self.dead_letter(&poison).await;
            for ((message, reason), result) in poison.into_iter().zip(moved) {
                match result {
                    Ok(()) => {
                        tracing::error!(message_id = %message.message_id, %reason, "moved to DLQ");
                        delete.push(message);
                    }
                    Err(e) => {
                        tracing::error!(message_id = %message.message_id, error = %e, "could not move to DLQ");
                        retry.push(message);
                    }
                }
            }
        }
        self.delete(&delete).await;
        self.delay(&retry).await;
        retry.into_iter().map(|m| m.message_id.clone()).collect()
    }

    async fn dead_letter(&self, poison: &[(&QueueMessage, String)]) -> Vec<Result<(), String>> {
        let dlq = SqsSender::new(self.client.clone(), &self.dlq_url);
        let messages: Vec<OutgoingMessage> = poison
            .iter()
            .map(|(m, reason)| OutgoingMessage {
                id: m.message_id.clone(),
                body: m.body.clone(),
                attributes: vec![
                    (DLQ_REASON_ATTRIBUTE.into(), truncate(reason, 1024)),
                    (DLQ_SOURCE_ATTRIBUTE.into(), m.message_id.clone()),
                ],
                delay_seconds: None,
            })
            .collect();
        dlq.send(&messages).await
    }

    async fn delete(&self, messages: &[&QueueMessage]) {
        for chunk in messages.chunks(MAX_BATCH) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&m.receipt_handle)
                        .build()
                        .ok()
                })
                .collect();
            let result = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            match result {
                // Not fatal: a redelivered committed message is recognised as a duplicate.
                Err(e) => {
                    tracing::warn!(error = %describe(&e), "delete failed; messages will be redelivered")
                }
                Ok(out) if !out.failed().is_empty() => {
                    tracing::warn!(
                        failed = out.failed().len(),
                        "some deletes failed; they will be redelivered"
                    )
                }
                Ok(_) => {}
            }
        }
    }

    async fn delay(&self, messages: &[&QueueMessage]) {
        for chunk in messages.chunks(MAX_BATCH) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&m.receipt_handle)
                        .visibility_timeout(self.retry_delay(m.receive_count).as_secs() as i32)
                        .build()
                        .ok()
                })
                .collect();
            let result = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %describe(&e), "could not delay retries; the queue's visibility timeout applies");
            }
        }
    }

    /// Exponential in the receive count, so a struggling message backs off.
    pub fn retry_delay(&self, receive_count: u32) -> Duration {
        let factor = 1u32
            .checked_shl(receive_count.saturating_sub(1).min(16))
            .unwrap_or(u32::MAX);
        self.retry_base.saturating_mul(factor).min(self.retry_cap)
    }
}

fn truncate(text: &str, max: usize) -> String {
    text.char_indices()
        .take_while(|(i, _)| *i < max)
        .map(|(_, c)| c)
        .collect()
}

/// The Lambda path: an SQS event in, a partial batch response out.
pub async fn handle_sqs_event(
    handler: &dyn BatchHandler,
    binding: &QueueBinding,
    event: SqsEvent,
) -> SqsBatchResponse {
    let batch: Vec<QueueMessage> = event
        .records
        .into_iter()
        .map(|r| QueueMessage {
            receive_count: r
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
            message_id: r.message_id.unwrap_or_default(),
            receipt_handle: r.receipt_handle.unwrap_or_default(),
            body: r.body.unwrap_or_default(),
        })
        .collect();
    let dispositions = handler.handle(&batch).await;
    let failures = binding.settle(&batch, dispositions).await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

/// The worker path: long-poll, handle, settle, until `shutdown` fires.
pub async fn run_worker(
    handler: Arc<dyn BatchHandler>,
    binding: QueueBinding,
    wait_seconds: i32,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let receive = binding
            .client
            .receive_message()
            .queue_url(&binding.queue_url)
            .max_number_of_messages(MAX_BATCH as i32)
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send();
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            received = receive => received,
        };
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %describe(&e), queue = %binding.queue_url, "receive failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let batch: Vec<QueueMessage> = messages
            .into_iter()
            .map(|m| QueueMessage {
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
                message_id: m.message_id.unwrap_or_default(),
                receipt_handle: m.receipt_handle.unwrap_or_default(),
                body: m.body.unwrap_or_default(),
            })
            .collect();
        let dispositions = handler.handle(&batch).await;
        binding.settle(&batch, dispositions).await;
    }
}
