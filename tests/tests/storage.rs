//! The inbox table's layout against the emulator: reconcile over many pages (Scan segments and
//! the change log), "read" in the list agreeing with the badge when a backlog
//! commits after a mark-read, cursors bound to their list, retention leaving counters alone.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use herald::aws::dynamodb::{user_pk, DynamoInbox};
use herald::domain::backoff::BackoffPolicy;
use herald::domain::counters::commit::{apply_to_counters, ApplyOutcome};
use herald::domain::mark_read::mark_room_read;
use herald::domain::notification::{parse_notification, IdSource};
use herald::domain::reconcile::{hour_of, reconcile, reconcile_all, Mode, Run};
use herald::ports::{CounterStore, MessageLog};
use herald::{Notification, RoomId, StoreError, TenantId};
use serde_json::{json, Value};
use testkit::counters_kit::{corrupt_total as set_total, user};
use testkit::harness::{call, test_stack};
use testkit::runner::LocalApp;
use testkit::stack::Stack;

fn room(r: &str) -> RoomId {
    RoomId::parse(r, "room").unwrap()
}

/// A notification as ingest makes it, created now.
fn notification(u: &str, r: &str) -> Notification {
    let item =
        json!({"user_id": u, "room_id": r, "title": "t", "body": "b", "channels": ["inbox"]});
    let tenant = TenantId::parse("default", "t").unwrap();
    parse_notification(
        &item,
        0,
        &tenant,
        IdSource::Generate,
        jiff::Timestamp::now(),
    )
    .unwrap()
}

fn table(stack: &Stack) -> String {
    stack.resource("InboxTable").unwrap().name.clone()
}

async fn commit(store: &DynamoInbox, batch: Vec<Notification>) {
    let batch = batch.into_iter().enumerate().collect();
    let outcomes = apply_to_counters(store, batch, &BackoffPolicy::default()).await;
    assert!(outcomes
        .iter()
        .all(|(_, _, o)| *o == ApplyOutcome::Committed));
}

#[tokio::test]
async fn reconcile_walks_many_pages_of_scan_segments_and_of_the_change_log() {
    let stack = test_stack(&[]).await.unwrap();
    // Two items a page: 24 users are many pages, as a table over 1 MB is.
    let store = DynamoInbox::new(aws_sdk_dynamodb::Client::new(&stack.sdk), table(&stack), 30)
        .with_page_limit(2);
    let first_hour = hour_of(jiff::Timestamp::now());
    let users: Vec<String> = (0..24).map(|i| format!("p{i:02}")).collect();
    commit(
        &store,
        users.iter().map(|u| notification(u, "r1")).collect(),
    )
    .await;
    let last_hour = hour_of(jiff::Timestamp::now());
    set_total(&stack, "p03", 9).await;
    set_total(&stack, "p17", 0).await;

    let policy = BackoffPolicy::default();
    let full = reconcile_all(&store, &store, Mode::Full, &policy)
        .await
        .unwrap();
    assert_eq!(
        (full.users, full.drifted_users, full.drift, full.repaired),
        (24, 2, 9, 2)
    );
    assert!(full.pages > 12, "pages of 2 items: {}", full.pages);
    assert!(full.complete);

    // The hourly run, once the hour of those writes is complete: every changed user, from
    // the change log, 16 shards in parallel, pages of 2. The change log's consumer reads
    // the stream of all that (the commits, the repairs, p05's write) as its function would.
    set_total(&stack, "p05", 4).await;
    let (records, batches) = LocalApp::new(&stack)
        .unwrap()
        .drain_change_log()
        .await
        .unwrap();
    assert!(
        records >= 24 && batches >= 1,
        "{records} records, {batches} batches"
    );
    let log_hour = hour_of(jiff::Timestamp::now());
    let mut changed = herald::domain::reconcile::ReconcileReport::default();
    let mut hours = Vec::new();
    for hour in [&first_hour, &last_hour, &log_hour] {
        if hours.contains(hour) {
            continue;
        }
        hours.push(hour.clone());
        let end = format!(
            "{}-{}-{}T{}:00:00Z",
            &hour[0..4],
            &hour[4..6],
            &hour[6..8],
            &hour[8..10]
        )
        .parse::<jiff::Timestamp>()
        .unwrap();
        let run = Run {
            mode: Mode::Changed,
            deadline: Instant::now() + Duration::from_secs(120),
            now: end + jiff::SignedDuration::from_mins(63),
            policy,
        };
        changed.add(&reconcile(&store, &store, run).await.unwrap());
    }
    // All 24 users, p05's drift of 3. Writes and a log that straddled an hour: the first
    // run also read the next hour while it was open, and the next run read it again.
    if hours.len() == 1 {
        assert_eq!(changed.users, 24);
    } else {
        assert!(changed.users >= 24, "{changed:?}");
    }
    assert_eq!((changed.drift, changed.repaired), (3, 1));
    // A cursor saved before the change log (a `by_change` index key) starts its partition
    // over instead of failing every run.
    use base64::Engine;
    use herald::ports::{UserIndex, UserSet};
    let old_cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(
            &json!({"changed": format!("{log_hour}#0"), "pk": "T#default#U#p01", "sk": "TOTAL"}),
        )
        .unwrap(),
    );
    for shard in 0..herald::domain::reconcile::CHANGE_SHARDS {
        let set = UserSet::Changed {
            hour: log_hour.clone(),
            shard,
        };
        let fresh = store.users_page(&set, None).await.unwrap();
        let resumed = store
            .users_page(&set, Some(old_cursor.clone()))
            .await
            .unwrap();
        assert_eq!(resumed, fresh, "shard {shard}");
    }
    let after = store.read_counters(&user("p05")).await.unwrap();
    assert_eq!((after.total.unread, after.drift()), (1, 0));
}

