//! campaigns: consumes the campaign queue. A campaign's schedule puts a `start` there; each
//! `page` reads the next users from the audience (inline chunks or an S3 file, a range at a
//! time), enqueues one notification per user on the marketing queue, records the page once
//! (which makes the progress exact under retries) and queues the page after it. Notification
//! ids are deterministic, so a page done twice still counts each user once. Each campaign has
//! one page on the queue at a time, so campaigns that start together interleave. With
//! `local_time`, users whose time is hours away are held and released by a schedule of their
//! own. An audience file that can no longer be read as pinned fails the campaign (`failure`).

use std::sync::Arc;

mod failure;

use async_trait::async_trait;
use herald::config::{ConfigError, Vars};
use herald::consumer::{BatchHandler, Disposition, QueueConfig, QueueMessage};
use herald::domain::campaign::fanout::{
    after_page, page_step, recipients, release_step, AfterPage, AudiencePage, Enqueue, PageStep,
    Recipient, ReleaseStep,
};
use herald::domain::campaign::{
    AudienceSpec, Campaign, CampaignStatus, CampaignWork, INLINE_CHUNK,
};
use herald::domain::ids::UserId;
use herald::ports::{
    AudienceError, AudienceFiles, CampaignStore, Clock, Directory, OutgoingMessage, QueueSender,
    Scheduler, SystemClock,
};
use herald::telemetry::Metric;
use herald::StoreError;

#[derive(Debug, Clone)]
pub struct Config {
    pub directory_table: String,
    /// The campaign queue this function consumes (and queues next pages on).
    pub queue: QueueConfig,
    /// Where campaign notifications go: the marketing notifications queue.
    pub marketing_queue_url: String,
    /// Campaign schedules: their group, target queue and role.
    pub schedules: herald::aws::scheduler::ScheduleTarget,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            directory_table: vars.required("DIRECTORY_TABLE")?,
            queue: QueueConfig::from_vars(vars, "CAMPAIGN_QUEUE_URL", "CAMPAIGN_DLQ_URL")?,
            marketing_queue_url: vars.required("MARKETING_QUEUE_URL")?,
            schedules: herald::aws::scheduler::ScheduleTarget::from_vars(vars)?,
        })
    }
}

/// The queue message a work item came in: its id claims the steps it takes, its trace
/// header goes on what it enqueues.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    pub message_id: &'a str,
    pub trace: Option<&'a str>,
}

/// The handler and what it talks to.
pub struct CampaignRunner {
    pub campaigns: Arc<dyn CampaignStore>,
    /// Contacts: recipients' time zones for `local_time`.
    pub directory: Arc<dyn Directory>,
    pub audiences: Arc<dyn AudienceFiles>,
    pub scheduler: Arc<dyn Scheduler>,
    /// The campaign queue: the next page goes here.
    pub work: Arc<dyn QueueSender>,
    /// The marketing notifications queue.
    pub notifications: Arc<dyn QueueSender>,
    pub clock: Arc<dyn Clock>,
}

impl CampaignRunner {
    pub fn from_aws(config: &Config, aws: &aws_config::SdkConfig) -> Self {
        let ddb = aws_sdk_dynamodb::Client::new(aws);
        let sqs = aws_sdk_sqs::Client::new(aws);
        Self {
            campaigns: Arc::new(herald::aws::campaigns::DynamoCampaigns::new(
                ddb.clone(),
                &config.directory_table,
            )),
            directory: Arc::new(herald::aws::directory::DynamoDirectory::new(
                ddb,
                &config.directory_table,
            )),
            audiences: Arc::new(herald::aws::s3::S3Audiences::from_aws(aws)),
            scheduler: Arc::new(herald::aws::scheduler::EventBridgeScheduler::new(
                aws_sdk_scheduler::Client::new(aws),
                &config.schedules,
            )),
            work: Arc::new(herald::aws::sqs::SqsSender::new(
                sqs.clone(),
                &config.queue.queue_url,
            )),
            notifications: Arc::new(herald::aws::sqs::SqsSender::new(
                sqs,
                &config.marketing_queue_url,
            )),
            clock: Arc::new(SystemClock),
        }
    }
}

