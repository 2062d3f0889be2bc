//! The benchmark against the emulator: a burst through ingest and one consumer, with every
//! SDK call and write unit counted by an interceptor on the real clients.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use axum::body::Body;
use axum::http::Request;
use herald::aws::dynamodb::DynamoInbox;
use herald::aws::sqs::{SqsSender, SqsSourceQueue};
use herald::consumer::{run_worker, BatchHandler, Disposition, QueueBinding, QueueMessage};
use herald::domain::counters::commit::Packing;
use herald::fake::{Hooked, StoreHooks};
use herald::ports::UserWrites;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use testkit::meter::{metered_dynamodb, metered_sqs, CallMeter};
use testkit::stack::Stack;
use testkit::template::Template;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::{cpu_time, EMULATOR_WORKERS};

/// A marketing-shaped burst: many users, most with one message, some with several.
pub(super) fn burst(n: usize, seed: u64) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut items = Vec::with_capacity(n);
    let mut user = 0;
    while items.len() < n {
        let messages = match rng.random_range(0..100) {
            0..60 => 1,
            60..85 => 2,
            85..95 => rng.random_range(3..=5),
            _ => rng.random_range(6..=10),
        };
        let rooms = rng.random_range(1..=3);
        for m in 0..messages {
            if items.len() == n {
                break;
            }
            let channels = if rng.random_bool(0.3) {
                json!(["inbox", "push"])
            } else {
                json!(["inbox"])
            };
            items.push(json!({
                "user_id": format!("user-{user}"), "room_id": format!("room-{}", m % rooms),
                "title": "Black Friday", "body": "Everything 30% off until midnight", "channels": channels,
                "category": "marketing"
            }));
        }
        user += 1;
    }
    items.shuffle(&mut rng);
    items
}

/// A chat-shaped stream: few users, several messages each over a few rooms.
pub(super) fn chat(n: usize, seed: u64) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(seed);
    let users = (n / 8).max(1);
    (0..n)
        .map(|_| {
            json!({
                "user_id": format!("user-{}", rng.random_range(0..users)),
                "room_id": format!("room-{}", rng.random_range(0..3)),
                "title": "New message", "body": "See you at 9", "channels": ["inbox"],
            })
        })
        .collect()
}

/// The traffic a run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// One message per user, mostly (`burst`).
    Marketing,
    /// Several messages per user (`chat`).
    Chat,
}

/// One configuration measured against the emulator, on tables of its own.
#[derive(Debug, Clone)]
pub(super) struct EmulatorRun {
    pub label: String,
    pub shape: Shape,
    pub notifications: usize,
    /// Messages handed to the handler at once (the event source's BatchSize).
    pub batch_size: usize,
    pub pack_users: bool,
}

/// Counts commits and records when each committed notification was committed, for its
/// ingest-to-counter latency. The hook runs inside the handler's measured CPU, so it only
/// notes the instant and the `created_at` text; they are parsed after the run.
#[derive(Default)]
struct Timing {
    committed: AtomicU64,
    commits: Mutex<Vec<(jiff::Timestamp, jiff::Timestamp)>>,
}

#[async_trait]
impl StoreHooks for Timing {
    async fn after_commit(&self, writes: &[UserWrites]) {
        let now = jiff::Timestamp::now();
        let mut commits = self.commits.lock().unwrap_or_else(|p| p.into_inner());
        let before = commits.len();
        commits.extend(
            writes
                .iter()
                .flat_map(|w| &w.messages)
                .map(|m| (now, m.created_at)),
        );
        self.committed
            .fetch_add((commits.len() - before) as u64, Ordering::Relaxed);
    }
}

impl Timing {
    /// Ingest-to-counter latency of each committed notification, in ms, sorted.
    fn latencies_ms(&self) -> Vec<f64> {
        let commits = self.commits.lock().unwrap_or_else(|p| p.into_inner());
        let mut latencies: Vec<f64> = commits
            .iter()
            .map(|(at, created)| at.duration_since(*created).as_secs_f64() * 1000.0)
            .collect();
        latencies.sort_by(f64::total_cmp);
        latencies
    }
}

/// The handler's own CPU: this thread's CPU time while a batch is being handled. The bench
/// runs on a current-thread runtime, so the handler's future and its connections run here;
/// the local poller's receives and deletes (the event source mapping's work on AWS, not the
/// function's) fall outside it.
struct HandlerCpu {
    inner: Arc<dyn BatchHandler>,
    nanos: AtomicU64,
}

