//! Workflows and frequency caps in memory; a cap window's write holds only at the version
//! read, as the table's conditional Put.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::caps::{CapSettings, CapWindow};
use crate::domain::ids::TenantId;
use crate::domain::workflow::Workflow;
use crate::error::StoreError;
use crate::ports::workflows::{CapKey, FrequencyCaps, Workflows};

#[derive(Default)]
pub struct InMemoryWorkflows {
    workflows: Mutex<BTreeMap<(TenantId, String), Workflow>>,
    caps: Mutex<BTreeMap<TenantId, CapSettings>>,
    pub windows: Mutex<BTreeMap<CapKey, CapWindow>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl Workflows for InMemoryWorkflows {
    async fn put_workflow(
        &self,
        tenant: &TenantId,
        name: &str,
        workflow: &Workflow,
    ) -> Result<(), StoreError> {
        lock(&self.workflows).insert((tenant.clone(), name.to_owned()), workflow.clone());
        Ok(())
    }

    async fn workflow(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<Workflow>, StoreError> {
        Ok(lock(&self.workflows)
            .get(&(tenant.clone(), name.to_owned()))
            .cloned())
    }

    async fn delete_workflow(&self, tenant: &TenantId, name: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.workflows)
            .remove(&(tenant.clone(), name.to_owned()))
            .is_some())
    }
}

#[async_trait]
impl FrequencyCaps for InMemoryWorkflows {
    async fn set_caps(&self, tenant: &TenantId, caps: &CapSettings) -> Result<(), StoreError> {
        lock(&self.caps).insert(tenant.clone(), caps.clone());
        Ok(())
    }

    async fn caps(&self, tenant: &TenantId) -> Result<CapSettings, StoreError> {
        Ok(lock(&self.caps).get(tenant).cloned().unwrap_or_default())
    }

    async fn window(&self, key: &CapKey) -> Result<CapWindow, StoreError> {
        let window = lock(&self.windows).get(key).cloned().unwrap_or_default();
        // Lets concurrent senders interleave between their read and their write.
        tokio::task::yield_now().await;
        Ok(window)
    }

    async fn write_window(
        &self,
        key: &CapKey,
        seen_version: u64,
        sent: &BTreeMap<String, i64>,
        _window_seconds: u32,
    ) -> Result<(), StoreError> {
        let mut windows = lock(&self.windows);
        let stored = windows.entry(key.clone()).or_default();
        if stored.version != seen_version {
            return Err(StoreError::VersionConflict);
        }
        *stored = CapWindow {
            sent: sent.clone(),
            version: seen_version + 1,
        };
        Ok(())
    }
}
