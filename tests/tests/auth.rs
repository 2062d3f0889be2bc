//! Who may do what, route by route, against the emulator: every operation of openapi.yaml
//! against every kind of bad token (none, garbage, expired, wrong issuer, wrong audience,
//! tampered, another user, missing scope, another tenant), then a check that nothing of
//! the victim changed; and the same user id in two tenants, end to end, sharing nothing.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use herald::auth::Scope;
use herald::domain::counters::commit::apply_to_counters;
use herald::domain::counters::Unread;
use herald::domain::notification::{parse_notification, IdSource};
use herald::{TenantId, UserId, UserKey};
use serde_json::{json, Value};
use testkit::auth::{tampered, TokenSpec};
use testkit::contract::{operations, Operation};
use testkit::harness::{call, eventually, queue_depth, test_stack};
use testkit::runner::LocalApp;
use tokio_util::sync::CancellationToken;

const VICTIM_EMAIL: &str = "victim@example.com";

fn key(tenant: &str, user: &str) -> UserKey {
    UserKey {
        tenant: TenantId::parse(tenant, "t").unwrap(),
        user: UserId::parse(user, "u").unwrap(),
    }
}

/// What an attacker could change of tenant t1's user u1.
#[derive(Debug, PartialEq)]
struct VictimState {
    unread: Unread,
    messages: usize,
    contact: Option<Value>,
    queued: u64,
    /// The victim's address is on t1's suppression list.
    suppressed: bool,
    /// The victim's registered push devices.
    devices: usize,
    /// t1's workflow and frequency caps.
    workflow: Option<herald::domain::workflow::Workflow>,
    caps: herald::domain::caps::CapSettings,
}

async fn victim_state(app: &LocalApp, stack: &testkit::stack::Stack) -> VictimState {
    let victim = key("t1", "u1");
    let api = &app.inbox_api;
    VictimState {
        unread: api.counters.read_counters(&victim).await.unwrap().unread(),
        messages: api
            .messages
            .list_messages(&victim, None, 100, None)
            .await
            .unwrap()
            .messages
            .len(),
        contact: api
            .directory
            .contact(&victim.tenant, &victim.user)
            .await
            .unwrap()
            .map(|c| serde_json::to_value(c).unwrap()),
        queued: queue_depth(stack, "NotificationsQueue").await.unwrap(),
        suppressed: api
            .directory
            .is_suppressed(&victim.tenant, VICTIM_EMAIL)
            .await
            .unwrap(),
        devices: api
            .devices
            .devices(&victim.tenant, &victim.user)
            .await
            .unwrap()
            .len(),
        workflow: api
            .workflows
            .workflow(&victim.tenant, "victim-workflow")
            .await
            .unwrap(),
        caps: api.caps.caps(&victim.tenant).await.unwrap(),
    }
}

fn uri(op: &Operation) -> String {
    let path = op
        .path
        .replace("{user}", "u1")
        .replace("{room}", "r1")
        .replace("{id}", "victim-n1")
        .replace("{token}", "victim-device-token")
        .replace("{name}", "victim-workflow")
        .replace("{queue}", "notifications");
    // Lifting names the address: the victim's, suppressed for t1.
    if (op.method.as_str(), op.path.as_str()) == ("DELETE", "/v1/suppressions") {
        return format!("{path}?address={}", VICTIM_EMAIL.replace('@', "%40"));
    }
    path
}

