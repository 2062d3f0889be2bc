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

/// Where the Rust sources are.
const SOURCE_DIRS: [&str; 5] = [
    "shared/src",
    "functions",
    "tests/src",
    "tests/tests",
    "xtask/src",
];

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
    for dir in SOURCE_DIRS {
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

/// Paths a text names: `backticked` tokens with a `/`, and markdown link targets.
fn named_paths(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 && part.contains('/') {
            out.push((part.to_owned(), false));
        }
    }
    for link in text.split("](").skip(1) {
        if let Some(end) = link.find(')') {
            out.push((link[..end].to_owned(), true));
        }
    }
    out
}

/// `a/b/../c` as `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Checks one named path: inside the repo, and existing when it is a path of the repo (its
/// first component exists in a clean clone; generated places and URLs are not).
fn check_named_path(root: &Path, doc: &Path, path: &str, is_link: bool) -> Option<String> {
    let path = path.split('#').next().unwrap_or_default();
    if path.is_empty()
        || path.contains("://")
        || path.starts_with('/')
        || path.contains(['<', '*', '{', ' ', '$'])
    {
        return None;
    }
    let base = if is_link {
        doc.parent().unwrap_or(root)
    } else {
        root
    };
    let full = normalize(&base.join(path));
    if !full.starts_with(root) {
        return Some(format!(
            "{}: {path} is outside the repository",
            doc.display()
        ));
    }
    let first = path
        .trim_start_matches("./")
        .split('/')
        .next()
        .unwrap_or_default();
    // Generated places (.gitignore) exist only after a run; a clean clone has none of them.
    let generated = std::fs::read_to_string(root.join(".gitignore")).unwrap_or_default();
    if generated
        .lines()
        .any(|g| g.trim_start_matches('/') == first)
        || !base.join(first).exists()
    {
        return None;
    }
    (!full.exists()).then(|| format!("{}: {path} does not exist", doc.display()))
}

#[test]
fn every_path_a_doc_names_exists_in_the_repo() {
    let root = root().canonicalize().unwrap();
    let mut docs: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    docs.extend(
        std::fs::read_dir(root.join("docs"))
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    let mut texts: Vec<(PathBuf, String)> = docs
        .into_iter()
        .map(|d| {
            let text = std::fs::read_to_string(&d).unwrap();
            (d, text)
        })
        .collect();
    for dir in SOURCE_DIRS {
        for file in rust_files(&root.join(dir)) {
            // Module docs: the `//!` lines.
            let text: String = std::fs::read_to_string(&file)
                .unwrap()
                .lines()
                .filter(|l| l.starts_with("//!"))
                .collect::<Vec<_>>()
                .join("\n");
            texts.push((file, text));
        }
    }
    let mut problems = Vec::new();
    for (doc, text) in &texts {
        let is_markdown = doc.extension().is_some_and(|e| e == "md");
        for (path, is_link) in named_paths(text) {
            if is_link && !is_markdown {
                continue;
            }
            problems.extend(check_named_path(&root, doc, &path, is_link));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_path_check_catches_what_it_is_for() {
    let root = root().canonicalize().unwrap();
    let doc = root.join("docs/design.md");
    let check = |path: &str, is_link: bool| check_named_path(&root, &doc, path, is_link);
    assert!(
        check("../shared/DESIGN.md", false).is_some(),
        "outside the clone"
    );
    assert!(check("shared/src/nope.rs", false).is_some(), "missing");
    assert!(
        check("../ARCHITECTURE.md", true).is_none(),
        "a link from docs/"
    );
    assert!(check("shared/src/lib.rs", false).is_none());
    assert!(
        check("target/bench/counters.json", false).is_none(),
        "generated"
    );
    assert!(check("s3://bucket/key", false).is_none());
}
