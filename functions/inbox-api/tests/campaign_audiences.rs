//! `POST /v1/campaigns` with an S3 audience, over in-memory stores: a tenant may use only the
//! files under its own prefix in the AudienceBucket.

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

    /// `POST /v1/campaigns` as a service of `tenant`, with `audience`.
    async fn create(&self, tenant: &str, audience: Value) -> (u16, Value) {
        let body = json!({"name": "n", "title": "T", "body": "B", "channels": ["inbox"],
            "audience": audience, "send_at": "now"});
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
