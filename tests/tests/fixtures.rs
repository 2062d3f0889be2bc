//! Feeds every file in events/ to its function's handler, against a fresh stack, in the order
//! a user's session would produce them, and checks both the answer and the effect. The same
//! files serve `sam local invoke` and `cargo lambda invoke`, so they cannot rot.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use herald::consumer::handle_sqs_event;
use herald::{TenantId, UserId, UserKey};
use serde_json::{json, Value};
use testkit::harness::{emails_to, queue_depth, sms_to, test_stack};
use testkit::runner::LocalApp;
use testkit::stack::Stack;
use tower::ServiceExt;

/// Every fixture, in the order they run. A new file in events/ must be added here.
const ORDER: [&str; 9] = [
    "inbox-api-put-contact.json",
    "ingest-notification.json",
    "ingest-invalid.json",
    "inbox-writer-batch.json",
    "deliver-email.json",
    "deliver-sms.json",
    "inbox-api-unread.json",
    "inbox-api-messages.json",
    "inbox-api-read-room.json",
];

fn fixture(name: &str) -> String {
    std::fs::read_to_string(testkit::workspace_root().join("events").join(name)).unwrap()
}

async fn http_fixture(router: axum::Router, name: &str) -> (u16, Value) {
    let request =
        lambda_http::request::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let response = router.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn sqs_fixture(name: &str) -> SqsEvent {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn failures(response: &SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

async fn unread(app: &LocalApp) -> herald::Unread {
    let user = UserKey {
        tenant: TenantId::parse("default", "t").unwrap(),
        user: UserId::parse("fixture-user", "u").unwrap(),
    };
    app.inbox_api
        .counters
        .read_counters(&user)
        .await
        .unwrap()
        .unread()
}

#[test]
fn every_file_in_events_is_covered() {
    let mut files: Vec<String> = std::fs::read_dir(testkit::workspace_root().join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut listed: Vec<String> = ORDER.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_runs_through_its_handler() -> anyhow::Result<()> {
    let stack: Stack = test_stack(&[]).await?;
    let app = Arc::new(LocalApp::new(&stack)?);
    let ingest = ingest::app(app.ingest.clone());
    let api = inbox_api::app(app.inbox_api.clone());

    let (status, body) = http_fixture(api.clone(), ORDER[0]).await;
    assert_eq!(
        (status, body["email"].clone()),
        (200, json!("fixture-user@example.com"))
    );

    let (status, body) = http_fixture(ingest.clone(), ORDER[1]).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(queue_depth(&stack, "NotificationsQueue").await?, 1);

    let (status, body) = http_fixture(ingest, ORDER[2]).await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("notifications[0].user_id"))
    );
    assert_eq!(
        queue_depth(&stack, "NotificationsQueue").await?,
        1,
        "the bad request enqueued nothing"
    );

    let response = handle_sqs_event(
        app.writer.as_ref(),
        &app.notifications,
        sqs_fixture(ORDER[3]),
    )
    .await;
    assert_eq!(failures(&response), Vec::<String>::new());
    let after_first = unread(&app).await;
    assert_eq!(after_first.total, 3);
    assert_eq!(after_first.rooms.get("fixture-room"), Some(&2));
    assert_eq!(
        queue_depth(&stack, "DeliveryQueue").await?,
        1,
        "one email job"
    );
    let response = handle_sqs_event(
        app.writer.as_ref(),
        &app.notifications,
        sqs_fixture(ORDER[3]),
    )
    .await;
    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(
        unread(&app).await,
        after_first,
        "a second delivery of the batch changes nothing"
    );

    let before = emails_to(&stack.endpoint, "fixture-user@example.com")?.len();
    let response =
        handle_sqs_event(app.deliverer.as_ref(), &app.delivery, sqs_fixture(ORDER[4])).await;
    assert_eq!(failures(&response), Vec::<String>::new());
    let emails = emails_to(&stack.endpoint, "fixture-user@example.com")?;
    assert_eq!(emails.len(), before + 1);
    assert_eq!(emails.last().unwrap()["subject"], "Your receipt");

    let before = sms_to(&stack.endpoint, "+15555550100")?.len();
    let response =
        handle_sqs_event(app.deliverer.as_ref(), &app.delivery, sqs_fixture(ORDER[5])).await;
    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(sms_to(&stack.endpoint, "+15555550100")?.len(), before + 1);

    let (status, body) = http_fixture(api.clone(), ORDER[6]).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_value::<herald::Unread>(body)?,
        unread(&app).await
    );

    let (status, body) = http_fixture(api.clone(), ORDER[7]).await;
    assert_eq!(
        (status, body["messages"].as_array().map(Vec::len)),
        (200, Some(3))
    );

    let (status, body) = http_fixture(api, ORDER[8]).await;
    assert_eq!(
        (status, body),
        (200, json!({"total": 1, "rooms": {"fixture-other-room": 1}}))
    );
    Ok(())
}
