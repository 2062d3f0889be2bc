//! inbox-writer: consumes the notifications queue. Each notification is stored and counted
//! exactly once (users' writes packed into transactions, see `herald::domain::counters`), then its
//! delivery jobs go on the delivery queue (a workflow step's delayed on the queue or on a
//! one-time schedule; a digested event joins its window, whose opener brings the window's
//! jobs); committed messages are acked, the rest retried.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use herald::aws::scheduler::{EventBridgeScheduler, ScheduleTarget};
use herald::config::{ConfigError, Vars};
use herald::consumer::{BatchHandler, Disposition, QueueConfig, QueueMessage};
use herald::domain::backoff::BackoffPolicy;
use herald::domain::campaign::{CampaignRef, ProgressMark};
use herald::domain::counters::commit::{apply_packed, ApplyOutcome, Packing};
use herald::domain::counters::{Counter, Counters, UserKey};
use herald::domain::delivery::DeliveryJob;
use herald::domain::digest::join::join;
use herald::domain::digest::DigestEvent;
use herald::domain::workflow::MAX_QUEUE_DELAY_SECONDS;
use herald::ports::{
    CommitError, CounterStore, Digests, Directory, OutgoingMessage, QueueSender, Scheduler,
    UserWrites,
};
use herald::progress::CampaignGate;
use herald::telemetry::Metric;
use herald::{Channel, Notification, RoomId, StoreError, TenantId};

#[derive(Debug, Clone)]
pub struct Config {
    pub inbox_table: String,
    /// The notifications queue this function consumes.
    pub queue: QueueConfig,
    /// Email jobs (and any channel without its own queue).
    pub delivery_queue_url: String,
    /// `SMS_QUEUE_URL`, `PUSH_QUEUE_URL`: each provider's jobs on their own queue, so each
    /// sending rate is its own (optional: without them, everything goes to the delivery queue).
    pub channel_queue_urls: Vec<(Channel, String)>,
    pub retention_days: u32,
    pub policy: BackoffPolicy,
    pub packing: Packing,
    /// `DIRECTORY_TABLE`: campaigns' status and progress (without it, campaign notifications
    /// are written like any other).
    pub directory_table: Option<String>,
    /// `STEP_SCHEDULE_GROUP` and the rest: where workflow steps due in more than 15 minutes
    /// wait (without it, such a step rides the queue 15 minutes at a time).
    pub step_schedules: Option<StepScheduleConfig>,
}

/// EventBridge Scheduler for workflow steps: the group, the role Scheduler assumes, its
/// dead-letter queue, and each channel's queue as the target.
#[derive(Debug, Clone)]
pub struct StepScheduleConfig {
    pub group: String,
    pub role_arn: String,
    pub dlq_arn: String,
    pub queue_arns: Vec<(Channel, String)>,
}

impl StepScheduleConfig {
    fn from_vars(vars: &Vars) -> Result<Option<Self>, ConfigError> {
        let Some(group) = vars.optional("STEP_SCHEDULE_GROUP") else {
            return Ok(None);
        };
        let mut queue_arns = vec![(Channel::Email, vars.required("DELIVERY_QUEUE_ARN")?)];
        for (channel, var) in [
            (Channel::Sms, "SMS_QUEUE_ARN"),
            (Channel::Push, "PUSH_QUEUE_ARN"),
        ] {
            if let Some(arn) = vars.optional(var) {
                queue_arns.push((channel, arn));
            }
        }
        Ok(Some(Self {
            group,
            role_arn: vars.required("SCHEDULER_ROLE_ARN")?,
            dlq_arn: vars.required("SCHEDULE_DLQ_ARN")?,
            queue_arns,
        }))
    }
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let budget_ms: u64 = vars.parsed_or("RETRY_BUDGET_MS", 10_000)?;
        Ok(Self {
            inbox_table: vars.required("INBOX_TABLE")?,
            queue: QueueConfig::from_vars(
                vars,
                "NOTIFICATIONS_QUEUE_URL",
                "NOTIFICATIONS_DLQ_URL",
            )?,
            delivery_queue_url: vars.required("DELIVERY_QUEUE_URL")?,
            channel_queue_urls: [
                (Channel::Sms, "SMS_QUEUE_URL"),
                (Channel::Push, "PUSH_QUEUE_URL"),
            ]
            .into_iter()
            .filter_map(|(channel, var)| vars.optional(var).map(|url| (channel, url)))
            .collect(),
            retention_days: vars.retention_days()?,
            policy: BackoffPolicy {
                budget: std::time::Duration::from_millis(budget_ms),
                ..BackoffPolicy::default()
            },
            packing: Packing {
                pack_users: vars.parsed_or("PACK_USERS", true)?,
                concurrency: vars.parsed_or("COMMIT_CONCURRENCY", 1)?,
            },
            directory_table: vars.optional("DIRECTORY_TABLE"),
            step_schedules: StepScheduleConfig::from_vars(vars)?,
        })
    }
}

/// EventBridge Scheduler's limit on a target's input.
const MAX_SCHEDULE_INPUT: usize = 8_192;

/// The handler: the counter store and where delivery jobs go.
pub struct InboxWriter {
    pub store: Arc<dyn CounterStore>,
    /// Email jobs, and those of channels without a queue of their own.
    pub delivery: Arc<dyn QueueSender>,
    /// The queues of channels that have their own (SMS, push).
    pub channel_queues: Vec<(Channel, Arc<dyn QueueSender>)>,
    pub policy: BackoffPolicy,
    /// How a batch's users share transactions.
    pub packing: Packing,
    /// Campaign notifications: skipped once their campaign is cancelled, marked when committed.
    pub campaigns: Option<Arc<CampaignGate>>,
    /// Contacts, whose preferences (marketing consent, `channels.inbox`) the inbox honours:
    /// one BatchGetItem per batch and tenant.
    pub preferences: Option<Arc<dyn Directory>>,
    /// Workflow steps due in more than 15 minutes: a one-time schedule onto the channel's
    /// queue (the email scheduler serves channels without their own). Empty: such steps
    /// ride their queue 15 minutes at a time.
    pub step_schedulers: Vec<(Channel, Arc<dyn Scheduler>)>,
    /// Digest windows (the directory table): without them, a digested notification is sent
    /// on its own.
    pub digests: Option<Arc<dyn Digests>>,
}

