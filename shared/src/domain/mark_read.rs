//! Mark-read: zero a room (or all rooms) at the version seen and subtract the same amount
//! from TOTAL in one transaction; when a message lands in between, the version check fails
//! and the read is retried. Counters never go negative (TOTAL has a floor condition).

use std::collections::BTreeMap;

use super::backoff::{BackoffPolicy, Retry};
use super::counters::{Counter, Counters, UserKey, MAX_TRANSACTION_ITEMS};
use super::ids::RoomId;
use crate::error::StoreError;
use crate::ports::{CommitError, CounterStore};

/// Most room items zeroed in one transaction (plus TOTAL = 100).
const MAX_ROOMS_PER_READ: usize = MAX_TRANSACTION_ITEMS - 1;

/// What a mark-read did: the counters after, and how much it cleared in each room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOutcome {
    pub after: Counters,
    pub cleared: BTreeMap<RoomId, u64>,
}

/// Marks one room read: zero the room at the version seen and subtract the same amount from
/// TOTAL in one transaction; on a lost race re-read and retry.
pub async fn mark_room_read(
    store: &dyn CounterStore,
    user: &UserKey,
    room: &RoomId,
    policy: &BackoffPolicy,
) -> Result<ReadOutcome, StoreError> {
    let mut retry = policy.start();
    loop {
        let counters = store.read_counters(user).await?;
        let seen = counters.rooms.get(room).copied().unwrap_or_default();
        if seen.unread == 0 {
            return Ok(ReadOutcome {
                after: counters,
                cleared: BTreeMap::new(),
            });
        }
        match store.zero_rooms(user, &[(room.clone(), seen)]).await {
            Ok(()) => {
                let cleared = BTreeMap::from([(room.clone(), seen.unread)]);
                return Ok(ReadOutcome {
                    after: read_after(store, user, &counters, &cleared).await,
                    cleared,
                });
            }
            Err(err) => backoff_or_fail(&mut retry, err).await?,
        }
    }
}

/// The counters after a successful clear: re-read, or (if that read fails) derived from what
/// was seen, so a committed clear is never reported as a failure.
async fn read_after(
    store: &dyn CounterStore,
    user: &UserKey,
    seen: &Counters,
    cleared: &BTreeMap<RoomId, u64>,
) -> Counters {
    match store.read_counters(user).await {
        Ok(after) => after,
        Err(e) => {
            tracing::warn!(error = %e, "re-read after mark-read failed; answering from the commit");
            let mut after = seen.clone();
            for (room, n) in cleared {
                if let Some(c) = after.rooms.get_mut(room) {
                    c.unread = c.unread.saturating_sub(*n);
                }
                after.total.unread = after.total.unread.saturating_sub(*n);
            }
            after
        }
    }
}

/// Marks every room read, in transactions of up to 99 rooms each.
pub async fn mark_all_read(
    store: &dyn CounterStore,
    user: &UserKey,
    policy: &BackoffPolicy,
) -> Result<ReadOutcome, StoreError> {
    let mut retry = policy.start();
    let mut cleared: BTreeMap<RoomId, u64> = BTreeMap::new();
    let mut last_seen = Counters::default();
    loop {
        let counters = match store.read_counters(user).await {
            Ok(c) => c,
            // Some rooms were cleared already: report them rather than a failure.
            Err(_) if !cleared.is_empty() => {
                let after = read_after(store, user, &last_seen, &cleared).await;
                return Ok(ReadOutcome { after, cleared });
            }
            Err(e) => return Err(e),
        };
        let unread: Vec<(RoomId, Counter)> = counters
            .rooms
            .iter()
            .filter(|(_, c)| c.unread > 0)
            .map(|(r, c)| (r.clone(), *c))
            .collect();
        if unread.is_empty() {
            return Ok(ReadOutcome {
                after: counters,
                cleared,
            });
        }
        last_seen = counters;
        for chunk in unread.chunks(MAX_ROOMS_PER_READ) {
            match store.zero_rooms(user, chunk).await {
                Ok(()) => {
                    for (room, seen) in chunk {
                        *cleared.entry(room.clone()).or_default() += seen.unread;
                    }
                }
                Err(err) => {
                    if let Err(e) = backoff_or_fail(&mut retry, err).await {
                        if cleared.is_empty() {
                            return Err(e);
                        }
                        let after = read_after(store, user, &last_seen, &cleared).await;
                        return Ok(ReadOutcome { after, cleared });
                    }
                    break;
                }
            }
        }
    }
}

pub(crate) async fn backoff_or_fail(retry: &mut Retry, err: CommitError) -> Result<(), StoreError> {
    match err {
        CommitError::Fatal(reason) => Err(StoreError::Fatal(reason)),
        CommitError::Retryable(_) | CommitError::Duplicates(_) => {
            if retry.wait().await {
                Ok(())
            } else {
                Err(StoreError::Transient(format!(
                    "counters kept changing; gave up after {} attempts",
                    retry.attempts()
                )))
            }
        }
    }
}
