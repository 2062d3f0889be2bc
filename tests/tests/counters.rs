//! Unread counters against the emulator's real DynamoDB and SQS semantics: exactly once under
//! redelivery, grouping and splitting of transactions, duplicates found from cancellation
//! reasons, backoff under throttling, explicit acks, poison to the DLQ, concurrent mark-reads
//! and reconcile.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use herald::aws::dynamodb::DynamoInbox;
use herald::consumer::{handle_sqs_event, run_worker, BatchHandler};
use herald::domain::backoff::BackoffPolicy;
use herald::domain::counters::{apply_to_counters, mark_all_read, mark_room_read, ApplyOutcome};
use herald::domain::reconcile::{reconcile_all, Mode};
use herald::fake::{Flaky, Hooked, RecordingQueue, StoreHooks};
use herald::ports::{CounterStore, OutgoingMessage, QueueSender};
use herald::{Channel, Notification, NotificationId, RoomId, TenantId, UserId, UserKey};
use inbox_writer::InboxWriter;
use testkit::harness::{dlq_reasons, eventually, queue_depth, receive, sqs_event, test_stack};
use testkit::meter::{metered_dynamodb, CallMeter};
use testkit::runner::LocalApp;
use testkit::stack::Stack;
use tokio_util::sync::CancellationToken;

fn user(u: &str) -> UserKey {
    UserKey {
        tenant: TenantId::parse("default", "t").unwrap(),
        user: UserId::parse(u, "u").unwrap(),
    }
}

fn notification(id: &str, u: &str, room: &str) -> Notification {
    Notification {
        tenant: TenantId::parse("default", "t").unwrap(),
        id: NotificationId::parse(id, "id").unwrap(),
        user_id: UserId::parse(u, "u").unwrap(),
        room_id: RoomId::parse(room, "r").unwrap(),
        title: "Hi".into(),
        body: "b".into(),
        channels: vec![Channel::Inbox],
        category: Default::default(),
        data: None,
        created_at: format!("2026-11-23T09:00:00.000Z#{id}").replace('#', ""),
        log_key: None,
    }
}

fn inbox(stack: &Stack, meter: &CallMeter) -> Arc<DynamoInbox> {
    Arc::new(DynamoInbox::new(
        metered_dynamodb(&stack.sdk, meter),
        &stack.resource("InboxTable").unwrap().name,
        30,
    ))
}

async fn enqueue(stack: &Stack, bodies: Vec<String>) {
    let sender = herald::aws::sqs::SqsSender::new(
        aws_sdk_sqs::Client::new(&stack.sdk),
        &stack.resource("NotificationsQueue").unwrap().reference,
    );
    let messages: Vec<OutgoingMessage> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| OutgoingMessage {
            id: i.to_string(),
            body,
            attributes: vec![],
            delay_seconds: None,
        })
        .collect();
    assert!(sender.send(&messages).await.iter().all(Result::is_ok));
}

/// Sets a user's TOTAL behind herald's back (to create drift).
async fn corrupt_total(stack: &Stack, u: &str, unread: u64) {
    aws_sdk_dynamodb::Client::new(&stack.sdk)
        .update_item()
        .table_name(&stack.resource("InboxTable").unwrap().name)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(herald::aws::dynamodb::user_pk(&user(u))),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("TOTAL".into()),
        )
        .update_expression("SET unread = :u")
        .expression_attribute_values(
            ":u",
            aws_sdk_dynamodb::types::AttributeValue::N(unread.to_string()),
        )
        .send()
        .await
        .unwrap();
}

fn body(n: &Notification) -> String {
    serde_json::to_string(n).unwrap()
}

/// Runs a worker over the notifications queue until it is empty.
async fn consume(app: &LocalApp, stack: &Stack) {
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(run_worker(
        app.writer.clone(),
        app.notifications.clone(),
        1,
        shutdown.clone(),
    ));
    eventually(
        Duration::from_secs(30),
        "an empty notifications queue",
        || async { Ok((queue_depth(stack, "NotificationsQueue").await? == 0).then_some(())) },
    )
    .await
    .unwrap();
    shutdown.cancel();
    worker.await.unwrap();
}

/// A user's TOTAL unread, as stored.
async fn total_unread(store: &dyn CounterStore, u: &str) -> u64 {
    store.read_counters(&user(u)).await.unwrap().total.unread
}

