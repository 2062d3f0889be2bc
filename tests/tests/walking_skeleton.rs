//! One notification end to end, as a user runs it: real HTTP on a local port, the queue
//! consumers as long-polling workers, DynamoDB/SQS/SES in the emulator.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use serde_json::json;
use testkit::harness::{emails_to, eventually, http, queue_depth, test_stack};
use testkit::runner::LocalApp;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notification_reaches_counters_message_list_and_email() -> anyhow::Result<()> {
    let stack = test_stack(&[]).await?;
    let app = std::sync::Arc::new(LocalApp::new(&stack)?);
    let shutdown = CancellationToken::new();
    let workers = app.spawn_workers(1, 1, &shutdown);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn({
        let (app, shutdown) = (app.clone(), shutdown.clone());
        async move { app.serve(listener, shutdown).await }
    });

    let (status, contact) = http(
        "PUT",
        &format!("{base}/v1/users/u1/contact"),
        Some(json!({"email": "skeleton-u1@example.com"})),
    )
    .await?;
    assert_eq!(
        (status, contact["email"].clone()),
        (200, json!("skeleton-u1@example.com"))
    );

    let body = json!({"notifications": [{"user_id": "u1", "room_id": "r1", "title": "Hi", "body": "Hello", "channels": ["inbox", "email"]}]});
    let (status, accepted) = http("POST", &format!("{base}/v1/notifications"), Some(body)).await?;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["accepted"][0]["id"]
        .as_str()
        .expect("an id")
        .to_owned();

    let unread = eventually(Duration::from_secs(20), "unread count 1", || async {
        let (_, unread) = http("GET", &format!("{base}/v1/users/u1/unread"), None).await?;
        Ok((unread["total"] == 1).then_some(unread))
    })
    .await?;
    assert_eq!(unread, json!({"total": 1, "rooms": {"r1": 1}}));

    let (_, page) = http("GET", &format!("{base}/v1/users/u1/messages"), None).await?;
    assert_eq!(page["messages"][0]["id"], id.as_str());
    assert_eq!(page["messages"][0]["read"], false);

    let emails = eventually(Duration::from_secs(20), "the email in SES", || async {
        let emails = emails_to(&stack.endpoint, "skeleton-u1@example.com")?;
        Ok((!emails.is_empty()).then_some(emails))
    })
    .await?;
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0]["subject"], "Hi");

    let status = eventually(Duration::from_secs(10), "delivery status", || async {
        let (code, status) = http("GET", &format!("{base}/v1/notifications/{id}"), None).await?;
        Ok((code == 200).then_some(status))
    })
    .await?;
    assert_eq!(status["channels"]["email"]["state"], "sent");

    shutdown.cancel();
    server.await??;
    for w in workers {
        w.await?;
    }
    Ok(())
}

#[tokio::test]
async fn invalid_input_is_a_400_naming_the_field_and_enqueues_nothing() -> anyhow::Result<()> {
    let stack = test_stack(&[]).await?;
    let app = LocalApp::new(&stack)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let app = std::sync::Arc::new(app);
    let server = tokio::spawn({
        let (app, shutdown) = (app.clone(), shutdown.clone());
        async move { app.serve(listener, shutdown).await }
    });

    let cases = [
        (
            json!({"notifications": [{"user_id": "u1", "room_id": "r1", "title": "Hi", "body": "b", "channels": ["fax"]}]}),
            "notifications[0].channels[0]",
        ),
        (
            json!({"notifications": [{"room_id": "r1", "title": "Hi", "body": "b", "channels": ["inbox"]}]}),
            "notifications[0].user_id",
        ),
        (json!({"notes": []}), "notifications"),
    ];
    for (body, field) in cases {
        let (status, error) = http("POST", &format!("{base}/v1/notifications"), Some(body)).await?;
        assert_eq!(status, 400, "{error}");
        assert_eq!(error["error"]["field"], field);
        assert!(error["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(
        queue_depth(&stack, "NotificationsQueue").await?,
        0,
        "nothing was enqueued"
    );

    shutdown.cancel();
    server.await??;
    Ok(())
}
