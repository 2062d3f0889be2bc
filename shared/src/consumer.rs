//! The queue consumer core, shared by the Lambda event handler and the long-polling worker.
//!
//! A `BatchHandler` decides each message's fate. `plan` turns those decisions into acks, with
//! no I/O: committed messages are deleted, retries get a visibility delay that grows with
//! their receive count, and poison (unparsable, invalid, or out of receives) goes to the DLQ
//! with its reason. `settle` carries the plan out through a `SourceQueue` (the SQS adapter
//! is `aws::sqs::SqsSourceQueue`); a message that cannot be dead-lettered is retried instead.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, Vars};
use crate::domain::backoff::BackoffPolicy;
pub use crate::ports::sqs::QueueMessage;
use crate::ports::sqs::SourceQueue;

/// Message attribute carrying why a message was dead-lettered.
pub const DLQ_REASON_ATTRIBUTE: &str = "herald-reason";
pub const DLQ_SOURCE_ATTRIBUTE: &str = "herald-source-message-id";
/// Most messages one ReceiveMessage returns (SQS's limit), and the worker's default batch.
pub const MAX_RECEIVE: usize = 10;

impl From<SqsMessage> for QueueMessage {
    fn from(record: SqsMessage) -> Self {
        Self {
            receive_count: record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
            trace_header: record.attributes.get("AWSTraceHeader").cloned(),
            message_id: record.message_id.unwrap_or_default(),
            receipt_handle: record.receipt_handle.unwrap_or_default(),
            body: record.body.unwrap_or_default(),
        }
    }
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

/// When a retried message comes back, and when it stops coming back.
#[derive(Debug, Clone, Copy)]
pub struct RetryRules {
    /// The queue's redrive maxReceiveCount: a retry at this count goes to the DLQ with reason.
    pub max_receive_count: u32,
    /// Visibility delay before retry n: the policy's ceiling for attempt n-1 (base * 2^(n-1),
    /// capped); no jitter, so a struggling message backs off predictably.
    pub backoff: BackoffPolicy,
}

impl RetryRules {
    /// `MAX_RECEIVE_COUNT` (default 5) and `RETRY_BASE_SECONDS` (default 2; up to 5 minutes).
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            max_receive_count: vars.max_receive_count()?,
            backoff: BackoffPolicy {
                base: Duration::from_secs(vars.parsed_or("RETRY_BASE_SECONDS", 2)?),
                cap: Duration::from_secs(300),
                ..BackoffPolicy::default()
            },
        })
    }

    pub fn retry_delay(&self, receive_count: u32) -> Duration {
        self.backoff.ceiling(receive_count.saturating_sub(1))
    }
}

/// A consumer's queue: its URLs and retry rules, as read from the environment once.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub queue_url: String,
    pub dlq_url: String,
    pub rules: RetryRules,
}

impl QueueConfig {
    pub fn from_vars(vars: &Vars, queue_var: &str, dlq_var: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            queue_url: vars.required(queue_var)?,
            dlq_url: vars.required(dlq_var)?,
            rules: RetryRules::from_vars(vars)?,
        })
    }
}

/// A source queue and its retry rules: what a consumer needs to ack.
#[derive(Clone)]
pub struct QueueBinding {
    pub queue: Arc<dyn SourceQueue>,
    pub rules: RetryRules,
    /// Messages the worker loop hands to the handler at once (an event source mapping's
    /// BatchSize); above 10 it gathers several receives.
    pub batch_size: usize,
    /// How long the worker loop keeps gathering a batch that is not full yet (the mapping's
    /// MaximumBatchingWindowInSeconds); zero: what one receive brings.
    pub batching_window: Duration,
    /// The function's timeout: a batch still running then is abandoned, as Lambda stops the
    /// invocation, with no ack at all, so its messages come back after the queue's
    /// visibility timeout (and SQS dead-letters them, with no reason, once out of receives).
    pub timeout: Option<Duration>,
    /// Workers the deployed mapping runs at most (`ScalingConfig.MaximumConcurrency`).
    pub max_concurrency: usize,
}

