//! deliver: consumes the delivery queue. Honors preferences, suppression and quiet hours,
//! sends email through SES v2 and SMS/push through SNS, records the outcome per channel.
//! Throttling becomes a retry later; a permanent rejection goes to the DLQ with its reason.

use std::sync::Arc;

use async_trait::async_trait;
use herald::config::{ConfigError, Vars};
use herald::consumer::{BatchHandler, Disposition, QueueConfig, QueueMessage};
use herald::domain::campaign::ProgressMark;
use herald::domain::delivery::{decide, throttled_delay, Decision, DeliveryJob, SkipReason};
use herald::domain::notification::Category;
use herald::ports::{
    Claim, Clock, DeliveryRecord, DeliveryState, Directory, Email, EmailSender, LinkKeys,
    MobileSender, OutgoingMessage, QueueSender, SendError, Sms, SystemClock,
};
use herald::progress::CampaignGate;
use herald::telemetry::Metric;
use herald::{Channel, StoreError};

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
            email: Arc::new(herald::aws::ses::SesEmail::new(
                aws_sdk_sesv2::Client::from_conf(
                    aws_sdk_sesv2::config::Builder::from(aws)
                        .retry_config(no_sdk_retries())
                        .build(),
                ),
                &config.email_from,
                config.ses_configuration_set.clone(),
            )),
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
    async fn handle(&self, batch: &[QueueMessage]) -> Vec<Disposition> {
        let mut out = Vec::with_capacity(batch.len());
        for message in batch {
            let disposition = match serde_json::from_str::<DeliveryJob>(&message.body) {
                Err(e) => Disposition::Poison(format!("not a delivery job: {e}")),
                Ok(job) => {
                    let span = tracing::info_span!(
                        "deliver",
                        message_id = %message.message_id,
                        tenant = %job.tenant,
                        notification_id = %job.notification_id,
                        channel = job.channel.as_str(),
                        correlation_id = job.correlation_id.as_deref().unwrap_or_default(),
                    );
                    tracing::Instrument::instrument(self.deliver(&job), span).await
                }
            };
            out.push(disposition);
        }
        out
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
        let cancelled = match (&self.campaigns, &job.campaign) {
            (Some(gate), Some(at)) => match gate.cancelled(&job.tenant, &at.id).await {
                Ok(cancelled) => cancelled,
                Err(e) => return self.store_fault(job, e).await,
            },
            _ => false,
        };
        // A cancelled campaign's job is still claimed, then settled skipped: an earlier copy
        // that died mid-send must be told apart (its outcome is unknown, not cancelled).
        let (contact, decision) = if cancelled {
            let why = "campaign cancelled: not sent".to_owned();
            (None, Decision::Skip(SkipReason::Cancelled, why))
        } else {
            let contact = match self.directory.contact(&job.tenant, &job.user_id).await {
                Ok(contact) => contact,
                Err(e) => return self.store_fault(job, e).await,
            };
            let decision = decide(contact.as_ref(), job, self.clock.now());
            (contact, decision)
        };
        if let Decision::Defer(seconds) = decision {
            // Quiet hours: nothing claimed, so every copy is decided again when they end.
            return self.requeue(job, seconds).await;
        }
        let claim = self.claim_token();
        let previous = match self.claim(job, &claim).await {
            Ok(Claim::Claimed { previous }) => previous,
            Ok(Claim::Settled(state, skip)) => {
                tracing::info!(state = state.as_str(), "already settled by another copy");
                // The copy that settled it may have died before marking the campaign.
                return match campaign_mark(state, job.channel, skip) {
                    Some(mark) => self.mark_campaign(job, mark, Disposition::Done).await,
                    None => Disposition::Done,
                };
            }
            Ok(Claim::Held { since }) => {
                // Another copy is sending now; look again once its claim would be stale.
                tracing::info!(%since, "another copy holds the claim");
                return self.requeue(job, CLAIM_STALE_SECONDS as u32 + 1).await;
            }
            Err(e) => return self.store_fault(job, e).await,
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
            return self
                .mark_campaign(
                    job,
                    ProgressMark::Failed(job.channel),
                    Disposition::Poison(why.into()),
                )
                .await;
        }
        match decision {
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
            Decision::Send(addresses) => {
                let locale = contact.as_ref().and_then(|c| c.locale.as_deref());
                self.send_claimed(job, held, locale, addresses).await
            }
        }
    }

    /// Sends a claimed job and settles what happened.
    async fn send_claimed(
        &self,
        job: &DeliveryJob,
        mut held: Held,
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
        match self.send(job, locale, &addresses).await {
            Ok(Outcome::Sent { provider_id, to }) => {
                held.sent_to.extend(to);
                self.settle_then_mark(job, &held, DeliveryState::Sent, Some(provider_id), None)
                    .await
            }
            Ok(Outcome::Suppressed) => {
                self.settle_then_mark(
                    job,
                    &held,
                    DeliveryState::Skipped,
                    Some("address suppressed".into()),
                    Some(SkipReason::Suppressed),
                )
                .await
            }
            Ok(Outcome::Partly {
                reached,
                left,
                error,
            }) => {
                // Some devices have it: the record keeps them, retries go to the others only.
                held.sent_to.extend(reached);
                let detail = format!(
                    "{} device(s) reached; {} left: {error}",
                    held.sent_to.len(),
                    left.len()
                );
                let next = DeliveryJob {
                    endpoints: Some(left),
                    ..job.clone()
                };
                self.retry_later(&next, Some(&held), detail).await
            }
            Err(SendError::OptedOut(e)) => {
                // The number replied STOP (or is on the account's opt-out list): honour it
                // for every later SMS, as a STOP reply would, and skip; not an error.
                if let Some(number) = addresses.first() {
                    if let Err(error) = self
                        .directory
                        .suppress(None, number, "opted out at the provider")
                        .await
                    {
                        tracing::warn!(%error, "opt-out not added to the suppression list");
                    }
                }
                self.settle_then_mark(
                    job,
                    &held,
                    DeliveryState::Skipped,
                    Some(format!("opted out: {e}")),
                    Some(SkipReason::OptedOut),
                )
                .await
            }
            Err(SendError::Rejected(reason)) => {
                self.settle(job, &held, DeliveryState::Failed, Some(reason.to_string()))
                    .await;
                self.mark_campaign(
                    job,
                    ProgressMark::Failed(job.channel),
                    Disposition::Poison(format!("{} rejected: {reason}", job.channel.as_str())),
                )
                .await
            }
            Err(e @ SendError::Unknown(_)) => {
                // The provider may have it: sending again could send twice. Final, to the DLQ.
                let why = format!("{}: not resent", e);
                self.settle(job, &held, DeliveryState::Unknown, Some(why.clone()))
                    .await;
                self.mark_campaign(
                    job,
                    ProgressMark::Failed(job.channel),
                    Disposition::Poison(why),
                )
                .await
            }
            Err(e @ SendError::Throttled(_)) => {
                self.retry_later(job, Some(&held), e.to_string()).await
            }
            Err(e @ SendError::Other(_)) => {
                // Certainly not sent: release the claim and let the queue retry.
                match self
                    .settle(job, &held, DeliveryState::Retrying, Some(e.to_string()))
                    .await
                {
                    Settled::TakenOver => Disposition::Done,
                    Settled::Written | Settled::NotRecorded => Disposition::Retry(e.to_string()),
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
            .claim_delivery(&job.tenant, &record, &format!("{stale:.3}"))
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
            updated_at: format!("{:.3}", self.clock.now()),
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
        let now = self.clock.now();
        let since = job
            .retrying_since
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .unwrap_or(now);
        let waited = now.duration_since(since).as_secs().max(0) as u64;
        if waited > self.give_up_after.as_secs() {
            let why = format!(
                "still failing after {:.0} h of retries: {reason}",
                self.give_up_after.as_secs_f64() / 3600.0
            );
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
        let next = DeliveryJob {
            attempt: job.attempt + 1,
            retrying_since: Some(format!("{since:.3}")),
            ..job.clone()
        };
        tracing::warn!(attempt = next.attempt, %reason, "not now; queued again with a delay");
        self.requeue(&next, throttled_delay(job.attempt)).await
    }

    /// Sends on the job's channel; email in the contact's `locale`.
    async fn send(
        &self,
        job: &DeliveryJob,
        locale: Option<&str>,
        addresses: &[String],
    ) -> Result<Outcome, SendError> {
        match job.channel {
            Channel::Email => {
                let to = &addresses[0];
                if self.suppressed(job, to).await? {
                    return Ok(Outcome::Suppressed);
                }
                let list_unsubscribe = self.unsubscribe_link(job).await?;
                let parts = herald::domain::email::render(
                    locale,
                    &job.title,
                    &job.body,
                    list_unsubscribe.as_deref(),
                )
                .map_err(|e| {
                    SendError::Rejected(herald::error::CallError::message(format!(
                        "email template: {e}"
                    )))
                })?;
                let email = Email {
                    to: to.clone(),
                    subject: job.title.clone(),
                    text: parts.text,
                    html: parts.html,
                    list_unsubscribe,
                    // SES events carry it back, so a bounce suppresses for this tenant.
                    tags: vec![(
                        herald::domain::feedback::TENANT_TAG.to_owned(),
                        herald::domain::feedback::tenant_tag(&job.tenant),
                    )],
                };
                self.email
                    .send_email(&email)
                    .await
                    .map(|provider_id| Outcome::Sent {
                        provider_id,
                        to: Vec::new(),
                    })
            }
            Channel::Sms => {
                if self.suppressed(job, &addresses[0]).await? {
                    return Ok(Outcome::Suppressed);
                }
                let sms = Sms {
                    to: addresses[0].clone(),
                    text: sms_text(&job.title, &job.body),
                    promotional: job.category == Category::Marketing,
                };
                self.mobile
                    .send_sms(&sms)
                    .await
                    .map(|provider_id| Outcome::Sent {
                        provider_id,
                        to: Vec::new(),
                    })
            }
            Channel::Push => {
                // Every device gets it; one dead endpoint must not block the others, and a
                // retry goes only to the devices that did not get it.
                let (title, body) = push_text(&job.title, &job.body);
                let mut sent = Vec::new();
                // Devices that have it, or may (answer lost): never pushed to again.
                let mut reached = Vec::new();
                let mut maybe = false;
                // Devices to retry (throttled, or not tried: a store fault), and why.
                let mut left = Vec::new();
                let mut retry_error = None;
                let mut refused = None;
                for endpoint in addresses {
                    match self.suppressed(job, endpoint).await {
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(e) => {
                            left.push(endpoint.clone());
                            retry_error = Some(e);
                            continue;
                        }
                    }
                    match self.mobile.send_push(endpoint, &title, &body).await {
                        Ok(id) => {
                            sent.push(id);
                            reached.push(endpoint.clone());
                        }
                        Err(SendError::Rejected(e)) => {
                            tracing::warn!(%endpoint, error = %e, "push endpoint refused");
                            if e.code
                                .as_deref()
                                .is_some_and(|c| c.starts_with("EndpointDisabled"))
                            {
                                // A dead device (app removed, token expired): never again.
                                let _ = self
                                    .directory
                                    .suppress(Some(&job.tenant), endpoint, "push endpoint disabled")
                                    .await;
                            }
                            refused.get_or_insert(SendError::Rejected(e));
                        }
                        Err(e @ SendError::Unknown(_)) => {
                            tracing::warn!(%endpoint, error = %e, "push outcome unknown");
                            reached.push(endpoint.clone());
                            maybe = true;
                            refused.get_or_insert(e);
                        }
                        Err(e) => {
                            left.push(endpoint.clone());
                            retry_error = Some(e);
                        }
                    }
                }
                push_outcome(sent, reached, maybe, left, retry_error, refused)
            }
            Channel::Inbox => Ok(Outcome::Sent {
                provider_id: String::new(),
                to: Vec::new(),
            }),
        }
    }

    /// Whether the address is on the suppression list (a store fault is a retry, not a send).
    async fn suppressed(&self, job: &DeliveryJob, address: &str) -> Result<bool, SendError> {
        self.directory
            .is_suppressed(&job.tenant, address)
            .await
            .map_err(|e| SendError::Other(herald::error::CallError::message(e.to_string())))
    }

    /// The signed one-click link of marketing email (it names a pseudonym, never the user).
    async fn unsubscribe_link(&self, job: &DeliveryJob) -> Result<Option<String>, SendError> {
        let Some((base, keys)) = &self.unsubscribe else {
            return Ok(None);
        };
        if job.category != Category::Marketing {
            return Ok(None);
        }
        let signer = keys.signer().await.map_err(|e| {
            SendError::Other(herald::error::CallError::message(format!(
                "unsubscribe secret: {e}"
            )))
        })?;
        let token = signer.token(&job.tenant, &job.user_id, job.category);
        Ok(Some(format!("{base}?token={token}")))
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
        if state == DeliveryState::Sent {
            let latency = herald::telemetry::ms_since(&job.created_at);
            metrics.push(Metric::milliseconds(
                "IngestToSend",
                latency.into_iter().collect(),
            ));
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

/// The progress a settled delivery leaves on its campaign; a skip found already settled
/// by another copy counts with the reason its record keeps (the other copy's own mark, if it
/// made one, is the same slot and counts once).
fn campaign_mark(
    state: DeliveryState,
    channel: Channel,
    skip: Option<SkipReason>,
) -> Option<ProgressMark> {
    match state {
        DeliveryState::Sent => Some(ProgressMark::Sent(channel)),
        DeliveryState::Skipped => Some(ProgressMark::Skipped(
            channel,
            skip.unwrap_or(SkipReason::NoAddress),
        )),
        DeliveryState::Failed | DeliveryState::Unknown => Some(ProgressMark::Failed(channel)),
        DeliveryState::Sending | DeliveryState::Retrying => None,
    }
}

/// Whether a settle was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Written,
    /// The claim was no longer this copy's (taken over once stale).
    TakenOver,
    /// The store kept failing.
    NotRecorded,
}

/// What this copy holds while it sends: its claim, and the devices reached so far.
struct Held {
    claim: String,
    sent_to: Vec<String>,
}

/// A transient store fault while settling is retried this often before giving up.
const SETTLE_ATTEMPTS: u32 = 3;

fn state_metric(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Sent => "DeliveriesSent",
        DeliveryState::Skipped => "DeliveriesSkipped",
        DeliveryState::Failed => "DeliveriesFailed",
        DeliveryState::Sending => "DeliveriesClaimed",
        DeliveryState::Retrying => "DeliveriesRetried",
        DeliveryState::Unknown => "DeliveriesUnknown",
    }
}

/// A push's outcome over its devices: devices left to retry make it partial (whatever else
/// happened, the reached ones are kept); otherwise any device that got it makes it sent; a
/// lost answer with none sent is unknown; else the refusal, or every device suppressed.
fn push_outcome(
    sent: Vec<String>,
    reached: Vec<String>,
    maybe: bool,
    left: Vec<String>,
    retry_error: Option<SendError>,
    refused: Option<SendError>,
) -> Result<Outcome, SendError> {
    if let Some(error) = retry_error.filter(|_| !left.is_empty()) {
        if reached.is_empty() && refused.is_none() {
            return Err(error);
        }
        return Ok(Outcome::Partly {
            reached,
            left,
            error: error.to_string(),
        });
    }
    if !sent.is_empty() {
        return Ok(Outcome::Sent {
            provider_id: sent.join(","),
            to: reached,
        });
    }
    match refused {
        Some(e) if maybe => Err(SendError::Unknown(herald::error::CallError::message(
            e.to_string(),
        ))),
        Some(e) => Err(e),
        None => Ok(Outcome::Suppressed),
    }
}

/// What one send achieved.
enum Outcome {
    /// Sent: the provider's id (several, comma-separated, for push), and for push the
    /// devices reached.
    Sent {
        provider_id: String,
        to: Vec<String>,
    },
    /// The address is on the suppression list.
    Suppressed,
    /// Push: `reached` got it, `left` did not (a retryable error).
    Partly {
        reached: Vec<String>,
        left: Vec<String>,
        error: String,
    },
}

/// The most an SMS may hold: SNS refuses longer messages (1,600 characters, 10 parts).
pub const MAX_SMS_CHARS: usize = 1_600;

/// "title: body", cut cleanly at a character boundary to fit one SMS send, with an
/// ellipsis when cut (documented in docs/delivery.md: herald truncates, never refuses).
pub fn sms_text(title: &str, body: &str) -> String {
    clip_chars(&format!("{title}: {body}"), MAX_SMS_CHARS)
}

/// APNs and FCM take 4 KB payloads; title and body are cut (at character boundaries) to
/// leave room for the envelope: 200 and 2,000 bytes at most.
pub fn push_text(title: &str, body: &str) -> (String, String) {
    (clip_bytes(title, 200), clip_bytes(body, 2_000))
}

fn clip_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some(_) => {
            let cut = text.char_indices().nth(max - 1).map_or(0, |(i, _)| i);
            format!("{}…", &text[..cut])
        }
    }
}

fn clip_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max - '…'.len_utf8();
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use herald::domain::contact::Contact;
    use herald::fake::fixtures::{delivery_job as job, noon};
    use herald::fake::{
        FixedClock, InMemoryDirectory, ManualClock, RecordingQueue, RecordingSender, StaticKeys,
    };
    use herald::{TenantId, UserId};

    use super::*;

    struct World {
        deliverer: Deliverer,
        directory: Arc<InMemoryDirectory>,
        sender: Arc<RecordingSender>,
        requeue: Arc<RecordingQueue>,
    }

    /// A deliverer whose user u1 (tenant t1) has `contact`.
    async fn world_with(contact: Contact) -> World {
        let w = world();
        w.directory
            .put_contact(
                &TenantId::parse("t1", "t").unwrap(),
                &UserId::parse("u1", "u").unwrap(),
                &contact,
                "p1",
                0,
            )
            .await
            .unwrap();
        w
    }

    fn world() -> World {
        let directory = Arc::new(InMemoryDirectory::default());
        let sender = Arc::new(RecordingSender::default());
        let requeue = Arc::new(RecordingQueue::default());
        let deliverer = Deliverer {
            directory: directory.clone(),
            email: sender.clone(),
            mobile: sender.clone(),
            requeue: requeue.clone(),
            unsubscribe: Some((
                "https://example.com/unsub".into(),
                Arc::new(StaticKeys::default()),
            )),
            clock: Arc::new(FixedClock(noon())),
            give_up_after: std::time::Duration::from_secs(24 * 3600),
            campaigns: None,
        };
        World {
            deliverer,
            directory,
            sender,
            requeue,
        }
    }

    #[tokio::test]
    async fn email_is_sent_once_even_when_redelivered() {
        let w = world_with(Contact {
            email: Some("a@b.co".into()),
            ..Contact::default()
        })
        .await;
        let j = job(Channel::Email, Category::Marketing);
        assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
        assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
        let emails = w.sender.emails.lock().unwrap().clone();
        assert_eq!(emails.len(), 1);
        let link = emails[0].list_unsubscribe.clone().unwrap();
        let token = link
            .strip_prefix("https://example.com/unsub?token=")
            .unwrap();
        assert!(!token.contains("u1"), "no raw user id in {link}");
        let signer = StaticKeys::default().signer().await.unwrap();
        let request = signer.verify(token).unwrap();
        assert_eq!(
            request.pseudonym,
            signer.pseudonym(&j.tenant, &j.user_id),
            "the link names u1's pseudonym"
        );
    }

    #[tokio::test]
    async fn the_same_client_id_for_two_users_reaches_both() {
        let w = world_with(Contact {
            email: Some("a@b.co".into()),
            ..Contact::default()
        })
        .await;
        let other = UserId::parse("u2", "u").unwrap();
        let contact = Contact {
            email: Some("c@d.co".into()),
            ..Contact::default()
        };
        w.directory
            .put_contact(
                &TenantId::parse("t1", "t").unwrap(),
                &other,
                &contact,
                "p2",
                0,
            )
            .await
            .unwrap();
        let first = job(Channel::Email, Category::Transactional);
        let second = DeliveryJob {
            user_id: other,
            ..first.clone()
        };
        assert_eq!(w.deliverer.deliver(&first).await, Disposition::Done);
        assert_eq!(w.deliverer.deliver(&second).await, Disposition::Done);
        let to: Vec<String> = w
            .sender
            .emails
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.to.clone())
            .collect();
        assert_eq!(to, vec!["a@b.co".to_owned(), "c@d.co".to_owned()]);
    }

    #[tokio::test]
    async fn throttling_requeues_with_a_delay_and_an_attempt_count_without_spending_receives() {
        let w = world_with(Contact {
            phone: Some("+15555550100".into()),
            ..Contact::default()
        })
        .await;
        w.sender.throttle.store(true, Ordering::Relaxed);
        let j = job(Channel::Sms, Category::Transactional);
        assert_eq!(
            w.deliverer.deliver(&j).await,
            Disposition::Done,
            "acked: a copy waits"
        );
        let sent = w.requeue.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1);
        assert!(
            (1..=2).contains(&sent[0].delay_seconds.unwrap()),
            "{:?}",
            sent[0].delay_seconds
        );
        let next: DeliveryJob = serde_json::from_str(&sent[0].body).unwrap();
        assert_eq!(next.attempt, 1);
        assert!(next.retrying_since.is_some());
        let records = w.directory.records.lock().unwrap().clone();
        assert_eq!(
            records[0].state,
            DeliveryState::Retrying,
            "the claim is released"
        );
        assert!(w.sender.sms.lock().unwrap().is_empty());
    }

    /// A sender that throttles until the clock passes `until`.
    struct ThrottledUntil {
        inner: Arc<RecordingSender>,
        clock: Arc<ManualClock>,
        until: jiff::Timestamp,
    }

    #[async_trait]
    impl EmailSender for ThrottledUntil {
        async fn send_email(&self, email: &Email) -> Result<String, SendError> {
            if self.clock.now() < self.until {
                return Err(SendError::Throttled(herald::error::CallError::message(
                    "TooManyRequestsException: maximum sending rate exceeded",
                )));
            }
            self.inner.send_email(email).await
        }
    }

    /// Runs every queued job as the queue would hand them out, moving the clock to each
    /// job's due time; returns what ended in the DLQ.
    async fn drain(
        w: &World,
        clock: &ManualClock,
        mut queue: Vec<(u32, DeliveryJob)>,
    ) -> Vec<String> {
        let mut dead = Vec::new();
        let mut rounds = 0;
        while !queue.is_empty() {
            rounds += 1;
            assert!(rounds < 10_000, "the queue never drains");
            queue.sort_by_key(|(delay, _)| *delay);
            let (delay, job) = queue.remove(0);
            clock.advance(std::time::Duration::from_secs(u64::from(delay)));
            for (d, _) in &mut queue {
                *d = d.saturating_sub(delay);
            }
            match w.deliverer.deliver(&job).await {
                Disposition::Done => {}
                Disposition::Poison(reason) => dead.push(reason),
                Disposition::Retry(reason) => panic!("a retry spends receives: {reason}"),
            }
            for m in w.requeue.sent.lock().unwrap().drain(..) {
                queue.push((
                    m.delay_seconds.unwrap_or(0) as u32,
                    serde_json::from_str(&m.body).unwrap(),
                ));
            }
        }
        dead
    }

    #[tokio::test]
    async fn ses_throttled_for_an_hour_then_every_email_is_sent_and_nothing_is_dead() {
        let clock = Arc::new(ManualClock::new(noon()));
        let mut w = world();
        let recording = w.sender.clone();
        w.deliverer.email = Arc::new(ThrottledUntil {
            inner: recording.clone(),
            clock: clock.clone(),
            until: noon() + jiff::SignedDuration::from_hours(1),
        });
        w.deliverer.clock = clock.clone();
        let tenant = TenantId::parse("t1", "t").unwrap();
        let mut queue = Vec::new();
        for i in 0..20 {
            let user = UserId::parse(format!("u{i}"), "u").unwrap();
            let contact = Contact {
                email: Some(format!("u{i}@example.com")),
                ..Contact::default()
            };
            w.directory
                .put_contact(&tenant, &user, &contact, &format!("p{i}"), 0)
                .await
                .unwrap();
            queue.push((
                0,
                DeliveryJob {
                    user_id: user,
                    ..job(Channel::Email, Category::Transactional)
                },
            ));
        }
        let dead = drain(&w, &clock, queue).await;
        assert!(dead.is_empty(), "{dead:?}");
        assert_eq!(
            recording.emails.lock().unwrap().len(),
            20,
            "every email, once"
        );
        assert!(clock.now() >= noon() + jiff::SignedDuration::from_hours(1));
        let records = w.directory.records.lock().unwrap().clone();
        assert!(
            records.iter().all(|r| r.state == DeliveryState::Sent),
            "{records:?}"
        );
    }

    #[tokio::test]
    async fn throttling_gives_up_only_after_the_configured_hours() {
        let clock = Arc::new(ManualClock::new(noon()));
        let mut w = world_with(Contact {
            email: Some("a@b.co".into()),
            ..Contact::default()
        })
        .await;
        w.deliverer.email = Arc::new(ThrottledUntil {
            inner: w.sender.clone(),
            clock: clock.clone(),
            until: noon() + jiff::SignedDuration::from_hours(100),
        });
        w.deliverer.clock = clock.clone();
        w.deliverer.give_up_after = std::time::Duration::from_secs(3 * 3600);
        let dead = drain(
            &w,
            &clock,
            vec![(0, job(Channel::Email, Category::Transactional))],
        )
        .await;
        assert_eq!(dead.len(), 1);
        assert!(dead[0].contains("3 h"), "{dead:?}");
        let waited = clock.now().duration_since(noon()).as_secs();
        assert!((3 * 3600..4 * 3600).contains(&waited), "{waited}");
        assert_eq!(
            w.directory.records.lock().unwrap()[0].state,
            DeliveryState::Failed
        );
    }

    #[tokio::test]
    async fn three_copies_of_a_job_in_one_batch_and_across_batches_send_one_email() {
        let w = world_with(Contact {
            email: Some("a@b.co".into()),
            ..Contact::default()
        })
        .await;
        let j = job(Channel::Email, Category::Transactional);
        let copy = |n: usize| QueueMessage {
            message_id: format!("m{n}"),
            receipt_handle: format!("r{n}"),
            body: serde_json::to_string(&j).unwrap(),
            receive_count: 1,
            trace_header: None,
        };
        let batch = [copy(1), copy(2), copy(3)];
        assert_eq!(w.deliverer.handle(&batch).await, vec![Disposition::Done; 3]);
        assert_eq!(
            w.deliverer.handle(&batch[..1]).await,
            vec![Disposition::Done]
        );
        assert_eq!(w.sender.emails.lock().unwrap().len(), 1);
        // Concurrent copies: one claims, the others wait for it and then find it sent.
        let w2 = world_with(Contact {
            email: Some("a@b.co".into()),
            ..Contact::default()
        })
        .await;
        let results =
            futures_util::future::join_all((0..3).map(|_| w2.deliverer.deliver(&j))).await;
        assert!(
            results.iter().all(|d| *d == Disposition::Done),
            "{results:?}"
        );
        assert_eq!(w2.sender.emails.lock().unwrap().len(), 1);
    }

    /// Push that throttles one device and refuses another for good.
    struct FlakyDevices(Arc<RecordingSender>);

    #[async_trait]
    impl MobileSender for FlakyDevices {
        async fn send_sms(&self, sms: &Sms) -> Result<String, SendError> {
            self.0.send_sms(sms).await
        }
        async fn send_push(
            &self,
            endpoint: &str,
            title: &str,
            body: &str,
        ) -> Result<String, SendError> {
            if endpoint.ends_with("/busy") {
                return Err(SendError::Throttled(herald::error::CallError::message(
                    "Throttled",
                )));
            }
            if endpoint.ends_with("/dead") {
                let mut e = herald::error::CallError::message("EndpointDisabled: disabled");
                e.code = Some("EndpointDisabled".into());
                return Err(SendError::Rejected(e));
            }
            self.0.send_push(endpoint, title, body).await
        }
    }

    #[tokio::test]
    async fn a_partial_push_retries_only_the_devices_that_did_not_get_it() {
        let arn = |d: &str| format!("arn:aws:sns:us-east-1:1:endpoint/GCM/app/{d}");
        let mut w = world_with(Contact {
            push: vec![arn("ok"), arn("busy"), arn("dead")],
            ..Contact::default()
        })
        .await;
        w.deliverer.mobile = Arc::new(FlakyDevices(w.sender.clone()));
        let j = job(Channel::Push, Category::Transactional);
        assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
        assert_eq!(
            w.sender.pushes.lock().unwrap().len(),
            1,
            "the good device got it"
        );
        let requeued = w.requeue.sent.lock().unwrap().clone();
        let next: DeliveryJob = serde_json::from_str(&requeued[0].body).unwrap();
        assert_eq!(
            next.endpoints,
            Some(vec![arn("busy")]),
            "only the throttled device is left"
        );
        let t1 = TenantId::parse("t1", "t").unwrap();
        assert!(
            w.directory.is_suppressed(&t1, &arn("dead")).await.unwrap(),
            "dead device suppressed"
        );
        // The retry reaches the busy device only (it recovered meanwhile).
        w.deliverer.mobile = w.sender.clone();
        w.requeue.sent.lock().unwrap().clear();
        assert_eq!(w.deliverer.deliver(&next).await, Disposition::Done);
        let pushes = w.sender.pushes.lock().unwrap().clone();
        assert_eq!(pushes.len(), 2);
        assert_eq!(pushes[1].0, arn("busy"));
    }

    #[test]
    fn sms_and_push_texts_fit_their_limits_at_character_boundaries() {
        let long = "é".repeat(2_000);
        let sms = sms_text("Title", &long);
        assert_eq!(sms.chars().count(), MAX_SMS_CHARS);
        assert!(sms.ends_with('…'));
        assert_eq!(sms_text("T", "short"), "T: short");
        let (title, body) = push_text(&"ü".repeat(300), &"😀".repeat(1_000));
        assert!(title.len() <= 200 && body.len() <= 2_000);
        assert!(title.ends_with('…') && body.ends_with('…'));
        assert_eq!(push_text("a", "b"), ("a".to_owned(), "b".to_owned()));
    }

    #[tokio::test]
    async fn suppressed_and_missing_addresses_are_skipped_with_a_record() {
        let w = world_with(Contact {
            email: Some("A@b.co".into()),
            ..Contact::default()
        })
        .await;
        w.directory
            .suppressed
            .lock()
            .unwrap()
            .insert("a@b.co".into());
        assert_eq!(
            w.deliverer
                .deliver(&job(Channel::Email, Category::Transactional))
                .await,
            Disposition::Done
        );
        assert_eq!(
            w.deliverer
                .deliver(&job(Channel::Push, Category::Transactional))
                .await,
            Disposition::Done
        );
        let records = w.directory.records.lock().unwrap().clone();
        assert!(
            records.iter().all(|r| r.state == DeliveryState::Skipped),
            "{records:?}"
        );
        assert!(w.sender.emails.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn quiet_hours_requeue_marketing_with_a_delay() {
        // The fixed clock says 12:00 UTC: inside 11:00-13:00.
        let w = world_with(Contact {
            email: Some("a@b.co".into()),
            quiet_hours: Some(herald::domain::contact::QuietHours {
                start: "11:00".into(),
                end: "13:00".into(),
            }),
            ..Contact::default()
        })
        .await;
        assert_eq!(
            w.deliverer
                .deliver(&job(Channel::Email, Category::Marketing))
                .await,
            Disposition::Done
        );
        let sent = w.requeue.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].delay_seconds, Some(900));
        assert!(w.sender.emails.lock().unwrap().is_empty());
    }

    /// Runs the requeued copies (and what they requeue) until none is left.
    async fn run_requeued(w: &World) -> Vec<Disposition> {
        let mut out = Vec::new();
        for _ in 0..20 {
            let queued: Vec<_> = w.requeue.sent.lock().unwrap().drain(..).collect();
            if queued.is_empty() {
                break;
            }
            for m in queued {
                let next: DeliveryJob = serde_json::from_str(&m.body).unwrap();
                out.push(w.deliverer.deliver(&next).await);
            }
        }
        out
    }

    fn state_of(w: &World) -> DeliveryState {
        w.directory.records.lock().unwrap()[0].state
    }

    #[tokio::test]
    async fn a_duplicate_whose_contact_read_is_throttled_never_overwrites_a_sent_record() {
        let w = world_with(Contact {
            email: Some("a@b.co".into()),
            ..Contact::default()
        })
        .await;
        let j = job(Channel::Email, Category::Transactional);
        assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
        assert_eq!(state_of(&w), DeliveryState::Sent);
        // Copy B: its contact read is throttled, so it waits with a delay.
        w.directory.fail_contact_reads.store(1, Ordering::Relaxed);
        assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
        assert_eq!(
            state_of(&w),
            DeliveryState::Sent,
            "B holds no claim: writes nothing"
        );
        let later = run_requeued(&w).await;
        assert!(later.iter().all(|d| *d == Disposition::Done), "{later:?}");
        assert_eq!(w.sender.emails.lock().unwrap().len(), 1, "one email");
    }

    #[tokio::test]
    async fn giving_up_without_the_claim_leaves_another_copys_record_alone() {
        let w = world_with(Contact {
            email: Some("a@b.co".into()),
            ..Contact::default()
        })
        .await;
        let j = job(Channel::Email, Category::Transactional);
        assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
        // A copy that has waited past the limit, and whose store read fails once more.
        let old = DeliveryJob {
            retrying_since: Some("2026-01-01T00:00:00Z".into()),
            attempt: 40,
            ..j.clone()
        };
        w.directory.fail_contact_reads.store(1, Ordering::Relaxed);
        assert!(matches!(
            w.deliverer.deliver(&old).await,
            Disposition::Poison(_)
        ));
        assert_eq!(
            state_of(&w),
            DeliveryState::Sent,
            "not overwritten as failed"
        );
    }

    #[tokio::test]
    async fn a_send_whose_answer_was_lost_is_never_sent_again() {
        let w = world_with(Contact {
            phone: Some("+15555550100".into()),
            ..Contact::default()
        })
        .await;
        w.sender.lose_answers.store(1, Ordering::Relaxed);
        let j = job(Channel::Sms, Category::Transactional);
        let first = w.deliverer.deliver(&j).await;
        assert!(
            matches!(&first, Disposition::Poison(why) if why.contains("outcome unknown")),
            "to the DLQ with the reason: {first:?}"
        );
        assert_eq!(state_of(&w), DeliveryState::Unknown);
        // Every later copy (an SQS duplicate, a DLQ redrive) finds it settled.
        assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
        assert!(run_requeued(&w).await.is_empty());
        assert_eq!(
            w.sender.sms.lock().unwrap().len(),
            1,
            "the one send the provider took"
        );
    }

    #[tokio::test]
    async fn an_abandoned_claim_is_settled_unknown_not_resent() {
        let w = world_with(Contact {
            email: Some("a@b.co".into()),
            ..Contact::default()
        })
        .await;
        let j = job(Channel::Email, Category::Transactional);
        // A copy claimed it two minutes ago and died (before or after sending: unknown).
        w.directory.records.lock().unwrap().push(DeliveryRecord {
            notification_id: j.notification_id.clone(),
            user_id: j.user_id.clone(),
            channel: j.channel,
            state: DeliveryState::Sending,
            detail: None,
            updated_at: format!("{:.3}", noon() - jiff::SignedDuration::from_mins(2)),
            claim: Some("dead-copy".into()),
            sent_to: Vec::new(),
            skip: None,
            per_user: false,
        });
        assert!(matches!(
            w.deliverer.deliver(&j).await,
            Disposition::Poison(_)
        ));
        assert_eq!(state_of(&w), DeliveryState::Unknown);
        assert!(w.sender.emails.lock().unwrap().is_empty(), "not resent");
    }

    #[tokio::test]
    async fn a_duplicate_of_a_partly_sent_push_reaches_only_the_devices_left() {
        let arn = |d: &str| format!("arn:aws:sns:us-east-1:1:endpoint/GCM/app/{d}");
        let mut w = world_with(Contact {
            push: vec![arn("ok"), arn("busy")],
            ..Contact::default()
        })
        .await;
        w.deliverer.mobile = Arc::new(FlakyDevices(w.sender.clone()));
        let j = job(Channel::Push, Category::Transactional);
        assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
        assert_eq!(w.sender.pushes.lock().unwrap().len(), 1);
        // A plain duplicate (no list of devices left) arrives once "busy" recovered.
        w.deliverer.mobile = w.sender.clone();
        assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
        run_requeued(&w).await;
        let pushes: Vec<String> = w
            .sender
            .pushes
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.0.clone())
            .collect();
        assert_eq!(pushes, vec![arn("ok"), arn("busy")], "each device once");
        assert_eq!(state_of(&w), DeliveryState::Sent);
    }

    #[tokio::test]
    async fn an_sms_opt_out_at_the_provider_is_a_suppression_not_a_failure() {
        let w = world_with(Contact {
            phone: Some("+15555550100".into()),
            ..Contact::default()
        })
        .await;
        w.sender.opted_out.store(true, Ordering::Relaxed);
        let j = job(Channel::Sms, Category::Transactional);
        assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done, "no DLQ");
        assert_eq!(state_of(&w), DeliveryState::Skipped);
        let t1 = TenantId::parse("t1", "t").unwrap();
        assert!(w
            .directory
            .is_suppressed(&t1, "+15555550100")
            .await
            .unwrap());
    }

    /// Push whose first device gets it and whose second meets `second`.
    struct SecondDevice {
        inner: Arc<RecordingSender>,
        second: fn() -> SendError,
    }

    #[async_trait]
    impl MobileSender for SecondDevice {
        async fn send_sms(&self, sms: &Sms) -> Result<String, SendError> {
            self.inner.send_sms(sms).await
        }
        async fn send_push(
            &self,
            endpoint: &str,
            title: &str,
            body: &str,
        ) -> Result<String, SendError> {
            if endpoint.ends_with("/two") {
                return Err((self.second)());
            }
            self.inner.send_push(endpoint, title, body).await
        }
    }

    fn pushed(w: &World) -> Vec<String> {
        w.sender
            .pushes
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.0.clone())
            .collect()
    }

    #[tokio::test]
    async fn a_store_fault_mid_push_keeps_the_devices_already_reached() {
        let arn = |d: &str| format!("arn:aws:sns:us-east-1:1:endpoint/GCM/app/{d}");
        let w = world_with(Contact {
            push: vec![arn("one"), arn("two")],
            ..Contact::default()
        })
        .await;
        // "one" is pushed; the suppression read of "two" fails before it is tried.
        w.directory
            .fail_suppression_of
            .lock()
            .unwrap()
            .insert(arn("two"));
        let j = job(Channel::Push, Category::Transactional);
        assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
        // A plain duplicate, and the requeued copy: "two" once, "one" never again.
        assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
        run_requeued(&w).await;
        assert_eq!(pushed(&w), vec![arn("one"), arn("two")]);
    }

    #[tokio::test]
    async fn a_device_whose_answer_was_lost_is_never_pushed_again() {
        let arn = |d: &str| format!("arn:aws:sns:us-east-1:1:endpoint/GCM/app/{d}");
        let mut w = world_with(Contact {
            push: vec![arn("one"), arn("two")],
            ..Contact::default()
        })
        .await;
        // "one" goes out but its answer is lost; "two" is throttled.
        w.sender.lose_answers.store(1, Ordering::Relaxed);
        w.deliverer.mobile = Arc::new(SecondDevice {
            inner: w.sender.clone(),
            second: || SendError::Throttled(herald::error::CallError::message("Throttled")),
        });
        let j = job(Channel::Push, Category::Transactional);
        assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
        w.deliverer.mobile = w.sender.clone();
        assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
        run_requeued(&w).await;
        assert_eq!(pushed(&w), vec![arn("one"), arn("two")], "each device once");
    }

    /// A copy that finds the job skipped by another (which died before marking its
    /// campaign) marks it with the reason the record keeps.
    #[tokio::test]
    async fn a_skip_found_settled_is_marked_with_its_own_reason() {
        use herald::domain::campaign::{AudienceSpec, Campaign, CampaignRef, CampaignRequest};
        use herald::fake::InMemoryCampaigns;
        use herald::ports::CampaignStore;
        let campaigns = Arc::new(InMemoryCampaigns::default());
        let request = CampaignRequest::parse(
            &serde_json::json!({"name": "n", "title": "T", "body": "B", "channels": ["email"],
                "audience": {"users": ["u1"]}, "send_at": "now"}),
            noon(),
        )
        .unwrap();
        let mut campaign = Campaign::new(
            TenantId::parse("t1", "t").unwrap(),
            herald::domain::ids::CampaignId::generate(),
            &request,
            AudienceSpec::Inline {
                users: 1,
                chunks: 1,
            },
            noon(),
        );
        campaign.status = herald::domain::campaign::CampaignStatus::Running;
        campaigns
            .create_campaign(&campaign, &[], None)
            .await
            .unwrap();
        let mut w = world();
        w.deliverer.campaigns = Some(Arc::new(CampaignGate::new(campaigns.clone())));
        let j = DeliveryJob {
            campaign: Some(CampaignRef {
                id: campaign.id.clone(),
                page: 0,
                slot: 0,
            }),
            ..job(Channel::Email, Category::Marketing)
        };
        w.directory.records.lock().unwrap().push(DeliveryRecord {
            notification_id: j.notification_id.clone(),
            user_id: j.user_id.clone(),
            channel: j.channel,
            state: DeliveryState::Skipped,
            detail: Some("user opted out of marketing on email".into()),
            updated_at: format!("{:.3}", noon()),
            claim: Some("first-copy".into()),
            sent_to: Vec::new(),
            skip: Some(SkipReason::OptedOut),
            per_user: false,
        });
        assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
        let progress = campaigns.progress(&campaign).await.unwrap();
        assert_eq!(
            progress.skipped_by.get("opted_out"),
            Some(&1),
            "{progress:?}"
        );
    }
}
