//! The labelled simulation: the same handler over the in-memory store with injected
//! per-call latency, over 1-16 workers, to show throughput grows with workers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use herald::domain::counters::commit::Packing;
use herald::fake::{Faults, InMemoryInbox, RecordingQueue};
use indicatif::ProgressBar;
use serde_json::{json, Value};
use testkit::sim::{drain, drain_in_batches, SimQueue};

use super::emulator::burst;
use super::{SIM_LATENCY, SIM_WORKERS};

/// The queue messages of a marketing burst of `n`.
fn bodies(n: usize) -> Result<Vec<String>> {
    let tenant = herald::TenantId::parse("sim", "tenant")?;
    burst(n, 11)
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let n = herald::domain::notification::parse_notification(
                item,
                i,
                &tenant,
                herald::domain::notification::IdSource::Generate,
                "2026-11-23T09:00:00Z".parse()?,
            )?;
            Ok(serde_json::to_string(&n)?)
        })
        .collect()
}

/// A store answering in `latency`, a queue holding `bodies`, and the writer over both.
fn setup(
    bodies: &[String],
    latency: Duration,
    packing: Packing,
) -> (
    Arc<InMemoryInbox>,
    Arc<SimQueue>,
    Arc<inbox_writer::InboxWriter>,
) {
    let store = Arc::new(InMemoryInbox::new(Faults {
        latency,
        ..Faults::default()
    }));
    let queue = Arc::new(SimQueue::new(SIM_LATENCY));
    for b in bodies {
        queue.push(b.clone());
    }
    let writer = Arc::new(inbox_writer::InboxWriter {
        store: store.clone(),
        delivery: Arc::new(RecordingQueue::default()),
        channel_queues: Vec::new(),
        campaigns: None,
        policy: Default::default(),
        packing,
        preferences: None,
        step_schedulers: Vec::new(),
        digests: None,
    });
    (store, queue, writer)
}

pub(super) async fn simulation(n: usize) -> Result<Value> {
    let bodies = bodies(n)?;
    let mut points = Vec::new();
    for workers in SIM_WORKERS {
        let (store, queue, writer) = setup(&bodies, SIM_LATENCY, Packing::default());
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

/// herald's CPU per 1,000 notifications for one worker over the in-memory store (2 ms per
/// call), under tokio's multi-threaded and current-thread runtimes: a Lambda instance handles
/// one event at a time, so the cheaper one is what the functions run.
pub(super) fn runtime_comparison(n: usize) -> Result<Value> {
    let bodies = bodies(n)?;
    let mut out = serde_json::Map::new();
    for flavor in ["multi_thread", "current_thread"] {
        let runtime = match flavor {
            "multi_thread" => tokio::runtime::Builder::new_multi_thread(),
            _ => tokio::runtime::Builder::new_current_thread(),
        }
        .enable_all()
        .build()?;
        let (store, queue, writer) = setup(&bodies, SIM_LATENCY, Packing::default());
        let cpu_before = super::cpu_time()?;
        runtime.block_on(drain(queue, writer, 1));
        let cpu = super::cpu_time()? - cpu_before;
        drop(runtime);
        if store.message_count() != n {
            bail!("runtime comparison lost work");
        }
        out.insert(
            flavor.to_owned(),
            json!({"cpu_ms_per_1000": cpu.as_secs_f64() * 1000.0 * 1000.0 / n as f64}),
        );
    }
    Ok(Value::Object(out))
}

/// Whether committing a batch's packs concurrently pays: one worker, batches of 100 one-message
/// users (about three packs each), the in-memory store answering in 10 ms (a DynamoDB round
/// trip), at 1, 2 and 4 packs in flight. A simulation: it shows the latency hidden, not AWS.
pub(super) async fn concurrency_comparison(n: usize) -> Result<Value> {
    let bodies = bodies(n)?;
    let mut points = Vec::new();
    for concurrency in [1, 2, 4] {
        let (store, queue, writer) = setup(
            &bodies,
            Duration::from_millis(10),
            Packing {
                pack_users: true,
                concurrency,
            },
        );
        let started = Instant::now();
        drain_in_batches(queue, writer, 1, 100).await;
        let seconds = started.elapsed().as_secs_f64();
        if store.message_count() != n {
            bail!("concurrency comparison lost work");
        }
        points.push(json!({"concurrency": concurrency, "notifications_per_s": n as f64 / seconds}));
    }
    Ok(json!({
        "label": "SIMULATION: one worker, batches of 100, 10 ms per store call; not AWS",
        "points": points,
    }))
}
