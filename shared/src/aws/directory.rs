//! DynamoDB adapter of the directory table: contacts, delivery status and suppression.
//!
//! Layout: contact `pk = T#<tenant>#U#<user>, sk = CONTACT`; delivery status
//! `pk = T#<tenant>#N#<notification>, sk = U#<user>#C#<channel>`, or for campaign jobs
//! (`per_user`) `pk = T#<tenant>#N#<notification>#U#<user>, sk = C#<channel>` so that a
//! campaign's millions of records spread over partitions; suppression
//! `pk = T#<tenant>#S#<address>, sk = SUPPRESSED` (or `G#S#<address>` for every tenant: an
//! SMS STOP); unsubscribe pseudonym
//! `pk = T#<tenant>#P#<pseudonym>, sk = USER` (attribute `user_id`), written with the contact.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use super::item::{fatal, s, transaction_outcome, written};
use super::store_error;
use crate::domain::contact::Contact;
use crate::domain::ids::{NotificationId, TenantId, UserId};
use crate::domain::notification::Channel;
use crate::domain::time;
use crate::error::StoreError;
use crate::ports::clock::{Clock, SystemClock};
use crate::ports::{Claim, DeliveryRecord, DeliveryState, Directory};

#[derive(Debug, Clone)]
pub struct DynamoDirectory {
    client: Client,
    table: String,
    /// The time suppressions are stamped with.
    clock: Arc<dyn Clock>,
}

impl DynamoDirectory {
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

    async fn get(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.item)
    }

    /// Strongly consistent reads of `(pk, sk)` keys; keys DynamoDB did not get to
    /// (throttling) make it a transient error, never a silent miss.
    async fn batch_get(
        &self,
        keys: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        super::item::batch_get(&self.client, &self.table, keys, None, 1).await
    }
}

fn delivery_key(tenant: &TenantId, record: &DeliveryRecord) -> (String, String) {
    record_key(
        tenant,
        &record.notification_id,
        &record.user_id,
        record.channel,
        record.per_user,
    )
}

/// Where one delivery record lives (see the module's layout).
fn record_key(
    tenant: &TenantId,
    id: &NotificationId,
    user: &UserId,
    channel: Channel,
    per_user: bool,
) -> (String, String) {
    if per_user {
        (
            format!("T#{tenant}#N#{id}#U#{user}"),
            format!("C#{}", channel.as_str()),
        )
    } else {
        (
            format!("T#{tenant}#N#{id}"),
            format!("U#{user}#C#{}", channel.as_str()),
        )
    }
}

/// A delivery record: its JSON, plus `state`, `updated_at` and `claim` as attributes for
/// claims' conditions.
fn delivery_item(
    tenant: &TenantId,
    record: &DeliveryRecord,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let (pk, sk) = delivery_key(tenant, record);
    Ok(HashMap::from([
        ("pk".to_owned(), s(&pk)),
        ("sk".to_owned(), s(&sk)),
        ("json".to_owned(), AttributeValue::S(to_json(record)?)),
        ("state".to_owned(), s(record.state.as_str())),
        ("updated_at".to_owned(), s(time::millis(record.updated_at))),
        (
            "claim".to_owned(),
            s(record.claim.as_deref().unwrap_or_default()),
        ),
    ]))
}

fn json_of<T: serde::de::DeserializeOwned>(
    item: &HashMap<String, AttributeValue>,
) -> Result<T, StoreError> {
    let raw = item
        .get("json")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Fatal("item without json".into()))?;
    serde_json::from_str(raw).map_err(|e| StoreError::Fatal(format!("stored json: {e}")))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Fatal(e.to_string()))
}

