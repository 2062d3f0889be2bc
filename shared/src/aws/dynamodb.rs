//! DynamoDB adapter of the inbox table: message log + room and TOTAL counters.
//!
//! Layout (DESIGN.md): `pk = T#<tenant>#U#<user>`; `sk = M#<id>` message (and idempotency
//! record), `R#<room>` room counter, `TOTAL` total counter. Inbox messages carry the sparse
//! LSI keys `ts` (newest-first listing) and `rts` (per-room listing).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::client::result::SdkError;
use base64::Engine;

use super::{describe, is_transient, store_error};
use crate::domain::counters::{room_increments, Counter, Counters, UserKey, MAX_TRANSACTION_ITEMS};
use crate::domain::ids::{RoomId, TenantId, UserId};
use crate::domain::notification::{Channel, Notification};
use crate::error::StoreError;
use crate::ports::{CommitError, CounterStore, MessageLog, MessagePage, MessageView};

pub const TOTAL_SK: &str = "TOTAL";
pub const BY_TIME_INDEX: &str = "by_time";
pub const BY_ROOM_INDEX: &str = "by_room";

/// The partition key of one user.
pub fn user_pk(user: &UserKey) -> String {
    format!("T#{}#U#{}", user.tenant, user.user)
}

fn room_sk(room: &RoomId) -> String {
    format!("R#{room}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The inbox table.
#[derive(Debug, Clone)]
pub struct DynamoInbox {
    client: Client,
    table: String,
    /// Message log retention, for the TTL attribute `expires_at`.
    retention_days: u32,
}

impl DynamoInbox {
    pub fn new(client: Client, table: impl Into<String>, retention_days: u32) -> Self {
        Self {
            client,
            table: table.into(),
            retention_days,
        }
    }

    fn message_item(&self, user: &UserKey, m: &Notification) -> HashMap<String, AttributeValue> {
        let expires = jiff::Timestamp::now().as_second() + i64::from(self.retention_days) * 86_400;
        let mut item = HashMap::from([
            ("pk".to_owned(), s(user_pk(user))),
            ("sk".to_owned(), s(format!("M#{}", m.id))),
            ("id".to_owned(), s(m.id.as_str())),
            ("room_id".to_owned(), s(m.room_id.as_str())),
            ("title".to_owned(), s(&m.title)),
            ("body".to_owned(), s(&m.body)),
            ("created_at".to_owned(), s(&m.created_at)),
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
            ("expires_at".to_owned(), n(expires)),
        ]);
        if let Some(data) = &m.data {
            item.insert("data".to_owned(), s(data.to_string()));
        }
        if m.wants(Channel::Inbox) {
            item.insert("ts".to_owned(), s(format!("{}#{}", m.created_at, m.id)));
            item.insert(
                "rts".to_owned(),
                s(format!("{}#{}#{}", m.room_id, m.created_at, m.id)),
            );
        }
        item
    }

    fn add_unread(
        &self,
        pk: &str,
        sk: String,
        amount: i64,
    ) -> Result<TransactWriteItem, CommitError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression("ADD unread :n, version :one")
            .expression_attribute_values(":n", n(amount))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| CommitError::Fatal(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), SdkError<TransactWriteItemsError, aws_smithy_runtime_api::http::Response>> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(|_| ())
    }
}

/// Classifies a failed transaction; `messages` are the Puts at the front of the request.
fn commit_error(
    err: SdkError<TransactWriteItemsError, aws_smithy_runtime_api::http::Response>,
    messages: &[Notification],
) -> CommitError {
    if let SdkError::ServiceError(service) = &err {
        if let TransactWriteItemsError::TransactionCanceledException(cancelled) = service.err() {
            let reasons = cancelled.cancellation_reasons();
            let duplicates: Vec<_> = reasons
                .iter()
                .zip(messages)
                .filter(|(r, _)| r.code() == Some("ConditionalCheckFailed"))
                .map(|(_, m)| m.id.clone())
                .collect();
            if !duplicates.is_empty() {
                return CommitError::Duplicates(duplicates);
            }
            let codes: Vec<&str> = reasons
                .iter()
                .filter_map(|r| r.code())
                .filter(|c| *c != "None")
                .collect();
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
    async fn commit(&self, user: &UserKey, messages: &[Notification]) -> Result<(), CommitError> {
        let pk = user_pk(user);
        let mut items = Vec::with_capacity(messages.len() + 2);
        for m in messages {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(self.message_item(user, m)))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| CommitError::Fatal(e.to_string()))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let rooms = room_increments(messages);
        let total: u64 = rooms.values().sum();
        for (room, count) in rooms {
            items.push(self.add_unread(&pk, room_sk(&room), count as i64)?);
        }
        if total > 0 {
            items.push(self.add_unread(&pk, TOTAL_SK.to_owned(), total as i64)?);
        }
        self.transact(items)
            .await
            .map_err(|e| commit_error(e, messages))
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
        let now = crate::telemetry::now_rfc3339();
        let mut items = Vec::with_capacity(rooms.len() + 1);
        let mut sum = 0u64;
        for (room, seen) in rooms {
            sum += seen.unread;
            let update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .key("sk", s(room_sk(room)))
                .update_expression("SET unread = :zero, read_at = :now ADD version :one")
                .condition_expression("version = :seen")
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":now", s(&now))
                .expression_attribute_values(":seen", n(seen.version))
                .build()
                .map_err(|e| CommitError::Fatal(e.to_string()))?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        let total = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s(TOTAL_SK))
            .update_expression("ADD unread :minus, version :one")
            .condition_expression("unread >= :sum")
            .expression_attribute_values(":minus", n(-(sum as i64)))
            .expression_attribute_values(":sum", n(sum))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| CommitError::Fatal(e.to_string()))?;
        items.push(TransactWriteItem::builder().update(total).build());
        // A failed version or floor condition comes back retryable: re-read and try again.
        self.transact(items).await.map_err(|e| commit_error(e, &[]))
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
        let mut total = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s(TOTAL_SK))
            .update_expression("SET unread = :u ADD version :one")
            .expression_attribute_values(":u", n(unread))
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
        self.transact(items).await.map_err(|e| commit_error(e, &[]))
    }

    async fn users_page(
        &self,
        cursor: Option<String>,
    ) -> Result<(Vec<UserKey>, Option<String>), StoreError> {
        let page = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :total")
            .expression_attribute_values(":total", s(TOTAL_SK))
            .projection_expression("pk, sk")
            .set_exclusive_start_key(cursor.as_deref().map(decode_cursor).transpose()?)
            .send()
            .await
            .map_err(store_error)?;
        let users = page
            .items()
            .iter()
            .filter_map(|item| item.get("pk")?.as_s().ok().and_then(|pk| parse_user_pk(pk)))
            .collect();
        Ok((users, page.last_evaluated_key().map(encode_cursor)))
    }
}

