//! In-memory adapters for fast tests and simulations, with injectable faults and latency.
//! They keep DynamoDB's semantics that matter here: a transaction is all-or-nothing, a
//! duplicate Put cancels it, conditions compare versions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;

use crate::domain::contact::Contact;
use crate::domain::counters::{room_increments, CommitStamp, Counter, Counters, UserKey};
use crate::domain::ids::{NotificationId, RoomId, TenantId, UserId};
use crate::domain::notification::{Channel, Notification};
use crate::domain::reconcile::{change_mark, shard_mark};
use crate::error::{CallError, StoreError};
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
struct InboxState {
    /// Sum cleared per room by successful mark-reads (to check callers were told the truth).
    cleared_log: BTreeMap<(UserKey, RoomId), u64>,
    /// Each message with its commit stamp.
    messages: HashMap<(UserKey, NotificationId), (Notification, u64)>,
    rooms: BTreeMap<(UserKey, RoomId), Counter>,
    /// Each room's stamp of its last mark-read.
    read_at: BTreeMap<(UserKey, RoomId), u64>,
    totals: BTreeMap<UserKey, Counter>,
    /// The TOTAL item's change mark (`reconcile::change_mark`).
    changed: BTreeMap<UserKey, String>,
    checkpoints: HashMap<String, String>,
}

/// An in-memory inbox table.
pub struct InMemoryInbox {
    state: Mutex<InboxState>,
    faults: Faults,
    /// Users per page of `users_page`: small by default, so reconcile always walks pages.
    page_size: usize,
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

    async fn enter(&self) -> Result<bool, String> {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
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
                c.version += 1;
                c.stamp = stamp;
            }
            if total > 0 {
                let t = state.totals.entry(user.clone()).or_default();
                t.unread += total;
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
        let versions_hold = rooms.iter().all(|(r, seen)| {
            state
                .rooms
                .get(&(user.clone(), r.clone()))
                .is_some_and(|c| c.version == seen.version)
        });
        let total = state.totals.get(user).copied().unwrap_or_default();
        if !versions_hold || total.unread < sum {
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
                c.version += 1;
                c.stamp = stamp;
            }
            state.read_at.insert((user.clone(), r.clone()), stamp);
        }
        let t = state.totals.entry(user.clone()).or_default();
        t.unread -= sum;
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
        t.version += 1;
        Ok(())
    }
}

#[async_trait]
impl UserIndex for InMemoryInbox {
    async fn users_page(
        &self,
        set: &UserSet,
        cursor: Option<String>,
    ) -> Result<UsersPage, StoreError> {
        self.enter().await.map_err(StoreError::Transient)?;
        let state = self.lock();
        let members: Vec<UserKey> = match set {
            UserSet::Segment { segment, segments } => state
                .totals
                .keys()
                .enumerate()
                .filter(|(i, _)| *i as u32 % segments == *segment)
                .map(|(_, u)| u.clone())
                .collect(),
            UserSet::Changed { hour, shard } => {
                let wanted = shard_mark(hour, *shard);
                state
                    .changed
                    .iter()
                    .filter(|(_, mark)| **mark == wanted)
                    .map(|(u, _)| u.clone())
                    .collect()
            }
        };
        let start = match cursor {
            None => 0,
            Some(c) => c.parse::<usize>().map_err(|_| StoreError::BadCursor)?,
        };
        let end = (start + self.page_size).min(members.len());
        Ok(UsersPage {
            users: members.get(start..end).unwrap_or_default().to_vec(),
            next: (end < members.len()).then(|| end.to_string()),
        })
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lock().checkpoints.get(name).cloned())
    }

    async fn save_checkpoint(&self, name: &str, json: &str) -> Result<(), StoreError> {
        self.enter().await.map_err(StoreError::Transient)?;
        self.lock()
            .checkpoints
            .insert(name.to_owned(), json.to_owned());
        Ok(())
    }
}

