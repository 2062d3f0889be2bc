//! Contacts on the emulator: PATCH merges and PUT replaces without touching marketing
//! consent, writes are versioned (ETag / If-Match), and a stale If-Match changes nothing.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde_json::{json, Value};
use testkit::harness::test_stack;
use testkit::runner::LocalApp;
use tower::ServiceExt;

async fn send(
    app: &LocalApp,
    method: &str,
    body: Option<Value>,
    if_match: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut request = axum::http::Request::builder()
        .method(method)
        .uri("/v1/users/u1/contact")
        .header(
            "authorization",
            format!("Bearer {}", app.service_token("t1")),
        );
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    let body = body.map_or(axum::body::Body::empty(), |b| b.to_string().into());
    let response = app
        .router()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        etag,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn patch_merges_put_replaces_consent_stays_and_versions_guard_writes() {
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let arn = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/d1";

    let (status, etag, contact) = send(
        &app,
        "PUT",
        Some(json!({"email": "u1@example.com", "phone": "+15555550100",
            "preferences": {"marketing": false}})),
        None,
    )
    .await;
    assert_eq!((status, etag.as_deref()), (200, Some("\"1\"")), "{contact}");

    // PATCH with only push: email, phone and the opt-out stay.
    let (status, etag, contact) = send(&app, "PATCH", Some(json!({"push": [arn]})), None).await;
    assert_eq!((status, etag.as_deref()), (200, Some("\"2\"")));
    assert_eq!(contact["email"], "u1@example.com");
    assert_eq!(contact["phone"], "+15555550100");
    assert_eq!(contact["push"], json!([arn]));
    assert_eq!(
        contact["preferences"]["marketing"], false,
        "no silent re-opt-in"
    );

    // A stale If-Match: 412 naming If-Match, nothing changed.
    let (status, _, error) = send(&app, "PATCH", Some(json!({"phone": null})), Some("\"1\"")).await;
    assert_eq!(
        (status, error["error"]["field"].clone()),
        (412, json!("If-Match"))
    );
    let (_, etag, stored) = send(&app, "GET", None, None).await;
    assert_eq!(
        (etag.as_deref(), stored["phone"].clone()),
        (Some("\"2\""), json!("+15555550100"))
    );

    // The current If-Match: the field is cleared.
    let (status, _, contact) =
        send(&app, "PATCH", Some(json!({"phone": null})), Some("\"2\"")).await;
    assert_eq!(status, 200);
    assert!(contact.get("phone").is_none(), "{contact}");

    // PUT replaces the addresses, and still keeps the consent it does not name.
    let (_, etag, contact) = send(&app, "PUT", Some(json!({"push": [arn]})), None).await;
    assert_eq!(etag.as_deref(), Some("\"4\""));
    assert!(contact.get("email").is_none());
    assert_eq!(contact["preferences"]["marketing"], false);

    // Bad input in a PATCH changes nothing.
    let (status, _, error) = send(&app, "PATCH", Some(json!({"email": "nope"})), None).await;
    assert_eq!(
        (status, error["error"]["field"].clone()),
        (400, json!("email"))
    );
    let (_, etag, _) = send(&app, "GET", None, None).await;
    assert_eq!(etag.as_deref(), Some("\"4\""));
}