#[async_trait]
impl Directory for DynamoDirectory {
    async fn contact(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Option<Contact>, StoreError> {
        self.get(format!("T#{tenant}#U#{user}"), "CONTACT")
            .await?
            .map(|item| json_of(&item))
            .transpose()
    }

    async fn contacts(
        &self,
        tenant: &TenantId,
        users: &[UserId],
    ) -> Result<HashMap<UserId, Contact>, StoreError> {
        let mut unique: Vec<&UserId> = users.iter().collect();
        unique.sort();
        unique.dedup();
        let keys = unique
            .iter()
            .map(|u| (format!("T#{tenant}#U#{u}"), "CONTACT".to_owned()));
        let mut out = HashMap::new();
        for item in self.batch_get(keys).await? {
            let user = item
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .and_then(|pk| pk.rsplit_once("#U#"))
                .and_then(|(_, u)| UserId::parse(u, "user_id").ok());
            if let Some(user) = user {
                out.insert(user, json_of(&item)?);
            }
        }
        Ok(out)
    }

    async fn contact_versioned(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<(Option<Contact>, u64), StoreError> {
        let Some(item) = self.get(format!("T#{tenant}#U#{user}"), "CONTACT").await? else {
            return Ok((None, 0));
        };
        let version = item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok((Some(json_of(&item)?), version))
    }

    async fn put_contact(
        &self,
        tenant: &TenantId,
        user: &UserId,
        contact: &Contact,
        pseudonym: &str,
        expected: u64,
    ) -> Result<u64, StoreError> {
        let version = expected + 1;
        let contact_item = HashMap::from([
            ("pk".to_owned(), s(format!("T#{tenant}#U#{user}"))),
            ("sk".to_owned(), s("CONTACT")),
            ("json".to_owned(), AttributeValue::S(to_json(contact)?)),
            ("version".to_owned(), AttributeValue::N(version.to_string())),
        ]);
        // Version 0 is "none yet": no item, or one from before contacts had versions.
        let mut put_contact = Put::builder()
            .table_name(&self.table)
            .set_item(Some(contact_item))
            .expression_attribute_names("#v", "version");
        put_contact = if expected == 0 {
            put_contact.condition_expression("attribute_not_exists(#v)")
        } else {
            put_contact
                .condition_expression("#v = :v")
                .expression_attribute_values(":v", AttributeValue::N(expected.to_string()))
        };
        let pseudonym_item = HashMap::from([
            ("pk".to_owned(), s(format!("T#{tenant}#P#{pseudonym}"))),
            ("sk".to_owned(), s("USER")),
            ("user_id".to_owned(), s(user.as_str())),
        ]);
        let put_pseudonym = Put::builder()
            .table_name(&self.table)
            .set_item(Some(pseudonym_item))
            .build()
            .map_err(fatal)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .put(put_contact.build().map_err(fatal)?)
                    .build(),
            )
            .transact_items(TransactWriteItem::builder().put(put_pseudonym).build())
            .send()
            .await;
        // A condition that failed is another version; another transaction on the same items
        // (or throttling) wrote nothing, and trying again resolves it: never a 500.
        transaction_outcome(result, "contact write")?;
        Ok(version)
    }

    async fn user_of_pseudonym(
        &self,
        tenant: &TenantId,
        pseudonym: &str,
    ) -> Result<Option<UserId>, StoreError> {
        let Some(item) = self
            .get(format!("T#{tenant}#P#{pseudonym}"), "USER")
            .await?
        else {
            return Ok(None);
        };
        let raw = item
            .get("user_id")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| StoreError::Fatal("pseudonym item without user_id".into()))?;
        UserId::parse(raw, "user_id")
            .map(Some)
            .map_err(|e| StoreError::Fatal(e.message))
    }

    async fn user_delivery_status(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
        user: &UserId,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        // Both layouts: campaign records are keyed per user.
        let keys = [Channel::Email, Channel::Sms, Channel::Push]
            .into_iter()
            .flat_map(|channel| {
                [false, true].map(|per_user| record_key(tenant, id, user, channel, per_user))
            });
        let mut records: Vec<DeliveryRecord> = self
            .batch_get(keys)
            .await?
            .iter()
            .map(json_of)
            .collect::<Result<_, _>>()?;
        records.sort_by_key(|r| r.channel.as_str());
        Ok(records)
    }

