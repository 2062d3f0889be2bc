//! DynamoDB adapter of the suppression list in the directory table: the delivery path's
//! check and write (`directory.rs` calls them) and the management the API does.
//!
//! Layout: the entry `deliver` reads, `pk = T#<tenant>#S#<address>` (or `G#S#<address>`
//! for every tenant), `sk = SUPPRESSED`, attributes `reason`, `at`; a tenant entry has a copy
//! in the tenant's list, `pk = T#<tenant>#SUPPRESSIONS, sk = <address>`, written in the same
//! transaction, so the list is a Query; a removal is recorded twice, under the address
//! (`pk = T#<tenant>#S#<address>, sk = REMOVED#<removed_at>`) and in the tenant's log
//! (`pk = T#<tenant>#SUPPRESSIONS#REMOVED, sk = <removed_at>#<address>`), in the transaction
//! that deletes the entry and its copy.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use super::item::{
    batch_get, decode_key, encode_key, fatal, key, s, text, transaction_outcome, Item,
};
use super::store_error;
use crate::domain::ids::TenantId;
use crate::domain::suppression::{Removal, Suppression, SuppressionScope};
use crate::error::StoreError;
use crate::ports::clock::{Clock, SystemClock};
use crate::ports::suppressions::{AddressSuppressions, Lifted, Page, SuppressionList};

const ENTRY_SK: &str = "SUPPRESSED";
/// How many removals of one address a lookup shows (newest first).
const REMOVALS_SHOWN: i32 = 20;

fn entry_pk(tenant: Option<&TenantId>, address: &str) -> String {
    match tenant {
        Some(tenant) => format!("T#{tenant}#S#{address}"),
        None => format!("G#S#{address}"),
    }
}

fn list_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#SUPPRESSIONS")
}

fn log_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#SUPPRESSIONS#REMOVED")
}

/// Whether `address` is suppressed for `tenant` or for every tenant: one batch read.
pub(crate) async fn is_suppressed(
    client: &Client,
    table: &str,
    tenant: &TenantId,
    address: &str,
) -> Result<bool, StoreError> {
    let address = address.to_ascii_lowercase();
    let keys = [Some(tenant), None].map(|t| (entry_pk(t, &address), ENTRY_SK.to_owned()));
    Ok(!batch_get(client, table, keys, Some("pk"), 1)
        .await?
        .is_empty())
}

/// Suppresses `address` for `tenant` (the entry and its copy in the tenant's list, in one
/// transaction) or for every tenant (the entry alone: global entries are not listed).
pub(crate) async fn suppress(
    client: &Client,
    table: &str,
    at: jiff::Timestamp,
    tenant: Option<&TenantId>,
    address: &str,
    reason: &str,
) -> Result<(), StoreError> {
    let address = address.to_ascii_lowercase();
    let attributes = |mut item: Item| {
        item.insert("reason".to_owned(), s(reason));
        item.insert("at".to_owned(), s(crate::domain::time::millis(at)));
        item
    };
    let entry = attributes(key(entry_pk(tenant, &address), ENTRY_SK));
    let Some(tenant) = tenant else {
        client
            .put_item()
            .table_name(table)
            .set_item(Some(entry))
            .send()
            .await
            .map_err(store_error)?;
        return Ok(());
    };
    let listed = attributes(key(list_pk(tenant), &address));
    let put = |item: Item| -> Result<TransactWriteItem, StoreError> {
        Ok(TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(table)
                    .set_item(Some(item))
                    .build()
                    .map_err(fatal)?,
            )
            .build())
    };
    let result = client
        .transact_write_items()
        .transact_items(put(entry)?)
        .transact_items(put(listed)?)
        .send()
        .await;
    transaction_outcome(result, "suppression write").map(|_| ())
}

/// An entry item back as the API shows it (`None`: not an entry).
fn entry_of(item: &Item, address: &str, scope: SuppressionScope) -> Option<Suppression> {
    Some(Suppression {
        address: address.to_owned(),
        scope,
        reason: text(item, "reason").unwrap_or_default(),
        suppressed_at: text(item, "at")?.parse().ok()?,
    })
}

fn removal_item(removal: &Removal) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(removal)
        .map(AttributeValue::S)
        .map_err(fatal)
}

fn removal_of(item: &Item) -> Result<Removal, StoreError> {
    let json =
        text(item, "json").ok_or_else(|| StoreError::Fatal("removal without json".into()))?;
    serde_json::from_str(&json).map_err(|e| StoreError::Fatal(format!("stored removal: {e}")))
}

/// The `ExclusiveStartKey` of a list's cursor: only a sort key, so a cursor can only
/// continue the caller's own tenant's list.
fn resume(pk: String, cursor: Option<&str>) -> Result<Option<Item>, StoreError> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let plain = decode_key(cursor)?;
    match (plain.get("sk"), plain.len()) {
        (Some(sk), 1) => Ok(Some(key(pk, sk.clone()))),
        _ => Err(StoreError::BadCursor),
    }
}

fn cursor_of(last: Option<Item>) -> Option<String> {
    last.map(|k| {
        let sk = k.get("sk").cloned().unwrap_or_else(|| s(""));
        encode_key(&HashMap::from([("sk".to_owned(), sk)]))
    })
}

/// The suppression list in the directory table.
#[derive(Debug, Clone)]
pub struct DynamoSuppressions {
    client: Client,
    table: String,
    /// The time removals are stamped with.
    clock: Arc<dyn Clock>,
}

