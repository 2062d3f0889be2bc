//! Joining a digest: an event goes into the (user, key)'s open window, or opens its own, in
//! one transaction; a lost race is read again and retried, a redelivered event answered from
//! its join record.

use super::{plan_join, Digest, DigestEvent, JoinPlan, Joined};
use crate::domain::backoff::BackoffPolicy;
use crate::domain::counters::UserKey;
use crate::error::StoreError;
use crate::ports::digests::Digests;
use crate::ports::CommitError;

/// Adds `event` to the window of (user, `digest.key`) open now, or opens one; a conflict with
/// a concurrent event or a seal is read again and retried. A redelivered event finds its join
/// record and answers where it went.
pub async fn join(
    store: &dyn Digests,
    user: &UserKey,
    digest: &Digest,
    event: &DigestEvent,
    now: impl Fn() -> jiff::Timestamp,
    policy: &BackoffPolicy,
) -> Result<Joined, StoreError> {
    let mut retry = policy.start();
    loop {
        let found = store.open_window(user, &digest.key).await?;
        let plan = plan_join(found.as_ref(), digest.window_seconds, now());
        let joined = match &plan {
            JoinPlan::Join(open) => Joined {
                window: open.window.clone(),
                closes_at: open.closes_at,
                opened: false,
            },
            JoinPlan::Open { closes_at, .. } => Joined {
                window: event.id.clone(),
                closes_at: *closes_at,
                opened: true,
            },
        };
        match store
            .add_event(
                user,
                &digest.key,
                &plan,
                event,
                now(),
                digest.window_seconds,
            )
            .await
        {
            Ok(()) => return Ok(joined),
            Err(CommitError::Duplicates(_)) => {
                return store
                    .joined(user, &digest.key, &event.id)
                    .await?
                    .ok_or_else(|| StoreError::Transient("a digest join record vanished".into()));
            }
            Err(CommitError::Fatal(reason)) => return Err(StoreError::Fatal(reason)),
            Err(CommitError::Retryable(_)) => {
                if !retry.wait().await {
                    return Err(StoreError::Transient(
                        "the digest window kept changing".into(),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::{Arc, Mutex};

    use rand::Rng;

    use super::*;
    use crate::domain::ids::{TenantId, UserId};
    use crate::fake::InMemoryDigests;

    fn user() -> UserKey {
        UserKey {
            tenant: TenantId::parse("t1", "t").unwrap(),
            user: UserId::parse("u1", "u").unwrap(),
        }
    }

    fn event(i: usize, at: jiff::Timestamp) -> DigestEvent {
        DigestEvent {
            id: format!("e{i:03}"),
            title: format!("Comment {i}"),
            body: "b".into(),
            created_at: at,
            data: None,
        }
    }

    /// 60 events of one key from concurrent writers, over a clock that runs through many
    /// 2-second windows, each event joined twice (a redelivery after a crash) and some a
    /// third time concurrently; meanwhile each due window is sealed and read as its delivery
    /// would. Every event is in exactly one window, every answer about it agrees, a window
    /// read at its seal never gains an event after, and each window has its opener.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_event_lands_in_exactly_one_window_under_concurrency_and_redelivery() {
        for round in 0..5 {
            let store = Arc::new(InMemoryDigests::with_latency(
                std::time::Duration::from_micros(300),
            ));
            let clock = Arc::new(AtomicI64::new(1_800_000_000_000));
            let digest = Digest {
                key: "post-1".into(),
                window_seconds: 2,
                title: None,
            };
            let answers: Arc<Mutex<BTreeMap<String, Vec<Joined>>>> = Arc::default();
            let sealed: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
            let policy = BackoffPolicy {
                base: std::time::Duration::from_micros(50),
                ..BackoffPolicy::default()
            };
            let mut tasks = Vec::new();
            for i in 0..60 {
                let (store, clock, digest, answers) = (
                    store.clone(),
                    clock.clone(),
                    digest.clone(),
                    answers.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    // Spread over real time, so the clock moves on while events arrive.
                    let jitter = rand::rng().random_range(0..300u64);
                    let start = i as u64 * 200 + jitter;
                    tokio::time::sleep(std::time::Duration::from_micros(start)).await;
                    let advance = rand::rng().random_range(0..250i64);
                    let at = clock.fetch_add(advance, Ordering::SeqCst) + advance;
                    let e = event(i, jiff::Timestamp::from_millisecond(at).unwrap());
                    let now =
                        || jiff::Timestamp::from_millisecond(clock.load(Ordering::SeqCst)).unwrap();
                    let copies = if i % 7 == 0 { 3 } else { 2 };
                    for _ in 0..copies {
                        let joined = join(store.as_ref(), &user(), &digest, &e, now, &policy)
                            .await
                            .unwrap();
                        answers
                            .lock()
                            .unwrap()
                            .entry(e.id.clone())
                            .or_default()
                            .push(joined);
                    }
                }));
            }
            // The digests' deliveries: each window due by the clock is sealed and read once.
            let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let closer = {
                let (store, clock, answers, sealed, done) = (
                    store.clone(),
                    clock.clone(),
                    answers.clone(),
                    sealed.clone(),
                    done.clone(),
                );
                tokio::spawn(async move {
                    while !done.load(Ordering::SeqCst) {
                        let now = jiff::Timestamp::from_millisecond(clock.load(Ordering::SeqCst))
                            .unwrap();
                        let due: Vec<Joined> = answers
                            .lock()
                            .unwrap()
                            .values()
                            .flatten()
                            .filter(|j| j.opened && j.closes_at <= now)
                            .cloned()
                            .collect();
                        for window in due {
                            if sealed.lock().unwrap().contains_key(&window.window) {
                                continue;
                            }
                            store.seal(&user(), "post-1", &window.window).await.unwrap();
                            let (events, _) = store
                                .events(&user(), "post-1", &window.window, 1_000)
                                .await
                                .unwrap();
                            let mut ids: Vec<String> = events.into_iter().map(|e| e.id).collect();
                            ids.sort();
                            sealed.lock().unwrap().insert(window.window.clone(), ids);
                        }
                        tokio::task::yield_now().await;
                    }
                })
            };
            for t in tasks {
                t.await.unwrap();
            }
            done.store(true, Ordering::SeqCst);
            closer.await.unwrap();

            let windows = store.windows(&user());
            let mut seen: BTreeMap<String, String> = BTreeMap::new();
            for ((_, window), ids) in &windows {
                assert!(
                    ids.contains(window),
                    "round {round}: window {window} lacks its opener"
                );
                for id in ids {
                    assert!(
                        seen.insert(id.clone(), window.clone()).is_none(),
                        "round {round}: {id} is in two windows"
                    );
                }
            }
            let answers = answers.lock().unwrap();
            assert_eq!(seen.len(), 60, "round {round}: every event in a window");
            for (id, joined) in answers.iter() {
                let first = &joined[0];
                assert!(
                    joined.iter().all(|j| j == first),
                    "round {round}: {id}: {joined:?}"
                );
                assert_eq!(seen[id], first.window);
                assert_eq!(first.opened, *id == first.window);
            }
            assert!(
                windows.len() > 1,
                "round {round}: the clock ran through several windows"
            );
            // A window read when it was sealed kept exactly those events.
            let sealed = sealed.lock().unwrap();
            assert!(
                !sealed.is_empty(),
                "round {round}: windows were sealed while events came"
            );
            for (window, ids) in sealed.iter() {
                let mut now = windows[&("post-1".to_owned(), window.clone())].clone();
                now.sort();
                assert_eq!(
                    &now, ids,
                    "round {round}: window {window} changed after its seal"
                );
            }
        }
    }
}
