//! The browser test (a step of `cargo xtask test`, and `cargo xtask browser`): Debian's
//! Chromium, driven by Playwright, opens the demo page of a running local stack, signs in
//! with a local user token and watches the badge change when a service posts a notification,
//! then marks it read in the page (`tests/browser/live_feed.py`). `--screenshot PATH` keeps
//! a picture of the page (docs/images/live-feed.png is one).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use local::auth::LocalIssuer;

use crate::devstack::DevStack;

/// Options of `cargo xtask browser`.
#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// Keep a screenshot of the demo page here (PNG).
    #[arg(long)]
    pub screenshot: Option<PathBuf>,
}

/// Starts a fresh local stack and runs the browser test on it.
pub fn run(args: &Args) -> Result<()> {
    let root = local::workspace_root();
    let stack = DevStack::start(&root, "browser-dev.log")?;
    run_against(&root, &stack, args.screenshot.as_deref())
}

/// The browser test against `stack`.
pub fn run_against(root: &Path, stack: &DevStack, screenshot: Option<&Path>) -> Result<()> {
    let chromium = local::tools::chromium()?;
    let venv = local::tools::browser_venv(root)?;
    // The stack trusts the key in .herald/jwt/, as `cargo xtask token` signs with it.
    let issuer = LocalIssuer::load_or_create(&root.join(".herald/jwt"))?;
    let (tenant, user) = ("browser", "reader");
    let mut cmd = Command::new(venv.bin("python"));
    cmd.arg(root.join("tests/browser/live_feed.py"))
        .env("HERALD_URL", stack.url())
        .env("HERALD_USER", user)
        .env("HERALD_USER_TOKEN", issuer.sign(&issuer.user(tenant, user)))
        .env("HERALD_SERVICE_TOKEN", issuer.sign(&issuer.service(tenant)))
        .env("CHROMIUM", &chromium);
    if let Some(path) = screenshot {
        let path = std::path::absolute(path)?;
        cmd.env("HERALD_SCREENSHOT", path);
    }
    let status = cmd.status().context("running tests/browser/live_feed.py")?;
    if !status.success() {
        bail!("the browser test failed ({status}); the stack's log: .herald/browser-dev.log");
    }
    Ok(())
}
