//! The counter algorithm: exactly-once unread counts per room and in total.
//!
//! A batch is grouped by user; each user's share (message Puts that double as idempotency
//! records + coalesced room ADDs + one TOTAL ADD) is packed with other users' into one
//! TransactWriteItems of at most DynamoDB's 100 items; a pack that loses a race is split in
//! halves down to one user. Duplicates found from the
//! cancellation reasons are dropped and the rest retried; conflicts and throttling back off
//! with full jitter until the time budget is spent, then the work is reported as unfinished.
//! `commit` carries a batch out against a `CounterStore`. Mark-read (`mark_read`) clears rooms under optimistic locking; `reconcile` checks TOTAL
//! against rooms.

use std::collections::BTreeMap;

pub mod commit;

use super::ids::{RoomId, TenantId, UserId};
use super::notification::{Channel, Notification};

/// DynamoDB's limit on items per transaction.
pub const MAX_TRANSACTION_ITEMS: usize = 100;

/// Whose counters: the partition of one user in one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserKey {
    pub tenant: TenantId,
    pub user: UserId,
}

impl UserKey {
    pub fn of(n: &Notification) -> Self {
        Self {
            tenant: n.tenant.clone(),
            user: n.user_id.clone(),
        }
    }
}

/// One counter item: its unread and unseen counts and the version used for optimistic
/// locking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    pub unread: u64,
    /// Messages not yet seen: a commit adds to both counts; marking one message seen takes
    /// one from this; reading a room, or seeing everything, zeroes it.
    pub unseen: u64,
    pub version: u64,
    /// Rooms: the commit stamp of the last write (see `CommitStamp`); 0 for TOTAL.
    pub stamp: u64,
}

/// Orders a room's writes the way its counter applies them, so "read" in the message list
/// agrees with the badge.
///
/// Every commit stamps its messages and their room with the writer's clock (nanoseconds),
/// under the condition that the room's last stamp is smaller; a mark-read sets the room's
/// `read_at` and stamp to a value above the last stamp it saw (under its version check).
/// Stamps of one room therefore increase in commit order, and a message is read exactly
/// when its stamp is at most the room's `read_at`: when the clear that counted it happened
/// after its commit. A writer whose clock lags gets a condition failure and retries with a
/// fresh stamp, like any conflict.
pub struct CommitStamp;

impl CommitStamp {
    /// The writer's clock in nanoseconds since the epoch.
    pub fn now() -> u64 {
        u64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(0)
    }

    /// The stamp of a mark-read that saw `last` as the room's stamp.
    pub fn after(last: u64) -> u64 {
        Self::now().max(last + 1)
    }
}

/// A user's counters as stored: TOTAL and every room item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub total: Counter,
    pub rooms: BTreeMap<RoomId, Counter>,
}

impl Counters {
    /// The API view: rooms with 0 unread are omitted; `unseen` alike.
    pub fn unread(&self) -> Unread {
        Unread {
            version: Some(self.total.version),
            total: self.total.unread,
            rooms: self
                .rooms
                .iter()
                .filter(|(_, c)| c.unread > 0)
                .map(|(r, c)| (r.to_string(), c.unread))
                .collect(),
            unseen: Some(Unseen {
                total: self.total.unseen,
                rooms: self
                    .rooms
                    .iter()
                    .filter(|(_, c)| c.unseen > 0)
                    .map(|(r, c)| (r.to_string(), c.unseen))
                    .collect(),
            }),
        }
    }

    /// TOTAL minus the sum of rooms, unread first, then unseen; 0 when both are consistent.
    pub fn drift(&self) -> i64 {
        let rooms: u64 = self.rooms.values().map(|c| c.unread).sum();
        let unread = self.total.unread as i64 - rooms as i64;
        if unread != 0 {
            return unread;
        }
        let unseen: u64 = self.rooms.values().map(|c| c.unseen).sum();
        self.total.unseen as i64 - unseen as i64
    }
}

/// `{"total": n, "rooms": {...}}` as the API answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unread {
    /// TOTAL's version when read: it grows with every change of the user's counts, so a
    /// client holding counts from the live feed keeps whichever of two answers is newer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    pub total: u64,
    pub rooms: BTreeMap<String, u64>,
    /// The same for messages not yet seen (what a bell's badge shows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unseen: Option<Unseen>,
}

