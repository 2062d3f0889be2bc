//! Campaigns on the emulator (sizes kept small: the emulator copies a whole table for every
//! transaction, so it commits only a few dozen notifications a second): a campaign reaches each user exactly once with
//! progress that adds up (and a transactional notification sent meanwhile arrives before the
//! burst is over); the page consumer dying between its enqueue and its checkpoint skips and
//! repeats no one; cancel stops a running campaign; a scheduled start fires through the
//! emulator's Scheduler state; S3 audiences are read a range at a time, of the version the
//! campaign pinned (a file replaced or deleted fails the campaign with the reason).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald::domain::campaign::{Campaign, CampaignRef, CampaignWork, Progress, ProgressMark};
use herald::domain::ids::CampaignId;
use herald::ports::{CampaignStore, HeldGroup, PageRecord};
use herald::{StoreError, TenantId, UserId};
use serde_json::{json, Value};
use testkit::harness::{call, eventually, private_stack};
use testkit::runner::{fire_due_schedules, fire_due_schedules_with, LocalApp, ScheduleFaults};
use tokio_util::sync::CancellationToken;

fn users(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// A campaign, read every second at most (each read queries all its pages, and the emulator
/// is one process: polling it faster slows the campaign down).
async fn poll_campaign(router: &axum::Router, token: &str, id: &str) -> Value {
    tokio::time::sleep(Duration::from_secs(1)).await;
    campaign(router, token, id).await
}

async fn campaign(router: &axum::Router, token: &str, id: &str) -> Value {
    let (status, body) = call(
        router,
        "GET",
        &format!("/v1/campaigns/{id}"),
        Some(token),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    if std::env::var("CAMPAIGN_DEBUG").is_ok() {
        eprintln!("{} {}", body["status"], body["progress"]);
    }
    body
}

async fn unread_total(router: &axum::Router, token: &str, user: &str) -> u64 {
    let (status, body) = call(
        router,
        "GET",
        &format!("/v1/users/{user}/unread"),
        Some(token),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    body["total"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_campaign_reaches_everyone_once_while_transactional_mail_goes_first() {
    let (_emulator, stack) = private_stack(&[]).await.unwrap();
    let app = Arc::new(LocalApp::new(&stack).unwrap());
    let shutdown = CancellationToken::new();
    let workers = app.spawn_workers(1, 1, &shutdown);
    let router = app.router();
    let service = app.service_token("t1");
    let audience = users("fan", 2000);

    let (status, created) = call(
        &router,
        "POST",
        "/v1/campaigns",
        Some(&service),
        Some(json!({
            "name": "winter", "title": "Winter sale", "body": "30% off", "channels": ["inbox"],
            "audience": {"users": audience}, "send_at": "now", "rate_per_second": 200
        })),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "scheduled");
    let id = created["id"].as_str().unwrap().to_owned();

    // A password reset sent during the burst: its own queue, so it does not wait.
    let (status, _) = call(
        &router,
        "POST",
        "/v1/notifications",
        Some(&service),
        Some(
            json!({"notifications": [{"user_id": "vip", "room_id": "security",
            "title": "Reset", "body": "Your code is 123456", "channels": ["inbox"]}]}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 202);
    let admin = app.service_token("t1");
    eventually(
        Duration::from_secs(30),
        "the transactional notification",
        || {
            let (router, admin) = (&router, &admin);
            async move { Ok((unread_total(router, admin, "vip").await == 1).then_some(())) }
        },
    )
    .await
    .unwrap();
    let meanwhile = campaign(&router, &service, &id).await;
    assert!(
        meanwhile["progress"]["committed"].as_u64().unwrap() < 2000,
        "the transactional notification arrived before the burst was over: {meanwhile}"
    );

    let done = eventually(Duration::from_secs(300), "the campaign to finish", || {
        let (router, service, id) = (&router, &service, &id);
        async move {
            let c = poll_campaign(router, service, id).await;
            Ok((c["status"] == "done").then_some(c))
        }
    })
    .await
    .unwrap();
    let progress = &done["progress"];
    assert_eq!(progress["audience"], 2000, "{done}");
    assert_eq!(progress["enqueued"], 2000, "{done}");
    assert_eq!(progress["committed"], 2000, "{done}");
    assert_eq!(progress["skipped"], 0, "{done}");
    assert!(done["started_at"].is_string() && done["fanned_out_at"].is_string());

    // Exactly one notification per user, counted once.
    for user in &audience {
        assert_eq!(unread_total(&router, &admin, user).await, 1, "{user}");
    }
    let (_, messages) = call(
        &router,
        "GET",
        "/v1/users/fan-7/messages",
        Some(&admin),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        messages["messages"].as_array().unwrap().len(),
        1,
        "{messages}"
    );
    assert_eq!(messages["messages"][0]["title"], "Winter sale");

    let (_, list) = call(
        &router,
        "GET",
        "/v1/campaigns?limit=5",
        Some(&service),
        None,
    )
    .await
    .unwrap();
    assert_eq!(list["campaigns"][0]["id"], id.as_str(), "{list}");
    assert_eq!(
        list["campaigns"][0]["status"], "done",
        "the list tells a finished campaign as GET does: {list}"
    );
    shutdown.cancel();
    futures_util::future::join_all(workers).await;
}

/// A store that refuses the first page checkpoint, as if the page consumer died after
/// enqueueing its users and before recording the page.
struct DiesBeforeCheckpoint {
    inner: Arc<dyn CampaignStore>,
    died: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl CampaignStore for DiesBeforeCheckpoint {
    async fn create_campaign(
        &self,
        c: &Campaign,
        chunks: &[Vec<UserId>],
        key: Option<&str>,
    ) -> Result<Campaign, StoreError> {
        self.inner.create_campaign(c, chunks, key).await
    }
    async fn campaign(
        &self,
        t: &TenantId,
        id: &CampaignId,
    ) -> Result<Option<Campaign>, StoreError> {
        self.inner.campaign(t, id).await
    }
    async fn campaigns(
        &self,
        t: &TenantId,
        limit: usize,
        after: Option<&str>,
    ) -> Result<(Vec<Campaign>, Option<String>), StoreError> {
        self.inner.campaigns(t, limit, after).await
    }
    async fn transition(
        &self,
        t: &TenantId,
        id: &CampaignId,
        from: &[herald::domain::campaign::CampaignStatus],
        to: herald::domain::campaign::CampaignStatus,
        at: jiff::Timestamp,
        detail: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.inner.transition(t, id, from, to, at, detail).await
    }
    async fn mark_fanned_out(
        &self,
        t: &TenantId,
        id: &CampaignId,
        at: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        self.inner.mark_fanned_out(t, id, at).await
    }
    async fn audience_chunk(
        &self,
        t: &TenantId,
        id: &CampaignId,
        chunk: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        self.inner.audience_chunk(t, id, chunk).await
    }
    async fn record_page(
        &self,
        t: &TenantId,
        id: &CampaignId,
        page: &PageRecord,
    ) -> Result<Option<PageRecord>, StoreError> {
        if !self.died.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Transient("killed before the checkpoint".into()));
        }
        self.inner.record_page(t, id, page).await
    }
    async fn mark_next_sent(
        &self,
        t: &TenantId,
        id: &CampaignId,
        page: u32,
    ) -> Result<(), StoreError> {
        self.inner.mark_next_sent(t, id, page).await
    }
    async fn held(
        &self,
        t: &TenantId,
        id: &CampaignId,
        at: jiff::Timestamp,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HeldGroup>, StoreError> {
        self.inner.held(t, id, at, after, limit).await
    }
    async fn claim_step(
        &self,
        t: &TenantId,
        id: &CampaignId,
        step: &str,
        token: &str,
    ) -> Result<bool, StoreError> {
        self.inner.claim_step(t, id, step, token).await
    }
    async fn release_group(
        &self,
        t: &TenantId,
        id: &CampaignId,
        group: &str,
        n: u64,
    ) -> Result<bool, StoreError> {
        self.inner.release_group(t, id, group, n).await
    }
    async fn mark(
        &self,
        t: &TenantId,
        marks: &[(CampaignRef, ProgressMark)],
    ) -> Result<(), StoreError> {
        self.inner.mark(t, marks).await
    }
    async fn progress(&self, c: &Campaign) -> Result<Progress, StoreError> {
        self.inner.progress(c).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_consumer_killed_between_enqueue_and_checkpoint_skips_and_repeats_no_one() {
    let (_emulator, stack) = private_stack(&[]).await.unwrap();
    let app = Arc::new(LocalApp::new(&stack).unwrap());
    let router = app.router();
    let service = app.service_token("t1");
    let audience = users("crash", 520); // two pages
    let (status, created) = call(
        &router,
        "POST",
        "/v1/campaigns",
        Some(&service),
        Some(
            json!({"name": "c", "title": "T", "body": "B", "channels": ["inbox"],
            "audience": {"users": audience}, "send_at": "now"}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{created}");
    let tenant = TenantId::parse("t1", "t").unwrap();
    let id = CampaignId::parse(created["id"].as_str().unwrap(), "id").unwrap();

    // Drive the fan-out by hand: start, then page 0 dies before its checkpoint.
    let dying = campaigns::CampaignRunner {
        campaigns: Arc::new(DiesBeforeCheckpoint {
            inner: app.campaigns.campaigns.clone(),
            died: Default::default(),
        }),
        directory: app.campaigns.directory.clone(),
        audiences: app.campaigns.audiences.clone(),
        scheduler: app.campaigns.scheduler.clone(),
        work: app.campaigns.work.clone(),
        notifications: app.campaigns.notifications.clone(),
        clock: app.campaigns.clock.clone(),
    };
    let start = CampaignWork::Start {
        tenant: tenant.clone(),
        campaign: id.clone(),
    };
    dying.run(&start, msg("start")).await.unwrap();
    let page0 = CampaignWork::Page {
        tenant: tenant.clone(),
        campaign: id.clone(),
        page: 0,
        cursor: 0,
    };
    assert!(
        dying.run(&page0, msg("page0")).await.is_err(),
        "died before the checkpoint"
    );
    // Redelivered, page 0 is done again (its 500 users enqueued a second time: the same
    // notification ids, which the inbox counts once), recorded once, and page 1 follows.
    app.campaigns.run(&page0, msg("page0")).await.unwrap();
    app.campaigns
        .run(&page0, msg("page0-duplicate"))
        .await
        .unwrap();
    let page1 = CampaignWork::Page {
        tenant,
        campaign: id.clone(),
        page: 1,
        cursor: 500,
    };
    app.campaigns.run(&page1, msg("page1")).await.unwrap();
    let c = campaign(&router, &service, id.as_str()).await;
    assert_eq!(
        c["progress"]["enqueued"], 520,
        "each user counted once: {c}"
    );
    assert_eq!(c["progress"]["audience"], 520, "{c}");
    assert!(
        c["fanned_out_at"].is_string(),
        "the fan-out is complete: {c}"
    );
    // The writer drops the second copies: the first users' inboxes count one each.
    let shutdown = CancellationToken::new();
    let workers = app.spawn_workers(1, 1, &shutdown);
    eventually(Duration::from_secs(120), "page 0's first users", || {
        let (router, service) = (&router, &service);
        async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok((unread_total(router, service, "crash-9").await == 1).then_some(()))
        }
    })
    .await
    .unwrap();
    for user in &audience[..10] {
        assert_eq!(unread_total(&router, &service, user).await, 1, "{user}");
    }
    shutdown.cancel();
    futures_util::future::join_all(workers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_stops_a_running_campaign_and_skips_what_is_still_queued() {
    let (_emulator, stack) = private_stack(&[]).await.unwrap();
    let app = Arc::new(LocalApp::new(&stack).unwrap());
    let shutdown = CancellationToken::new();
    let workers = app.spawn_workers(1, 1, &shutdown);
    let router = app.router();
    let service = app.service_token("t1");
    let audience = users("stop", 600);
    let (_, created) = call(
        &router,
        "POST",
        "/v1/campaigns",
        Some(&service),
        Some(
            json!({"name": "c", "title": "T", "body": "B", "channels": ["inbox"],
            "audience": {"users": audience}, "send_at": "now", "rate_per_second": 10}),
        ),
    )
    .await
    .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(60), "the first commits", || {
        let (router, service, id) = (&router, &service, &id);
        async move {
            let c = poll_campaign(router, service, id).await;
            Ok((c["progress"]["committed"].as_u64().unwrap() > 0).then_some(()))
        }
    })
    .await
    .unwrap();
    let (status, cancelled) = call(
        &router,
        "DELETE",
        &format!("/v1/campaigns/{id}"),
        Some(&service),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert!(
        cancelled["progress"]["committed"].as_u64().unwrap() > 0,
        "{cancelled}"
    );
    // The answer says what was still pending; the campaign names its notification.
    let p = &cancelled["progress"];
    let settled_then = p["committed"].as_u64().unwrap() + p["skipped"].as_u64().unwrap();
    assert_eq!(
        cancelled["cancelled"]["pending"].as_u64(),
        Some(p["enqueued"].as_u64().unwrap() - settled_then),
        "{cancelled}"
    );
    assert_eq!(cancelled["cancelled"]["held"], 0, "{cancelled}");
    assert_eq!(
        cancelled["notification_id"].as_str().map(str::len),
        Some(26),
        "a ULID: {cancelled}"
    );

    // Everything enqueued settles: committed before the cancel took effect, skipped after.
    let settled = eventually(Duration::from_secs(120), "the queue to drain", || {
        let (router, service, id) = (&router, &service, &id);
        async move {
            let c = poll_campaign(router, service, id).await;
            let p = &c["progress"];
            let settled = p["committed"].as_u64().unwrap() + p["skipped"].as_u64().unwrap();
            Ok((settled == p["enqueued"].as_u64().unwrap()).then_some(c))
        }
    })
    .await
    .unwrap();
    let committed = settled["progress"]["committed"].as_u64().unwrap();
    assert!(committed < 600, "the fan-out stopped: {settled}");
    assert_eq!(
        settled["progress"]["skipped_by"]["cancelled"], settled["progress"]["skipped"],
        "skips are told by reason: {settled}"
    );
    assert_eq!(settled["status"], "cancelled");
    let mut reached = 0;
    for user in &audience {
        reached += unread_total(&router, &service, user).await;
    }
    assert_eq!(reached, committed, "exactly the committed ones are counted");
    // A cancelled campaign cannot be cancelled again into something else.
    let (status, _) = call(
        &router,
        "DELETE",
        &format!("/v1/campaigns/{id}"),
        Some(&service),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    shutdown.cancel();
    futures_util::future::join_all(workers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scheduled_campaign_from_an_s3_file_starts_when_its_schedule_fires() {
    let (_emulator, stack) = private_stack(&[]).await.unwrap();
    let app = Arc::new(LocalApp::new(&stack).unwrap());
    let router = app.router();
    let service = app.service_token("t1");
    let bucket = stack.resource("AudienceBucket").unwrap().reference.clone();
    // A CSV as Excel writes it (a byte order mark, CRLF, quoted fields with commas), with a
    // user_id column, a blank line and one bad id.
    let mut csv = String::from("\u{feff}user_id,name\r\n");
    for i in 0..300 {
        csv.push_str(&format!("s3user-{i},\"Doe, {i}\"\r\n"));
    }
    csv.push_str("\r\nnot an id,bad\r\n");
    let s3 = herald::aws::s3::client(&stack.sdk);
    s3.put_object()
        .bucket(&bucket)
        .key("t1/spring.csv")
        .body(csv.clone().into_bytes().into())
        .send()
        .await
        .unwrap();
    // The same file outside tenant t1's prefix (t2's, or the bucket's root): t1 may not use it.
    for key in ["t2/spring.csv", "spring.csv"] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(csv.clone().into_bytes().into())
            .send()
            .await
            .unwrap();
    }

    // Bad input changes nothing and names the field.
    for (body, field) in [
        (
            json!({"s3": format!("s3://{bucket}/t1/missing.csv")}),
            "audience.s3",
        ),
        (
            json!({"s3": format!("s3://{bucket}/t2/spring.csv")}),
            "audience.s3",
        ),
        (
            json!({"s3": format!("s3://{bucket}/spring.csv")}),
            "audience.s3",
        ),
        (json!({"s3": "s3://someone-elses/x.csv"}), "audience.s3"),
        (json!({"users": []}), "audience.users"),
    ] {
        let (status, err) = call(
            &router,
            "POST",
            "/v1/campaigns",
            Some(&service),
            Some(
                json!({"name": "x", "title": "T", "body": "B", "channels": ["inbox"],
                "audience": body, "send_at": "now"}),
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (400, Some(field)),
            "{err}"
        );
    }
    let (status, err) = call(
        &router,
        "POST",
        "/v1/campaigns",
        Some(&service),
        Some(
            json!({"name": "x", "title": "T", "body": "B", "channels": ["fax"],
            "audience": {"users": ["a"]}, "send_at": "2020-01-01T00:00:00Z"}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 400, "{err}");
    let (_, none) = call(&router, "GET", "/v1/campaigns", Some(&service), None)
        .await
        .unwrap();
    assert_eq!(none["campaigns"], json!([]), "nothing was stored");

    let send_at = jiff::Timestamp::now() + jiff::SignedDuration::from_mins(10);
    let body = json!({"name": "spring", "title": "Spring", "body": "B", "channels": ["inbox"],
        "audience": {"s3": format!("s3://{bucket}/t1/spring.csv")}, "send_at": send_at.to_string()});
    let (status, created) = call(
        &router,
        "POST",
        "/v1/campaigns",
        Some(&service),
        Some(body.clone()),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    // Not due yet: nothing fires; ten minutes on, the start fires and the fan-out runs.
    assert_eq!(
        fire_due_schedules(&app.sdk, &app.schedule_group, jiff::Timestamp::now())
            .await
            .unwrap(),
        0
    );
    let later = send_at + jiff::SignedDuration::from_secs(1);
    assert_eq!(
        fire_due_schedules(&app.sdk, &app.schedule_group, later)
            .await
            .unwrap(),
        1
    );
    let shutdown = CancellationToken::new();
    let workers = app.spawn_workers(1, 1, &shutdown);
    let done = eventually(Duration::from_secs(240), "the campaign to finish", || {
        let (router, service, id) = (&router, &service, &id);
        async move {
            let c = poll_campaign(router, service, id).await;
            Ok((c["status"] == "done").then_some(c))
        }
    })
    .await
    .unwrap();
    assert_eq!(done["progress"]["audience"], 300, "{done}");
    assert_eq!(done["progress"]["committed"], 300, "{done}");
    assert_eq!(
        done["progress"]["invalid"], 1,
        "the bad id is skipped and counted (a blank line is neither): {done}"
    );
    assert_eq!(unread_total(&router, &service, "s3user-299").await, 1);

    // A scheduled campaign cancelled before its time never sends.
    let (_, second) = call(&router, "POST", "/v1/campaigns", Some(&service), Some(body))
        .await
        .unwrap();
    let second_id = second["id"].as_str().unwrap();
    let (status, cancelled) = call(
        &router,
        "DELETE",
        &format!("/v1/campaigns/{second_id}"),
        Some(&service),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("cancelled")),
        "{cancelled}"
    );
    assert_eq!(
        fire_due_schedules(&app.sdk, &app.schedule_group, later)
            .await
            .unwrap(),
        0,
        "its schedule is gone"
    );
    let c = campaign(&router, &service, second_id).await;
    assert_eq!(c["progress"]["enqueued"], 0, "{c}");
    // A finished campaign cannot be cancelled.
    let (status, _) = call(
        &router,
        "DELETE",
        &format!("/v1/campaigns/{id}"),
        Some(&service),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 409);
    shutdown.cancel();
    futures_util::future::join_all(workers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_campaign_whose_file_is_replaced_or_deleted_fails_with_the_reason() {
    let (_emulator, stack) = private_stack(&[]).await.unwrap();
    let app = Arc::new(LocalApp::new(&stack).unwrap());
    let router = app.router();
    let service = app.service_token("t1");
    let bucket = stack.resource("AudienceBucket").unwrap().reference.clone();
    let s3 = herald::aws::s3::client(&stack.sdk);
    let upload = |key: &'static str, body: &'static str| {
        let (s3, bucket) = (s3.clone(), bucket.clone());
        async move {
            s3.put_object()
                .bucket(&bucket)
                .key(key)
                .body(body.as_bytes().to_vec().into())
                .send()
                .await
                .unwrap();
        }
    };
    upload("t1/replaced.txt", "old-1\nold-2\n").await;
    upload("t1/deleted.txt", "gone-1\n").await;
    let mut ids = Vec::new();
    for key in ["t1/replaced.txt", "t1/deleted.txt"] {
        let (status, created) = call(
            &router,
            "POST",
            "/v1/campaigns",
            Some(&service),
            Some(
                json!({"name": key, "title": "T", "body": "B", "channels": ["inbox"],
                "audience": {"s3": format!("s3://{bucket}/{key}")}, "send_at": "now"}),
            ),
        )
        .await
        .unwrap();
        assert_eq!(status, 201, "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    // Before the workers take the starts: one file replaced, the other deleted.
    upload("t1/replaced.txt", "new-1\nnew-2\nnew-3\n").await;
    s3.delete_object()
        .bucket(&bucket)
        .key("t1/deleted.txt")
        .send()
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let workers = app.spawn_workers(1, 1, &shutdown);
    for (id, reason) in ids
        .iter()
        .zip(["changed after the campaign was created", "no longer exists"])
    {
        let failed = eventually(Duration::from_secs(60), "the campaign to fail", || {
            let (router, service) = (&router, &service);
            async move {
                let c = poll_campaign(router, service, id).await;
                Ok((c["status"] == "failed").then_some(c))
            }
        })
        .await
        .unwrap();
        let failure = failed["failure"].as_str().unwrap_or_default();
        assert!(failure.contains(reason), "{failed}");
        assert_eq!(failed["progress"]["enqueued"], 0, "{failed}");
    }
    assert_eq!(unread_total(&router, &service, "new-1").await, 0);
    assert_eq!(unread_total(&router, &service, "old-1").await, 0);
    shutdown.cancel();
    futures_util::future::join_all(workers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_time_holds_users_whose_time_is_hours_away_until_their_release_fires() {
    use herald::fake::ManualClock;

    let (_emulator, stack) = private_stack(&[]).await.unwrap();
    let app = Arc::new(LocalApp::new(&stack).unwrap());
    let router = app.router();
    let service = app.service_token("t1");
    // 09:00 tomorrow (UTC wall clock) in three zones: Tokyo's comes first, then London's,
    // then New York's; a user without a zone gets the campaign's (UTC).
    let tomorrow = jiff::tz::TimeZone::UTC
        .to_datetime(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24))
        .date();
    let wall = tomorrow.at(9, 0, 0, 0);
    for (user, zone) in [
        ("tokyo", "Asia/Tokyo"),
        ("london", "Europe/London"),
        ("newyork", "America/New_York"),
    ] {
        let (status, _) = call(
            &router,
            "PUT",
            &format!("/v1/users/{user}/contact"),
            Some(&service),
            Some(json!({"timezone": zone})),
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
    }
    let (status, created) = call(
        &router,
        "POST",
        "/v1/campaigns",
        Some(&service),
        Some(json!({
            "name": "morning", "title": "Good morning", "body": "B", "channels": ["inbox"],
            "audience": {"users": ["tokyo", "london", "newyork", "nozone"]},
            "send_at": format!("{wall}Z"), "local_time": true
        })),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["local_send_at"],
        wall.to_string(),
        "the wall-clock time each recipient gets it at: {created}"
    );
    let tenant = TenantId::parse("t1", "t").unwrap();
    let id = CampaignId::parse(created["id"].as_str().unwrap(), "id").unwrap();
    let stored = campaign(&router, &service, id.as_str()).await;
    assert_eq!(stored["timezone"], "UTC", "{stored}");
    assert_eq!(stored["local_send_at"], wall.to_string(), "{stored}");
    let instant = |zone: &str| {
        jiff::tz::TimeZone::get(zone)
            .unwrap()
            .to_ambiguous_timestamp(wall)
            .compatible()
            .unwrap()
    };
    let runner_at = |now: jiff::Timestamp| campaigns::CampaignRunner {
        campaigns: app.campaigns.campaigns.clone(),
        directory: app.campaigns.directory.clone(),
        audiences: app.campaigns.audiences.clone(),
        scheduler: app.campaigns.scheduler.clone(),
        work: app.campaigns.work.clone(),
        notifications: app.campaigns.notifications.clone(),
        clock: Arc::new(ManualClock::new(now)),
    };

    // Tokyo's 09:00, a minute early: Tokyo goes now (with a delay of a minute), the others
    // are held, each for their own instant, with a release schedule each.
    let tokyo = instant("Asia/Tokyo");
    let early = runner_at(tokyo - jiff::SignedDuration::from_mins(1));
    early
        .run(
            &CampaignWork::Start {
                tenant: tenant.clone(),
                campaign: id.clone(),
            },
            msg("start"),
        )
        .await
        .unwrap();
    early
        .run(
            &CampaignWork::Page {
                tenant: tenant.clone(),
                campaign: id.clone(),
                page: 0,
                cursor: 0,
            },
            msg("page0"),
        )
        .await
        .unwrap();
    let c = campaign(&router, &service, id.as_str()).await;
    assert_eq!(
        (
            c["progress"]["enqueued"].as_u64(),
            c["progress"]["held"].as_u64()
        ),
        (Some(1), Some(3)),
        "{c}"
    );

    // London's release is due five minutes before London's 09:00; New York's is not yet.
    let london = instant("Europe/London");
    let fired = fire_due_schedules(
        &app.sdk,
        &app.schedule_group,
        london - jiff::SignedDuration::from_mins(4),
    )
    .await
    .unwrap();
    // One schedule per instant: London's, and the zone-less user's (UTC: the same instant in
    // winter).
    assert!(fired >= 1, "London's release fired");
    let at_london = runner_at(london - jiff::SignedDuration::from_mins(4));
    for zone in ["Europe/London", "UTC"] {
        let at = instant(zone);
        at_london
            .run(
                &CampaignWork::Release {
                    tenant: tenant.clone(),
                    campaign: id.clone(),
                    at,
                    after: None,
                },
                msg("release-london"),
            )
            .await
            .unwrap();
    }
    let c = campaign(&router, &service, id.as_str()).await;
    assert_eq!(c["progress"]["held"], 1, "New York waits: {c}");
    assert_eq!(c["progress"]["enqueued"], 3, "{c}");
    // Everyone's release, at New York's time: all enqueued, none twice.
    let newyork = instant("America/New_York");
    fire_due_schedules(&app.sdk, &app.schedule_group, newyork)
        .await
        .unwrap();
    let late = runner_at(newyork);
    for zone in ["Europe/London", "UTC", "America/New_York"] {
        let at = instant(zone);
        late.run(
            &CampaignWork::Release {
                tenant: tenant.clone(),
                campaign: id.clone(),
                at,
                after: None,
            },
            msg("release-newyork"),
        )
        .await
        .unwrap();
    }
    let c = campaign(&router, &service, id.as_str()).await;
    assert_eq!(
        (
            c["progress"]["enqueued"].as_u64(),
            c["progress"]["held"].as_u64()
        ),
        (Some(4), Some(0)),
        "{c}"
    );
}

/// EventBridge Scheduler fires at least once and up to a minute late: a start that fires
/// late and twice still sends the campaign to each recipient once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_start_fired_late_and_twice_reaches_everyone_once() {
    let stack = testkit::harness::test_stack(&[]).await.unwrap();
    let app = Arc::new(LocalApp::new(&stack).unwrap());
    let router = app.router();
    let service = app.service_token("t1");
    let send_at = jiff::Timestamp::now() + jiff::SignedDuration::from_mins(10);
    let audience = users("twice", 5);
    let (status, created) = call(
        &router,
        "POST",
        "/v1/campaigns",
        Some(&service),
        Some(
            json!({"name": "twice", "title": "T", "body": "B", "channels": ["inbox"],
            "audience": {"users": audience}, "send_at": send_at.to_string()}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let faults = ScheduleFaults {
        duplicate: 1.0,
        late_by: Duration::from_secs(60),
    };
    let fire =
        |at: jiff::Timestamp| fire_due_schedules_with(&app.sdk, &app.schedule_group, at, &faults);
    // Up to a minute late, never early; then one firing that delivers the start twice.
    assert_eq!(
        fire(send_at - jiff::SignedDuration::from_secs(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        fire(send_at + jiff::SignedDuration::from_secs(61))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        testkit::harness::queue_depth(&stack, "CampaignQueue")
            .await
            .unwrap(),
        2,
        "the start, delivered twice"
    );
    let shutdown = CancellationToken::new();
    let workers = app.spawn_workers(1, 1, &shutdown);
    let done = eventually(Duration::from_secs(120), "the campaign to finish", || {
        let (router, service, id) = (&router, &service, &id);
        async move {
            let c = poll_campaign(router, service, id).await;
            Ok((c["status"] == "done").then_some(c))
        }
    })
    .await
    .unwrap();
    assert_eq!(done["progress"]["enqueued"], 5, "{done}");
    assert_eq!(done["progress"]["committed"], 5, "{done}");
    for user in &audience {
        assert_eq!(unread_total(&router, &service, user).await, 1, "{user}");
    }
    shutdown.cancel();
    for w in workers {
        w.await.unwrap();
    }
}

/// The queue message a work item came in, by its id.
fn msg(id: &str) -> campaigns::Step<'_> {
    campaigns::Step {
        message_id: id,
        trace: None,
    }
}

/// Campaign schedules carry a retry policy and a dead-letter queue (AWS's defaults retry for
/// a day, then drop the event silently), and local firing pages through every schedule of
/// the group: past the emulator's first page (50), due ones fire too, each once.
#[tokio::test]
async fn every_due_schedule_fires_once_and_each_has_a_retry_policy_and_a_dlq() {
    use herald::aws::scheduler::{EventBridgeScheduler, ScheduleTarget, RETRY_ATTEMPTS};
    use herald::ports::Scheduler;

    let stack = testkit::harness::test_stack(&[]).await.unwrap();
    let vars = stack.function_vars("CampaignsFunction").unwrap();
    let target = ScheduleTarget::from_vars(&vars).unwrap();
    let scheduler = EventBridgeScheduler::new(aws_sdk_scheduler::Client::new(&stack.sdk), &target);
    let due: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    for i in 0..60 {
        let payload = json!({"kind": "start", "tenant": "t", "campaign": format!("c{i}")});
        scheduler
            .schedule_once(&format!("s-{i:03}"), due, &payload.to_string())
            .await
            .unwrap();
    }
    let client = aws_sdk_scheduler::Client::new(&stack.sdk);
    let one = client
        .get_schedule()
        .group_name(&target.group)
        .name("s-007")
        .send()
        .await
        .unwrap();
    let set = one.target().unwrap();
    assert_eq!(
        set.dead_letter_config().and_then(|d| d.arn()),
        Some(target.dlq_arn.as_str())
    );
    assert_eq!(
        set.retry_policy().and_then(|r| r.maximum_retry_attempts()),
        Some(RETRY_ATTEMPTS)
    );
    assert!(target.dlq_arn.ends_with("ScheduleDLQ") || target.dlq_arn.contains("ScheduleDLQ"));

    let fired = fire_due_schedules(&stack.sdk, &target.group, due)
        .await
        .unwrap();
    assert_eq!(fired, 60, "every page of schedules");
    let depth = testkit::harness::queue_depth(&stack, "CampaignQueue")
        .await
        .unwrap();
    assert_eq!(depth, 60);
    assert_eq!(
        fire_due_schedules(&stack.sdk, &target.group, due)
            .await
            .unwrap(),
        0,
        "a fired schedule is gone"
    );
}
