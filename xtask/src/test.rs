//! `cargo xtask test`: the whole suite, emulator included. This is what `.ci/run` calls.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use local::emulator::{free_port, Emulator, REGION};

pub fn run() -> Result<()> {
    let root = local::workspace_root();
    let started = Instant::now();
    let venv = local::tools::dev_venv(&root)?;

    step(
        "cargo fmt --check",
        Command::new("cargo").args(["fmt", "--all", "--", "--check"]),
    )?;
    // Every crate links only what it uses (an SDK crate costs binary size and cold starts).
    let machete = local::tools::cargo_tool(&root, local::tools::CARGO_MACHETE)?;
    step(
        "cargo machete (unused dependencies)",
        Command::new(machete).arg("--with-metadata"),
    )?;
    step(
        "cfn-lint template.yaml",
        Command::new(venv.bin("cfn-lint")).arg(root.join("template.yaml")),
    )?;
    // The browser client's unit tests (node's own runner: no npm, no dependencies).
    step(
        "node --test clients/js/test/ (the browser client)",
        Command::new("node").args(["--test", "clients/js/test/"]),
    )?;
    eprintln!("\n==> checkov template.yaml (security scan)");
    crate::scan::run(&root)?;
    eprintln!("<== checkov: every finding fixed or skipped with a reason");

    let port = free_port()?;
    std::fs::create_dir_all(root.join(".herald"))?;
    let calls = root.join(".herald/calls.jsonl");
    let emulator = Emulator::start_with(
        &venv,
        port,
        &root.join(".herald/moto-test.log"),
        Some(&calls),
    )?;
    eprintln!("emulator for tests: {}", emulator.endpoint);
    let mut tests = Command::new("cargo");
    tests
        .args(["test", "--workspace", "--all-targets"])
        .env("AWS_ENDPOINT_URL", &emulator.endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        // Tests that start an emulator of their own log their calls here too.
        .env("HERALD_CALL_LOG", &calls)
        .env_remove("AWS_PROFILE");
    step("cargo test --workspace", &mut tests)?;

    eprintln!("\n==> reconcile every inbox table the tests left");
    let report = tokio::runtime::Runtime::new()?.block_on(
        crate::reconcile::reconcile_every_inbox_table(&emulator.endpoint),
    )?;
    crate::reconcile::print_report("all test tables", &report);
    if report.drift != 0 || report.errors != 0 {
        bail!("counters drifted during the tests: {report:?}");
    }
    drop(emulator);

    // The emulator ignores IAM: hold every call each function made against its role.
    eprintln!("\n==> IAM: every call each function made, against its role in template.yaml");
    let checked = crate::iam::check(&calls)?;
    eprintln!("<== IAM: {checked} calls, each allowed by its function's role");

    // The documentation's runnable blocks, as a reader runs them; then the contract, as a
    // client team tests it, on the same stack.
    eprintln!("\n==> docs: the runnable blocks of README.md and docs/ on a fresh local stack");
    let started_docs = Instant::now();
    let stack = crate::devstack::DevStack::start(&root, "docs-dev.log")?;
    let ran = crate::docs::run(&root, &stack)?;
    eprintln!(
        "<== docs: {ran} block(s) ran as documented in {:.1?}",
        started_docs.elapsed()
    );
    eprintln!(
        "\n==> browser: the live feed's demo page and the console in Chromium, on the same stack"
    );
    let started_browser = Instant::now();
    crate::browser::run_against(&root, &stack, &crate::browser::Args::default())?;
    eprintln!(
        "<== browser: the badge moved without a reload; the console ran, cancelled, redrove and looked up, in {:.1?}",
        started_browser.elapsed()
    );
    eprintln!("\n==> contract: requests generated from openapi.yaml against the local stack");
    let started_contract = Instant::now();
    crate::contract::run_against(&root, &stack.url(), &crate::contract::Args::default())?;
    eprintln!(
        "<== contract: no answer outside openapi.yaml in {:.1?}",
        started_contract.elapsed()
    );
    drop(stack);

    // The SAM check needs a Docker engine; CI (HERALD_REQUIRE_DOCKER=1) never skips it.
    let require_docker = std::env::var("HERALD_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    match crate::sam::docker_unavailable() {
        Some(why) if require_docker => {
            bail!("HERALD_REQUIRE_DOCKER=1 but the SAM check cannot run: {why}")
        }
        Some(why) => eprintln!("\nSKIPPED the SAM check (sam local invoke / start-api): {why}"),
        None => crate::sam::run(&root)?,
    }

    step(
        "cargo clippy",
        Command::new("cargo").args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    eprintln!("\nall checks passed in {:.0?}", started.elapsed());
    Ok(())
}

fn step(name: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("\n==> {name}");
    let started = Instant::now();
    let status = cmd
        .current_dir(local::workspace_root())
        .status()
        .with_context(|| format!("running {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    eprintln!("<== {name}: ok in {:.1?}", started.elapsed());
    Ok(())
}
