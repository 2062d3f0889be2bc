//! DynamoDB adapter of campaigns, in the directory table.
//!
//! Layout: campaign `pk = T#<tenant>#CAMPAIGNS, sk = C#<id>` (its definition as `json`; the
//! parts that change as attributes: `status`, `started_at`, `fanned_out_at`, `cancelled_at`,
//! `failure`, `enqueued`, `audience`); idempotency key `sk = K#<key>` (attribute `id`) in the
//! same partition. Per campaign, `pk = T#<tenant>#C#<id>`: inline audience chunks `A#<n>`
//! (`users`, newline-separated), pages `P#<n>` (the page record, and its progress as string
//! sets of slots, so marking twice counts once), held recipients `H#<instant>#<page>`, fan-out
//! step claims `Q#<step>` (attribute `by`: the queue message that took it). Progress
//! counters: `pk = T#<tenant>#C#<id>#N#<shard>, sk = COUNTS`, 16 shards (a page's marks go to
//! shard `page % 16`), each in a partition of its own so a burst of marks spreads; a mark adds
//! to a counter in the same transaction that adds its slot to the page's set, on condition
//! that the slot is not in it yet. Reading progress is the campaign item plus the 16 shards,
//! whatever the audience size. The campaign item also keeps `releases`: the instants of its
//! release schedules (deleted on cancel, shown by `GET`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::http::Response as HttpResponse;

use super::item::{fatal, flag, n, number, s, text, written, Item};
use super::store_error;
use crate::domain::campaign::{
    Campaign, CampaignRef, CampaignStatus, Counters, Progress, ProgressMark, COUNTER_SHARDS,
};
use crate::domain::ids::{CampaignId, TenantId, UserId};
use crate::domain::time;
use crate::error::StoreError;
use crate::ports::{CampaignStore, HeldGroup, PageRecord};

#[derive(Debug, Clone)]
pub struct DynamoCampaigns {
    client: Client,
    table: String,
}

impl DynamoCampaigns {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// A new item of users (an inline audience chunk, or a page's held group), one per
    /// line, written only if it is not there yet.
    fn users_item(
        &self,
        pk: String,
        sk: String,
        users: String,
        page: Option<u32>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut item = HashMap::from([
            ("pk".to_owned(), s(pk)),
            ("sk".to_owned(), s(sk)),
            ("users".to_owned(), s(users)),
        ]);
        if let Some(page) = page {
            item.insert("page".to_owned(), n(page));
        }
        self.put(item, "attribute_not_exists(pk)")
    }

    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, HttpResponse>> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(|_| ())
    }

    fn put(
        &self,
        item: HashMap<String, AttributeValue>,
        condition: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        Ok(TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression(condition)
                    .build()
                    .map_err(fatal)?,
            )
            .build())
    }

    async fn get(&self, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.item)
    }
}

fn list_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#CAMPAIGNS")
}

fn campaign_sk(id: &CampaignId) -> String {
    format!("C#{id}")
}

fn campaign_pk(tenant: &TenantId, id: &CampaignId) -> String {
    format!("T#{tenant}#C#{id}")
}

fn page_sk(page: u32) -> String {
    format!("P#{page:08}")
}

fn shard_pk(tenant: &TenantId, id: &CampaignId, shard: u32) -> String {
    format!("T#{tenant}#C#{id}#N#{shard:02}")
}

/// At most this many marks go in one transaction (its condition names each slot, and an
/// expression is at most 4 KB).
const MARKS_PER_WRITE: usize = 40;

/// A campaign from its item: the definition, with the attributes that change laid over it.
fn campaign_of(item: &Item) -> Result<Campaign, StoreError> {
    let json = text(item, "json").ok_or_else(|| fatal("campaign item without json"))?;
    let mut campaign: Campaign =
        serde_json::from_str(&json).map_err(|e| fatal(format!("stored campaign: {e}")))?;
    if let Some(status) = text(item, "status") {
        campaign.status = serde_json::from_value(serde_json::Value::String(status))
            .map_err(|e| fatal(format!("stored status: {e}")))?;
    }
    campaign.started_at = instant(item, "started_at")?;
    campaign.fanned_out_at = instant(item, "fanned_out_at")?;
    campaign.cancelled_at = instant(item, "cancelled_at")?;
    campaign.failure = text(item, "failure");
    campaign.releases = item
        .get("releases")
        .and_then(|v| v.as_ss().ok())
        .into_iter()
        .flatten()
        .map(|at| parsed(at, "releases"))
        .collect::<Result<_, _>>()?;
    campaign.releases.sort();
    Ok(campaign)
}

