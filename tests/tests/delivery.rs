//! Delivery on the emulator: copies of one job, at once and later, send one email (the
//! claim is a real DynamoDB conditional write), and the status says so.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use herald::consumer::Disposition;
use herald::domain::delivery::DeliveryJob;
use herald::domain::notification::{Category, Channel};
use herald::fake::fixtures::delivery_job;
use serde_json::json;
use testkit::harness::{call, emails_to, test_stack};
use testkit::runner::LocalApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_copies_of_one_job_send_one_email() {
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let router = app.router();
    // Unique per stack: the emulator keeps every email it was sent, whichever test sent it.
    let address = &format!("copies-{}@example.com", stack.prefix.to_lowercase());
    let (status, _) = call(
        &router,
        "PUT",
        "/v1/users/u1/contact",
        Some(&app.service_token("t1")),
        Some(json!({ "email": address })),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let job = DeliveryJob {
        notification_id: herald::NotificationId::parse("copies-n1", "id").unwrap(),
        ..delivery_job(Channel::Email, Category::Transactional)
    };

    // Three copies at once (three consumers got one each), then a late redelivery.
    let copies = futures_util::future::join_all((0..3).map(|_| app.deliverer.deliver(&job))).await;
    assert!(copies.iter().all(|d| *d == Disposition::Done), "{copies:?}");
    assert_eq!(app.deliverer.deliver(&job).await, Disposition::Done);

    assert_eq!(
        emails_to(&stack.endpoint, address).unwrap().len(),
        1,
        "one email"
    );
    let (_, status) = call(
        &router,
        "GET",
        "/v1/notifications/copies-n1",
        Some(&app.service_token("t1")),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status["channels"]["email"]["state"], "sent", "{status}");
}

/// The feedback path locally: a hard bounce published to the feedback topic reaches the
/// feedback queue (SNS → SQS in the emulator), the feedback worker suppresses the address,
/// and the next email to it is skipped with the reason on record. The service then finds the
/// entry through the suppression routes, lifts it (the removal on record, with who), and the
/// next email goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bounce_published_to_the_feedback_topic_suppresses_the_address() {
    use std::time::Duration;

    use herald::domain::feedback::{tenant_tag, TENANT_TAG};
    use testkit::harness::eventually;

    let stack = test_stack(&[]).await.unwrap();
    let app = std::sync::Arc::new(LocalApp::new(&stack).unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let workers = app.spawn_workers(1, 1, &shutdown);
    let router = app.router();
    let service = app.service_token("t1");
    // Unique per stack: the emulator keeps every email it was sent, whichever test sent it.
    let address = &format!("bounces-{}@example.com", stack.prefix.to_lowercase());
    call(
        &router,
        "PUT",
        "/v1/users/u1/contact",
        Some(&service),
        Some(json!({ "email": address })),
    )
    .await
    .unwrap();

    let tenant = herald::TenantId::parse("t1", "t").unwrap();
    let bounce = json!({"eventType": "Bounce", "mail": {"tags": {TENANT_TAG: [tenant_tag(&tenant)]}},
        "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": address}]}});
    aws_sdk_sns::Client::new(&stack.sdk)
        .publish()
        .topic_arn(&stack.resource("FeedbackTopic").unwrap().reference)
        .message(bounce.to_string())
        .send()
        .await
        .unwrap();
    let directory = &app.deliverer.directory;
    eventually(
        Duration::from_secs(20),
        "the address suppressed",
        || async {
            Ok(directory
                .is_suppressed(&tenant, address)
                .await?
                .then_some(()))
        },
    )
    .await
    .unwrap();

    let (_, accepted) = call(
        &router,
        "POST",
        "/v1/notifications",
        Some(&service),
        Some(json!({"notifications": [{"user_id": "u1", "room_id": "r1", "title": "Hi", "body": "b", "channels": ["email"]}]})),
    )
    .await
    .unwrap();
    let id = accepted["accepted"][0]["id"].as_str().unwrap().to_owned();
    let status = eventually(Duration::from_secs(20), "the delivery decided", || async {
        let (code, status) = call(
            &router,
            "GET",
            &format!("/v1/notifications/{id}"),
            Some(&service),
            None,
        )
        .await?;
        Ok((code == 200 && status["channels"]["email"]["state"] != "sending").then_some(status))
    })
    .await
    .unwrap();
    assert_eq!(status["channels"]["email"]["state"], "skipped", "{status}");
    assert_eq!(status["channels"]["email"]["detail"], "address suppressed");
    assert!(emails_to(&stack.endpoint, address).unwrap().is_empty());

    let (code, listed) = call(&router, "GET", "/v1/suppressions", Some(&service), None)
        .await
        .unwrap();
    assert_eq!(code, 200, "{listed}");
    assert_eq!(
        listed["suppressions"][0]["address"],
        address.as_str(),
        "{listed}"
    );
    let reason = listed["suppressions"][0]["reason"].clone();
    let query = format!("address={}&note=fixed", address.replace('@', "%40"));
    let (code, lifted) = call(
        &router,
        "DELETE",
        &format!("/v1/suppressions?{query}"),
        Some(&service),
        None,
    )
    .await
    .unwrap();
    assert_eq!(code, 200, "{lifted}");
    assert_eq!(lifted["removed"]["reason"], reason);
    assert!(!directory.is_suppressed(&tenant, address).await.unwrap());
    let (_, removals) = call(
        &router,
        "GET",
        "/v1/suppressions/removals",
        Some(&service),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        removals["removals"][0]["address"],
        address.as_str(),
        "{removals}"
    );
    assert_eq!(removals["removals"][0]["note"], "fixed");
    assert!(removals["removals"][0]["removed_by"].is_string());
    let (_, listed) = call(&router, "GET", "/v1/suppressions", Some(&service), None)
        .await
        .unwrap();
    assert_eq!(listed["suppressions"], json!([]), "{listed}");

    call(
        &router,
        "POST",
        "/v1/notifications",
        Some(&service),
        Some(json!({"notifications": [{"user_id": "u1", "room_id": "r1", "title": "Again", "body": "b", "channels": ["email"]}]})),
    )
    .await
    .unwrap();
    eventually(
        Duration::from_secs(20),
        "the email after the lift",
        || async { Ok((!emails_to(&stack.endpoint, address)?.is_empty()).then_some(())) },
    )
    .await
    .unwrap();
    shutdown.cancel();
    for w in workers {
        w.await.unwrap();
    }
}
