//! `cargo xtask scan` (also a step of `cargo xtask test`): template.yaml through checkov
//! (pinned, in `.venv-scan/`), offline. A finding fails the suite unless the resource skips
//! it inline (`Metadata: checkov: skip:`) with a one-line reason.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

pub fn run(root: &Path) -> Result<()> {
    let venv = local::tools::scan_venv(root)?;
    let output = Command::new(venv.bin("checkov"))
        .current_dir(root)
        // Offline: no guideline download, no Prisma Cloud mapping.
        .env("BC_SKIP_MAPPING", "TRUE")
        .args(["--file", "template.yaml", "--framework", "cloudformation"])
        .args(["--compact", "--quiet", "--skip-download"])
        .output()
        .context("running checkov")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprint!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        bail!(
            "checkov found what template.yaml neither fixes nor skips with a reason ({})",
            output.status
        );
    }
    // checkov exits 0 on a template it could not parse: it checked nothing.
    if parsing_errors(&stdout) > 0 {
        bail!("checkov could not parse template.yaml, so it checked nothing");
    }
    Ok(())
}

/// The `Parsing errors: N` of checkov's summary (0 when it prints none).
fn parsing_errors(summary: &str) -> usize {
    summary
        .lines()
        .filter_map(|line| line.split("Parsing errors: ").nth(1))
        .filter_map(|n| n.trim().parse::<usize>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    /// Regression: a template.yaml that did not parse passed the scan (checkov exits 0).
    #[test]
    fn a_parsing_error_is_counted() {
        let summary = "cloudformation scan results:\n\nPassed checks: 0, Failed checks: 0, Skipped checks: 0, Parsing errors: 1\n";
        assert_eq!(super::parsing_errors(summary), 1);
        assert_eq!(
            super::parsing_errors("Passed checks: 310, Failed checks: 0, Skipped checks: 40\n"),
            0
        );
    }
}