#[async_trait]
impl BatchHandler for CampaignRunner {
    async fn handle(&self, batch: &[QueueMessage]) -> Vec<Disposition> {
        let mut out = Vec::with_capacity(batch.len());
        for message in batch {
            let disposition = match serde_json::from_str::<CampaignWork>(&message.body) {
                Err(e) => Disposition::Poison(format!("not campaign work: {e}")),
                Ok(work) => {
                    let span = tracing::info_span!(
                        "campaign",
                        message_id = %message.message_id,
                        tenant = %work.tenant(),
                        campaign = %work.campaign(),
                    );
                    let step = Step {
                        message_id: &message.message_id,
                        trace: message.trace_header.as_deref(),
                    };
                    let result = tracing::Instrument::instrument(self.run(&work, step), span).await;
                    result.unwrap_or_else(|e| Disposition::Retry(e.to_string()))
                }
            };
            out.push(disposition);
        }
        out
    }
}

impl CampaignRunner {
    /// One work item; an error leaves it on the queue to be retried. What it enqueues
    /// carries the item's X-Ray trace header, so a campaign's pages and notifications stay
    /// in the trace that started it. The item's queue message id claims the step that
    /// queues the next item: a duplicate message never starts a second chain.
    pub async fn run(
        &self,
        work: &CampaignWork,
        step: Step<'_>,
    ) -> Result<Disposition, StoreError> {
        let Some(campaign) = self
            .campaigns
            .campaign(work.tenant(), work.campaign())
            .await?
        else {
            return Ok(Disposition::Poison("no such campaign".into()));
        };
        if matches!(
            campaign.status,
            CampaignStatus::Cancelled | CampaignStatus::Failed
        ) {
            tracing::info!(
                status = campaign.status.as_str(),
                "campaign stopped: nothing to do"
            );
            return Ok(Disposition::Done);
        }
        match work {
            CampaignWork::Start { .. } => self.start(&campaign, step).await,
            CampaignWork::Page { page, cursor, .. } => {
                self.page(&campaign, *page, *cursor, step).await
            }
            CampaignWork::Release { at, after, .. } => {
                self.release(&campaign, *at, after.as_deref(), step).await
            }
        }
    }

    /// The schedule fired: the campaign runs, and its first page goes on the queue.
    async fn start(&self, campaign: &Campaign, step: Step<'_>) -> Result<Disposition, StoreError> {
        let now = self.clock.now();
        let started = self
            .campaigns
            .transition(
                &campaign.tenant,
                &campaign.id,
                &[CampaignStatus::Scheduled],
                CampaignStatus::Running,
                now,
                None,
            )
            .await?;
        if started {
            tracing::info!(audience = ?campaign.audience, "campaign started");
        } else if campaign.status != CampaignStatus::Running {
            return Ok(Disposition::Done);
        }
        // The start message that queues page 0 is the one that claims it: a second start
        // (a duplicate, or the schedule firing twice) finds it taken; a redelivery of the
        // first (it died before queueing) takes it again.
        if !self.claim(campaign, "start", step).await? {
            tracing::info!("another start message queued page 0: nothing to do");
            return Ok(Disposition::Done);
        }
        let first = CampaignWork::Page {
            tenant: campaign.tenant.clone(),
            campaign: campaign.id.clone(),
            page: 0,
            cursor: 0,
        };
        self.queue_work(&first, "page", 0, step.trace).await?;
        Ok(Disposition::Done)
    }

    /// Claims fan-out step `name` for this message.
    async fn claim(
        &self,
        campaign: &Campaign,
        name: &str,
        step: Step<'_>,
    ) -> Result<bool, StoreError> {
        self.campaigns
            .claim_step(&campaign.tenant, &campaign.id, name, step.message_id)
            .await
    }

