//! `cargo xtask size`: each function built for release as `sam build` builds it (cargo-lambda,
//! arm64 by default) and packaged as Lambda zips; reports binary and zip sizes and writes
//! them to `target/bench/sizes.json`. Built for the machine's own architecture
//! (`--x86-64` here), it also measures each function's init: from its start until it asks
//! a stand-in Lambda Runtime API on 127.0.0.1 for its first event (median of 5).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use local::template::{resolve, Intrinsic, Template};
use serde_json::json;

/// Options of `cargo xtask size`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Build for x86_64 instead of arm64 (the template's default architecture).
    #[arg(long)]
    pub x86_64: bool,
}

pub fn run(args: &Args) -> Result<()> {
    let root = local::workspace_root();
    let venv = local::tools::dev_venv(&root)?;
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let lambda_dir = target.join("lambda-size");
    let arch = if args.x86_64 { "--x86-64" } else { "--arm64" };
    let path = format!(
        "{}:{}",
        venv.dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let functions = Template::project()?.functions()?;
    let mut build = Command::new(venv.bin("cargo-lambda"));
    build
        .current_dir(&root)
        .env("PATH", path)
        .args([
            "lambda",
            "build",
            "--release",
            arch,
            "--output-format",
            "zip",
        ])
        .arg("--lambda-dir")
        .arg(&lambda_dir);
    for f in &functions {
        build.args(["--bin", &f.binary]);
    }
    eprintln!("==> cargo lambda build --release {arch} --output-format zip (a few minutes)");
    let status = build.status().context("running cargo-lambda")?;
    if !status.success() {
        bail!("cargo lambda build failed ({status})");
    }

    let host = if cfg!(target_arch = "x86_64") {
        "--x86-64"
    } else {
        "--arm64"
    };
    let measure_init = arch == host;
    let template = Template::project()?;
    let mut rows = Vec::new();
    println!("| function | binary | zip | init |\n|---|---|---|---|");
    for f in &functions {
        let zip = lambda_dir.join(&f.binary).join("bootstrap.zip");
        let zip_bytes = std::fs::metadata(&zip)
            .with_context(|| format!("{}", zip.display()))?
            .len();
        let binary_bytes = unzipped_size(&zip)?;
        let init = if measure_init {
            // The bootstrap as Lambda gets it: out of the zip.
            let unpacked = lambda_dir.join(&f.binary).join("unpacked");
            let status = Command::new("unzip")
                .args(["-o", "-q"])
                .arg(&zip)
                .arg("-d")
                .arg(&unpacked)
                .status()
                .context("unzip (to run the bootstrap)")?;
            if !status.success() {
                bail!("unzip {} failed ({status})", zip.display());
            }
            let bootstrap = unpacked.join("bootstrap");
            Some(median_init(
                &bootstrap,
                &stand_in_env(&template, &f.logical_id)?,
            )?)
        } else {
            None
        };
        println!(
            "| {} ({}) | {:.1} MB | {:.1} MB | {} |",
            f.logical_id,
            f.binary,
            mb(binary_bytes),
            mb(zip_bytes),
            init.map_or("-".to_owned(), |d| format!(
                "{:.1} ms",
                d.as_secs_f64() * 1e3
            ))
        );
        rows.push(json!({
            "function": f.logical_id, "binary": f.binary,
            "binary_bytes": binary_bytes, "zip_bytes": zip_bytes,
            "init_ms": init.map(|d| d.as_secs_f64() * 1e3),
        }));
    }
    let out = target.join("bench/sizes.json");
    std::fs::create_dir_all(out.parent().unwrap_or(&target))?;
    std::fs::write(
        &out,
        serde_json::to_string_pretty(
            &json!({"architecture": arch.trim_start_matches("--"), "functions": rows}),
        )?,
    )?;
    eprintln!("written to {}", out.display());
    Ok(())
}

/// The uncompressed size of the zip's entries (the bootstrap binary), from its central
/// directory, read with `unzip -Z` when present, else the binary beside the zip.
fn unzipped_size(zip: &std::path::Path) -> Result<u64> {
    let beside = zip.with_file_name("bootstrap");
    if let Ok(meta) = std::fs::metadata(&beside) {
        return Ok(meta.len());
    }
    let out = Command::new("unzip").arg("-Zt").arg(zip).output();
    match out {
        Ok(out) if out.status.success() => {
            // "1 file, 5242880 bytes uncompressed, 2097152 bytes compressed:  60.0%"
            let text = String::from_utf8_lossy(&out.stdout);
            text.split_whitespace()
                .nth(2)
                .and_then(|n| n.parse().ok())
                .context("unzip -Zt output")
        }
        _ => bail!("cannot tell the binary size of {}", zip.display()),
    }
}

/// A function's environment with stand-in values: parameters at their defaults, resources
/// named after their logical ids, queues and endpoints on a closed local port (init makes no
/// AWS call; one that did would fail fast instead of waiting).
fn stand_in_env(template: &Template, logical_id: &str) -> Result<Vec<(String, String)>> {
    let defaults = template.parameter_defaults();
    let lookup = |i: &Intrinsic| -> Option<String> {
        Some(match i {
            Intrinsic::Ref(name) if name == "AWS::Region" => "us-east-1".to_owned(),
            Intrinsic::Ref(name) if name.starts_with("AWS::") => "herald".to_owned(),
            Intrinsic::Ref(name) => defaults.get(name).cloned().unwrap_or_else(|| {
                if name.ends_with("Queue") || name.ends_with("DLQ") {
                    format!("http://127.0.0.1:9/000000000000/{name}")
                } else if name.ends_with("Secret") || name.ends_with("Topic") {
                    format!("arn:aws:sns:us-east-1:000000000000:{name}")
                } else {
                    name.clone()
                }
            }),
            Intrinsic::GetAtt(name, _) => format!("arn:aws:sqs:us-east-1:000000000000:{name}"),
        })
    };
    let mut env = Vec::new();
    for (key, value) in template.function_env(logical_id)? {
        if let Some(value) = resolve(template, &value, &lookup)? {
            env.push((key, value));
        }
    }
    for (key, value) in [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_LAMBDA_FUNCTION_NAME", logical_id),
        ("AWS_LAMBDA_FUNCTION_VERSION", "1"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
    ] {
        env.push((key.to_owned(), value.to_owned()));
    }
    Ok(env)
}

/// The median of five inits of `bootstrap`.
fn median_init(bootstrap: &Path, env: &[(String, String)]) -> Result<Duration> {
    let mut runs = (0..5)
        .map(|_| init_time(bootstrap, env))
        .collect::<Result<Vec<_>>>()?;
    runs.sort();
    Ok(runs[2])
}

/// From spawning `bootstrap` until its first `GET .../runtime/invocation/next`.
fn init_time(bootstrap: &Path, env: &[(String, String)]) -> Result<Duration> {
    let api = TcpListener::bind("127.0.0.1:0")?;
    let port = api.local_addr()?.port();
    let started = Instant::now();
    let mut child = Command::new(bootstrap)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bootstrap.display()))?;
    api.set_nonblocking(true)?;
    let deadline = started + Duration::from_secs(10);
    let elapsed = loop {
        match api.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                let mut line = String::new();
                BufReader::new(&stream).read_line(&mut line)?;
                if line.contains("/runtime/invocation/next") {
                    let took = started.elapsed();
                    let _ = (&stream).write_all(
                        b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n",
                    );
                    break took;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(status) = child.try_wait()? {
                    let mut err = String::new();
                    if let Some(mut stderr) = child.stderr.take() {
                        std::io::Read::read_to_string(&mut stderr, &mut err)?;
                    }
                    bail!(
                        "{} exited during init ({status}): {err}",
                        bootstrap.display()
                    );
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    bail!("{} asked for no event in 10 s", bootstrap.display());
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => return Err(e.into()),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    Ok(elapsed)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}
