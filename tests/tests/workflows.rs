//! Workflows and frequency caps on the emulator, end to end through the APIs and the queue
//! workers: a named escalation sends its email when unread and skips it once read (SQS
//! message delays, real reads of the inbox table); a step a day out waits on a real
//! EventBridge Scheduler schedule onto the delivery queue; a cap holds back the second
//! marketing email with `skipped: capped`; a digest sends one email for its window's events.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use herald::consumer::{BatchHandler, Disposition};
use herald::domain::delivery::DeliveryJob;
use serde_json::{json, Value};
use testkit::harness::{call, emails_to, eventually, test_stack};
use testkit::runner::LocalApp;

/// The channel's record in `GET /v1/notifications/{id}`, once it has one.
async fn channel_status(app: &LocalApp, id: &str, channel: &str) -> Option<Value> {
    let (status, answer) = call(
        &app.router(),
        "GET",
        &format!("/v1/notifications/{id}?user=u1"),
        Some(&app.service_token("t1")),
        None,
    )
    .await
    .unwrap();
    (status == 200)
        .then(|| answer["channels"][channel].clone())
        .filter(|c| c["state"] == "sent" || c["state"] == "skipped")
}

async fn send(app: &LocalApp, item: Value) {
    let (status, answer) = call(
        &app.router(),
        "POST",
        "/v1/notifications",
        Some(&app.service_token("t1")),
        Some(json!({ "notifications": [item] })),
    )
    .await
    .unwrap();
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["rejected"], json!([]), "{answer}");
}

