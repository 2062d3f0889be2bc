//! The HTTP contract three ways: openapi.yaml, the template's HttpApi routes and the routers
//! the functions serve must name the same (method, path) pairs.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use serde_norway::Value;
use testkit::template::Template;
use tower::ServiceExt;

fn openapi_routes() -> BTreeSet<(String, String)> {
    testkit::contract::routes().unwrap()
}

fn template_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for f in Template::project().unwrap().functions().unwrap() {
        for (_, event) in f
            .properties
            .get("Events")
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default()
        {
            if event.get("Type").and_then(Value::as_str) == Some("HttpApi") {
                let props = &event["Properties"];
                routes.insert((
                    props["Method"].as_str().unwrap().to_owned(),
                    props["Path"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    routes
}

#[test]
fn openapi_and_template_declare_the_same_routes() {
    assert_eq!(openapi_routes(), template_routes());
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let inbox = Arc::new(herald::fake::InMemoryInbox::default());
    let api = Arc::new(inbox_api::Deps {
        counters: inbox.clone(),
        messages: inbox,
        directory: Arc::new(herald::fake::InMemoryDirectory::default()),
        suppressions: Arc::new(herald::fake::InMemoryDirectory::default()),
        auth: auth_settings(),
        policy: Default::default(),
        keys: Arc::new(herald::fake::StaticKeys::default()),
        marketing_default: true,
        devices: Arc::new(herald::fake::InMemoryDevices::default()),
        endpoints: Arc::new(herald::fake::InMemoryEndpoints::default()),
        push_apps: inbox_api::devices::PushApps {
            fcm: Some("arn:aws:sns:us-east-1:1:app/GCM/herald".into()),
            ..Default::default()
        },
        workflows: Arc::new(herald::fake::InMemoryWorkflows::default()),
        caps: Arc::new(herald::fake::InMemoryWorkflows::default()),
        dead_letters: inbox_api::dead_letters::DeadLetterQueues {
            queues: vec![inbox_api::dead_letters::NamedDeadLetterQueue {
                name: "notifications".into(),
                queue: Arc::new(herald::fake::InMemoryDeadLetters::default()),
            }],
            clock: Arc::new(herald::ports::SystemClock),
        },
        console: Default::default(),
    });
    let ingest = Arc::new(ingest::Deps {
        queue: Arc::new(herald::fake::RecordingQueue::default()),
        auth: auth_settings(),
        workflows: None,
    });
    let campaigns = Arc::new(inbox_api::campaigns::CampaignDeps {
        campaigns: Arc::new(herald::fake::InMemoryCampaigns::default()),
        audiences: Arc::new(herald::fake::InMemoryAudiences::default()),
        scheduler: Arc::new(herald::fake::RecordingScheduler::default()),
        queue: Arc::new(herald::fake::RecordingQueue::default()),
        audience_bucket: "audiences".into(),
        audience_retention_days: 30,
        auth: auth_settings(),
        clock: Arc::new(herald::ports::SystemClock),
    });
    let router = ingest::routes(ingest)
        .merge(inbox_api::routes(api.clone()))
        .merge(inbox_api::campaigns::routes(campaigns))
        .merge(inbox_api::public_routes(api))
        .fallback(herald::http::not_found);
    let service = herald::auth::jwt_request_context(
        herald::auth::claims(&[
            ("custom:tenant", "t"),
            (
                "scope",
                "herald/send herald/contacts herald/inbox herald/campaigns",
            ),
        ]),
        None,
    );
    for (method, path) in openapi_routes() {
        let uri = path
            .replace("{user}", "u1")
            .replace("{room}", "r1")
            .replace("{id}", "n1")
            .replace("{name}", "w1");
        let body = if method == "GET" {
            Body::empty()
        } else {
            Body::from("{}")
        };
        let response = router
            .clone()
            .oneshot(
                Request::builder()
                    .method(method.as_str())
                    .uri(&uri)
                    .extension(service.clone())
                    .body(body)
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            status != 405 && !text.contains("no such route"),
            "{method} {path} is not served: {status} {text}"
        );
    }
}

fn auth_settings() -> herald::auth::AuthSettings {
    herald::auth::AuthSettings::from_vars(&Default::default()).unwrap()
}