/// The sort-key prefix of the groups held for `at`.
fn held_prefix(at: jiff::Timestamp) -> String {
    format!("H#{}#", time::compact(at))
}

/// An RFC 3339 attribute as a time, if the item has it.
fn instant(item: &Item, name: &str) -> Result<Option<jiff::Timestamp>, StoreError> {
    text(item, name).map(|at| parsed(&at, name)).transpose()
}

fn parsed(text: &str, name: &str) -> Result<jiff::Timestamp, StoreError> {
    text.parse()
        .map_err(|e| fatal(format!("stored {name} {text:?}: {e}")))
}

fn page_of(item: &Item, page: u32) -> PageRecord {
    PageRecord {
        page,
        users: number(item, "users"),
        enqueued: number(item, "enqueued"),
        invalid: number(item, "invalid"),
        next_cursor: number(item, "next_cursor"),
        last: flag(item, "last"),
        held: Vec::new(),
        next_sent: item.contains_key("next_sent"),
    }
}

fn status_str(status: CampaignStatus) -> AttributeValue {
    s(status.as_str())
}

#[async_trait]
impl CampaignStore for DynamoCampaigns {
    async fn create_campaign(
        &self,
        campaign: &Campaign,
        chunks: &[Vec<UserId>],
        idempotency_key: Option<&str>,
    ) -> Result<Campaign, StoreError> {
        let tenant = &campaign.tenant;
        let json = serde_json::to_string(campaign).map_err(fatal)?;
        let mut items = vec![self.put(
            HashMap::from([
                ("pk".to_owned(), s(list_pk(tenant))),
                ("sk".to_owned(), s(campaign_sk(&campaign.id))),
                ("json".to_owned(), s(json)),
                ("status".to_owned(), status_str(campaign.status)),
                ("enqueued".to_owned(), n(0)),
                // Users read so far; an inline audience's size is known up front.
                ("audience".to_owned(), n(0)),
            ]),
            "attribute_not_exists(pk)",
        )?];
        if let Some(key) = idempotency_key {
            items.push(self.put(
                HashMap::from([
                    ("pk".to_owned(), s(list_pk(tenant))),
                    ("sk".to_owned(), s(format!("K#{key}"))),
                    ("id".to_owned(), s(campaign.id.as_str())),
                ]),
                "attribute_not_exists(pk)",
            )?);
        }
        for (i, chunk) in chunks.iter().enumerate() {
            let users: Vec<&str> = chunk.iter().map(UserId::as_str).collect();
            items.push(self.users_item(
                campaign_pk(tenant, &campaign.id),
                format!("A#{i:06}"),
                users.join("\n"),
                None,
            )?);
        }
        match self.transact(items).await {
            Ok(()) => Ok(campaign.clone()),
            Err(e) if idempotency_key.is_some() && super::item::condition_failed(&e) => {
                // The key was used: answer with the campaign it made.
                let key = idempotency_key.unwrap_or_default();
                let item = self
                    .get(list_pk(tenant), format!("K#{key}"))
                    .await?
                    .ok_or_else(|| {
                        StoreError::Transient("idempotency record not yet readable".into())
                    })?;
                let id = CampaignId::parse(text(&item, "id").unwrap_or_default(), "id")
                    .map_err(|e| fatal(e.message))?;
                self.campaign(tenant, &id)
                    .await?
                    .ok_or_else(|| fatal("idempotency record names a missing campaign"))
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn campaign(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
    ) -> Result<Option<Campaign>, StoreError> {
        self.get(list_pk(tenant), campaign_sk(id))
            .await?
            .map(|item| campaign_of(&item))
            .transpose()
    }

    async fn campaigns(
        &self,
        tenant: &TenantId,
        limit: usize,
        after: Option<&str>,
    ) -> Result<(Vec<Campaign>, Option<String>), StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :c)")
            .expression_attribute_values(":pk", s(list_pk(tenant)))
            .expression_attribute_values(":c", s("C#"))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 100) as i32);
        if let Some(after) = after {
            let id = CampaignId::parse(after, "cursor").map_err(|_| StoreError::BadCursor)?;
            query = query
                .exclusive_start_key("pk", s(list_pk(tenant)))
                .exclusive_start_key("sk", s(campaign_sk(&id)));
        }
        let out = query.send().await.map_err(store_error)?;
        let campaigns = out
            .items()
            .iter()
            .map(campaign_of)
            .collect::<Result<Vec<_>, _>>()?;
        let next = out
            .last_evaluated_key
            .filter(|k| !k.is_empty())
            .and(campaigns.last().map(|c| c.id.to_string()));
        Ok((campaigns, next))
    }

    async fn transition(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        from: &[CampaignStatus],
        to: CampaignStatus,
        at: jiff::Timestamp,
        detail: Option<&str>,
    ) -> Result<bool, StoreError> {
        let stamp = match to {
            CampaignStatus::Running => "started_at",
            CampaignStatus::Cancelled => "cancelled_at",
            _ => "finished_at",
        };
        let allowed: Vec<String> = (0..from.len()).map(|i| format!(":from{i}")).collect();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(list_pk(tenant)))
            .key("sk", s(campaign_sk(id)))
            .update_expression(if detail.is_some() {
                format!("SET #status = :to, {stamp} = :at, failure = :detail")
            } else {
                format!("SET #status = :to, {stamp} = :at")
            })
            .condition_expression(format!(
                "attribute_exists(pk) AND #status IN ({})",
                allowed.join(", ")
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":to", status_str(to))
            .expression_attribute_values(":at", s(time::millis(at)));
        for (name, status) in allowed.iter().zip(from) {
            update = update.expression_attribute_values(name, status_str(*status));
        }
        if let Some(detail) = detail {
            update = update.expression_attribute_values(":detail", s(detail));
        }
        written(update.send().await)
    }

    async fn mark_fanned_out(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        at: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(list_pk(tenant)))
            .key("sk", s(campaign_sk(id)))
            .update_expression("SET fanned_out_at = if_not_exists(fanned_out_at, :at)")
            .expression_attribute_values(":at", s(time::millis(at)))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn audience_chunk(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        chunk: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        let item = self
            .get(campaign_pk(tenant, id), format!("A#{chunk:06}"))
            .await?
            .unwrap_or_default();
        text(&item, "users")
            .unwrap_or_default()
            .lines()
            .map(|u| UserId::parse(u, "user_id").map_err(|e| fatal(e.message)))
            .collect()
    }

    async fn record_page(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        page: &PageRecord,
    ) -> Result<Option<PageRecord>, StoreError> {
        // An Update, not a Put: progress marks may have created the item already.
        let record = Update::builder()
            .table_name(&self.table)
            .key("pk", s(campaign_pk(tenant, id)))
            .key("sk", s(page_sk(page.page)))
            .update_expression(
                "SET #users = :users, enqueued = :enqueued, invalid = :invalid, \
                 next_cursor = :next, #last = :last",
            )
            .condition_expression("attribute_not_exists(#users)")
            .expression_attribute_names("#users", "users")
            .expression_attribute_names("#last", "last")
            .expression_attribute_values(":users", n(page.users))
            .expression_attribute_values(":enqueued", n(page.enqueued))
            .expression_attribute_values(":invalid", n(page.invalid))
            .expression_attribute_values(":next", n(page.next_cursor))
            .expression_attribute_values(":last", AttributeValue::Bool(page.last))
            .build()
            .map_err(fatal)?;
        let releases: Vec<String> = page.held.iter().map(|(at, _)| time::compact(*at)).collect();
        let counts = Update::builder()
            .table_name(&self.table)
            .key("pk", s(list_pk(tenant)))
            .key("sk", s(campaign_sk(id)))
            .update_expression(if releases.is_empty() {
                "ADD enqueued :enqueued, audience :users, invalid :invalid, held :held"
            } else {
                "ADD enqueued :enqueued, audience :users, invalid :invalid, held :held, \
                 releases :releases"
            })
            .set_expression_attribute_values(if releases.is_empty() {
                None
            } else {
                Some(HashMap::from([(
                    ":releases".to_owned(),
                    AttributeValue::Ss(releases),
                )]))
            })
            .expression_attribute_values(
                ":held",
                n(page.held.iter().map(|(_, r)| r.len()).sum::<usize>()),
            )
            .expression_attribute_values(":enqueued", n(page.enqueued))
            .expression_attribute_values(":users", n(page.users))
            .expression_attribute_values(":invalid", n(page.invalid))
            .build()
            .map_err(fatal)?;
        let mut items = vec![
            TransactWriteItem::builder().update(record).build(),
            TransactWriteItem::builder().update(counts).build(),
        ];
        for (at, recipients) in &page.held {
            let users: Vec<String> = recipients
                .iter()
                .map(|(slot, user)| format!("{slot} {user}"))
                .collect();
            items.push(self.users_item(
                campaign_pk(tenant, id),
                format!("{}{:08}", held_prefix(*at), page.page),
                users.join("\n"),
                Some(page.page),
            )?);
        }
        match self.transact(items).await {
            Ok(()) => Ok(None),
            Err(e) if super::item::condition_failed(&e) => {
                let item = self
                    .get(campaign_pk(tenant, id), page_sk(page.page))
                    .await?
                    .unwrap_or_default();
                Ok(Some(page_of(&item, page.page)))
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn mark_next_sent(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        page: u32,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(campaign_pk(tenant, id)))
            .key("sk", s(page_sk(page)))
            .update_expression("SET next_sent = :yes")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn held(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        at: jiff::Timestamp,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HeldGroup>, StoreError> {
        // Released groups are listed too, so one query of `limit` items is the answer
        // (a group is at most one page's users: far below a query page's 1 MB).
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(campaign_pk(tenant, id)))
            .expression_attribute_values(":prefix", s(held_prefix(at)))
            .limit(limit as i32);
        if let Some(after) = after {
            query = query
                .exclusive_start_key("pk", s(campaign_pk(tenant, id)))
                .exclusive_start_key("sk", s(after));
        }
        let out = query.send().await.map_err(store_error)?;
        Ok(out
            .items()
            .iter()
            .map(|item| HeldGroup {
                key: text(item, "sk").unwrap_or_default(),
                page: number(item, "page") as u32,
                recipients: text(item, "users")
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|line| {
                        let (slot, user) = line.split_once(' ')?;
                        Some((slot.parse().ok()?, UserId::parse(user, "user_id").ok()?))
                    })
                    .collect(),
                released: item.contains_key("released"),
            })
            .collect())
    }

    async fn claim_step(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        step: &str,
        token: &str,
    ) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(campaign_pk(tenant, id)))
            .item("sk", s(format!("Q#{step}")))
            .item("by", s(token))
            .condition_expression("attribute_not_exists(pk) OR #by = :by")
            .expression_attribute_names("#by", "by")
            .expression_attribute_values(":by", s(token))
            .send()
            .await;
        written(put)
    }

    async fn release_group(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        group: &str,
        enqueued: u64,
    ) -> Result<bool, StoreError> {
        let mark = Update::builder()
            .table_name(&self.table)
            .key("pk", s(campaign_pk(tenant, id)))
            .key("sk", s(group))
            .update_expression("SET released = :yes")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(released)")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .build()
            .map_err(fatal)?;
        let counts = Update::builder()
            .table_name(&self.table)
            .key("pk", s(list_pk(tenant)))
            .key("sk", s(campaign_sk(id)))
            .update_expression("ADD enqueued :n, held :minus")
            .expression_attribute_values(":n", n(enqueued))
            .expression_attribute_values(":minus", n(-(enqueued as i64)))
            .build()
            .map_err(fatal)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(mark).build())
            .transact_items(TransactWriteItem::builder().update(counts).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if super::item::condition_failed(&e) => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn mark(
        &self,
        tenant: &TenantId,
        marks: &[(CampaignRef, ProgressMark)],
    ) -> Result<(), StoreError> {
        // Per page, each (set, slot) once: a batch may carry two copies of one notification.
        let mut pages: BTreeMap<(&CampaignId, u32), BTreeSet<(&'static str, u32, String)>> =
            BTreeMap::new();
        for (at, mark) in marks {
            pages.entry((&at.id, at.page)).or_default().insert((
                mark.dedupe_set(),
                at.slot,
                mark.counter(),
            ));
        }
        for ((id, page), marks) in pages {
            let marks: Vec<_> = marks.into_iter().collect();
            for chunk in marks.chunks(MARKS_PER_WRITE) {
                self.mark_page(tenant, id, page, chunk.to_vec()).await?;
            }
        }
        Ok(())
    }

    async fn progress(&self, campaign: &Campaign) -> Result<Progress, StoreError> {
        let item = self
            .get(list_pk(&campaign.tenant), campaign_sk(&campaign.id))
            .await?
            .unwrap_or_default();
        let mut counters = Counters::new();
        for name in ["enqueued", "audience", "held", "invalid"] {
            counters.insert(name.to_owned(), number(&item, name));
        }
        let shards = (0..COUNTER_SHARDS).map(|shard| {
            (
                shard_pk(&campaign.tenant, &campaign.id, shard),
                "COUNTS".to_owned(),
            )
        });
        for shard in super::item::batch_get(&self.client, &self.table, shards, None, 5).await? {
            for (name, value) in &shard {
                if let Ok(v) = value.as_n() {
                    *counters.entry(name.clone()).or_default() +=
                        v.parse::<i64>().map_or(0, |v| v.max(0) as u64);
                }
            }
        }
        Ok(Progress::from_counters(
            &counters,
            campaign.audience.known_size(),
            campaign.status,
        ))
    }
}

impl DynamoCampaigns {
    /// Adds `marks` (set, slot, counter) of one page: the page's sets and the shard's counters
    /// in one transaction, on condition that no slot is in its set yet. When one is (a mark
    /// made before), the page is read and only the new ones are written.
    async fn mark_page(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        page: u32,
        mut marks: Vec<(&'static str, u32, String)>,
    ) -> Result<(), StoreError> {
        let mut contended = 0u32;
        for _ in 0..8 {
            if marks.is_empty() {
                return Ok(());
            }
            let mut sets: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
            let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
            let mut names = HashMap::new();
            let mut values = HashMap::new();
            let mut conditions = Vec::new();
            for (i, (set, slot, counter)) in marks.iter().enumerate() {
                sets.entry(set).or_default().push(slot.to_string());
                *counts.entry(counter.as_str()).or_default() += 1;
                let set_name = format!("#s_{set}");
                conditions.push(format!("NOT contains({set_name}, :e{i})"));
                names.insert(set_name, (*set).to_owned());
                values.insert(format!(":e{i}"), s(slot.to_string()));
            }
            let adds: Vec<String> = sets
                .keys()
                .map(|set| format!("#s_{set} :v_{set}"))
                .collect();
            for (set, slots) in &sets {
                values.insert(format!(":v_{set}"), AttributeValue::Ss(slots.clone()));
            }
            let page_update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(campaign_pk(tenant, id)))
                .key("sk", s(page_sk(page)))
                .update_expression(format!("ADD {}", adds.join(", ")))
                .condition_expression(conditions.join(" AND "))
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .build()
                .map_err(fatal)?;
            let mut counter_names = HashMap::new();
            let mut counter_values = HashMap::new();
            let mut counter_adds = Vec::new();
            for (i, (counter, count)) in counts.iter().enumerate() {
                counter_adds.push(format!("#c{i} :c{i}"));
                counter_names.insert(format!("#c{i}"), (*counter).to_owned());
                counter_values.insert(format!(":c{i}"), n(*count));
            }
            let shard_update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(shard_pk(tenant, id, page % COUNTER_SHARDS)))
                .key("sk", s("COUNTS"))
                .update_expression(format!("ADD {}", counter_adds.join(", ")))
                .set_expression_attribute_names(Some(counter_names))
                .set_expression_attribute_values(Some(counter_values))
                .build()
                .map_err(fatal)?;
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(page_update).build())
                .transact_items(TransactWriteItem::builder().update(shard_update).build())
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(e) if super::item::condition_failed(&e) => {
                    // Some slots were marked before: keep only the new ones.
                    let item = self
                        .get(campaign_pk(tenant, id), page_sk(page))
                        .await?
                        .unwrap_or_default();
                    marks.retain(|(set, slot, _)| {
                        !item
                            .get(*set)
                            .and_then(|v| v.as_ss().ok())
                            .is_some_and(|members| members.contains(&slot.to_string()))
                    });
                }
                Err(e) if super::item::cancelled_by_contention(&e) => {
                    // Another mark of the same page or shard was in flight: back off, retry.
                    contended += 1;
                    let wait = rand::random_range(10..=(20u64 << contended.min(5)));
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                }
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(StoreError::Transient(
            "progress marks kept meeting concurrent marks".into(),
        ))
    }
}
