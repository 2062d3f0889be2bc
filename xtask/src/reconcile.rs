//! `cargo xtask reconcile`: recompute TOTAL counters from rooms, repair drift, report it.
//! Against the local emulator by default; `--aws` uses the standard AWS configuration.
//! Every user by default (as it always did); `--changed` runs the hourly function's mode.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use herald::domain::reconcile::{Mode, ReconcileReport};

/// Options of `cargo xtask reconcile`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The emulator's endpoint (the one `cargo xtask dev` runs by default).
    #[arg(long, default_value = "http://127.0.0.1:4566")]
    endpoint: String,
    /// The inbox table.
    #[arg(long, default_value = "herald-InboxTable")]
    table: String,
    /// Use your AWS configuration (a deployed stack) instead of the emulator.
    #[arg(long)]
    aws: bool,
    /// Only the users whose counters changed in the completed hours since the last such run
    /// (what the hourly function does); by default every user (a parallel Scan).
    #[arg(long)]
    changed: bool,
}

pub fn run(args: &Args) -> Result<()> {
    let (aws, endpoint, table) = (args.aws, &args.endpoint, &args.table);
    let mode = if args.changed {
        Mode::Changed
    } else {
        Mode::Full
    };
    tokio::runtime::Runtime::new()?.block_on(async {
        let sdk = if aws {
            herald::aws::sdk_config().await
        } else {
            local::emulator::sdk_config(endpoint).await
        };
        let report = reconcile_table(&sdk, table, mode).await?;
        print_report(table, &report);
        Ok(())
    })
}

pub async fn reconcile_table(
    sdk: &aws_config::SdkConfig,
    table: &str,
    mode: Mode,
) -> Result<ReconcileReport> {
    let config = reconcile::Config {
        inbox_table: table.to_owned(),
    };
    let store = reconcile::store_from_aws(&config, sdk);
    let request = reconcile::Request { mode: Some(mode) };
    // By hand there is no Lambda timeout: one run goes to the end of its pass.
    let deadline = Instant::now() + Duration::from_secs(24 * 3600);
    Ok(reconcile::reconcile(&store, &request, deadline).await?)
}

pub fn print_report(table: &str, r: &ReconcileReport) {
    eprintln!(
        "reconcile {table}: {} users, {} drifted, drift {} (repaired {}), {} errors, {} pages{}{}",
        r.users,
        r.drifted_users,
        r.drift,
        r.repaired,
        r.errors,
        r.pages,
        if r.hours.is_empty() {
            String::new()
        } else {
            format!(", hours {}", r.hours.join(" "))
        },
        if r.open_hours.is_empty() {
            String::new()
        } else {
            format!(", open hours {}", r.open_hours.join(" "))
        }
    );
}

/// Every inbox table in the emulator: the test suite leaves one per test.
pub async fn reconcile_every_inbox_table(endpoint: &str) -> Result<ReconcileReport> {
    let sdk = local::emulator::sdk_config(endpoint).await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let mut total = ReconcileReport::default();
    let mut start: Option<String> = None;
    loop {
        let page = ddb
            .list_tables()
            .set_exclusive_start_table_name(start)
            .send()
            .await?;
        for table in page
            .table_names()
            .iter()
            .filter(|t| t.ends_with("-InboxTable"))
        {
            // Every user, not only the changed ones: the suite's final word on drift.
            let r = reconcile_table(&sdk, table, Mode::Full).await?;
            total.add(&r);
        }
        start = page.last_evaluated_table_name().map(String::from);
        if start.is_none() {
            break;
        }
    }
    if total.users == 0 {
        bail!("no counters found to reconcile: did the integration tests run against {endpoint}?");
    }
    Ok(total)
}
