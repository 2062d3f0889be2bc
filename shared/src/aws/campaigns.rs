//! DynamoDB adapter of campaigns, in the directory table.
//!
//! Layout: campaign `pk = T#<tenant>#CAMPAIGNS, sk = C#<id>` (its definition as `json`; the
//! parts that change as attributes: `status`, `started_at`, `fanned_out_at`, `cancelled_at`,
//! `failure`, `enqueued`, `audience`); idempotency key `sk = K#<key>` (attribute `id`) in the
//! same partition. Per campaign, `pk = T#<tenant>#C#<id>`: inline audience chunks `A#<n>`
//! (`users`, newline-separated), pages `P#<n>` (the page record, and its progress as string
//! sets of slots, so marking twice counts once), held recipients `H#<instant>#<page>`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;

use super::item::{n, number, s, text, Item};
use super::store_error;
use crate::domain::campaign::{Campaign, CampaignRef, CampaignStatus, Progress, ProgressMark};
use crate::domain::ids::{CampaignId, TenantId, UserId};
use crate::domain::notification::Channel;
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

    /// Every item of a campaign's partition under `prefix`, in key order.
    async fn query_all(&self, pk: String, prefix: String) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":prefix", s(&prefix))
                .set_exclusive_start_key(start)
                .consistent_read(true)
                .send()
                .await
                .map_err(store_error)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }
}

fn fatal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Fatal(e.to_string())
}