/// A body the rightful caller could send: a bad token must not make it count.
fn body(op: &Operation) -> Option<Value> {
    match (op.method.as_str(), op.path.as_str()) {
        ("POST", "/v1/notifications") => Some(json!({"notifications": [
            {"user_id": "u1", "room_id": "r1", "title": "Pay here", "body": "phish", "channels": ["inbox", "email"]}
        ]})),
        ("PUT", "/v1/users/{user}/devices/{token}") => Some(json!({"platform": "fcm"})),
        ("PUT", "/v1/workflows/{name}") => Some(json!({"steps": [{"channel": "email"}]})),
        ("POST", path) if path.starts_with("/v1/users/{user}/messages/") => {
            Some(json!({"ids": ["victim-n1"]}))
        }
        ("PUT", "/v1/frequency-caps") => Some(json!({"caps": []})),
        ("PUT" | "PATCH", _) => Some(json!({"email": "attacker@evil.example"})),
        ("POST", "/v1/campaigns") => Some(json!({"name": "phish", "title": "Pay here",
            "body": "phish", "channels": ["inbox"], "audience": {"users": ["u1"]}, "send_at": "now"})),
        // An audience file of one user (the body as it is, here a line `"u1"`).
        ("POST", "/v1/audiences") => Some(json!("u1")),
        ("POST", "/v1/dead-letters/{queue}/redrive") => Some(json!({"all": true})),
        // One line of a Pinpoint export.
        ("POST", "/v1/contacts/import") => Some(json!({"ChannelType": "EMAIL",
            "Address": "attacker@evil.example", "User": {"UserId": "u1"}})),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_every_bad_token_and_changes_nothing() {
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let router = app.router();
    let issuer = app.issuer.clone();

    // The victim: t1/u1 with a contact and one unread message.
    let (status, _) = call(
        &router,
        "PUT",
        "/v1/users/u1/contact",
        Some(&app.service_token("t1")),
        Some(json!({"email": VICTIM_EMAIL})),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let item = json!({"id": "victim-n1", "user_id": "u1", "room_id": "r1", "title": "t", "body": "b", "channels": ["inbox"]});
    let n = parse_notification(
        &item,
        0,
        &TenantId::parse("t1", "t").unwrap(),
        IdSource::Generate,
        "2026-11-30T09:00:00.000Z".parse().unwrap(),
    )
    .unwrap();
    apply_to_counters(
        app.inbox_api.counters.as_ref(),
        vec![(0, n)],
        &Default::default(),
    )
    .await;
    app.inbox_api
        .directory
        .suppress(
            Some(&TenantId::parse("t1", "t").unwrap()),
            VICTIM_EMAIL,
            "hard bounce",
        )
        .await
        .unwrap();
    // t1's sending rules, with values no other answer holds.
    let victim_rules = herald::domain::workflow::Workflow::parse(
        &json!({"steps": [{"channel": "inbox"}, {"channel": "sms", "delay_seconds": 4242, "unless": "read"}]}),
        "",
    )
    .unwrap();
    let t1 = TenantId::parse("t1", "t").unwrap();
    app.inbox_api
        .workflows
        .put_workflow(&t1, "victim-workflow", &victim_rules)
        .await
        .unwrap();
    let victim_caps = herald::domain::caps::CapSettings::parse(&json!({"caps": [
        {"category": "marketing", "channel": "sms", "limit": 777, "window_seconds": 4242}
    ]}))
    .unwrap();
    app.inbox_api
        .caps
        .set_caps(&t1, &victim_caps)
        .await
        .unwrap();
    let before = victim_state(&app, &stack).await;
    assert_eq!(before.unread.total, 1);
    assert_eq!(before.workflow.as_ref(), Some(&victim_rules));
    assert!(before.suppressed);

    let sign = |spec: TokenSpec| Some(issuer.sign(&spec));
    let all_but = |scopes: &[String]| -> Vec<String> {
        Scope::ALL
            .iter()
            .map(|s| s.as_str().to_owned())
            .filter(|s| !scopes.contains(s))
            .collect()
    };
    let operations = operations().unwrap();
    assert!(operations.len() >= 8, "{operations:?}");
    let mut tried = 0;
    for op in operations.iter().filter(|op| !op.public) {
        let service = issuer.service("t1");
        let mut cases: Vec<(&str, Option<String>, u16)> = vec![
            ("no token", None, 401),
            ("garbage", Some("garbage.not.ajwt".into()), 401),
            (
                "expired",
                sign(TokenSpec {
                    expires_in: -3600,
                    ..service.clone()
                }),
                401,
            ),
            (
                "wrong issuer",
                sign(TokenSpec {
                    issuer: "https://evil.example".into(),
                    ..service.clone()
                }),
                401,
            ),
            (
                "wrong audience",
                sign(TokenSpec {
                    audience: "someone-else".into(),
                    ..service.clone()
                }),
                401,
            ),
            (
                "tampered (t1 → t2)",
                Some(tampered(&issuer.sign(&service))),
                401,
            ),
            ("another user", sign(issuer.user("t1", "u2")), 403),
            (
                "missing scope",
                sign(TokenSpec {
                    scopes: all_but(&op.service_scopes),
                    ..service.clone()
                }),
                403,
            ),
            (
                "no tenant claim",
                sign(TokenSpec {
                    tenant: None,
                    ..service.clone()
                }),
                403,
            ),
        ];
        if !op.user_token {
            cases.push((
                "the user's own token on a service route",
                sign(issuer.user("t1", "u1")),
                403,
            ));
        }
        for (label, token, expected) in cases {
            let (status, answer) = call(&router, &op.method, &uri(op), token.as_deref(), body(op))
                .await
                .unwrap();
            let code = if expected == 401 {
                "unauthorized"
            } else {
                "forbidden"
            };
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (expected, Some(code)),
                "{} {} with {label}: {answer}",
                op.method,
                op.path
            );
            tried += 1;
        }
        // Another tenant's tokens pass, but act on their own tenant only.
        for token in [app.service_token("t2"), app.user_token("t2", "u1")] {
            let (status, answer) = call(&router, &op.method, &uri(op), Some(&token), body(op))
                .await
                .unwrap();
            assert!(status < 500, "{} {}: {status} {answer}", op.method, op.path);
            assert!(
                !answer.to_string().contains(VICTIM_EMAIL)
                    && !answer.to_string().contains("4242")
                    && answer["total"] != 1,
                "{} {} showed tenant t1's data to t2: {answer}",
                op.method,
                op.path
            );
            tried += 1;
        }
    }
    assert!(tried >= 90, "{tried} requests");

    // Nothing of t1's user changed; what t2 enqueued is t2's (drained here and checked).
    let after = VictimState {
        queued: before.queued,
        ..victim_state(&app, &stack).await
    };
    assert_eq!(after, before);
    let queued = testkit::harness::receive(&stack, "NotificationsQueue", 30)
        .await
        .unwrap();
    assert!(!queued.is_empty(), "t2's own sends were accepted");
    for message in &queued {
        let n: herald::Notification = serde_json::from_str(&message.body).unwrap();
        assert_eq!(n.tenant.as_str(), "t2");
    }

    // The rightful callers do get through: the refusals above were about the token.
    for op in operations.iter().filter(|op| !op.public) {
        let token = if op.user_token {
            app.user_token("t1", "u1")
        } else {
            issuer.sign(&TokenSpec {
                scopes: op.service_scopes.clone(),
                ..issuer.service("t1")
            })
        };
        let (status, answer) = call(&router, &op.method, &uri(op), Some(&token), body(op))
            .await
            .unwrap();
        assert!(
            (200..300).contains(&status)
                || (status == 404 && matches!(op.method.as_str(), "GET" | "DELETE")),
            "{} {} for its rightful caller: {status} {answer}",
            op.method,
            op.path
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_user_id_in_two_tenants_shares_nothing() {
    let stack = test_stack(&[]).await.unwrap();
    let app = std::sync::Arc::new(LocalApp::new(&stack).unwrap());
    let router = app.router();
    let shutdown = CancellationToken::new();
    let workers = app.spawn_workers(1, 1, &shutdown);

    for (tenant, email, rooms) in [
        ("alpha", "ann@alpha.example", vec!["r1", "r1"]),
        ("beta", "ann@beta.example", vec!["r2"]),
    ] {
        let service = app.service_token(tenant);
        let (status, _) = call(
            &router,
            "PUT",
            "/v1/users/ann/contact",
            Some(&service),
            Some(json!({"email": email})),
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
        let items: Vec<Value> = rooms
            .iter()
            .map(|r| json!({"user_id": "ann", "room_id": r, "title": tenant, "body": "b", "channels": ["inbox"]}))
            .collect();
        let (status, answer) = call(
            &router,
            "POST",
            "/v1/notifications",
            Some(&service),
            Some(json!({ "notifications": items })),
        )
        .await
        .unwrap();
        assert_eq!(status, 202, "{answer}");
    }

    let unread = |tenant: &'static str| {
        let (router, token) = (router.clone(), app.user_token(tenant, "ann"));
        async move {
            call(&router, "GET", "/v1/users/ann/unread", Some(&token), None)
                .await
                .map(|(_, mut body)| {
                    // How many commits TOTAL took depends on the batching; the counts do not.
                    assert!(body["version"].is_u64(), "{body}");
                    body.as_object_mut().map(|o| o.remove("version"));
                    body
                })
        }
    };
    eventually(
        Duration::from_secs(20),
        "both tenants committed",
        || async {
            Ok(
                (unread("alpha").await?["total"] == 2 && unread("beta").await?["total"] == 1)
                    .then_some(()),
            )
        },
    )
    .await
    .unwrap();
    assert_eq!(
        unread("alpha").await.unwrap(),
        json!({"total": 2, "rooms": {"r1": 2}, "unseen": {"total": 2, "rooms": {"r1": 2}}})
    );
    assert_eq!(
        unread("beta").await.unwrap(),
        json!({"total": 1, "rooms": {"r2": 1}, "unseen": {"total": 1, "rooms": {"r2": 1}}})
    );

    for (tenant, title, count, email) in [
        ("alpha", "alpha", 2, "ann@alpha.example"),
        ("beta", "beta", 1, "ann@beta.example"),
    ] {
        let user = app.user_token(tenant, "ann");
        let (_, page) = call(&router, "GET", "/v1/users/ann/messages", Some(&user), None)
            .await
            .unwrap();
        let messages = page["messages"].as_array().unwrap();
        assert_eq!(messages.len(), count, "{tenant}: {page}");
        assert!(
            messages.iter().all(|m| m["title"] == title),
            "{tenant}: {page}"
        );
        let (_, contact) = call(&router, "GET", "/v1/users/ann/contact", Some(&user), None)
            .await
            .unwrap();
        assert_eq!(contact["email"], email);
    }

    // Clearing alpha's inbox leaves beta's alone.
    let (_, after) = call(
        &router,
        "POST",
        "/v1/users/ann/read-all",
        Some(&app.user_token("alpha", "ann")),
        None,
    )
    .await
    .unwrap();
    assert_eq!(after["total"], 0);
    assert_eq!(unread("beta").await.unwrap()["total"], 1);

    shutdown.cancel();
    for w in workers {
        w.await.unwrap();
    }
}
