//! The counter side of the inbox table: one transaction per commit, mark-read and repair.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use aws_smithy_runtime_api::client::result::SdkError;

use super::{n, number, room_pk, room_sk, s, text, user_pk, DynamoInbox, TOTAL_SK};
use crate::aws::{describe, is_transient, store_error};
use crate::domain::counters::{
    room_increments, CommitStamp, Counter, Counters, UserKey, MAX_TRANSACTION_ITEMS,
};
use crate::domain::ids::RoomId;
use crate::domain::notification::{Channel, Notification};
use crate::error::StoreError;
use crate::ports::{CommitError, CounterStore, MessageRef, UserWrites};

type TransactError = SdkError<TransactWriteItemsError, aws_smithy_runtime_api::http::Response>;

impl DynamoInbox {
    /// The message's log item: `M#` (listed in the inbox) or `L#` (other channels only).
    fn message_item(
        &self,
        pk: &str,
        m: &Notification,
        stamp: u64,
        expires_at: i64,
    ) -> HashMap<String, AttributeValue> {
        let inbox = m.wants(Channel::Inbox);
        let sk = format!("{}#{}", if inbox { "M" } else { "L" }, m.log_key());
        let mut item = HashMap::from([
            ("pk".to_owned(), s(pk)),
            ("sk".to_owned(), s(sk)),
            ("id".to_owned(), s(m.id.as_str())),
            ("room_id".to_owned(), s(m.room_id.as_str())),
            ("title".to_owned(), s(&m.title)),
            ("body".to_owned(), s(&m.body)),
            (
                "created_at".to_owned(),
                s(crate::domain::time::millis(m.created_at)),
            ),
            (
                "channels".to_owned(),
                AttributeValue::L(m.channels.iter().map(|c| s(c.as_str())).collect()),
            ),
            (
                "category".to_owned(),
                s(serde_json::to_value(m.category)
                    .map(|v| v.as_str().unwrap_or("").to_owned())
                    .unwrap_or_default()),
            ),
            ("expires_at".to_owned(), n(expires_at)),
        ]);
        if let Some(data) = &m.data {
            item.insert("data".to_owned(), s(data.to_string()));
        }
        if inbox {
            item.insert("room_pk".to_owned(), s(room_pk(pk, &m.room_id)));
            item.insert("stamp".to_owned(), n(stamp));
        }
        item
    }

    fn expires_at(&self) -> i64 {
        self.clock.now().as_second() + i64::from(self.retention_days) * 86_400
    }

