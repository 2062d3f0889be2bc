//! `cargo xtask contract` (also a step of `cargo xtask test`): openapi.yaml tested as a
//! client team tests against it. schemathesis (pinned, in `.venv-contract/`) generates
//! requests from the spec, valid and invalid, then sequences through its links, against a
//! fresh `cargo xtask dev` (or `--url`), and fails on any 5xx, any status, header or body the
//! spec does not describe, any valid request refused or invalid one accepted.
//! `tests/contract/schemathesis.toml` and `tests/contract/hooks.py` hold its settings and the
//! checks for what no schema can state (values only herald mints, times relative to now).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use local::auth::LocalIssuer;

use crate::devstack::DevStack;

/// Options of `cargo xtask contract`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Cases per operation in each phase: more finds more, and takes longer.
    #[arg(long, default_value_t = 40)]
    pub max_examples: u32,
    /// The same seed generates the same requests.
    #[arg(long, default_value_t = 20261206)]
    pub seed: u64,
    /// Test an API that is already running (e.g. `cargo xtask dev` on :3000) instead of a
    /// fresh local stack; its tokens must come from this checkout's local issuer.
    #[arg(long)]
    pub url: Option<String>,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            max_examples: 40,
            seed: 20261206,
            url: None,
        }
    }
}

pub fn run(args: &Args) -> Result<()> {
    let root = local::workspace_root();
    match &args.url {
        Some(url) => run_against(&root, url, args),
        None => {
            let stack = DevStack::start(&root, "contract-dev.log")?;
            run_against(&root, &stack.url(), args)
        }
    }
}

/// Runs schemathesis against `url`; its JUnit report goes to `.herald/contract/`.
pub fn run_against(root: &Path, url: &str, args: &Args) -> Result<()> {
    let venv = local::tools::contract_venv(root)?;
    let issuer = LocalIssuer::load_or_create(&root.join(".herald/jwt"))?;
    // A service token with every scope, of a tenant of its own.
    let token = issuer.sign(&issuer.service("contract"));
    let report = root.join(".herald/contract");
    let status = Command::new("timeout")
        .arg("1200")
        .arg(venv.bin("schemathesis"))
        .current_dir(root)
        .env("PYTHONPATH", root.join("tests/contract"))
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .args([
            "--config-file",
            "tests/contract/schemathesis.toml",
            "run",
            "openapi.yaml",
        ])
        .args(["--url", url])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        // Which checks run is tests/contract/schemathesis.toml's to say: every one but the
        // three it turns off with their reasons, and one per operation.
        .args(["--max-examples", &args.max_examples.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .args(["--workers", "2", "--generation-database", "none"])
        .args(["--continue-on-failure", "--no-color", "--report", "junit"])
        .arg("--report-dir")
        .arg(&report)
        .status()
        .context("running schemathesis")?;
    if !status.success() {
        bail!(
            "the contract test failed ({status}): the failures and their curl lines are above; \
             JUnit report in {}",
            report.display()
        );
    }
    Ok(())
}