#[tokio::test]
async fn a_backlog_committed_after_a_mark_read_is_unread_in_the_list_as_in_the_badge() {
    let stack = test_stack(&[]).await.unwrap();
    let store = DynamoInbox::new(aws_sdk_dynamodb::Client::new(&stack.sdk), table(&stack), 30);
    let policy = BackoffPolicy::default();
    let seen = notification("ann", "r1");
    // Created later, before the mark-read, but still queued (a burst's backlog) when it
    // happens.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let backlog = notification("ann", "r1");
    commit(&store, vec![seen.clone()]).await;
    mark_room_read(&store, &user("ann"), &room("r1"), &policy)
        .await
        .unwrap();
    commit(&store, vec![backlog.clone()]).await;

    let unread = store.read_counters(&user("ann")).await.unwrap().unread();
    assert_eq!(
        (unread.total, unread.rooms.clone()),
        (1, BTreeMap::from([("r1".into(), 1)]))
    );
    let page = store
        .list_messages(&user("ann"), None, 10, None)
        .await
        .unwrap();
    let read: BTreeMap<String, bool> = page
        .messages
        .iter()
        .map(|m| (m.id.clone(), m.read))
        .collect();
    assert_eq!(
        read,
        BTreeMap::from([(seen.id.to_string(), true), (backlog.id.to_string(), false)]),
        "the list counts what the badge counts"
    );
    // Newest first is by creation (the log key), whatever the commit order.
    assert_eq!(page.messages[0].id, backlog.id.to_string());

    mark_room_read(&store, &user("ann"), &room("r1"), &policy)
        .await
        .unwrap();
    let page = store
        .list_messages(&user("ann"), Some(&room("r1")), 10, None)
        .await
        .unwrap();
    assert!(page.messages.iter().all(|m| m.read));
    assert_eq!(page.messages.len(), 2);
}

async fn get(app: &LocalApp, uri: &str) -> (u16, Value) {
    let token = app.service_token("default");
    call(&app.router(), "GET", uri, Some(&token), None)
        .await
        .unwrap()
}

