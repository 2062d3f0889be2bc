//! What reconcile reads: users page by page (Scan segments or the `by_change` index) and
//! its checkpoint, an item of its own in the inbox table.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{
    decode_key, encode_key, parse_user_pk, s, text, DynamoInbox, BY_CHANGE_INDEX, TOTAL_SK,
};
use crate::aws::store_error;
use crate::domain::reconcile::shard_mark;
use crate::error::StoreError;
use crate::ports::{UserIndex, UserSet, UsersPage};

/// The checkpoint's partition: no user's (user partitions start with `T#`).
const CHECKPOINT_PK: &str = "RECONCILE";

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
        let start = resume(cursor)?;
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
                    .index_name(BY_CHANGE_INDEX)
                    .key_condition_expression("changed = :mark")
                    .expression_attribute_values(":mark", s(shard_mark(hour, *shard)))
                    .set_limit(self.page_limit)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(store_error)?;
                (page.items, page.last_evaluated_key)
            }
        };
        Ok(UsersPage {
            users: items
                .unwrap_or_default()
                .iter()
                .filter_map(|item| parse_user_pk(&text(item, "pk")))
                .collect(),
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