fn set_len(item: &Item, key: &str) -> u64 {
    item.get(key)
        .and_then(|v| v.as_ss().ok())
        .map_or(0, |set| set.len() as u64)
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

/// A campaign from its item: the definition, with the attributes that change laid over it.
fn campaign_of(item: &Item) -> Result<Campaign, StoreError> {
    let json = text(item, "json").ok_or_else(|| fatal("campaign item without json"))?;
    let mut campaign: Campaign =
        serde_json::from_str(&json).map_err(|e| fatal(format!("stored campaign: {e}")))?;
    if let Some(status) = text(item, "status") {
        campaign.status = serde_json::from_value(serde_json::Value::String(status))
            .map_err(|e| fatal(format!("stored status: {e}")))?;
    }
    campaign.started_at = text(item, "started_at");
    campaign.fanned_out_at = text(item, "fanned_out_at");
    campaign.cancelled_at = text(item, "cancelled_at");
    campaign.failure = text(item, "failure");
    Ok(campaign)
}

fn page_of(item: &Item, page: u32) -> PageRecord {
    PageRecord {
        page,
        users: number(item, "users"),
        enqueued: number(item, "enqueued"),
        invalid: number(item, "invalid"),
        next_cursor: number(item, "next_cursor"),
        last: item
            .get("last")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        held: Vec::new(),
        next_sent: item.contains_key("next_sent"),
    }
}

/// The string set a mark goes in, and the element for its slot.
fn mark_target(mark: ProgressMark, slot: u32) -> (&'static str, String) {
    match mark {
        ProgressMark::Committed => ("committed", slot.to_string()),
        ProgressMark::Sent(channel) => (sent_set(channel), slot.to_string()),
        ProgressMark::Skipped(_) => ("skipped", slot.to_string()),
        ProgressMark::Failed => ("failed", slot.to_string()),
    }
}

fn sent_set(channel: Channel) -> &'static str {
    match channel {
        Channel::Inbox => "sent_inbox",
        Channel::Email => "sent_email",
        Channel::Sms => "sent_sms",
        Channel::Push => "sent_push",
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
            items.push(self.put(
                HashMap::from([
                    ("pk".to_owned(), s(campaign_pk(tenant, &campaign.id))),
                    ("sk".to_owned(), s(format!("A#{i:06}"))),
                    ("users".to_owned(), s(users.join("\n"))),
                ]),
                "attribute_not_exists(pk)",
            )?);
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(campaign.clone()),
            Err(e) if idempotency_key.is_some() && super::directory::condition_failed(&e) => {
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
        at: &str,
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
            .expression_attribute_values(":at", s(at));
        for (name, status) in allowed.iter().zip(from) {
            update = update.expression_attribute_values(name, status_str(*status));
        }
        if let Some(detail) = detail {
            update = update.expression_attribute_values(":detail", s(detail));
        }
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn mark_fanned_out(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        at: &str,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(list_pk(tenant)))
            .key("sk", s(campaign_sk(id)))
            .update_expression("SET fanned_out_at = if_not_exists(fanned_out_at, :at)")
            .expression_attribute_values(":at", s(at))
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
        let counts = Update::builder()
            .table_name(&self.table)
            .key("pk", s(list_pk(tenant)))
            .key("sk", s(campaign_sk(id)))
            .update_expression(
                "ADD enqueued :enqueued, audience :users, invalid :invalid, held :held",
            )
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
            items.push(self.put(
                HashMap::from([
                    ("pk".to_owned(), s(campaign_pk(tenant, id))),
                    ("sk".to_owned(), s(format!("H#{at}#{:08}", page.page))),
                    ("page".to_owned(), n(page.page)),
                    ("users".to_owned(), s(users.join("\n"))),
                ]),
                "attribute_not_exists(pk)",
            )?);
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(e) if super::directory::condition_failed(&e) => {
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
        at: &str,
    ) -> Result<Vec<HeldGroup>, StoreError> {
        let items = self
            .query_all(campaign_pk(tenant, id), format!("H#{at}#"))
            .await?;
        items
            .iter()
            .filter(|item| !item.contains_key("released"))
            .map(|item| {
                let recipients = text(item, "users")
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|line| {
                        let (slot, user) = line.split_once(' ')?;
                        Some((slot.parse().ok()?, UserId::parse(user, "user_id").ok()?))
                    })
                    .collect();
                Ok(HeldGroup {
                    key: text(item, "sk").unwrap_or_default(),
                    page: number(item, "page") as u32,
                    recipients,
                })
            })
            .collect()
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
            Err(e) if super::directory::condition_failed(&e) => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn mark(
        &self,
        tenant: &TenantId,
        marks: &[(CampaignRef, ProgressMark)],
    ) -> Result<(), StoreError> {
        // One update per page: its sets grow by the slots marked.
        let mut pages: HashMap<(&CampaignId, u32), HashMap<&'static str, Vec<String>>> =
            HashMap::new();
        for (at, mark) in marks {
            let (set, element) = mark_target(*mark, at.slot);
            pages
                .entry((&at.id, at.page))
                .or_default()
                .entry(set)
                .or_default()
                .push(element);
        }
        for ((id, page), sets) in pages {
            let mut update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(campaign_pk(tenant, id)))
                .key("sk", s(page_sk(page)));
            let mut parts = Vec::new();
            for (i, (set, elements)) in sets.into_iter().enumerate() {
                parts.push(format!("#s{i} :v{i}"));
                update = update
                    .expression_attribute_names(format!("#s{i}"), set)
                    .expression_attribute_values(format!(":v{i}"), AttributeValue::Ss(elements));
            }
            update
                .update_expression(format!("ADD {}", parts.join(", ")))
                .send()
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }

    async fn progress(&self, campaign: &Campaign) -> Result<Progress, StoreError> {
        let item = self
            .get(list_pk(&campaign.tenant), campaign_sk(&campaign.id))
            .await?
            .unwrap_or_default();
        let mut progress = Progress {
            audience: campaign
                .audience
                .known_size()
                .unwrap_or_else(|| number(&item, "audience")),
            enqueued: number(&item, "enqueued"),
            held: number(&item, "held"),
            invalid: number(&item, "invalid"),
            ..Progress::default()
        };
        let pages = self
            .query_all(campaign_pk(&campaign.tenant, &campaign.id), "P#".into())
            .await?;
        for page in &pages {
            let slots = |set: &str| -> Vec<&String> {
                page.get(set)
                    .and_then(|v| v.as_ss().ok())
                    .map(|v| v.iter().collect())
                    .unwrap_or_default()
            };
            let settled: std::collections::HashSet<&String> = ["committed", "skipped", "failed"]
                .iter()
                .flat_map(|set| slots(set))
                .collect();
            progress.settled += settled.len() as u64;
            progress.committed += set_len(page, "committed");
            progress.skipped += set_len(page, "skipped");
            progress.failed += set_len(page, "failed");
            for channel in Channel::ALL {
                let sent = set_len(page, sent_set(channel));
                if sent > 0 {
                    *progress.sent.entry(channel).or_default() += sent;
                }
            }
        }
        Ok(progress)
    }
}
