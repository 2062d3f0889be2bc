//! SQS adapter: batched sends (10 per call, failed entries retried), and the source queue of
//! a consumer: long-polling receive and the acks the consumer core plans (delete, change
//! visibility, move to the DLQ with a reason).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageAttributeValue, MessageSystemAttributeName, MessageSystemAttributeNameForSends,
    MessageSystemAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;

use super::{call_error, describe};
use crate::consumer::{
    QueueBinding, QueueConfig, QueueMessage, DLQ_REASON_ATTRIBUTE, DLQ_SOURCE_ATTRIBUTE,
};
use crate::domain::backoff::BackoffPolicy;
use crate::ports::{
    DeadLetter, DeadLetterDepth, DeadLetterQueue, OutgoingMessage, QueueError, QueueSender,
    RedriveFailure, RedriveSelection, Redriven, SourceQueue,
};

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
    async fn send_chunk(&self, chunk: &[&OutgoingMessage]) -> Vec<Result<(), QueueError>> {
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
                    Err(e) => return vec![Err(QueueError::Invalid(e.to_string())); chunk.len()],
                }
            }
            if let Some(trace) = &m.trace_header {
                // X-Ray follows the message: the consumer's trace continues this one.
                match MessageSystemAttributeValue::builder()
                    .data_type("String")
                    .string_value(trace)
                    .build()
                {
                    Ok(attr) => {
                        entry = entry.message_system_attributes(
                            MessageSystemAttributeNameForSends::AwsTraceHeader,
                            attr,
                        )
                    }
                    Err(e) => return vec![Err(QueueError::Invalid(e.to_string())); chunk.len()],
                }
            }
            entry = entry.set_delay_seconds(m.delay_seconds);
            match entry.build() {
                Ok(entry) => entries.push(entry),
                Err(e) => return vec![Err(QueueError::Invalid(e.to_string())); chunk.len()],
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
            Err(e) => vec![Err(QueueError::Call(call_error(e))); chunk.len()],
            Ok(out) => {
                let mut results = vec![Ok(()); chunk.len()];
                for failed in out.failed() {
                    if let Some(slot) = failed
                        .id()
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| results.get_mut(i))
                    {
                        *slot = Err(QueueError::Entry {
                            code: failed.code().to_owned(),
                            message: failed.message().unwrap_or_default().to_owned(),
                        });
                    }
                }
                results
            }
        }
    }
}

#[async_trait]
impl QueueSender for SqsSender {
    async fn send(&self, messages: &[OutgoingMessage]) -> Vec<Result<(), QueueError>> {
        let mut results: Vec<Result<(), QueueError>> =
            vec![Err(QueueError::Invalid("not sent".into())); messages.len()];
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

impl From<Message> for QueueMessage {
    fn from(m: Message) -> Self {
        Self {
            receive_count: m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
            trace_header: m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader))
                .cloned(),
            message_id: m.message_id.unwrap_or_default(),
            receipt_handle: m.receipt_handle.unwrap_or_default(),
            body: m.body.unwrap_or_default(),
        }
    }
}

/// A consumer's queue in SQS, with its dead-letter queue.
#[derive(Debug, Clone)]
pub struct SqsSourceQueue {
    client: Client,
    queue_url: String,
    dlq: SqsSender,
}

impl SqsSourceQueue {
    pub fn new(client: Client, config: &QueueConfig) -> Self {
        Self {
            dlq: SqsSender::new(client.clone(), &config.dlq_url),
            queue_url: config.queue_url.clone(),
            client,
        }
    }
}

#[async_trait]
impl SourceQueue for SqsSourceQueue {
    async fn receive(
        &self,
        max: usize,
        wait_seconds: i32,
    ) -> Result<Vec<QueueMessage>, QueueError> {
        // Up to `max`, ten per call: long-poll for the first, then take what is there.
        let mut batch = Vec::new();
        while batch.len() < max {
            let out = self
                .client
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages((max - batch.len()).min(MAX_BATCH) as i32)
                .wait_time_seconds(if batch.is_empty() { wait_seconds } else { 0 })
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
                .send()
                .await
                .map_err(|e| QueueError::Call(call_error(e)))?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            batch.extend(messages.into_iter().map(QueueMessage::from));
        }
        Ok(batch)
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

    async fn change_visibility(&self, retries: &[(&QueueMessage, Duration)]) {
        for chunk in retries.chunks(MAX_BATCH) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, (m, delay))| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&m.receipt_handle)
                        .visibility_timeout(delay.as_secs() as i32)
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

    async fn dead_letter(&self, poison: &[(&QueueMessage, &str)]) -> Vec<Result<(), QueueError>> {
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
                trace_header: m.trace_header.clone(),
            })
            .collect();
        self.dlq.send(&messages).await
    }
}

/// At most `max` bytes, cut at a character boundary (SQS attributes are bounded).
fn truncate(text: &str, max: usize) -> String {
    text.char_indices()
        .take_while(|(i, c)| i + c.len_utf8() <= max)
        .map(|(_, c)| c)
        .collect()
}

/// Seconds a listing keeps the messages it read hidden, so that its next receive gives
/// others; they are made visible again before the listing answers.
const LIST_HOLD_SECONDS: i32 = 20;
/// Seconds a redrive keeps the messages it read hidden while it moves them.
const REDRIVE_HOLD_SECONDS: i32 = 60;

