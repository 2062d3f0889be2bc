//! The signed one-click unsubscribe link, end to end on the emulator: a marketing email
//! carries `List-Unsubscribe` (no raw user id) and `List-Unsubscribe-Post`; opening the link
//! changes nothing; forged or altered links are 400s that change nothing; the one-click POST
//! opts the user out of marketing, and the next campaign email is skipped.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use serde_json::{json, Value};
use testkit::harness::{call, emails_to, eventually, test_stack};
use testkit::runner::LocalApp;
use tokio_util::sync::CancellationToken;

/// Long enough that the link's random-looking base64 cannot contain it by chance (a
/// two-letter id like `u1` did, about once in fifty runs, and failed CI).
const READER: &str = "reader-with-a-long-user-id";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signed_link_unsubscribes_and_a_forged_one_changes_nothing() {
    let stack = test_stack(&[]).await.unwrap();
    // Unique per stack: the emulator keeps every email it was sent, whichever test sent it.
    let address = format!("unsub-{}@example.com", stack.prefix.to_lowercase());
    let app = std::sync::Arc::new(LocalApp::new(&stack).unwrap());
    let router = app.router();
    let shutdown = CancellationToken::new();
    let workers = app.spawn_workers(1, 1, &shutdown);
    let service = app.service_token("acme");

    let marketing = |title: &str| {
        json!({"notifications": [{"user_id": READER, "room_id": "news", "title": title, "body": "Sale!",
            "channels": ["email"], "category": "marketing"}]})
    };
    let (status, _) = call(
        &router,
        "PUT",
        &format!("/v1/users/{READER}/contact"),
        Some(&service),
        Some(json!({ "email": address })),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let (status, _) = call(
        &router,
        "POST",
        "/v1/notifications",
        Some(&service),
        Some(marketing("first")),
    )
    .await
    .unwrap();
    assert_eq!(status, 202);

    let email = eventually(Duration::from_secs(20), "the marketing email", || async {
        Ok(emails_to(&stack.endpoint, &address)?.pop())
    })
    .await
    .unwrap();
    let raw = email["raw_data"].as_str().unwrap().to_owned();
    assert!(
        raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
        "{raw}"
    );
    let link = raw
        .lines()
        .find_map(|l| l.strip_prefix("List-Unsubscribe: <"))
        .and_then(|l| l.strip_suffix('>'))
        .unwrap()
        .to_owned();
    assert!(
        link.starts_with("http://127.0.0.1:3000/v1/unsubscribe?token="),
        "{link}"
    );
    assert!(!link.contains(READER), "no raw user id: {link}");
    let uri = link
        .strip_prefix("http://127.0.0.1:3000")
        .unwrap()
        .to_owned();

    let marketing_allowed = || async {
        let (_, contact) = call(
            &router,
            "GET",
            &format!("/v1/users/{READER}/contact"),
            Some(&service),
            None,
        )
        .await
        .unwrap();
        contact["preferences"]["marketing"].clone()
    };
    assert_eq!(marketing_allowed().await, json!(true));

    // Opening the link (or a scanner fetching it) only shows the button.
    let page = call_raw(&router, "GET", &uri).await;
    assert_eq!(page.0, 200);
    assert!(
        page.1.contains("<form method=post") && page.1.contains("One-Click"),
        "{}",
        page.1
    );
    assert_eq!(marketing_allowed().await, json!(true));

    // Forged and altered links: 400 naming the token, nothing changed.
    let forged = [
        uri.replace("acme", "acmf"),
        uri.replace("marketing", "transactional"),
        format!("{uri}A"),
        uri.replacen("~", "~x", 2),
        "/v1/unsubscribe?token=v1~acme~AAAAAAAAAAAAAAAAAAAAAA~marketing~AAAA".into(),
        "/v1/unsubscribe".into(),
    ];
    for bad in &forged {
        let (status, answer) = call(&router, "POST", bad, None, None).await.unwrap();
        assert_eq!(status, 400, "{bad}: {answer}");
        assert_eq!(answer["error"]["field"], "token", "{bad}: {answer}");
    }
    assert_eq!(marketing_allowed().await, json!(true));

    // The one-click POST mail providers send (RFC 8058), twice: same answer.
    for _ in 0..2 {
        let (status, answer) = post_form(&router, &uri).await;
        assert_eq!(
            (status, answer),
            (200, json!({"unsubscribed": true, "category": "marketing"}))
        );
    }
    assert_eq!(marketing_allowed().await, json!(false));
    let (_, contact) = call(
        &router,
        "GET",
        &format!("/v1/users/{READER}/contact"),
        Some(&service),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        contact["email"],
        address.as_str(),
        "the rest of the contact is kept"
    );

    // The next marketing email is skipped, with the reason on record.
    let (_, accepted) = call(
        &router,
        "POST",
        "/v1/notifications",
        Some(&service),
        Some(marketing("second")),
    )
    .await
    .unwrap();
    let id = accepted["accepted"][0]["id"].as_str().unwrap().to_owned();
    let status = eventually(
        Duration::from_secs(20),
        "the second delivery decided",
        || async {
            let (code, status) = call(
                &router,
                "GET",
                &format!("/v1/notifications/{id}"),
                Some(&service),
                None,
            )
            .await?;
            Ok((code == 200).then_some(status))
        },
    )
    .await
    .unwrap();
    assert_eq!(status["channels"]["email"]["state"], "skipped", "{status}");
    assert_eq!(emails_to(&stack.endpoint, &address).unwrap().len(), 1);

    shutdown.cancel();
    for w in workers {
        w.await.unwrap();
    }
}

async fn call_raw(router: &axum::Router, method: &str, uri: &str) -> (u16, String) {
    use tower::ServiceExt;
    let response = router
        .clone()
        .oneshot(
            axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn post_form(router: &axum::Router, uri: &str) -> (u16, Value) {
    use tower::ServiceExt;
    let request = axum::http::Request::post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from("List-Unsubscribe=One-Click"))
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
