//! The SAM check: every fixture through `sam build` + `sam local invoke`, and the HTTP API
//! through `sam local start-api`, against the emulator, offline.
//!
//! The project's machines reach no container registry, so the Lambda base image is a
//! stand-in built from local packages (xtask/sam/build-stand-in-image.sh). SAM 1.170 ignores
//! `--docker-network host` (aws-sam-cli#4236), so SAM runs through xtask/sam/sam-hostnet.py,
//! which puts its Lambda containers on the host network: they reach the emulator on
//! 127.0.0.1 and nothing else.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use local::emulator::{free_port, Emulator};
use local::stack::Stack;
use local::template::Template;
use local::tools::Venv;
use serde_json::{json, Value};
use testkit::fixtures::{Answer, Progress, ORDER};

pub const STAND_IN_IMAGE: &str = "herald/lambda-provided-al2023:local";

/// Why the check cannot run here, or None when a Docker engine answers.
pub fn docker_unavailable() -> Option<String> {
    match Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
    {
        Err(e) => Some(format!("no docker command ({e})")),
        Ok(out) if !out.status.success() => Some(format!(
            "`docker info` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// The architecture the functions are built and invoked for: the host's.
fn host_architecture() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    }
}

pub fn run(root: &Path) -> Result<()> {
    let started = Instant::now();
    let dev = local::tools::dev_venv(root)?;
    let sam = local::tools::sam_venv(root)?;
    // SAM's own reading of the template (transform, then cfn-lint on the result).
    run_step(
        "sam validate --lint",
        sam_command(root, &sam, &dev).args(["validate", "--lint", "-t", "template.yaml"]),
    )?;
    ensure_stand_in_image(root)?;
    let arch = host_architecture();

    let build_started = Instant::now();
    let mut build = sam_command(root, &sam, &dev);
    build
        .args([
            "build",
            "-t",
            "template.yaml",
            "--parameter-overrides",
            &format!("Architecture={arch}"),
        ])
        .env("SAM_BUILD_MODE", "debug");
    run_step("sam build (cargo-lambda, debug)", &mut build)?;
    let build_time = build_started.elapsed();

    let emulator = Emulator::start(&dev, free_port()?, &root.join(".herald/moto-sam.log"))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let invoke_started = Instant::now();
    let results = runtime.block_on(invoke_everything(
        root,
        &sam,
        &dev,
        &emulator.endpoint,
        arch,
    ))?;
    eprintln!("\nSAM check results:");
    for line in &results {
        eprintln!("  {line}");
    }
    eprintln!(
        "SAM check passed in {:.0?} (sam build {:.0?}, invokes + start-api {:.0?})",
        started.elapsed(),
        build_time,
        invoke_started.elapsed()
    );
    Ok(())
}

/// Builds the stand-in image when it is missing or was built by another version of the
/// script (the image carries the script's hash as a label).
fn ensure_stand_in_image(root: &Path) -> Result<()> {
    let script = root.join("xtask/sam/build-stand-in-image.sh");
    let version = format!("{:016x}", fnv1a(&std::fs::read(&script)?));
    let label = "{{index .Config.Labels \"herald.stand-in\"}}";
    let current = Command::new("docker")
        .args(["image", "inspect", "-f", label, STAND_IN_IMAGE])
        .output()?;
    if current.status.success() && String::from_utf8_lossy(&current.stdout).trim() == version {
        return Ok(());
    }
    run_step(
        "build the stand-in Lambda base image",
        Command::new("sh")
            .arg(script)
            .arg(STAND_IN_IMAGE)
            .arg(root.join(".herald/stand-in-image"))
            .arg(&version)
            .current_dir(root),
    )
}

/// A stable content hash (FNV-1a), enough to notice that the script changed.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SAM with the environment that keeps it offline: no telemetry, no version check, no
/// STS call (no credentials in its environment), cargo-lambda and zig on PATH.
fn sam_command(root: &Path, sam: &Venv, dev: &Venv) -> Command {
    let app_dir = root.join(".herald/sam-app-dir");
    let _ = std::fs::create_dir_all(&app_dir);
    let metadata = app_dir.join("metadata.json");
    if !metadata.exists() {
        let _ = std::fs::write(
            &metadata,
            r#"{"telemetryEnabled": false, "lastVersionCheck": 4102444800.0}"#,
        );
    }
    let path = format!(
        "{}:{}",
        dev.dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(sam.bin("python"));
    cmd.arg(root.join("xtask/sam/sam-hostnet.py"))
        .current_dir(root)
        .stdin(Stdio::null())
        .env("PATH", path)
        .env("SAM_CLI_TELEMETRY", "0")
        .env("__SAM_CLI_APP_DIR", &app_dir)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", local::emulator::REGION)
        .env("AWS_DEFAULT_REGION", local::emulator::REGION)
        .env("NO_PROXY", "localhost,127.0.0.1")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    cmd
}

/// The flags every local run shares.
fn local_flags(env_file: &Path, endpoint: &str, arch: &str) -> Vec<String> {
    [
        "-t",
        ".aws-sam/build/template.yaml",
        "--env-vars",
        &env_file.display().to_string(),
        "--docker-network",
        "host",
        "--invoke-image",
        STAND_IN_IMAGE,
        "--skip-pull-image",
        "--parameter-overrides",
        &format!("Architecture={arch} EndpointUrl={endpoint}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn invoke_everything(
    root: &Path,
    sam: &Venv,
    dev: &Venv,
    endpoint: &str,
    arch: &str,
) -> Result<Vec<String>> {
    let stack = Stack::provision(
        endpoint,
        "sam",
        Template::project()?,
        &[("Architecture", arch)],
    )
    .await?;
    let env_file = root.join(".herald/sam-env.json");
    std::fs::write(
        &env_file,
        serde_json::to_string_pretty(&stack.sam_env_json()?)?,
    )?;
    let flags = local_flags(&env_file, endpoint, arch);

    let mut results = Vec::new();
    let mut progress = Progress::default();
    for (name, function) in ORDER {
        let runs = if function == "InboxWriterFunction" {
            2
        } else {
            1
        };
        for run in 1..=runs {
            progress.before(&stack, name)?;
            let started = Instant::now();
            let mut cmd = sam_command(root, sam, dev);
            cmd.args(["local", "invoke", function, "-e"])
                .arg(root.join("events").join(name))
                .args(&flags);
            let output = cmd
                .output()
                .with_context(|| format!("sam local invoke {function}"))?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            let response = stdout.lines().rev().find_map(|l| {
                serde_json::from_str::<Value>(l.trim())
                    .ok()
                    .filter(Value::is_object)
            });
            // A function's own error (an authorizer's `Unauthorized`) is an answer to check.
            let Some(response) =
                response.filter(|r| output.status.success() || r.get("errorMessage").is_some())
            else {
                bail!(
                    "sam local invoke {function} -e events/{name} failed ({}):\n{stdout}\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                );
            };
            let answer = Answer::from_lambda_response(&response)?;
            progress
                .check(&stack, name, &answer)
                .await
                .with_context(|| format!("events/{name} via sam local invoke"))?;
            let again = if run > 1 { " (again: no change)" } else { "" };
            results.push(format!(
                "{function:<20} events/{name:<28} ok {answer_summary}{again} in {:.1?}",
                started.elapsed(),
                answer_summary = summary(&answer)
            ));
        }
    }
    results.push(start_api(root, sam, dev, &stack, &flags).await?);
    Ok(results)
}

fn summary(answer: &Answer) -> String {
    match answer {
        Answer::Http { status, .. } => format!("HTTP {status}"),
        Answer::Batch { failures } => format!("{} batch item failures", failures.len()),
        Answer::Policy { allowed } => {
            format!("policy: {}", if *allowed { "Allow" } else { "Deny" })
        }
        Answer::Refused { message } => format!("failed: {message}"),
    }
}

/// `sam local start-api` runs no JWT authorizer: a GET and a POST through it must both be
/// refused.
async fn start_api(
    root: &Path,
    sam: &Venv,
    dev: &Venv,
    stack: &Stack,
    flags: &[String],
) -> Result<String> {
    let port = free_port()?;
    let log = root.join(".herald/sam-start-api.log");
    let log_file = std::fs::File::create(&log)?;
    let mut cmd = sam_command(root, sam, dev);
    cmd.args([
        "local",
        "start-api",
        "--port",
        &port.to_string(),
        "--host",
        "127.0.0.1",
    ])
    .args(flags)
    .stdout(log_file.try_clone()?)
    .stderr(log_file);
    let server = KillOnDrop(cmd.spawn().context("sam local start-api")?);
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    // `sam local start-api` skips JWT authorizers (only Lambda authorizers run locally), so
    // requests reach the functions with no verified claims: herald must refuse them all,
    // even with a well-formed token in the header, and change nothing.
    let token = local::auth::LocalIssuer::ephemeral();
    let token = token.sign(&token.service("default"));
    let unread_url = format!("{base}/v1/users/start-api-user/unread");
    let refused = |(status, body): &(u16, serde_json::Value)| {
        *status == 401 && body["error"]["code"] == "unauthorized"
    };
    testkit::harness::eventually(
        Duration::from_secs(120),
        "sam local start-api to answer",
        || async {
            Ok(
                testkit::harness::http("GET", &unread_url, Some(&token), None)
                    .await
                    .ok()
                    .filter(refused)
                    .map(|_| ()),
            )
        },
    )
    .await
    .with_context(|| format!("see {}", log.display()))?;

    let depth_before = testkit::harness::queue_depth(stack, "NotificationsQueue").await?;
    let body = json!({"notifications": [{"user_id": "start-api-user", "room_id": "r1", "title": "Hi", "body": "via start-api", "channels": ["inbox"]}]});
    let answer = testkit::harness::http(
        "POST",
        &format!("{base}/v1/notifications"),
        Some(&token),
        Some(body),
    )
    .await?;
    if !refused(&answer) {
        bail!(
            "POST /v1/notifications without a verified token through start-api answered {answer:?}"
        );
    }
    let depth = testkit::harness::queue_depth(stack, "NotificationsQueue").await?;
    if depth != depth_before {
        bail!(
            "start-api refused the notification but the queue went from {depth_before} to {depth}"
        );
    }
    drop(server);
    Ok(format!(
        "start-api (no JWT authorizer locally): GET unread and POST /v1/notifications refused with 401, nothing enqueued, in {:.1?}",
        started.elapsed()
    ))
}

/// Stops a child with SIGTERM (SAM then removes its containers), then waits for it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_step(name: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("\n==> {name}");
    let started = Instant::now();
    let status = cmd.status().with_context(|| format!("running {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    eprintln!("<== {name}: ok in {:.1?}", started.elapsed());
    Ok(())
}