async fn contact(app: &LocalApp, address: &str) {
    let (status, answer) = call(
        &app.router(),
        "PUT",
        "/v1/users/u1/contact",
        Some(&app.service_token("t1")),
        Some(json!({ "email": address })),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_escalation_emails_when_unread_and_not_once_read() {
    let stack = test_stack(&[]).await.unwrap();
    let app = std::sync::Arc::new(LocalApp::new(&stack).unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let workers = app.spawn_workers(1, 1, &shutdown);
    let service = app.service_token("t1");
    let address = &format!("escalate-{}@example.com", stack.prefix.to_lowercase());
    contact(&app, address).await;
    // The read one's email is due later, so the test reads it well before.
    for (name, delay) in [("soon", 2), ("later", 12)] {
        let workflow = json!({"steps": [
            {"channel": "inbox"},
            {"channel": "email", "delay_seconds": delay, "unless": "read"}
        ]});
        let (status, answer) = call(
            &app.router(),
            "PUT",
            &format!("/v1/workflows/{name}"),
            Some(&service),
            Some(workflow),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{answer}");
    }
    let item = |id: &str, room: &str, workflow: &str| json!({"id": id, "user_id": "u1", "room_id": room, "title": id, "body": "b", "workflow": workflow});
    send(&app, item("unread-1", "r-unread", "soon")).await;
    send(&app, item("read-1", "r-read", "later")).await;

    // The read one reaches the inbox; the user reads its room before its step is due.
    let router = app.router();
    let user = app.user_token("t1", "u1");
    eventually(Duration::from_secs(20), "both in the inbox", || async {
        let (_, unread) = call(&router, "GET", "/v1/users/u1/unread", Some(&user), None).await?;
        Ok((unread["total"] == 2).then_some(()))
    })
    .await
    .unwrap();
    let (status, _) = call(
        &router,
        "POST",
        "/v1/users/u1/rooms/r-read/read",
        Some(&user),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200);

    let sent = eventually(
        Duration::from_secs(30),
        "the unread one's email",
        || async { Ok(channel_status(&app, "unread-1", "email").await) },
    )
    .await
    .unwrap();
    assert_eq!(sent["state"], "sent", "{sent}");
    let skipped = eventually(Duration::from_secs(40), "the read one's step", || async {
        Ok(channel_status(&app, "read-1", "email").await)
    })
    .await
    .unwrap();
    assert_eq!(
        (&skipped["state"], &skipped["reason"]),
        (&json!("skipped"), &json!("read")),
        "{skipped}"
    );
    let emails = emails_to(&stack.endpoint, address).unwrap();
    assert_eq!(emails.len(), 1, "only the unread one: {emails:?}");
    shutdown.cancel();
    for w in workers {
        w.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_a_day_out_waits_on_a_schedule_onto_the_delivery_queue() {
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let item = json!({"id": "tomorrow", "user_id": "u1", "room_id": "r1", "title": "t", "body": "b",
        "workflow": {"steps": [{"channel": "inbox"}, {"channel": "email", "delay_seconds": 86_400, "unless": "read"}]}});
    send(&app, item).await;
    // The writer takes the notification as its event source would.
    let batch = app.notifications.queue.receive(10, 2).await.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(app.writer.handle(&batch).await, vec![Disposition::Done]);
    let group = app.step_schedule_group.clone().unwrap();
    let scheduler = aws_sdk_scheduler::Client::new(&app.sdk);
    let listed = scheduler
        .list_schedules()
        .group_name(&group)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.schedules().len(), 1);
    let name = listed.schedules()[0].name().unwrap();
    let schedule = scheduler
        .get_schedule()
        .group_name(&group)
        .name(name)
        .send()
        .await
        .unwrap();
    let target = schedule.target().unwrap();
    assert!(
        target
            .arn()
            .ends_with(&stack.resource("DeliveryQueue").unwrap().name),
        "{}",
        target.arn()
    );
    let job: DeliveryJob = serde_json::from_str(target.input().unwrap()).unwrap();
    let due = job.due_at.unwrap();
    assert_eq!(
        schedule.schedule_expression(),
        Some(herald::aws::scheduler::at_expression(due).as_str())
    );
    assert_eq!(due - job.created_at, jiff::SignedDuration::from_hours(24));
    // Nothing on the delivery queue until then.
    assert!(app.delivery.queue.receive(10, 1).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frequency_cap_holds_back_the_second_marketing_email() {
    let stack = test_stack(&[]).await.unwrap();
    let app = std::sync::Arc::new(LocalApp::new(&stack).unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let workers = app.spawn_workers(1, 1, &shutdown);
    let address = &format!("capped-{}@example.com", stack.prefix.to_lowercase());
    contact(&app, address).await;
    let caps = json!({"caps": [{"category": "marketing", "channel": "email", "limit": 1, "window_seconds": 3600}]});
    let (status, _) = call(
        &app.router(),
        "PUT",
        "/v1/frequency-caps",
        Some(&app.service_token("t1")),
        Some(caps),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    for id in ["promo-1", "promo-2"] {
        send(
            &app,
            json!({"id": id, "user_id": "u1", "room_id": "r1", "title": id, "body": "b",
                "channels": ["email"], "category": "marketing"}),
        )
        .await;
    }
    let mut states = Vec::new();
    for id in ["promo-1", "promo-2"] {
        let status = eventually(Duration::from_secs(30), id, || async {
            Ok(channel_status(&app, id, "email").await)
        })
        .await
        .unwrap();
        states.push((status["state"].clone(), status["reason"].clone()));
    }
    states.sort_by_key(|s| s.0.to_string());
    assert_eq!(
        states,
        vec![
            (json!("sent"), Value::Null),
            (json!("skipped"), json!("capped"))
        ]
    );
    assert_eq!(emails_to(&stack.endpoint, address).unwrap().len(), 1);
    shutdown.cancel();
    for w in workers {
        w.await.unwrap();
    }
}

/// Three comments on one post within its window, sent at once from two requests, become one
/// email listing them; the inbox got each at once; a comment after the window opens the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_digest_sends_one_email_for_the_events_of_its_window() {
    let stack = test_stack(&[]).await.unwrap();
    let app = std::sync::Arc::new(LocalApp::new(&stack).unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let workers = app.spawn_workers(2, 1, &shutdown);
    let address = &format!("digest-{}@example.com", stack.prefix.to_lowercase());
    contact(&app, address).await;
    let comment = |id: &str| {
        json!({"id": id, "user_id": "u1", "room_id": "post-1", "title": format!("Comment {id}"),
            "body": "Nice post", "channels": ["inbox", "email"],
            "digest": {"key": "post-1-comments", "window_seconds": 4, "title": "{count} new comments on your post"}})
    };
    let (status, answer) = call(
        &app.router(),
        "POST",
        "/v1/notifications",
        Some(&app.service_token("t1")),
        Some(json!({ "notifications": [comment("c1"), comment("c2")] })),
    )
    .await
    .unwrap();
    assert_eq!((status, &answer["rejected"]), (202, &json!([])), "{answer}");
    send(&app, comment("c3")).await;
    let user = app.user_token("t1", "u1");
    let router = app.router();
    eventually(
        Duration::from_secs(20),
        "every comment in the inbox",
        || async {
            let (_, unread) =
                call(&router, "GET", "/v1/users/u1/unread", Some(&user), None).await?;
            Ok((unread["total"] == 3).then_some(()))
        },
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(40), "the digest email", || async {
        let emails = emails_to(&stack.endpoint, address)?;
        Ok((!emails.is_empty()).then_some(()))
    })
    .await
    .unwrap();
    // A moment more: a second email would have come with the first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let emails = emails_to(&stack.endpoint, address).unwrap();
    assert_eq!(emails.len(), 1, "one email for the window: {emails:?}");
    let text = emails[0].to_string();
    assert!(text.contains("3 new comments on your post"), "{text}");
    for id in ["c1", "c2", "c3"] {
        assert!(
            text.contains(&format!("Comment {id}")),
            "{id} listed: {text}"
        );
    }
    // The window's record is on the event that opened it.
    let opener = eventually(Duration::from_secs(10), "the digest's record", || async {
        for id in ["c1", "c2", "c3"] {
            if let Some(status) = channel_status(&app, id, "email").await {
                return Ok(Some((id, status)));
            }
        }
        Ok(None)
    })
    .await
    .unwrap();
    assert_eq!(opener.1["state"], "sent", "{opener:?}");
    shutdown.cancel();
    for w in workers {
        w.await.unwrap();
    }
}

/// A campaign never breaks a cap: u1 had its one marketing email of the hour, so the
/// campaign's email to u1 is skipped as capped (counted in the campaign's progress) while u2
/// gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_campaign_keeps_to_the_frequency_caps() {
    let stack = test_stack(&[]).await.unwrap();
    let app = std::sync::Arc::new(LocalApp::new(&stack).unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let workers = app.spawn_workers(1, 1, &shutdown);
    let service = app.service_token("t1");
    let prefix = stack.prefix.to_lowercase();
    for user in ["u1", "u2"] {
        let (status, _) = call(
            &app.router(),
            "PUT",
            &format!("/v1/users/{user}/contact"),
            Some(&service),
            Some(json!({"email": format!("{user}-{prefix}@example.com")})),
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
    }
    let caps = json!({"caps": [{"category": "marketing", "channel": "email", "limit": 1, "window_seconds": 3600}]});
    let (status, _) = call(
        &app.router(),
        "PUT",
        "/v1/frequency-caps",
        Some(&service),
        Some(caps),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    send(
        &app,
        json!({"id": "promo-0", "user_id": "u1", "room_id": "r1", "title": "Earlier", "body": "b",
            "channels": ["email"], "category": "marketing"}),
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "u1's earlier promotion",
        || async { Ok(channel_status(&app, "promo-0", "email").await) },
    )
    .await
    .unwrap();
    let (status, created) = call(
        &app.router(),
        "POST",
        "/v1/campaigns",
        Some(&service),
        Some(
            json!({"name": "sale", "title": "Sale", "body": "30% off", "channels": ["email"],
            "audience": {"users": ["u1", "u2"]}, "send_at": "now"}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let progress = eventually(Duration::from_secs(60), "the campaign's sends", || async {
        let (_, c) = call(
            &app.router(),
            "GET",
            &format!("/v1/campaigns/{id}"),
            Some(&service),
            None,
        )
        .await?;
        let p = c["progress"].clone();
        Ok(
            (p["sent"]["email"].as_u64().unwrap_or(0) + p["skipped"].as_u64().unwrap_or(0) >= 2)
                .then_some(p),
        )
    })
    .await
    .unwrap();
    assert_eq!(progress["sent"]["email"], 1, "{progress}");
    assert_eq!(progress["skipped_by"]["capped"], 1, "{progress}");
    assert_eq!(
        emails_to(&stack.endpoint, &format!("u1-{prefix}@example.com"))
            .unwrap()
            .len(),
        1,
        "u1 only the earlier one"
    );
    shutdown.cancel();
    for w in workers {
        w.await.unwrap();
    }
}

/// `unless: seen` through the deliver function's own role: the notification marked seen
/// (not read) in time skips its email step as seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_unless_seen_is_skipped_once_the_notification_is_seen() {
    let stack = test_stack(&[]).await.unwrap();
    let app = std::sync::Arc::new(LocalApp::new(&stack).unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let workers = app.spawn_workers(1, 1, &shutdown);
    contact(
        &app,
        &format!("seen-{}@example.com", stack.prefix.to_lowercase()),
    )
    .await;
    send(
        &app,
        json!({"id": "seen-1", "user_id": "u1", "room_id": "r1", "title": "t", "body": "b",
            "workflow": {"steps": [{"channel": "inbox"},
                {"channel": "email", "delay_seconds": 10, "unless": "seen"}]}}),
    )
    .await;
    let router = app.router();
    let user = app.user_token("t1", "u1");
    eventually(Duration::from_secs(20), "the inbox message", || async {
        let (_, unread) = call(&router, "GET", "/v1/users/u1/unread", Some(&user), None).await?;
        Ok((unread["total"] == 1).then_some(()))
    })
    .await
    .unwrap();
    let (status, answer) = call(
        &router,
        "POST",
        "/v1/users/u1/messages/seen",
        Some(&user),
        Some(json!({"ids": ["seen-1"]})),
    )
    .await
    .unwrap();
    assert_eq!(
        (status, &answer["unseen"]["total"]),
        (200, &json!(0)),
        "{answer}"
    );
    let step = eventually(Duration::from_secs(40), "the step", || async {
        Ok(channel_status(&app, "seen-1", "email").await)
    })
    .await
    .unwrap();
    assert_eq!(
        (&step["state"], &step["reason"]),
        (&json!("skipped"), &json!("seen")),
        "{step}"
    );
    shutdown.cancel();
    for w in workers {
        w.await.unwrap();
    }
}