#[async_trait]
impl MessageLog for InMemoryInbox {
    async fn list_messages(
        &self,
        user: &UserKey,
        room: Option<&RoomId>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<MessagePage, StoreError> {
        let state = self.lock();
        let mut mine: Vec<&(Notification, u64)> = state
            .messages
            .iter()
            .filter(|((u, _), (n, _))| {
                u == user && n.wants(Channel::Inbox) && room.is_none_or(|r| &n.room_id == r)
            })
            .map(|(_, m)| m)
            .collect();
        mine.sort_by(|(a, _), (b, _)| b.log_key().cmp(a.log_key()));
        // Cursors name their list, as the DynamoDB adapter's do.
        let list = room.map_or("*", RoomId::as_str);
        let start = match cursor {
            None => 0,
            Some(c) => c
                .strip_prefix(list)
                .and_then(|rest| rest.strip_prefix('|'))
                .and_then(|i| i.parse::<usize>().ok())
                .ok_or(StoreError::BadCursor)?,
        };
        let page: Vec<MessageView> = mine
            .iter()
            .skip(start)
            .take(limit as usize)
            .map(|(n, stamp)| MessageView {
                id: n.id.to_string(),
                room_id: n.room_id.to_string(),
                title: n.title.clone(),
                body: n.body.clone(),
                created_at: n.created_at.clone(),
                read: state
                    .read_at
                    .get(&(user.clone(), n.room_id.clone()))
                    .is_some_and(|at| stamp <= at),
                data: n.data.clone(),
            })
            .collect();
        let end = start + page.len();
        Ok(MessagePage {
            messages: page,
            next_cursor: (end < mine.len()).then(|| format!("{list}|{end}")),
        })
    }
}

/// A queue that records what was sent; `fail_all` makes every send fail.
#[derive(Default)]
pub struct RecordingQueue {
    pub sent: Mutex<Vec<OutgoingMessage>>,
    pub fail_all: std::sync::atomic::AtomicBool,
}

impl RecordingQueue {
    pub fn bodies(&self) -> Vec<String> {
        self.sent
            .lock()
            .map(|s| s.iter().map(|m| m.body.clone()).collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl QueueSender for RecordingQueue {
    async fn send(&self, messages: &[OutgoingMessage]) -> Vec<Result<(), QueueError>> {
        if self.fail_all.load(Ordering::Relaxed) {
            return vec![Err(QueueError::Invalid("injected queue outage".into())); messages.len()];
        }
        if let Ok(mut sent) = self.sent.lock() {
            sent.extend_from_slice(messages);
        }
        vec![Ok(()); messages.len()]
    }
}

/// Contacts, delivery records and suppressions in memory.
#[derive(Default)]
pub struct InMemoryDirectory {
    /// Calls that reached the store, as DynamoDB requests (a batch read of 100: one).
    pub calls: AtomicU64,
    /// The next this many contact reads fail as throttled.
    pub fail_contact_reads: std::sync::atomic::AtomicU32,
    /// A suppression read of one of these addresses fails as throttled (once each).
    pub fail_suppression_of: Mutex<HashSet<String>>,
    contacts: Mutex<HashMap<(TenantId, UserId), (Contact, u64)>>,
    pseudonyms: Mutex<HashMap<(TenantId, String), UserId>>,
    pub records: Mutex<Vec<DeliveryRecord>>,
    /// Where each record is in `records` (rebuilt when a test pushed records itself).
    record_index: Mutex<HashMap<(NotificationId, UserId, Channel), usize>>,
    /// Addresses suppressed for every tenant.
    pub suppressed: Mutex<HashSet<String>>,
    /// Addresses suppressed for one tenant.
    pub suppressed_for: Mutex<HashSet<(TenantId, String)>>,
}

/// What makes two delivery records the same delivery: notification, user and channel.
fn record_key(r: &DeliveryRecord) -> (NotificationId, UserId, Channel) {
    (r.notification_id.clone(), r.user_id.clone(), r.channel)
}

impl InMemoryDirectory {
    fn index(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(NotificationId, UserId, Channel), usize>> {
        self.record_index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where `record`'s delivery is in `records` (an index, rebuilt when a test pushed
    /// records itself: simulations hold millions).
    fn find_record(&self, records: &[DeliveryRecord], record: &DeliveryRecord) -> Option<usize> {
        let mut index = self.index();
        if index.len() != records.len() {
            *index = records
                .iter()
                .enumerate()
                .map(|(i, r)| (record_key(r), i))
                .collect();
        }
        index.get(&record_key(record)).copied()
    }
}

/// A fixed link-signing secret, as Secrets Manager would hand it out.
#[derive(Debug, Clone)]
pub struct StaticKeys(pub Vec<u8>);

impl Default for StaticKeys {
    fn default() -> Self {
        Self(b"a test secret that is long enough to sign links with".to_vec())
    }
}

#[async_trait]
impl crate::ports::LinkKeys for StaticKeys {
    async fn signer(&self) -> Result<crate::domain::unsubscribe::LinkSigner, StoreError> {
        crate::domain::unsubscribe::LinkSigner::new(&self.0)
            .ok_or_else(|| StoreError::Fatal("the link secret is shorter than 256 bits".into()))
    }
}

#[async_trait]
impl Directory for InMemoryDirectory {
    async fn contact(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Option<Contact>, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::task::yield_now().await;
        let failing = self
            .fail_contact_reads
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(StoreError::Transient(
                "injected ProvisionedThroughputExceededException".into(),
            ));
        }
        Ok(self.contact_versioned(tenant, user).await?.0)
    }

    async fn contacts(
        &self,
        tenant: &TenantId,
        users: &[UserId],
    ) -> Result<HashMap<UserId, Contact>, StoreError> {
        // As the adapter: one BatchGetItem per 100 users.
        self.calls
            .fetch_add(users.len().div_ceil(100) as u64, Ordering::Relaxed);
        tokio::task::yield_now().await;
        let contacts = self.contacts.lock().unwrap_or_else(|p| p.into_inner());
        Ok(users
            .iter()
            .filter_map(|u| {
                contacts
                    .get(&(tenant.clone(), u.clone()))
                    .map(|(c, _)| (u.clone(), c.clone()))
            })
            .collect())
    }

    async fn contact_versioned(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<(Option<Contact>, u64), StoreError> {
        Ok(self
            .contacts
            .lock()
            .ok()
            .and_then(|c| c.get(&(tenant.clone(), user.clone())).cloned())
            .map_or((None, 0), |(c, v)| (Some(c), v)))
    }

    async fn put_contact(
        &self,
        tenant: &TenantId,
        user: &UserId,
        contact: &Contact,
        pseudonym: &str,
        expected: u64,
    ) -> Result<u64, StoreError> {
        let Ok(mut contacts) = self.contacts.lock() else {
            return Err(StoreError::Fatal("poisoned".into()));
        };
        let key = (tenant.clone(), user.clone());
        let current = contacts.get(&key).map_or(0, |(_, v)| *v);
        if current != expected {
            return Err(StoreError::VersionConflict);
        }
        contacts.insert(key, (contact.clone(), expected + 1));
        if let Ok(mut p) = self.pseudonyms.lock() {
            p.insert((tenant.clone(), pseudonym.to_owned()), user.clone());
        }
        Ok(expected + 1)
    }

    async fn user_of_pseudonym(
        &self,
        tenant: &TenantId,
        pseudonym: &str,
    ) -> Result<Option<UserId>, StoreError> {
        Ok(self
            .pseudonyms
            .lock()
            .ok()
            .and_then(|p| p.get(&(tenant.clone(), pseudonym.to_owned())).cloned()))
    }

    async fn user_delivery_status(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
        user: &UserId,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut records = self.delivery_status(tenant, id).await?;
        records.retain(|r| &r.user_id == user);
        Ok(records)
    }

    async fn delivery_status(
        &self,
        _tenant: &TenantId,
        id: &NotificationId,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        Ok(self
            .records
            .lock()
            .map(|r| {
                r.iter()
                    .filter(|r| &r.notification_id == id)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn claim_delivery(
        &self,
        _tenant: &TenantId,
        record: &DeliveryRecord,
        stale_before: &str,
    ) -> Result<crate::ports::Claim, StoreError> {
        use crate::ports::{Claim, DeliveryState};
        self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::task::yield_now().await;
        let Ok(mut records) = self.records.lock() else {
            return Err(StoreError::Fatal("poisoned".into()));
        };
        let at = self.find_record(&records, record);
        let outcome = match at.map(|i| &records[i]) {
            None => Claim::Claimed { previous: None },
            Some(held)
                if held.state.claimable()
                    || (held.state == DeliveryState::Sending
                        && held.updated_at.as_str() < stale_before) =>
            {
                Claim::Claimed {
                    previous: Some(Box::new(held.clone())),
                }
            }
            Some(held) if held.state == DeliveryState::Sending => Claim::Held {
                since: held.updated_at.clone(),
            },
            Some(held) => Claim::Settled(held.state, held.skip),
        };
        if matches!(outcome, Claim::Claimed { .. }) {
            match at {
                Some(i) => records[i] = record.clone(),
                None => {
                    records.push(record.clone());
                    self.index().insert(record_key(record), records.len() - 1);
                }
            }
        }
        Ok(outcome)
    }

    async fn settle_delivery(
        &self,
        _tenant: &TenantId,
        record: &DeliveryRecord,
    ) -> Result<bool, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::task::yield_now().await;
        let Ok(mut records) = self.records.lock() else {
            return Err(StoreError::Fatal("poisoned".into()));
        };
        let Some(i) = self.find_record(&records, record) else {
            return Ok(false);
        };
        let held = &mut records[i];
        if held.state == crate::ports::DeliveryState::Sending && held.claim == record.claim {
            *held = record.clone();
            Ok(true)
        } else {
            Ok(false)
        }
    }

    async fn is_suppressed(&self, tenant: &TenantId, address: &str) -> Result<bool, StoreError> {
        let failing = self
            .fail_suppression_of
            .lock()
            .is_ok_and(|mut f| f.remove(address));
        if failing {
            return Err(StoreError::Transient(
                "injected ProvisionedThroughputExceededException".into(),
            ));
        }
        let address = address.to_ascii_lowercase();
        Ok(self.suppressed.lock().is_ok_and(|s| s.contains(&address))
            || self
                .suppressed_for
                .lock()
                .is_ok_and(|s| s.contains(&(tenant.clone(), address))))
    }

    async fn suppress(
        &self,
        tenant: Option<&TenantId>,
        address: &str,
        _reason: &str,
    ) -> Result<(), StoreError> {
        let address = address.to_ascii_lowercase();
        match tenant {
            None => self.suppressed.lock().map(|mut s| s.insert(address)).ok(),
            Some(t) => self
                .suppressed_for
                .lock()
                .map(|mut s| s.insert((t.clone(), address)))
                .ok(),
        };
        Ok(())
    }
}

/// Records emails, SMS and pushes; `throttle` makes every send fail as throttled.
#[derive(Default)]
pub struct RecordingSender {
    pub emails: Mutex<Vec<Email>>,
    pub sms: Mutex<Vec<(String, String)>>,
    pub pushes: Mutex<Vec<(String, String)>>,
    pub throttle: std::sync::atomic::AtomicBool,
    /// The next this many sends go out but their answer is lost (`SendError::Unknown`).
    pub lose_answers: std::sync::atomic::AtomicU32,
    /// SMS answer `OptedOut` (the number replied STOP).
    pub opted_out: std::sync::atomic::AtomicBool,
}

impl RecordingSender {
    fn check(&self) -> Result<(), SendError> {
        if self.throttle.load(Ordering::Relaxed) {
            return Err(SendError::Throttled(CallError::message(
                "injected TooManyRequestsException",
            )));
        }
        Ok(())
    }

    /// After a send went out: its answer, or a lost one.
    fn answer(&self) -> Result<String, SendError> {
        let lost = self
            .lose_answers
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if lost {
            return Err(SendError::Unknown(CallError::message(
                "injected timeout: the answer never arrived",
            )));
        }
        Ok(ulid::Ulid::new().to_string())
    }
}

#[async_trait]
impl EmailSender for RecordingSender {
    async fn send_email(&self, email: &Email) -> Result<String, SendError> {
        self.check()?;
        self.emails.lock().map(|mut e| e.push(email.clone())).ok();
        self.answer()
    }
}

#[async_trait]
impl MobileSender for RecordingSender {
    async fn send_sms(&self, sms: &crate::ports::Sms) -> Result<String, SendError> {
        self.check()?;
        if self.opted_out.load(Ordering::Relaxed) {
            let mut e = CallError::message("OptedOut: phone number is opted out");
            e.code = Some("OptedOut".into());
            return Err(SendError::OptedOut(e));
        }
        self.sms
            .lock()
            .map(|mut s| s.push((sms.to.clone(), sms.text.clone())))
            .ok();
        self.answer()
    }

    async fn send_push(
        &self,
        endpoint_arn: &str,
        title: &str,
        _body: &str,
    ) -> Result<String, SendError> {
        self.check()?;
        self.pushes
            .lock()
            .map(|mut p| p.push((endpoint_arn.into(), title.into())))
            .ok();
        self.answer()
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

/// A clock that shows one instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub jiff::Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> jiff::Timestamp {
        self.0
    }
}

/// A clock tests move forward by hand.
#[derive(Debug)]
pub struct ManualClock(pub Mutex<jiff::Timestamp>);

impl ManualClock {
    pub fn new(start: jiff::Timestamp) -> Self {
        Self(Mutex::new(start))
    }

    pub fn advance(&self, by: std::time::Duration) {
        if let Ok(mut now) = self.0.lock() {
            *now = now
                .checked_add(jiff::SignedDuration::try_from(by).unwrap_or_default())
                .unwrap_or(*now);
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> jiff::Timestamp {
        self.0.lock().map(|t| *t).unwrap_or_default()
    }
}

/// Sample values for tests.
/// Campaigns in memory: definitions, chunks, page records and progress sets; each call
/// takes `latency` and is counted (for simulations).
#[derive(Default)]
pub struct InMemoryCampaigns {
    state: Mutex<CampaignState>,
    pub latency: Duration,
    pub calls: AtomicU64,
    /// Items the last progress read touched (the campaign item and its counter shards).
    pub progress_items: AtomicU64,
}

#[derive(Default)]
struct CampaignState {
    campaigns: BTreeMap<(TenantId, String), crate::domain::campaign::Campaign>,
    keys: HashMap<(TenantId, String), String>,
    chunks: HashMap<(String, u32), Vec<UserId>>,
    pages: HashMap<(String, u32), PageRecord>,
    held: BTreeMap<(String, String), (HeldGroup, bool)>,
    /// Each page's sets of slots: (campaign, page, set) → slots.
    marks: HashMap<(String, u32, &'static str), HashSet<u32>>,
    /// Progress counters by (campaign, shard), as the adapter keeps them.
    shards: HashMap<(String, u32), crate::domain::campaign::Counters>,
    counts: HashMap<String, CampaignCounts>,
    /// Fan-out steps: (campaign, step) → the message that took it.
    steps: HashMap<(String, String), String>,
}

/// A campaign's counts as its item keeps them (the adapter's `ADD`s).
#[derive(Debug, Clone, Copy, Default)]
struct CampaignCounts {
    audience: u64,
    enqueued: u64,
    held: u64,
    invalid: u64,
}

impl InMemoryCampaigns {
    pub fn with_latency(latency: Duration) -> Self {
        Self {
            latency,
            ..Self::default()
        }
    }

    async fn round_trip(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        // A call is a point where an invocation can be stopped (simulated crashes).
        tokio::task::yield_now().await;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CampaignState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl CampaignStore for InMemoryCampaigns {
    async fn create_campaign(
        &self,
        campaign: &crate::domain::campaign::Campaign,
        chunks: &[Vec<UserId>],
        idempotency_key: Option<&str>,
    ) -> Result<crate::domain::campaign::Campaign, StoreError> {
        self.round_trip().await;
        let mut state = self.state();
        if let Some(key) = idempotency_key {
            let k = (campaign.tenant.clone(), key.to_owned());
            if let Some(id) = state.keys.get(&k).cloned() {
                return state
                    .campaigns
                    .get(&(campaign.tenant.clone(), id))
                    .cloned()
                    .ok_or_else(|| StoreError::Fatal("key without campaign".into()));
            }
            state.keys.insert(k, campaign.id.to_string());
        }
        for (i, chunk) in chunks.iter().enumerate() {
            state
                .chunks
                .insert((campaign.id.to_string(), i as u32), chunk.clone());
        }
        state
            .counts
            .insert(campaign.id.to_string(), CampaignCounts::default());
        state.campaigns.insert(
            (campaign.tenant.clone(), campaign.id.to_string()),
            campaign.clone(),
        );
        Ok(campaign.clone())
    }

    async fn campaign(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
    ) -> Result<Option<crate::domain::campaign::Campaign>, StoreError> {
        self.round_trip().await;
        Ok(self
            .state()
            .campaigns
            .get(&(tenant.clone(), id.to_string()))
            .cloned())
    }

    async fn campaigns(
        &self,
        tenant: &TenantId,
        limit: usize,
        after: Option<&str>,
    ) -> Result<(Vec<crate::domain::campaign::Campaign>, Option<String>), StoreError> {
        self.round_trip().await;
        let state = self.state();
        let all: Vec<_> = state
            .campaigns
            .iter()
            .rev()
            .filter(|((t, id), _)| t == tenant && after.is_none_or(|a| id.as_str() < a))
            .map(|(_, c)| c.clone())
            .collect();
        let next = (all.len() > limit).then(|| all[limit - 1].id.to_string());
        Ok((all.into_iter().take(limit).collect(), next))
    }

    async fn transition(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        from: &[crate::domain::campaign::CampaignStatus],
        to: crate::domain::campaign::CampaignStatus,
        at: &str,
        detail: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.round_trip().await;
        let mut state = self.state();
        let Some(c) = state.campaigns.get_mut(&(tenant.clone(), id.to_string())) else {
            return Ok(false);
        };
        if !from.contains(&c.status) {
            return Ok(false);
        }
        c.status = to;
        match to {
            crate::domain::campaign::CampaignStatus::Running => c.started_at = Some(at.into()),
            crate::domain::campaign::CampaignStatus::Cancelled => c.cancelled_at = Some(at.into()),
            _ => {}
        }
        c.failure = detail.map(str::to_owned);
        Ok(true)
    }

    async fn mark_fanned_out(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        at: &str,
    ) -> Result<(), StoreError> {
        self.round_trip().await;
        if let Some(c) = self
            .state()
            .campaigns
            .get_mut(&(tenant.clone(), id.to_string()))
        {
            c.fanned_out_at.get_or_insert_with(|| at.to_owned());
        }
        Ok(())
    }

    async fn audience_chunk(
        &self,
        _tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        chunk: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        self.round_trip().await;
        Ok(self
            .state()
            .chunks
            .get(&(id.to_string(), chunk))
            .cloned()
            .unwrap_or_default())
    }

    async fn record_page(
        &self,
        _tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        page: &PageRecord,
    ) -> Result<Option<PageRecord>, StoreError> {
        self.round_trip().await;
        let mut state = self.state();
        let key = (id.to_string(), page.page);
        if let Some(existing) = state.pages.get(&key) {
            return Ok(Some(existing.clone()));
        }
        state.pages.insert(key, page.clone());
        let held: u64 = page.held.iter().map(|(_, r)| r.len() as u64).sum();
        let counts = state.counts.entry(id.to_string()).or_default();
        counts.enqueued += page.enqueued;
        counts.held += held;
        counts.audience += page.users;
        counts.invalid += page.invalid;
        if let Some(campaign) = state
            .campaigns
            .values_mut()
            .find(|c| c.id.as_str() == id.as_str())
        {
            for (at, _) in &page.held {
                if !campaign.releases.contains(at) {
                    campaign.releases.push(at.clone());
                    campaign.releases.sort();
                }
            }
        }
        for (at, recipients) in &page.held {
            let group = HeldGroup {
                key: format!("H#{at}#{:08}", page.page),
                page: page.page,
                recipients: recipients.clone(),
                released: false,
            };
            state
                .held
                .insert((id.to_string(), group.key.clone()), (group, false));
        }
        Ok(None)
    }

    async fn mark_next_sent(
        &self,
        _tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        page: u32,
    ) -> Result<(), StoreError> {
        self.round_trip().await;
        if let Some(p) = self.state().pages.get_mut(&(id.to_string(), page)) {
            p.next_sent = true;
        }
        Ok(())
    }

    async fn held(
        &self,
        _tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        at: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HeldGroup>, StoreError> {
        self.round_trip().await;
        let prefix = format!("H#{at}#");
        let from = (id.to_string(), after.unwrap_or(&prefix).to_owned());
        // A range of the ordered keys, as the adapter's query: simulations hold many groups.
        Ok(self
            .state()
            .held
            .range(from..)
            .take_while(|((c, k), _)| c == id.as_str() && k.starts_with(&prefix))
            .filter(|((_, k), _)| after.is_none_or(|a| k.as_str() > a))
            .take(limit)
            .map(|(_, (g, released))| HeldGroup {
                released: *released,
                ..g.clone()
            })
            .collect())
    }

    async fn claim_step(
        &self,
        _tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        step: &str,
        token: &str,
    ) -> Result<bool, StoreError> {
        self.round_trip().await;
        let mut state = self.state();
        let by = state
            .steps
            .entry((id.to_string(), step.to_owned()))
            .or_insert_with(|| token.to_owned());
        Ok(by == token)
    }

    async fn release_group(
        &self,
        _tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        group: &str,
        enqueued: u64,
    ) -> Result<bool, StoreError> {
        self.round_trip().await;
        let mut state = self.state();
        let Some((_, released)) = state.held.get_mut(&(id.to_string(), group.to_owned())) else {
            return Ok(false);
        };
        if *released {
            return Ok(false);
        }
        *released = true;
        let counts = state.counts.entry(id.to_string()).or_default();
        counts.enqueued += enqueued;
        counts.held -= enqueued.min(counts.held);
        Ok(true)
    }

    async fn mark(
        &self,
        _tenant: &TenantId,
        marks: &[(
            crate::domain::campaign::CampaignRef,
            crate::domain::campaign::ProgressMark,
        )],
    ) -> Result<(), StoreError> {
        self.round_trip().await;
        let mut state = self.state();
        for (at, mark) in marks {
            let new = state
                .marks
                .entry((at.id.to_string(), at.page, mark.dedupe_set()))
                .or_default()
                .insert(at.slot);
            if new {
                let shard = at.page % crate::domain::campaign::COUNTER_SHARDS;
                *state
                    .shards
                    .entry((at.id.to_string(), shard))
                    .or_default()
                    .entry(mark.counter())
                    .or_default() += 1;
            }
        }
        Ok(())
    }

    async fn progress(
        &self,
        campaign: &crate::domain::campaign::Campaign,
    ) -> Result<crate::domain::campaign::Progress, StoreError> {
        self.round_trip().await;
        let state = self.state();
        let counts = state
            .counts
            .get(campaign.id.as_str())
            .copied()
            .unwrap_or_default();
        let mut counters = crate::domain::campaign::Counters::from([
            ("audience".to_owned(), counts.audience),
            ("enqueued".to_owned(), counts.enqueued),
            ("held".to_owned(), counts.held),
            ("invalid".to_owned(), counts.invalid),
        ]);
        let mut items = 1;
        for shard in 0..crate::domain::campaign::COUNTER_SHARDS {
            items += 1;
            for (name, n) in state
                .shards
                .get(&(campaign.id.to_string(), shard))
                .into_iter()
                .flatten()
            {
                *counters.entry(name.clone()).or_default() += n;
            }
        }
        self.progress_items.store(items, Ordering::Relaxed);
        Ok(crate::domain::campaign::Progress::from_counters(
            &counters,
            campaign.audience.known_size(),
            campaign.status,
        ))
    }
}

/// Schedules recorded, never fired: (name, at, payload).
#[derive(Default)]
pub struct RecordingScheduler {
    pub schedules: Mutex<Vec<(String, jiff::Timestamp, String)>>,
}

#[async_trait]
impl Scheduler for RecordingScheduler {
    async fn schedule_once(
        &self,
        name: &str,
        at: jiff::Timestamp,
        payload: &str,
    ) -> Result<(), StoreError> {
        let mut schedules = self.schedules.lock().unwrap_or_else(|p| p.into_inner());
        if !schedules.iter().any(|(n, _, _)| n == name) {
            schedules.push((name.to_owned(), at, payload.to_owned()));
        }
        Ok(())
    }

    async fn delete_schedule(&self, name: &str) -> Result<(), StoreError> {
        self.schedules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(n, _, _)| n != name);
        Ok(())
    }
}

/// Audience files in memory, read through the same reader as S3's. A file's ETag is a hash
/// of its bytes (as S3's of a simple upload): replacing it with other bytes changes it.
#[derive(Default)]
pub struct InMemoryAudiences {
    pub files: Mutex<HashMap<(String, String), Vec<u8>>>,
    /// Upload times (by default none: unknown).
    pub modified: Mutex<HashMap<(String, String), jiff::Timestamp>>,
    /// Files herald may not read (S3's 403).
    pub denied: Mutex<HashSet<(String, String)>>,
}

impl InMemoryAudiences {
    /// The ETag of `bytes`, quoted as S3 writes it.
    pub fn etag(bytes: &[u8]) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(bytes);
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("\"{hex}\"")
    }
}

#[async_trait]
impl AudienceFiles for InMemoryAudiences {
    async fn inspect(&self, bucket: &str, key: &str) -> Result<Option<AudienceFile>, StoreError> {
        let at = (bucket.to_owned(), key.to_owned());
        let modified = self
            .modified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&at)
            .copied();
        let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        Ok(files.get(&at).map(|bytes| AudienceFile {
            column: crate::domain::campaign::audience_header(bytes),
            size: bytes.len() as u64,
            etag: Some(Self::etag(bytes)),
            modified,
            users_estimate: crate::domain::audience::estimate_users(bytes, bytes.len() as u64),
        }))
    }

    async fn read(
        &self,
        bucket: &str,
        key: &str,
        etag: Option<&str>,
        column: Option<usize>,
        cursor: u64,
        max: usize,
    ) -> Result<AudienceRead, AudienceError> {
        let at = (bucket.to_owned(), key.to_owned());
        let uri = format!("s3://{bucket}/{key}");
        let status = |status| {
            AudienceUnreadable::from_status(status, &uri, etag).map_or_else(
                || StoreError::Fatal(uri.clone()).into(),
                AudienceError::from,
            )
        };
        if self
            .denied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&at)
        {
            return Err(status(403));
        }
        let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = files.get(&at).ok_or_else(|| status(404))?;
        if etag.is_some_and(|etag| etag != Self::etag(bytes)) {
            return Err(status(412));
        }
        let from = (cursor as usize).min(bytes.len());
        Ok(crate::domain::campaign::read_audience(
            &bytes[from..],
            cursor,
            true,
            column,
            max,
        ))
    }
}

pub mod fixtures {
    use crate::domain::delivery::DeliveryJob;
    use crate::domain::notification::{Category, Channel};
    use crate::{NotificationId, RoomId, TenantId, UserId};

    /// A job for notification n1 of user u1 (tenant t1, room r1).
    pub fn delivery_job(channel: Channel, category: Category) -> DeliveryJob {
        DeliveryJob {
            tenant: TenantId::parse("t1", "tenant").expect("a valid id"),
            notification_id: NotificationId::parse("n1", "id").expect("a valid id"),
            user_id: UserId::parse("u1", "user").expect("a valid id"),
            room_id: RoomId::parse("r1", "room").expect("a valid id"),
            channel,
            category,
            title: "Hi".into(),
            body: "there".into(),
            data: None,
            created_at: "2026-11-23T00:00:00Z".into(),
            correlation_id: Some("corr-1".into()),
            attempt: 0,
            retrying_since: None,
            endpoints: None,
            campaign: None,
            record_per_user: false,
        }
    }

    /// Noon UTC on the fixtures' day.
    pub fn noon() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_795_435_200).expect("in range")
    }
}
