//! `cargo xtask bench counters`: what a marketing-shaped burst costs and how the consumer
//! scales. Two parts, reported separately:
//! - against the emulator: SDK calls and DynamoDB write units per 1,000 notifications
//!   (counted by an interceptor on the real clients), herald's CPU time per 1,000, and
//!   ingest-to-counter latency. The emulator is one Python process, so its speed says
//!   nothing about AWS; the ratios do.
//! - a simulation: the same handler over the in-memory store with injected per-call
//!   latency, over 1–16 workers, to show throughput grows linearly with workers.

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
use herald::consumer::{run_worker, QueueBinding};
use herald::domain::counters::UserKey;
use herald::fake::{Faults, Hooked, InMemoryInbox, RecordingQueue, StoreHooks};
use herald::Notification;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use testkit::emulator::{free_port, Emulator};
use testkit::meter::{metered_dynamodb, metered_sqs, CallMeter};
use testkit::sim::{drain, SimQueue};
use testkit::stack::Stack;
use testkit::template::Template;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// One consumer against the emulator: moto is not thread-safe (concurrent transactions fail
/// with 500s and roll back each other), and per-1,000 costs do not depend on the worker count.
const EMULATOR_WORKERS: usize = 1;
const SIM_WORKERS: [usize; 5] = [1, 2, 4, 8, 16];
const SIM_LATENCY: Duration = Duration::from_millis(2);

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum Bench {
    /// Cost per 1,000 notifications against the emulator (calls, write units, CPU) and
    /// throughput over 1-16 workers in a labelled simulation; writes
    /// target/bench/counters.json and counters-throughput.svg.
    Counters(CountersArgs),
}

/// Options of `cargo xtask bench counters`.
#[derive(Debug, clap::Args)]
pub struct CountersArgs {
    /// Notifications sent through the emulator (its transactions slow down as a table grows,
    /// and the per-1,000 ratios do not need more).
    #[arg(long, default_value_t = 1_000)]
    emulator_notifications: usize,
    /// Notifications in the throughput simulation.
    #[arg(long, default_value_t = 10_000)]
    notifications: usize,
}

pub fn run(bench: &Bench) -> Result<()> {
    match bench {
        Bench::Counters(args) => counters(args),
    }
}

fn counters(args: &CountersArgs) -> Result<()> {
    // Costs and CPU time of a debug build would mislead: run optimised.
    if cfg!(debug_assertions) {
        eprintln!("building xtask --release for the benchmark...");
        let status = std::process::Command::new("cargo")
            .args(["run", "--release", "--quiet", "-p", "xtask", "--"])
            .args(std::env::args().skip(1))
            .current_dir(testkit::workspace_root())
            .status()?;
        if !status.success() {
            bail!("benchmark failed ({status})");
        }
        return Ok(());
    }
    herald::telemetry::init_tracing();
    let (emulator_n, sim_n) = (args.emulator_notifications, args.notifications);
    let root = testkit::workspace_root();
    let venv = testkit::tools::dev_venv(&root)?;
    std::fs::create_dir_all(root.join(".herald"))?;
    let emulator = Emulator::start(&venv, free_port()?, &root.join(".herald/moto-bench.log"))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let emulated = runtime.block_on(against_emulator(&emulator.endpoint, emulator_n))?;
    drop(emulator);
    let simulated = runtime.block_on(simulation(sim_n))?;

    let out_dir = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target"))
        .join("bench");
    std::fs::create_dir_all(&out_dir)?;
    let result = json!({"emulator": emulated, "simulation": simulated});
    std::fs::write(
        out_dir.join("counters.json"),
        serde_json::to_string_pretty(&result)?,
    )?;
    std::fs::write(
        out_dir.join("counters-throughput.svg"),
        throughput_svg(&simulated),
    )?;
    summarize(&result);
    eprintln!(
        "\nwrote {} and counters-throughput.svg",
        out_dir.join("counters.json").display()
    );
    Ok(())
}

