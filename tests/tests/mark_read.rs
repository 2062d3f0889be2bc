//! Mark-read against the emulator: the version check catches a message that lands between
//! the read and the write, and TOTAL never goes negative.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::time::Duration;

use herald::domain::backoff::BackoffPolicy;
use herald::domain::counters::commit::apply_to_counters;
use herald::domain::mark_read::{mark_all_read, mark_room_read};
use herald::domain::reconcile::{reconcile_all, Mode};
use herald::fake::{Hooked, StoreHooks};
use herald::ports::{CounterStore, UserWrites};
use herald::{Notification, RoomId, UserKey};
use testkit::counters_kit::*;
use testkit::harness::test_stack;
use testkit::meter::CallMeter;

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
            let writes = UserWrites {
                user: user.clone(),
                messages: vec![n],
            };
            store.commit(&[writes]).await.unwrap();
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
