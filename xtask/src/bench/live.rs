//! `cargo xtask bench live`: what the live feed costs per notification, on the emulator with
//! an interceptor on the pusher's real DynamoDB client. Notifications to --users users, of
//! whom --online have a socket open, are committed as the writer commits them; the inbox
//! table's stream is then read as Lambda's event source reads it (the template's batch size
//! and filter) into the pusher. Frames go to recording sockets (the management API's calls
//! are counted as frames). Writes target/bench/live.json.

use std::sync::Arc;

use anyhow::{ensure, Result};
use herald::aws::connections::DynamoConnections;
use herald::aws::dynamodb::DynamoInbox;
use herald::domain::counters::commit::apply_to_counters;
use herald::domain::live::Connection;
use herald::domain::notification::{parse_notification, IdSource};
use herald::fake::RecordingSockets;
use herald::ports::live::Connections;
use herald::{TenantId, UserId, UserKey};
use serde_json::{json, Value};
use testkit::meter::{metered_dynamodb, CallMeter};
use testkit::stack::Stack;
use testkit::template::Template;

/// Options of `cargo xtask bench live`.
#[derive(Debug, clap::Args)]
pub struct LiveArgs {
    /// Users, one notification each.
    #[arg(long, default_value_t = 500)]
    users: usize,
    /// Of them, users with a socket open (the first ones).
    #[arg(long, default_value_t = 50)]
    online: usize,
}

pub fn run(args: &LiveArgs) -> Result<()> {
    ensure!(args.online <= args.users, "--online is at most --users");
    super::measure_on_emulator(
        "live",
        |endpoint| async move { measure(&endpoint, args).await },
    )
}

async fn measure(endpoint: &str, args: &LiveArgs) -> Result<Value> {
    let stack = Stack::provision(endpoint, "bench-live", Template::project()?, &[]).await?;
    let config = live::PushConfig::from_vars(&stack.function_vars("LivePushFunction")?)?;
    let (table, source) = stack
        .stream_event_source("LivePushFunction")?
        .ok_or_else(|| anyhow::anyhow!("LivePushFunction reads no stream"))?;
    let stream_arn = stack.streams[&table].clone();
    let tenant = TenantId::parse("bench", "t")?;
    let user = |i: usize| -> Result<UserKey> {
        Ok(UserKey {
            tenant: tenant.clone(),
            user: UserId::parse(format!("u{i}"), "u")?,
        })
    };

    // Who is online, then one notification each, committed as the writer commits them.
    let plain = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let connections_plain = DynamoConnections::new(plain.clone(), &config.connections_table);
    for i in 0..args.online {
        connections_plain
            .add(&Connection {
                id: format!("socket-{i}"),
                user: user(i)?,
                connected_at: jiff::Timestamp::now(),
            })
            .await?;
    }
    let inbox = DynamoInbox::new(plain, &config.inbox_table, 30);
    let batch = (0..args.users)
        .map(|i| {
            let item = json!({"user_id": format!("u{i}"), "room_id": "r1", "title": "Order shipped",
                "body": "On its way", "channels": ["inbox"]});
            Ok((
                i,
                parse_notification(
                    &item,
                    0,
                    &tenant,
                    IdSource::Generate,
                    jiff::Timestamp::now(),
                )?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    for chunk in batch.chunks(100) {
        apply_to_counters(&inbox, chunk.to_vec(), &Default::default()).await;
    }

    // The pusher, its DynamoDB calls counted, over the stream.
    let meter = CallMeter::default();
    let metered = metered_dynamodb(&stack.sdk, &meter);
    let sockets = Arc::new(RecordingSockets::default());
    let pusher = live::push::Pusher {
        connections: Arc::new(DynamoConnections::new(
            metered.clone(),
            &config.connections_table,
        )),
        counters: Arc::new(DynamoInbox::new(metered, &config.inbox_table, 30)),
        sockets: sockets.clone(),
    };
    let (records, batches) =
        local::live::drain_stream(&stack.sdk, &stream_arn, &source, &pusher).await?;
    let counts = meter.counts();
    // Each online user at least one frame (two when their records straddle two batches).
    let frames: usize = (0..args.online)
        .map(|i| sockets.frames(&format!("socket-{i}")).len())
        .sum();
    let reached = (0..args.online)
        .filter(|i| !sockets.frames(&format!("socket-{i}")).is_empty())
        .count();
    ensure!(
        reached == args.online,
        "{reached} of {} online users got a frame",
        args.online
    );
    let n = args.users as f64;
    let connections_queries = counts.operation("DynamoDB.Query") as f64;
    Ok(json!({
        "users": args.users,
        "online": args.online,
        "stream_records": records,
        "stream_records_per_notification": records as f64 / n,
        "pusher_batches": batches,
        "notifications_per_batch": n / batches.max(1) as f64,
        "frames": frames,
        "dynamodb_queries_per_notification": connections_queries / n,
        "dynamodb_requests_per_notification": counts.attempts_of("DynamoDB") as f64 / n,
        "operations": counts.attempts.iter()
            .map(|(k, v)| (k.clone(), json!(*v as f64 / n)))
            .collect::<serde_json::Map<_, _>>(),
        "note": "Queries: one of the connections table per notified user, plus one strongly consistent read of the counters per online user.",
    }))
}