fn totals(c: &herald::domain::counters::Counters) -> (u64, BTreeMap<String, u64>) {
    let u = c.unread();
    (u.total, u.rooms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_count_once() {
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let (a, b) = (
        notification("dup-a", "u1", "r1"),
        notification("dup-b", "u1", "r2"),
    );
    // SQS at-least-once: the same notification arrives three times, in and across batches.
    enqueue(&stack, vec![body(&a), body(&a), body(&b), body(&a)]).await;
    consume(&app, &stack).await;
    let counters = app
        .inbox_api
        .counters
        .read_counters(&user("u1"))
        .await
        .unwrap();
    assert_eq!(
        totals(&counters),
        (2, BTreeMap::from([("r1".into(), 1), ("r2".into(), 1)]))
    );
}

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
async fn one_transaction_per_user_with_same_room_increments_coalesced() {
    let stack = test_stack(&[]).await.unwrap();
    let meter = CallMeter::default();
    let store = inbox(&stack, &meter);
    let mut batch: Vec<(usize, Notification)> = Vec::new();
    for (i, room) in ["r1", "r1", "r1", "r2"].iter().enumerate() {
        batch.push((i, notification(&format!("a{i}"), "alice", room)));
    }
    for i in 0..6 {
        batch.push((10 + i, notification(&format!("b{i}"), "bob", "r9")));
    }
    let outcomes = apply_to_counters(store.as_ref(), batch, &BackoffPolicy::default()).await;
    assert!(outcomes
        .iter()
        .all(|(_, _, o)| *o == ApplyOutcome::Committed));
    let mut sizes = meter.counts().transaction_sizes;
    sizes.sort();
    // alice: 4 Puts + r1 + r2 + TOTAL; bob: 6 Puts + r9 + TOTAL.
    assert_eq!(sizes, vec![7, 8]);
    assert_eq!(
        totals(&store.read_counters(&user("alice")).await.unwrap()),
        (4, BTreeMap::from([("r1".into(), 3), ("r2".into(), 1)]))
    );
}

#[tokio::test]
async fn groups_over_the_100_item_limit_are_split() {
    let stack = test_stack(&[]).await.unwrap();
    let meter = CallMeter::default();
    let store = inbox(&stack, &meter);
    let batch: Vec<(usize, Notification)> = (0..150)
        .map(|i| {
            (
                i,
                notification(&format!("big-{i}"), "carol", &format!("r{}", i % 3)),
            )
        })
        .collect();
    let outcomes = apply_to_counters(store.as_ref(), batch, &BackoffPolicy::default()).await;
    assert_eq!(
        outcomes
            .iter()
            .filter(|(_, _, o)| *o == ApplyOutcome::Committed)
            .count(),
        150
    );
    let sizes = meter.counts().transaction_sizes;
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    assert!(sizes.iter().all(|s| *s <= 100), "{sizes:?}");
    assert_eq!(total_unread(store.as_ref(), "carol").await, 150);
}

#[tokio::test]
async fn a_duplicate_inside_a_group_is_dropped_and_the_rest_retried() {
    let stack = test_stack(&[]).await.unwrap();
    let meter = CallMeter::default();
    let store = inbox(&stack, &meter);
    let policy = BackoffPolicy::default();
    apply_to_counters(
        store.as_ref(),
        vec![(0, notification("d2", "dave", "r1"))],
        &policy,
    )
    .await;
    let batch = ["d1", "d2", "d3"]
        .iter()
        .enumerate()
        .map(|(i, id)| (i, notification(id, "dave", "r1")))
        .collect();
    let mut outcomes = apply_to_counters(store.as_ref(), batch, &policy).await;
    outcomes.sort_by_key(|(k, _, _)| *k);
    let kinds: Vec<ApplyOutcome> = outcomes.into_iter().map(|(_, _, o)| o).collect();
    assert_eq!(
        kinds,
        vec![
            ApplyOutcome::Committed,
            ApplyOutcome::AlreadyApplied,
            ApplyOutcome::Committed
        ]
    );
    // First single commit, the cancelled transaction, the retry without the duplicate.
    assert_eq!(meter.counts().transaction_sizes, vec![3, 5, 4]);
    assert_eq!(total_unread(store.as_ref(), "dave").await, 3);
}

#[tokio::test]
async fn throttling_backs_off_then_commits() {
    let stack = test_stack(&[]).await.unwrap();
    let meter = CallMeter::default();
    let flaky = Flaky::new(inbox(&stack, &meter), 3);
    let outcomes = apply_to_counters(
        &flaky,
        vec![(0, notification("t1", "erin", "r1"))],
        &BackoffPolicy::default(),
    )
    .await;
    assert_eq!(outcomes[0].2, ApplyOutcome::Committed);
    assert_eq!(flaky.attempts(), 4);
    assert_eq!(total_unread(&flaky, "erin").await, 1);
}

#[tokio::test]
async fn a_spent_retry_budget_is_a_batch_item_failure_and_the_message_stays_queued() {
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let writer = InboxWriter {
        store: Arc::new(Flaky::new(app.inbox_api.counters.clone(), u64::MAX)),
        delivery: Arc::new(RecordingQueue::default()),
        policy: BackoffPolicy {
            budget: Duration::from_millis(100),
            ..BackoffPolicy::default()
        },
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
        policy: BackoffPolicy {
            budget: Duration::from_millis(50),
            ..BackoffPolicy::default()
        },
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

/// Lets a new message land between a mark-read's read and its write, once: the race the
/// version condition exists for. (Deterministic on purpose: moto rolls a cancelled
/// transaction back by restoring a snapshot of the whole table, which can erase a concurrent
/// commit, so free-running concurrency against it would test moto, not herald. The
/// free-running version runs against the in-memory store in counters_model.rs.)
struct Intruder(std::sync::Mutex<Option<Notification>>);

#[async_trait::async_trait]
impl StoreHooks for Intruder {
    async fn before_zero_rooms(&self, store: &dyn CounterStore, user: &UserKey) {
        let intruder = self.0.lock().unwrap().take();
        if let Some(n) = intruder {
            store.commit(user, &[n]).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_message_arriving_during_mark_read_fails_the_version_check_and_is_cleared_on_retry() {
    let stack = test_stack(&[]).await.unwrap();
    let inner = inbox(&stack, &CallMeter::default());
    let policy = BackoffPolicy::default();
    let batch = vec![
        (0, notification("m1", "ivy", "r1")),
        (1, notification("m2", "ivy", "r1")),
        (2, notification("m3", "ivy", "r2")),
    ];
    apply_to_counters(inner.as_ref(), batch, &policy).await;
    let racy = Hooked {
        inner: inner.clone(),
        hooks: Intruder(std::sync::Mutex::new(Some(notification("m4", "ivy", "r1")))),
    };

    let outcome = mark_room_read(
        &racy,
        &user("ivy"),
        &RoomId::parse("r1", "r").unwrap(),
        &policy,
    )
    .await
    .unwrap();
    // The first attempt saw 2 and lost the race; the retry saw and cleared 3.
    assert_eq!(
        outcome.cleared,
        BTreeMap::from([(RoomId::parse("r1", "r").unwrap(), 3)])
    );
    assert_eq!(
        totals(&outcome.after),
        (1, BTreeMap::from([("r2".into(), 1)]))
    );
    // The intruder committed before the clear that counted it: the list shows it read too.
    let r1 = herald::ports::MessageLog::list_messages(
        inner.as_ref(),
        &user("ivy"),
        Some(&RoomId::parse("r1", "r").unwrap()),
        10,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r1.messages.len(), 3);
    assert!(r1.messages.iter().all(|m| m.read), "{r1:?}");

    *racy.hooks.0.lock().unwrap() = Some(notification("m5", "ivy", "r2"));
    let outcome = mark_all_read(&racy, &user("ivy"), &policy).await.unwrap();
    assert_eq!(
        outcome.cleared,
        BTreeMap::from([(RoomId::parse("r2", "r").unwrap(), 2)])
    );
    let after = inner.read_counters(&user("ivy")).await.unwrap();
    assert_eq!((after.total.unread, after.drift()), (0, 0));
}

#[tokio::test]
async fn mark_read_never_drives_total_negative() {
    let stack = test_stack(&[]).await.unwrap();
    let store = inbox(&stack, &CallMeter::default());
    let policy = BackoffPolicy {
        budget: Duration::from_millis(300),
        ..BackoffPolicy::default()
    };
    apply_to_counters(
        store.as_ref(),
        vec![
            (0, notification("n1", "kim", "r1")),
            (1, notification("n2", "kim", "r1")),
        ],
        &policy,
    )
    .await;
    // Corrupt TOTAL below the room's count: the floor condition must refuse to go below 0.
    corrupt_total(&stack, "kim", 1).await;
    let room = RoomId::parse("r1", "r").unwrap();
    assert!(mark_room_read(store.as_ref(), &user("kim"), &room, &policy)
        .await
        .is_err());
    assert_eq!(
        total_unread(store.as_ref(), "kim").await,
        1,
        "unchanged, not negative"
    );
    // Reconcile repairs TOTAL; then the read goes through.
    reconcile_all(store.as_ref(), store.as_ref(), Mode::Full, &policy)
        .await
        .unwrap();
    let outcome = mark_room_read(store.as_ref(), &user("kim"), &room, &policy)
        .await
        .unwrap();
    assert_eq!((outcome.after.total.unread, outcome.after.drift()), (0, 0));
}

#[tokio::test]
async fn reconcile_repairs_drift_and_then_reports_zero() {
    let stack = test_stack(&[]).await.unwrap();
    let store = inbox(&stack, &CallMeter::default());
    let policy = BackoffPolicy::default();
    let batch = (0..3)
        .map(|i| (i, notification(&format!("rc{i}"), "jo", "r1")))
        .collect();
    apply_to_counters(store.as_ref(), batch, &policy).await;
    // Break TOTAL behind herald's back.
    corrupt_total(&stack, "jo", 7).await;
    let report = reconcile_all(store.as_ref(), store.as_ref(), Mode::Full, &policy)
        .await
        .unwrap();
    assert_eq!(
        (
            report.users,
            report.drifted_users,
            report.drift,
            report.repaired
        ),
        (1, 1, 4, 1)
    );
    assert_eq!(total_unread(store.as_ref(), "jo").await, 3);
    let again = reconcile_all(store.as_ref(), store.as_ref(), Mode::Full, &policy)
        .await
        .unwrap();
    assert_eq!((again.users, again.drift), (1, 0));
}
