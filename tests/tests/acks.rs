//! Explicit acks against the emulator's real SQS: committed messages deleted at once, a killed
//! worker or a replayed batch changing nothing, retries left queued, poison and messages out
//! of receives dead-lettered with their reason.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use herald::consumer::{handle_sqs_event, BatchHandler};
use herald::domain::backoff::BackoffPolicy;
use herald::fake::{Flaky, RecordingQueue};
use herald::Notification;
use inbox_writer::InboxWriter;
use testkit::counters_kit::*;
use testkit::harness::{dlq_reasons, eventually, queue_depth, receive, sqs_event, test_stack};
use testkit::runner::LocalApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_commit_before_delete_does_not_double_count() {
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let ns: Vec<Notification> = (0..3)
        .map(|i| notification(&format!("kill-{i}"), "u1", "r1"))
        .collect();
    enqueue(&stack, ns.iter().map(body).collect()).await;
    // Receive and commit, then "die": no delete, no failure report.
    let batch = receive(&stack, "NotificationsQueue", 1).await.unwrap();
    assert_eq!(batch.len(), 3);
    app.writer.handle(&batch).await;
    assert_eq!(total_unread(app.inbox_api.counters.as_ref(), "u1").await, 3);
    tokio::time::sleep(Duration::from_millis(1200)).await; // visibility timeout passes
    consume(&app, &stack).await;
    assert_eq!(total_unread(app.inbox_api.counters.as_ref(), "u1").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_messages_are_deleted_at_once_and_a_replayed_batch_changes_nothing() {
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    enqueue(
        &stack,
        (0..4)
            .map(|i| body(&notification(&format!("ack-{i}"), "u2", "r1")))
            .collect(),
    )
    .await;
    let batch = receive(&stack, "NotificationsQueue", 30).await.unwrap();
    let response =
        handle_sqs_event(app.writer.as_ref(), &app.notifications, sqs_event(&batch)).await;
    assert!(response.batch_item_failures.is_empty());
    // Deleted explicitly, not left for Lambda: nothing in flight any more.
    assert_eq!(queue_depth(&stack, "NotificationsQueue").await.unwrap(), 0);
    // A batch that timed out is delivered again whole: already-applied messages change nothing.
    let response =
        handle_sqs_event(app.writer.as_ref(), &app.notifications, sqs_event(&batch)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(total_unread(app.inbox_api.counters.as_ref(), "u2").await, 4);
}

#[tokio::test]
async fn a_spent_retry_budget_is_a_batch_item_failure_and_the_message_stays_queued() {
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let writer = InboxWriter {
        store: Arc::new(Flaky::new(app.inbox_api.counters.clone(), u64::MAX)),
        delivery: Arc::new(RecordingQueue::default()),
        channel_queues: Vec::new(),
        campaigns: None,
        policy: BackoffPolicy {
            budget: Duration::from_millis(100),
            ..BackoffPolicy::default()
        },
        packing: Default::default(),
        preferences: None,
        step_schedulers: Vec::new(),
        digests: None,
    };
    enqueue(&stack, vec![body(&notification("slow-1", "fay", "r1"))]).await;
    let batch = receive(&stack, "NotificationsQueue", 30).await.unwrap();
    let response = handle_sqs_event(&writer, &app.notifications, sqs_event(&batch)).await;
    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec![batch[0].message_id.clone()]);
    assert_eq!(
        queue_depth(&stack, "NotificationsQueue").await.unwrap(),
        1,
        "not lost: still queued for a retry"
    );
    assert_eq!(
        total_unread(app.inbox_api.counters.as_ref(), "fay").await,
        0
    );
}

#[tokio::test]
async fn poison_goes_to_the_dlq_with_its_reason_and_never_blocks_the_batch() {
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let mut invalid = notification("bad-title", "gus", "r1");
    invalid.title = "   ".into();
    enqueue(
        &stack,
        vec![
            "{not json".into(),
            body(&invalid),
            body(&notification("fine", "gus", "r1")),
        ],
    )
    .await;
    let batch = receive(&stack, "NotificationsQueue", 30).await.unwrap();
    assert_eq!(batch.len(), 3);
    let response =
        handle_sqs_event(app.writer.as_ref(), &app.notifications, sqs_event(&batch)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(queue_depth(&stack, "NotificationsQueue").await.unwrap(), 0);
    let mut reasons = dlq_reasons(&stack, "NotificationsDLQ", 2).await.unwrap();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].starts_with("invalid notification: ") && reasons[0].contains("title"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("not a notification: "),
        "{reasons:?}"
    );
    assert_eq!(
        total_unread(app.inbox_api.counters.as_ref(), "gus").await,
        1
    );
}

#[tokio::test]
async fn a_message_out_of_receives_goes_to_the_dlq_with_the_last_error() {
    let stack = test_stack(&[("MaxReceiveCount", "2")]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let mut binding = app.notifications.clone();
    binding.rules.backoff.base = Duration::ZERO;
    assert_eq!(
        binding.rules.max_receive_count, 2,
        "read from the template's parameter"
    );
    let writer = InboxWriter {
        store: Arc::new(Flaky::new(app.inbox_api.counters.clone(), u64::MAX)),
        delivery: Arc::new(RecordingQueue::default()),
        channel_queues: Vec::new(),
        campaigns: None,
        policy: BackoffPolicy {
            budget: Duration::from_millis(50),
            ..BackoffPolicy::default()
        },
        packing: Default::default(),
        preferences: None,
        step_schedulers: Vec::new(),
        digests: None,
    };
    enqueue(&stack, vec![body(&notification("doomed", "hal", "r1"))]).await;
    for receive_no in 1..=2 {
        let batch = eventually(Duration::from_secs(10), "the message again", || async {
            let b = receive(&stack, "NotificationsQueue", 30).await?;
            Ok((!b.is_empty()).then_some(b))
        })
        .await
        .unwrap();
        assert_eq!(batch[0].receive_count, receive_no);
        handle_sqs_event(&writer, &binding, sqs_event(&batch)).await;
    }
    let reasons = dlq_reasons(&stack, "NotificationsDLQ", 1).await.unwrap();
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].starts_with("gave up after 2 receives: ")
            && reasons[0].contains("ThrottlingException"),
        "{reasons:?}"
    );
    assert_eq!(queue_depth(&stack, "NotificationsQueue").await.unwrap(), 0);
}

#[tokio::test]
async fn a_batch_larger_than_one_receive_is_gathered_from_several() {
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let bodies = (0..25)
        .map(|i| body(&notification(&format!("g{i}"), "gina", "r1")))
        .collect();
    enqueue(&stack, bodies).await;
    // As an event source with BatchSize 25 would hand them over: SQS returns at most 10 a call.
    let batch = app.notifications.queue.receive(25, 1).await.unwrap();
    assert_eq!(batch.len(), 25);
    let ids: std::collections::HashSet<&str> =
        batch.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids.len(), 25, "no message twice");
}

