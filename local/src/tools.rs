//! Tools the project installs for itself: Python ones into `.venv/` (moto, cfn-lint,
//! cargo-lambda), `.venv-sam/` (aws-sam-cli pins boto3 exactly, so it gets its own venv),
//! `.venv-contract/` (schemathesis, the contract test), `.venv-scan/` (checkov, the
//! template's security scan; both pin dependencies of their own), `.venv-browser/`
//! (Playwright, for the browser test, with Debian's Chromium installed by apt), and cargo ones
//! (cargo-machete) built once from crates.io into `.herald/tools/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Pinned versions: bump deliberately.
pub const MOTO: &str = "moto[server]==5.2.5";
pub const CFN_LINT: &str = "cfn-lint==1.58.0";
pub const CARGO_LAMBDA: &str = "cargo-lambda==1.9.2";
pub const SAM_CLI: &str = "aws-sam-cli==1.170.0";
pub const SCHEMATHESIS: &str = "schemathesis==4.32.5";
pub const CHECKOV: &str = "checkov==3.3.30";
pub const PLAYWRIGHT: &str = "playwright==1.65.2";
/// Finds dependencies a crate declares and never uses (`cargo xtask test` runs it).
pub const CARGO_MACHETE: (&str, &str) = ("cargo-machete", "0.9.2");

/// A virtualenv under the workspace root.
pub struct Venv {
    pub dir: PathBuf,
}

impl Venv {
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }
}

/// `.venv/` with moto, cfn-lint and cargo-lambda; created or completed when missing.
pub fn dev_venv(root: &Path) -> Result<Venv> {
    ensure_venv(
        root.join(".venv"),
        &[MOTO, CFN_LINT, CARGO_LAMBDA],
        &["moto_server", "cfn-lint", "cargo-lambda"],
    )
}

/// `.venv-contract/` with schemathesis.
pub fn contract_venv(root: &Path) -> Result<Venv> {
    ensure_venv(
        root.join(".venv-contract"),
        &[SCHEMATHESIS],
        &["schemathesis"],
    )
}

/// `.venv-scan/` with checkov.
pub fn scan_venv(root: &Path) -> Result<Venv> {
    ensure_venv(root.join(".venv-scan"), &[CHECKOV], &["checkov"])
}

/// `.venv-browser/` with Playwright (it drives Debian's Chromium; no browser download).
pub fn browser_venv(root: &Path) -> Result<Venv> {
    ensure_venv(root.join(".venv-browser"), &[PLAYWRIGHT], &["playwright"])
}

/// Debian's Chromium, installed with apt the first time (as root; otherwise the command to
/// run is named). `CHROMIUM=/path/to/chrome` uses another Chromium (a machine without apt).
pub fn chromium() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let installed = || {
        ["/usr/bin/chromium", "/usr/bin/chromium-headless-shell"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    };
    if let Some(path) = installed() {
        return Ok(path);
    }
    let packages = ["chromium", "fonts-dejavu-core"];
    eprintln!(
        "installing {} from Debian's packages (once)...",
        packages.join(" ")
    );
    let apt = |args: &[&str]| {
        run(Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"))
    };
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(packages);
    if apt(&install).is_err() {
        // A fresh machine may not have read the package lists yet.
        apt(&["update", "-q"])
            .and_then(|()| apt(&install))
            .context("installing Chromium failed; run `sudo apt-get install chromium` once")?;
    }
    installed().context("apt installed chromium, but /usr/bin/chromium is not there")
}

/// `.venv-sam/` with aws-sam-cli.
pub fn sam_venv(root: &Path) -> Result<Venv> {
    ensure_venv(root.join(".venv-sam"), &[SAM_CLI], &["sam"])
}

fn ensure_venv(dir: PathBuf, packages: &[&str], executables: &[&str]) -> Result<Venv> {
    let venv = Venv { dir };
    let stamp = venv.dir.join(".herald-packages");
    let wanted = packages.join("\n");
    let ready = executables.iter().all(|e| venv.bin(e).exists())
        && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted);
    if ready {
        return Ok(venv);
    }
    eprintln!(
        "installing {} into {} (once)...",
        packages.join(" "),
        venv.dir.display()
    );
    if !venv.bin("python").exists() {
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        run(Command::new(&python).arg("-m").arg("venv").arg(&venv.dir)).with_context(|| {
            format!("creating a virtualenv with {python}; install Python 3.9+ with venv")
        })?;
    }
    run(Command::new(venv.bin("python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(packages))
    .context("pip install failed; is PyPI reachable?")?;
    std::fs::write(&stamp, wanted)?;
    Ok(venv)
}

/// A cargo tool at its pinned version, built from crates.io into `.herald/tools/` the first
/// time (about two minutes); the path of its executable.
pub fn cargo_tool(root: &Path, (name, version): (&str, &str)) -> Result<PathBuf> {
    let dir = root.join(".herald/tools");
    let executable = dir.join("bin").join(name);
    let stamp = dir.join(format!(".{name}-version"));
    if executable.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == version) {
        return Ok(executable);
    }
    eprintln!("building {name} {version} into {} (once)...", dir.display());
    run(Command::new("cargo")
        .args(["install", "--locked", "--quiet", "--force", "--root"])
        .arg(&dir)
        .arg(format!("{name}@{version}"))
        .env_remove("CARGO_TARGET_DIR"))
    .with_context(|| format!("cargo install {name}; is crates.io reachable?"))?;
    std::fs::write(&stamp, version)?;
    Ok(executable)
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} exited with {status}");
    }
    Ok(())
}
