//! A campaign whose audience file can no longer be read as it was pinned (gone, replaced,
//! access denied, a line too long) fails, visibly: status `failed` with the reason in
//! `failure` (what `GET /v1/campaigns/{id}` shows), an error log, and a `CampaignsFailed`
//! metric that alarms. Retrying would not help, so the page is not retried into the DLQ
//! while the campaign shows `running` forever. What was enqueued before still goes out.

use herald::consumer::Disposition;
use herald::domain::campaign::{AudienceUnreadable, Campaign, CampaignStatus};
use herald::telemetry::Metric;
use herald::StoreError;

use crate::CampaignRunner;

impl CampaignRunner {
    /// Page `page` of `campaign` could not read its audience: the campaign fails (once;
    /// a campaign cancelled or failed meanwhile stays as it is).
    pub(crate) async fn fail(
        &self,
        campaign: &Campaign,
        page: u32,
        why: &AudienceUnreadable,
    ) -> Result<Disposition, StoreError> {
        let now = self.clock.now();
        let failed = self
            .campaigns
            .transition(
                &campaign.tenant,
                &campaign.id,
                &[CampaignStatus::Scheduled, CampaignStatus::Running],
                CampaignStatus::Failed,
                now,
                Some(&why.to_string()),
            )
            .await?;
        if failed {
            tracing::error!(page, reason = why.reason(), error = %why, "campaign failed");
            herald::telemetry::emit(
                "campaigns",
                &[("reason", why.reason())],
                &[Metric::count("CampaignsFailed", 1)],
            );
        }
        Ok(Disposition::Done)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use herald::domain::campaign::{AudienceSpec, CampaignRequest, CampaignWork};
    use herald::domain::ids::CampaignId;
    use herald::fake::{
        FixedClock, InMemoryAudiences, InMemoryCampaigns, InMemoryDirectory, RecordingQueue,
        RecordingScheduler,
    };
    use herald::ports::{AudienceFiles, CampaignStore};
    use herald::TenantId;
    use serde_json::json;

    use super::*;

    const BUCKET: &str = "audiences";
    const KEY: &str = "acme/users.txt";

    struct World {
        runner: CampaignRunner,
        campaigns: Arc<InMemoryCampaigns>,
        audiences: Arc<InMemoryAudiences>,
        work: Arc<RecordingQueue>,
        notifications: Arc<RecordingQueue>,
    }

    fn world() -> World {
        let campaigns = Arc::new(InMemoryCampaigns::default());
        let audiences = Arc::new(InMemoryAudiences::default());
        let work = Arc::new(RecordingQueue::default());
        let notifications = Arc::new(RecordingQueue::default());
        let runner = CampaignRunner {
            campaigns: campaigns.clone(),
            directory: Arc::new(InMemoryDirectory::default()),
            audiences: audiences.clone(),
            scheduler: Arc::new(RecordingScheduler::default()),
            work: work.clone(),
            notifications: notifications.clone(),
            clock: Arc::new(FixedClock("2026-03-01T12:00:00Z".parse().unwrap())),
        };
        World {
            runner,
            campaigns,
            audiences,
            work,
            notifications,
        }
    }

    fn file(users: std::ops::Range<usize>, prefix: &str) -> Vec<u8> {
        users
            .map(|i| format!("{prefix}{i}\n"))
            .collect::<String>()
            .into_bytes()
    }

    impl World {
        fn upload(&self, bytes: Option<Vec<u8>>) {
            let mut files = self.audiences.files.lock().unwrap();
            let at = (BUCKET.to_owned(), KEY.to_owned());
            match bytes {
                Some(bytes) => files.insert(at, bytes),
                None => files.remove(&at),
            };
        }

        /// A campaign of the uploaded file, pinned as the API pins it, stored and started.
        async fn started(&self) -> Campaign {
            let inspected = self.audiences.inspect(BUCKET, KEY).await.unwrap().unwrap();
            let now = self.runner.clock.now();
            let request = CampaignRequest::parse(
                &json!({"name": "n", "title": "T", "body": "B", "channels": ["inbox"],
                    "audience": {"s3": format!("s3://{BUCKET}/{KEY}")}, "send_at": "now"}),
                now,
            )
            .unwrap();
            let campaign = Campaign::new(
                TenantId::parse("acme", "tenant").unwrap(),
                CampaignId::generate(),
                &request,
                AudienceSpec::S3 {
                    bucket: BUCKET.into(),
                    key: KEY.into(),
                    column: inspected.column,
                    etag: inspected.etag,
                },
                now,
            );
            self.campaigns
                .create_campaign(&campaign, &[], None)
                .await
                .unwrap();
            let start = CampaignWork::Start {
                tenant: campaign.tenant.clone(),
                campaign: campaign.id.clone(),
            };
            self.runner
                .run(
                    &start,
                    crate::Step {
                        message_id: "start",
                        trace: None,
                    },
                )
                .await
                .unwrap();
            campaign
        }

        /// Runs the page work items queued so far, one after another.
        async fn run_pages(&self) -> Vec<Result<Disposition, String>> {
            let mut done = 0;
            let mut results = Vec::new();
            loop {
                let bodies = self.work.bodies();
                let Some(body) = bodies.get(done) else {
                    return results;
                };
                done += 1;
                let work: CampaignWork = serde_json::from_str(body).unwrap();
                let message_id = format!("work-{done}");
                results.push(
                    self.runner
                        .run(
                            &work,
                            crate::Step {
                                message_id: &message_id,
                                trace: None,
                            },
                        )
                        .await
                        .map_err(|e| e.to_string()),
                );
            }
        }

        async fn stored(&self, campaign: &Campaign) -> Campaign {
            self.campaigns
                .campaign(&campaign.tenant, &campaign.id)
                .await
                .unwrap()
                .unwrap()
        }
    }

    #[tokio::test]
    async fn a_file_gone_before_the_start_fails_the_campaign() {
        let w = world();
        w.upload(Some(file(0..10, "u")));
        let campaign = w.started().await;
        w.upload(None); // deleted, or expired by the bucket's lifecycle rule
        let results = w.run_pages().await;
        assert!(
            matches!(results[..], [Ok(Disposition::Done)]),
            "{results:?}"
        );
        let stored = w.stored(&campaign).await;
        assert_eq!(stored.status, CampaignStatus::Failed);
        let failure = stored.failure.unwrap_or_default();
        assert!(failure.contains("no longer exists"), "{failure}");
        assert!(w.notifications.bodies().is_empty());
        // A page of it delivered again changes nothing.
        let again = CampaignWork::Page {
            tenant: campaign.tenant.clone(),
            campaign: campaign.id.clone(),
            page: 0,
            cursor: 0,
        };
        assert_eq!(
            w.runner
                .run(
                    &again,
                    crate::Step {
                        message_id: "again",
                        trace: None
                    }
                )
                .await
                .unwrap(),
            Disposition::Done
        );
    }

    #[tokio::test]
    async fn a_file_replaced_mid_campaign_fails_it_instead_of_reading_the_new_one() {
        let w = world();
        w.upload(Some(file(0..1_200, "first-")));
        let campaign = w.started().await;
        // Page 0 reads the first 500 users, then the file is replaced by one whose lines
        // are shorter: page 1's byte cursor would land mid-line in it.
        let work: CampaignWork = serde_json::from_str(&w.work.bodies()[0]).unwrap();
        w.runner
            .run(
                &work,
                crate::Step {
                    message_id: "work",
                    trace: None,
                },
            )
            .await
            .unwrap();
        w.upload(Some(file(0..1_200, "x")));
        let results = w.run_pages().await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let stored = w.stored(&campaign).await;
        assert_eq!(stored.status, CampaignStatus::Failed);
        let failure = stored.failure.clone().unwrap_or_default();
        assert!(
            failure.contains("changed after the campaign was created"),
            "{failure}"
        );
        let sent = w.notifications.bodies();
        assert_eq!(
            sent.len(),
            500,
            "page 0's users, and nobody from the new file"
        );
        assert!(sent.iter().all(|n| n.contains("\"first-")));
        let progress = w.campaigns.progress(&stored).await.unwrap();
        assert_eq!(progress.enqueued, 500);
    }

    #[tokio::test]
    async fn a_file_herald_may_not_read_fails_the_campaign() {
        let w = world();
        w.upload(Some(file(0..10, "u")));
        let campaign = w.started().await;
        w.audiences
            .denied
            .lock()
            .unwrap()
            .insert((BUCKET.into(), KEY.into()));
        w.run_pages().await;
        let stored = w.stored(&campaign).await;
        assert_eq!(stored.status, CampaignStatus::Failed);
        assert!(stored.failure.unwrap_or_default().contains("denied"));
    }
}
