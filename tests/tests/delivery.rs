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
    let address = "copies-u1@example.com";
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
