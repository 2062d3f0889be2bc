//! `cargo xtask <task>`: every developer task of herald, in Rust.
//!
//! - `dev`  — emulator + template's resources + HTTP APIs on :3000 + queue workers
//! - `test` — the whole suite (lint, unit, integration against its own emulator, template checks)
//! - `sam` — every fixture through `sam local invoke`, the API through `sam local start-api`
//! - `reconcile` — recompute TOTAL counters from rooms and report drift
//! - `bench counters` — cost and scaling of the counter pipeline

mod bench;
mod dev;
mod reconcile;
mod sam;
mod test;

use anyhow::{bail, Result};

const USAGE: &str = "usage: cargo xtask <dev|test|sam|reconcile|bench> [options]

  dev   [--port N] [--http-port N] [--workers N (default 1)]
        run herald locally: moto on 127.0.0.1:N (default 4566, or HERALD_EMULATOR_PORT),
        the template's tables/queues/topics, the HTTP APIs on 127.0.0.1:3000 and the
        queue consumers as long-polling workers. Ctrl-C stops everything.
  test  run every test: formatting, clippy, cfn-lint, unit and integration tests against an
        emulator started on a free port; then reconciles every counter (drift must be 0),
        and runs the SAM check when a Docker engine answers (HERALD_REQUIRE_DOCKER=1: must).
  sam   the SAM check alone: sam build, every events/ fixture through sam local invoke and
        the API through sam local start-api, offline (stand-in base image, host network).
  reconcile [--endpoint URL] [--table NAME] [--aws] [--full]
        recompute TOTAL from rooms, repair and report drift (default: the `dev` emulator's
        herald-InboxTable; --aws uses your AWS configuration). By default the users whose
        counters changed in the hours since the last run; --full every user.
  bench counters [--emulator-notifications N] [--notifications N]
        cost per 1,000 notifications against the emulator and throughput over 1-16 workers
        in a simulation; writes target/bench/counters.json and counters-throughput.svg.";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        bail!("no task given");
    };
    match task.as_str() {
        "dev" => dev::run(rest),
        "test" => test::run(rest),
        "reconcile" => reconcile::run(rest),
        "bench" => bench::run(rest),
        "sam" => sam::run(&testkit::workspace_root()),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => {
            eprintln!("{USAGE}");
            bail!("unknown task {other:?}")
        }
    }
}

/// `--name value` from the arguments, parsed.
pub fn flag<T: std::str::FromStr>(args: &[String], name: &str) -> Result<Option<T>> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => match args.get(i + 1).map(|v| v.parse::<T>()) {
            Some(Ok(v)) => Ok(Some(v)),
            _ => bail!("{name} needs a valid value"),
        },
    }
}
