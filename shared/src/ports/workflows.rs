//! A tenant's named workflows and frequency caps, and each user's sends under a cap
//! (`aws/workflows.rs`, `fake/workflows.rs`).

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::domain::caps::{CapSettings, CapWindow};
use crate::domain::ids::{TenantId, UserId};
use crate::domain::notification::{Category, Channel};
use crate::domain::workflow::Workflow;
use crate::error::StoreError;

/// Named workflows, one set per tenant.
#[async_trait]
pub trait Workflows: Send + Sync {
    /// Creates or replaces workflow `name`.
    async fn put_workflow(
        &self,
        tenant: &TenantId,
        name: &str,
        workflow: &Workflow,
    ) -> Result<(), StoreError>;
    async fn workflow(&self, tenant: &TenantId, name: &str)
        -> Result<Option<Workflow>, StoreError>;
    /// Whether there was one to delete.
    async fn delete_workflow(&self, tenant: &TenantId, name: &str) -> Result<bool, StoreError>;
}

/// Which cap window: one user's sends of one category on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CapKey {
    pub tenant: TenantId,
    pub user: UserId,
    pub category: Category,
    pub channel: Channel,
}

/// A tenant's caps, and the windows that enforce them.
#[async_trait]
pub trait FrequencyCaps: Send + Sync {
    /// Replaces the tenant's caps.
    async fn set_caps(&self, tenant: &TenantId, caps: &CapSettings) -> Result<(), StoreError>;
    /// The tenant's caps (none set: empty).
    async fn caps(&self, tenant: &TenantId) -> Result<CapSettings, StoreError>;
    /// The window as stored (absent: empty, version 0), strongly consistent.
    async fn window(&self, key: &CapKey) -> Result<CapWindow, StoreError>;
    /// Writes `sent` as the window if it is still at `seen_version` (else
    /// `StoreError::VersionConflict`); kept until `window_seconds` after its last send.
    async fn write_window(
        &self,
        key: &CapKey,
        seen_version: u64,
        sent: &BTreeMap<String, i64>,
        window_seconds: u32,
    ) -> Result<(), StoreError>;
}
