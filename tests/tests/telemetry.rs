//! One notification can be followed end to end: the caller's correlation id travels from
//! ingest through the notifications queue and inbox-writer into the delivery job (real SQS
//! in the emulator), and the X-Ray trace header goes out as `AWSTraceHeader` on every send,
//! read off the requests herald makes. A campaign's pages and notifications stay in the trace
//! of the request that created it.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;

use herald::auth::{claims, jwt_request_context, AuthSettings};
use herald::aws::sqs::SqsSender;
use herald::consumer::{BatchHandler, Disposition};
use herald::domain::campaign::CampaignWork;
use herald::domain::delivery::DeliveryJob;
use herald::domain::ids::CampaignId;
use herald::Notification;
use herald::TenantId;
use serde_json::json;
use testkit::harness::{receive, test_stack};
use testkit::meter::{metered_sqs, CallMeter};
use testkit::runner::LocalApp;
use tower::ServiceExt;

const TRACE: &str = "Root=1-6744f2a0-3d4c2b1a0f9e8d7c6b5a4938;Parent=53995c3f42cd8ad8;Sampled=1";

#[tokio::test]
async fn correlation_id_and_trace_follow_a_notification_to_its_delivery_job() {
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let meter = CallMeter::default();
    let sqs = metered_sqs(&stack.sdk, &meter);
    let queue_url = |id: &str| stack.resource(id).unwrap().reference.clone();

    // ingest, as API Gateway invokes it: verified claims, the caller's correlation id, the
    // invocation's trace.
    let ingest = ingest::app(Arc::new(ingest::Deps {
        queue: Arc::new(SqsSender::new(sqs.clone(), queue_url("NotificationsQueue"))),
        auth: AuthSettings::from_vars(&Default::default()).unwrap(),
        workflows: None,
    }));
    let request = axum::http::Request::post("/v1/notifications")
        .extension(jwt_request_context(
            claims(&[("custom:tenant", "acme"), ("scope", "herald/send")]),
            None,
        ))
        .header("x-correlation-id", "checkout-7781")
        .header("x-amzn-trace-id", TRACE)
        .body(axum::body::Body::from(
            json!({"notifications": [{"user_id": "u1", "room_id": "r1", "title": "Receipt",
                "body": "Thanks", "channels": ["inbox", "email"]}]})
            .to_string(),
        ))
        .unwrap();
    let response = ingest.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["x-correlation-id"], "checkout-7781");
    assert_eq!(
        meter.counts().sqs_trace_headers,
        vec![Some(TRACE.to_owned())]
    );

    let mut queued = receive(&stack, "NotificationsQueue", 30).await.unwrap();
    assert_eq!(queued.len(), 1);
    let notification: Notification = serde_json::from_str(&queued[0].body).unwrap();
    assert_eq!(
        notification.correlation_id.as_deref(),
        Some("checkout-7781")
    );
    // SQS hands the consumer the header it was sent with; moto's SendMessageBatch drops it.
    queued[0].trace_header = Some(TRACE.to_owned());

    meter.reset();
    let writer = inbox_writer::InboxWriter {
        store: app.writer.store.clone(),
        delivery: Arc::new(SqsSender::new(sqs.clone(), queue_url("DeliveryQueue"))),
        channel_queues: Vec::new(),
        campaigns: None,
        policy: app.writer.policy,
        packing: app.writer.packing,
        preferences: None,
        step_schedulers: Vec::new(),
        digests: None,
    };
    assert_eq!(writer.handle(&queued).await, vec![Disposition::Done]);
    assert_eq!(
        meter.counts().sqs_trace_headers,
        vec![Some(TRACE.to_owned())],
        "the email job carries the notification's trace"
    );
    let jobs = receive(&stack, "DeliveryQueue", 30).await.unwrap();
    assert_eq!(jobs.len(), 1, "one email job");
    let job: DeliveryJob = serde_json::from_str(&jobs[0].body).unwrap();
    assert_eq!(job.correlation_id.as_deref(), Some("checkout-7781"));
    assert_eq!(job.notification_id, notification.id);
}

#[tokio::test]
async fn a_campaign_stays_in_the_trace_of_the_request_that_created_it() {
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let meter = CallMeter::default();
    let sqs = metered_sqs(&stack.sdk, &meter);
    let queue = |id: &str| {
        Arc::new(SqsSender::new(
            sqs.clone(),
            stack.resource(id).unwrap().reference.clone(),
        ))
    };

    // Created for now: the start goes straight onto the campaign queue, in the request's trace.
    let api = &app.campaign_api;
    let campaigns = inbox_api::campaigns::routes(Arc::new(inbox_api::campaigns::CampaignDeps {
        campaigns: api.campaigns.clone(),
        audiences: api.audiences.clone(),
        scheduler: api.scheduler.clone(),
        queue: queue("CampaignQueue"),
        audience_bucket: api.audience_bucket.clone(),
        audience_retention_days: api.audience_retention_days,
        auth: api.auth.clone(),
        clock: api.clock.clone(),
    }));
    let request = axum::http::Request::post("/v1/campaigns")
        .extension(jwt_request_context(
            claims(&[("custom:tenant", "acme"), ("scope", "herald/campaigns")]),
            None,
        ))
        .header("x-amzn-trace-id", TRACE)
        .body(axum::body::Body::from(
            json!({"name": "spring", "title": "Spring sale", "body": "20% off",
                "channels": ["inbox"], "audience": {"users": ["a", "b", "c"]}, "send_at": "now"})
            .to_string(),
        ))
        .unwrap();
    let response = campaigns.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 201);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let created: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = CampaignId::parse(created["id"].as_str().unwrap(), "id").unwrap();
    assert_eq!(
        meter.counts().sqs_trace_headers,
        vec![Some(TRACE.to_owned())],
        "the start work item"
    );

    // The runner, handed that work item, keeps the trace on the page it queues and on every
    // notification of that page.
    meter.reset();
    let runner = campaigns::CampaignRunner {
        campaigns: app.campaigns.campaigns.clone(),
        directory: app.campaigns.directory.clone(),
        audiences: app.campaigns.audiences.clone(),
        scheduler: app.campaigns.scheduler.clone(),
        work: queue("CampaignQueue"),
        notifications: queue("MarketingQueue"),
        clock: app.campaigns.clock.clone(),
    };
    let tenant = TenantId::parse("acme", "tenant").unwrap();
    let start = CampaignWork::Start {
        tenant: tenant.clone(),
        campaign: id.clone(),
    };
    runner
        .run(
            &start,
            campaigns::Step {
                message_id: "start",
                trace: Some(TRACE),
            },
        )
        .await
        .unwrap();
    let page = CampaignWork::Page {
        tenant,
        campaign: id,
        page: 0,
        cursor: 0,
    };
    runner
        .run(
            &page,
            campaigns::Step {
                message_id: "page0",
                trace: Some(TRACE),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        meter.counts().sqs_trace_headers,
        vec![Some(TRACE.to_owned()); 4],
        "page 0, then its three notifications"
    );
}
