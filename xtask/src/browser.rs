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
    bounce_an_address(stack, CONSOLE_TENANT, SUPPRESSED_ADDRESS)?;
    let mut cmd = Command::new(venv.bin("python"));
    cmd.arg(root.join("tests/browser/console.py"))
        .env("HERALD_URL", stack.url())
        .env(
            "HERALD_SERVICE_TOKEN",
            issuer.sign(&issuer.service(CONSOLE_TENANT)),
        )
        .env("HERALD_POISON", poison)
        .env("HERALD_SUPPRESSED", SUPPRESSED_ADDRESS)
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

/// The console test's tenant, and the address SES "bounced" for it.
const CONSOLE_TENANT: &str = "console";
const SUPPRESSED_ADDRESS: &str = "cy@example.com";

/// Puts a message no consumer can take on the stack's notifications queue, as a bug in a
/// sender would, for the console to find in the DLQ; returns its body.
fn poison_a_notification(stack: &DevStack) -> Result<String> {
    let body = format!(
        "{{\"poisoned\": \"by the browser test at {}\"}}",
        jiff::Timestamp::now()
    );
    send_to(stack, "NotificationsQueue", &body)?;
    Ok(body)
}

/// A hard bounce of `address` for `tenant`, as SES reports it through the feedback topic,
/// for the console to find as a suppression and remove.
fn bounce_an_address(stack: &DevStack, tenant: &str, address: &str) -> Result<()> {
    let tag: String = tenant.bytes().map(|b| format!("{b:02x}")).collect();
    let event = serde_json::json!({
        "eventType": "Bounce",
        "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                   "bouncedRecipients": [{"emailAddress": address, "action": "failed",
                                          "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
                   "timestamp": jiff::Timestamp::now().to_string(), "feedbackId": "browser-test"},
        "mail": {"timestamp": jiff::Timestamp::now().to_string(), "source": "notifications@example.com",
                 "messageId": "browser-test", "destination": [address],
                 "tags": {herald::domain::feedback::TENANT_TAG: [tag]}},
    });
    send_to(stack, "FeedbackQueue", &event.to_string())
}

/// One message on a queue of the dev stack, as its producer would send it.
fn send_to(stack: &DevStack, queue: &str, body: &str) -> Result<()> {
    let endpoint = format!("http://127.0.0.1:{}", stack.emulator_port);
    tokio::runtime::Runtime::new()?.block_on(async {
        let sqs = aws_sdk_sqs::Client::new(&local::emulator::sdk_config(&endpoint).await);
        let url = sqs
            .get_queue_url()
            .queue_name(format!("{}-{queue}", local::stack::DEV_PREFIX))
            .send()
            .await
            .with_context(|| format!("the dev stack's {queue}"))?
            .queue_url
            .context("no queue url")?;
        sqs.send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .with_context(|| format!("sending to {queue}"))?;
        anyhow::Ok(())
    })
}
