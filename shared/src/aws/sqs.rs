//! SQS adapter: batched sends (10 per call, failed entries retried) and the acks of the
//! consumer core (delete, change visibility, move to DLQ with a reason).

use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use aws_sdk_sqs::Client;

use super::describe;
use crate::domain::backoff::BackoffPolicy;
use crate::ports::{OutgoingMessage, QueueSender};

/// SQS's limit on entries per batch call.
pub const MAX_BATCH: usize = 10;
/// Attempts at entries SQS reports as failed within one `send`.
const SEND_ATTEMPTS: u32 = 4;

/// Sends to one queue.
#[derive(Debug, Clone)]
pub struct SqsSender {
    client: Client,
    queue_url: String,
}

impl SqsSender {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// One SendMessageBatch; returns the result of each entry, in order.
    async fn send_chunk(&self, chunk: &[&OutgoingMessage]) -> Vec<Result<(), String>> {
        let mut entries = Vec::with_capacity(chunk.len());
        for (i, m) in chunk.iter().enumerate() {
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(&m.body);
            for (name, value) in &m.attributes {
                match MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(value)
                    .build()
                {
                    Ok(attr) => entry = entry.message_attributes(name, attr),
                    Err(e) => return vec![Err(e.to_string()); chunk.len()],
                }
            }
            entry = entry.set_delay_seconds(m.delay_seconds);
            match entry.build() {
                Ok(entry) => entries.push(entry),
                Err(e) => return vec![Err(e.to_string()); chunk.len()],
            }
        }
        match self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Err(e) => vec![Err(describe(&e)); chunk.len()],
            Ok(out) => {
                let mut results = vec![Ok(()); chunk.len()];
                for failed in out.failed() {
                    if let Some(slot) = failed
                        .id()
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| results.get_mut(i))
                    {
                        *slot = Err(format!(
                            "{}: {}",
                            failed.code(),
                            failed.message().unwrap_or_default()
                        ));
                    }
                }
                results
            }
        }
    }
}

#[async_trait]
impl QueueSender for SqsSender {
    async fn send(&self, messages: &[OutgoingMessage]) -> Vec<Result<(), String>> {
        let mut results: Vec<Result<(), String>> = vec![Err("not sent".into()); messages.len()];
        let mut pending: Vec<usize> = (0..messages.len()).collect();
        let policy = BackoffPolicy::default();
        for attempt in 0..SEND_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(policy.delay(attempt)).await;
            }
            let mut still_failing = Vec::new();
            for chunk in pending.chunks(MAX_BATCH) {
                let batch: Vec<&OutgoingMessage> = chunk.iter().map(|&i| &messages[i]).collect();
                for (&i, result) in chunk.iter().zip(self.send_chunk(&batch).await) {
                    if result.is_err() {
                        still_failing.push(i);
                    }
                    results[i] = result;
                }
            }
            if still_failing.is_empty() {
                break;
            }
            pending = still_failing;
        }
        results
    }
}
