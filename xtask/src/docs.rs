//! `cargo xtask docs` (also a step of `cargo xtask test`): the documentation's runnable shell
//! blocks, run as a reader would run them, against a fresh `cargo xtask dev`.
//!
//! A block is runnable when its info string is `sh run` (GitHub still highlights it as `sh`).
//! Each file's runnable blocks run in order in one `bash` with `set -euo pipefail`, so a
//! command that fails fails the suite; files run README.md first, then docs/*.md by name, on
//! one stack, after the README's two token lines (`SERVICE`, `USER_TOKEN`). A comment
//! `# → TEXT` on a line is what the commands print: each must appear in the block's output
//! after the one before it, `...` standing for anything. The stack runs on free ports; the
//! blocks' `localhost:3000` and `localhost:4566` are pointed there, and `HERALD_API` and
//! `HERALD_EMULATOR_ENDPOINT` tell `cargo xtask import-pinpoint` and `cargo xtask outbox`.
//! A file's blocks get 300 s in all (their `until` loops wait for the workers).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::devstack::DevStack;

/// What every docs/ file's blocks may use: the README's tokens.
const PREAMBLE: &str = "SERVICE=$(cargo xtask token --tenant acme --service)\n\
                        USER_TOKEN=$(cargo xtask token --tenant acme --user u1)\n";

/// One runnable block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The line of its opening fence (1-based).
    pub line: usize,
    pub script: String,
}

/// The runnable blocks of a markdown text, in order.
pub fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        let fence = line.trim_start();
        match open.as_mut() {
            None if fence.starts_with("```") => {
                let info: Vec<&str> = fence.trim_start_matches('`').split_whitespace().collect();
                if info.first() == Some(&"sh") && info.contains(&"run") {
                    open = Some(Block {
                        line: i + 1,
                        script: String::new(),
                    });
                } else {
                    // Another block: skip to its closing fence.
                    open = Some(Block {
                        line: 0,
                        script: String::new(),
                    });
                }
            }
            Some(_) if fence.starts_with("```") => {
                if let Some(block) = open.take().filter(|b| b.line > 0) {
                    out.push(block);
                }
            }
            Some(block) => {
                block.script.push_str(line);
                block.script.push('\n');
            }
            None => {}
        }
    }
    out
}

/// The `# → TEXT` expectations of a script, in order.
pub fn expectations(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|line| line.split_once("# → ").map(|(_, e)| e.trim().to_owned()))
        .filter(|e| !e.is_empty())
        .collect()
}

/// Where `pattern` (`...` matching anything) first occurs in `text` from `from` on: the end
/// of the match.
fn find(text: &str, from: usize, pattern: &str) -> Option<usize> {
    let pieces: Vec<&str> = pattern
        .split("...")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let mut start = from;
    // The first piece anchors the match; the others follow it in order.
    'candidates: while let Some(at) = pieces.first().and_then(|p| text[start..].find(p)) {
        let mut cursor = start + at + pieces[0].len();
        for piece in &pieces[1..] {
            match text[cursor..].find(piece) {
                Some(next) => cursor += next + piece.len(),
                None => {
                    // The next candidate: one character on (boundaries stay boundaries).
                    start += at + pieces[0].chars().next().map_or(1, char::len_utf8);
                    continue 'candidates;
                }
            }
        }
        return Some(cursor);
    }
    pieces.is_empty().then_some(from)
}

/// Checks that every expectation appears in `output`, each after the one before.
pub fn check_output(output: &str, expected: &[String]) -> Result<(), String> {
    let mut cursor = 0;
    for pattern in expected {
        match find(output, cursor, pattern) {
            Some(end) => cursor = end,
            None => {
                return Err(format!(
                    "expected `{pattern}` in the output after byte {cursor}"
                ))
            }
        }
    }
    Ok(())
}

