//! `cargo xtask bench counters`: what a marketing-shaped burst costs and how the consumer
//! scales. Two parts, reported separately:
//! - against the emulator: SDK calls and DynamoDB write units per 1,000 notifications
//!   (counted by an interceptor on the real clients), herald's CPU time per 1,000, and
//!   ingest-to-counter latency. The emulator is one Python process, so its speed says
//!   nothing about AWS; the ratios do.
//! - a simulation: the same handler over the in-memory store with injected per-call
//!   latency, over 1–16 workers, to show throughput grows linearly with workers.

mod campaign;
mod emulator;
mod live;
use emulator::{EmulatorRun, Shape};
mod report;
mod simulation;
mod workflows;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;
use testkit::emulator::{free_port, Emulator};

/// One consumer against the emulator: it runs transactions one at a time (its item lock), and
/// per-1,000 costs do not depend on the worker count; the simulation shows scaling.
pub(super) const EMULATOR_WORKERS: usize = 1;
pub(super) const SIM_WORKERS: [usize; 5] = [1, 2, 4, 8, 16];
pub(super) const SIM_LATENCY: Duration = Duration::from_millis(2);

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum Bench {
    /// Cost per 1,000 notifications against the emulator (calls, write units, CPU) and
    /// throughput over 1-16 workers in a labelled simulation; writes
    /// target/bench/counters.json and counters-throughput.svg.
    Counters(CountersArgs),
    /// Campaigns: one of --recipients (default 1,000,000) under injected faults in simulated
    /// time (every promise checked, the most one invocation did, the items a progress read
    /// touches, a modelled fan-out time); three tenants' campaigns starting at once, a
    /// labelled simulation of --users (default 100,000) with injected latency, and
    /// --emulator-users on the emulator end to end; an S3 campaign of --cancel-users on the
    /// emulator cancelled half-way. Writes target/bench/campaign.json and
    /// campaign-progress.svg.
    Campaign(campaign::CampaignArgs),
    /// Workflows' DynamoDB cost on the emulator: per escalated notification (writer, and per
    /// step in deliver) against plain channels, per digested event and per digest window.
    /// Writes target/bench/workflows.json.
    Workflows(workflows::WorkflowsArgs),
    /// The live feed's cost on the emulator: per notification, the stream records, the
    /// pusher's batches and DynamoDB reads, with --online of --users users connected.
    /// Writes target/bench/live.json.
    Live(live::LiveArgs),
}

/// Options of `cargo xtask bench counters`.
#[derive(Debug, clap::Args)]
pub struct CountersArgs {
    /// Notifications sent through the emulator per configuration, each on fresh tables (its
    /// transactions slow down as a table grows, and the per-1,000 ratios do not need more).
    #[arg(long, default_value_t = 500)]
    emulator_notifications: usize,
    /// Notifications in the throughput simulation.
    #[arg(long, default_value_t = 10_000)]
    notifications: usize,
    /// Only the simulations (no emulator runs); writes counters-simulation.json.
    #[arg(long)]
    simulation_only: bool,
    /// Only these emulator configurations, by label (e.g. `--only marketing-10`), for
    /// profiling one of them; results then go to counters-partial.json.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

pub fn run(bench: &Bench) -> Result<()> {
    // Requests and write units only: the same in any build.
    match bench {
        Bench::Workflows(args) => return workflows::run(args),
        Bench::Live(args) => return live::run(args),
        _ => {}
    }
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
    match bench {
        Bench::Counters(args) => counters(args),
        Bench::Campaign(args) => campaign::run(args),
        Bench::Workflows(args) => workflows::run(args),
        Bench::Live(args) => live::run(args),
    }
}

/// Runs `measure` against a fresh emulator (its log `.herald/moto-bench-<name>.log`) and
/// writes what it returns to target/bench/<name>.json (and stdout).
pub(super) fn measure_on_emulator<F, Fut>(name: &str, measure: F) -> Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<serde_json::Value>>,
{
    herald::telemetry::init_tracing();
    let root = testkit::workspace_root();
    let venv = testkit::tools::dev_venv(&root)?;
    std::fs::create_dir_all(root.join(".herald"))?;
    let emulator = Emulator::start(
        &venv,
        free_port()?,
        &root.join(format!(".herald/moto-bench-{name}.log")),
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(measure(emulator.endpoint.clone()))?;
    let out = out_dir().join(format!("{name}.json"));
    std::fs::create_dir_all(out_dir())?;
    std::fs::write(&out, serde_json::to_string_pretty(&result)?)?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    println!("written to {}", out.display());
    Ok(())
}

/// Where results go: target/bench (under `$CARGO_TARGET_DIR` when that is set).
pub(super) fn out_dir() -> std::path::PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| testkit::workspace_root().join("target"))
        .join("bench")
}