/// A marketing-shaped burst: many users, most with one message, some with several.
fn burst(n: usize, seed: u64) -> Vec<Value> {
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

/// Counts commits and records ingest-to-counter latency of each committed notification.
#[derive(Default)]
struct Timing {
    committed: AtomicU64,
    latencies_ms: Mutex<Vec<f64>>,
}

#[async_trait]
impl StoreHooks for Timing {
    async fn after_commit(&self, _user: &UserKey, messages: &[Notification]) {
        let now = jiff::Timestamp::now();
        let mut latencies = self.latencies_ms.lock().unwrap_or_else(|p| p.into_inner());
        for m in messages {
            if let Ok(created) = m.created_at.parse::<jiff::Timestamp>() {
                latencies.push(now.duration_since(created).as_secs_f64() * 1000.0);
            }
        }
        self.committed
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
    }
}

async fn against_emulator(endpoint: &str, n: usize) -> Result<Value> {
    let stack = Stack::provision(endpoint, "bench", Template::project()?, &[]).await?;
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
        policy: config.policy,
    });
    let binding = QueueBinding {
        queue: Arc::new(SqsSourceQueue::new(sqs.clone(), &config.queue)),
        rules: config.queue.rules,
    };
    let ingest = ingest::app(Arc::new(ingest::Deps {
        queue: Arc::new(SqsSender::new(sqs.clone(), &config.queue.queue_url)),
        tenant: herald::TenantId::parse("bench", "tenant")?,
    }));

    let items = burst(n, 7);
    let users: std::collections::HashSet<&str> =
        items.iter().filter_map(|i| i["user_id"].as_str()).collect();
    let users = users.len();
    let bar = ProgressBar::new(n as u64).with_style(ProgressStyle::with_template(
        "{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
    )?);
    bar.set_message("ingest");
    for chunk in items.chunks(500) {
        let request = Request::post("/v1/notifications")
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
    let workers: Vec<_> = (0..EMULATOR_WORKERS)
        .map(|_| {
            tokio::spawn(run_worker(
                writer.clone(),
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

    let per_1000 = |x: f64| x * 1000.0 / n as f64;
    let mut latencies = timed
        .hooks
        .latencies_ms
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    latencies.sort_by(f64::total_cmp);
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
    Ok(json!({
        "notifications": n,
        "users": users,
        "workers": EMULATOR_WORKERS,
        "consume_seconds": elapsed.as_secs_f64(),
        "dynamodb": {
            "write_units_per_1000": per_1000(consume_counts.dynamodb_write_units + consume_counts.dynamodb_index_write_units),
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
        "cpu_ms_per_1000": per_1000(cpu.as_secs_f64() * 1000.0),
        "ingest_to_counter_ms": {"p50": pct(0.50), "p99": pct(0.99), "max": pct(1.0)},
    }))
}

async fn simulation(n: usize) -> Result<Value> {
    let items = burst(n, 11);
    let tenant = herald::TenantId::parse("sim", "tenant")?;
    let bodies: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let n = herald::domain::notification::parse_notification(
                item,
                i,
                &tenant,
                herald::domain::notification::IdSource::Generate,
                "2026-11-23T09:00:00.000Z",
            )?;
            Ok(serde_json::to_string(&n)?)
        })
        .collect::<Result<_>>()?;
    let mut points = Vec::new();
    for workers in SIM_WORKERS {
        let store = Arc::new(InMemoryInbox::new(Faults {
            latency: SIM_LATENCY,
            ..Faults::default()
        }));
        let queue = Arc::new(SimQueue::new(SIM_LATENCY));
        for b in &bodies {
            queue.push(b.clone());
        }
        let writer = Arc::new(inbox_writer::InboxWriter {
            store: store.clone(),
            delivery: Arc::new(RecordingQueue::default()),
            policy: Default::default(),
        });
        let spinner =
            ProgressBar::new_spinner().with_message(format!("simulation: {workers} worker(s)"));
        spinner.enable_steady_tick(Duration::from_millis(200));
        let started = Instant::now();
        drain(queue, writer, workers).await;
        let seconds = started.elapsed().as_secs_f64();
        spinner.finish_and_clear();
        if store.message_count() != n {
            bail!(
                "simulation lost work: {} of {n} stored",
                store.message_count()
            );
        }
        points.push(json!({"workers": workers, "notifications_per_s": n as f64 / seconds, "seconds": seconds}));
    }
    let rate = |i: usize| points[i]["notifications_per_s"].as_f64().unwrap_or(0.0);
    Ok(json!({
        "label": "SIMULATION: in-memory store and queue with injected latency per call; not AWS, not the emulator",
        "latency_ms_per_call": SIM_LATENCY.as_secs_f64() * 1000.0,
        "notifications": n,
        "points": points,
        "speedup_16_vs_1": rate(SIM_WORKERS.len() - 1) / rate(0),
    }))
}

/// This process's CPU time (user + system), from /proc.
fn cpu_time() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .context("reading /proc/self/stat (Linux only)")?;
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, in clock ticks (100 per second).
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Duration::from_millis(ticks * 10))
}

fn summarize(result: &Value) {
    let e = &result["emulator"];
    let s = &result["simulation"];
    eprintln!(
        "\n== against the emulator ({} notifications, {} users, {} workers)",
        e["notifications"], e["users"], e["workers"]
    );
    eprintln!(
        "  DynamoDB write units / 1,000:       {:.0} (table {:.0} + indexes {:.0})",
        e["dynamodb"]["write_units_per_1000"]
            .as_f64()
            .unwrap_or(0.0),
        e["dynamodb"]["table_write_units_per_1000"]
            .as_f64()
            .unwrap_or(0.0),
        e["dynamodb"]["index_write_units_per_1000"]
            .as_f64()
            .unwrap_or(0.0)
    );
    eprintln!(
        "  TransactWriteItems / 1,000:         {:.0}",
        e["dynamodb"]["transact_write_items_per_1000"]
            .as_f64()
            .unwrap_or(0.0)
    );
    eprintln!(
        "  SQS requests / 1,000:               {:.0}",
        e["sqs"]["requests_per_1000"].as_f64().unwrap_or(0.0)
    );
    eprintln!(
        "  herald CPU ms / 1,000:              {:.0}",
        e["cpu_ms_per_1000"].as_f64().unwrap_or(0.0)
    );
    eprintln!(
        "  ingest->counter latency p50/p99 ms: {:.0} / {:.0} (emulator-bound)",
        e["ingest_to_counter_ms"]["p50"].as_f64().unwrap_or(0.0),
        e["ingest_to_counter_ms"]["p99"].as_f64().unwrap_or(0.0)
    );
    eprintln!("\n== {}", s["label"].as_str().unwrap_or(""));
    for p in s["points"].as_array().into_iter().flatten() {
        eprintln!(
            "  {:>2} workers: {:>7.0} notifications/s",
            p["workers"],
            p["notifications_per_s"].as_f64().unwrap_or(0.0)
        );
    }
}

/// Throughput against workers, with the ideal linear line for comparison.
fn throughput_svg(sim: &Value) -> String {
    let points: Vec<(f64, f64)> = sim["points"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["workers"].as_f64().unwrap_or(0.0),
                p["notifications_per_s"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    let (w, h, pad) = (640.0, 400.0, 60.0);
    let max_x = 16.0;
    let base = points.first().map_or(1.0, |p| p.1);
    let max_y = points.iter().map(|p| p.1).fold(base * max_x, f64::max) * 1.05;
    let x = |v: f64| pad + (v / max_x) * (w - 2.0 * pad);
    let y = |v: f64| h - pad - (v / max_y) * (h - 2.0 * pad);
    let ideal = format!(
        "{:.1},{:.1} {:.1},{:.1}",
        x(1.0),
        y(base),
        x(max_x),
        y(base * max_x)
    );
    let line: Vec<String> = points
        .iter()
        .map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b)))
        .collect();
    let dots: String = points
        .iter()
        .map(|(a, b)| {
            format!(
                "<circle cx='{:.1}' cy='{:.1}' r='4' fill='#1f77b4'/><text x='{:.1}' y='{:.1}' font-size='11'>{:.0}/s</text>",
                x(*a), y(*b), x(*a) + 6.0, y(*b) - 6.0, b
            )
        })
        .collect();
    let ticks: String = [1.0, 2.0, 4.0, 8.0, 16.0]
        .iter()
        .map(|t| {
            format!(
                "<text x='{:.1}' y='{:.1}' font-size='12' text-anchor='middle'>{t}</text>",
                x(*t),
                h - pad + 18.0
            )
        })
        .collect();
    format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif'>\
         <rect width='100%' height='100%' fill='white'/>\
         <text x='{cx}' y='24' font-size='15' text-anchor='middle'>herald inbox-writer: notifications/s vs workers (SIMULATION, {lat} ms/call)</text>\
         <line x1='{pad}' y1='{yb}' x2='{xr}' y2='{yb}' stroke='black'/><line x1='{pad}' y1='{pad}' x2='{pad}' y2='{yb}' stroke='black'/>\
         <polyline points='{ideal}' fill='none' stroke='#999' stroke-dasharray='6,4'/>\
         <polyline points='{line}' fill='none' stroke='#1f77b4' stroke-width='2'/>{dots}{ticks}\
         <text x='{cx}' y='{xl}' font-size='12' text-anchor='middle'>workers</text>\
         <text x='{xr}' y='{yi}' font-size='11' text-anchor='end' fill='#666'>dashed: linear from 1 worker</text></svg>",
        cx = w / 2.0,
        lat = sim["latency_ms_per_call"],
        yb = h - pad,
        xr = w - pad,
        line = line.join(" "),
        xl = h - 12.0,
        yi = pad - 8.0,
    )
}
