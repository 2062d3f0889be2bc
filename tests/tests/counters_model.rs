//! Randomized model test of the counter algorithm: thousands of notifications, random
//! duplicate deliveries, injected conflicts and lost acks (commit happened, caller told it
//! failed), a tight retry budget so some work is handed back to the queue, 4+ workers, and
//! mark-reads interleaved throughout. Every counter must match the model afterwards.
//! Runs against the in-memory store (the emulator is too slow for thousands of transactions;
//! tests/tests/counters.rs covers the DynamoDB semantics on hundreds).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::domain::backoff::BackoffPolicy;
use herald::domain::counters::commit::Packing;
use herald::domain::mark_read::{mark_all_read, mark_room_read};
use herald::fake::{Faults, InMemoryInbox, RecordingQueue};
use herald::{Notification, RoomId, TenantId, UserId, UserKey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use testkit::sim::{drain, SimQueue};

struct Scenario {
    seed: u64,
    notifications: usize,
    users: usize,
    rooms: usize,
    duplicate_rate: f64,
    workers: usize,
    faults: Faults,
    packing: Packing,
}

type Cleared = Arc<Mutex<BTreeMap<(UserKey, RoomId), u64>>>;

fn key(user: usize) -> UserKey {
    UserKey {
        tenant: TenantId::parse("t1", "t").unwrap(),
        user: UserId::parse(format!("u{user}"), "u").unwrap(),
    }
}

async fn run(s: Scenario) {
    let mut rng = StdRng::seed_from_u64(s.seed);
    let store = Arc::new(InMemoryInbox::new(s.faults));
    let queue = Arc::new(SimQueue::new(Duration::ZERO));
    let writer = Arc::new(inbox_writer::InboxWriter {
        store: store.clone(),
        delivery: Arc::new(RecordingQueue::default()),
        channel_queues: Vec::new(),
        campaigns: None,
        // Tight budget: some transactions give up and go back to the queue, as in production.
        // Packed, a conflict first splits the pack without waiting, so the budget is spent far
        // less: none at all there, so every conflict on a lone user goes back to the queue.
        policy: BackoffPolicy {
            base: Duration::from_micros(200),
            cap: Duration::from_millis(2),
            budget: if s.packing.pack_users {
                Duration::ZERO
            } else {
                Duration::from_millis(3)
            },
        },
        packing: s.packing,
        preferences: None,
        step_schedulers: Vec::new(),
        digests: None,
    });

    // The model: unique inbox notifications per (user, room).
    let mut expected: BTreeMap<(UserKey, RoomId), u64> = BTreeMap::new();
    let mut unique_ids = HashSet::new();
    for i in 0..s.notifications {
        let user = rng.random_range(0..s.users);
        let room = RoomId::parse(format!("r{}", rng.random_range(0..s.rooms)), "r").unwrap();
        let inbox = rng.random_bool(0.9);
        let n = Notification {
            tenant: TenantId::parse("t1", "t").unwrap(),
            id: herald::NotificationId::parse(format!("n{i}"), "id").unwrap(),
            user_id: key(user).user,
            room_id: room.clone(),
            title: "t".into(),
            body: "b".into(),
            channels: if inbox {
                vec![herald::Channel::Inbox]
            } else {
                vec![herald::Channel::Email]
            },
            category: Default::default(),
            data: None,
            created_at: format!("2026-11-23T00:00:00.{i:06}Z").parse().unwrap(),
            log_key: None,
            correlation_id: None,
            campaign: None,
            workflow: None,
            steps: None,
            digest: None,
        };
        if inbox {
            *expected.entry((key(user), room)).or_default() += 1;
        }
        unique_ids.insert(n.id.clone());
        let body = serde_json::to_string(&n).unwrap();
        queue.push(body.clone());
        while rng.random_bool(s.duplicate_rate) {
            queue.push(body.clone()); // SQS at-least-once: the same message again
        }
    }

    // Readers mark rooms (and sometimes everything) read while the workers run.
    let cleared: Cleared = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..2u64 {
        let (store, cleared, done) = (store.clone(), cleared.clone(), done.clone());
        let (users, rooms, seed) = (s.users, s.rooms, s.seed + 1 + r);
        readers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let policy = BackoffPolicy {
                base: Duration::from_micros(200),
                cap: Duration::from_millis(2),
                budget: Duration::from_millis(200),
            };
            while !done.load(Ordering::Relaxed) {
                let user = key(rng.random_range(0..users));
                let outcome = if rng.random_bool(0.2) {
                    mark_all_read(store.as_ref(), &user, &policy).await
                } else {
                    let room =
                        RoomId::parse(format!("r{}", rng.random_range(0..rooms)), "r").unwrap();
                    mark_room_read(store.as_ref(), &user, &room, &policy).await
                };
                // A failed call (injected conflicts) changed nothing; a successful one says what it cleared.
                if let Ok(outcome) = outcome {
                    let mut cleared = cleared.lock().unwrap();
                    for (room, n) in outcome.cleared {
                        *cleared.entry((user.clone(), room)).or_default() += n;
                    }
                }
                tokio::task::yield_now().await;
            }
        }));
    }

    drain(queue.clone(), writer, s.workers).await;
    done.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }

    assert!(
        queue.poisoned.lock().unwrap().is_empty(),
        "nothing valid is poison"
    );
    // The scenario met the faults it is about (how many depends on the fake's unseeded
    // draws and the workers' interleaving; that there were some, at these rates, does not).
    let injected = |count: &std::sync::atomic::AtomicU64| count.load(Ordering::Relaxed);
    assert!(
        injected(&store.injected.lost_acks) > 0,
        "lost acks were injected"
    );
    if s.packing.pack_users {
        assert!(
            injected(&store.injected.pack_conflicts) > 0,
            "conflicts hit packs of several users, which were split"
        );
    } else {
        assert!(
            injected(&store.injected.lone_conflicts) > 0,
            "conflicts hit single-user transactions, which backed off"
        );
    }
    assert_eq!(
        store.message_count(),
        unique_ids.len(),
        "every notification stored exactly once"
    );
    let cleared = cleared.lock().unwrap();
    let mut checked_rooms = 0;
    for u in 0..s.users {
        let user = key(u);
        let counters = store.snapshot(&user);
        assert_eq!(
            counters.drift(),
            0,
            "{user:?}: TOTAL equals the sum of rooms"
        );
        for r in 0..s.rooms {
            let room = RoomId::parse(format!("r{r}"), "r").unwrap();
            let k = (user.clone(), room.clone());
            let delivered = expected.get(&k).copied().unwrap_or(0);
            let read = cleared.get(&k).copied().unwrap_or(0);
            let unread = counters.rooms.get(&room).map_or(0, |c| c.unread);
            assert_eq!(
                store.inbox_messages(&user, &room),
                delivered,
                "{k:?}: stored inbox messages"
            );
            assert_eq!(
                store.cleared_total(&user, &room),
                read,
                "{k:?}: callers were told what the store cleared"
            );
            assert_eq!(
                unread + read,
                delivered,
                "{k:?}: unread {unread} + read {read} != delivered {delivered}"
            );
            checked_rooms += 1;
        }
    }
    assert_eq!(checked_rooms, s.users * s.rooms);
    assert!(
        cleared.values().sum::<u64>() > 0,
        "the readers did interleave"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_match_the_model_under_duplicates_conflicts_and_lost_acks() {
    for (seed, pack_users) in [(1, true), (2, true), (3, false)] {
        run(Scenario {
            seed,
            notifications: 3_000,
            users: 40,
            rooms: 4,
            duplicate_rate: 0.2,
            workers: 4,
            faults: Faults {
                conflict: 0.15,
                lost_ack: 0.05,
                latency: Duration::ZERO,
            },
            packing: Packing {
                pack_users,
                concurrency: 2,
            },
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_workers_on_few_hot_users() {
    // A marketing burst concentrated on a handful of users: maximal contention.
    run(Scenario {
        seed: 42,
        notifications: 2_000,
        users: 3,
        rooms: 2,
        duplicate_rate: 0.3,
        workers: 8,
        faults: Faults {
            conflict: 0.1,
            lost_ack: 0.05,
            latency: Duration::from_micros(50),
        },
        packing: Packing::default(),
    })
    .await;
}
