//! What reconcile reads: users page by page (Scan segments or the change log) and its
//! checkpoint, an item of its own in the inbox table; and the change log's writes.
//!
//! The change log lives in the inbox table too, outside every user's partition:
//! `pk = CHANGED#<YYYYMMDDHH>#<shard>`, `sk = <batch>#<part>`, `users` (a string set of user
//! partition keys), `expires_at` (TTL, [`CHANGE_LOG_DAYS`] on).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{decode_key, encode_key, n, parse_user_pk, s, text, user_pk, DynamoInbox, TOTAL_SK};
use crate::aws::store_error;
use crate::domain::reconcile::shard_mark;
use crate::error::StoreError;
use crate::ports::{ChangeLog, ChangeLogEntry, UserIndex, UserSet, UsersPage};

/// The checkpoint's partition: no user's (user partitions start with `T#`).
const CHECKPOINT_PK: &str = "RECONCILE";

/// How long the change log keeps an hour: reconcile catches up hour by hour, so a run may
/// come days late and still find every user; after this, only a full pass does.
pub const CHANGE_LOG_DAYS: i64 = 14;

/// The change log's partition of one shard of one hour.
fn change_log_pk(hour: &str, shard: u32) -> String {
    format!("CHANGED#{}", shard_mark(hour, shard))
}

fn resume(cursor: Option<String>) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
    cursor
        .map(|c| {
            let plain = decode_key(&c)?;
            Ok(plain.into_iter().map(|(k, v)| (k, s(v))).collect())
        })
        .transpose()
}

#[async_trait]
impl UserIndex for DynamoInbox {
    async fn users_page(
        &self,
        set: &UserSet,
        cursor: Option<String>,
    ) -> Result<UsersPage, StoreError> {
        let mut start = resume(cursor)?;
        // A cursor saved by a run before the change log (a `by_change` index key) cannot
        // continue a change-log partition: that partition is read from its start instead.
        if matches!(set, UserSet::Changed { .. })
            && start.as_ref().is_some_and(|key| {
                !matches!(key.get("pk"), Some(AttributeValue::S(pk)) if pk.starts_with("CHANGED#"))
                    || key.contains_key("changed")
            })
        {
            start = None;
        }
        let (items, last) = match set {
            UserSet::Segment { segment, segments } => {
                let page = self
                    .client
                    .scan()
                    .table_name(&self.table)
                    .segment(*segment as i32)
                    .total_segments(*segments as i32)
                    .filter_expression("sk = :total")
                    .expression_attribute_values(":total", s(TOTAL_SK))
                    .projection_expression("pk, sk")
                    .set_limit(self.page_limit)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(store_error)?;
                (page.items, page.last_evaluated_key)
            }
            UserSet::Changed { hour, shard } => {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk")
                    .expression_attribute_values(":pk", s(change_log_pk(hour, *shard)))
                    .set_limit(self.page_limit)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(store_error)?;
                (page.items, page.last_evaluated_key)
            }
        };
        // A Scan item is a TOTAL (its `pk` the user's); a change-log item lists its users.
        let users = items
            .unwrap_or_default()
            .iter()
            .flat_map(|item| match item.get("users") {
                Some(AttributeValue::Ss(users)) => users.clone(),
                _ => vec![text(item, "pk")],
            })
            .filter_map(|pk| parse_user_pk(&pk))
            .collect();
        Ok(UsersPage {
            users,
            // The whole key, partition included: this cursor never leaves herald.
            next: last.as_ref().map(encode_key),
        })
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(CHECKPOINT_PK))
            .key("sk", s(format!("CHECKPOINT#{name}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.item.map(|item| text(&item, "state")))
    }

    async fn save_checkpoint(&self, name: &str, json: &str) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(CHECKPOINT_PK))
            .item("sk", s(format!("CHECKPOINT#{name}")))
            .item("state", s(json))
            .item("updated_at", s(format!("{:.3}", self.clock.now())))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

#[async_trait]
impl ChangeLog for DynamoInbox {
    async fn log_changes(&self, entry: &ChangeLogEntry) -> Result<(), StoreError> {
        if entry.users.is_empty() {
            return Ok(());
        }
        let expires = self.clock.now().as_second() + CHANGE_LOG_DAYS * 24 * 3600;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(change_log_pk(&entry.hour, entry.shard)))
            .item("sk", s(&entry.id))
            .item(
                "users",
                AttributeValue::Ss(entry.users.iter().map(user_pk).collect()),
            )
            .item("expires_at", n(expires))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
