//! deliver: consumes the delivery queue. Honors preferences, suppression and quiet hours,
//! sends email through SES v2 and SMS/push through SNS, records the outcome per channel.
//! Throttling becomes a retry later; a permanent rejection goes to the DLQ with its reason.
//! Workflow steps wait until due and are skipped when their condition holds (`unless: read`,
//! `unless: seen`); sends are held to the tenant's frequency caps; a digest's job seals its
//! window and sends its events as one message.

use std::sync::Arc;

mod channels;

use async_trait::async_trait;
use herald::config::{ConfigError, Vars};
use herald::consumer::{BatchHandler, Disposition, QueueConfig, QueueMessage};
use herald::domain::backoff::BackoffPolicy;
use herald::domain::campaign::ProgressMark;
use herald::domain::caps::{admit, Admission};
use herald::domain::contact::Contact;
use herald::domain::counters::UserKey;
use herald::domain::delivery::outcome::Outcome;
use herald::domain::delivery::outcome::{
    after_send, campaign_mark, retry_plan, state_metric, AfterSend, RetryPlan, Settled,
};
use herald::domain::delivery::{decide, Decision, DeliveryJob, SkipReason};
use herald::domain::device::push_endpoints;
use herald::domain::digest::{summary, DigestRef, MAX_LISTED_EVENTS};
use herald::domain::email::{bulk_template, BulkTemplate};
use herald::domain::time;
use herald::domain::workflow::Condition;
use herald::ports::{
    CapKey, Claim, Clock, DeliveryRecord, DeliveryState, DeviceRegistry, Digests, Directory, Email,
    EmailSender, FrequencyCaps, LinkKeys, MessageLog, MobileSender, OutgoingMessage, QueueSender,
    SendError, SystemClock, MAX_BULK_RECIPIENTS,
};
use herald::progress::CampaignGate;
use herald::telemetry::Metric;
use herald::{Channel, StoreError};

/// A digest's events keep this much of their bodies in the message (50 events stay well
/// under a queue message's 256 KiB when the job is put back).
const DIGEST_EVENT_BODY_CHARS: usize = 300;
/// SQS's longest per-message delay; longer quiet hours re-defer on the next receive.
const MAX_DELAY_SECONDS: u32 = 900;
/// A claim older than this was abandoned (its holder died mid-send): longer than the
/// function's 30 s timeout, so a live holder is never overtaken.
const CLAIM_STALE_SECONDS: i64 = 90;

#[derive(Debug, Clone)]
pub struct Config {
    pub directory_table: String,
    /// The delivery queue this function consumes (and requeues deferred jobs to).
    pub queue: QueueConfig,
    pub email_from: String,
    pub ses_configuration_set: Option<String>,
    /// Where one-click unsubscribe links in marketing email point: `UNSUBSCRIBE_URL`, else
    /// herald's own `/v1/unsubscribe` on the API `API_ID` names.
    pub unsubscribe_url: Option<String>,
    /// `UNSUBSCRIBE_SECRET_ARN`: the secret that signs those links.
    pub unsubscribe_secret: Option<String>,
    /// `THROTTLE_RETRY_HOURS` (default 24): how long a throttled job keeps being retried.
    pub give_up_after: std::time::Duration,
    /// `BATCH_BUDGET_SECONDS` (default 20): how long one invocation keeps starting jobs.
    pub batch_budget: std::time::Duration,
    /// `INBOX_TABLE`: where a workflow step `unless: read` checks the notification.
    pub inbox_table: Option<String>,
    /// `SES_BULK_EMAIL` (default true): campaign emails that share a template go out through
    /// `SendBulkEmail`; `false` sends each alone (an endpoint without it, like the emulator).
    pub ses_bulk: bool,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            directory_table: vars.required("DIRECTORY_TABLE")?,
            queue: QueueConfig::from_vars(vars, "DELIVERY_QUEUE_URL", "DELIVERY_DLQ_URL")?,
            email_from: vars.required("EMAIL_FROM")?,
            ses_configuration_set: vars.optional("SES_CONFIGURATION_SET"),
            unsubscribe_url: vars
                .optional("UNSUBSCRIBE_URL")
                .or_else(|| api_unsubscribe_url(vars)),
            unsubscribe_secret: vars.optional("UNSUBSCRIBE_SECRET_ARN"),
            give_up_after: std::time::Duration::from_secs(
                3600 * vars.parsed_or::<u64>("THROTTLE_RETRY_HOURS", 24)?,
            ),
            batch_budget: std::time::Duration::from_secs(
                vars.parsed_or::<u64>("BATCH_BUDGET_SECONDS", 20)?,
            ),
            inbox_table: vars.optional("INBOX_TABLE"),
            ses_bulk: vars.parsed_or::<bool>("SES_BULK_EMAIL", true)?,
        })
    }
}

