//! What the queue consumers do for campaigns: skip the notifications of a cancelled campaign,
//! and leave progress marks. The status is cached for a few seconds per Lambda instance, so a
//! burst asks the table about once per campaign and instance, and a cancel takes effect
//! within seconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::campaign::{CampaignRef, CampaignStatus, ProgressMark};
use crate::domain::ids::{CampaignId, TenantId};
use crate::error::StoreError;
use crate::ports::CampaignStore;

/// How long a campaign's status is trusted.
const STATUS_TTL: Duration = Duration::from_secs(3);

/// Campaign status checks and progress marks for a consumer.
pub struct CampaignGate {
    store: Arc<dyn CampaignStore>,
    cancelled: Mutex<HashMap<(TenantId, CampaignId), (Instant, bool)>>,
}

impl CampaignGate {
    pub fn new(store: Arc<dyn CampaignStore>) -> Self {
        Self {
            store,
            cancelled: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the campaign was cancelled (or is gone): its notifications are then skipped.
    pub async fn cancelled(&self, tenant: &TenantId, id: &CampaignId) -> Result<bool, StoreError> {
        let key = (tenant.clone(), id.clone());
        if let Some((at, cancelled)) = self.cached(&key) {
            if at.elapsed() < STATUS_TTL {
                return Ok(cancelled);
            }
        }
        let cancelled = self
            .store
            .campaign(tenant, id)
            .await?
            .is_none_or(|c| c.status == CampaignStatus::Cancelled);
        self.cancelled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (Instant::now(), cancelled));
        Ok(cancelled)
    }

    fn cached(&self, key: &(TenantId, CampaignId)) -> Option<(Instant, bool)> {
        self.cancelled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
    }

    /// Leaves marks (idempotent: a slot marked twice counts once).
    pub async fn mark(
        &self,
        tenant: &TenantId,
        marks: &[(CampaignRef, ProgressMark)],
    ) -> Result<(), StoreError> {
        if marks.is_empty() {
            return Ok(());
        }
        self.store.mark(tenant, marks).await
    }
}