impl InboxWriter {
    pub fn from_aws(config: &Config, aws: &aws_config::SdkConfig) -> Self {
        let ddb = aws_sdk_dynamodb::Client::new(aws);
        let sqs = aws_sdk_sqs::Client::new(aws);
        Self {
            store: Arc::new(herald::aws::dynamodb::DynamoInbox::new(
                ddb.clone(),
                &config.inbox_table,
                config.retention_days,
            )),
            delivery: Arc::new(herald::aws::sqs::SqsSender::new(
                sqs.clone(),
                &config.delivery_queue_url,
            )),
            channel_queues: config
                .channel_queue_urls
                .iter()
                .map(|(channel, url)| {
                    let queue: Arc<dyn QueueSender> =
                        Arc::new(herald::aws::sqs::SqsSender::new(sqs.clone(), url));
                    (*channel, queue)
                })
                .collect(),
            policy: config.policy,
            packing: config.packing,
            campaigns: config.directory_table.as_ref().map(|table| {
                Arc::new(CampaignGate::new(Arc::new(
                    herald::aws::campaigns::DynamoCampaigns::new(ddb.clone(), table),
                )))
            }),
            preferences: config.directory_table.as_ref().map(|table| {
                let directory: Arc<dyn Directory> = Arc::new(
                    herald::aws::directory::DynamoDirectory::new(ddb.clone(), table),
                );
                directory
            }),
            digests: config.directory_table.as_ref().map(|table| {
                let digests: Arc<dyn Digests> =
                    Arc::new(herald::aws::digests::DynamoDigests::new(ddb.clone(), table));
                digests
            }),
            step_schedulers: config
                .step_schedules
                .iter()
                .flat_map(|c| {
                    let client = aws_sdk_scheduler::Client::new(aws);
                    c.queue_arns.iter().map(move |(channel, queue_arn)| {
                        let target = ScheduleTarget {
                            group: c.group.clone(),
                            queue_arn: queue_arn.clone(),
                            role_arn: c.role_arn.clone(),
                            dlq_arn: c.dlq_arn.clone(),
                        };
                        let scheduler: Arc<dyn Scheduler> =
                            Arc::new(EventBridgeScheduler::new(client.clone(), &target));
                        (*channel, scheduler)
                    })
                })
                .collect(),
        }
    }
}

#[async_trait]
impl BatchHandler for InboxWriter {
    async fn handle(&self, batch: &[QueueMessage]) -> Vec<Disposition> {
        let mut dispositions: Vec<Option<Disposition>> = vec![None; batch.len()];
        let parsed = parse_batch(batch, &mut dispositions);
        let parsed = self.skip_cancelled(parsed, &mut dispositions).await;
        let parsed = self.honour_preferences(parsed, &mut dispositions).await;
        let store = CountingStore::new(self.store.as_ref());
        let outcomes = apply_packed(&store, parsed, &self.policy, self.packing).await;

        let (mut committed, mut duplicates, mut unfinished) = (0, 0, 0);
        let mut latencies = Vec::new();
        let mut jobs = Vec::new();
        let mut marks = Vec::new();
        let mut digested = Vec::new();
        for (index, notification, outcome) in outcomes {
            match outcome {
                ApplyOutcome::Committed | ApplyOutcome::AlreadyApplied => {
                    if outcome == ApplyOutcome::Committed {
                        committed += 1;
                        latencies.push(herald::telemetry::ms_since(notification.created_at));
                        tracing::info!(
                            tenant = %notification.tenant,
                            notification_id = %notification.id,
                            message_id = %batch[index].message_id,
                            correlation_id = notification.correlation_id.as_deref().unwrap_or_default(),
                            "committed"
                        );
                    } else {
                        duplicates += 1
                    }
                    // A duplicate is marked again: the first attempt may have died before.
                    if let Some(at) = &notification.campaign {
                        marks.push((index, notification.tenant.clone(), at.clone()));
                    }
                    // A redelivered duplicate re-enqueues its jobs too: the first attempt may
                    // have died before enqueueing; deliver skips channels already sent.
                    let own = if notification.any_digest().is_some() && self.digests.is_some() {
                        digested.push((index, notification.clone()));
                        DeliveryJob::undigested(&notification)
                    } else {
                        DeliveryJob::for_notification(&notification)
                    };
                    jobs.extend(own.into_iter().map(|job| (index, job)));
                    dispositions[index] = Some(Disposition::Done);
                }
                ApplyOutcome::Unfinished(reason) => {
                    unfinished += 1;
                    dispositions[index] = Some(Disposition::Retry(reason));
                }
            }
        }
        jobs.extend(self.join_digests(digested, &mut dispositions).await);
        self.enqueue_delivery(batch, jobs, &mut dispositions).await;
        self.mark_committed(marks, &mut dispositions).await;
        let (transactions, retries) = store.counts();
        herald::telemetry::emit(
            "inbox-writer",
            &[],
            &[
                Metric::count("MessagesCommitted", committed),
                Metric::count("DuplicatesDropped", duplicates),
                Metric::count("MessagesUnfinished", unfinished),
                Metric::count("TransactionsCommitted", transactions),
                Metric::count("TransactionRetries", retries),
                Metric::milliseconds("IngestToCommit", latencies),
            ],
        );
        dispositions
            .into_iter()
            .map(|d| d.unwrap_or_else(|| Disposition::Retry("not processed".into())))
            .collect()
    }
}

