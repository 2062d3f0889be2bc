//! Helpers of the counter tests against the emulator: users, notifications with fixed ids,
//! the inbox store of a stack, queueing, draining and reading counters back.

#![allow(clippy::unwrap_used)] // test support: a panic is the failure report

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use herald::aws::dynamodb::DynamoInbox;
use herald::consumer::run_worker;
use herald::ports::{CounterStore, OutgoingMessage, QueueSender};
use herald::{Channel, Notification, NotificationId, RoomId, TenantId, UserId, UserKey};
use tokio_util::sync::CancellationToken;

use crate::harness::{eventually, queue_depth};
use crate::meter::{metered_dynamodb, CallMeter};
use crate::runner::LocalApp;
use crate::stack::Stack;

pub fn user(u: &str) -> UserKey {
    UserKey {
        tenant: TenantId::parse("default", "t").unwrap(),
        user: UserId::parse(u, "u").unwrap(),
    }
}

pub fn notification(id: &str, u: &str, room: &str) -> Notification {
    Notification {
        tenant: TenantId::parse("default", "t").unwrap(),
        id: NotificationId::parse(id, "id").unwrap(),
        user_id: UserId::parse(u, "u").unwrap(),
        room_id: RoomId::parse(room, "r").unwrap(),
        title: "Hi".into(),
        body: "b".into(),
        channels: vec![Channel::Inbox],
        category: Default::default(),
        data: None,
        created_at: "2026-11-23T09:00:00Z".parse().unwrap(),
        log_key: None,
        correlation_id: None,
        campaign: None,
        workflow: None,
        steps: None,
        digest: None,
    }
}

pub fn inbox(stack: &Stack, meter: &CallMeter) -> Arc<DynamoInbox> {
    Arc::new(DynamoInbox::new(
        metered_dynamodb(&stack.sdk, meter),
        &stack.resource("InboxTable").unwrap().name,
        30,
    ))
}

pub async fn enqueue(stack: &Stack, bodies: Vec<String>) {
    let sender = herald::aws::sqs::SqsSender::new(
        aws_sdk_sqs::Client::new(&stack.sdk),
        &stack.resource("NotificationsQueue").unwrap().reference,
    );
    let messages: Vec<OutgoingMessage> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| OutgoingMessage {
            id: i.to_string(),
            body,
            attributes: vec![],
            delay_seconds: None,
            trace_header: None,
        })
        .collect();
    assert!(sender.send(&messages).await.iter().all(Result::is_ok));
}

/// Sets a user's TOTAL behind herald's back (to create drift).
pub async fn corrupt_total(stack: &Stack, u: &str, unread: u64) {
    aws_sdk_dynamodb::Client::new(&stack.sdk)
        .update_item()
        .table_name(&stack.resource("InboxTable").unwrap().name)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(herald::aws::dynamodb::user_pk(&user(u))),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("TOTAL".into()),
        )
        .update_expression("SET unread = :u")
        .expression_attribute_values(
            ":u",
            aws_sdk_dynamodb::types::AttributeValue::N(unread.to_string()),
        )
        .send()
        .await
        .unwrap();
}

pub fn body(n: &Notification) -> String {
    serde_json::to_string(n).unwrap()
}

/// Runs a worker over the notifications queue until it is empty.
pub async fn consume(app: &LocalApp, stack: &Stack) {
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(run_worker(
        app.writer.clone(),
        app.notifications.clone(),
        1,
        shutdown.clone(),
    ));
    eventually(
        Duration::from_secs(30),
        "an empty notifications queue",
        || async { Ok((queue_depth(stack, "NotificationsQueue").await? == 0).then_some(())) },
    )
    .await
    .unwrap();
    shutdown.cancel();
    worker.await.unwrap();
}

/// A user's TOTAL unread, as stored.
pub async fn total_unread(store: &dyn CounterStore, u: &str) -> u64 {
    store.read_counters(&user(u)).await.unwrap().total.unread
}

pub fn totals(c: &herald::domain::counters::Counters) -> (u64, BTreeMap<String, u64>) {
    let u = c.unread();
    (u.total, u.rooms)
}