    /// One page: read its users (and their zones), let `fanout::page_step` decide, then
    /// enqueue, schedule, record once, and queue the next page as `fanout::after_page` says.
    async fn page(
        &self,
        campaign: &Campaign,
        page: u32,
        cursor: u64,
        step: Step<'_>,
    ) -> Result<Disposition, StoreError> {
        let now = self.clock.now();
        let audience = match self.read_audience(campaign, cursor).await {
            Ok(read) => read,
            Err(AudienceError::Unreadable(why)) => return self.fail(campaign, page, &why).await,
            Err(AudienceError::Store(e)) => return Err(e),
        };
        let users = audience.users.clone();
        let recipients = self.recipients(campaign, users).await?;
        let PageStep {
            enqueue,
            schedules,
            record,
        } = page_step(campaign, page, audience, recipients, now);

        // Enqueue first, record after: a crash in between redoes the page, and the
        // deterministic ids make that a no-op downstream.
        self.enqueue(enqueue, step.trace).await?;
        for schedule in schedules {
            let payload = serde_json::to_string(&schedule.work)
                .map_err(|e| StoreError::Fatal(e.to_string()))?;
            self.scheduler
                .schedule_once(&schedule.name, schedule.fire, &payload)
                .await?;
        }
        let users = record.users;
        let recorded = match self
            .campaigns
            .record_page(&campaign.tenant, &campaign.id, &record)
            .await?
        {
            None => record,
            Some(earlier) => {
                tracing::info!(page, "page was recorded before: counted once");
                earlier
            }
        };
        herald::telemetry::emit(
            "campaigns",
            &[],
            &[
                Metric::count("CampaignNotificationsEnqueued", recorded.enqueued as usize),
                Metric::count(
                    "CampaignRecipientsHeld",
                    users.saturating_sub(recorded.enqueued) as usize,
                ),
            ],
        );
        match after_page(campaign, &recorded) {
            AfterPage::FannedOut => {
                self.campaigns
                    .mark_fanned_out(&campaign.tenant, &campaign.id, self.clock.now())
                    .await?;
                tracing::info!(page, "fan-out complete");
            }
            AfterPage::NextQueued => {}
            AfterPage::Next { work, delay } => {
                // One message of this page queues the next: a duplicate finds it claimed.
                if self.claim(campaign, &format!("page#{page}"), step).await? {
                    self.queue_work(&work, "page", delay, step.trace).await?;
                    self.campaigns
                        .mark_next_sent(&campaign.tenant, &campaign.id, page)
                        .await?;
                }
            }
        }
        Ok(Disposition::Done)
    }

    /// A release schedule fired (or a release's previous part queued this one): the next
    /// group of users held for `at` (one page's, at most `PAGE_USERS`) goes out, spread at
    /// the campaign's rate, and the part after it is queued once the group's time has
    /// passed (`fanout::release_step`). Each invocation does one group, whatever the
    /// audience size.
    async fn release(
        &self,
        campaign: &Campaign,
        at: jiff::Timestamp,
        after: Option<&str>,
        step: Step<'_>,
    ) -> Result<Disposition, StoreError> {
        // This position of the release is one message's: a duplicate (or the schedule
        // firing twice) finds it taken and stops, so one chain goes, at the set pace.
        let position = format!(
            "release#{}#{}",
            herald::domain::time::compact(at),
            after.unwrap_or("first")
        );
        if !self.claim(campaign, &position, step).await? {
            tracing::info!(%at, "another message holds this part of the release");
            return Ok(Disposition::Done);
        }
        let Some(group) = self
            .campaigns
            .held(&campaign.tenant, &campaign.id, at, after, 1)
            .await?
            .pop()
        else {
            tracing::info!(%at, "release complete");
            return Ok(Disposition::Done);
        };
        let ReleaseStep {
            enqueue,
            next,
            next_delay,
        } = release_step(campaign, at, &group, self.clock.now());
        // Released by an earlier attempt of this message: only the next part is left to queue.
        if !enqueue.is_empty() {
            self.enqueue(enqueue, step.trace).await?;
            self.campaigns
                .release_group(
                    &campaign.tenant,
                    &campaign.id,
                    &group.key,
                    group.recipients.len() as u64,
                )
                .await?;
        }
        self.queue_work(&next, "release", next_delay, step.trace)
            .await?;
        Ok(Disposition::Done)
    }

