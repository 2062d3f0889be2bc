//! Unread counters against the emulator's real DynamoDB semantics: exactly once under
//! redelivery, grouping and splitting of transactions, duplicates found from cancellation
//! reasons, backoff under throttling, and reconcile.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;

use herald::domain::backoff::BackoffPolicy;
use herald::domain::counters::commit::{apply_to_counters, ApplyOutcome};
use herald::domain::reconcile::{reconcile_all, Mode};
use herald::fake::Flaky;
use herald::ports::CounterStore;
use herald::Notification;
use testkit::counters_kit::*;
use testkit::harness::test_stack;
use testkit::meter::CallMeter;
use testkit::runner::LocalApp;

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

#[tokio::test]
async fn users_share_one_transaction_with_same_room_increments_coalesced() {
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
    // One transaction for both: alice's 4 Puts + r1 + r2 + TOTAL, bob's 6 Puts + r9 + TOTAL.
    assert_eq!(meter.counts().transaction_sizes, vec![15]);
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
