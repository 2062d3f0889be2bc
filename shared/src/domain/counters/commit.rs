//! Committing a batch to a `CounterStore`: packs of users' transactions, split in halves on
//! conflicts, duplicates dropped, backoff within one time budget for the whole batch.

use std::collections::HashSet;

use super::{pack_transactions, plan_transactions, UserKey, UserTransaction};
use crate::domain::backoff::{BackoffPolicy, Retry};
use crate::domain::ids::NotificationId;
use crate::domain::notification::Notification;
use crate::ports::counters::{CommitError, CounterStore, UserWrites};

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Stored and counted now.
    Committed,
    /// Stored and counted by an earlier delivery: nothing changed.
    AlreadyApplied,
    /// Not committed (budget spent or store failure): must be redelivered.
    Unfinished(String),
}

/// How a batch's user transactions go to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packing {
    /// Put several users' writes into one transaction (up to 100 items).
    pub pack_users: bool,
    /// Packs committed at the same time within one batch.
    pub concurrency: usize,
}

impl Default for Packing {
    fn default() -> Self {
        Self {
            pack_users: true,
            concurrency: 1,
        }
    }
}

/// Applies a batch to the store and returns each key's outcome, in no particular order.
pub async fn apply_to_counters<K: Clone>(
    store: &dyn CounterStore,
    batch: Vec<(K, Notification)>,
    policy: &BackoffPolicy,
) -> Vec<(K, Notification, ApplyOutcome)> {
    apply_packed(store, batch, policy, Packing::default()).await
}

/// Applies a batch with the given packing. Users' transactions are packed into as few
/// TransactWriteItems as the 100-item limit allows; a pack that meets a conflict or
/// throttling is split in halves, down to one user, so contention on one user never stalls
/// the others, and only a single user's transaction backs off.
pub async fn apply_packed<K: Clone>(
    store: &dyn CounterStore,
    batch: Vec<(K, Notification)>,
    policy: &BackoffPolicy,
    packing: Packing,
) -> Vec<(K, Notification, ApplyOutcome)> {
    // One budget for the whole batch: it must end before the function's timeout, however
    // many users the batch holds.
    let started = std::time::Instant::now();
    let transactions = plan_transactions(batch);
    let packs = if packing.pack_users {
        pack_transactions(transactions)
    } else {
        transactions.into_iter().map(|tx| vec![tx]).collect()
    };
    let mut outcomes = Vec::new();
    for wave in packs.chunks(packing.concurrency.max(1)) {
        let commits = wave
            .iter()
            .cloned()
            .map(|pack| commit_pack(store, pack, policy, started));
        for done in futures_util::future::join_all(commits).await {
            outcomes.extend(done);
        }
    }
    outcomes
}

/// Commits one pack, splitting it on conflicts; returns each key's outcome.
async fn commit_pack<K: Clone>(
    store: &dyn CounterStore,
    pack: Vec<UserTransaction<K>>,
    policy: &BackoffPolicy,
    batch_started: std::time::Instant,
) -> Vec<(K, Notification, ApplyOutcome)> {
    let mut outcomes = Vec::new();
    let mut record = |tx: &UserTransaction<K>, outcome: &ApplyOutcome| {
        for m in &tx.messages {
            for key in &m.keys {
                outcomes.push((key.clone(), m.notification.clone(), outcome.clone()));
            }
        }
    };
    let mut work = vec![(pack, policy.start_at(batch_started))];
    while let Some((mut pack, retry)) = work.pop() {
        pack.retain(|tx| !tx.messages.is_empty());
        if pack.is_empty() {
            continue;
        }
        let writes: Vec<UserWrites> = pack
            .iter()
            .map(|tx| UserWrites {
                user: tx.user.clone(),
                messages: tx.notifications(),
            })
            .collect();
        let span = tracing::info_span!(
            "commit",
            users = pack.len(),
            notification_ids = %pack
                .iter()
                .flat_map(|tx| tx.messages.iter().map(|m| m.notification.id.as_str()))
                .collect::<Vec<_>>()
                .join(","),
        );
        let result = tracing::Instrument::instrument(store.commit(&writes), span).await;
        match result {
            Ok(()) => pack
                .iter()
                .for_each(|tx| record(tx, &ApplyOutcome::Committed)),
            Err(CommitError::Duplicates(ids)) => {
                // Already-applied messages leave; the rest retries at once (no conflict).
                let ids: HashSet<(UserKey, NotificationId)> = ids.into_iter().collect();
                let mut found = false;
                for tx in &mut pack {
                    let (dups, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut tx.messages)
                        .into_iter()
                        .partition(|m| ids.contains(&(tx.user.clone(), m.notification.id.clone())));
                    found |= !dups.is_empty();
                    record(
                        &UserTransaction {
                            user: tx.user.clone(),
                            messages: dups,
                        },
                        &ApplyOutcome::AlreadyApplied,
                    );
                    tx.messages = rest;
                }
                if found {
                    work.push((pack, retry));
                } else {
                    // The store named no message of ours: treat as a conflict, not a loop.
                    split_or_wait(
                        pack,
                        retry,
                        policy,
                        batch_started,
                        &mut work,
                        &mut record,
                        "no duplicate of ours named",
                    )
                    .await;
                }
            }
            Err(CommitError::Retryable(reason)) => {
                split_or_wait(
                    pack,
                    retry,
                    policy,
                    batch_started,
                    &mut work,
                    &mut record,
                    &reason,
                )
                .await;
            }
            Err(CommitError::Fatal(reason)) if pack.len() > 1 => {
                // Find the user it is about; the others commit without them.
                tracing::warn!(%reason, "pack failed; splitting it");
                split_in_halves(pack, policy, batch_started, &mut work);
            }
            Err(CommitError::Fatal(reason)) => {
                let outcome = ApplyOutcome::Unfinished(reason);
                pack.iter().for_each(|tx| record(tx, &outcome));
            }
        }
    }
    outcomes
}