/// `https://<API_ID>.execute-api.<region>.<suffix>/v1/unsubscribe`, when deployed.
fn api_unsubscribe_url(vars: &Vars) -> Option<String> {
    let api = vars.optional("API_ID")?;
    let region = vars.optional("AWS_REGION")?;
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    Some(format!(
        "https://{api}.execute-api.{region}.{suffix}/v1/unsubscribe"
    ))
}

pub struct Deliverer {
    pub directory: Arc<dyn Directory>,
    pub email: Arc<dyn EmailSender>,
    pub mobile: Arc<dyn MobileSender>,
    /// The delivery queue itself, for jobs held back by quiet hours.
    pub requeue: Arc<dyn QueueSender>,
    /// Marketing email gets a signed one-click unsubscribe link when both are set.
    pub unsubscribe: Option<(String, Arc<dyn LinkKeys>)>,
    /// Quiet hours and record times are read off this clock.
    pub clock: Arc<dyn Clock>,
    /// How long throttled jobs are retried before they fail.
    pub give_up_after: std::time::Duration,
    /// Campaign jobs: skipped once their campaign is cancelled, marked when settled.
    pub campaigns: Option<Arc<CampaignGate>>,
    /// Registered push devices: a push goes to the contact's endpoints and these.
    pub devices: Option<Arc<dyn DeviceRegistry>>,
    /// Jobs are started within this long of the invocation's start; the rest are handed
    /// back for the next one. It stays below the function's timeout (30 s), because a batch
    /// slowed down by throttling would otherwise be stopped whole by Lambda and come back
    /// only after the queue's visibility timeout.
    pub batch_budget: std::time::Duration,
    /// The message log: a workflow step `unless: read` is skipped once the user read it.
    pub inbox: Option<Arc<dyn MessageLog>>,
    /// The tenant's frequency caps and each user's sends under them.
    pub caps: Option<Arc<dyn FrequencyCaps>>,
    /// Digest windows: a digest's job, when due, seals its window and sends its events.
    pub digests: Option<Arc<dyn Digests>>,
}

impl Deliverer {
    pub fn from_aws(config: &Config, aws: &aws_config::SdkConfig) -> Self {
        let ddb = aws_sdk_dynamodb::Client::new(aws);
        Self {
            directory: Arc::new(herald::aws::directory::DynamoDirectory::new(
                ddb.clone(),
                &config.directory_table,
            )),
            campaigns: Some(Arc::new(CampaignGate::new(Arc::new(
                herald::aws::campaigns::DynamoCampaigns::new(ddb, &config.directory_table),
            )))),
            email: Arc::new(
                herald::aws::ses::SesEmail::new(
                    aws_sdk_sesv2::Client::from_conf(
                        aws_sdk_sesv2::config::Builder::from(aws)
                            .retry_config(no_sdk_retries())
                            .build(),
                    ),
                    &config.email_from,
                    config.ses_configuration_set.clone(),
                )
                .with_bulk(config.ses_bulk),
            ),
            mobile: Arc::new(herald::aws::sns::SnsMobile::new(
                aws_sdk_sns::Client::from_conf(
                    aws_sdk_sns::config::Builder::from(aws)
                        .retry_config(no_sdk_retries())
                        .build(),
                ),
            )),
            requeue: Arc::new(herald::aws::sqs::SqsSender::new(
                aws_sdk_sqs::Client::new(aws),
                &config.queue.queue_url,
            )),
            unsubscribe: config
                .unsubscribe_url
                .clone()
                .zip(config.unsubscribe_secret.as_ref())
                .map(|(url, secret)| {
                    let keys: Arc<dyn LinkKeys> =
                        Arc::new(herald::aws::secrets::SecretsManagerKeys::new(
                            aws_sdk_secretsmanager::Client::new(aws),
                            secret,
                        ));
                    (url, keys)
                }),
            clock: Arc::new(SystemClock),
            give_up_after: config.give_up_after,
            batch_budget: config.batch_budget,
            devices: Some(Arc::new(herald::aws::devices::DynamoDevices::new(
                aws_sdk_dynamodb::Client::new(aws),
                &config.directory_table,
            ))),
            inbox: config.inbox_table.as_ref().map(|table| {
                let log: Arc<dyn MessageLog> = Arc::new(herald::aws::dynamodb::DynamoInbox::new(
                    aws_sdk_dynamodb::Client::new(aws),
                    table,
                    // Only read here: the retention applies to writes.
                    herald::config::DEFAULT_RETENTION_DAYS,
                ));
                log
            }),
            caps: Some(Arc::new(herald::aws::workflows::DynamoWorkflows::new(
                aws_sdk_dynamodb::Client::new(aws),
                &config.directory_table,
            ))),
            digests: Some(Arc::new(herald::aws::digests::DynamoDigests::new(
                aws_sdk_dynamodb::Client::new(aws),
                &config.directory_table,
            ))),
        }
    }
}