    /// Campaign notifications onto the marketing queue, each with its delay.
    async fn enqueue(&self, enqueue: Vec<Enqueue>, trace: Option<&str>) -> Result<(), StoreError> {
        let messages = enqueue
            .into_iter()
            .map(|e| {
                let mut m = OutgoingMessage::json(e.slot.to_string(), &e.notification)
                    .map_err(|e| StoreError::Fatal(e.to_string()))?;
                m.delay_seconds = (e.delay > 0).then_some(e.delay as i32);
                Ok(m)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.send_all(&self.notifications, messages, trace).await
    }

    /// Work onto the campaign queue, `delay` seconds from now.
    async fn queue_work(
        &self,
        work: &CampaignWork,
        id: &str,
        delay: u32,
        trace: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut message =
            OutgoingMessage::json(id, work).map_err(|e| StoreError::Fatal(e.to_string()))?;
        message.delay_seconds = (delay > 0).then_some(delay as i32);
        self.send_all(&self.work, vec![message], trace).await
    }

    async fn send_all(
        &self,
        queue: &Arc<dyn QueueSender>,
        mut messages: Vec<OutgoingMessage>,
        trace: Option<&str>,
    ) -> Result<(), StoreError> {
        for message in &mut messages {
            message.trace_header = trace.map(str::to_owned);
        }
        for result in queue.send(&messages).await {
            result.map_err(|e| StoreError::Transient(format!("enqueue: {e}")))?;
        }
        Ok(())
    }

    /// The next users from `cursor`.
    async fn read_audience(
        &self,
        campaign: &Campaign,
        cursor: u64,
    ) -> Result<AudiencePage, AudienceError> {
        let max = campaign.page_users();
        match &campaign.audience {
            AudienceSpec::Inline { users, chunks } => {
                // The cursor is the index of the next user across the chunks.
                let mut taken = Vec::with_capacity(max);
                let mut at = cursor;
                while taken.len() < max && at < *users {
                    let chunk = (at / INLINE_CHUNK as u64) as u32;
                    if chunk >= *chunks {
                        break;
                    }
                    let stored = self
                        .campaigns
                        .audience_chunk(&campaign.tenant, &campaign.id, chunk)
                        .await?;
                    let from = (at % INLINE_CHUNK as u64) as usize;
                    let want = max - taken.len();
                    let part: Vec<UserId> = stored.into_iter().skip(from).take(want).collect();
                    if part.is_empty() {
                        break;
                    }
                    at += part.len() as u64;
                    taken.extend(part);
                }
                Ok(AudiencePage {
                    users: taken,
                    invalid: 0,
                    next_cursor: at,
                    last: at >= *users,
                })
            }
            AudienceSpec::S3 {
                bucket,
                key,
                column,
                etag,
            } => {
                let read = self
                    .audiences
                    .read(bucket, key, etag.as_deref(), *column, cursor, max)
                    .await?;
                for (offset, why) in &read.invalid {
                    tracing::warn!(offset, %why, "audience line skipped: not a user id");
                }
                Ok(AudiencePage {
                    invalid: read.invalid.len() as u64,
                    users: read.users,
                    next_cursor: read.next,
                    last: read.end,
                })
            }
        }
    }

    /// The page's users with their slots and, for `local_time`, their contacts' zones.
    async fn recipients(
        &self,
        campaign: &Campaign,
        users: Vec<UserId>,
    ) -> Result<Vec<Recipient>, StoreError> {
        if !campaign.local_time {
            return Ok(recipients(users, |_| None));
        }
        // The page's contacts in BatchGetItems of 100, not a read per user.
        let mut contacts = self.directory.contacts(&campaign.tenant, &users).await?;
        Ok(recipients(users, |user| {
            contacts.remove(user).and_then(|c| c.timezone)
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use herald::domain::campaign::fanout::PageRecord;
    use herald::domain::campaign::CampaignRequest;
    use herald::domain::ids::{CampaignId, TenantId};
    use herald::fake::{
        FixedClock, InMemoryAudiences, InMemoryCampaigns, InMemoryDirectory, RecordingQueue,
        RecordingScheduler,
    };
    use serde_json::json;

    use super::*;

    fn step(id: &str) -> Step<'_> {
        Step {
            message_id: id,
            trace: None,
        }
    }

    /// A runner over in-memory adapters at `now`.
    fn runner(
        campaigns: &Arc<InMemoryCampaigns>,
        work: &Arc<RecordingQueue>,
        notifications: &Arc<RecordingQueue>,
        now: jiff::Timestamp,
    ) -> CampaignRunner {
        CampaignRunner {
            campaigns: campaigns.clone(),
            directory: Arc::new(InMemoryDirectory::default()),
            audiences: Arc::new(InMemoryAudiences::default()),
            scheduler: Arc::new(RecordingScheduler::default()),
            work: work.clone(),
            notifications: notifications.clone(),
            clock: Arc::new(FixedClock(now)),
        }
    }

    /// A campaign of tenant acme as a request with `extra` fields makes it (not stored).
    fn campaign(now: jiff::Timestamp, extra: serde_json::Value) -> Campaign {
        let mut body = json!({"name": "n", "title": "T", "body": "B", "channels": ["inbox"],
            "audience": {"users": ["a"]}, "send_at": "now"});
        for (k, v) in extra.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        let request = CampaignRequest::parse(&body, now).unwrap();
        Campaign::new(
            TenantId::parse("acme", "tenant").unwrap(),
            CampaignId::generate(),
            &request,
            AudienceSpec::Inline {
                users: 1,
                chunks: 1,
            },
            now,
        )
    }

    /// A duplicate release message (the schedule firing twice) starts no second chain, and a
    /// redelivered one does not jump ahead: each group goes once, in order, one at a time.
    #[tokio::test]
    async fn a_release_is_one_chain_whatever_its_duplicates_and_redeliveries() {
        let campaigns = Arc::new(InMemoryCampaigns::default());
        let (work, notifications) = (
            Arc::new(RecordingQueue::default()),
            Arc::new(RecordingQueue::default()),
        );
        let now: jiff::Timestamp = "2026-03-01T12:00:00Z".parse().unwrap();
        let runner = runner(&campaigns, &work, &notifications, now);
        let mut campaign = campaign(now, json!({}));
        let tenant = campaign.tenant.clone();
        campaign.status = CampaignStatus::Running;
        campaigns
            .create_campaign(&campaign, &[], None)
            .await
            .unwrap();
        let at: jiff::Timestamp = "2026-03-01T18:00:00Z".parse().unwrap();
        for page in 0..2u32 {
            let held = vec![
                (0, UserId::parse(format!("p{page}-a"), "u").unwrap()),
                (1, UserId::parse(format!("p{page}-b"), "u").unwrap()),
            ];
            let record = PageRecord {
                page,
                users: 2,
                enqueued: 0,
                invalid: 0,
                next_cursor: 0,
                last: page == 1,
                held: vec![(at, held)],
                next_sent: true,
            };
            campaigns
                .record_page(&tenant, &campaign.id, &record)
                .await
                .unwrap();
        }
        let first = CampaignWork::Release {
            tenant: tenant.clone(),
            campaign: campaign.id.clone(),
            at,
            after: None,
        };
        runner.run(&first, step("m1")).await.unwrap();
        assert_eq!(notifications.bodies().len(), 2, "page 0's group");
        // The schedule fired twice: the duplicate finds the first part taken.
        runner.run(&first, step("m2")).await.unwrap();
        // m1 redelivered (its ack was lost): page 0's group again? no; page 1's? not yet.
        runner.run(&first, step("m1")).await.unwrap();
        assert_eq!(
            notifications.bodies().len(),
            2,
            "nothing more, nothing ahead"
        );
        // The next part, queued (twice, by m1's two attempts): page 1's group, once.
        let next: Vec<CampaignWork> = work
            .bodies()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect();
        assert_eq!(next.len(), 2, "{next:?}");
        for (i, part) in next.iter().enumerate() {
            runner.run(part, step(&format!("next-{i}"))).await.unwrap();
        }
        let users: Vec<String> = notifications
            .bodies()
            .iter()
            .map(|b| serde_json::from_str::<serde_json::Value>(b).unwrap()["user_id"].to_string())
            .collect();
        assert_eq!(users.len(), 4, "{users:?}");
        let stored = campaigns
            .campaign(&tenant, &campaign.id)
            .await
            .unwrap()
            .unwrap();
        let progress = campaigns.progress(&stored).await.unwrap();
        assert_eq!((progress.enqueued, progress.held), (4, 0));
    }

    /// A second `Start` of a running campaign (a duplicate, or the schedule firing twice)
    /// queues no second page 0; a redelivery of the first queues it again (it may have died
    /// before), and its duplicate is stopped at page 0's next step.
    #[tokio::test]
    async fn a_second_start_starts_no_second_chain() {
        let campaigns = Arc::new(InMemoryCampaigns::default());
        let work = Arc::new(RecordingQueue::default());
        let now: jiff::Timestamp = "2026-03-01T12:00:00Z".parse().unwrap();
        let runner = runner(&campaigns, &work, &Arc::new(RecordingQueue::default()), now);
        let campaign = campaign(now, json!({}));
        let tenant = campaign.tenant.clone();
        campaigns
            .create_campaign(&campaign, &[], None)
            .await
            .unwrap();
        let start = CampaignWork::Start {
            tenant,
            campaign: campaign.id.clone(),
        };
        runner.run(&start, step("s1")).await.unwrap();
        runner.run(&start, step("s2")).await.unwrap();
        assert_eq!(work.bodies().len(), 1, "one page 0");
        runner.run(&start, step("s1")).await.unwrap();
        assert_eq!(
            work.bodies().len(),
            2,
            "the first start, redelivered, queues it again"
        );
    }
}