/// The store as the writer uses it, counting transactions that committed and those that
/// met a conflict or throttling (and were retried or split), for the metrics.
struct CountingStore<'a> {
    inner: &'a dyn CounterStore,
    committed: AtomicUsize,
    retried: AtomicUsize,
}

impl<'a> CountingStore<'a> {
    fn new(inner: &'a dyn CounterStore) -> Self {
        Self {
            inner,
            committed: AtomicUsize::new(0),
            retried: AtomicUsize::new(0),
        }
    }

    fn counts(&self) -> (usize, usize) {
        (
            self.committed.load(Ordering::Relaxed),
            self.retried.load(Ordering::Relaxed),
        )
    }
}

#[async_trait]
impl CounterStore for CountingStore<'_> {
    async fn applied(&self, messages: &[Notification]) -> Result<Vec<bool>, StoreError> {
        self.inner.applied(messages).await
    }

    async fn commit(&self, writes: &[UserWrites]) -> Result<(), CommitError> {
        let result = self.inner.commit(writes).await;
        match &result {
            Ok(()) => self.committed.fetch_add(1, Ordering::Relaxed),
            Err(CommitError::Retryable(_)) => self.retried.fetch_add(1, Ordering::Relaxed),
            Err(_) => 0,
        };
        result
    }

    async fn read_counters(&self, user: &UserKey) -> Result<Counters, StoreError> {
        self.inner.read_counters(user).await
    }

    async fn zero_rooms(
        &self,
        user: &UserKey,
        rooms: &[(RoomId, Counter)],
    ) -> Result<(), CommitError> {
        self.inner.zero_rooms(user, rooms).await
    }

    async fn repair_total(&self, user: &UserKey, seen: &Counters) -> Result<(), CommitError> {
        self.inner.repair_total(user, seen).await
    }

    async fn mark_seen(
        &self,
        user: &UserKey,
        message: &herald::ports::MessageRef,
    ) -> Result<bool, CommitError> {
        self.inner.mark_seen(user, message).await
    }

    async fn zero_unseen(
        &self,
        user: &UserKey,
        rooms: &[(RoomId, Counter)],
    ) -> Result<(), CommitError> {
        self.inner.zero_unseen(user, rooms).await
    }
}

/// Parses each body; unparsable ones are poison and never reach the store.
fn parse_batch(
    batch: &[QueueMessage],
    dispositions: &mut [Option<Disposition>],
) -> Vec<(usize, Notification)> {
    let mut parsed = Vec::with_capacity(batch.len());
    for (index, message) in batch.iter().enumerate() {
        match serde_json::from_str::<Notification>(&message.body) {
            Ok(n) => match n.check() {
                Ok(()) => parsed.push((index, n)),
                Err(e) => {
                    dispositions[index] =
                        Some(Disposition::Poison(format!("invalid notification: {e}")))
                }
            },
            Err(e) => {
                dispositions[index] = Some(Disposition::Poison(format!("not a notification: {e}")))
            }
        }
    }
    parsed
}

impl InboxWriter {
    /// Campaign notifications of a cancelled campaign are dropped (neither counted nor
    /// delivered) and marked skipped; the rest go on.
    async fn skip_cancelled(
        &self,
        parsed: Vec<(usize, Notification)>,
        dispositions: &mut [Option<Disposition>],
    ) -> Vec<(usize, Notification)> {
        let Some(gate) = &self.campaigns else {
            return parsed;
        };
        let mut kept = Vec::with_capacity(parsed.len());
        let mut cancelled = Vec::new();
        for (index, n) in parsed {
            let Some(at) = &n.campaign else {
                kept.push((index, n));
                continue;
            };
            match gate.cancelled(&n.tenant, &at.id).await {
                Ok(false) => kept.push((index, n)),
                Ok(true) => cancelled.push((index, n)),
                Err(e) => {
                    dispositions[index] = Some(Disposition::Retry(format!("campaign status: {e}")))
                }
            }
        }
        if cancelled.is_empty() {
            return kept;
        }
        // A redelivered copy may have been committed before (its mark lost with its
        // invocation): that one counts as committed, the others as skipped.
        let notifications: Vec<Notification> = cancelled.iter().map(|(_, n)| n.clone()).collect();
        let applied = match self.store.applied(&notifications).await {
            Ok(applied) => applied,
            Err(e) => {
                for (index, _) in &cancelled {
                    dispositions[*index] = Some(Disposition::Retry(format!("inbox read: {e}")));
                }
                return kept;
            }
        };
        let (mut committed, mut dropped) = (Vec::new(), Vec::new());
        for ((index, n), applied) in cancelled.into_iter().zip(applied) {
            let Some(at) = n.campaign.clone() else {
                continue;
            };
            if applied {
                committed.push((index, n.tenant, at));
            } else {
                dropped.push((index, n.tenant, at));
            }
        }
        for (index, _, _) in committed.iter().chain(&dropped) {
            dispositions[*index] = Some(Disposition::Done);
        }
        // One mark call per tenant and kind, as for commits.
        self.mark_campaigns(committed, ProgressMark::Committed, dispositions)
            .await;
        self.mark_campaigns(
            dropped,
            ProgressMark::Dropped(herald::domain::delivery::SkipReason::Cancelled),
            dispositions,
        )
        .await;
        kept
    }

