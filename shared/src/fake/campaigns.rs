//! Campaigns in memory: definitions, chunks, page records, held groups and sharded
//! progress counters, each call counted and delayed (for simulations).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::ids::{TenantId, UserId};
use crate::error::StoreError;
use crate::ports::*;

/// Campaigns in memory: definitions, chunks, page records and progress sets; each call
/// takes `latency` and is counted (for simulations).
#[derive(Default)]
pub struct InMemoryCampaigns {
    state: Mutex<CampaignState>,
    pub latency: Duration,
    pub calls: AtomicU64,
    /// Items the last progress read touched (the campaign item and its counter shards).
    pub progress_items: AtomicU64,
}

#[derive(Default)]
struct CampaignState {
    campaigns: BTreeMap<(TenantId, String), crate::domain::campaign::Campaign>,
    keys: HashMap<(TenantId, String), String>,
    chunks: HashMap<(String, u32), Vec<UserId>>,
    pages: HashMap<(String, u32), PageRecord>,
    held: BTreeMap<(String, String), (HeldGroup, bool)>,
    /// Each page's sets of slots: (campaign, page, set) → slots.
    marks: HashMap<(String, u32, &'static str), HashSet<u32>>,
    /// Progress counters by (campaign, shard), as the adapter keeps them.
    shards: HashMap<(String, u32), crate::domain::campaign::Counters>,
    counts: HashMap<String, CampaignCounts>,
    /// Fan-out steps: (campaign, step) → the message that took it.
    steps: HashMap<(String, String), String>,
}

/// A campaign's counts as its item keeps them (the adapter's `ADD`s).
#[derive(Debug, Clone, Copy, Default)]
struct CampaignCounts {
    audience: u64,
    enqueued: u64,
    held: u64,
    invalid: u64,
}

impl InMemoryCampaigns {
    pub fn with_latency(latency: Duration) -> Self {
        Self {
            latency,
            ..Self::default()
        }
    }