#[async_trait]
impl BatchHandler for HandlerCpu {
    async fn handle(&self, batch: &[QueueMessage]) -> Vec<Disposition> {
        let before = thread_cpu_nanos();
        let dispositions = self.inner.handle(batch).await;
        self.nanos
            .fetch_add(thread_cpu_nanos().saturating_sub(before), Ordering::Relaxed);
        dispositions
    }
}

/// This thread's time on a CPU in nanoseconds (the first field of its schedstat).
fn thread_cpu_nanos() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

pub(super) async fn against_emulator(endpoint: &str, run: &EmulatorRun) -> Result<Value> {
    let n = run.notifications;
    let stack = Stack::provision(
        endpoint,
        &format!("bench-{}", run.label),
        Template::project()?,
        &[],
    )
    .await?;
    let meter = CallMeter::default();
    let sqs = metered_sqs(&stack.sdk, &meter);
    let vars = stack.function_vars("InboxWriterFunction")?;
    let config = inbox_writer::Config::from_vars(&vars)?;
    let timed = Arc::new(Hooked {
        inner: Arc::new(DynamoInbox::new(
            metered_dynamodb(&stack.sdk, &meter),
            &config.inbox_table,
            config.retention_days,
        )),
        hooks: Timing::default(),
    });
    let writer = Arc::new(inbox_writer::InboxWriter {
        store: timed.clone(),
        delivery: Arc::new(SqsSender::new(sqs.clone(), &config.delivery_queue_url)),
        channel_queues: Vec::new(),
        campaigns: None,
        policy: config.policy,
        // One pack at a time: the emulator runs transactions one at a time anyway (its item
        // lock), and whether concurrent packs pay is the simulation's `commit_concurrency`.
        packing: Packing {
            pack_users: run.pack_users,
            concurrency: 1,
        },
        preferences: None,
        step_schedulers: Vec::new(),
        digests: None,
    });
    let binding = QueueBinding {
        queue: Arc::new(SqsSourceQueue::new(sqs.clone(), &config.queue)),
        rules: config.queue.rules,
        batch_size: run.batch_size,
        batching_window: Duration::ZERO,
        timeout: None,
        max_concurrency: 1,
    };
    let ingest = ingest::app(Arc::new(ingest::Deps {
        queue: Arc::new(SqsSender::new(sqs.clone(), &config.queue.queue_url)),
        auth: herald::auth::AuthSettings::from_vars(&Default::default())?,
        workflows: None,
    }));
    // What API Gateway's JWT authorizer hands ingest for a service token of tenant `bench`.
    let service = herald::auth::jwt_request_context(
        herald::auth::claims(&[("custom:tenant", "bench"), ("scope", "herald/send")]),
        None,
    );

    let items = match run.shape {
        Shape::Marketing => burst(n, 7),
        Shape::Chat => chat(n, 7),
    };
    let users: std::collections::HashSet<&str> =
        items.iter().filter_map(|i| i["user_id"].as_str()).collect();
    let users = users.len();
    let bar = ProgressBar::new(n as u64).with_style(ProgressStyle::with_template(
        "{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
    )?);
    bar.set_message("ingest");
    for chunk in items.chunks(500) {
        let request = Request::post("/v1/notifications")
            .extension(service.clone())
            .body(Body::from(json!({"notifications": chunk}).to_string()))?;
        let response = ingest.clone().oneshot(request).await?;
        if response.status() != 202 {
            bail!("ingest answered {}", response.status());
        }
        bar.inc(chunk.len() as u64);
    }
    let ingest_counts = meter.counts();
    meter.reset();

    bar.set_position(0);
    bar.set_message("consume");
    let (cpu_before, started) = (cpu_time()?, Instant::now());
    let shutdown = CancellationToken::new();
    let handler = Arc::new(HandlerCpu {
        inner: writer.clone(),
        nanos: AtomicU64::new(0),
    });
    let workers: Vec<_> = (0..EMULATOR_WORKERS)
        .map(|_| {
            tokio::spawn(run_worker(
                handler.clone(),
                binding.clone(),
                1,
                shutdown.clone(),
            ))
        })
        .collect();
    while (timed.hooks.committed.load(Ordering::Relaxed) as usize) < n {
        if started.elapsed() > Duration::from_secs(1800) {
            bail!(
                "consumers stalled at {} of {n}",
                timed.hooks.committed.load(Ordering::Relaxed)
            );
        }
        bar.set_position(timed.hooks.committed.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (elapsed, cpu) = (started.elapsed(), cpu_time()? - cpu_before);
    shutdown.cancel();
    for w in workers {
        w.await?;
    }
    bar.finish_and_clear();
    let consume_counts = meter.counts();
    // What reconcile needs of that burst: the change log's consumer on the table's stream,
    // as its function reads it (the template's batch size and filter), its writes metered.
    let log_meter = CallMeter::default();
    let (table, source) = stack
        .stream_event_source("ChangeLogFunction")?
        .context("the template has no change log")?;
    let stream_arn = stack
        .streams
        .get(&table)
        .cloned()
        .context("the inbox table has no stream locally")?;
    let logger = reconcile::change_log::ChangeLogger {
        log: Arc::new(DynamoInbox::new(
            metered_dynamodb(&stack.sdk, &log_meter),
            &config.inbox_table,
            config.retention_days,
        )),
        clock: Arc::new(herald::ports::SystemClock),
        backoff: herald::domain::backoff::BackoffPolicy::default(),
    };
    let (_, log_batches) =
        local::live::drain_stream(&stack.sdk, &stream_arn, &source, &logger).await?;
    let log_wru = log_meter.counts().dynamodb_standard_write_units;

    let per_1000 = |x: f64| x * 1000.0 / n as f64;
    let handler_cpu_ms = handler.nanos.load(Ordering::Relaxed) as f64 / 1e6;
    let latencies = timed.hooks.latencies_ms();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let sqs_ops: BTreeMap<String, f64> = ingest_counts
        .attempts
        .iter()
        .chain(consume_counts.attempts.iter())
        .filter(|(k, _)| k.starts_with("SQS"))
        .fold(BTreeMap::new(), |mut acc, (k, v)| {
            *acc.entry(k.clone()).or_default() += per_1000(*v as f64);
            acc
        });
    let dynamodb_requests = consume_counts.attempts_of("DynamoDB") as f64;
    let sqs_requests = consume_counts.attempts_of("SQS") as f64;
    // What the function itself sends: ReceiveMessage is the event source mapping's.
    let function_sqs = sqs_requests - consume_counts.operation("SQS.ReceiveMessage") as f64;
    let wru =
        consume_counts.dynamodb_write_units + consume_counts.dynamodb_index_write_units + log_wru;
    Ok(json!({
        "label": run.label,
        "shape": format!("{:?}", run.shape).to_lowercase(),
        "batch_size": run.batch_size,
        "pack_users": run.pack_users,
        "dynamodb_requests_per_notification": dynamodb_requests / n as f64,
        "wru_per_notification": wru / n as f64,
        "sqs_requests_per_notification": sqs_requests / n as f64,
        "cpu_ms_per_1000": per_1000(handler_cpu_ms),
        "process_cpu_ms_per_1000": per_1000(cpu.as_secs_f64() * 1000.0),
        "cpu_note": "cpu_ms_per_1000: the handler's own thread CPU while handling batches (what the function runs on Lambda); process_cpu_ms_per_1000 adds the local poller's receives and deletes, which on AWS the event source mapping does",
        "modelled_lambda_ms_per_1000": per_1000(dynamodb_requests * 10.0 + function_sqs * 5.0),
        "modelled_lambda_note": "MODEL, not a measurement: 10 ms per DynamoDB request + 5 ms per SQS request the function sends (ReceiveMessage is the event source's)",
        "notifications": n,
        "users": users,
        "workers": EMULATOR_WORKERS,
        "consume_seconds": elapsed.as_secs_f64(),
        "dynamodb": {
            "write_units_per_1000": per_1000(wru),
            "change_log_write_units_per_1000": per_1000(log_wru),
            "change_log_batches": log_batches,
            "table_write_units_per_1000": per_1000(consume_counts.dynamodb_write_units),
            "index_write_units_per_1000": per_1000(consume_counts.dynamodb_index_write_units),
            "transact_write_items_per_1000": per_1000(consume_counts.operation("DynamoDB.TransactWriteItems") as f64),
            "items_per_transaction": consume_counts.transaction_sizes.iter().sum::<usize>() as f64 / consume_counts.transaction_sizes.len().max(1) as f64,
            "requests_per_1000": per_1000(consume_counts.attempts_of("DynamoDB") as f64),
        },
        "sqs": {
            "requests_per_1000": per_1000((ingest_counts.attempts_of("SQS") + consume_counts.attempts_of("SQS")) as f64),
            "by_operation_per_1000": sqs_ops,
            "note": "ReceiveMessage includes empty long polls at the end of the burst",
        },
        "ingest_to_counter_ms": {"p50": pct(0.50), "p99": pct(0.99), "max": pct(1.0)},
    }))
}