/// Both halves go back on the stack, each with a fresh retry count on the batch's budget.
fn split_in_halves<K>(
    mut pack: Vec<UserTransaction<K>>,
    policy: &BackoffPolicy,
    batch_started: std::time::Instant,
    work: &mut Vec<(Vec<UserTransaction<K>>, Retry)>,
) {
    let right = pack.split_off(pack.len() / 2);
    work.push((right, policy.start_at(batch_started)));
    work.push((pack, policy.start_at(batch_started)));
}

/// A pack that lost a race: several users split in halves at once; one user backs off and
/// retries, or is unfinished once the batch's budget is spent.
async fn split_or_wait<K: Clone>(
    pack: Vec<UserTransaction<K>>,
    mut retry: Retry,
    policy: &BackoffPolicy,
    batch_started: std::time::Instant,
    work: &mut Vec<(Vec<UserTransaction<K>>, Retry)>,
    record: &mut impl FnMut(&UserTransaction<K>, &ApplyOutcome),
    reason: &str,
) {
    if pack.len() > 1 {
        split_in_halves(pack, policy, batch_started, work);
    } else if retry.wait().await {
        work.push((pack, retry));
    } else {
        let outcome = ApplyOutcome::Unfinished(format!(
            "retry budget spent after {} attempts: {reason}",
            retry.attempts()
        ));
        pack.iter().for_each(|tx| record(tx, &outcome));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;

    use super::*;
    use crate::domain::ids::{TenantId, UserId};
    use crate::domain::notification::{parse_notification, IdSource};
    use crate::fake::{Hooked, InMemoryInbox, StoreHooks};

    fn batch(users: &[&str]) -> Vec<(usize, Notification)> {
        let tenant = TenantId::parse("t", "t").unwrap();
        users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let item = serde_json::json!({"user_id": u, "room_id": "r", "title": "t", "body": "b", "channels": ["inbox"]});
                (i, parse_notification(&item, i, &tenant, IdSource::Generate, "2026-11-29T09:00:00Z".parse().unwrap()).unwrap())
            })
            .collect()
    }

    #[test]
    fn packs_fill_up_to_100_items_and_never_hold_one_user_twice() {
        let users: Vec<String> = (0..40).map(|i| format!("u{i}")).collect();
        let names: Vec<&str> = users.iter().map(String::as_str).collect();
        // 40 users x (1 Put + room + TOTAL) = 120 items: two packs.
        let packs = pack_transactions(plan_transactions(batch(&names)));
        let sizes: Vec<usize> = packs
            .iter()
            .map(|p| p.iter().map(UserTransaction::item_count).sum())
            .collect();
        assert_eq!(sizes, vec![99, 21]);
        // One user over the limit: two transactions, two packs.
        let big = vec!["big"; 150];
        let packs = pack_transactions(plan_transactions(batch(&big)));
        assert_eq!(packs.len(), 2);
        assert!(packs.iter().all(|p| p.len() == 1));
    }

    /// Fails every pack that holds the hot user next to others, as a conflict would.
    struct HotUser(std::sync::atomic::AtomicU64);

    #[async_trait]
    impl StoreHooks for HotUser {
        async fn before_commit(&self, writes: &[UserWrites]) -> Result<(), CommitError> {
            let hot = writes.iter().any(|w| w.user.user.as_str() == "hot");
            if hot && writes.len() > 1 {
                self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(CommitError::Retryable("TransactionConflict".into()));
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_conflicted_pack_splits_until_the_hot_user_is_alone() {
        let inner = Arc::new(InMemoryInbox::default());
        let store = Hooked {
            inner: inner.clone(),
            hooks: HotUser(Default::default()),
        };
        let users = ["a", "b", "hot", "c", "d", "e", "f", "g"];
        let outcomes = apply_to_counters(&store, batch(&users), &BackoffPolicy::default()).await;
        assert_eq!(outcomes.len(), users.len());
        assert!(outcomes
            .iter()
            .all(|(_, _, o)| *o == ApplyOutcome::Committed));
        // 8 -> 4 -> 2 -> 1: three failed packs on the way down, no waiting.
        assert_eq!(store.hooks.0.load(std::sync::atomic::Ordering::Relaxed), 3);
        for u in users {
            let key = UserKey {
                tenant: TenantId::parse("t", "t").unwrap(),
                user: UserId::parse(u, "u").unwrap(),
            };
            assert_eq!(inner.snapshot(&key).total.unread, 1, "{u}");
        }
    }

    #[tokio::test]
    async fn duplicates_of_several_users_leave_the_pack_and_the_rest_commits() {
        let store = InMemoryInbox::default();
        let first = batch(&["a", "b", "c"]);
        apply_to_counters(
            &store,
            vec![first[0].clone(), first[2].clone()],
            &BackoffPolicy::default(),
        )
        .await;
        let mut outcomes = apply_to_counters(&store, first, &BackoffPolicy::default()).await;
        outcomes.sort_by_key(|(k, _, _)| *k);
        let kinds: Vec<ApplyOutcome> = outcomes.into_iter().map(|(_, _, o)| o).collect();
        assert_eq!(
            kinds,
            vec![
                ApplyOutcome::AlreadyApplied,
                ApplyOutcome::Committed,
                ApplyOutcome::AlreadyApplied
            ]
        );
    }
}