    async fn round_trip(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        // A call is a point where an invocation can be stopped (simulated crashes).
        tokio::task::yield_now().await;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CampaignState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl CampaignStore for InMemoryCampaigns {
    async fn create_campaign(
        &self,
        campaign: &crate::domain::campaign::Campaign,
        chunks: &[Vec<UserId>],
        idempotency_key: Option<&str>,
    ) -> Result<crate::domain::campaign::Campaign, StoreError> {
        self.round_trip().await;
        let mut state = self.state();
        if let Some(key) = idempotency_key {
            let k = (campaign.tenant.clone(), key.to_owned());
            if let Some(id) = state.keys.get(&k).cloned() {
                return state
                    .campaigns
                    .get(&(campaign.tenant.clone(), id))
                    .cloned()
                    .ok_or_else(|| StoreError::Fatal("key without campaign".into()));
            }
            state.keys.insert(k, campaign.id.to_string());
        }
        for (i, chunk) in chunks.iter().enumerate() {
            state
                .chunks
                .insert((campaign.id.to_string(), i as u32), chunk.clone());
        }
        state
            .counts
            .insert(campaign.id.to_string(), CampaignCounts::default());
        state.campaigns.insert(
            (campaign.tenant.clone(), campaign.id.to_string()),
            campaign.clone(),
        );
        Ok(campaign.clone())
    }

    async fn campaign(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
    ) -> Result<Option<crate::domain::campaign::Campaign>, StoreError> {
        self.round_trip().await;
        Ok(self
            .state()
            .campaigns
            .get(&(tenant.clone(), id.to_string()))
            .cloned())
    }

    async fn campaigns(
        &self,
        tenant: &TenantId,
        limit: usize,
        after: Option<&str>,
    ) -> Result<(Vec<crate::domain::campaign::Campaign>, Option<String>), StoreError> {
        self.round_trip().await;
        let state = self.state();
        let all: Vec<_> = state
            .campaigns
            .iter()
            .rev()
            .filter(|((t, id), _)| t == tenant && after.is_none_or(|a| id.as_str() < a))
            .map(|(_, c)| c.clone())
            .collect();
        let next = (all.len() > limit).then(|| all[limit - 1].id.to_string());
        Ok((all.into_iter().take(limit).collect(), next))
    }

    async fn transition(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        from: &[crate::domain::campaign::CampaignStatus],
        to: crate::domain::campaign::CampaignStatus,
        at: jiff::Timestamp,
        detail: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.round_trip().await;
        let mut state = self.state();
        let Some(c) = state.campaigns.get_mut(&(tenant.clone(), id.to_string())) else {
            return Ok(false);
        };
        if !from.contains(&c.status) {
            return Ok(false);
        }
        c.status = to;
        match to {
            crate::domain::campaign::CampaignStatus::Running => c.started_at = Some(at),
            crate::domain::campaign::CampaignStatus::Cancelled => c.cancelled_at = Some(at),
            _ => {}
        }
        c.failure = detail.map(str::to_owned);
        Ok(true)
    }

    async fn mark_fanned_out(
        &self,
        tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        at: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        self.round_trip().await;
        if let Some(c) = self
            .state()
            .campaigns
            .get_mut(&(tenant.clone(), id.to_string()))
        {
            c.fanned_out_at.get_or_insert(at);
        }
        Ok(())
    }

    async fn audience_chunk(
        &self,
        _tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        chunk: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        self.round_trip().await;
        Ok(self
            .state()
            .chunks
            .get(&(id.to_string(), chunk))
            .cloned()
            .unwrap_or_default())
    }

    async fn record_page(
        &self,
        _tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        page: &PageRecord,
    ) -> Result<Option<PageRecord>, StoreError> {
        self.round_trip().await;
        let mut state = self.state();
        let key = (id.to_string(), page.page);
        if let Some(existing) = state.pages.get(&key) {
            return Ok(Some(existing.clone()));
        }
        state.pages.insert(key, page.clone());
        let held: u64 = page.held.iter().map(|(_, r)| r.len() as u64).sum();
        let counts = state.counts.entry(id.to_string()).or_default();
        counts.enqueued += page.enqueued;
        counts.held += held;
        counts.audience += page.users;
        counts.invalid += page.invalid;
        if let Some(campaign) = state
            .campaigns
            .values_mut()
            .find(|c| c.id.as_str() == id.as_str())
        {
            for (at, _) in &page.held {
                if !campaign.releases.contains(at) {
                    campaign.releases.push(*at);
                    campaign.releases.sort();
                }
            }
        }
        for (at, recipients) in &page.held {
            let group = HeldGroup {
                key: format!("H#{}#{:08}", crate::domain::time::compact(*at), page.page),
                page: page.page,
                recipients: recipients.clone(),
                released: false,
            };
            state
                .held
                .insert((id.to_string(), group.key.clone()), (group, false));
        }
        Ok(None)
    }

    async fn mark_next_sent(
        &self,
        _tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        page: u32,
    ) -> Result<(), StoreError> {
        self.round_trip().await;
        if let Some(p) = self.state().pages.get_mut(&(id.to_string(), page)) {
            p.next_sent = true;
        }
        Ok(())
    }

    async fn held(
        &self,
        _tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        at: jiff::Timestamp,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HeldGroup>, StoreError> {
        self.round_trip().await;
        let prefix = format!("H#{}#", crate::domain::time::compact(at));
        let from = (id.to_string(), after.unwrap_or(&prefix).to_owned());
        // A range of the ordered keys, as the adapter's query: simulations hold many groups.
        Ok(self
            .state()
            .held
            .range(from..)
            .take_while(|((c, k), _)| c == id.as_str() && k.starts_with(&prefix))
            .filter(|((_, k), _)| after.is_none_or(|a| k.as_str() > a))
            .take(limit)
            .map(|(_, (g, released))| HeldGroup {
                released: *released,
                ..g.clone()
            })
            .collect())
    }

    async fn claim_step(
        &self,
        _tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        step: &str,
        token: &str,
    ) -> Result<bool, StoreError> {
        self.round_trip().await;
        let mut state = self.state();
        let by = state
            .steps
            .entry((id.to_string(), step.to_owned()))
            .or_insert_with(|| token.to_owned());
        Ok(by == token)
    }

    async fn release_group(
        &self,
        _tenant: &TenantId,
        id: &crate::domain::ids::CampaignId,
        group: &str,
        enqueued: u64,
    ) -> Result<bool, StoreError> {
        self.round_trip().await;
        let mut state = self.state();
        let Some((_, released)) = state.held.get_mut(&(id.to_string(), group.to_owned())) else {
            return Ok(false);
        };
        if *released {
            return Ok(false);
        }
        *released = true;
        let counts = state.counts.entry(id.to_string()).or_default();
        counts.enqueued += enqueued;
        counts.held -= enqueued.min(counts.held);
        Ok(true)
    }

    async fn mark(
        &self,
        _tenant: &TenantId,
        marks: &[(
            crate::domain::campaign::CampaignRef,
            crate::domain::campaign::ProgressMark,
        )],
    ) -> Result<(), StoreError> {
        self.round_trip().await;
        let mut state = self.state();
        for (at, mark) in marks {
            let new = state
                .marks
                .entry((at.id.to_string(), at.page, mark.dedupe_set()))
                .or_default()
                .insert(at.slot);
            if new {
                let shard = at.page % crate::domain::campaign::COUNTER_SHARDS;
                *state
                    .shards
                    .entry((at.id.to_string(), shard))
                    .or_default()
                    .entry(mark.counter())
                    .or_default() += 1;
            }
        }
        Ok(())
    }

    async fn progress(
        &self,
        campaign: &crate::domain::campaign::Campaign,
    ) -> Result<crate::domain::campaign::Progress, StoreError> {
        self.round_trip().await;
        let state = self.state();
        let counts = state
            .counts
            .get(campaign.id.as_str())
            .copied()
            .unwrap_or_default();
        let mut counters = crate::domain::campaign::Counters::from([
            ("audience".to_owned(), counts.audience),
            ("enqueued".to_owned(), counts.enqueued),
            ("held".to_owned(), counts.held),
            ("invalid".to_owned(), counts.invalid),
        ]);
        let mut items = 1;
        for shard in 0..crate::domain::campaign::COUNTER_SHARDS {
            items += 1;
            for (name, n) in state
                .shards
                .get(&(campaign.id.to_string(), shard))
                .into_iter()
                .flatten()
            {
                *counters.entry(name.clone()).or_default() += n;
            }
        }
        self.progress_items.store(items, Ordering::Relaxed);
        Ok(crate::domain::campaign::Progress::from_counters(
            &counters,
            campaign.audience.known_size(),
            campaign.status,
        ))
    }
}
