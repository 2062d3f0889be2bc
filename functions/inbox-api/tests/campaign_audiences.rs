//! `POST /v1/campaigns` with an S3 audience, over in-memory stores: a tenant may use only the
//! files under its own prefix in the AudienceBucket; a campaign pins the file's version and
//! must be done reading it before the bucket's lifecycle rule deletes it.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use herald::auth::{claims, jwt_request_context, AuthSettings};
use herald::config::Vars;
use herald::fake::{InMemoryAudiences, InMemoryCampaigns, RecordingQueue, RecordingScheduler};
use herald::ports::SystemClock;
use inbox_api::campaigns::{routes, CampaignDeps};
use serde_json::{json, Value};
use tower::ServiceExt;

const BUCKET: &str = "audiences";

struct Api {
    deps: Arc<CampaignDeps>,
    audiences: Arc<InMemoryAudiences>,
}

fn api() -> Api {
    let audiences = Arc::new(InMemoryAudiences::default());
    let deps = Arc::new(CampaignDeps {
        campaigns: Arc::new(InMemoryCampaigns::default()),
        audiences: audiences.clone(),
        scheduler: Arc::new(RecordingScheduler::default()),
        queue: Arc::new(RecordingQueue::default()),
        audience_bucket: BUCKET.into(),
        audience_retention_days: 30,
        auth: AuthSettings::from_vars(&Vars::default()).unwrap(),
        clock: Arc::new(SystemClock),
    });
    Api { deps, audiences }
}

impl Api {
    fn upload(&self, key: &str, body: &str) {
        self.audiences
            .files
            .lock()
            .unwrap()
            .insert((BUCKET.into(), key.into()), body.as_bytes().to_vec());
    }

    fn uploaded_at(&self, key: &str, at: jiff::Timestamp) {
        self.audiences
            .modified
            .lock()
            .unwrap()
            .insert((BUCKET.into(), key.into()), at);
    }

    /// `POST /v1/campaigns` as a service of `tenant`, with `audience`, now.
    async fn create(&self, tenant: &str, audience: Value) -> (u16, Value) {
        self.create_at(tenant, audience, "now").await
    }

    async fn create_at(&self, tenant: &str, audience: Value, send_at: &str) -> (u16, Value) {
        let body = json!({"name": "n", "title": "T", "body": "B", "channels": ["inbox"],
            "audience": audience, "send_at": send_at});
        let request = Request::post("/v1/campaigns")
            .extension(jwt_request_context(
                claims(&[("custom:tenant", tenant), ("scope", "herald/campaigns")]),
                None,
            ))
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = routes(self.deps.clone()).oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

#[tokio::test]
async fn a_tenant_uses_only_the_audience_files_under_its_prefix() {
    let api = api();
    for key in ["acme/users.txt", "globex/users.txt", "users.txt"] {
        api.upload(key, "alice\nbob\n");
    }
    let (status, created) = api
        .create("acme", json!({"s3": "s3://audiences/acme/users.txt"}))
        .await;
    assert_eq!(status, 201, "{created}");
    // Another tenant's file, one outside any prefix, or a way out of the prefix: refused,
    // though each exists.
    for uri in [
        "s3://audiences/globex/users.txt",
        "s3://audiences/users.txt",
        "s3://audiences/acme/../globex/users.txt",
    ] {
        let (status, err) = api.create("acme", json!({"s3": uri})).await;
        assert_eq!(status, 400, "{uri}: {err}");
        assert_eq!(err["error"]["field"], "audience.s3", "{err}");
        assert_eq!(err["error"]["code"], "invalid_value", "{err}");
    }
    let (status, created) = api
        .create("globex", json!({"s3": "s3://audiences/globex/users.txt"}))
        .await;
    assert_eq!(status, 201, "{created}");
}

#[tokio::test]
async fn a_campaign_pins_its_file_and_must_read_it_before_the_bucket_deletes_it() {
    let api = api();
    let day = jiff::SignedDuration::from_hours(24);
    let now = jiff::Timestamp::now();
    let audience = json!({"s3": "s3://audiences/acme/users.txt"});
    api.upload("acme/users.txt", "alice\nbob\n");
    api.uploaded_at("acme/users.txt", now - day * 10);

    // Kept 30 days, so 20 more; a campaign must be done a day before.
    let (status, created) = api.create("acme", audience.clone()).await;
    assert_eq!(status, 201, "{created}");
    let id = herald::domain::ids::CampaignId::parse(created["id"].as_str().unwrap(), "id").unwrap();
    let tenant = herald::TenantId::parse("acme", "tenant").unwrap();
    let stored = api
        .deps
        .campaigns
        .campaign(&tenant, &id)
        .await
        .unwrap()
        .unwrap();
    let herald::domain::campaign::AudienceSpec::S3 { etag, .. } = &stored.audience else {
        panic!("{stored:?}");
    };
    assert_eq!(
        etag.as_deref(),
        Some(InMemoryAudiences::etag(b"alice\nbob\n").as_str()),
        "the version seen is pinned"
    );
    let at = |days: i32| (now + day * days).to_string();
    let (status, created) = api.create_at("acme", audience.clone(), &at(18)).await;
    assert_eq!(status, 201, "{created}");
    let (status, err) = api.create_at("acme", audience.clone(), &at(19)).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["field"], "send_at", "{err}");
    assert_eq!(err["error"]["code"], "beyond_retention", "{err}");
}