impl DynamoSuppressions {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Another clock than the system's (tests move time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    async fn query(
        &self,
        pk: String,
        sk_prefix: Option<&str>,
        newest_first: bool,
        limit: i32,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .scan_index_forward(!newest_first)
            .limit(limit)
            .set_exclusive_start_key(start)
            .expression_attribute_values(":pk", s(pk));
        request = match sk_prefix {
            Some(prefix) => request
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", s(prefix)),
            None => request.key_condition_expression("pk = :pk"),
        };
        let out = request.send().await.map_err(store_error)?;
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
    }
}

#[async_trait]
impl SuppressionList for DynamoSuppressions {
    async fn suppressions(
        &self,
        tenant: &TenantId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Suppression>, StoreError> {
        let start = resume(list_pk(tenant), cursor)?;
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let (items, last) = self
            .query(list_pk(tenant), None, false, limit, start)
            .await?;
        let items = items
            .iter()
            .filter_map(|item| {
                let address = text(item, "sk")?;
                entry_of(item, &address, SuppressionScope::Tenant)
            })
            .collect();
        Ok(Page {
            items,
            next_cursor: cursor_of(last),
        })
    }

    async fn lookup(
        &self,
        tenant: &TenantId,
        address: &str,
    ) -> Result<AddressSuppressions, StoreError> {
        let tenant_pk = entry_pk(Some(tenant), address);
        let global_pk = entry_pk(None, address);
        let found = batch_get(
            &self.client,
            &self.table,
            [
                (tenant_pk.clone(), ENTRY_SK.to_owned()),
                (global_pk, ENTRY_SK.to_owned()),
            ],
            None,
            3,
        )
        .await?;
        let mut entries: Vec<Suppression> = found
            .iter()
            .filter_map(|item| {
                let scope = if text(item, "pk").as_deref() == Some(tenant_pk.as_str()) {
                    SuppressionScope::Tenant
                } else {
                    SuppressionScope::Global
                };
                entry_of(item, address, scope)
            })
            .collect();
        entries.sort_by_key(|e| e.scope == SuppressionScope::Global);
        let (items, _) = self
            .query(tenant_pk, Some("REMOVED#"), true, REMOVALS_SHOWN, None)
            .await?;
        let removals = items.iter().map(removal_of).collect::<Result<_, _>>()?;
        Ok(AddressSuppressions { entries, removals })
    }

    async fn lift(
        &self,
        tenant: &TenantId,
        address: &str,
        removed_by: &str,
        note: Option<&str>,
    ) -> Result<Lifted, StoreError> {
        let pk = entry_pk(Some(tenant), address);
        let found = batch_get(
            &self.client,
            &self.table,
            [(pk.clone(), ENTRY_SK.to_owned())],
            None,
            3,
        )
        .await?;
        let Some(entry) = found
            .first()
            .and_then(|item| entry_of(item, address, SuppressionScope::Tenant).map(|e| (e, item)))
        else {
            return Ok(Lifted::NotSuppressed);
        };
        let (entry, item) = entry;
        let stamped = text(item, "at").unwrap_or_default();
        let removal = Removal {
            address: address.to_owned(),
            reason: entry.reason,
            suppressed_at: entry.suppressed_at,
            removed_at: self.clock.now(),
            removed_by: removed_by.to_owned(),
            note: note.map(str::to_owned),
        };
        let removed_at = crate::domain::time::millis(removal.removed_at);
        let record = |k: Item| {
            let mut item = k;
            item.insert("json".to_owned(), removal_item(&removal)?);
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(fatal)
        };
        // The entry goes only if it is still the one read: a bounce that suppressed the
        // address again in between is not lifted by a removal that never saw it.
        let delete_entry = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), ENTRY_SK)))
            .condition_expression("#at = :at")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":at", s(stamped))
            .build()
            .map_err(fatal)?;
        let delete_listed = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(list_pk(tenant), address)))
            .build()
            .map_err(fatal)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete_entry).build())
            .transact_items(TransactWriteItem::builder().delete(delete_listed).build())
            .transact_items(
                TransactWriteItem::builder()
                    .put(record(key(pk, format!("REMOVED#{removed_at}")))?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .put(record(key(
                        log_pk(tenant),
                        format!("{removed_at}#{address}"),
                    ))?)
                    .build(),
            )
            .send()
            .await;
        // A condition that failed: suppressed again, or lifted by another caller, since the
        // read (`VersionConflict`: try again).
        transaction_outcome(result, "suppression removal")?;
        Ok(Lifted::Removed(removal))
    }

    async fn removals(
        &self,
        tenant: &TenantId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Removal>, StoreError> {
        let start = resume(log_pk(tenant), cursor)?;
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let (items, last) = self.query(log_pk(tenant), None, true, limit, start).await?;
        Ok(Page {
            items: items.iter().map(removal_of).collect::<Result<_, _>>()?,
            next_cursor: cursor_of(last),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_cursor_continues_only_a_list_of_the_callers_tenant() {
        let cursor = cursor_of(Some(key("T#other#SUPPRESSIONS", "a@example.com")));
        let resumed = resume(
            list_pk(&TenantId::parse("acme", "t").unwrap()),
            cursor.as_deref(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(resumed["pk"], s("T#acme#SUPPRESSIONS"));
        assert_eq!(resumed["sk"], s("a@example.com"));
        let forged = encode_key(&HashMap::from([
            ("pk".to_owned(), s("T#other#SUPPRESSIONS")),
            ("sk".to_owned(), s("a@example.com")),
        ]));
        assert!(matches!(
            resume(
                list_pk(&TenantId::parse("acme", "t").unwrap()),
                Some(&forged)
            ),
            Err(StoreError::BadCursor)
        ));
    }
}