/// Provider clients make one attempt per send: the SDK's own retries resend after a timeout
/// or a 5xx, whose first attempt may have gone out. Throttling is retried through the queue.
fn no_sdk_retries() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::disabled()
}

#[async_trait]
impl BatchHandler for Deliverer {
    /// Jobs one at a time, but a campaign's emails: each is prepared (decided, claimed,
    /// rendered), and those that share a template go out together in bulk sends once the
    /// batch is through, each settled from its own result.
    async fn handle(&self, batch: &[QueueMessage]) -> Vec<Disposition> {
        let mut out: Vec<Option<Disposition>> = vec![None; batch.len()];
        let mut bulk = Vec::new();
        let started = std::time::Instant::now();
        for (i, message) in batch.iter().enumerate() {
            let disposition = match serde_json::from_str::<DeliveryJob>(&message.body) {
                Err(e) => Disposition::Poison(format!("not a delivery job: {e}")),
                // The time budget is spent: the job goes back as a new message, untouched,
                // so a job never attempted spends none of its queue's receives.
                Ok(job) if started.elapsed() >= self.batch_budget => self.requeue(&job, 1).await,
                Ok(job) => {
                    let span = tracing::info_span!(
                        "deliver",
                        message_id = %message.message_id,
                        tenant = %job.tenant,
                        user = %job.user_id,
                        notification_id = %job.notification_id,
                        channel = job.channel.as_str(),
                        correlation_id = job.correlation_id.as_deref().unwrap_or_default(),
                    );
                    if job.campaign.is_some() && job.channel == Channel::Email {
                        let prepared =
                            tracing::Instrument::instrument(self.prepare_email(&job), span).await;
                        match prepared {
                            Ok(ready) => {
                                bulk.push((i, ready));
                                continue;
                            }
                            Err(disposition) => disposition,
                        }
                    } else {
                        tracing::Instrument::instrument(self.deliver(&job), span).await
                    }
                }
            };
            out[i] = Some(disposition);
        }
        for (i, disposition) in self.send_in_bulk(bulk).await {
            out[i] = Some(disposition);
        }
        out.into_iter()
            .map(|d| d.unwrap_or_else(|| Disposition::Retry("not handled".into())))
            .collect()
    }
}

impl Deliverer {
    /// One job: decide, claim, send, settle. The claim (a conditional write on the job's
    /// record, with a token of this attempt) makes each (notification, user, channel) go out
    /// at most once however many copies of the job arrive: only the holder of the claim
    /// sends, and only it moves the record on (claimed → sent, skipped, failed or unknown; or
    /// back to retrying when the provider said "not now"), each move conditional on its
    /// token. A copy that did not claim never writes. Throttling puts the job back with a
    /// delay instead of spending the queue's receives.
    pub async fn deliver(&self, job: &DeliveryJob) -> Disposition {
        match self.prepare(job).await {
            Step::Done(disposition) => disposition,
            Step::Ready(ready) => {
                self.send_claimed(
                    &ready.job,
                    ready.held,
                    ready.locale.as_deref(),
                    ready.addresses,
                )
                .await
            }
        }
    }

