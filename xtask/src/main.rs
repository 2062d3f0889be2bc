//! `cargo xtask <task>`: every developer task of herald, in Rust. `cargo xtask --help` and
//! `cargo xtask <task> --help` describe each one; unknown options are errors.

mod bench;
mod browser;
mod contract;
mod dev;
mod devstack;
mod docs;
mod iam;
mod import;
mod outbox;
mod reconcile;
mod sam;
mod scan;
mod size;
mod template;
mod test;
mod token;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    about = "herald's developer tasks",
    bin_name = "cargo xtask"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run herald locally: moto on 127.0.0.1, the template's tables/queues/topics, the HTTP
    /// APIs on 127.0.0.1:3000 and the queue consumers as long-polling workers. Ctrl-C stops
    /// everything.
    Dev(dev::Args),
    /// Run every test: formatting, cfn-lint, the template's security scan, unit and
    /// integration tests against an emulator started on a free port, a full reconcile of every
    /// table they left (drift must be 0), the docs' runnable blocks and the contract test on a
    /// fresh local stack, the SAM check when a Docker engine answers
    /// (HERALD_REQUIRE_DOCKER=1: must), clippy.
    Test,
    /// Run the documentation's runnable shell blocks (```sh run in README.md and docs/)
    /// against a fresh local stack, checking their exit codes and `# → ` outputs.
    Docs,
    /// The contract test alone: requests generated from openapi.yaml (schemathesis, valid and
    /// invalid, and sequences through its links) against a fresh local stack or --url.
    Contract(contract::Args),
    /// The browser test alone: Debian's Chromium (installed by apt once) driven by
    /// Playwright through the demo page of a fresh local stack: the badge changes without a
    /// reload when a notification arrives, and agrees with the API after a read in the page.
    Browser(browser::Args),
    /// The template's security scan alone: checkov over template.yaml, offline; a finding
    /// passes only when its resource skips it inline with a reason.
    Scan,
    /// The SAM check alone: sam build, every events/ fixture through sam local invoke and the
    /// API through sam local start-api, offline (stand-in base image, host network).
    Sam,
    /// Print a signed token that `cargo xtask dev` accepts: `--tenant T --user U` for a user's
    /// app, `--tenant T --service` for a backend with every scope.
    Token(token::Args),
    /// Import an Amazon Pinpoint endpoint export (NDJSON, plain or .gz) into contacts through
    /// the running API (`cargo xtask dev`, or --api/--token for a deployed stack).
    ImportPinpoint(import::Args),
    /// What herald sent through the running local stack (email decoded, SMS, push), newest
    /// first, with tenant, user, address and notification id; --user filters, --follow
    /// watches.
    Outbox(outbox::Args),
    /// Recompute TOTAL counters from rooms, repair and report drift.
    Reconcile(reconcile::Args),
    /// Release binary and zip size of each function, built as `sam build` builds them
    /// (cargo-lambda, arm64 unless --x86-64); also written to target/bench/sizes.json.
    Size(size::Args),
    /// Rewrite template.yaml's generated sections (queues, log groups, alarms, the CodeDeploy
    /// role, the dashboard) from xtask/src/template/table.rs and xtask/template/dashboard.json.
    Template,
    /// Benchmarks; results go to target/bench/.
    #[command(subcommand)]
    Bench(bench::Bench),
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Dev(args) => dev::run(&args),
        Task::Test => test::run(),
        Task::Sam => sam::run(&local::workspace_root()),
        Task::Docs => {
            let root = local::workspace_root();
            let stack = devstack::DevStack::start(&root, "docs-dev.log")?;
            let count = docs::run(&root, &stack)?;
            eprintln!("{count} runnable block(s) ran as documented");
            Ok(())
        }
        Task::Contract(args) => contract::run(&args),
        Task::Browser(args) => browser::run(&args),
        Task::Scan => scan::run(&local::workspace_root()),
        Task::Token(args) => token::run(&args),
        Task::Outbox(args) => outbox::run(&args),
        Task::Reconcile(args) => reconcile::run(&args),
        Task::ImportPinpoint(args) => import::run(&args),
        Task::Size(args) => size::run(&args),
        Task::Template => template::run(),
        Task::Bench(bench) => bench::run(&bench),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_cli_is_well_formed_and_refuses_unknown_options() {
        Cli::command().debug_assert();
        assert!(Cli::try_parse_from(["xtask", "dev", "--wrokers", "4"]).is_err());
        let cli = Cli::try_parse_from(["xtask", "dev", "--workers", "4"]).unwrap();
        assert!(matches!(
            cli.task,
            Task::Dev(dev::Args {
                workers: Some(4),
                chaos: None,
                ..
            })
        ));
        assert!(Cli::try_parse_from(["xtask", "dev", "--workers", "0"]).is_err());
        let chaos = Cli::try_parse_from(["xtask", "dev", "--chaos"]).unwrap();
        assert!(matches!(
            chaos.task,
            Task::Dev(dev::Args {
                chaos: Some(_),
                workers: None,
                ..
            })
        ));
        assert!(Cli::try_parse_from(["xtask", "dev", "--chaos", "dynamo=1"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "reconcile", "--changed", "--aws"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "token", "--tenant", "t", "--user", "u"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "token", "--tenant", "t", "--service"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "token", "--tenant", "t"]).is_err());
        assert!(Cli::try_parse_from([
            "xtask",
            "token",
            "--tenant",
            "t",
            "--user",
            "u",
            "--service"
        ])
        .is_err());
        assert!(Cli::try_parse_from([
            "xtask",
            "token",
            "--tenant",
            "t",
            "--service",
            "--scope",
            "herald/all"
        ])
        .is_err());
        assert!(
            Cli::try_parse_from(["xtask", "bench", "counters", "--notifications", "x"]).is_err()
        );
    }
}