impl DynamoInbox {
    /// Every room item and the TOTAL item of one partition (strongly consistent, all pages).
    async fn counter_items(
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
            .counter_items(&user_pk(user), "sk, unread, version")
            .await?
        {
            let sk = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                .unwrap_or_default();
            let counter = Counter {
                unread: number(&item, "unread"),
                version: number(&item, "version"),
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

    /// When each room was last marked read (messages created before then show as read).
    async fn rooms_read_at(&self, pk: &str) -> Result<HashMap<String, String>, StoreError> {
        let items = self.counter_items(pk, "sk, read_at").await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let room = item.get("sk")?.as_s().ok()?.strip_prefix("R#")?;
                Some((room.to_owned(), item.get("read_at")?.as_s().ok()?.clone()))
            })
            .collect())
    }
}

#[async_trait]
impl MessageLog for DynamoInbox {
    async fn list_messages(
        &self,
        user: &UserKey,
        room: Option<&RoomId>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<MessagePage, StoreError> {
        let pk = user_pk(user);
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .scan_index_forward(false)
            .limit(limit as i32)
            .expression_attribute_values(":pk", s(&pk))
            .set_exclusive_start_key(
                cursor
                    .map(|c| scoped_cursor(c, &pk, if room.is_some() { "rts" } else { "ts" }))
                    .transpose()?,
            );
        query = match room {
            Some(room) => query
                .index_name(BY_ROOM_INDEX)
                .key_condition_expression("pk = :pk AND begins_with(rts, :room)")
                .expression_attribute_values(":room", s(format!("{room}#"))),
            None => query
                .index_name(BY_TIME_INDEX)
                .key_condition_expression("pk = :pk"),
        };
        let page = query.send().await.map_err(store_error)?;
        let read_at = self.rooms_read_at(&pk).await?;
        let messages = page
            .items()
            .iter()
            .map(|item| {
                let text = |k: &str| {
                    item.get(k)
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default()
                };
                let room_id = text("room_id");
                let created_at = text("created_at");
                let read = read_at.get(&room_id).is_some_and(|at| *at >= created_at);
                MessageView {
                    id: text("id"),
                    title: text("title"),
                    body: text("body"),
                    data: item
                        .get("data")
                        .and_then(|v| v.as_s().ok())
                        .and_then(|d| serde_json::from_str(d).ok()),
                    room_id,
                    created_at,
                    read,
                }
            })
            .collect();
        Ok(MessagePage {
            messages,
            next_cursor: page.last_evaluated_key().map(encode_cursor),
        })
    }
}

fn number(item: &HashMap<String, AttributeValue>, key: &str) -> u64 {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(0, |v| v.max(0) as u64)
}

/// `T#<tenant>#U#<user>` back into a key (ids cannot contain `#`).
pub fn parse_user_pk(pk: &str) -> Option<UserKey> {
    let rest = pk.strip_prefix("T#")?;
    let (tenant, user) = rest.split_once("#U#")?;
    Some(UserKey {
        tenant: TenantId::parse(tenant, "tenant").ok()?,
        user: UserId::parse(user, "user").ok()?,
    })
}

/// Opaque cursor: the string attributes of a LastEvaluatedKey, as URL-safe base64 JSON.
fn encode_cursor(key: &HashMap<String, AttributeValue>) -> String {
    // The partition key stays server-side: the cursor is pinned to the caller's own.
    let plain: HashMap<&str, &str> = key
        .iter()
        .filter(|(k, _)| k.as_str() != "pk")
        .filter_map(|(k, v)| Some((k.as_str(), v.as_s().ok()?.as_str())))
        .collect();
    let json = serde_json::to_vec(&plain).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_cursor(cursor: &str) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::BadCursor)?;
    let plain: HashMap<String, String> =
        serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)?;
    Ok(plain.into_iter().map(|(k, v)| (k, s(v))).collect())
}

/// A client's cursor, checked against the query it continues (`index_key` is the index's
/// sort key) and pinned to the caller's own partition.
fn scoped_cursor(
    cursor: &str,
    pk: &str,
    index_key: &str,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut key = decode_cursor(cursor)?;
    let expected = ["sk", index_key];
    if key.len() != expected.len() || !expected.iter().all(|k| key.contains_key(*k)) {
        return Err(StoreError::BadCursor);
    }
    key.insert("pk".to_owned(), s(pk));
    Ok(key)
}
