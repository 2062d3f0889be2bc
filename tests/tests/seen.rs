//! Seen and archived on the emulator, through the inbox API: marks by herald's id and a
//! client's id, seen-all, a mark from before a room read (a real conditional transaction
//! refuses it), archive filters on both lists (the room list reads the flags by key), and
//! unread and unseen exact throughout.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use herald::domain::counters::commit::apply_to_counters;
use herald::domain::counters::UserKey;
use herald::domain::notification::{parse_notification, IdSource};
use herald::{RoomId, TenantId, UserId};
use serde_json::{json, Value};
use testkit::harness::{call, test_stack};
use testkit::runner::LocalApp;

fn user() -> UserKey {
    UserKey {
        tenant: TenantId::parse("t1", "t").unwrap(),
        user: UserId::parse("u1", "u").unwrap(),
    }
}

/// Commits one inbox message to u1's room; `id` is the client's, or herald's when None.
async fn commit(app: &LocalApp, id: Option<&str>, room: &str) -> String {
    let mut item =
        json!({"user_id": "u1", "room_id": room, "title": "t", "body": "b", "channels": ["inbox"]});
    if let Some(id) = id {
        item["id"] = json!(id);
    }
    let n = parse_notification(
        &item,
        0,
        &user().tenant,
        IdSource::Generate,
        jiff::Timestamp::now(),
    )
    .unwrap();
    let id = n.id.to_string();
    apply_to_counters(
        app.inbox_api.counters.as_ref(),
        vec![(0, n)],
        &Default::default(),
    )
    .await;
    id
}

fn counts(answer: &Value) -> (u64, u64) {
    (
        answer["total"].as_u64().unwrap(),
        answer["unseen"]["total"].as_u64().unwrap(),
    )
}

fn ids(page: &Value) -> Vec<String> {
    let mut ids: Vec<String> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seen_and_archived_keep_both_counts_exact() {
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let router = app.router();
    let token = app.user_token("t1", "u1");
    let api = |method: &'static str, uri: String, body: Option<Value>| {
        let (router, token) = (router.clone(), token.clone());
        async move {
            call(&router, method, &uri, Some(&token), body)
                .await
                .unwrap()
        }
    };
    let herald_id = commit(&app, None, "r1").await;
    commit(&app, Some("c2"), "r1").await;
    commit(&app, Some("c3"), "r2").await;
    commit(&app, Some("c4"), "r2").await;
    let (_, unread) = api("GET", "/v1/users/u1/unread".into(), None).await;
    assert_eq!(counts(&unread), (4, 4), "{unread}");

    // One by herald's id, one by the client's, one unknown; twice: counted once.
    for _ in 0..2 {
        let (status, answer) = api(
            "POST",
            "/v1/users/u1/messages/seen".into(),
            Some(json!({"ids": [herald_id, "c2", "nope"]})),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(counts(&answer), (4, 2), "{answer}");
        assert_eq!(answer["not_found"], json!(["nope"]));
        assert_eq!(answer["unseen"]["rooms"], json!({"r2": 2}));
    }
    let (_, page) = api("GET", "/v1/users/u1/messages".into(), None).await;
    for m in page["messages"].as_array().unwrap() {
        let seen = m["id"] == json!(herald_id) || m["id"] == "c2";
        assert_eq!(
            (m["seen"].clone(), m["read"].clone()),
            (json!(seen), json!(false)),
            "{m}"
        );
    }

    // Everything seen; a message after that is unseen.
    let (_, answer) = api("POST", "/v1/users/u1/seen-all".into(), None).await;
    assert_eq!(counts(&answer), (4, 0), "{answer}");
    commit(&app, Some("c5"), "r2").await;
    let (_, unread) = api("GET", "/v1/users/u1/unread".into(), None).await;
    assert_eq!(counts(&unread), (5, 1), "{unread}");

    // A mark made from before a room read: the transaction's condition refuses it.
    let stale = app
        .inbox_api
        .messages
        .find_messages(&user(), &["c5".to_owned()])
        .await
        .unwrap()
        .pop()
        .flatten()
        .unwrap();
    assert!(!stale.seen);
    let (_, answer) = api("POST", "/v1/users/u1/rooms/r2/read".into(), None).await;
    assert_eq!(counts(&answer), (2, 0), "{answer}");
    commit(&app, Some("c6"), "r2").await;
    assert!(app
        .inbox_api
        .counters
        .mark_seen(&user(), &stale)
        .await
        .is_err_and(|e| matches!(e, herald::ports::CommitError::Retryable(_))));
    let counters = app.inbox_api.counters.read_counters(&user()).await.unwrap();
    assert_eq!((counters.total.unread, counters.total.unseen), (3, 1));
    assert_eq!(counters.drift(), 0);
    let r2 = RoomId::parse("r2", "room").unwrap();
    assert_eq!(counters.rooms[&r2].unseen, 1, "c6 only");

    // Archive c2: both lists can leave it out or show only it; counts unchanged.
    let (status, answer) = api(
        "POST",
        "/v1/users/u1/messages/archive".into(),
        Some(json!({"ids": ["c2", "gone"]})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"archived": ["c2"], "not_found": ["gone"]}));
    let (_, all) = api("GET", "/v1/users/u1/messages?archived=false".into(), None).await;
    assert!(!ids(&all).contains(&"c2".to_owned()), "{all}");
    assert_eq!(ids(&all).len(), 5);
    let (_, only) = api("GET", "/v1/users/u1/messages?archived=true".into(), None).await;
    assert_eq!(ids(&only), vec!["c2".to_owned()]);
    let (_, room) = api(
        "GET",
        "/v1/users/u1/messages?room=r1&archived=false".into(),
        None,
    )
    .await;
    assert_eq!(ids(&room), vec![herald_id.clone()]);
    let (_, room) = api("GET", "/v1/users/u1/messages?room=r1".into(), None).await;
    let c2 = room["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "c2")
        .unwrap()
        .clone();
    assert_eq!(
        (c2["archived"].clone(), c2["seen"].clone()),
        (json!(true), json!(true))
    );
    let (_, unread) = api("GET", "/v1/users/u1/unread".into(), None).await;
    assert_eq!(counts(&unread), (3, 1));
    let (_, answer) = api(
        "POST",
        "/v1/users/u1/messages/unarchive".into(),
        Some(json!({"ids": ["c2"]})),
    )
    .await;
    assert_eq!(answer["unarchived"], json!(["c2"]));
    let (_, only) = api("GET", "/v1/users/u1/messages?archived=true".into(), None).await;
    assert!(ids(&only).is_empty());

    // Bad input: named, nothing changed.
    for (uri, body, field) in [
        ("/v1/users/u1/messages/seen", json!({"ids": []}), "ids"),
        (
            "/v1/users/u1/messages/archive",
            json!({"ids": ["a b"]}),
            "ids[0]",
        ),
        ("/v1/users/u1/messages/seen", json!({"id": "c3"}), "id"),
    ] {
        let (status, answer) = api("POST", uri.into(), Some(body)).await;
        assert_eq!(
            (status, answer["error"]["field"].clone()),
            (400, json!(field))
        );
    }
    let (status, answer) = api("GET", "/v1/users/u1/messages?archived=maybe".into(), None).await;
    assert_eq!(
        (status, answer["error"]["field"].clone()),
        (400, json!("archived"))
    );
    let (_, unread) = api("GET", "/v1/users/u1/unread".into(), None).await;
    assert_eq!(counts(&unread), (3, 1));
}
