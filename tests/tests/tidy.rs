//! The invariants ARCHITECTURE.md promises, checked.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

fn root() -> PathBuf {
    testkit::workspace_root()
}

#[test]
fn domain_never_imports_aws() {
    for file in rust_files(&root().join("shared/src/domain")) {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            !text.contains("aws_sdk_") && !text.contains("aws_smithy_"),
            "{} imports AWS",
            file.display()
        );
    }
}

#[test]
fn function_mains_stay_thin() {
    for entry in std::fs::read_dir(root().join("functions")).unwrap() {
        let main = entry.unwrap().path().join("src/main.rs");
        let lines = std::fs::read_to_string(&main).unwrap().lines().count();
        assert!(lines <= 25, "{} has {lines} lines", main.display());
    }
}

#[test]
fn every_source_file_says_what_it_is_for() {
    for dir in [
        "shared/src",
        "functions",
        "tests/src",
        "tests/tests",
        "xtask/src",
    ] {
        for file in rust_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(
                text.starts_with("//!"),
                "{} lacks a //! line",
                file.display()
            );
        }
    }
}

#[test]
fn functions_log_through_tracing() {
    for dir in ["shared/src", "functions"] {
        for file in rust_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(!text.contains("println!"), "{} prints", file.display());
        }
    }
}
