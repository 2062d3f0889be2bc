//! One notification can be followed end to end: the caller's correlation id travels from
//! ingest through the notifications queue and inbox-writer into the delivery job (real SQS
//! in the emulator), and the X-Ray trace header goes out as `AWSTraceHeader` on every send,
//! read off the requests herald makes.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;

use herald::auth::{claims, jwt_request_context, AuthSettings};
use herald::aws::sqs::SqsSender;
use herald::consumer::{BatchHandler, Disposition};
use herald::domain::delivery::DeliveryJob;
use herald::Notification;
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
