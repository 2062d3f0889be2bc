//! DynamoDB adapter of digest windows in the directory table, in the user's partition
//! (`pk = T#<tenant>#U#<user>`): the (user, key)'s open window `sk = DG#<key>` (`window`,
//! `closes_at` ms, `sealed`), each event `sk = DGE#<key>#<window>#<event>` (`json`), and each
//! event's join record `sk = DGJ#<key>#<event>` (`window`, `closes_at`, `opened`). Everything
//! expires (TTL) a day after its window closed.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use super::item::{fatal, flag, key, n, s, text, written, Item};
use super::store_error;
use crate::domain::counters::UserKey;
use crate::domain::digest::{DigestEvent, JoinPlan, Joined, OpenWindow};
use crate::error::StoreError;
use crate::ports::{CommitError, Digests};

/// How long a window's items outlive its close.
const KEEP_SECONDS: i64 = 86_400;
/// Most events one digest counts (reading more would make one delivery's work unbounded).
pub const MAX_COUNTED_EVENTS: u64 = 10_000;

fn pk(user: &UserKey) -> String {
    format!("T#{}#U#{}", user.tenant, user.user)
}

fn ms(at: jiff::Timestamp) -> AttributeValue {
    n(at.as_millisecond())
}

fn timestamp(item: &Item, name: &str) -> jiff::Timestamp {
    let value = item
        .get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    jiff::Timestamp::from_millisecond(value).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn expires(closes_at: jiff::Timestamp) -> AttributeValue {
    n(closes_at.as_second() + KEEP_SECONDS)
}

#[derive(Debug, Clone)]
pub struct DynamoDigests {
    client: Client,
    table: String,
}

impl DynamoDigests {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn put(&self, item: Item, condition: &str) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .build()
            .map_err(fatal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

/// The join record's cancellation makes a duplicate; any other a changed window (read
/// again) or contention (retry).
fn add_error(err: SdkError<TransactWriteItemsError>) -> CommitError {
    if let Some(TransactWriteItemsError::TransactionCanceledException(c)) = err.as_service_error() {
        let codes: Vec<&str> = c
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or("None"))
            .collect();
        if codes.get(2) == Some(&"ConditionalCheckFailed") {
            return CommitError::Duplicates(Vec::new());
        }
        return CommitError::Retryable(format!("digest join cancelled: {}", codes.join(", ")));
    }
    match store_error(err) {
        e if e.is_transient() => CommitError::Retryable(e.to_string()),
        e => CommitError::Fatal(e.to_string()),
    }
}

#[async_trait]
impl Digests for DynamoDigests {
    async fn open_window(
        &self,
        user: &UserKey,
        key_name: &str,
    ) -> Result<Option<OpenWindow>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk(user), format!("DG#{key_name}"))))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.item.map(|item| OpenWindow {
            window: text(&item, "window").unwrap_or_default(),
            closes_at: timestamp(&item, "closes_at"),
            sealed: flag(&item, "sealed"),
        }))
    }

    async fn add_event(
        &self,
        user: &UserKey,
        key_name: &str,
        plan: &JoinPlan,
        event: &DigestEvent,
        now: jiff::Timestamp,
        _window_seconds: u32,
    ) -> Result<(), CommitError> {
        let pk = pk(user);
        let open_key = key(pk.clone(), format!("DG#{key_name}"));
        let (window, closes_at, opened, first) = match plan {
            JoinPlan::Join(open) => {
                let check = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(open_key))
                    .condition_expression("#w = :w AND sealed = :false AND closes_at > :now")
                    .expression_attribute_names("#w", "window")
                    .expression_attribute_values(":w", s(&open.window))
                    .expression_attribute_values(":false", AttributeValue::Bool(false))
                    .expression_attribute_values(":now", ms(now))
                    .build()
                    .map_err(|e| CommitError::Fatal(e.to_string()))?;
                let item = TransactWriteItem::builder().condition_check(check).build();
                (open.window.clone(), open.closes_at, false, item)
            }
            JoinPlan::Open {
                replacing,
                closes_at,
            } => {
                let mut item = open_key;
                item.insert("window".into(), s(&event.id));
                item.insert("closes_at".into(), ms(*closes_at));
                item.insert("sealed".into(), AttributeValue::Bool(false));
                item.insert("expires_at".into(), expires(*closes_at));
                let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
                put = match replacing {
                    None => put.condition_expression("attribute_not_exists(pk)"),
                    Some(old) => put
                        .condition_expression("#w = :old")
                        .expression_attribute_names("#w", "window")
                        .expression_attribute_values(":old", s(old)),
                };
                let put = put.build().map_err(|e| CommitError::Fatal(e.to_string()))?;
                let item = TransactWriteItem::builder().put(put).build();
                (event.id.clone(), *closes_at, true, item)
            }
        };
        let json = serde_json::to_string(event).map_err(|e| CommitError::Fatal(e.to_string()))?;
        let mut event_item = key(pk.clone(), format!("DGE#{key_name}#{window}#{}", event.id));
        event_item.insert("json".into(), s(json));
        event_item.insert("expires_at".into(), expires(closes_at));
        let mut join_item = key(pk, format!("DGJ#{key_name}#{}", event.id));
        join_item.insert("window".into(), s(&window));
        join_item.insert("closes_at".into(), ms(closes_at));
        join_item.insert("opened".into(), AttributeValue::Bool(opened));
        join_item.insert("expires_at".into(), expires(closes_at));
        let items = vec![
            first,
            self.put(event_item, "attribute_not_exists(pk)")
                .map_err(|e| CommitError::Fatal(e.to_string()))?,
            self.put(join_item, "attribute_not_exists(pk)")
                .map_err(|e| CommitError::Fatal(e.to_string()))?,
        ];
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(|_| ())
            .map_err(add_error)
    }

    async fn joined(
        &self,
        user: &UserKey,
        key_name: &str,
        event_id: &str,
    ) -> Result<Option<Joined>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk(user), format!("DGJ#{key_name}#{event_id}"))))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.item.map(|item| Joined {
            window: text(&item, "window").unwrap_or_default(),
            closes_at: timestamp(&item, "closes_at"),
            opened: flag(&item, "opened"),
        }))
    }

    async fn seal(&self, user: &UserKey, key_name: &str, window: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk(user), format!("DG#{key_name}"))))
            .update_expression("SET sealed = :true")
            .condition_expression("#w = :w")
            .expression_attribute_names("#w", "window")
            .expression_attribute_values(":w", s(window))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        // Not the open window any more: replaced, so closed to joins already.
        written(result).map(|_| ())
    }

    async fn events(
        &self,
        user: &UserKey,
        key_name: &str,
        window: &str,
        limit: usize,
    ) -> Result<(Vec<DigestEvent>, u64), StoreError> {
        let mut listed = Vec::new();
        let mut total = 0u64;
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk(user)))
                .expression_attribute_values(":prefix", s(format!("DGE#{key_name}#{window}#")))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            for item in page.items() {
                total += 1;
                if listed.len() < limit {
                    let json = text(item, "json").unwrap_or_default();
                    let event: DigestEvent = serde_json::from_str(&json)
                        .map_err(|e| fatal(format!("stored digest event: {e}")))?;
                    listed.push(event);
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() || total >= MAX_COUNTED_EVENTS {
                break;
            }
        }
        listed.sort_by_key(|e| e.created_at);
        Ok((listed, total))
    }
}
