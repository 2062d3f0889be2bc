//! The dead-letter routes and the console's upload against the emulator's real SQS and S3:
//! poison dead-lettered by the writer is listed with its reason and left in place, a chosen
//! message and then all of them go back to the source queue without herald's note, a message
//! that fails again comes back with a new one, and an uploaded audience file is one a
//! campaign can use.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use aws_sdk_sqs::types::MessageSystemAttributeName;
use axum::body::Body;
use herald::consumer::{handle_sqs_event, DLQ_REASON_ATTRIBUTE};
use serde_json::{json, Value};
use testkit::counters_kit::*;
use testkit::harness::{call, queue_depth, receive, sqs_event, test_stack};
use testkit::runner::LocalApp;
use tower::ServiceExt;

/// The writer takes one batch from the notifications queue and acks it as Lambda would.
async fn write_one_batch(app: &LocalApp, stack: &testkit::stack::Stack) {
    let batch = receive(stack, "NotificationsQueue", 30).await.unwrap();
    let response =
        handle_sqs_event(app.writer.as_ref(), &app.notifications, sqs_event(&batch)).await;
    assert!(response.batch_item_failures.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_listed_with_its_reason_and_redriven_to_its_source() {
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let router = app.router();
    let operator = app.service_token("acme");
    let mut blank = notification("blank-title", "ida", "r1");
    blank.title = "  ".into();
    enqueue(&stack, vec!["{not json".into(), body(&blank)]).await;
    write_one_batch(&app, &stack).await;

    let (status, overview) = call(&router, "GET", "/v1/dead-letters", Some(&operator), None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{overview}");
    let queues = overview["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 7, "one per queue pair: {overview}");
    let notifications = queues
        .iter()
        .find(|q| q["queue"] == "notifications")
        .unwrap();
    assert_eq!(notifications["messages"], 2, "{overview}");
    assert!(notifications["oldest_age_seconds"].as_i64().unwrap() >= 0);

    let list = || async {
        let (status, listed) = call(
            &router,
            "GET",
            "/v1/dead-letters/notifications",
            Some(&operator),
            None,
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{listed}");
        listed
    };
    let listed = list().await;
    let messages = listed["messages"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 2, "{listed}");
    let not_json = messages.iter().find(|m| m["body"] == "{not json").unwrap();
    assert!(
        not_json["reason"]
            .as_str()
            .unwrap()
            .starts_with("not a notification: "),
        "{not_json}"
    );
    // A listing leaves the messages where they were, visible to the next one at once.
    assert_eq!(list().await["messages"].as_array().unwrap().len(), 2);

    let (status, moved) = call(
        &router,
        "POST",
        "/v1/dead-letters/notifications/redrive",
        Some(&operator),
        Some(json!({"ids": [not_json["id"]]})),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["moved"], json!([not_json["id"]]));
    assert_eq!(moved["not_found"], json!([]));
    assert_eq!(queue_depth(&stack, "NotificationsDLQ").await.unwrap(), 1);
    // Back on its source, without herald's note of why it failed.
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let back = sqs
        .receive_message()
        .queue_url(&stack.resource("NotificationsQueue").unwrap().reference)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .visibility_timeout(0)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].body(), Some("{not json"));
    assert!(back[0]
        .message_attributes()
        .is_none_or(|a| !a.contains_key(DLQ_REASON_ATTRIBUTE)));
    // Still poison: taken again, it is dead-lettered afresh with its reason.
    write_one_batch(&app, &stack).await;
    assert_eq!(queue_depth(&stack, "NotificationsDLQ").await.unwrap(), 2);
    assert_eq!(queue_depth(&stack, "NotificationsQueue").await.unwrap(), 0);

    let (status, all) = call(
        &router,
        "POST",
        "/v1/dead-letters/notifications/redrive",
        Some(&operator),
        Some(json!({"all": true})),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["moved"].as_array().unwrap().len(), 2, "{all}");
    assert_eq!(all["remaining"], 0);
    assert_eq!(queue_depth(&stack, "NotificationsDLQ").await.unwrap(), 0);
    assert_eq!(queue_depth(&stack, "NotificationsQueue").await.unwrap(), 2);

    // A tenant's service token without the operator scope sees none of it.
    let tenant_token = app.issuer.sign(&testkit::auth::TokenSpec {
        scopes: vec!["herald/send".into(), "herald/campaigns".into()],
        ..app.issuer.service("acme")
    });
    let (status, _) = call(
        &router,
        "GET",
        "/v1/dead-letters",
        Some(&tenant_token),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 403);
}

#[tokio::test]
async fn an_uploaded_audience_file_is_one_a_campaign_reads() {
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let router = app.router();
    let token = app.service_token("acme");
    let upload = |name: &str, bytes: &'static str| {
        router.clone().oneshot(
            axum::http::Request::builder()
                .method("POST")
                .uri(format!("/v1/audiences?name={name}"))
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "text/csv")
                .body(Body::from(bytes))
                .unwrap(),
        )
    };
    let response = upload("vip.csv", "user_id,name\nann,Ann\nbo,Bo\n")
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let stored: Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap(),
    )
    .unwrap();
    let s3 = stored["s3"].as_str().unwrap().to_owned();
    assert!(
        s3.contains("/acme/uploads/") && s3.ends_with("-vip.csv"),
        "{s3}"
    );
    assert_eq!(stored["users_estimate"], 2);
    let (status, campaign) = call(
        &router,
        "POST",
        "/v1/campaigns",
        Some(&token),
        Some(
            json!({"name": "vip", "title": "Hi", "body": "Hello", "channels": ["inbox"],
                    "audience": {"s3": s3}, "send_at": "now"}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{campaign}");
    // A name that is a path, or an empty file: 400 naming it, nothing stored.
    let response = upload("..%2Fother%2Fx.csv", "ann\n").await.unwrap();
    assert_eq!(response.status(), 400);
    let response = upload("empty.csv", "").await.unwrap();
    assert_eq!(response.status(), 400);
    // Another kind of file: 415 naming the header.
    let response = router
        .clone()
        .oneshot(
            axum::http::Request::builder()
                .method("POST")
                .uri("/v1/audiences?name=x.xlsx")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/vnd.ms-excel")
                .body(Body::from("PK"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
}
