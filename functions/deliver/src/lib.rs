//! deliver: consumes the delivery queue. Honors preferences, suppression and quiet hours,
//! sends email through SES v2 and SMS/push through SNS, records the outcome per channel.
//! Throttling becomes a retry later; a permanent rejection goes to the DLQ with its reason.

use std::sync::Arc;

use async_trait::async_trait;
use herald::config::{ConfigError, Vars};
use herald::consumer::{BatchHandler, Disposition, QueueConfig, QueueMessage};
use herald::domain::delivery::{decide, Decision, DeliveryJob};
use herald::domain::notification::Category;
use herald::ports::{
    Clock, DeliveryRecord, DeliveryState, Directory, Email, EmailSender, LinkKeys, MobileSender,
    OutgoingMessage, QueueSender, SendError, SystemClock,
};
use herald::telemetry::Metric;
use herald::Channel;

/// SQS's longest per-message delay; longer quiet hours re-defer on the next receive.
const MAX_DELAY_SECONDS: u32 = 900;

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
}

impl Deliverer {
    pub fn from_aws(config: &Config, aws: &aws_config::SdkConfig) -> Self {
        let ddb = aws_sdk_dynamodb::Client::new(aws);
        Self {
            directory: Arc::new(herald::aws::directory::DynamoDirectory::new(
                ddb,
                &config.directory_table,
            )),
            email: Arc::new(herald::aws::ses::SesEmail::new(
                aws_sdk_sesv2::Client::new(aws),
                &config.email_from,
                config.ses_configuration_set.clone(),
            )),
            mobile: Arc::new(herald::aws::sns::SnsMobile::new(aws_sdk_sns::Client::new(
                aws,
            ))),
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
        }
    }
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
    /// One job: skip if already done, decide, send, record.
    pub async fn deliver(&self, job: &DeliveryJob) -> Disposition {
        match self.already_done(job).await {
            Ok(true) => return Disposition::Done,
            Ok(false) => {}
            Err(reason) => return Disposition::Retry(reason),
        }
        let contact = match self.directory.contact(&job.tenant, &job.user_id).await {
            Ok(contact) => contact,
            Err(e) => return Disposition::Retry(e.to_string()),
        };
        match decide(contact.as_ref(), job, self.clock.now()) {
            Decision::Skip(reason) => self.record(job, DeliveryState::Skipped, Some(reason)).await,
            Decision::Defer(seconds) => self.defer(job, seconds).await,
            Decision::Send(addresses) => match self.send(job, &addresses).await {
                Ok(Some(provider_id)) => {
                    self.record(job, DeliveryState::Sent, Some(provider_id))
                        .await
                }
                Ok(None) => {
                    self.record(
                        job,
                        DeliveryState::Skipped,
                        Some("address suppressed".into()),
                    )
                    .await
                }
                Err(SendError::Rejected(reason)) => {
                    let _ = self
                        .record(job, DeliveryState::Failed, Some(reason.to_string()))
                        .await;
                    Disposition::Poison(format!("{} rejected: {reason}", job.channel.as_str()))
                }
                Err(e) => Disposition::Retry(e.to_string()),
            },
        }
    }

    /// A redelivered job whose channel is already sent or skipped needs nothing more.
    async fn already_done(&self, job: &DeliveryJob) -> Result<bool, String> {
        let records = self
            .directory
            .delivery_status(&job.tenant, &job.notification_id)
            .await
            .map_err(|e| e.to_string())?;
        Ok(records.iter().any(|r| {
            r.user_id == job.user_id && r.channel == job.channel && r.state != DeliveryState::Failed
        }))
    }