    async fn delivery_status(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("T#{tenant}#N#{id}")))
            .send()
            .await
            .map_err(store_error)?;
        out.items().iter().map(json_of).collect()
    }

    async fn settle_delivery(
        &self,
        tenant: &TenantId,
        record: &DeliveryRecord,
    ) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(delivery_item(tenant, record)?))
            .condition_expression("#state = :sending AND claim = :claim")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":sending", s(DeliveryState::Sending.as_str()))
            .expression_attribute_values(":claim", s(record.claim.as_deref().unwrap_or_default()))
            .send()
            .await;
        written(put)
    }

    async fn claim_delivery(
        &self,
        tenant: &TenantId,
        record: &DeliveryRecord,
        stale_before: jiff::Timestamp,
    ) -> Result<Claim, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(delivery_item(tenant, record)?))
            .condition_expression(
                "attribute_not_exists(pk) OR #state IN (:failed, :retrying) \
                 OR (#state = :sending AND #at < :stale)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#at", "updated_at")
            .expression_attribute_values(":failed", s(DeliveryState::Failed.as_str()))
            .expression_attribute_values(":retrying", s(DeliveryState::Retrying.as_str()))
            .expression_attribute_values(":sending", s(DeliveryState::Sending.as_str()))
            .expression_attribute_values(":stale", s(time::millis(stale_before)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await;
        match put {
            Ok(out) => Ok(Claim::Claimed {
                previous: match out.attributes {
                    Some(old) if !old.is_empty() => Some(Box::new(json_of(&old)?)),
                    _ => None,
                },
            }),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                let (pk, sk) = delivery_key(tenant, record);
                let Some(item) = self.get(pk, &sk).await? else {
                    // Deleted between the write and the read: try again later.
                    return Ok(Claim::Held {
                        since: record.updated_at,
                    });
                };
                let held: DeliveryRecord = json_of(&item)?;
                Ok(match held.state {
                    DeliveryState::Sending => Claim::Held {
                        since: held.updated_at,
                    },
                    state => Claim::Settled(state, held.skip),
                })
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn is_suppressed(&self, tenant: &TenantId, address: &str) -> Result<bool, StoreError> {
        super::suppressions::is_suppressed(&self.client, &self.table, tenant, address).await
    }

    async fn suppress(
        &self,
        tenant: Option<&TenantId>,
        address: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        super::suppressions::suppress(
            &self.client,
            &self.table,
            self.clock.now(),
            tenant,
            address,
            reason,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::item::cancelled_by_contention;
    use super::*;

    #[test]
    fn a_campaigns_records_spread_over_one_partition_per_user() {
        let tenant = TenantId::parse("t1", "t").unwrap();
        let id = NotificationId::parse("01JCAMPAIGN", "id").unwrap();
        let partitions: std::collections::HashSet<String> = (0..100)
            .map(|i| {
                let user = UserId::parse(format!("u{i}"), "u").unwrap();
                record_key(&tenant, &id, &user, Channel::Email, true).0
            })
            .collect();
        assert_eq!(partitions.len(), 100, "one partition key per recipient");
        let user = UserId::parse("u1", "u").unwrap();
        assert_eq!(
            record_key(&tenant, &id, &user, Channel::Email, false),
            ("T#t1#N#01JCAMPAIGN".to_owned(), "U#u1#C#email".to_owned()),
            "other notifications keep the layout their records were written in"
        );
    }

    #[test]
    fn a_transaction_conflict_is_contention_and_a_failed_condition_is_not() {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        use aws_sdk_dynamodb::types::error::TransactionCanceledException;
        use aws_sdk_dynamodb::types::CancellationReason;
        use aws_smithy_runtime_api::client::result::SdkError;
        use aws_smithy_runtime_api::http::{Response, StatusCode};
        use aws_smithy_types::body::SdkBody;
        let cancelled = |codes: &[&str]| {
            let mut e = TransactionCanceledException::builder();
            for code in codes {
                e = e.cancellation_reasons(CancellationReason::builder().code(*code).build());
            }
            SdkError::service_error(
                TransactWriteItemsError::TransactionCanceledException(e.build()),
                Response::new(StatusCode::try_from(400).unwrap(), SdkBody::empty()),
            )
        };
        assert!(cancelled_by_contention(&cancelled(&[
            "None",
            "TransactionConflict"
        ])));
        assert!(!cancelled_by_contention(&cancelled(&[
            "ConditionalCheckFailed",
            "None"
        ])));
        assert!(!cancelled_by_contention(&cancelled(&[
            "ConditionalCheckFailed",
            "TransactionConflict"
        ])));
    }

    /// A plain write that meets an in-flight transaction on its item fails with
    /// `TransactionConflictException`: nothing was written, so it is transient (retried), as
    /// throttling is; a failed condition is not.
    #[test]
    fn a_write_that_meets_a_transaction_is_transient() {
        use aws_sdk_dynamodb::operation::put_item::PutItemError;
        use aws_smithy_runtime_api::client::result::SdkError;
        use aws_smithy_runtime_api::http::{Response, StatusCode};
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;
        let failed = |code: &str| {
            let meta = ErrorMetadata::builder().code(code).message("m").build();
            SdkError::service_error(
                PutItemError::generic(meta),
                Response::new(StatusCode::try_from(400).unwrap(), SdkBody::empty()),
            )
        };
        assert!(store_error(failed("TransactionConflictException")).is_transient());
        assert!(store_error(failed("ProvisionedThroughputExceededException")).is_transient());
        assert!(!store_error(failed("ConditionalCheckFailedException")).is_transient());
    }
}