    fn put_new(
        &self,
        item: HashMap<String, AttributeValue>,
    ) -> Result<TransactWriteItem, CommitError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| CommitError::Fatal(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A room's increment, ordered after the room's last write (see `CommitStamp`).
    fn add_to_room(
        &self,
        pk: &str,
        room: &RoomId,
        amount: u64,
        stamp: u64,
    ) -> Result<TransactWriteItem, CommitError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(room_sk(room)))
            .update_expression("ADD unread :n, unseen :n, version :one SET stamp = :stamp")
            .condition_expression("attribute_not_exists(stamp) OR stamp < :stamp")
            .expression_attribute_values(":n", n(amount))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":stamp", n(stamp))
            .build()
            .map_err(|e| CommitError::Fatal(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// TOTAL's unread and unseen += the amounts (negative to subtract, never below 0 then).
    /// No change mark: the stream's consumer logs the user for reconcile (`ChangeLog`).
    fn add_to_total(
        &self,
        user: &UserKey,
        unread: i64,
        unseen: i64,
    ) -> Result<TransactWriteItem, CommitError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(user_pk(user)))
            .key("sk", s(TOTAL_SK))
            .update_expression("ADD unread :n, unseen :u, version :one")
            .expression_attribute_values(":n", n(unread))
            .expression_attribute_values(":u", n(unseen))
            .expression_attribute_values(":one", n(1));
        let mut floors = Vec::new();
        if unread < 0 {
            floors.push("unread >= :floor");
            update = update.expression_attribute_values(":floor", n(-unread));
        }
        if unseen < 0 {
            floors.push("unseen >= :ufloor");
            update = update.expression_attribute_values(":ufloor", n(-unseen));
        }
        if !floors.is_empty() {
            update = update.condition_expression(floors.join(" AND "));
        }
        let update = update
            .build()
            .map_err(|e| CommitError::Fatal(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Zeroes a room's counts at the version seen: `SET <set> = :stamp` with the counts to
    /// zero (`:zero`) and the mark (`read_at` or `seen_at`) set to a stamp above every stamp
    /// committed so far, so those messages now list as read (or seen).
    fn zero_room(
        &self,
        pk: &str,
        room: &RoomId,
        seen: &Counter,
        set: &str,
    ) -> Result<TransactWriteItem, CommitError> {
        let stamp = CommitStamp::after(seen.stamp);
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(room_sk(room)))
            .update_expression(format!(
                "SET {set} = :stamp, stamp = :stamp ADD version :one"
            ))
            .condition_expression("version = :seen")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":stamp", n(stamp))
            .expression_attribute_values(":seen", n(seen.version))
            .build()
            .map_err(|e| CommitError::Fatal(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TransactError> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(|_| ())
    }

    /// Every room item and the TOTAL item of one partition (strongly consistent, all pages).
    pub(super) async fn counter_items(
        &self,
        pk: &str,
        projection: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":lo", s("R#"))
                .expression_attribute_values(":hi", s(TOTAL_SK))
                .projection_expression(projection)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            items.extend(page.items().iter().cloned());
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// One read of a user's room and TOTAL counters.
    async fn query_counters(&self, user: &UserKey) -> Result<Counters, StoreError> {
        let mut counters = Counters::default();
        for item in self
            .counter_items(&user_pk(user), "sk, unread, unseen, version, stamp")
            .await?
        {
            let sk = text(&item, "sk");
            let counter = Counter {
                unread: number(&item, "unread"),
                unseen: number(&item, "unseen"),
                version: number(&item, "version"),
                stamp: number(&item, "stamp"),
            };
            if sk == TOTAL_SK {
                counters.total = counter;
            } else if let Some(room) = sk.strip_prefix("R#") {
                let room =
                    RoomId::parse(room, "room").map_err(|e| StoreError::Fatal(e.to_string()))?;
                counters.rooms.insert(room, counter);
            }
        }
        Ok(counters)
    }
}

/// Classifies a failed transaction; `owners[i]` is the (user, message) the i-th item writes
/// (its log item or idempotency record), None for counter items.
fn commit_error(
    err: TransactError,
    writes: &[UserWrites],
    owners: &[Option<(usize, usize)>],
) -> CommitError {
    if let SdkError::ServiceError(service) = &err {
        if let TransactWriteItemsError::TransactionCanceledException(cancelled) = service.err() {
            let reasons = cancelled.cancellation_reasons();
            let mut duplicates: Vec<_> = reasons
                .iter()
                .zip(owners)
                .filter(|(r, _)| r.code() == Some("ConditionalCheckFailed"))
                .filter_map(|(_, owner)| {
                    owner.map(|(u, m)| (writes[u].user.clone(), writes[u].messages[m].id.clone()))
                })
                .collect();
            duplicates.dedup();
            if !duplicates.is_empty() {
                return CommitError::Duplicates(duplicates);
            }
            let codes: Vec<&str> = reasons
                .iter()
                .filter_map(|r| r.code())
                .filter(|c| *c != "None")
                .collect();
            // ConditionalCheckFailed on a counter: a version, floor or stamp moved under us.
            let retryable = codes.iter().any(|c| {
                matches!(
                    *c,
                    "TransactionConflict"
                        | "ThrottlingError"
                        | "ProvisionedThroughputExceeded"
                        | "RequestLimitExceeded"
                        | "ConditionalCheckFailed"
                )
            });
            let reason = format!("transaction cancelled: {}", codes.join(", "));
            return if retryable || codes.is_empty() {
                CommitError::Retryable(reason)
            } else {
                CommitError::Fatal(reason)
            };
        }
    }
    if is_transient(&err) {
        CommitError::Retryable(describe(&err))
    } else {
        CommitError::Fatal(describe(&err))
    }
}

#[async_trait]
impl CounterStore for DynamoInbox {
    async fn applied(&self, messages: &[Notification]) -> Result<Vec<bool>, StoreError> {
        let pk = |m: &Notification| {
            user_pk(&UserKey {
                tenant: m.tenant.clone(),
                user: m.user_id.clone(),
            })
        };
        // Two keys a message (`M#` listed, `L#` other channels), each once: a batch may
        // carry two copies of one notification.
        let keys: std::collections::BTreeSet<(String, String)> = messages
            .iter()
            .flat_map(|m| ["M", "L"].map(|kind| (pk(m), format!("{kind}#{}", m.log_key()))))
            .collect();
        let found: std::collections::HashSet<(String, String)> =
            crate::aws::item::batch_get(&self.client, &self.table, keys, Some("pk, sk"), 1)
                .await?
                .iter()
                .filter_map(|item| {
                    let log_key = text(item, "sk").get(2..)?.to_owned();
                    Some((text(item, "pk"), log_key))
                })
                .collect();
        Ok(messages
            .iter()
            .map(|m| found.contains(&(pk(m), m.log_key().to_owned())))
            .collect())
    }

    async fn commit(&self, writes: &[UserWrites]) -> Result<(), CommitError> {
        // A fresh stamp per attempt: a retry after losing a race is ordered after the winner.
        let stamp = CommitStamp::now();
        let expires_at = self.expires_at();
        let mut items = Vec::new();
        let mut owners = Vec::new();
        for (u, share) in writes.iter().enumerate() {
            let pk = user_pk(&share.user);
            for (i, m) in share.messages.iter().enumerate() {
                items.push(self.put_new(self.message_item(&pk, m, stamp, expires_at))?);
                owners.push(Some((u, i)));
                if m.has_client_id() {
                    let record = HashMap::from([
                        ("pk".to_owned(), s(&pk)),
                        ("sk".to_owned(), s(format!("I#{}", m.id))),
                        ("log_key".to_owned(), s(m.log_key())),
                        ("expires_at".to_owned(), n(expires_at)),
                    ]);
                    items.push(self.put_new(record)?);
                    owners.push(Some((u, i)));
                }
            }
            let rooms = room_increments(&share.messages);
            let total: u64 = rooms.values().sum();
            for (room, count) in rooms {
                items.push(self.add_to_room(&pk, &room, count, stamp)?);
                owners.push(None);
            }
            if total > 0 {
                items.push(self.add_to_total(&share.user, total as i64, total as i64)?);
                owners.push(None);
            }
        }
        self.transact(items)
            .await
            .map_err(|e| commit_error(e, writes, &owners))
    }

    async fn read_counters(&self, user: &UserKey) -> Result<Counters, StoreError> {
        // A Query is not isolated from concurrent transactions: it may see a room's increment
        // and not yet TOTAL's. Re-read a few times for a consistent view; drift that persists
        // is real and left for reconcile to see.
        let mut counters = self.query_counters(user).await?;
        for _ in 0..4 {
            if counters.drift() == 0 {
                break;
            }
            counters = self.query_counters(user).await?;
        }
        Ok(counters)
    }

    async fn zero_rooms(
        &self,
        user: &UserKey,
        rooms: &[(RoomId, Counter)],
    ) -> Result<(), CommitError> {
        let pk = user_pk(user);
        let mut items = Vec::with_capacity(rooms.len() + 1);
        let (mut sum, mut unseen) = (0u64, 0u64);
        for (room, seen) in rooms {
            sum += seen.unread;
            unseen += seen.unseen;
            items.push(self.zero_room(
                &pk,
                room,
                seen,
                "unread = :zero, unseen = :zero, read_at",
            )?);
        }
        items.push(self.add_to_total(user, -(sum as i64), -(unseen as i64))?);
        // A failed version or floor condition comes back retryable: re-read and try again.
        self.transact(items)
            .await
            .map_err(|e| commit_error(e, &[], &[]))
    }

    async fn repair_total(&self, user: &UserKey, seen: &Counters) -> Result<(), CommitError> {
        if seen.rooms.len() >= MAX_TRANSACTION_ITEMS {
            return Err(CommitError::Fatal(format!(
                "{} rooms: too many to check in one transaction; drift left for a person",
                seen.rooms.len()
            )));
        }
        let pk = user_pk(user);
        let mut items = Vec::with_capacity(seen.rooms.len() + 1);
        for (room, counter) in &seen.rooms {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .key("sk", s(room_sk(room)))
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(counter.version))
                .build()
                .map_err(|e| CommitError::Fatal(e.to_string()))?;
            items.push(TransactWriteItem::builder().condition_check(check).build());
        }
        let unread: u64 = seen.rooms.values().map(|c| c.unread).sum();
        let unseen: u64 = seen.rooms.values().map(|c| c.unseen).sum();
        let mut total = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s(TOTAL_SK))
            .update_expression("SET unread = :u, unseen = :us ADD version :one")
            .expression_attribute_values(":u", n(unread))
            .expression_attribute_values(":us", n(unseen))
            .expression_attribute_values(":one", n(1));
        total = if seen.total.version == 0 {
            total.condition_expression("attribute_not_exists(version)")
        } else {
            total
                .condition_expression("version = :seen")
                .expression_attribute_values(":seen", n(seen.total.version))
        };
        let total = total
            .build()
            .map_err(|e| CommitError::Fatal(e.to_string()))?;
        items.push(TransactWriteItem::builder().update(total).build());
        // A failed version condition comes back retryable: re-read and try again.
        self.transact(items)
            .await
            .map_err(|e| commit_error(e, &[], &[]))
    }

    async fn mark_seen(&self, user: &UserKey, message: &MessageRef) -> Result<bool, CommitError> {
        let pk = user_pk(user);
        let fatal = |e: aws_sdk_dynamodb::error::BuildError| CommitError::Fatal(e.to_string());
        let flag = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s(format!("M#{}", message.log_key)))
            .update_expression("SET seen = :true")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(seen)")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .build()
            .map_err(fatal)?;
        // Not read or seen in bulk since it landed: those cleared it already.
        let room = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s(room_sk(&message.room)))
            .update_expression("ADD unseen :minus, version :one")
            .condition_expression(
                "unseen >= :one AND (attribute_not_exists(read_at) OR read_at < :stamp) \
                 AND (attribute_not_exists(seen_at) OR seen_at < :stamp)",
            )
            .expression_attribute_values(":minus", n(-1))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":stamp", n(message.stamp))
            .build()
            .map_err(fatal)?;
        let items = vec![
            TransactWriteItem::builder().update(flag).build(),
            TransactWriteItem::builder().update(room).build(),
            self.add_to_total(user, 0, -1)?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(e) => {
                let flagged = e.as_service_error().and_then(|s| match s {
                    TransactWriteItemsError::TransactionCanceledException(c) => {
                        c.cancellation_reasons().first().and_then(|r| r.code())
                    }
                    _ => None,
                }) == Some("ConditionalCheckFailed");
                if flagged {
                    // Seen one by one already (or gone with the log's TTL).
                    return Ok(false);
                }
                // The room was read or seen since (found again, it is seen), or contention.
                Err(commit_error(e, &[], &[]))
            }
        }
    }

    async fn zero_unseen(
        &self,
        user: &UserKey,
        rooms: &[(RoomId, Counter)],
    ) -> Result<(), CommitError> {
        let pk = user_pk(user);
        let mut items = Vec::with_capacity(rooms.len() + 1);
        let mut sum = 0u64;
        for (room, seen) in rooms {
            sum += seen.unseen;
            items.push(self.zero_room(&pk, room, seen, "unseen = :zero, seen_at")?);
        }
        items.push(self.add_to_total(user, 0, -(sum as i64))?);
        self.transact(items)
            .await
            .map_err(|e| commit_error(e, &[], &[]))
    }
}
