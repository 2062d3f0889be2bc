//! The promises under the faults a burst brings, on a private emulator with chaos on
//! (`local::chaos`): a tenth of herald's DynamoDB and SQS calls and a fifth of its SES and
//! SNS sends throttled, a tenth of its DynamoDB writes meeting another transaction; the SDK's
//! own retries absorb most, and herald's code meets the rest. Contacts, a burst of notifications on inbox, email and SMS, and mark-read
//! go through the API and the workers as deployed; then, faults off, every count is exact,
//! every email and SMS went out once, nothing is dead-lettered, no caller got a 500, and every
//! kind of fault did happen.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use testkit::chaos::{self, Chaos};
use testkit::harness::{call, emails_to, eventually, private_stack, queue_depth, sms_to};
use testkit::runner::LocalApp;
use tokio_util::sync::CancellationToken;

const USERS: usize = 12;
const QUEUES: [&str; 7] = [
    "NotificationsQueue",
    "DeliveryQueue",
    "SmsQueue",
    "NotificationsDLQ",
    "DeliveryDLQ",
    "SmsDLQ",
    "FeedbackDLQ",
];

/// Calls until the answer is not a 503 (what a client does with backoff); any other 5xx fails.
async fn until_answered(
    router: &axum::Router,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    for attempt in 0..50 {
        let (status, answer) = call(router, method, uri, Some(token), body.clone())
            .await
            .unwrap();
        assert!(
            status < 500 || status == 503,
            "{method} {uri}: {status} {answer}"
        );
        if status != 503 {
            return (status, answer);
        }
        tokio::time::sleep(Duration::from_millis(20 << attempt.min(5))).await;
    }
    panic!("{method} {uri}: still 503 after 50 tries");
}

fn email(u: usize) -> String {
    format!("chaos-u{u}@example.com")
}

fn phone(u: usize) -> String {
    format!("+1555010{u:02}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_throttling_and_conflicts_counts_stay_exact_and_nothing_is_sent_twice() {
    let (_emulator, stack) = private_stack(&[]).await.unwrap();
    let app = Arc::new(LocalApp::new(&stack).unwrap());
    let router = app.router();
    let service = app.service_token("acme");
    chaos::set(
        &stack.endpoint,
        &Chaos::parse("dynamodb=0.1,sqs=0.1,ses=0.2,sns=0.2,conflict=0.1,seed=11").unwrap(),
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let workers = app.spawn_workers(2, 1, &shutdown);

    // Contacts, two writers at once on each: conflicts are retried, never a 500, none lost.
    let writes = (0..USERS).map(|u| {
        let (router, service) = (router.clone(), service.clone());
        async move {
            let uri = format!("/v1/users/u{u}/contact");
            let email_write = until_answered(
                &router,
                "PATCH",
                &uri,
                &service,
                Some(json!({"email": email(u)})),
            );
            let phone_write = until_answered(
                &router,
                "PATCH",
                &uri,
                &service,
                Some(json!({"phone": phone(u)})),
            );
            let ((s1, a1), (s2, a2)) = tokio::join!(email_write, phone_write);
            assert_eq!((s1, s2), (200, 200), "{a1} {a2}");
        }
    });
    futures_util::future::join_all(writes).await;

    // The burst: three notifications a user (rooms r1, r1, r2), client ids so that a retried
    // request is the same notifications, not new ones.
    for u in 0..USERS {
        let items: Vec<Value> = ["r1", "r1", "r2"]
            .iter()
            .enumerate()
            .map(|(i, room)| {
                json!({"id": format!("chaos-{u}-{i}"), "user_id": format!("u{u}"), "room_id": room,
                    "title": format!("Note {i}"), "body": "b", "channels": ["inbox", "email", "sms"]})
            })
            .collect();
        let (status, answer) = until_answered(
            &router,
            "POST",
            "/v1/notifications",
            &service,
            Some(json!({ "notifications": items })),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["rejected"], json!([]), "{answer}");
    }

    // Every queue drained (the inspection's calls are never faulted).
    eventually(Duration::from_secs(240), "the queues drained", || async {
        let mut depth = 0;
        for queue in &QUEUES[..3] {
            depth += queue_depth(&stack, queue).await?;
        }
        Ok((depth == 0).then_some(()))
    })
    .await
    .unwrap();

    // Half the users read everything, still under faults.
    for u in 0..USERS / 2 {
        let token = app.user_token("acme", &format!("u{u}"));
        let (status, answer) = until_answered(
            &router,
            "POST",
            &format!("/v1/users/u{u}/read-all"),
            &token,
            None,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["total"], 0, "{answer}");
    }

    let injected = chaos::injected(&stack.endpoint).unwrap();
    chaos::set(&stack.endpoint, &Chaos::default()).unwrap();
    for kind in chaos::KINDS {
        assert!(
            injected.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} fault was injected: {injected:?}"
        );
    }

    for u in 0..USERS {
        let token = app.user_token("acme", &format!("u{u}"));
        let (_, mut unread) = call(
            &router,
            "GET",
            &format!("/v1/users/u{u}/unread"),
            Some(&token),
            None,
        )
        .await
        .unwrap();
        // How many writes TOTAL took depends on how the burst was packed; the counts do not.
        assert!(unread["version"].as_u64().is_some(), "u{u}: {unread}");
        unread.as_object_mut().unwrap().remove("version");
        let expected = if u < USERS / 2 {
            json!({"total": 0, "rooms": {}, "unseen": {"total": 0, "rooms": {}}})
        } else {
            json!({"total": 3, "rooms": {"r1": 2, "r2": 1}, "unseen": {"total": 3, "rooms": {"r1": 2, "r2": 1}}})
        };
        assert_eq!(unread, expected, "u{u}");
        assert_eq!(
            emails_to(&stack.endpoint, &email(u)).unwrap().len(),
            3,
            "u{u}'s email"
        );
        assert_eq!(
            sms_to(&stack.endpoint, &phone(u)).unwrap().len(),
            3,
            "u{u}'s SMS"
        );
        for i in 0..3 {
            let (_, status) = call(
                &router,
                "GET",
                &format!("/v1/notifications/chaos-{u}-{i}?user=u{u}"),
                Some(&service),
                None,
            )
            .await
            .unwrap();
            for channel in ["email", "sms"] {
                assert_eq!(status["channels"][channel]["state"], "sent", "{status}");
            }
        }
    }
    for queue in &QUEUES[3..] {
        assert_eq!(queue_depth(&stack, queue).await.unwrap(), 0, "{queue}");
    }
    shutdown.cancel();
    for w in workers {
        w.await.unwrap();
    }
}
