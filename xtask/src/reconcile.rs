//! `cargo xtask reconcile`: recompute every TOTAL from its rooms, repair drift, report it.
//! Against the local emulator by default; `--aws` uses the standard AWS configuration.

use anyhow::{bail, Result};
use herald::domain::counters::ReconcileReport;

use crate::flag;

pub fn run(args: &[String]) -> Result<()> {
    let aws = args.iter().any(|a| a == "--aws");
    let endpoint: String =
        flag(args, "--endpoint")?.unwrap_or_else(|| "http://127.0.0.1:4566".into());
    let table: String = flag(args, "--table")?.unwrap_or_else(|| "herald-InboxTable".into());
    tokio::runtime::Runtime::new()?.block_on(async {
        let sdk = if aws {
            herald::aws::sdk_config().await
        } else {
            testkit::emulator::sdk_config(&endpoint).await
        };
        let report = reconcile_table(&sdk, &table).await?;
        print_report(&table, &report);
        Ok(())
    })
}

pub async fn reconcile_table(sdk: &aws_config::SdkConfig, table: &str) -> Result<ReconcileReport> {
    let config = reconcile::Config {
        inbox_table: table.to_owned(),
    };
    let store = reconcile::store_from_aws(&config, sdk);
    Ok(reconcile::reconcile(&store).await?)
}

pub fn print_report(table: &str, r: &ReconcileReport) {
    eprintln!(
        "reconcile {table}: {} users, {} drifted, drift {} (repaired {}), {} errors",
        r.users, r.drifted_users, r.drift, r.repaired, r.errors
    );
}

/// Every inbox table in the emulator: the test suite leaves one per test.
pub async fn reconcile_every_inbox_table(endpoint: &str) -> Result<ReconcileReport> {
    let sdk = testkit::emulator::sdk_config(endpoint).await;
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
            let r = reconcile_table(&sdk, table).await?;
            total.users += r.users;
            total.drifted_users += r.drifted_users;
            total.drift += r.drift;
            total.repaired += r.repaired;
            total.errors += r.errors;
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