    /// A user who turned the inbox off (`channels.inbox: false`), or withheld consent to the
    /// notification's category, gets no inbox item and no badge; when no channel of it is
    /// allowed, it is dropped whole (a campaign's counts it as skipped, opted out). The
    /// batch's contacts are read together, once per tenant.
    async fn honour_preferences(
        &self,
        parsed: Vec<(usize, Notification)>,
        dispositions: &mut [Option<Disposition>],
    ) -> Vec<(usize, Notification)> {
        let Some(directory) = &self.preferences else {
            return parsed;
        };
        let mut tenants: Vec<&TenantId> = parsed.iter().map(|(_, n)| &n.tenant).collect();
        tenants.sort();
        tenants.dedup();
        let mut contacts = std::collections::HashMap::new();
        for tenant in tenants {
            let users: Vec<herald::UserId> = parsed
                .iter()
                .filter(|(_, n)| &n.tenant == tenant && n.wants(Channel::Inbox))
                .map(|(_, n)| n.user_id.clone())
                .collect();
            if users.is_empty() {
                continue;
            }
            match directory.contacts(tenant, &users).await {
                Ok(found) => {
                    contacts.insert(tenant.clone(), found);
                }
                Err(e) => {
                    // Without the preferences nothing of this tenant may go in the inbox.
                    tracing::warn!(tenant = %tenant, error = %e, "contacts not read; retried");
                    for (index, n) in &parsed {
                        if &n.tenant == tenant {
                            dispositions[*index] =
                                Some(Disposition::Retry(format!("contacts: {e}")));
                        }
                    }
                }
            }
        }
        let mut kept = Vec::with_capacity(parsed.len());
        let mut dropped = Vec::new();
        for (index, mut n) in parsed {
            if dispositions[index].is_some() {
                continue;
            }
            let contact = contacts.get(&n.tenant).and_then(|c| c.get(&n.user_id));
            if let Some(contact) = contact {
                if n.wants(Channel::Inbox) && !contact.allows(Channel::Inbox, n.category) {
                    if n.channels.iter().all(|c| !contact.allows(*c, n.category)) {
                        tracing::info!(notification_id = %n.id, user = %n.user_id, "user opted out: not in the inbox, not delivered");
                        dispositions[index] = Some(Disposition::Done);
                        if let Some(at) = &n.campaign {
                            dropped.push((index, n.tenant.clone(), at.clone()));
                        }
                        continue;
                    }
                    n.channels.retain(|c| *c != Channel::Inbox);
                }
            }
            kept.push((index, n));
        }
        if !dropped.is_empty() {
            herald::telemetry::emit(
                "inbox-writer",
                &[],
                &[Metric::count("NotificationsOptedOut", dropped.len())],
            );
            self.mark_campaigns(
                dropped,
                ProgressMark::Dropped(herald::domain::delivery::SkipReason::OptedOut),
                dispositions,
            )
            .await;
        }
        kept
    }

    /// Marks committed campaign notifications in their campaign's progress; a message whose
    /// mark did not make it is retried (its redelivery is a duplicate that marks again).
    async fn mark_committed(
        &self,
        marks: Vec<(usize, TenantId, CampaignRef)>,
        dispositions: &mut [Option<Disposition>],
    ) {
        self.mark_campaigns(marks, ProgressMark::Committed, dispositions)
            .await;
    }

    /// Leaves `mark` for each campaign notification; one whose mark did not make it is
    /// retried.
    async fn mark_campaigns(
        &self,
        marks: Vec<(usize, TenantId, CampaignRef)>,
        mark: ProgressMark,
        dispositions: &mut [Option<Disposition>],
    ) {
        let Some(gate) = &self.campaigns else {
            return;
        };
        let mut by_tenant: Vec<(TenantId, Vec<(usize, CampaignRef)>)> = Vec::new();
        for (index, tenant, at) in marks {
            match by_tenant.iter_mut().find(|(t, _)| *t == tenant) {
                Some((_, list)) => list.push((index, at)),
                None => by_tenant.push((tenant, vec![(index, at)])),
            }
        }
        for (tenant, list) in by_tenant {
            let refs: Vec<(CampaignRef, ProgressMark)> =
                list.iter().map(|(_, at)| (at.clone(), mark)).collect();
            if let Err(e) = gate.mark(&tenant, &refs).await {
                for (index, _) in &list {
                    dispositions[*index] =
                        Some(Disposition::Retry(format!("campaign progress: {e}")));
                }
            }
        }
    }

