//! `cargo xtask size`: each function built for release as `sam build` builds it (cargo-lambda,
//! arm64 by default) and packaged as Lambda zips; reports binary and zip sizes and writes
//! them to `target/bench/sizes.json`.

use std::process::Command;

use anyhow::{bail, Context, Result};
use local::template::Template;
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

    let mut rows = Vec::new();
    println!("| function | binary | zip |\n|---|---|---|");
    for f in &functions {
        let zip = lambda_dir.join(&f.binary).join("bootstrap.zip");
        let zip_bytes = std::fs::metadata(&zip)
            .with_context(|| format!("{}", zip.display()))?
            .len();
        let binary_bytes = unzipped_size(&zip)?;
        println!(
            "| {} | {:.1} MB | {:.1} MB |",
            f.binary,
            mb(binary_bytes),
            mb(zip_bytes)
        );
        rows.push(
            json!({"function": f.binary, "binary_bytes": binary_bytes, "zip_bytes": zip_bytes}),
        );
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

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}