/// A dead-letter queue in SQS and the source queue its messages go back to.
#[derive(Debug, Clone)]
pub struct SqsDeadLetterQueue {
    client: Client,
    dlq_url: String,
    source: SqsSender,
}

impl SqsDeadLetterQueue {
    pub fn new(client: Client, dlq_url: impl Into<String>, source_url: impl Into<String>) -> Self {
        Self {
            source: SqsSender::new(client.clone(), source_url),
            dlq_url: dlq_url.into(),
            client,
        }
    }

    /// Up to `max` messages, ten per call, each hidden for `hold` seconds; stops at the first
    /// receive that gives nothing.
    async fn take(&self, max: usize, hold: i32) -> Result<Vec<Message>, QueueError> {
        let mut taken: Vec<Message> = Vec::new();
        while taken.len() < max {
            let received = self
                .client
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages((max - taken.len()).min(MAX_BATCH) as i32)
                // A short wait asks every SQS server, so a nearly empty queue still answers.
                .wait_time_seconds(1)
                .visibility_timeout(hold)
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_attribute_names("All")
                .send()
                .await;
            let out = match received {
                Ok(out) => out,
                Err(e) => {
                    // What this call already holds is made visible again, not left hidden.
                    self.release(&taken.iter().collect::<Vec<_>>()).await;
                    return Err(QueueError::Call(call_error(e)));
                }
            };
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            taken.extend(messages);
        }
        Ok(taken)
    }

    /// Makes messages taken and not moved visible again at once.
    async fn release(&self, messages: &[&Message]) {
        let handles: Vec<QueueMessage> = messages
            .iter()
            .map(|m| QueueMessage::from((*m).clone()))
            .collect();
        let retries: Vec<(&QueueMessage, Duration)> =
            handles.iter().map(|m| (m, Duration::ZERO)).collect();
        self.as_source().change_visibility(&retries).await;
    }

    /// The DLQ seen as a consumer's queue, for its acks.
    fn as_source(&self) -> SqsSourceQueue {
        SqsSourceQueue {
            client: self.client.clone(),
            queue_url: self.dlq_url.clone(),
            dlq: self.source.clone(),
        }
    }
}

/// A received DLQ message as an operator sees it.
fn as_dead_letter(m: &Message) -> DeadLetter {
    let attributes: Vec<(String, String)> = m
        .message_attributes()
        .map(|attributes| {
            attributes
                .iter()
                .filter_map(|(name, value)| Some((name.clone(), value.string_value()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let system = m.attributes();
    DeadLetter {
        message_id: m.message_id().unwrap_or_default().to_owned(),
        body: m.body().unwrap_or_default().to_owned(),
        reason: attributes
            .iter()
            .find(|(name, _)| name == DLQ_REASON_ATTRIBUTE)
            .map(|(_, value)| value.clone()),
        sent_at: system
            .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
            .and_then(|ms| ms.parse::<i64>().ok())
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()),
        receive_count: system
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
        attributes: crate::domain::dead_letter::carried_back(&attributes),
    }
}

#[async_trait]
impl DeadLetterQueue for SqsDeadLetterQueue {
    async fn depth(&self) -> Result<DeadLetterDepth, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.dlq_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| QueueError::Call(call_error(e)))?;
        let count = |name: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        Ok(DeadLetterDepth {
            messages: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }

    async fn list(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let taken = self.take(max, LIST_HOLD_SECONDS).await?;
        let listed = taken.iter().map(as_dead_letter).collect();
        self.release(&taken.iter().collect::<Vec<_>>()).await;
        Ok(listed)
    }

    async fn redrive(&self, selection: &RedriveSelection) -> Result<Redriven, QueueError> {
        let scan = crate::domain::dead_letter::redrive_scan(selection);
        let taken = self.take(scan, REDRIVE_HOLD_SECONDS).await?;
        let letters: Vec<DeadLetter> = taken.iter().map(as_dead_letter).collect();
        let plan = crate::domain::dead_letter::plan_redrive(&letters, selection);
        let outgoing = crate::domain::dead_letter::redriven_messages(&letters, &plan.moved);
        let sent = self.source.send(&outgoing).await;
        let mut done = Redriven {
            not_found: plan.not_found,
            ..Redriven::default()
        };
        let mut delete = Vec::new();
        let mut release: Vec<&Message> = plan.left.iter().map(|&i| &taken[i]).collect();
        for (&i, result) in plan.moved.iter().zip(sent) {
            match result {
                Ok(()) => {
                    done.moved.push(letters[i].message_id.clone());
                    delete.push(QueueMessage::from(taken[i].clone()));
                }
                Err(error) => {
                    done.failed.push(RedriveFailure {
                        id: letters[i].message_id.clone(),
                        error: error.to_string(),
                    });
                    release.push(&taken[i]);
                }
            }
        }
        // Sent first, deleted after: a failed delete leaves a copy in the DLQ, visible again
        // after the hold, never a message in neither queue.
        self.as_source()
            .delete(&delete.iter().collect::<Vec<_>>())
            .await;
        self.release(&release).await;
        Ok(done)
    }
}

/// A consumer's binding to its queue in SQS.
pub fn binding(config: &QueueConfig, aws: &aws_config::SdkConfig) -> QueueBinding {
    QueueBinding {
        queue: Arc::new(SqsSourceQueue::new(Client::new(aws), config)),
        rules: config.rules,
        batch_size: crate::consumer::MAX_RECEIVE,
        batching_window: std::time::Duration::ZERO,
        timeout: None,
        max_concurrency: 1,
    }
}