    /// Puts the jobs on the delivery queue; a message whose jobs did not all make it is
    /// retried (its redelivery is a duplicate for the counters and re-enqueues the jobs).
    async fn enqueue_delivery(
        &self,
        batch: &[QueueMessage],
        jobs: Vec<(usize, DeliveryJob)>,
        dispositions: &mut [Option<Disposition>],
    ) {
        // Twins in one batch (the same notification sent twice) enqueue their jobs once.
        let mut seen = std::collections::HashSet::new();
        let jobs: Vec<(usize, DeliveryJob)> = jobs
            .into_iter()
            .filter(|(_, job)| seen.insert(job.identity()))
            .collect();
        // One send per queue: each channel's jobs go to that channel's queue.
        let mut by_queue: Vec<(Arc<dyn QueueSender>, Vec<OutgoingMessage>)> = Vec::new();
        for (i, (index, job)) in jobs.iter().enumerate() {
            let mut message = match OutgoingMessage::json(i.to_string(), job) {
                Ok(m) => m,
                Err(e) => {
                    dispositions[*index] = Some(Disposition::Poison(format!("delivery job: {e}")));
                    continue;
                }
            };
            // The notification's trace continues into its deliveries.
            message.trace_header = batch[*index].trace_header.clone();
            // A workflow step waits for its time: on the queue up to 15 minutes, beyond on a
            // schedule (a schedule's input holds 8 KiB: a bigger job rides the queue 15
            // minutes at a time, deliver putting it back until it is due).
            let wait = job.wait_seconds(jiff::Timestamp::now());
            if wait > MAX_QUEUE_DELAY_SECONDS && message.body.len() <= MAX_SCHEDULE_INPUT {
                if let (Some(scheduler), Some(due)) = (self.scheduler_for(job.channel), job.due_at)
                {
                    if let Err(e) = scheduler
                        .schedule_once(&job.schedule_name(), due, &message.body)
                        .await
                    {
                        dispositions[*index] =
                            Some(Disposition::Retry(format!("step schedule failed: {e}")));
                    }
                    continue;
                }
            }
            if wait > 0 {
                message.delay_seconds = Some(wait.min(MAX_QUEUE_DELAY_SECONDS) as i32);
            }
            let queue = self.queue_for(job.channel);
            match by_queue.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &queue)) {
                Some((_, messages)) => messages.push(message),
                None => by_queue.push((queue, vec![message])),
            }
        }
        for (queue, messages) in by_queue {
            let results = queue.send(&messages).await;
            for (message, result) in messages.iter().zip(results) {
                if let (Err(reason), Ok(i)) = (result, message.id.parse::<usize>()) {
                    dispositions[jobs[i].0] = Some(Disposition::Retry(format!(
                        "delivery enqueue failed: {reason}"
                    )));
                }
            }
        }
    }

    /// Each digested notification joins its window (a redelivered one finds where it went);
    /// the one that opened a window brings the window's jobs, due when it closes. A join that
    /// failed retries the message: its redelivery is a duplicate for the counters and joins
    /// again.
    async fn join_digests(
        &self,
        digested: Vec<(usize, Notification)>,
        dispositions: &mut [Option<Disposition>],
    ) -> Vec<(usize, DeliveryJob)> {
        let Some(store) = &self.digests else {
            return Vec::new();
        };
        let mut jobs = Vec::new();
        // One at a time: events of one user and key in a batch would only race each other.
        for (index, n) in digested {
            let Some(digest) = n.any_digest() else {
                continue;
            };
            let event = DigestEvent {
                id: n.id.to_string(),
                title: n.title.clone(),
                body: n.body.clone(),
                created_at: n.created_at,
                data: None,
            };
            let joined = join(
                store.as_ref(),
                &UserKey::of(&n),
                &digest,
                &event,
                jiff::Timestamp::now,
                &self.policy,
            )
            .await;
            match joined {
                Ok(joined) if joined.opened => jobs.extend(
                    DeliveryJob::for_digest(&n, &joined.window, joined.closes_at)
                        .into_iter()
                        .map(|job| (index, job)),
                ),
                Ok(_) => {}
                Err(e) => {
                    dispositions[index] = Some(Disposition::Retry(format!("digest join: {e}")))
                }
            }
        }
        jobs
    }

    fn scheduler_for(&self, channel: Channel) -> Option<&Arc<dyn Scheduler>> {
        let own = self.step_schedulers.iter().find(|(c, _)| *c == channel);
        own.or_else(|| {
            self.step_schedulers
                .iter()
                .find(|(c, _)| *c == Channel::Email)
                .filter(|_| !self.channel_queues.iter().any(|(c, _)| *c == channel))
        })
        .map(|(_, s)| s)
    }

    fn queue_for(&self, channel: Channel) -> Arc<dyn QueueSender> {
        self.channel_queues
            .iter()
            .find(|(c, _)| *c == channel)
            .map_or_else(|| self.delivery.clone(), |(_, q)| q.clone())
    }
}

#[cfg(test)]
mod tests {
    use herald::domain::counters::UserKey;
    use herald::fake::{Faults, InMemoryInbox, RecordingQueue};
    use herald::ports::CounterStore;
    use herald::{TenantId, UserId};
    use serde_json::json;

    use super::*;

    fn message(id: &str, user: &str, room: &str, channels: &[&str]) -> QueueMessage {
        let body = json!({"tenant": "t1", "id": id, "user_id": user, "room_id": room, "title": "Hi", "body": "b",
            "channels": channels, "created_at": "2026-11-23T00:00:00Z"});
        QueueMessage {
            message_id: format!("m-{id}"),
            receipt_handle: "h".into(),
            body: body.to_string(),
            receive_count: 1,
            trace_header: Some(format!("Root=1-00000000-{id:0>24};Sampled=1")),
        }
    }

    fn writer(faults: Faults) -> (InboxWriter, Arc<InMemoryInbox>, Arc<RecordingQueue>) {
        let store = Arc::new(InMemoryInbox::new(faults));
        let delivery = Arc::new(RecordingQueue::default());
        let w = InboxWriter {
            store: store.clone(),
            delivery: delivery.clone(),
            channel_queues: Vec::new(),
            policy: BackoffPolicy::default(),
            packing: Packing::default(),
            campaigns: None,
            preferences: None,
            step_schedulers: Vec::new(),
            digests: None,
        };
        (w, store, delivery)
    }

    /// A notification accepted `ago` before now with an escalation: inbox, email after
    /// 10 minutes, SMS after a day, each unless read.
    fn escalation(id: &str, ago: jiff::SignedDuration, body: &str) -> QueueMessage {
        let created_at = herald::domain::time::millis(jiff::Timestamp::now() - ago);
        let json = json!({"tenant": "t1", "id": id, "user_id": "u1", "room_id": "r1", "title": "Hi",
        "body": body, "channels": ["inbox", "email", "sms"], "created_at": created_at,
        "steps": [
            {"channel": "inbox"},
            {"channel": "email", "delay_seconds": 600, "unless": "read"},
            {"channel": "sms", "delay_seconds": 86_400, "unless": "read"}
        ]});
        QueueMessage {
            body: json.to_string(),
            ..message(id, "u1", "r1", &[])
        }
    }