/// The acks for one batch, decided before any is sent (indexes into the batch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckPlan {
    pub delete: Vec<usize>,
    pub retry: Vec<(usize, Duration)>,
    pub dead_letter: Vec<(usize, String)>,
}

/// Turns the handler's dispositions into acks. A handler that answers for fewer messages
/// than it got leaves the rest to retry; a retry out of receives is dead-lettered with its
/// last reason, so the DLQ always says why.
pub fn plan(batch: &[QueueMessage], dispositions: Vec<Disposition>, rules: &RetryRules) -> AckPlan {
    let missing = batch.len().saturating_sub(dispositions.len());
    let dispositions = dispositions.into_iter().chain(std::iter::repeat_n(
        Disposition::Retry("no disposition from the handler".into()),
        missing,
    ));
    let mut plan = AckPlan::default();
    for ((i, message), disposition) in batch.iter().enumerate().zip(dispositions) {
        match disposition {
            Disposition::Done => plan.delete.push(i),
            Disposition::Retry(reason) if message.receive_count >= rules.max_receive_count => {
                let reason = format!("gave up after {} receives: {reason}", message.receive_count);
                plan.dead_letter.push((i, reason));
            }
            Disposition::Retry(reason) => {
                tracing::warn!(message_id = %message.message_id, %reason, "will retry");
                plan.retry
                    .push((i, rules.retry_delay(message.receive_count)));
            }
            Disposition::Poison(reason) => plan.dead_letter.push((i, reason)),
        }
    }
    plan
}

/// Carries out the plan for a batch; returns the ids of the messages left to retry.
pub async fn settle(
    binding: &QueueBinding,
    batch: &[QueueMessage],
    dispositions: Vec<Disposition>,
) -> Vec<String> {
    let mut plan = plan(batch, dispositions, &binding.rules);
    if !plan.dead_letter.is_empty() {
        let poison: Vec<(&QueueMessage, &str)> = plan
            .dead_letter
            .iter()
            .map(|(i, reason)| (&batch[*i], reason.as_str()))
            .collect();
        let moved = binding.queue.dead_letter(&poison).await;
        for ((i, reason), result) in plan.dead_letter.iter().zip(moved) {
            let message = &batch[*i];
            match result {
                Ok(()) => {
                    tracing::error!(message_id = %message.message_id, %reason, "moved to DLQ");
                    plan.delete.push(*i);
                }
                Err(e) => {
                    tracing::error!(message_id = %message.message_id, error = %e, "could not move to DLQ; will retry");
                    plan.retry
                        .push((*i, binding.rules.retry_delay(message.receive_count)));
                }
            }
        }
    }
    let delete: Vec<&QueueMessage> = plan.delete.iter().map(|i| &batch[*i]).collect();
    binding.queue.delete(&delete).await;
    let retry: Vec<(&QueueMessage, Duration)> =
        plan.retry.iter().map(|(i, d)| (&batch[*i], *d)).collect();
    binding.queue.change_visibility(&retry).await;
    retry
        .into_iter()
        .map(|(m, _)| m.message_id.clone())
        .collect()
}

/// The Lambda path: an SQS event in, a partial batch response out.
pub async fn handle_sqs_event(
    handler: &dyn BatchHandler,
    binding: &QueueBinding,
    event: SqsEvent,
) -> SqsBatchResponse {
    let batch: Vec<QueueMessage> = event.records.into_iter().map(QueueMessage::from).collect();
    let span = tracing::info_span!("batch", size = batch.len());
    let failures = async {
        let dispositions = handler.handle(&batch).await;
        settle(binding, &batch, dispositions).await
    };
    let failures = tracing::Instrument::instrument(failures, span).await;
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

/// Runs a consumer as a Lambda function behind an SQS event source mapping.
pub async fn run_sqs_lambda<H: BatchHandler>(
    handler: H,
    binding: QueueBinding,
) -> Result<(), lambda_runtime::Error> {
    let (handler, binding) = (&handler, &binding);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| async move {
            Ok::<_, lambda_runtime::Error>(handle_sqs_event(handler, binding, event.payload).await)
        },
    ))
    .await
}