/// The script with the documented ports pointed at the ones the stack runs on.
fn on_ports(script: &str, http_port: u16, emulator_port: u16) -> String {
    script
        .replace("localhost:3000", &format!("localhost:{http_port}"))
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{http_port}"))
        .replace("localhost:4566", &format!("localhost:{emulator_port}"))
        .replace("127.0.0.1:4566", &format!("127.0.0.1:{emulator_port}"))
}

/// The documentation files, in the order their blocks run.
fn files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    let mut all = vec![root.join("README.md")];
    all.extend(docs);
    Ok(all)
}

/// Runs every runnable block; fails naming the file, block and command at fault.
pub fn run(root: &Path, stack: &DevStack) -> Result<usize> {
    let mut runnable = Vec::new();
    for file in files(root)? {
        let text = std::fs::read_to_string(&file)?;
        let found = blocks(&text);
        if !found.is_empty() {
            runnable.push((file, found));
        }
    }
    if runnable.is_empty() {
        bail!("no runnable blocks (```sh run) in README.md or docs/");
    }
    let mut count = 0;
    for (file, found) in &runnable {
        let name = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        let mut script = String::from("set -euo pipefail\n");
        if name != "README.md" {
            script.push_str(PREAMBLE);
        }
        let mut expected = Vec::new();
        for block in found {
            script.push_str(&format!("# {name}:{}\n{}", block.line, block.script));
            expected.extend(expectations(&block.script));
            count += 1;
        }
        let script = on_ports(&script, stack.http_port, stack.emulator_port);
        eprintln!(
            "  {name}: {} block(s), {} expected output(s)",
            found.len(),
            expected.len()
        );
        // A bound on the whole file: a wait loop that never ends fails instead of hanging.
        let out = Command::new("timeout")
            .args(["300", "bash", "-c", &script])
            .current_dir(root)
            .env(
                "HERALD_API",
                format!("http://127.0.0.1:{}", stack.http_port),
            )
            .env(
                "HERALD_EMULATOR_ENDPOINT",
                format!("http://127.0.0.1:{}", stack.emulator_port),
            )
            .env("CARGO_TERM_QUIET", "true")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {name}'s blocks"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!(
                "{name}: its blocks stopped ({}).\n--- script ---\n{script}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
                out.status
            );
        }
        if let Err(why) = check_output(&stdout, &expected) {
            bail!("{name}: {why}.\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_blocks_marked_sh_run_are_runnable() {
        let md = "text\n```sh\nnot run\n```\n```sh run\necho a   # → a\n```\n```json\n{}\n```\n```sh run\necho b\n```\n";
        let found = blocks(md);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].line, 5);
        assert_eq!(found[0].script, "echo a   # → a\n");
        assert_eq!(found[1].script, "echo b\n");
        assert_eq!(expectations(&found[0].script), ["a"]);
    }

    #[test]
    fn expectations_match_in_order_with_wildcards() {
        let out = r#"{"total":1,"rooms":{"r1":1}}{"total":0,"rooms":{}} 401"#;
        let want = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_output(
            out,
            &want(&[r#"{"total":1,..."r1":1}}"#, r#"{"total":0,...}"#, "401"])
        )
        .is_ok());
        // Out of order, or absent: a failure naming the pattern.
        let err = check_output(out, &want(&["401", r#"{"total":1"#])).unwrap_err();
        assert!(err.contains(r#"{"total":1"#), "{err}");
        assert!(check_output(out, &want(&["403"])).is_err());
    }

    #[test]
    fn documented_ports_are_pointed_at_the_stacks() {
        assert_eq!(
            on_ports(
                "curl localhost:3000/x; curl http://127.0.0.1:4566/y",
                5001,
                5002
            ),
            "curl localhost:5001/x; curl http://127.0.0.1:5002/y"
        );
    }

    /// Documentation the suite runs must have runnable blocks and expectations.
    #[test]
    fn the_readme_and_docs_have_runnable_blocks() {
        let root = local::workspace_root();
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
        assert!(
            blocks(&readme).len() >= 2,
            "README.md's Try it and campaign blocks"
        );
        assert!(expectations(&readme).len() >= 5);
    }
}