    #[tokio::test]
    async fn steps_wait_on_the_queue_up_to_15_minutes_and_on_a_schedule_beyond() {
        let (mut w, _, email) = writer(Faults::default());
        let sms = Arc::new(RecordingQueue::default());
        let (email_schedules, sms_schedules) = (
            Arc::new(herald::fake::RecordingScheduler::default()),
            Arc::new(herald::fake::RecordingScheduler::default()),
        );
        w.channel_queues = vec![(Channel::Sms, sms.clone() as Arc<dyn QueueSender>)];
        w.step_schedulers = vec![
            (
                Channel::Email,
                email_schedules.clone() as Arc<dyn Scheduler>,
            ),
            (Channel::Sms, sms_schedules.clone() as Arc<dyn Scheduler>),
        ];
        let fresh = escalation("n1", jiff::SignedDuration::ZERO, "b");
        // Accepted 20 minutes ago and redelivered only now: the email step is due already.
        let late = escalation("n2", jiff::SignedDuration::from_mins(20), "b");
        let out = w.handle(&[fresh, late]).await;
        assert_eq!(out, vec![Disposition::Done, Disposition::Done]);

        let emails = email.sent.lock().unwrap().clone();
        assert_eq!(emails.len(), 2);
        let delay = emails[0].delay_seconds.unwrap();
        assert!((595..=600).contains(&delay), "{delay}");
        assert_eq!(emails[1].delay_seconds, None, "due: at once");
        let job: DeliveryJob = serde_json::from_str(&emails[0].body).unwrap();
        assert_eq!(job.unless, Some(herald::domain::workflow::Condition::Read));
        // A day out: one schedule per notification onto the SMS queue's scheduler, at the
        // step's time, holding the job; nothing on the SMS queue itself.
        assert!(sms.sent.lock().unwrap().is_empty());
        assert!(email_schedules.schedules.lock().unwrap().is_empty());
        let schedules = sms_schedules.schedules.lock().unwrap().clone();
        assert_eq!(schedules.len(), 2);
        let held: DeliveryJob = serde_json::from_str(&schedules[0].2).unwrap();
        assert_eq!(Some(schedules[0].1), held.due_at);
        assert_eq!(held.channel, Channel::Sms);
        assert!(schedules[0].0.len() <= 64 && schedules[0].0.starts_with("step-"));
        assert_ne!(schedules[0].0, schedules[1].0);
    }

    /// An email notification of user u1 digested under `post-1` for a minute.
    fn digested(id: &str) -> QueueMessage {
        let mut json: serde_json::Value =
            serde_json::from_str(&message(id, "u1", "r1", &["inbox", "email"]).body).unwrap();
        json["digest"] = json!({"key": "post-1", "window_seconds": 60});
        QueueMessage {
            body: json.to_string(),
            ..message(id, "u1", "r1", &[])
        }
    }

