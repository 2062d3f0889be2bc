//! The inbox table in memory (`InMemoryInbox`: counters and message log, with injected
//! conflicts, lost acks and latency), and `Hooked`: a real store behind hooks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;

use crate::domain::counters::{room_increments, CommitStamp, Counter, Counters, UserKey};
use crate::domain::ids::{NotificationId, RoomId};
use crate::domain::notification::{Channel, Notification};
use crate::domain::reconcile::change_mark;
use crate::error::StoreError;
use crate::ports::*;

/// Faults a fake injects, as probabilities per call.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Fail before applying (TransactionConflict / throttling).
    pub conflict: f64,
    /// Commit, then fail anyway: the caller cannot tell the message transaction committed
    /// (a timeout after commit). Applies to `commit` only.
    pub lost_ack: f64,
    /// Simulated round trip per call.
    pub latency: Duration,
}

#[derive(Default)]
pub(super) struct InboxState {
    /// Sum cleared per room by successful mark-reads (to check callers were told the truth).
    cleared_log: BTreeMap<(UserKey, RoomId), u64>,
    /// Each message with its commit stamp.
    pub(super) messages: HashMap<(UserKey, NotificationId), (Notification, u64)>,
    rooms: BTreeMap<(UserKey, RoomId), Counter>,
    /// Each room's stamp of its last mark-read.
    pub(super) read_at: BTreeMap<(UserKey, RoomId), u64>,
    /// Each room's stamp of its last seen-all.
    pub(super) seen_at: BTreeMap<(UserKey, RoomId), u64>,
    /// Messages marked seen one by one, and archived ones.
    pub(super) seen: HashSet<(UserKey, NotificationId)>,
    pub(super) archived: HashSet<(UserKey, NotificationId)>,
    pub(super) totals: BTreeMap<UserKey, Counter>,
    /// Each user's latest change-log mark (`reconcile::change_mark`): a counter write here
    /// logs its user at once, as the stream's consumer does on AWS a moment later.
    pub(super) changed: BTreeMap<UserKey, String>,
    pub(super) checkpoints: HashMap<String, String>,
}

impl InboxState {
    /// Read: a mark-read of its room committed after it.
    pub(super) fn is_read(&self, user: &UserKey, room: &RoomId, stamp: u64) -> bool {
        self.read_at
            .get(&(user.clone(), room.clone()))
            .is_some_and(|at| stamp <= *at)
    }

    /// Seen by a room read or a seen-all that committed after it (not by its own flag).
    fn covered(&self, user: &UserKey, room: &RoomId, stamp: u64) -> bool {
        self.is_read(user, room, stamp)
            || self
                .seen_at
                .get(&(user.clone(), room.clone()))
                .is_some_and(|at| stamp <= *at)
    }

    /// Each room still has the version seen (the condition of a transaction that zeroes them).
    fn versions_hold(&self, user: &UserKey, rooms: &[(RoomId, Counter)]) -> bool {
        rooms.iter().all(|(r, seen)| {
            self.rooms
                .get(&(user.clone(), r.clone()))
                .is_some_and(|c| c.version == seen.version)
        })
    }

    pub(super) fn message_ref(&self, user: &UserKey, n: &Notification, stamp: u64) -> MessageRef {
        let key = (user.clone(), n.id.clone());
        MessageRef {
            id: n.id.to_string(),
            log_key: n.log_key().to_owned(),
            room: n.room_id.clone(),
            stamp,
            seen: self.seen.contains(&key) || self.covered(user, &n.room_id, stamp),
            archived: self.archived.contains(&key),
        }
    }
}

/// An in-memory inbox table.
pub struct InMemoryInbox {
    state: Mutex<InboxState>,
    faults: Faults,
    /// Users per page of `users_page`: small by default, so reconcile always walks pages.
    pub(super) page_size: usize,
    /// Calls that reached the store (for scaling simulations).
    pub calls: AtomicU64,
    /// The faults `commit` injected so far, so a test can show its scenario met them.
    pub injected: InjectedFaults,
}

