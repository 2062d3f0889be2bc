//! The three channel senders: email through SES (rendered from templates/email/, with the
//! tenant tag and the one-click unsubscribe link), SMS and push through SNS (one send per
//! device; a dead endpoint is suppressed, a retry goes only to the devices left).

use herald::domain::delivery::outcome::{push_outcome, Outcome};
use herald::domain::delivery::text::{push_text, sms_text};
use herald::domain::delivery::DeliveryJob;
use herald::domain::digest::DigestEvent;
use herald::domain::notification::Category;
use herald::ports::{Email, SendError, Sms};
use herald::Channel;

use crate::Deliverer;

/// A digest's events as its message carries them (`data.digest`), and how many it counts
/// beyond those: none for any other job.
fn digest_events(job: &DeliveryJob) -> (Vec<DigestEvent>, u64) {
    let Some(digest) = job.data.as_ref().and_then(|d| d.get("digest")) else {
        return (Vec::new(), 0);
    };
    let events: Vec<DigestEvent> = digest
        .get("events")
        .and_then(|e| serde_json::from_value(e.clone()).ok())
        .unwrap_or_default();
    let count = digest.get("count").and_then(|c| c.as_u64()).unwrap_or(0);
    let more = count.saturating_sub(events.len() as u64);
    (events, more)
}

impl Deliverer {
    /// The email for `addresses[0]` in the contact's `locale`: rendered from the templates,
    /// with the tenant's tag and, for marketing, the one-click unsubscribe link; `None` when
    /// the address is on the suppression list.
    pub(crate) async fn email_for(
        &self,
        job: &DeliveryJob,
        locale: Option<&str>,
        addresses: &[String],
    ) -> Result<Option<Email>, SendError> {
        let to = &addresses[0];
        if self.suppressed(job, to).await? {
            return Ok(None);
        }
        let list_unsubscribe = self.unsubscribe_link(job).await?;
        let (events, more) = digest_events(job);
        let parts = herald::domain::email::render_digest(
            locale,
            &job.title,
            &job.body,
            list_unsubscribe.as_deref(),
            &events,
            more,
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
        Ok(Some(email))
    }

    /// Sends on the job's channel; email in the contact's `locale`.
    pub(crate) async fn send(
        &self,
        job: &DeliveryJob,
        locale: Option<&str>,
        addresses: &[String],
    ) -> Result<Outcome, SendError> {
        match job.channel {
            Channel::Email => {
                let Some(email) = self.email_for(job, locale, addresses).await? else {
                    return Ok(Outcome::Suppressed);
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
                                self.forget_device(job, endpoint).await;
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
}