    #[tokio::test]
    async fn digested_events_join_one_window_whose_opener_alone_brings_the_jobs() {
        let (mut w, store, email) = writer(Faults::default());
        let digests = Arc::new(herald::fake::InMemoryDigests::default());
        w.digests = Some(digests.clone());
        let out = w.handle(&[digested("c1"), digested("c2")]).await;
        assert_eq!(out, vec![Disposition::Done, Disposition::Done]);
        // Every event is in the inbox at once.
        assert_eq!(
            store.read_counters(&key("u1")).await.unwrap().total.unread,
            2
        );
        // One email job: the window's, due when it closes, naming it.
        let jobs: Vec<DeliveryJob> = email
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|m| serde_json::from_str(&m.body).unwrap())
            .collect();
        assert_eq!(jobs.len(), 1);
        let digest = jobs[0].digest.clone().unwrap();
        assert_eq!(
            (digest.digest.key.as_str(), digest.window.as_str()),
            ("post-1", "c1")
        );
        assert!(jobs[0].due_at.is_some());
        assert_eq!(
            email.sent.lock().unwrap()[0].delay_seconds.map(|d| d > 55),
            Some(true)
        );
        // Redelivered (the first attempt died after joining): the opener brings its job
        // again (deliver's claim sends it once), the joiner nothing; nobody joins twice.
        let again = w.handle(&[digested("c2"), digested("c1")]).await;
        assert_eq!(again, vec![Disposition::Done, Disposition::Done]);
        assert_eq!(email.sent.lock().unwrap().len(), 2);
        let windows = digests.windows(&key("u1"));
        assert_eq!(
            windows.into_values().collect::<Vec<_>>(),
            vec![vec!["c1".to_owned(), "c2".to_owned()]]
        );
    }

    /// A workflow whose email step is a digest: the inbox and SMS go out for each event, the
    /// email once for the window, not before the step's own delay.
    #[tokio::test]
    async fn a_digest_step_bundles_its_channel_only_and_keeps_its_delay() {
        let (mut w, store, queue) = writer(Faults::default());
        w.digests = Some(Arc::new(herald::fake::InMemoryDigests::default()));
        let event = |id: &str| {
            let mut json: serde_json::Value =
                serde_json::from_str(&message(id, "u1", "r1", &["inbox", "email", "sms"]).body)
                    .unwrap();
            json["created_at"] = json!(herald::domain::time::millis(jiff::Timestamp::now()));
            json["steps"] = json!([
                {"channel": "inbox"},
                {"channel": "sms"},
                {"channel": "email", "delay_seconds": 600,
                 "digest": {"key": "post-1", "window_seconds": 60}}
            ]);
            QueueMessage {
                body: json.to_string(),
                ..message(id, "u1", "r1", &[])
            }
        };
        let out = w.handle(&[event("c1"), event("c2")]).await;
        assert_eq!(out, vec![Disposition::Done, Disposition::Done]);
        assert_eq!(
            store.read_counters(&key("u1")).await.unwrap().total.unread,
            2
        );
        let jobs: Vec<(DeliveryJob, Option<i32>)> = queue
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|m| (serde_json::from_str(&m.body).unwrap(), m.delay_seconds))
            .collect();
        let sms: Vec<_> = jobs
            .iter()
            .filter(|(j, _)| j.channel == Channel::Sms)
            .collect();
        assert_eq!(sms.len(), 2, "SMS for each event, at once");
        assert!(sms.iter().all(|(j, d)| j.digest.is_none() && d.is_none()));
        let email: Vec<_> = jobs
            .iter()
            .filter(|(j, _)| j.channel == Channel::Email)
            .collect();
        assert_eq!(email.len(), 1, "one email for the window");
        assert_eq!(email[0].0.digest.as_ref().unwrap().window, "c1");
        // The step's 10 minutes, not the window's 1.
        assert!(email[0].1.is_some_and(|d| d > 590), "{:?}", email[0].1);
    }

    #[tokio::test]
    async fn a_job_too_big_for_a_schedule_rides_the_queue_15_minutes_at_a_time() {
        let (mut w, _, email) = writer(Faults::default());
        let schedules = Arc::new(herald::fake::RecordingScheduler::default());
        w.step_schedulers = vec![(Channel::Email, schedules.clone() as Arc<dyn Scheduler>)];
        let big = escalation("n1", jiff::SignedDuration::ZERO, &"x".repeat(3_000));
        let mut json: serde_json::Value = serde_json::from_str(&big.body).unwrap();
        json["data"] = json!({"blob": "y".repeat(7_000)});
        let big = QueueMessage {
            body: json.to_string(),
            ..big
        };
        assert_eq!(w.handle(&[big]).await, vec![Disposition::Done]);
        assert!(schedules.schedules.lock().unwrap().is_empty());
        let sms: Vec<DeliveryJob> = email
            .sent
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.delay_seconds == Some(900))
            .map(|m| serde_json::from_str(&m.body).unwrap())
            .collect();
        assert_eq!(sms.len(), 1, "the day-long SMS step, 15 minutes at a time");
        assert_eq!(sms[0].channel, Channel::Sms);
    }

    #[tokio::test]
    async fn each_channel_goes_to_its_own_queue_and_twins_enqueue_once() {
        let (mut w, _, email) = writer(Faults::default());
        let (sms, push) = (
            Arc::new(RecordingQueue::default()),
            Arc::new(RecordingQueue::default()),
        );
        w.channel_queues = vec![
            (Channel::Sms, sms.clone() as Arc<dyn QueueSender>),
            (Channel::Push, push.clone() as Arc<dyn QueueSender>),
        ];
        let twin = message("n1", "u1", "r1", &["inbox", "email", "sms", "push"]);
        let batch = vec![twin.clone(), twin];
        assert_eq!(w.handle(&batch).await, vec![Disposition::Done; 2]);
        let channels = |q: &RecordingQueue| -> Vec<Channel> {
            q.bodies()
                .iter()
                .map(|b| serde_json::from_str::<DeliveryJob>(b).unwrap().channel)
                .collect()
        };
        assert_eq!(channels(&email), vec![Channel::Email]);
        assert_eq!(channels(&sms), vec![Channel::Sms]);
        assert_eq!(channels(&push), vec![Channel::Push]);
    }

    fn key(user: &str) -> UserKey {
        UserKey {
            tenant: TenantId::parse("t1", "t").unwrap(),
            user: UserId::parse(user, "u").unwrap(),
        }
    }

    #[tokio::test]
    async fn counts_once_and_enqueues_delivery_jobs() {
        let (w, store, delivery) = writer(Faults::default());
        let batch = vec![
            message("n1", "u1", "r1", &["inbox", "email"]),
            message("n2", "u1", "r1", &["inbox"]),
        ];
        assert_eq!(
            w.handle(&batch).await,
            vec![Disposition::Done, Disposition::Done]
        );
        assert_eq!(
            w.handle(&batch).await,
            vec![Disposition::Done, Disposition::Done],
            "redelivery is acked"
        );
        let counters = store.read_counters(&key("u1")).await.unwrap();
        assert_eq!(counters.unread().total, 2);
        let jobs: Vec<DeliveryJob> = delivery
            .bodies()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect();
        assert!(jobs
            .iter()
            .all(|j| j.channel == herald::Channel::Email && j.notification_id.as_str() == "n1"));
        assert_eq!(
            jobs.len(),
            2,
            "the duplicate re-enqueued its email job; deliver dedups it"
        );
        let traces: Vec<Option<String>> = delivery
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.trace_header.clone())
            .collect();
        assert_eq!(
            traces,
            vec![batch[0].trace_header.clone(); 2],
            "each job continues its notification's trace"
        );
    }

    #[tokio::test]
    async fn poison_is_isolated_from_the_rest_of_the_batch() {
        let (w, store, _) = writer(Faults::default());
        let mut bad = message("x", "u1", "r1", &["inbox"]);
        bad.body = "{not json".into();
        let out = w
            .handle(&[bad, message("n1", "u1", "r1", &["inbox"])])
            .await;
        assert!(matches!(&out[0], Disposition::Poison(r) if r.contains("not a notification")));
        assert_eq!(out[1], Disposition::Done);
        assert_eq!(
            store.read_counters(&key("u1")).await.unwrap().total.unread,
            1
        );
    }

    #[tokio::test]
    async fn constant_conflicts_end_as_retries_not_losses() {
        let (mut w, store, _) = writer(Faults {
            conflict: 1.0,
            ..Faults::default()
        });
        w.policy.budget = std::time::Duration::from_millis(50);
        let out = w.handle(&[message("n1", "u1", "r1", &["inbox"])]).await;
        assert!(
            matches!(&out[0], Disposition::Retry(r) if r.contains("budget")),
            "{out:?}"
        );
        assert_eq!(store.message_count(), 0);
    }

    #[tokio::test]
    async fn failed_delivery_enqueue_retries_the_message() {
        let (w, _, delivery) = writer(Faults::default());
        delivery
            .fail_all
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let out = w
            .handle(&[message("n1", "u1", "r1", &["inbox", "sms"])])
            .await;
        assert!(matches!(&out[0], Disposition::Retry(r) if r.contains("delivery enqueue")));
    }

    #[tokio::test]
    async fn opted_out_users_get_no_badge_and_an_inbox_off_user_still_gets_email() {
        use herald::domain::contact::Contact;
        use herald::fake::InMemoryDirectory;
        let (mut w, store, delivery) = writer(Faults::default());
        let directory = Arc::new(InMemoryDirectory::default());
        let t1 = TenantId::parse("t1", "t").unwrap();
        let mut no_marketing = Contact {
            email: Some("a@b.co".into()),
            ..Contact::default()
        };
        no_marketing.preferences.marketing = false;
        let mut inbox_off = Contact {
            email: Some("c@d.co".into()),
            ..Contact::default()
        };
        inbox_off.preferences.channels.insert(Channel::Inbox, false);
        for (user, contact) in [("u1", &no_marketing), ("u2", &inbox_off)] {
            directory
                .put_contact(&t1, &UserId::parse(user, "u").unwrap(), contact, user, 0)
                .await
                .unwrap();
        }
        w.preferences = Some(directory);
        let marketing = |id: &str, user: &str| {
            let mut m = message(id, user, "r1", &["inbox", "email"]);
            let mut body: serde_json::Value = serde_json::from_str(&m.body).unwrap();
            body["category"] = json!("marketing");
            m.body = body.to_string();
            m
        };
        let batch = vec![marketing("n1", "u1"), marketing("n2", "u2")];
        assert_eq!(w.handle(&batch).await, vec![Disposition::Done; 2]);
        for user in ["u1", "u2"] {
            let counters = store.read_counters(&key(user)).await.unwrap();
            assert_eq!(counters.unread().total, 0, "{user}: no badge");
        }
        let jobs: Vec<DeliveryJob> = delivery
            .bodies()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect();
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!(jobs[0].user_id.as_str(), "u2", "inbox off, email on");
    }

    /// A committed campaign notification whose mark was lost with its invocation, redelivered
    /// after its campaign was cancelled, counts as committed, not as skipped.
    #[tokio::test]
    async fn a_redelivery_after_a_cancel_counts_what_was_committed() {
        use herald::domain::campaign::{AudienceSpec, Campaign, CampaignRequest, CampaignStatus};
        use herald::fake::InMemoryCampaigns;
        use herald::ports::CampaignStore;
        let campaigns = Arc::new(InMemoryCampaigns::default());
        let now: jiff::Timestamp = "2026-03-01T12:00:00Z".parse().unwrap();
        let request = CampaignRequest::parse(
            &json!({"name": "n", "title": "T", "body": "B", "channels": ["inbox"],
                "audience": {"users": ["u1", "u2"]}, "send_at": "now"}),
            now,
        )
        .unwrap();
        let t1 = TenantId::parse("t1", "t").unwrap();
        let mut campaign = Campaign::new(
            t1.clone(),
            herald::domain::ids::CampaignId::generate(),
            &request,
            AudienceSpec::Inline {
                users: 2,
                chunks: 1,
            },
            now,
        );
        campaign.status = CampaignStatus::Running;
        campaigns
            .create_campaign(&campaign, &[], None)
            .await
            .unwrap();
        let message = |user: &str, slot: u32| {
            let n = campaign.notification_for(
                UserId::parse(user, "u").unwrap(),
                0,
                slot,
                "2026-03-01T12:00:00Z".parse().unwrap(),
            );
            QueueMessage {
                message_id: format!("m-{user}"),
                receipt_handle: "h".into(),
                body: serde_json::to_string(&n).unwrap(),
                receive_count: 1,
                trace_header: None,
            }
        };
        let store = Arc::new(InMemoryInbox::default());
        // u1's notification is committed, but its invocation dies before the mark.
        store
            .commit(&[UserWrites {
                user: key("u1"),
                messages: vec![serde_json::from_str(&message("u1", 0).body).unwrap()],
            }])
            .await
            .unwrap();
        campaigns
            .transition(
                &t1,
                &campaign.id,
                &[CampaignStatus::Running],
                CampaignStatus::Cancelled,
                jiff::Timestamp::UNIX_EPOCH,
                None,
            )
            .await
            .unwrap();
        let (mut w, _, _) = writer(Faults::default());
        w.store = store.clone();
        w.campaigns = Some(Arc::new(CampaignGate::new(campaigns.clone())));
        let out = w.handle(&[message("u1", 0), message("u2", 1)]).await;
        assert_eq!(out, vec![Disposition::Done; 2]);
        let stored = campaigns
            .campaign(&t1, &campaign.id)
            .await
            .unwrap()
            .unwrap();
        let progress = campaigns.progress(&stored).await.unwrap();
        assert_eq!(progress.committed, 1, "u1 is in the inbox: {progress:?}");
        assert_eq!(
            progress.skipped_by.get("cancelled"),
            Some(&1),
            "u2 never was"
        );
    }
}