/// The worker path: long-poll, handle, settle, until `shutdown` fires.
pub async fn run_worker(
    handler: Arc<dyn BatchHandler>,
    binding: QueueBinding,
    wait_seconds: i32,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            received = binding.queue.receive(binding.batch_size, wait_seconds) => received,
        };
        let mut batch = match received {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "receive failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            // An empty answer that came at once (no long poll) must not starve the runtime.
            tokio::task::yield_now().await;
            continue;
        }
        // The batching window: keep gathering until the batch is full or the window ends.
        let window_ends = tokio::time::Instant::now() + binding.batching_window;
        while batch.len() < binding.batch_size && tokio::time::Instant::now() < window_ends {
            let left = window_ends - tokio::time::Instant::now();
            let wait = i32::try_from(left.as_secs()).unwrap_or(20).min(20);
            match binding
                .queue
                .receive(binding.batch_size - batch.len(), wait)
                .await
            {
                Ok(more) if more.is_empty() && wait == 0 => {
                    tokio::time::sleep(left.min(Duration::from_millis(200))).await
                }
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        let span = tracing::info_span!("batch", size = batch.len());
        let work = async {
            let handled = match binding.timeout {
                Some(limit) => tokio::time::timeout(limit, handler.handle(&batch))
                    .await
                    .ok(),
                None => Some(handler.handle(&batch).await),
            };
            match handled {
                Some(dispositions) => {
                    settle(&binding, &batch, dispositions).await;
                }
                None => tracing::error!(
                    timeout = ?binding.timeout,
                    "the batch ran past the function's timeout: stopped, no message acked; \
                     all come back after the queue's visibility timeout"
                ),
            }
        };
        tracing::Instrument::instrument(work, span).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::ports::QueueError;

    fn message(id: &str, receive_count: u32) -> QueueMessage {
        QueueMessage {
            message_id: id.into(),
            receipt_handle: format!("rh-{id}"),
            body: "{}".into(),
            receive_count,
            trace_header: None,
        }
    }

    fn rules() -> RetryRules {
        RetryRules {
            max_receive_count: 3,
            backoff: BackoffPolicy {
                base: Duration::from_secs(2),
                cap: Duration::from_secs(300),
                ..BackoffPolicy::default()
            },
        }
    }

    #[test]
    fn each_disposition_becomes_its_ack() {
        let batch = [
            message("a", 1),
            message("b", 2),
            message("c", 1),
            message("d", 3),
        ];
        let plan = plan(
            &batch,
            vec![
                Disposition::Done,
                Disposition::Retry("conflict".into()),
                Disposition::Poison("not JSON".into()),
                Disposition::Retry("throttled".into()),
            ],
            &rules(),
        );
        assert_eq!(
            plan,
            AckPlan {
                delete: vec![0],
                retry: vec![(1, Duration::from_secs(4))],
                dead_letter: vec![
                    (2, "not JSON".into()),
                    (3, "gave up after 3 receives: throttled".into())
                ],
            }
        );
    }

    #[test]
    fn messages_without_a_disposition_are_retried() {
        let batch = [message("a", 1), message("b", 1)];
        let plan = plan(&batch, vec![Disposition::Done], &rules());
        assert_eq!(plan.delete, vec![0]);
        assert_eq!(plan.retry, vec![(1, Duration::from_secs(2))]);
    }

    #[test]
    fn retry_delay_doubles_per_receive_up_to_the_cap() {
        let delays: Vec<u64> = [1, 2, 3, 8, 9, 30]
            .map(|n| rules().retry_delay(n).as_secs())
            .to_vec();
        assert_eq!(delays, vec![2, 4, 8, 256, 300, 300]);
    }

    /// Records every ack; `dlq_down` makes dead-lettering fail; each receive hands out the
    /// next of `arriving` (then nothing).
    #[derive(Default)]
    struct RecordingAcks {
        deleted: Mutex<Vec<String>>,
        delayed: Mutex<Vec<(String, Duration)>>,
        dead: Mutex<Vec<(String, String)>>,
        dlq_down: bool,
        arriving: Mutex<std::collections::VecDeque<Vec<QueueMessage>>>,
    }

    #[async_trait]
    impl SourceQueue for RecordingAcks {
        async fn receive(&self, _: usize, _: i32) -> Result<Vec<QueueMessage>, QueueError> {
            let next = self.arriving.lock().unwrap().pop_front();
            if next.is_none() {
                // As a short poll of an empty queue takes a moment.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(next.unwrap_or_default())
        }
        async fn delete(&self, messages: &[&QueueMessage]) {
            let ids = messages.iter().map(|m| m.message_id.clone());
            self.deleted.lock().unwrap().extend(ids);
        }
        async fn change_visibility(&self, retries: &[(&QueueMessage, Duration)]) {
            let entries = retries.iter().map(|(m, d)| (m.message_id.clone(), *d));
            self.delayed.lock().unwrap().extend(entries);
        }
        async fn dead_letter(
            &self,
            poison: &[(&QueueMessage, &str)],
        ) -> Vec<Result<(), QueueError>> {
            if self.dlq_down {
                return vec![Err(QueueError::Invalid("DLQ down".into())); poison.len()];
            }
            let entries = poison
                .iter()
                .map(|(m, r)| (m.message_id.clone(), (*r).to_owned()));
            self.dead.lock().unwrap().extend(entries);
            vec![Ok(()); poison.len()]
        }
    }

    /// A handler that takes `takes` per batch and records the batches it finished.
    struct Slow {
        takes: Duration,
        finished: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl BatchHandler for Slow {
        async fn handle(&self, batch: &[QueueMessage]) -> Vec<Disposition> {
            tokio::time::sleep(self.takes).await;
            self.finished.lock().unwrap().push(batch.len());
            vec![Disposition::Done; batch.len()]
        }
    }

    async fn work_a_while(handler: Arc<Slow>, binding: QueueBinding, for_how_long: Duration) {
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(run_worker(handler, binding, 0, shutdown.clone()));
        tokio::time::sleep(for_how_long).await;
        shutdown.cancel();
        worker.await.unwrap();
    }

    /// Lambda stops an invocation at its timeout: the batch is abandoned whole, with no ack,
    /// and its messages come back after the visibility timeout.
    #[tokio::test]
    async fn a_batch_past_the_functions_timeout_is_stopped_and_nothing_is_acked() {
        let acks = Arc::new(RecordingAcks::default());
        acks.arriving
            .lock()
            .unwrap()
            .push_back(vec![message("a", 1), message("b", 1)]);
        let handler = Arc::new(Slow {
            takes: Duration::from_millis(400),
            finished: Mutex::default(),
        });
        let binding = QueueBinding {
            queue: acks.clone(),
            rules: rules(),
            batch_size: MAX_RECEIVE,
            batching_window: Duration::ZERO,
            timeout: Some(Duration::from_millis(50)),
            max_concurrency: 1,
        };
        work_a_while(handler.clone(), binding, Duration::from_millis(600)).await;
        assert!(
            handler.finished.lock().unwrap().is_empty(),
            "stopped mid-batch"
        );
        assert!(acks.deleted.lock().unwrap().is_empty());
        assert!(acks.delayed.lock().unwrap().is_empty());
        assert!(acks.dead.lock().unwrap().is_empty());
    }

    /// The batching window: messages arriving within it go in one batch.
    #[tokio::test]
    async fn the_batching_window_gathers_one_batch_from_several_receives() {
        let acks = Arc::new(RecordingAcks::default());
        for id in ["a", "b", "c"] {
            acks.arriving
                .lock()
                .unwrap()
                .push_back(vec![message(id, 1)]);
        }
        let handler = Arc::new(Slow {
            takes: Duration::ZERO,
            finished: Mutex::default(),
        });
        let binding = QueueBinding {
            queue: acks.clone(),
            rules: rules(),
            batch_size: MAX_RECEIVE,
            batching_window: Duration::from_millis(300),
            timeout: Some(Duration::from_secs(5)),
            max_concurrency: 1,
        };
        work_a_while(handler.clone(), binding, Duration::from_millis(700)).await;
        assert_eq!(*handler.finished.lock().unwrap(), vec![3]);
        assert_eq!(acks.deleted.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn settle_deletes_what_is_done_or_dead_lettered_and_reports_the_retries() {
        let acks = Arc::new(RecordingAcks::default());
        let binding = QueueBinding {
            queue: acks.clone(),
            rules: rules(),
            batch_size: MAX_RECEIVE,
            batching_window: Duration::ZERO,
            timeout: None,
            max_concurrency: 1,
        };
        let batch = [message("a", 1), message("b", 1), message("c", 1)];
        let failures = settle(
            &binding,
            &batch,
            vec![
                Disposition::Done,
                Disposition::Retry("later".into()),
                Disposition::Poison("bad".into()),
            ],
        )
        .await;
        assert_eq!(failures, vec!["b".to_owned()]);
        assert_eq!(*acks.deleted.lock().unwrap(), vec!["a", "c"]);
        assert_eq!(*acks.dead.lock().unwrap(), vec![("c".into(), "bad".into())]);
        assert_eq!(
            *acks.delayed.lock().unwrap(),
            vec![("b".into(), Duration::from_secs(2))]
        );
    }

    #[tokio::test]
    async fn poison_the_dlq_refuses_is_retried_not_deleted() {
        let acks = Arc::new(RecordingAcks {
            dlq_down: true,
            ..RecordingAcks::default()
        });
        let binding = QueueBinding {
            queue: acks.clone(),
            rules: rules(),
            batch_size: MAX_RECEIVE,
            batching_window: Duration::ZERO,
            timeout: None,
            max_concurrency: 1,
        };
        let batch = [message("p", 1)];
        let failures = settle(&binding, &batch, vec![Disposition::Poison("bad".into())]).await;
        assert_eq!(failures, vec!["p".to_owned()]);
        assert!(acks.deleted.lock().unwrap().is_empty(), "never lost");
    }

    #[tokio::test]
    async fn a_lambda_event_is_handled_and_answered_with_its_failures() {
        struct FailSecond;
        #[async_trait]
        impl BatchHandler for FailSecond {
            async fn handle(&self, batch: &[QueueMessage]) -> Vec<Disposition> {
                assert_eq!(
                    batch[1].receive_count, 2,
                    "read from the record's attributes"
                );
                vec![Disposition::Done, Disposition::Retry("no".into())]
            }
        }
        let binding = QueueBinding {
            queue: Arc::new(RecordingAcks::default()),
            rules: rules(),
            batch_size: MAX_RECEIVE,
            batching_window: Duration::ZERO,
            timeout: None,
            max_concurrency: 1,
        };
        let mut event = SqsEvent::default();
        for (id, count) in [("m1", "1"), ("m2", "2")] {
            let mut record = SqsMessage::default();
            record.message_id = Some(id.into());
            record.receipt_handle = Some(format!("rh-{id}"));
            record.body = Some("{}".into());
            record
                .attributes
                .insert("ApproximateReceiveCount".into(), count.into());
            event.records.push(record);
        }
        let response = handle_sqs_event(&FailSecond, &binding, event).await;
        let ids: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, vec!["m2"]);
    }
}