    /// `deliver` up to the send: decided, claimed and admitted under the caps, the job is
    /// `Ready`; anything else has ended (`Done`) with its disposition.
    async fn prepare(&self, job: &DeliveryJob) -> Step {
        // A workflow step that arrived early (it rode the queue, 15 minutes at most a time)
        // goes back until it is due.
        let wait = job.wait_seconds(self.clock.now());
        if wait > 0 {
            return Step::Done(self.requeue(job, wait).await);
        }
        // A digest's job, due: its window's events become the message.
        let digest_job;
        let job = match &job.digest {
            Some(digest) => match self.digest_message(job, digest).await {
                Ok(message) => {
                    digest_job = message;
                    &digest_job
                }
                Err(e) => return Step::Done(self.store_fault(job, e).await),
            },
            None => job,
        };
        let cancelled = match (&self.campaigns, &job.campaign) {
            (Some(gate), Some(at)) => match gate.cancelled(&job.tenant, &at.id).await {
                Ok(cancelled) => cancelled,
                Err(e) => return Step::Done(self.store_fault(job, e).await),
            },
            _ => false,
        };
        let met = match self.condition_met(job).await {
            Ok(met) => met,
            Err(e) => return Step::Done(self.store_fault(job, e).await),
        };
        // A cancelled campaign's job is still claimed, then settled skipped: an earlier copy
        // that died mid-send must be told apart (its outcome is unknown, not cancelled). So
        // is a step whose condition holds.
        let (contact, decision) = if cancelled {
            let why = "campaign cancelled: not sent".to_owned();
            (None, Decision::Skip(SkipReason::Cancelled, why))
        } else if let Some(condition) = met {
            let (skip, why) = match condition {
                Condition::Read => (SkipReason::Read, "read before this step was due: not sent"),
                Condition::Seen => (SkipReason::Seen, "seen before this step was due: not sent"),
            };
            (None, Decision::Skip(skip, why.to_owned()))
        } else {
            let contact = match self.directory.contact(&job.tenant, &job.user_id).await {
                Ok(contact) => contact,
                Err(e) => return Step::Done(self.store_fault(job, e).await),
            };
            let contact = match self.with_devices(job, contact).await {
                Ok(contact) => contact,
                Err(e) => return Step::Done(self.store_fault(job, e).await),
            };
            let decision = decide(contact.as_ref(), job, self.clock.now());
            (contact, decision)
        };
        if let Decision::Defer(seconds) = decision {
            // Quiet hours: nothing claimed, so every copy is decided again when they end.
            return Step::Done(self.requeue(job, seconds).await);
        }
        let claim = self.claim_token();
        let previous = match self.claim(job, &claim).await {
            Ok(Claim::Claimed { previous }) => previous,
            Ok(Claim::Settled(state, skip)) => {
                tracing::info!(state = state.as_str(), "already settled by another copy");
                // The copy that settled it may have died before marking the campaign.
                return Step::Done(match campaign_mark(state, job.channel, skip) {
                    Some(mark) => self.mark_campaign(job, mark, Disposition::Done).await,
                    None => Disposition::Done,
                });
            }
            Ok(Claim::Held { since }) => {
                // Another copy is sending now; look again once its claim would be stale.
                tracing::info!(%since, "another copy holds the claim");
                return Step::Done(self.requeue(job, CLAIM_STALE_SECONDS as u32 + 1).await);
            }
            Err(e) => return Step::Done(self.store_fault(job, e).await),
        };
        let held = Held {
            claim,
            sent_to: previous
                .as_ref()
                .map(|p| p.sent_to.clone())
                .unwrap_or_default(),
        };
        if previous
            .as_ref()
            .is_some_and(|p| p.state == DeliveryState::Sending)
        {
            // Its holder stopped between claim and outcome: it may have sent.
            let why = "a copy stopped mid-send (claim abandoned): outcome unknown, not resent";
            self.settle(job, &held, DeliveryState::Unknown, Some(why.into()))
                .await;
            return Step::Done(
                self.mark_campaign(
                    job,
                    ProgressMark::Failed(job.channel),
                    Disposition::Poison(why.into()),
                )
                .await,
            );
        }
        let disposition = match decision {
            // Requeued above, before claiming; kept whole for the match.
            Decision::Defer(seconds) => self.requeue(job, seconds).await,
            // An earlier copy reached some devices: sent, though the rest are skipped now.
            Decision::Skip(skip, reason) if !held.sent_to.is_empty() => {
                let detail = format!(
                    "{} device(s) reached; the rest: {reason}",
                    held.sent_to.len()
                );
                self.settle_then_mark(job, &held, DeliveryState::Sent, Some(detail), Some(skip))
                    .await
            }
            Decision::Skip(skip, reason) => {
                self.settle_then_mark(job, &held, DeliveryState::Skipped, Some(reason), Some(skip))
                    .await
            }
            Decision::Send(addresses) => match self.admit(job).await {
                Ok(None) => {
                    return Step::Ready(Box::new(Ready {
                        job: job.clone(),
                        held,
                        locale: contact.and_then(|c| c.locale),
                        addresses,
                    }))
                }
                Ok(Some(why)) => {
                    self.settle_then_mark(
                        job,
                        &held,
                        DeliveryState::Skipped,
                        Some(why),
                        Some(SkipReason::Capped),
                    )
                    .await
                }
                Err(e) => self.retry_later(job, Some(&held), e.to_string()).await,
            },
        };
        Step::Done(disposition)
    }

    /// A campaign email up to its send: `prepare`d, checked against the suppression list
    /// and rendered. `Err` when it ended before that (skipped, suppressed, deferred, …).
    async fn prepare_email(&self, job: &DeliveryJob) -> Result<(Ready, Email), Disposition> {
        let ready = match self.prepare(job).await {
            Step::Ready(ready) => *ready,
            Step::Done(disposition) => return Err(disposition),
        };
        let email = self
            .email_for(&ready.job, ready.locale.as_deref(), &ready.addresses)
            .await;
        match email {
            Ok(Some(email)) => Ok((ready, email)),
            Ok(None) => Err(self.finish_ready(ready, Ok(Outcome::Suppressed)).await),
            Err(e) => Err(self.finish_ready(ready, Err(e)).await),
        }
    }