/// Counts of the faults an `InMemoryInbox` injected into commits.
#[derive(Debug, Default)]
pub struct InjectedFaults {
    /// Conflicts on a transaction of several users (which the writer splits).
    pub pack_conflicts: AtomicU64,
    /// Conflicts on a transaction of one user (which the writer backs off and retries).
    pub lone_conflicts: AtomicU64,
    /// Commits applied and then reported as failed.
    pub lost_acks: AtomicU64,
}

impl Default for InMemoryInbox {
    fn default() -> Self {
        Self::new(Faults::default())
    }
}

impl InMemoryInbox {
    pub fn new(faults: Faults) -> Self {
        Self {
            state: Mutex::default(),
            faults,
            page_size: 3,
            calls: AtomicU64::new(0),
            injected: InjectedFaults::default(),
        }
    }

    /// Moves a user's change mark (as if its last counter write happened at `at`).
    pub fn mark_changed_at(&self, user: &UserKey, at: jiff::Timestamp) {
        self.lock()
            .changed
            .insert(user.clone(), change_mark(user, at));
    }

    /// Messages that are in someone's inbox (the channel `inbox`), each once.
    pub fn inbox_message_count(&self) -> usize {
        self.lock()
            .messages
            .values()
            .filter(|(n, _)| n.wants(Channel::Inbox))
            .count()
    }

    /// Forgets the user's messages (as the message log's TTL does), leaving counters alone.
    pub fn expire_messages(&self, user: &UserKey) {
        self.lock().messages.retain(|(u, _), _| u != user);
    }

    /// Sets a user's TOTAL behind herald's back (to create drift).
    pub fn corrupt_total(&self, user: &UserKey, unread: u64) {
        self.lock().totals.entry(user.clone()).or_default().unread = unread;
    }

    pub(super) async fn enter(&self) -> Result<bool, String> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !self.faults.latency.is_zero() {
            tokio::time::sleep(self.faults.latency).await;
        }
        let mut rng = rand::rng();
        if rng.random_bool(self.faults.conflict.clamp(0.0, 1.0)) {
            return Err("injected TransactionConflict".into());
        }
        Ok(rng.random_bool(self.faults.lost_ack.clamp(0.0, 1.0)))
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every user with a TOTAL item.
    pub fn users(&self) -> Vec<UserKey> {
        self.lock().totals.keys().cloned().collect()
    }

    pub fn message_count(&self) -> usize {
        self.lock().messages.len()
    }

    /// What successful mark-reads cleared in a room, summed.
    pub fn cleared_total(&self, user: &UserKey, room: &RoomId) -> u64 {
        self.lock()
            .cleared_log
            .get(&(user.clone(), room.clone()))
            .copied()
            .unwrap_or(0)
    }

    /// A user's counters without injected faults (for checking results).
    pub fn snapshot(&self, user: &UserKey) -> Counters {
        let state = self.lock();
        Counters {
            total: state.totals.get(user).copied().unwrap_or_default(),
            rooms: state
                .rooms
                .iter()
                .filter(|((u, _), _)| u == user)
                .map(|((_, r), c)| (r.clone(), *c))
                .collect(),
        }
    }

    /// Whether the message log holds this notification of this user.
    pub fn has_message(&self, user: &UserKey, id: &NotificationId) -> bool {
        self.lock()
            .messages
            .contains_key(&(user.clone(), id.clone()))
    }

    /// A user's TOTAL unread, without injected faults (one lookup: simulations check millions).
    pub fn unread_total(&self, user: &UserKey) -> u64 {
        self.lock().totals.get(user).map_or(0, |total| total.unread)
    }

    /// Stored inbox messages of one user in one room.
    pub fn inbox_messages(&self, user: &UserKey, room: &RoomId) -> u64 {
        self.lock()
            .messages
            .iter()
            .filter(|((u, _), (n, _))| u == user && &n.room_id == room && n.wants(Channel::Inbox))
            .count() as u64
    }
}

