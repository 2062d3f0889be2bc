//! What the local stack adds to the functions' own log lines: one readable line per send
//! (`email → u1@example.com "Hi"`, logged by a wrapper of the senders inside deliver's span,
//! which names the tenant, user and notification), and a campaign's progress while it runs
//! (`cargo xtask dev` polls the campaigns seen on the campaign queue).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use herald::consumer::{BatchHandler, Disposition, QueueMessage};
use herald::domain::campaign::{CampaignStatus, CampaignWork, Progress};
use herald::domain::ids::{CampaignId, TenantId};
use herald::ports::{CampaignStore, Email, EmailSender, MobileSender, SendError, Sms};
use tokio_util::sync::CancellationToken;

/// The email sender, with a line for each email it sent.
pub struct LoggedEmail(pub Arc<dyn EmailSender>);

#[async_trait]
impl EmailSender for LoggedEmail {
    async fn send_email(&self, email: &Email) -> Result<String, SendError> {
        let sent = self.0.send_email(email).await;
        if sent.is_ok() {
            tracing::info!("email → {} {:?}", email.to, email.subject);
        }
        sent
    }
}

/// The SMS and push sender, with a line for each message it sent.
pub struct LoggedMobile(pub Arc<dyn MobileSender>);

#[async_trait]
impl MobileSender for LoggedMobile {
    async fn send_sms(&self, sms: &Sms) -> Result<String, SendError> {
        let sent = self.0.send_sms(sms).await;
        if sent.is_ok() {
            tracing::info!("sms → {} {:?}", sms.to, sms.text);
        }
        sent
    }

    async fn send_push(
        &self,
        endpoint_arn: &str,
        title: &str,
        body: &str,
    ) -> Result<String, SendError> {
        let sent = self.0.send_push(endpoint_arn, title, body).await;
        if sent.is_ok() {
            tracing::info!("push → {endpoint_arn} {title:?}");
        }
        sent
    }
}

/// The campaigns whose work went through the campaign queue, for the progress lines.
#[derive(Clone, Default)]
pub struct CampaignsSeen(Arc<Mutex<BTreeSet<(TenantId, CampaignId)>>>);

impl CampaignsSeen {
    fn note(&self, work: &CampaignWork) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((work.tenant().clone(), work.campaign().clone()));
    }

    fn all(&self) -> Vec<(TenantId, CampaignId)> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn forget(&self, campaign: &(TenantId, CampaignId)) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(campaign);
    }
}

/// The campaign queue's handler, noting each campaign it works on.
pub struct Noting {
    pub inner: Arc<dyn BatchHandler>,
    pub seen: CampaignsSeen,
}

#[async_trait]
impl BatchHandler for Noting {
    async fn handle(&self, batch: &[QueueMessage]) -> Vec<Disposition> {
        for message in batch {
            if let Ok(work) = serde_json::from_str::<CampaignWork>(&message.body) {
                self.seen.note(&work);
            }
        }
        self.inner.handle(batch).await
    }
}

/// One line of a campaign's progress.
pub fn progress_line(
    name: &str,
    tenant: &TenantId,
    id: &CampaignId,
    status: CampaignStatus,
    p: &Progress,
) -> String {
    let sent: Vec<String> = p
        .sent
        .iter()
        .map(|(channel, n)| format!("{} {n}", channel.as_str()))
        .collect();
    let sent = if sent.is_empty() {
        "0".to_owned()
    } else {
        sent.join(", ")
    };
    format!(
        "campaign {name:?} ({tenant}/{id}): {}; audience {}, enqueued {}, held {}, committed {}, \
         sent {sent}, skipped {}, failed {}",
        status.as_str(),
        p.audience,
        p.enqueued,
        p.held,
        p.committed,
        p.skipped,
        p.failed
    )
}

/// Logs a progress line whenever a seen campaign's counts change, every `interval`, until
/// `shutdown`; a campaign is followed until it is done, cancelled or failed.
pub async fn watch_campaigns(
    store: Arc<dyn CampaignStore>,
    seen: CampaignsSeen,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut last: BTreeMap<(TenantId, CampaignId), String> = BTreeMap::new();
    while !shutdown.is_cancelled() {
        for key in seen.all() {
            let (tenant, id) = &key;
            let Ok(Some(campaign)) = store.campaign(tenant, id).await else {
                continue;
            };
            let Ok(progress) = store.progress(&campaign).await else {
                continue;
            };
            let status = campaign.status_now(&progress);
            let line = progress_line(&campaign.name, tenant, id, status, &progress);
            if last.get(&key) != Some(&line) {
                tracing::info!("{line}");
                last.insert(key.clone(), line);
            }
            if matches!(
                status,
                CampaignStatus::Done | CampaignStatus::Cancelled | CampaignStatus::Failed
            ) {
                seen.forget(&key);
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_progress_line_names_the_campaign_and_its_counts() {
        let mut p = Progress {
            audience: 3,
            enqueued: 3,
            committed: 2,
            skipped: 1,
            ..Progress::default()
        };
        p.sent.insert(herald::Channel::Email, 2);
        let line = progress_line(
            "winter",
            &TenantId::parse("acme", "t").unwrap(),
            &CampaignId::parse("c1", "id").unwrap(),
            CampaignStatus::Running,
            &p,
        );
        assert_eq!(
            line,
            "campaign \"winter\" (acme/c1): running; audience 3, enqueued 3, held 0, \
             committed 2, sent email 2, skipped 1, failed 0"
        );
    }
}
