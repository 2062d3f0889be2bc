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

    // The backend (a service token) sets the contact and sends; the user's app reads.
    let service = app.service_token("default");
    let user = app.user_token("default", "u1");
    // Unique per stack: the emulator keeps every email it was sent, whichever test sent it.
    let address = format!("skeleton-{}@example.com", stack.prefix.to_lowercase());
    let (status, contact) = http(
        "PUT",
        &format!("{base}/v1/users/u1/contact"),
        Some(&service),
        Some(json!({ "email": address })),
    )
    .await?;
    assert_eq!((status, contact["email"].clone()), (200, json!(address)));

    let body = json!({"notifications": [{"user_id": "u1", "room_id": "r1", "title": "Hi", "body": "Hello", "channels": ["inbox", "email"]}]});
    let (status, accepted) = http(
        "POST",
        &format!("{base}/v1/notifications"),
        Some(&service),
        Some(body),
    )
    .await?;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["accepted"][0]["id"]
        .as_str()
        .expect("an id")
        .to_owned();

    let unread = eventually(Duration::from_secs(20), "unread count 1", || async {
        let (_, unread) = http(
            "GET",
            &format!("{base}/v1/users/u1/unread"),
            Some(&user),
            None,
        )
        .await?;
        Ok((unread["total"] == 1).then_some(unread))
    })
    .await?;
    assert_eq!(
        unread,
        json!({"version": 1, "total": 1, "rooms": {"r1": 1}, "unseen": {"total": 1, "rooms": {"r1": 1}}})
    );

    let (_, page) = http(
        "GET",
        &format!("{base}/v1/users/u1/messages"),
        Some(&user),
        None,
    )
    .await?;
    assert_eq!(page["messages"][0]["id"], id.as_str());
    assert_eq!(page["messages"][0]["read"], false);

    let emails = eventually(Duration::from_secs(20), "the email in SES", || async {
        let emails = emails_to(&stack.endpoint, &address)?;
        Ok((!emails.is_empty()).then_some(emails))
    })
    .await?;
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0]["subject"], "Hi");

    let status = eventually(Duration::from_secs(10), "delivery status", || async {
        let (code, status) = http(
            "GET",
            &format!("{base}/v1/notifications/{id}"),
            Some(&service),
            None,
        )
        .await?;
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

    let service = app.service_token("default");
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
        let (status, error) = http(
            "POST",
            &format!("{base}/v1/notifications"),
            Some(&service),
            Some(body),
        )
        .await?;
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

#[tokio::test]
async fn message_pages_follow_dynamodb_cursors_and_reject_foreign_ones() -> anyhow::Result<()> {
    use herald::domain::counters::commit::apply_to_counters;

    let stack = test_stack(&[]).await?;
    let app = LocalApp::new(&stack)?;
    let tenant = herald::TenantId::parse("default", "t")?;
    let batch = (0..5)
        .map(|i| {
            let item = json!({"user_id": "pager", "room_id": if i % 2 == 0 { "even" } else { "odd" },
                "title": format!("m{i}"), "body": "b", "channels": ["inbox"]});
            let created = format!("2026-11-23T09:00:0{i}.000Z").parse()?;
            let n = herald::domain::notification::parse_notification(
                &item, i, &tenant, herald::domain::notification::IdSource::Generate, created)?;
            Ok((i, n))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    apply_to_counters(app.inbox_api.counters.as_ref(), batch, &Default::default()).await;
    let router = app.router();
    let token = app.user_token("default", "pager");
    let get = |uri: String| {
        let (router, token) = (router.clone(), token.clone());
        async move { testkit::harness::call(&router, "GET", &uri, Some(&token), None).await }
    };
    let mut titles = Vec::new();
    let mut uri = "/v1/users/pager/messages?limit=2".to_owned();
    loop {
        let (status, page) = get(uri.clone()).await?;
        assert_eq!(status, 200, "{page}");
        titles.extend(
            page["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["title"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                assert!(!cursor.is_empty());
                uri = format!("/v1/users/pager/messages?limit=2&cursor={cursor}");
            }
            None => break,
        }
    }
    assert_eq!(
        titles,
        ["m4", "m3", "m2", "m1", "m0"],
        "newest first, every message once"
    );

    let (_, even) = get("/v1/users/pager/messages?room=even&limit=2".into()).await?;
    let titles: Vec<&str> = even["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["m4", "m2"]);
    // A cursor of the room-filtered query does not continue the unfiltered one.
    let cursor = even["next_cursor"].as_str().unwrap();
    let (status, error) = get(format!("/v1/users/pager/messages?cursor={cursor}")).await?;
    assert_eq!(
        (status, error["error"]["field"].clone()),
        (400, json!("cursor"))
    );
    Ok(())
}