#[async_trait]
impl CounterStore for InMemoryInbox {
    async fn applied(&self, messages: &[Notification]) -> Result<Vec<bool>, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let state = self.lock();
        Ok(messages
            .iter()
            .map(|m| {
                let user = UserKey {
                    tenant: m.tenant.clone(),
                    user: m.user_id.clone(),
                };
                state.messages.contains_key(&(user, m.id.clone()))
            })
            .collect())
    }

    async fn commit(&self, writes: &[UserWrites]) -> Result<(), CommitError> {
        let lose_ack = match self.enter().await {
            Ok(lose_ack) => lose_ack,
            Err(conflict) => {
                let count = if writes.len() > 1 {
                    &self.injected.pack_conflicts
                } else {
                    &self.injected.lone_conflicts
                };
                count.fetch_add(1, Ordering::Relaxed);
                return Err(CommitError::Retryable(conflict));
            }
        };
        let mut state = self.lock();
        // DynamoDB refuses a transaction that touches one item twice.
        let users: HashSet<&UserKey> = writes.iter().map(|w| &w.user).collect();
        let ids: HashSet<(&UserKey, &NotificationId)> = writes
            .iter()
            .flat_map(|w| w.messages.iter().map(move |m| (&w.user, &m.id)))
            .collect();
        let items: usize = writes.iter().map(|w| w.messages.len()).sum();
        if users.len() != writes.len() || ids.len() != items {
            return Err(CommitError::Fatal(
                "ValidationException: two operations on one item".into(),
            ));
        }
        let dups: Vec<(UserKey, NotificationId)> = ids
            .iter()
            .filter(|(u, id)| state.messages.contains_key(&((*u).clone(), (*id).clone())))
            .map(|(u, id)| ((*u).clone(), (*id).clone()))
            .collect();
        if !dups.is_empty() {
            return Err(CommitError::Duplicates(dups));
        }
        let stamp = CommitStamp::now();
        let ordered = writes.iter().all(|w| {
            room_increments(&w.messages).keys().all(|room| {
                state
                    .rooms
                    .get(&(w.user.clone(), room.clone()))
                    .is_none_or(|c| c.stamp < stamp)
            })
        });
        if !ordered {
            return Err(CommitError::Retryable(
                "ConditionalCheckFailed: room stamp".into(),
            ));
        }
        for w in writes {
            let user = &w.user;
            for m in &w.messages {
                state
                    .messages
                    .insert((user.clone(), m.id.clone()), (m.clone(), stamp));
            }
            let rooms = room_increments(&w.messages);
            let total: u64 = rooms.values().sum();
            for (room, n) in rooms {
                let c = state.rooms.entry((user.clone(), room)).or_default();
                c.unread += n;
                c.unseen += n;
                c.version += 1;
                c.stamp = stamp;
            }
            if total > 0 {
                let t = state.totals.entry(user.clone()).or_default();
                t.unread += total;
                t.unseen += total;
                t.version += 1;
                state
                    .changed
                    .insert(user.clone(), change_mark(user, jiff::Timestamp::now()));
            }
        }
        if lose_ack {
            self.injected.lost_acks.fetch_add(1, Ordering::Relaxed);
            return Err(CommitError::Retryable(
                "injected timeout after commit".into(),
            ));
        }
        Ok(())
    }

    async fn read_counters(&self, user: &UserKey) -> Result<Counters, StoreError> {
        self.enter().await.map_err(StoreError::Transient)?;
        Ok(self.snapshot(user))
    }

    async fn zero_rooms(
        &self,
        user: &UserKey,
        rooms: &[(RoomId, Counter)],
    ) -> Result<(), CommitError> {
        self.enter().await.map_err(CommitError::Retryable)?;
        let mut state = self.lock();
        let sum: u64 = rooms.iter().map(|(_, c)| c.unread).sum();
        let versions_hold = state.versions_hold(user, rooms);
        let unseen: u64 = rooms.iter().map(|(_, c)| c.unseen).sum();
        let total = state.totals.get(user).copied().unwrap_or_default();
        if !versions_hold || total.unread < sum || total.unseen < unseen {
            return Err(CommitError::Retryable("ConditionalCheckFailed".into()));
        }
        for (r, seen) in rooms {
            *state
                .cleared_log
                .entry((user.clone(), r.clone()))
                .or_default() += seen.unread;
            let stamp = CommitStamp::after(seen.stamp);
            if let Some(c) = state.rooms.get_mut(&(user.clone(), r.clone())) {
                c.unread = 0;
                c.unseen = 0;
                c.version += 1;
                c.stamp = stamp;
            }
            state.read_at.insert((user.clone(), r.clone()), stamp);
        }
        let t = state.totals.entry(user.clone()).or_default();
        t.unread -= sum;
        t.unseen -= unseen;
        t.version += 1;
        state
            .changed
            .insert(user.clone(), change_mark(user, jiff::Timestamp::now()));
        Ok(())
    }

    async fn repair_total(&self, user: &UserKey, seen: &Counters) -> Result<(), CommitError> {
        self.enter().await.map_err(CommitError::Retryable)?;
        let mut state = self.lock();
        let rooms_hold = seen.rooms.iter().all(|(r, c)| {
            state
                .rooms
                .get(&(user.clone(), r.clone()))
                .is_some_and(|now| now.version == c.version)
        });
        let t = state.totals.entry(user.clone()).or_default();
        if !rooms_hold || t.version != seen.total.version {
            return Err(CommitError::Retryable("ConditionalCheckFailed".into()));
        }
        t.unread = seen.rooms.values().map(|c| c.unread).sum();
        t.unseen = seen.rooms.values().map(|c| c.unseen).sum();
        t.version += 1;
        Ok(())
    }

    async fn mark_seen(&self, user: &UserKey, message: &MessageRef) -> Result<bool, CommitError> {
        self.enter().await.map_err(CommitError::Retryable)?;
        let mut state = self.lock();
        let id = NotificationId::parse(message.id.clone(), "id")
            .map_err(|e| CommitError::Fatal(e.to_string()))?;
        let key = (user.clone(), id);
        let Some((_, stamp)) = state.messages.get(&key) else {
            return Err(CommitError::Fatal(
                "ConditionalCheckFailed: no such message".into(),
            ));
        };
        let stamp = *stamp;
        if state.seen.contains(&key) {
            return Ok(false);
        }
        if state.covered(user, &message.room, stamp) {
            return Err(CommitError::Retryable(
                "ConditionalCheckFailed: the room was read or seen since".into(),
            ));
        }
        let room = state
            .rooms
            .get(&(user.clone(), message.room.clone()))
            .copied()
            .unwrap_or_default();
        let total = state.totals.get(user).copied().unwrap_or_default();
        if room.unseen == 0 || total.unseen == 0 {
            return Err(CommitError::Retryable(
                "ConditionalCheckFailed: unseen floor".into(),
            ));
        }
        state.seen.insert(key);
        if let Some(c) = state.rooms.get_mut(&(user.clone(), message.room.clone())) {
            c.unseen -= 1;
            c.version += 1;
        }
        let t = state.totals.entry(user.clone()).or_default();
        t.unseen -= 1;
        t.version += 1;
        state
            .changed
            .insert(user.clone(), change_mark(user, jiff::Timestamp::now()));
        Ok(true)
    }

    async fn zero_unseen(
        &self,
        user: &UserKey,
        rooms: &[(RoomId, Counter)],
    ) -> Result<(), CommitError> {
        self.enter().await.map_err(CommitError::Retryable)?;
        let mut state = self.lock();
        let sum: u64 = rooms.iter().map(|(_, c)| c.unseen).sum();
        let versions_hold = state.versions_hold(user, rooms);
        let total = state.totals.get(user).copied().unwrap_or_default();
        if !versions_hold || total.unseen < sum {
            return Err(CommitError::Retryable("ConditionalCheckFailed".into()));
        }
        for (r, seen) in rooms {
            let stamp = CommitStamp::after(seen.stamp);
            if let Some(c) = state.rooms.get_mut(&(user.clone(), r.clone())) {
                c.unseen = 0;
                c.version += 1;
                c.stamp = stamp;
            }
            state.seen_at.insert((user.clone(), r.clone()), stamp);
        }
        let t = state.totals.entry(user.clone()).or_default();
        t.unseen -= sum;
        t.version += 1;
        state
            .changed
            .insert(user.clone(), change_mark(user, jiff::Timestamp::now()));
        Ok(())
    }
}

