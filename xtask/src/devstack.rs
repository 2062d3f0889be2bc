//! A fresh `cargo xtask dev` on free ports, for the steps of `cargo xtask test` that use the
//! local stack as a reader or a client would (the docs' blocks, the contract test).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// `cargo xtask dev` on free ports, stopped when dropped.
pub struct DevStack {
    child: Child,
    pub http_port: u16,
    pub emulator_port: u16,
}

impl DevStack {
    /// Starts it, its output in `.herald/<log>`; answers once its HTTP APIs do.
    pub fn start(root: &Path, log: &str) -> Result<Self> {
        let (http_port, emulator_port) =
            (local::emulator::free_port()?, local::emulator::free_port()?);
        std::fs::create_dir_all(root.join(".herald"))?;
        let log = root.join(".herald").join(log);
        let child = Command::new(std::env::current_exe()?)
            .args([
                "dev",
                "--port",
                &emulator_port.to_string(),
                "--http-port",
                &http_port.to_string(),
            ])
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(&log)?.try_clone()?)
            .spawn()
            .context("starting cargo xtask dev")?;
        let mut stack = Self {
            child,
            http_port,
            emulator_port,
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        let url = format!("http://127.0.0.1:{http_port}/.well-known/jwks.json");
        while ureq::get(&url).call().is_err() {
            if let Some(status) = stack.child.try_wait()? {
                bail!(
                    "cargo xtask dev stopped ({status}); its log: {}",
                    log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "cargo xtask dev did not answer in 180 s; its log: {}",
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok(stack)
    }
}

impl Drop for DevStack {
    fn drop(&mut self) {
        // SIGTERM: dev stops its workers and the emulator (a kill would orphan moto).
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl DevStack {
    /// The base URL of its HTTP APIs.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }
}