/// `{"total": n, "rooms": {...}}` of unseen messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unseen {
    pub total: u64,
    pub rooms: BTreeMap<String, u64>,
}

/// One message waiting to be committed, with the keys (e.g. SQS message ids) it answers for.
#[derive(Debug, Clone)]
pub struct PendingMessage<K> {
    pub keys: Vec<K>,
    pub notification: Notification,
}

/// The work of one TransactWriteItems for one user.
#[derive(Debug, Clone)]
pub struct UserTransaction<K> {
    pub user: UserKey,
    pub messages: Vec<PendingMessage<K>>,
}

/// Same-room increments coalesced: only inbox messages count as unread.
pub fn room_increments<'a>(
    messages: impl IntoIterator<Item = &'a Notification>,
) -> BTreeMap<RoomId, u64> {
    let mut rooms = BTreeMap::new();
    for n in messages.into_iter().filter(|n| n.wants(Channel::Inbox)) {
        *rooms.entry(n.room_id.clone()).or_insert(0) += 1;
    }
    rooms
}

/// Items one transaction touches: message Puts, idempotency records of client-chosen ids,
/// room Updates and the TOTAL Update.
pub fn transaction_items<'a>(messages: impl Iterator<Item = &'a Notification> + Clone) -> usize {
    let rooms = room_increments(messages.clone()).len();
    let (puts, records) = messages.fold((0, 0), |(puts, records), m| {
        (puts + 1, records + usize::from(m.has_client_id()))
    });
    puts + records + rooms + usize::from(rooms > 0)
}

impl<K> UserTransaction<K> {
    pub fn notifications(&self) -> Vec<Notification> {
        self.messages
            .iter()
            .map(|m| m.notification.clone())
            .collect()
    }

    pub fn item_count(&self) -> usize {
        transaction_items(self.messages.iter().map(|m| &m.notification))
    }
}

/// Groups a batch by user, drops in-batch repeats of an id (a transaction cannot touch one
/// item twice; the repeat answers with its twin) and splits groups over the item limit.
pub fn plan_transactions<K>(batch: Vec<(K, Notification)>) -> Vec<UserTransaction<K>> {
    let mut by_user: BTreeMap<UserKey, Vec<PendingMessage<K>>> = BTreeMap::new();
    for (key, n) in batch {
        let group = by_user.entry(UserKey::of(&n)).or_default();
        match group.iter_mut().find(|m| m.notification.id == n.id) {
            Some(twin) => twin.keys.push(key),
            None => group.push(PendingMessage {
                keys: vec![key],
                notification: n,
            }),
        }
    }
    let mut plans = Vec::new();
    for (user, messages) in by_user {
        let mut current = UserTransaction {
            user: user.clone(),
            messages: Vec::new(),
        };
        for m in messages {
            current.messages.push(m);
            if current.item_count() > MAX_TRANSACTION_ITEMS {
                let overflow = current.messages.pop().into_iter().collect();
                plans.push(current);
                current = UserTransaction {
                    user: user.clone(),
                    messages: overflow,
                };
            }
        }
        plans.push(current);
    }
    plans
}

/// Packs user transactions greedily into groups of at most 100 items, never two of one user
/// in a pack (a transaction cannot touch one TOTAL twice).
pub fn pack_transactions<K>(transactions: Vec<UserTransaction<K>>) -> Vec<Vec<UserTransaction<K>>> {
    let mut packs: Vec<(usize, Vec<UserTransaction<K>>)> = Vec::new();
    for tx in transactions {
        let items = tx.item_count();
        let fits = packs.iter_mut().find(|(size, pack)| {
            size + items <= MAX_TRANSACTION_ITEMS && pack.iter().all(|t| t.user != tx.user)
        });
        match fits {
            Some((size, pack)) => {
                *size += items;
                pack.push(tx);
            }
            None => packs.push((items, vec![tx])),
        }
    }
    packs.into_iter().map(|(_, pack)| pack).collect()
}