fn counters(args: &CountersArgs) -> Result<()> {
    herald::telemetry::init_tracing();
    let (emulator_n, sim_n) = (args.emulator_notifications, args.notifications);
    let root = testkit::workspace_root();
    let venv = testkit::tools::dev_venv(&root)?;
    std::fs::create_dir_all(root.join(".herald"))?;
    let emulator = Emulator::start(&venv, free_port()?, &root.join(".herald/moto-bench.log"))?;
    // One thread, as a Lambda instance handles one event at a time: the handler's CPU is then
    // this thread's (see `HandlerCpu`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut configurations = serde_json::Map::new();
    let runs = if args.simulation_only {
        Vec::new()
    } else {
        vec![
            (Shape::Marketing, 10, false),
            (Shape::Marketing, 10, true),
            (Shape::Marketing, 100, true),
            (Shape::Chat, 10, true),
            (Shape::Chat, 100, true),
        ]
    };
    let runs: Vec<(String, Shape, usize, bool)> = runs
        .into_iter()
        .map(|(shape, batch_size, pack_users)| {
            let label = format!(
                "{}-{batch_size}{}",
                format!("{shape:?}").to_lowercase(),
                if pack_users { "" } else { "-unpacked" }
            );
            (label, shape, batch_size, pack_users)
        })
        .collect();
    if let Some(unknown) = args.only.iter().find(|l| !runs.iter().any(|r| &r.0 == *l)) {
        let labels: Vec<&str> = runs.iter().map(|r| r.0.as_str()).collect();
        bail!(
            "--only {unknown}: no such configuration; they are {}",
            labels.join(", ")
        );
    }
    for (label, shape, batch_size, pack_users) in runs {
        if !args.only.is_empty() && !args.only.contains(&label) {
            continue;
        }
        eprintln!("== emulator: {label}");
        let run = EmulatorRun {
            label: label.clone(),
            shape,
            notifications: emulator_n,
            batch_size,
            pack_users,
        };
        let figures = runtime.block_on(emulator::against_emulator(&emulator.endpoint, &run))?;
        configurations.insert(label, figures);
    }
    drop(emulator);
    if !args.only.is_empty() {
        return write_partial(&configurations);
    }
    let emulated = configurations
        .get("marketing-10")
        .cloned()
        .unwrap_or_default();
    drop(runtime);
    // The simulations run many workers at once: a multi-threaded runtime.
    let runtime = tokio::runtime::Runtime::new()?;
    let simulated = runtime.block_on(simulation::simulation(sim_n))?;
    let concurrency = runtime.block_on(simulation::concurrency_comparison(sim_n.min(5_000)))?;
    drop(runtime);
    let runtimes = simulation::runtime_comparison(sim_n.min(5_000))?;

    let out_dir = out_dir();
    std::fs::create_dir_all(&out_dir)?;
    let result = json!({
        "emulator": emulated,
        "configurations": configurations,
        "simulation": simulated,
        "runtimes": runtimes,
        "commit_concurrency": concurrency,
    });
    // A simulation-only run leaves the full results alone.
    let results = if args.simulation_only {
        "counters-simulation.json"
    } else {
        "counters.json"
    };
    std::fs::write(
        out_dir.join(results),
        serde_json::to_string_pretty(&result)?,
    )?;
    std::fs::write(
        out_dir.join("counters-throughput.svg"),
        report::throughput_svg(&simulated),
    )?;
    report::summarize(&result);
    eprintln!(
        "\nwrote {} and counters-throughput.svg",
        out_dir.join(results).display()
    );
    Ok(())
}

/// The configurations `--only` picked, without the simulations.
fn write_partial(configurations: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
    let out_dir = out_dir();
    std::fs::create_dir_all(&out_dir)?;
    let path = out_dir.join("counters-partial.json");
    std::fs::write(&path, serde_json::to_string_pretty(configurations)?)?;
    report::configurations_table(&json!(configurations));
    eprintln!("\nwrote {}", path.display());
    Ok(())
}

/// This process's CPU time (user + system), from /proc.
pub(super) fn cpu_time() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .context("reading /proc/self/stat (Linux only)")?;
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, in clock ticks (100 per second).
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Duration::from_millis(ticks * 10))
}
