//! The local AWS emulator: moto in server mode on 127.0.0.1.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

/// A running moto server; stopped when dropped.
pub struct Emulator {
    pub endpoint: String,
    child: Child,
}

impl Emulator {
    /// Starts moto's server from the venv on `port` and waits until it answers. It runs
    /// through `local/emulator/moto_server.py`, which gives moto's DynamoDB transactions an
    /// item-level rollback (moto copies whole tables per action, which made bursts crawl).
    pub fn start(venv: &crate::tools::Venv, port: u16, log: &Path) -> Result<Self> {
        Self::start_with(venv, port, log, None)
    }

    /// `start`, appending every request's IAM action and its signer to `calls` (one JSON
    /// line each; see `local/emulator/moto_server.py`) when given.
    pub fn start_with(
        venv: &crate::tools::Venv,
        port: u16,
        log: &Path,
        calls: Option<&Path>,
    ) -> Result<Self> {
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let launcher = crate::workspace_root().join("local/emulator/moto_server.py");
        let mut command = Command::new(venv.bin("python"));
        if let Some(calls) = calls {
            std::fs::write(calls, "").with_context(|| format!("creating {}", calls.display()))?;
            command.env("HERALD_CALL_LOG", calls);
        }
        let child = command
            .arg(&launcher)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .context("starting moto_server")?;
        let emulator = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        };
        emulator.wait_ready(Duration::from_secs(60))?;
        Ok(emulator)
    }

    fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if ureq::get(&format!("{}/moto-api/", self.endpoint))
                .timeout(Duration::from_secs(2))
                .call()
                .is_ok()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "moto did not answer on {} within {timeout:?}",
            self.endpoint
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The endpoint tests use: `AWS_ENDPOINT_URL` if set (as `cargo xtask test` does), else an
/// emulator started once for this test process.
pub fn test_endpoint() -> Result<String> {
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL") {
        return Ok(url);
    }
    static OWN: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    OWN.get_or_init(|| {
        let root = crate::workspace_root();
        let start = || -> Result<String> {
            let venv = crate::tools::dev_venv(&root)?;
            let port = free_port()?;
            let log = std::env::temp_dir().join(format!("herald-moto-{port}.log"));
            let emulator = Emulator::start(&venv, port, &log)?;
            let endpoint = emulator.endpoint.clone();
            // Lives as long as the test process: a watchdog stops it when we exit.
            watchdog(emulator.pid());
            std::mem::forget(emulator);
            Ok(endpoint)
        };
        start().map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// Kills `pid` once this process is gone (the test harness never runs destructors of
/// statics).
fn watchdog(pid: u32) {
    let me = std::process::id();
    let script =
        format!("while kill -0 {me} 2>/dev/null; do sleep 1; done; kill {pid} 2>/dev/null");
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// SDK config for the emulator: fixed region and dummy credentials.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(herald::aws::http_client())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "herald-local",
        ))
        .load()
        .await
}

/// What moto recorded as sent (`GET /moto-api/data.json`). moto answers 500 when it
/// serialises a DynamoDB transaction's rollback snapshot that another test holds at that
/// moment, so a failed read is tried again a few times.
pub fn sent_data(endpoint: &str) -> Result<serde_json::Value> {
    let url = format!("{endpoint}/moto-api/data.json");
    let mut attempt = 0;
    loop {
        match ureq::get(&url).call() {
            Ok(response) => return Ok(response.into_json()?),
            Err(ureq::Error::Status(500, _)) if attempt < 10 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(100 * attempt));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
