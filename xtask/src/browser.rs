//! The browser test (a step of `cargo xtask test`, and `cargo xtask browser`): Debian's
//! Chromium, driven by Playwright, opens the demo page of a running local stack, signs in
//! with a local user token and watches the badge change when a service posts a notification,
//! then marks it read in the page (`tests/browser/live_feed.py`); then the operator console
//! (`tests/browser/console.py`): a campaign created and watched to done, another cancelled, a
//! message the xtask poisoned redriven, a delivery looked up. `--screenshot PATH` keeps a
//! picture of the demo page (docs/images/live-feed.png is one), `--console-screenshots DIR`
//! the console's (docs/images/console-*.png).

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
    /// Keep screenshots of the console's pages in this folder (PNG).
    #[arg(long)]
    pub console_screenshots: Option<PathBuf>,
}

/// Starts a fresh local stack and runs the browser test on it.
pub fn run(args: &Args) -> Result<()> {
    let root = local::workspace_root();
    let stack = DevStack::start(&root, "browser-dev.log")?;
    run_against(&root, &stack, args)
}

/// The browser test against `stack`.
pub fn run_against(root: &Path, stack: &DevStack, args: &Args) -> Result<()> {
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
    if let Some(path) = &args.screenshot {
        let path = std::path::absolute(path)?;
        cmd.env("HERALD_SCREENSHOT", path);
    }
    let status = cmd.status().context("running tests/browser/live_feed.py")?;
    if !status.success() {
        bail!("the browser test failed ({status}); the stack's log: .herald/browser-dev.log");
    }

    let poison = poison_a_notification(stack)?;
    let mut cmd = Command::new(venv.bin("python"));
    cmd.arg(root.join("tests/browser/console.py"))
        .env("HERALD_URL", stack.url())
        .env(
            "HERALD_SERVICE_TOKEN",
            issuer.sign(&issuer.service("console")),
        )
        .env("HERALD_POISON", poison)
        .env("CHROMIUM", &chromium);
    if let Some(dir) = &args.console_screenshots {
        std::fs::create_dir_all(dir)?;
        cmd.env("HERALD_CONSOLE_SCREENSHOTS", std::path::absolute(dir)?);
    }
    let status = cmd.status().context("running tests/browser/console.py")?;
    if !status.success() {
        bail!("the console's browser test failed ({status}); the stack's log: .herald/browser-dev.log");
    }
    Ok(())
}

/// Puts a message no consumer can take on the stack's notifications queue, as a bug in a
/// sender would, for the console to find in the DLQ; returns its body.
fn poison_a_notification(stack: &DevStack) -> Result<String> {
    let body = format!(
        "{{\"poisoned\": \"by the browser test at {}\"}}",
        jiff::Timestamp::now()
    );
    let endpoint = format!("http://127.0.0.1:{}", stack.emulator_port);
    tokio::runtime::Runtime::new()?.block_on(async {
        let sqs = aws_sdk_sqs::Client::new(&local::emulator::sdk_config(&endpoint).await);
        let url = sqs
            .get_queue_url()
            .queue_name(format!("{}-NotificationsQueue", local::stack::DEV_PREFIX))
            .send()
            .await
            .context("the dev stack's notifications queue")?
            .queue_url
            .context("no queue url")?;
        sqs.send_message()
            .queue_url(url)
            .message_body(&body)
            .send()
            .await
            .context("poisoning the notifications queue")?;
        anyhow::Ok(())
    })?;
    Ok(body)
}