    /// Sends prepared emails: those that share a template together, up to the provider's
    /// bulk limit a call, in arrival order; each job is settled from its own recipient's
    /// result, so a throttled entry alone is retried later. Returns each job's disposition
    /// by its index in the batch.
    async fn send_in_bulk(
        &self,
        prepared: Vec<(usize, (Ready, Email))>,
    ) -> Vec<(usize, Disposition)> {
        let mut groups: Vec<BulkGroup> = Vec::new();
        for (i, (ready, email)) in prepared {
            // An email no template can carry goes out alone.
            let template = bulk_template(&email);
            let group = groups.iter_mut().find(|(t, members)| {
                t.is_some() && *t == template && members.len() < MAX_BULK_RECIPIENTS
            });
            match group {
                Some((_, members)) => members.push((i, ready, email)),
                None => groups.push((template, vec![(i, ready, email)])),
            }
        }
        let mut out = Vec::new();
        for (_, members) in groups {
            let emails: Vec<Email> = members.iter().map(|(_, _, e)| e.clone()).collect();
            let mut results = match emails.as_slice() {
                [one] => vec![self.email.send_email(one).await],
                _ => self.email.send_bulk(&emails).await,
            };
            tracing::info!(recipients = emails.len(), "campaign email sent");
            // A sender that answered fewer results: the rest may have gone out.
            results.resize_with(members.len(), || {
                Err(SendError::Unknown(herald::error::CallError::message(
                    "the bulk send gave no result for this recipient",
                )))
            });
            for ((i, ready, _), result) in members.into_iter().zip(results) {
                let result = result.map(|provider_id| Outcome::Sent {
                    provider_id,
                    to: Vec::new(),
                });
                out.push((i, self.finish_ready(ready, result).await));
            }
        }
        out
    }

    /// `finish` for a prepared job.
    async fn finish_ready(&self, ready: Ready, result: Result<Outcome, SendError>) -> Disposition {
        let span = tracing::info_span!(
            "deliver",
            tenant = %ready.job.tenant,
            user = %ready.job.user_id,
            notification_id = %ready.job.notification_id,
            channel = ready.job.channel.as_str(),
        );
        let finished = self.finish(&ready.job, ready.held, &ready.addresses, result);
        tracing::Instrument::instrument(finished, span).await
    }

    /// A digest's message: seals the window (no event joins it after this), then its events,
    /// final now, as the title (`{count}`), the body (a line each) and `data.digest` (the
    /// events for the email templates, bodies cut to keep the job small). Every copy of the
    /// job seals and reads the same set; the claim sends it once per channel.
    async fn digest_message(
        &self,
        job: &DeliveryJob,
        at: &DigestRef,
    ) -> Result<DeliveryJob, StoreError> {
        let Some(store) = &self.digests else {
            return Ok(job.clone());
        };
        let user = UserKey {
            tenant: job.tenant.clone(),
            user: job.user_id.clone(),
        };
        store.seal(&user, &at.digest.key, &at.window).await?;
        let (mut events, count) = store
            .events(&user, &at.digest.key, &at.window, MAX_LISTED_EVENTS)
            .await?;
        let (title, body) = summary(&at.digest, &events, count);
        for e in &mut events {
            e.body = e.body.chars().take(DIGEST_EVENT_BODY_CHARS).collect();
        }
        tracing::info!(key = %at.digest.key, window = %at.window, count, "digest sealed");
        Ok(DeliveryJob {
            title,
            body,
            data: Some(serde_json::json!({"digest": {
                "key": at.digest.key, "count": count, "events": events
            }})),
            digest: None,
            ..job.clone()
        })
    }

    /// A workflow step's condition, when it holds by now (`unless: read`, `unless: seen`). A
    /// message the log does not hold (the user's inbox is off) was never read or seen.
    async fn condition_met(&self, job: &DeliveryJob) -> Result<Option<Condition>, StoreError> {
        let (Some(condition), Some(log_key)) = (job.unless, &job.log_key) else {
            return Ok(None);
        };
        let Some(inbox) = &self.inbox else {
            tracing::warn!("a step with a condition, but no INBOX_TABLE to read: sent");
            return Ok(None);
        };
        let user = UserKey {
            tenant: job.tenant.clone(),
            user: job.user_id.clone(),
        };
        let state = inbox.read_state(&user, &job.room_id, log_key).await?;
        let met = state.is_some_and(|s| match condition {
            Condition::Read => s.read,
            Condition::Seen => s.seen,
        });
        Ok(met.then_some(condition))
    }