    /// Sends on the job's channel; `Ok(None)` when the address is suppressed.
    async fn send(
        &self,
        job: &DeliveryJob,
        addresses: &[String],
    ) -> Result<Option<String>, SendError> {
        match job.channel {
            Channel::Email => {
                let to = &addresses[0];
                if self
                    .directory
                    .is_suppressed(&job.tenant, to)
                    .await
                    .map_err(|e| {
                        SendError::Other(herald::error::CallError::message(e.to_string()))
                    })?
                {
                    return Ok(None);
                }
                let email = Email {
                    to: to.clone(),
                    subject: job.title.clone(),
                    text: job.body.clone(),
                    list_unsubscribe: self.unsubscribe_link(job).await?,
                };
                self.email.send_email(&email).await.map(Some)
            }
            Channel::Sms => self
                .mobile
                .send_sms(&addresses[0], &format!("{}: {}", job.title, job.body))
                .await
                .map(Some),
            Channel::Push => {
                // Every device gets it; one dead endpoint must not block the others.
                let mut sent = Vec::new();
                let mut last_error = None;
                for endpoint in addresses {
                    match self.mobile.send_push(endpoint, &job.title, &job.body).await {
                        Ok(id) => sent.push(id),
                        Err(e) => last_error = Some(e),
                    }
                }
                match (sent.is_empty(), last_error) {
                    (true, Some(e)) => Err(e),
                    _ => Ok(Some(sent.join(","))),
                }
            }
            Channel::Inbox => Ok(Some(String::new())),
        }
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

    async fn defer(&self, job: &DeliveryJob, seconds: u32) -> Disposition {
        let mut message = match OutgoingMessage::json(job.key(), job) {
            Ok(m) => m,
            Err(e) => return Disposition::Poison(e.to_string()),
        };
        message.delay_seconds = Some(seconds.min(MAX_DELAY_SECONDS) as i32);
        match self.requeue.send(&[message]).await.pop() {
            Some(Ok(())) => Disposition::Done,
            Some(Err(e)) => Disposition::Retry(format!("could not defer: {e}")),
            None => Disposition::Retry("could not defer".into()),
        }
    }

    async fn record(
        &self,
        job: &DeliveryJob,
        state: DeliveryState,
        detail: Option<String>,
    ) -> Disposition {
        let record = DeliveryRecord {
            notification_id: job.notification_id.clone(),
            user_id: job.user_id.clone(),
            channel: job.channel,
            state,
            detail,
            updated_at: format!("{:.3}", self.clock.now()),
        };
        let mut metrics = vec![Metric::count(state_metric(state), 1)];
        if state == DeliveryState::Sent {
            let latency = herald::telemetry::ms_since(&job.created_at);
            metrics.push(Metric::milliseconds(
                "IngestToSend",
                latency.into_iter().collect(),
            ));
        }
        herald::telemetry::emit("deliver", &[("channel", job.channel.as_str())], &metrics);
        tracing::info!(state = ?state, detail = record.detail.as_deref().unwrap_or_default(), "delivery recorded");
        match self.directory.record_delivery(&job.tenant, &record).await {
            Ok(()) => Disposition::Done,
            // The send happened; failing to record it must not resend, so only log.
            Err(e) if state == DeliveryState::Sent => {
                tracing::error!(id = %job.notification_id, error = %e, "sent but status not recorded");
                Disposition::Done
            }
            Err(e) => Disposition::Retry(e.to_string()),
        }
    }
}

fn state_metric(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Sent => "DeliveriesSent",
        DeliveryState::Skipped => "DeliveriesSkipped",
        DeliveryState::Failed => "DeliveriesFailed",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use herald::domain::contact::Contact;
    use herald::fake::fixtures::{delivery_job as job, noon};
    use herald::fake::{
        FixedClock, InMemoryDirectory, RecordingQueue, RecordingSender, StaticKeys,
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
            .put_contact(&TenantId::parse("t1", "t").unwrap(), &other, &contact, "p2")
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
    async fn throttling_is_a_retry_and_nothing_is_recorded() {
        let w = world_with(Contact {
            phone: Some("+15555550100".into()),
            ..Contact::default()
        })
        .await;
        w.sender.throttle.store(true, Ordering::Relaxed);
        assert!(matches!(
            w.deliverer
                .deliver(&job(Channel::Sms, Category::Transactional))
                .await,
            Disposition::Retry(_)
        ));
        assert!(w.directory.records.lock().unwrap().is_empty());
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
}