/// What a `Hooked` store does around the calls it forwards. Every hook defaults to nothing.
#[async_trait]
pub trait StoreHooks: Send + Sync {
    /// Before a commit: an error fails it without reaching the store.
    async fn before_commit(&self, _writes: &[UserWrites]) -> Result<(), CommitError> {
        Ok(())
    }
    /// After a commit the store accepted.
    async fn after_commit(&self, _writes: &[UserWrites]) {}
    /// Before a mark-read's transaction, with the store (to race it).
    async fn before_zero_rooms(&self, _store: &dyn CounterStore, _user: &UserKey) {}
}

/// A real store behind hooks: fault injection and measurement behind the port, for tests
/// against the emulator (which never throttles) and the benchmark.
pub struct Hooked<H> {
    pub inner: std::sync::Arc<dyn CounterStore>,
    pub hooks: H,
}

#[async_trait]
impl<H: StoreHooks> CounterStore for Hooked<H> {
    async fn applied(&self, messages: &[Notification]) -> Result<Vec<bool>, StoreError> {
        self.inner.applied(messages).await
    }

    async fn commit(&self, writes: &[UserWrites]) -> Result<(), CommitError> {
        self.hooks.before_commit(writes).await?;
        self.inner.commit(writes).await?;
        self.hooks.after_commit(writes).await;
        Ok(())
    }