#[tokio::test]
async fn pages_follow_their_list_and_a_cursor_from_another_list_is_a_400() {
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let store = DynamoInbox::new(aws_sdk_dynamodb::Client::new(&stack.sdk), table(&stack), 30);
    let mut batch: Vec<Notification> = Vec::new();
    for r in ["r1", "r2", "r1", "r2", "r1"] {
        batch.push(notification("cy", r));
        // Distinct creation times.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    commit(&store, batch.clone()).await;

    // Room r1 in pages of 2: newest first, no repeats, then no cursor.
    let mut ids = Vec::new();
    let mut uri = "/v1/users/cy/messages?room=r1&limit=2".to_owned();
    let r1_cursor = loop {
        let (status, page) = get(&app, &uri).await;
        assert_eq!(status, 200, "{page}");
        ids.extend(
            page["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => uri = format!("/v1/users/cy/messages?room=r1&limit=2&cursor={c}"),
            None => break uri.split("cursor=").nth(1).unwrap().to_owned(),
        }
    };
    let expected: Vec<String> = batch
        .iter()
        .rev()
        .filter(|n| n.room_id.as_str() == "r1")
        .map(|n| n.id.to_string())
        .collect();
    assert_eq!(ids, expected);

    let (_, all) = get(&app, "/v1/users/cy/messages?limit=2").await;
    let all_cursor = all["next_cursor"].as_str().unwrap().to_owned();
    for uri in [
        format!("/v1/users/cy/messages?room=r2&cursor={r1_cursor}"),
        format!("/v1/users/cy/messages?cursor={r1_cursor}"),
        format!("/v1/users/cy/messages?room=r1&cursor={all_cursor}"),
    ] {
        let (status, body) = get(&app, &uri).await;
        assert_eq!(
            (status, body["error"]["field"].clone()),
            (400, json!("cursor")),
            "{uri}: {body}"
        );
    }
    assert!(matches!(
        store
            .list_messages(&user("cy"), Some(&room("r2")), 2, Some(&all_cursor))
            .await,
        Err(StoreError::BadCursor)
    ));
}

#[tokio::test]
async fn expired_messages_leave_the_list_and_the_counters_as_they_were() {
    let stack = test_stack(&[]).await.unwrap();
    let store = DynamoInbox::new(aws_sdk_dynamodb::Client::new(&stack.sdk), table(&stack), 30);
    commit(
        &store,
        vec![notification("eve", "r1"), notification("eve", "r2")],
    )
    .await;
    // What the TTL does when a message's `expires_at` passes: the item goes, nothing else.
    let ddb = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let items = ddb
        .query()
        .table_name(table(&stack))
        .key_condition_expression("pk = :pk AND begins_with(sk, :m)")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(user_pk(&user("eve"))),
        )
        .expression_attribute_values(
            ":m",
            aws_sdk_dynamodb::types::AttributeValue::S("M#".into()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(items.items().len(), 2);
    for item in items.items() {
        ddb.delete_item()
            .table_name(table(&stack))
            .key("pk", item["pk"].clone())
            .key("sk", item["sk"].clone())
            .send()
            .await
            .unwrap();
    }

    let page = store
        .list_messages(&user("eve"), None, 10, None)
        .await
        .unwrap();
    assert!(page.messages.is_empty());
    // The badge still counts the unread notifications (docs/storage.md, "Retention").
    let counters = store.read_counters(&user("eve")).await.unwrap();
    assert_eq!((counters.total.unread, counters.drift()), (2, 0));
    let report = reconcile_all(&store, &store, Mode::Full, &BackoffPolicy::default())
        .await
        .unwrap();
    assert_eq!((report.users, report.drift), (1, 0));
    // And a mark-read clears them like any other.
    let outcome = mark_room_read(&store, &user("eve"), &room("r1"), &BackoffPolicy::default())
        .await
        .unwrap();
    assert_eq!(outcome.after.unread().total, 1);
}

/// The adapter takes the time from its clock, not the system's: a message's `expires_at`
/// is the clock's now plus the retention, a change-log item expires on its time, and a
/// checkpoint is stamped with it.
#[tokio::test]
async fn the_inbox_table_reads_the_time_from_its_clock() {
    use herald::fake::FixedClock;
    use herald::ports::UserIndex;
    use std::sync::Arc;

    let stack = test_stack(&[]).await.unwrap();
    let at: jiff::Timestamp = "2031-05-04T10:20:30Z".parse().unwrap();
    let store = DynamoInbox::new(aws_sdk_dynamodb::Client::new(&stack.sdk), table(&stack), 30)
        .with_clock(Arc::new(FixedClock(at)));
    commit(&store, vec![notification("kim", "r1")]).await;
    let ddb = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let items = ddb
        .query()
        .table_name(table(&stack))
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(user_pk(&user("kim"))),
        )
        .send()
        .await
        .unwrap();
    let attribute = |prefix: &str, name: &str| {
        items
            .items()
            .iter()
            .find(|i| i["sk"].as_s().is_ok_and(|sk| sk.starts_with(prefix)))
            .and_then(|i| i.get(name).cloned())
    };
    let expires = attribute("M#", "expires_at").unwrap();
    assert_eq!(
        expires.as_n().unwrap(),
        &(at.as_second() + 30 * 86_400).to_string()
    );
    assert_eq!(
        attribute("TOTAL", "changed"),
        None,
        "the writers mark nothing for reconcile"
    );
    // A change-log item written through this store expires on the clock's time.
    let entry = herald::domain::reconcile::change_log_entries("b1", [user("kim")], at).remove(0);
    herald::ports::ChangeLog::log_changes(&store, &entry)
        .await
        .unwrap();
    let logged = ddb
        .get_item()
        .table_name(table(&stack))
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!(
                "CHANGED#{}#{}",
                hour_of(at),
                entry.shard
            )),
        )
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(entry.id))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        logged["expires_at"].as_n().unwrap(),
        &(at.as_second() + 14 * 86_400).to_string()
    );
    store.save_checkpoint("clock", "{}").await.unwrap();
    let checkpoint = ddb
        .get_item()
        .table_name(table(&stack))
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("RECONCILE".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("CHECKPOINT#clock".into()),
        )
        .send()
        .await
        .unwrap();
    let stamped = checkpoint.item().and_then(|i| i.get("updated_at")).cloned();
    assert_eq!(
        stamped
            .as_ref()
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
        Some("2031-05-04T10:20:30.000Z")
    );
}
