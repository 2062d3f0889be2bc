//! Campaigns: definitions, inline audiences, page records, held groups and progress
//! (`aws/campaigns.rs`, `fake/campaigns.rs`).

use async_trait::async_trait;

pub use crate::domain::campaign::fanout::{HeldGroup, PageRecord};
use crate::domain::ids::{TenantId, UserId};
use crate::error::StoreError;

/// Campaigns, their inline audiences and their progress.
#[async_trait]
pub trait CampaignStore: Send + Sync {
    /// Stores a new campaign with its inline audience chunks in one transaction. Under an
    /// idempotency key used before, nothing is written and the first campaign is returned.
    async fn create_campaign(
        &self,
        campaign: &crate::domain::campaign::Campaign,
        chunks: &[Vec<UserId>],
        idempotency_key: Option<&str>,
    ) -> Result<crate::domain::campaign::Campaign, StoreError>;
    async fn campaign(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
    ) -> Result<Option<crate::domain::campaign::Campaign>, StoreError>;
    /// Newest first, `limit` at a time; `after` is the previous page's cursor.
    async fn campaigns(
        &self,
        tenant: &TenantId,
        limit: usize,
        after: Option<&str>,
    ) -> Result<(Vec<crate::domain::campaign::Campaign>, Option<String>), StoreError>;
    /// Moves the status from one of `from` to `to`, stamping `at` (started, cancelled or
    /// failed time, with `detail` as the failure). `false`: the status was none of `from`.
    async fn transition(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        from: &[crate::domain::campaign::CampaignStatus],
        to: crate::domain::campaign::CampaignStatus,
        at: jiff::Timestamp,
        detail: Option<&str>,
    ) -> Result<bool, StoreError>;
    async fn mark_fanned_out(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        at: jiff::Timestamp,
    ) -> Result<(), StoreError>;
    async fn audience_chunk(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        chunk: u32,
    ) -> Result<Vec<UserId>, StoreError>;
    /// Records a page once, with the campaign's counts and its held recipients, in one
    /// transaction. `Some(existing)`: it was recorded before (nothing changed).
    async fn record_page(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        page: &PageRecord,
    ) -> Result<Option<PageRecord>, StoreError>;
    async fn mark_next_sent(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        page: u32,
    ) -> Result<(), StoreError>;
    /// Up to `limit` groups of recipients held for instant `at`, after group key `after`, in
    /// key order, released or not (a release goes a group at a time from its position, and a
    /// redelivered step finds the group it released before).
    async fn held(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        at: jiff::Timestamp,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HeldGroup>, StoreError>;
    /// Claims the fan-out step `step` (queueing page 0, the page after page n, the next part
    /// of a release) for `token`, the queue message that does it: `true` for the first
    /// claimer and for the same message again (a redelivery after a crash), `false` for any
    /// other message, a duplicate whose step another message already took.
    async fn claim_step(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        step: &str,
        token: &str,
    ) -> Result<bool, StoreError>;
    /// Marks a held group released and counts it as enqueued, once. `false`: it was already.
    async fn release_group(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        group: &str,
        enqueued: u64,
    ) -> Result<bool, StoreError>;
    /// Leaves progress marks: each adds one to its counter unless its slot is already in the
    /// mark's set (`ProgressMark::dedupe_set`), so marking twice counts once.
    async fn mark(
        &self,
        tenant: &TenantId,
        marks: &[(
            crate::domain::campaign::CampaignRef,
            crate::domain::campaign::ProgressMark,
        )],
    ) -> Result<(), StoreError>;
    /// Exact counts over every page.
    async fn progress(
        &self,
        campaign: &crate::domain::campaign::Campaign,
    ) -> Result<crate::domain::campaign::Progress, StoreError>;
}