    async fn read_counters(&self, user: &UserKey) -> Result<Counters, StoreError> {
        self.inner.read_counters(user).await
    }

    async fn zero_rooms(
        &self,
        user: &UserKey,
        rooms: &[(RoomId, Counter)],
    ) -> Result<(), CommitError> {
        self.hooks
            .before_zero_rooms(self.inner.as_ref(), user)
            .await;
        self.inner.zero_rooms(user, rooms).await
    }

    async fn repair_total(&self, user: &UserKey, seen: &Counters) -> Result<(), CommitError> {
        self.inner.repair_total(user, seen).await
    }

    async fn mark_seen(&self, user: &UserKey, message: &MessageRef) -> Result<bool, CommitError> {
        self.inner.mark_seen(user, message).await
    }

    async fn zero_unseen(
        &self,
        user: &UserKey,
        rooms: &[(RoomId, Counter)],
    ) -> Result<(), CommitError> {
        self.inner.zero_unseen(user, rooms).await
    }
}

/// Fails the first `failures` commits as throttled; counts every attempt.
pub struct FailFirst {
    failures: AtomicU64,
    pub attempts: AtomicU64,
}

#[async_trait]
impl StoreHooks for FailFirst {
    async fn before_commit(&self, _: &[UserWrites]) -> Result<(), CommitError> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let left = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        match left {
            Ok(_) => Err(CommitError::Retryable(
                "injected ThrottlingException".into(),
            )),
            Err(_) => Ok(()),
        }
    }
}

/// A store whose first `failures` commits are throttled.
pub type Flaky = Hooked<FailFirst>;

impl Flaky {
    pub fn new(inner: std::sync::Arc<dyn CounterStore>, failures: u64) -> Self {
        Hooked {
            inner,
            hooks: FailFirst {
                failures: AtomicU64::new(failures),
                attempts: AtomicU64::new(0),
            },
        }
    }

    /// Commits attempted, failed ones included.
    pub fn attempts(&self) -> u64 {
        self.hooks.attempts.load(Ordering::Relaxed)
    }
}
