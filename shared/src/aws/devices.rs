//! DynamoDB adapter of the device registry in the directory table.
//!
//! Layout: a user's device `pk = T#<tenant>#U#<user>, sk = D#<token>` (attribute `json`: the
//! device), beside the contact; the token's owner `pk = T#<tenant>#DEV#<token>, sk = OWNER`
//! (attribute `user`), so a token moving to another user leaves the first in the same
//! transaction that gives it to the second.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use super::item::{fatal, key, s, text, transaction_outcome, Item};
use super::store_error;
use crate::domain::device::{Device, MAX_DEVICES_PER_USER};
use crate::domain::ids::{TenantId, UserId};
use crate::error::StoreError;
use crate::ports::devices::{DeviceRegistry, Registered};

fn device_key(tenant: &TenantId, user: &UserId, token: &str) -> Item {
    key(format!("T#{tenant}#U#{user}"), format!("D#{token}"))
}

fn owner_key(tenant: &TenantId, token: &str) -> Item {
    key(format!("T#{tenant}#DEV#{token}"), "OWNER")
}

fn device_of(item: &Item) -> Result<Device, StoreError> {
    let json = text(item, "json").ok_or_else(|| StoreError::Fatal("device without json".into()))?;
    serde_json::from_str(&json).map_err(|e| StoreError::Fatal(format!("stored device: {e}")))
}

/// The device registry in the directory table.
#[derive(Debug, Clone)]
pub struct DynamoDevices {
    client: Client,
    table: String,
}

impl DynamoDevices {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn delete(
        &self,
        key: Item,
        owned_by: Option<&UserId>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut delete = Delete::builder().table_name(&self.table).set_key(Some(key));
        if let Some(user) = owned_by {
            // Gone already is fine; another user's is not this delete's to make.
            delete = delete
                .condition_expression("attribute_not_exists(pk) OR #u = :u")
                .expression_attribute_names("#u", "user")
                .expression_attribute_values(":u", s(user.as_str()));
        }
        Ok(TransactWriteItem::builder()
            .delete(delete.build().map_err(fatal)?)
            .build())
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        transaction_outcome(result, "device write").map(|_| ())
    }
}

#[async_trait]
impl DeviceRegistry for DynamoDevices {
    async fn devices(&self, tenant: &TenantId, user: &UserId) -> Result<Vec<Device>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :d)")
            .expression_attribute_values(":pk", s(format!("T#{tenant}#U#{user}")))
            .expression_attribute_values(":d", s("D#"))
            .send()
            .await
            .map_err(store_error)?;
        let mut devices = out
            .items
            .unwrap_or_default()
            .iter()
            .map(device_of)
            .collect::<Result<Vec<_>, _>>()?;
        devices.sort_by_key(|d| d.registered_at);
        Ok(devices)
    }

    async fn register(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &Device,
    ) -> Result<Registered, StoreError> {
        let owner = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(owner_key(tenant, &device.token)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?
            .item;
        let previous = owner
            .as_ref()
            .and_then(|item| text(item, "user"))
            .map(|u| UserId::parse(u, "user").map_err(|e| StoreError::Fatal(e.message)))
            .transpose()?;
        let created = previous.as_ref() != Some(user);
        let mut evicted = Vec::new();
        if created {
            let mine = self.devices(tenant, user).await?;
            let over = (mine.len() + 1).saturating_sub(MAX_DEVICES_PER_USER);
            evicted = mine.into_iter().take(over).collect();
        }
        let json = serde_json::to_string(device).map_err(fatal)?;
        let mut owner_item = owner_key(tenant, &device.token);
        owner_item.insert("user".to_owned(), s(user.as_str()));
        // The owner is still the one read (or there is still none): two registrations of one
        // token at once cannot both move it.
        let put_owner = match &previous {
            None => Put::builder()
                .table_name(&self.table)
                .set_item(Some(owner_item))
                .condition_expression("attribute_not_exists(pk)"),
            Some(previous) => Put::builder()
                .table_name(&self.table)
                .set_item(Some(owner_item))
                .condition_expression("#u = :previous")
                .expression_attribute_names("#u", "user")
                .expression_attribute_values(":previous", s(previous.as_str())),
        };
        let mut device_item = device_key(tenant, user, &device.token);
        device_item.insert("json".to_owned(), AttributeValue::S(json));
        let mut items = vec![
            TransactWriteItem::builder()
                .put(put_owner.build().map_err(fatal)?)
                .build(),
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(device_item))
                        .build()
                        .map_err(fatal)?,
                )
                .build(),
        ];
        let moved_from = previous.filter(|p| p != user);
        if let Some(other) = &moved_from {
            items.push(self.delete(device_key(tenant, other, &device.token), None)?);
        }
        for old in &evicted {
            items.push(self.delete(device_key(tenant, user, &old.token), None)?);
            items.push(self.delete(owner_key(tenant, &old.token), Some(user))?);
        }
        self.transact(items).await?;
        Ok(Registered {
            created,
            moved_from,
            evicted,
        })
    }

    async fn remove(
        &self,
        tenant: &TenantId,
        user: &UserId,
        token: &str,
    ) -> Result<Option<Device>, StoreError> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(device_key(tenant, user, token)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?
            .item;
        let Some(item) = found else {
            return Ok(None);
        };
        let device = device_of(&item)?;
        self.transact(vec![
            self.delete(device_key(tenant, user, token), None)?,
            self.delete(owner_key(tenant, token), Some(user))?,
        ])
        .await?;
        Ok(Some(device))
    }
}
