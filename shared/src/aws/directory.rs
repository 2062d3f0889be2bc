//! DynamoDB adapter of the directory table: contacts, delivery status and suppression.
//!
//! Layout: contact `pk = T#<tenant>#U#<user>, sk = CONTACT`; delivery status
//! `pk = T#<tenant>#N#<notification>, sk = U#<user>#C#<channel>`; suppression
//! `pk = T#<tenant>#S#<address>, sk = SUPPRESSED`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::store_error;
use crate::domain::contact::Contact;
use crate::domain::ids::{NotificationId, TenantId, UserId};
use crate::error::StoreError;
use crate::ports::{DeliveryRecord, Directory};

#[derive(Debug, Clone)]
pub struct DynamoDirectory {
    client: Client,
    table: String,
}

impl DynamoDirectory {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
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

    async fn put_json(&self, pk: String, sk: String, json: String) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(pk))
            .item("sk", AttributeValue::S(sk))
            .item("json", AttributeValue::S(json))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }
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

    async fn put_contact(
        &self,
        tenant: &TenantId,
        user: &UserId,
        contact: &Contact,
    ) -> Result<(), StoreError> {
        self.put_json(
            format!("T#{tenant}#U#{user}"),
            "CONTACT".into(),
            to_json(contact)?,
        )
        .await
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

    async fn record_delivery(
        &self,
        tenant: &TenantId,
        record: &DeliveryRecord,
    ) -> Result<(), StoreError> {
        let pk = format!("T#{tenant}#N#{}", record.notification_id);
        let sk = format!("U#{}#C#{}", record.user_id, record.channel.as_str());
        self.put_json(pk, sk, to_json(record)?).await
    }

    async fn is_suppressed(&self, tenant: &TenantId, address: &str) -> Result<bool, StoreError> {
        let pk = format!("T#{tenant}#S#{}", address.to_ascii_lowercase());
        Ok(self.get(pk, "SUPPRESSED").await?.is_some())
    }
}
