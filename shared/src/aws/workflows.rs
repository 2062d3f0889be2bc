//! DynamoDB adapter of workflows and frequency caps in the directory table.
//!
//! Layout: a workflow `pk = T#<tenant>#WORKFLOWS, sk = W#<name>` (attribute `json`); the
//! tenant's caps `pk = T#<tenant>#SETTINGS, sk = CAPS` (`json`); a user's sends under a cap
//! `pk = T#<tenant>#U#<user>, sk = CAP#<category>#<channel>` (`sent`: a map of notification
//! id → milliseconds, `version`, `expires_at` for the table's TTL).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::item::{fatal, key, n, number, s, text, written, Item};
use super::store_error;
use crate::domain::caps::{CapSettings, CapWindow};
use crate::domain::ids::TenantId;
use crate::domain::workflow::Workflow;
use crate::error::StoreError;
use crate::ports::workflows::{CapKey, FrequencyCaps, Workflows};

fn workflow_key(tenant: &TenantId, name: &str) -> Item {
    key(format!("T#{tenant}#WORKFLOWS"), format!("W#{name}"))
}

fn caps_key(tenant: &TenantId) -> Item {
    key(format!("T#{tenant}#SETTINGS"), "CAPS")
}

fn window_key(k: &CapKey) -> Item {
    key(
        format!("T#{}#U#{}", k.tenant, k.user),
        format!("CAP#{}#{}", k.category.as_str(), k.channel.as_str()),
    )
}

fn json_of<T: serde::de::DeserializeOwned>(item: &Item, what: &str) -> Result<T, StoreError> {
    let json = text(item, "json").ok_or_else(|| fatal(format!("{what} without json")))?;
    serde_json::from_str(&json).map_err(|e| fatal(format!("stored {what}: {e}")))
}

/// Workflows and caps in the directory table.
#[derive(Debug, Clone)]
pub struct DynamoWorkflows {
    client: Client,
    table: String,
}

impl DynamoWorkflows {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.item)
    }

    async fn put_json(&self, key: Item, value: &impl serde::Serialize) -> Result<(), StoreError> {
        let mut item = key;
        item.insert(
            "json".into(),
            s(serde_json::to_string(value).map_err(fatal)?),
        );
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

#[async_trait]
impl Workflows for DynamoWorkflows {
    async fn put_workflow(
        &self,
        tenant: &TenantId,
        name: &str,
        workflow: &Workflow,
    ) -> Result<(), StoreError> {
        self.put_json(workflow_key(tenant, name), workflow).await
    }

    async fn workflow(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<Workflow>, StoreError> {
        self.get(workflow_key(tenant, name))
            .await?
            .map(|item| json_of(&item, "workflow"))
            .transpose()
    }

    async fn delete_workflow(&self, tenant: &TenantId, name: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(workflow_key(tenant, name)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

#[async_trait]
impl FrequencyCaps for DynamoWorkflows {
    async fn set_caps(&self, tenant: &TenantId, caps: &CapSettings) -> Result<(), StoreError> {
        self.put_json(caps_key(tenant), caps).await
    }

    async fn caps(&self, tenant: &TenantId) -> Result<CapSettings, StoreError> {
        Ok(self
            .get(caps_key(tenant))
            .await?
            .map(|item| json_of(&item, "caps"))
            .transpose()?
            .unwrap_or_default())
    }

    async fn window(&self, key: &CapKey) -> Result<CapWindow, StoreError> {
        let Some(item) = self.get(window_key(key)).await? else {
            return Ok(CapWindow::default());
        };
        let sent = item
            .get("sent")
            .and_then(|v| v.as_m().ok())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_n().ok()?.parse().ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(CapWindow {
            sent,
            version: number(&item, "version"),
        })
    }

    async fn write_window(
        &self,
        key: &CapKey,
        seen_version: u64,
        sent: &BTreeMap<String, i64>,
        window_seconds: u32,
    ) -> Result<(), StoreError> {
        let last = sent.values().copied().max().unwrap_or(0);
        let mut item = window_key(key);
        let map: HashMap<String, AttributeValue> =
            sent.iter().map(|(k, at)| (k.clone(), n(at))).collect();
        item.insert("sent".into(), AttributeValue::M(map));
        item.insert("version".into(), n(seen_version + 1));
        item.insert(
            "expires_at".into(),
            n(last / 1000 + i64::from(window_seconds) + 60),
        );
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = if seen_version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", n(seen_version))
        };
        if written(put.send().await)? {
            Ok(())
        } else {
            Err(StoreError::VersionConflict)
        }
    }
}
