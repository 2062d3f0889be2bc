//! Pinpoint migration on the emulator: the sample export in events/ (every channel type, an
//! opt-out, an inactive endpoint, a device token, a malformed line and an invalid one) goes
//! through `POST /v1/contacts/import` into contacts; bad lines are named and write nothing.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde_json::Value;
use testkit::harness::{call, test_stack};
use testkit::runner::LocalApp;
use tower::ServiceExt;

async fn import(router: &axum::Router, token: &str, body: String) -> (u16, Value) {
    let request = axum::http::Request::post("/v1/contacts/import")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/x-ndjson")
        .body(axum::body::Body::from(body))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinpoint_export_becomes_contacts_and_bad_lines_are_named() {
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let router = app.router();
    let service = app.service_token("t1");
    let export = testkit::fixtures::read("pinpoint-export.ndjson").unwrap();

    let (status, report) = import(&router, &service, export.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["lines"], 9, "{report}");
    assert_eq!(report["imported"], 6, "{report}");
    assert_eq!(
        report["devices"], 1,
        "the APNs token, as a device: {report}"
    );
    assert_eq!(report["users"], 3, "{report}");
    let lines = |key: &str| -> Vec<u64> {
        report[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["line"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(lines("skipped"), vec![6], "inactive: {report}");
    assert_eq!(
        lines("errors"),
        vec![8, 9],
        "malformed JSON, bad phone: {report}"
    );

    let contact = |user: &'static str| {
        let (router, service) = (&router, &service);
        async move {
            call(
                router,
                "GET",
                &format!("/v1/users/{user}/contact"),
                Some(service),
                None,
            )
            .await
            .unwrap()
        }
    };
    let (_, ada) = contact("ada").await;
    assert_eq!(ada["email"], "ada@example.com", "{ada}");
    assert_eq!(
        ada["phone"], "+15555550101",
        "two endpoints, one contact: {ada}"
    );
    assert_eq!(ada["timezone"], "Europe/London");
    assert_eq!(ada["locale"], "en-GB");
    assert_eq!(ada["preferences"]["marketing"], true);
    let (_, grace) = contact("grace").await;
    assert_eq!(
        grace["preferences"]["marketing"], false,
        "opt-outs stay opt-outs: {grace}"
    );
    assert_eq!(
        grace["push"][0],
        "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/herald-app/2f1b"
    );
    let (_, linus) = contact("linus").await;
    assert_eq!(
        linus["email"], "linus@example.com",
        "the inactive one is not used: {linus}"
    );
    let (status, _) = contact("margaret").await;
    assert_eq!(status, 404, "an invalid line writes nothing");
    let (status, _) = contact("broken").await;
    assert_eq!(status, 404, "a malformed line writes nothing");

    // Importing again changes nothing (the same merge), and a user's token may not import.
    let (status, again) = import(&router, &service, export.clone()).await;
    assert_eq!((status, &again["imported"]), (200, &report["imported"]));
    let (_, grace_again) = contact("grace").await;
    assert_eq!(
        grace_again["push"], grace["push"],
        "no duplicate push endpoint"
    );
    let (status, _) = import(&router, &app.user_token("t1", "ada"), export).await;
    assert_eq!(status, 403);
}