    /// Counts this send against the tenant's cap on its category and channel, if there is
    /// one: `Some(why)` when the cap is full. Runs under the claim, so one copy counts; a
    /// copy that retries a send counted before is let through without counting again.
    async fn admit(&self, job: &DeliveryJob) -> Result<Option<String>, StoreError> {
        let Some(caps) = &self.caps else {
            return Ok(None);
        };
        let Some(cap) = caps
            .caps(&job.tenant)
            .await?
            .cap_for(job.category, job.channel)
        else {
            return Ok(None);
        };
        let key = CapKey {
            tenant: job.tenant.clone(),
            user: job.user_id.clone(),
            category: job.category,
            channel: job.channel,
        };
        let id = job.notification_id.to_string();
        let mut retry = BackoffPolicy::default().start();
        loop {
            let window = caps.window(&key).await?;
            let now = self.clock.now().as_millisecond();
            let sent = match admit(&window, &cap, &id, now) {
                Admission::Counted => return Ok(None),
                Admission::Capped { oldest } => {
                    let frees = jiff::Timestamp::from_millisecond(
                        oldest + i64::from(cap.window_seconds) * 1000,
                    )
                    .map(time::millis)
                    .unwrap_or_default();
                    return Ok(Some(format!(
                        "frequency cap: {} {} on {} per {} s reached; the next fits after {frees}",
                        cap.limit,
                        job.category.as_str(),
                        job.channel.as_str(),
                        cap.window_seconds
                    )));
                }
                Admission::Count(sent) => sent,
            };
            match caps
                .write_window(&key, window.version, &sent, cap.window_seconds)
                .await
            {
                Ok(()) => return Ok(None),
                Err(StoreError::VersionConflict) if retry.wait().await => continue,
                Err(StoreError::VersionConflict) => {
                    return Err(StoreError::Transient(
                        "frequency cap window kept changing".into(),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends a claimed job and settles what happened.
    async fn send_claimed(
        &self,
        job: &DeliveryJob,
        held: Held,
        locale: Option<&str>,
        mut addresses: Vec<String>,
    ) -> Disposition {
        if job.channel == Channel::Push {
            // Devices an earlier copy reached are never pushed to again.
            addresses.retain(|a| !held.sent_to.contains(a));
            if let Some(left) = &job.endpoints {
                addresses.retain(|a| left.contains(a));
            }
        }
        let result = self.send(job, locale, &addresses).await;
        self.finish(job, held, &addresses, result).await
    }

    /// Settles what a send of a claimed job did: sent, skipped, failed, or retried later.
    async fn finish(
        &self,
        job: &DeliveryJob,
        mut held: Held,
        addresses: &[String],
        result: Result<Outcome, SendError>,
    ) -> Disposition {
        match after_send(job, addresses, result) {
            AfterSend::Settle {
                state,
                detail,
                skip,
                reached,
            } => {
                held.sent_to.extend(reached);
                self.settle_then_mark(job, &held, state, Some(detail), skip)
                    .await
            }
            AfterSend::OptOut { number, detail } => {
                if let Some(number) = number {
                    if let Err(error) = self
                        .directory
                        .suppress(None, &number, "opted out at the provider")
                        .await
                    {
                        tracing::warn!(%error, "opt-out not added to the suppression list");
                    }
                }
                self.settle_then_mark(
                    job,
                    &held,
                    DeliveryState::Skipped,
                    Some(detail),
                    Some(SkipReason::OptedOut),
                )
                .await
            }
            AfterSend::Fail { state, detail, why } => {
                self.settle(job, &held, state, Some(detail)).await;
                self.mark_campaign(
                    job,
                    ProgressMark::Failed(job.channel),
                    Disposition::Poison(why),
                )
                .await
            }
            AfterSend::RetryLater {
                reached,
                endpoints: None,
                reason,
            } => {
                held.sent_to.extend(reached);
                self.retry_later(job, Some(&held), reason).await
            }
            AfterSend::RetryLater {
                reached,
                endpoints: Some(left),
                reason,
            } => {
                // Some devices have it: the record keeps them, retries go to the others only.
                held.sent_to.extend(reached);
                let detail = format!("{} device(s) reached; {reason}", held.sent_to.len());
                let next = DeliveryJob {
                    endpoints: Some(left),
                    ..job.clone()
                };
                self.retry_later(&next, Some(&held), detail).await
            }
            AfterSend::Release { reason } => {
                match self
                    .settle(job, &held, DeliveryState::Retrying, Some(reason.clone()))
                    .await
                {
                    Settled::TakenOver => Disposition::Done,
                    Settled::Written | Settled::NotRecorded => Disposition::Retry(reason),
                }
            }
        }
    }

    /// A token of this attempt: unique, so a claim knows its holder.
    fn claim_token(&self) -> String {
        ulid::Ulid::new().to_string()
    }

    /// Claims the job's delivery for `claim`, stamped with the clock.
    async fn claim(&self, job: &DeliveryJob, claim: &str) -> Result<Claim, StoreError> {
        let now = self.clock.now();
        let stale = now - jiff::SignedDuration::from_secs(CLAIM_STALE_SECONDS);
        let record = self.record_of(job, claim, DeliveryState::Sending, None, Vec::new());
        self.directory
            .claim_delivery(&job.tenant, &record, stale)
            .await
    }

    fn record_of(
        &self,
        job: &DeliveryJob,
        claim: &str,
        state: DeliveryState,
        detail: Option<String>,
        sent_to: Vec<String>,
    ) -> DeliveryRecord {
        DeliveryRecord {
            skip: None,
            notification_id: job.notification_id.clone(),
            user_id: job.user_id.clone(),
            channel: job.channel,
            state,
            detail,
            // To the millisecond, as stored: a copy read back compares equal.
            updated_at: time::truncated(self.clock.now(), jiff::Unit::Millisecond),
            claim: Some(claim.to_owned()),
            sent_to,
            per_user: job.record_per_user,
        }
    }

    /// The store could not answer before anything was claimed: throttling and transient
    /// faults wait with a delay like a throttled provider; anything else is retried by the
    /// queue. Nothing is written: this copy holds no claim.
    async fn store_fault(&self, job: &DeliveryJob, e: StoreError) -> Disposition {
        match e {
            StoreError::Transient(_)
            | StoreError::Call {
                transient: true, ..
            } => self.retry_later(job, None, e.to_string()).await,
            e => Disposition::Retry(e.to_string()),
        }
    }

    /// Not now (throttled, or a store fault): the job goes back on its queue with a growing
    /// delay and an attempt count, for up to `give_up_after` since the first such attempt;
    /// only then does it fail (to the DLQ, with the reason). The queue's receives are not
    /// spent on waiting. With `held`, this copy holds the claim and releases it (or settles
    /// it failed on giving up); without, it writes nothing.
    async fn retry_later(
        &self,
        job: &DeliveryJob,
        held: Option<&Held>,
        reason: String,
    ) -> Disposition {
        let next = match retry_plan(job, self.clock.now(), self.give_up_after, &reason) {
            RetryPlan::GiveUp(why) => {
                let Some(held) = held else {
                    return Disposition::Poison(why);
                };
                self.settle(job, held, DeliveryState::Failed, Some(why.clone()))
                    .await;
                return self
                    .mark_campaign(
                        job,
                        ProgressMark::Failed(job.channel),
                        Disposition::Poison(why),
                    )
                    .await;
            }
            RetryPlan::Again { next, delay } => (next, delay),
        };
        if let Some(held) = held {
            match self
                .settle(job, held, DeliveryState::Retrying, Some(reason.clone()))
                .await
            {
                Settled::Written => {}
                // The claim was taken over meanwhile: the job is no longer this copy's.
                Settled::TakenOver => return Disposition::Done,
                // Kept on the queue, never dropped: its claim goes stale, and the job ends
                // `unknown` in the DLQ (rare: the store failed on every attempt).
                Settled::NotRecorded => {
                    return Disposition::Retry(format!("claim not released: {reason}"))
                }
            }
        }
        let (next, delay) = next;
        tracing::warn!(attempt = next.attempt, %reason, "not now; queued again with a delay");
        self.requeue(&next, delay).await
    }

    /// Puts the job back on the delivery queue to be seen again in `seconds` (SQS delays
    /// at most 15 minutes; longer waits take several rounds).
    async fn requeue(&self, job: &DeliveryJob, seconds: u32) -> Disposition {
        let mut message = match OutgoingMessage::json(job.key(), job) {
            Ok(m) => m,
            Err(e) => return Disposition::Poison(e.to_string()),
        };
        message.delay_seconds = Some(seconds.min(MAX_DELAY_SECONDS) as i32);
        match self.requeue.send(&[message]).await.pop() {
            Some(Ok(())) => Disposition::Done,
            Some(Err(e)) => Disposition::Retry(format!("could not requeue: {e}")),
            None => Disposition::Retry("could not requeue".into()),
        }
    }

    /// A push job's contact with the user's registered devices' endpoints added (a user with
    /// devices and no contact gets one with defaults: transactional push goes out, marketing
    /// waits for consent).
    async fn with_devices(
        &self,
        job: &DeliveryJob,
        contact: Option<Contact>,
    ) -> Result<Option<Contact>, StoreError> {
        let Some(registry) = self
            .devices
            .as_ref()
            .filter(|_| job.channel == Channel::Push)
        else {
            return Ok(contact);
        };
        let devices = registry.devices(&job.tenant, &job.user_id).await?;
        if devices.is_empty() {
            return Ok(contact);
        }
        // No contact means no consent on record: transactional push only.
        let mut contact = contact.unwrap_or_else(|| Contact {
            preferences: herald::domain::contact::Preferences {
                marketing: false,
                ..Default::default()
            },
            ..Contact::default()
        });
        contact.push = push_endpoints(&contact.push, &devices);
        Ok(Some(contact))
    }

    /// A dead endpoint's device leaves the registry (the provider said the token is invalid).
    pub(crate) async fn forget_device(&self, job: &DeliveryJob, endpoint_arn: &str) {
        let Some(registry) = &self.devices else {
            return;
        };
        let Ok(devices) = registry.devices(&job.tenant, &job.user_id).await else {
            return;
        };
        for device in devices.iter().filter(|d| d.endpoint_arn == endpoint_arn) {
            if let Err(error) = registry
                .remove(&job.tenant, &job.user_id, &device.token)
                .await
            {
                tracing::warn!(%error, "dead device not removed");
            }
        }
    }

    /// Moves this copy's claim on to `state`, conditionally on still holding it, with the
    /// state's metric; transient store faults are retried a few times here, since a claim
    /// left `sending` would later read as an abandoned send.
    async fn settle(
        &self,
        job: &DeliveryJob,
        held: &Held,
        state: DeliveryState,
        detail: Option<String>,
    ) -> Settled {
        self.settle_with(job, held, state, detail, None).await
    }

    /// `settle`, keeping a skip's reason on the record (a later copy marks the same one).
    async fn settle_with(
        &self,
        job: &DeliveryJob,
        held: &Held,
        state: DeliveryState,
        detail: Option<String>,
        skip: Option<SkipReason>,
    ) -> Settled {
        let mut record = self.record_of(job, &held.claim, state, detail, held.sent_to.clone());
        record.skip = skip.filter(|_| state == DeliveryState::Skipped);
        let mut metrics = vec![Metric::count(state_metric(state), 1)];
        match record.skip {
            Some(SkipReason::Capped) => metrics.push(Metric::count("DeliveriesCapped", 1)),
            Some(SkipReason::Read | SkipReason::Seen) => {
                metrics.push(Metric::count("StepsSkippedRead", 1))
            }
            _ => {}
        }
        if state == DeliveryState::Sent {
            let latency = herald::telemetry::ms_since(job.created_at);
            metrics.push(Metric::milliseconds("IngestToSend", vec![latency]));
        }
        herald::telemetry::emit("deliver", &[("channel", job.channel.as_str())], &metrics);
        tracing::info!(
            state = state.as_str(),
            user = %job.user_id,
            detail = record.detail.as_deref().unwrap_or_default(),
            "delivery settled"
        );
        let mut attempt = 0;
        loop {
            match self.directory.settle_delivery(&job.tenant, &record).await {
                Ok(true) => return Settled::Written,
                Ok(false) => {
                    tracing::error!(
                        state = state.as_str(),
                        "claim taken over before settling: not written"
                    );
                    return Settled::TakenOver;
                }
                Err(e) if attempt < SETTLE_ATTEMPTS && e.is_transient() => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                }
                Err(e) => {
                    tracing::error!(state = state.as_str(), error = %e, "delivery outcome not recorded");
                    return Settled::NotRecorded;
                }
            }
        }
    }

    /// Settles, then leaves the campaign's progress mark for it; `Done` either way once
    /// settled (a claim taken over is the other copy's to finish).
    async fn settle_then_mark(
        &self,
        job: &DeliveryJob,
        held: &Held,
        state: DeliveryState,
        detail: Option<String>,
        skip: Option<SkipReason>,
    ) -> Disposition {
        match self.settle_with(job, held, state, detail, skip).await {
            Settled::Written => {}
            // Another copy holds it now: it settles and marks.
            Settled::TakenOver => return Disposition::Done,
            // Sent but not recorded: its claim goes stale and a later copy settles it
            // `unknown`; the send is counted here, once.
            Settled::NotRecorded if state == DeliveryState::Sent => {}
            // Not sent and not recorded: kept on the queue (the claim goes stale: the job
            // ends `unknown` in the DLQ, never sent twice).
            Settled::NotRecorded => {
                return Disposition::Retry("delivery outcome not recorded".into())
            }
        }
        match campaign_mark(state, job.channel, skip) {
            Some(mark) => self.mark_campaign(job, mark, Disposition::Done).await,
            None => Disposition::Done,
        }
    }

    /// Leaves a campaign job's progress mark, then answers `then`; a mark that did not make it
    /// retries the job, whose claim is settled by then, so it is marked and never resent.
    async fn mark_campaign(
        &self,
        job: &DeliveryJob,
        mark: ProgressMark,
        then: Disposition,
    ) -> Disposition {
        let (Some(gate), Some(at)) = (&self.campaigns, &job.campaign) else {
            return then;
        };
        match gate.mark(&job.tenant, &[(at.clone(), mark)]).await {
            Ok(()) => then,
            Err(e) => Disposition::Retry(format!("campaign progress: {e}")),
        }
    }
}

/// Where a job stands before its send.
enum Step {
    /// Ended: skipped, deferred, already settled, or failed before sending.
    Done(Disposition),
    /// Claimed, admitted and due: to be sent (boxed: a job is large beside a disposition).
    Ready(Box<Ready>),
}

/// Prepared emails that share a template (`None`: one that goes alone), by batch index.
type BulkGroup = (Option<BulkTemplate>, Vec<(usize, Ready, Email)>);

/// A job cleared to send: the claim held, the addresses decided.
struct Ready {
    job: DeliveryJob,
    held: Held,
    locale: Option<String>,
    addresses: Vec<String>,
}

/// What this copy holds while it sends: its claim, and the devices reached so far.
struct Held {
    claim: String,
    sent_to: Vec<String>,
}

/// A transient store fault while settling is retried this often before giving up.
const SETTLE_ATTEMPTS: u32 = 3;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod workflow_tests;
