//! `cargo xtask <task>`: every developer task of herald, in Rust.
//!
//! - `dev`  — emulator + template's resources + HTTP APIs on :3000 + queue workers
//! - `test` — the whole suite (lint, unit, integration against its own emulator, template checks)

mod dev;
mod test;

use anyhow::{bail, Result};

const USAGE: &str = "usage: cargo xtask <dev|test> [options]

  dev   [--port N] [--http-port N] [--workers N (default 1)]
        run herald locally: moto on 127.0.0.1:N (default 4566, or HERALD_EMULATOR_PORT),
        the template's tables/queues/topics, the HTTP APIs on 127.0.0.1:3000 and the
        queue consumers as long-polling workers. Ctrl-C stops everything.
  test  run every test: formatting, clippy, cfn-lint, unit and integration tests against an
        emulator started on a free port.";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        bail!("no task given");
    };
    match task.as_str() {
        "dev" => dev::run(rest),
        "test" => test::run(rest),
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