/// The local workers take their batches as the template's event sources do: the campaign
/// queue one message at a time, notifications and campaign notifications at their
/// parameters' sizes, email deliveries fifty (one bulk send's recipients).
#[tokio::test]
async fn local_workers_batch_as_the_templates_event_sources() {
    let stack = testkit::harness::test_stack(&[("NotificationsBatchSize", "7")])
        .await
        .unwrap();
    let app = testkit::runner::LocalApp::new(&stack).unwrap();
    let marketing: usize = stack.parameters["MarketingBatchSize"].parse().unwrap();
    assert_eq!(app.notifications.batch_size, 7, "the parameter, overridden");
    assert_eq!(app.marketing.batch_size, marketing);
    assert_eq!(app.campaign_queue.batch_size, 1);
    assert_eq!(app.delivery.batch_size, herald::ports::MAX_BULK_RECIPIENTS);
    assert_eq!(app.feedback_queue.batch_size, 10);
    // The rest of the mapping and the function, as deployed.
    let concurrency: usize = stack.parameters["ConsumerMaxConcurrency"].parse().unwrap();
    assert_eq!(app.notifications.max_concurrency, concurrency);
    assert_eq!(app.delivery.batching_window, Duration::from_secs(1));
    assert_eq!(app.notifications.timeout, Some(Duration::from_secs(30)));
    assert_eq!(app.campaign_queue.timeout, Some(Duration::from_secs(90)));
}

/// A handler that never finishes within the function's timeout.
struct Stuck;

#[async_trait::async_trait]
impl BatchHandler for Stuck {
    async fn handle(
        &self,
        batch: &[herald::consumer::QueueMessage],
    ) -> Vec<herald::consumer::Disposition> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        vec![herald::consumer::Disposition::Done; batch.len()]
    }
}

/// As on AWS: a batch that runs past the function's timeout is stopped with no ack; its
/// messages come back after the queue's visibility timeout, and once out of receives SQS
/// itself moves them to the DLQ, without herald's reason (docs/operations.md says how to
/// read such an entry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_past_the_timeout_returns_after_the_visibility_timeout_then_sqs_dead_letters_it() {
    let stack = test_stack(&[("MaxReceiveCount", "2")]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let url = stack
        .resource("NotificationsQueue")
        .unwrap()
        .reference
        .clone();
    aws_sdk_sqs::Client::new(&stack.sdk)
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "1",
        )
        .send()
        .await
        .unwrap();
    let mut binding = app.notifications.clone();
    binding.timeout = Some(Duration::from_millis(200));
    binding.batching_window = Duration::ZERO;
    enqueue(&stack, vec![body(&notification("slow", "sam", "r1"))]).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(herald::consumer::run_worker(
        Arc::new(Stuck),
        binding,
        1,
        shutdown.clone(),
    ));
    let reasons = eventually(
        Duration::from_secs(30),
        "the message in the DLQ",
        || async {
            let found = dlq_reasons(&stack, "NotificationsDLQ", 1).await?;
            Ok((!found.is_empty()).then_some(found))
        },
    )
    .await
    .unwrap();
    shutdown.cancel();
    worker.await.unwrap();
    assert_eq!(reasons, ["<no reason attribute>"]);
    assert_eq!(queue_depth(&stack, "NotificationsQueue").await.unwrap(), 0);
}
