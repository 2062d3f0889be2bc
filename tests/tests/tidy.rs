//! The invariants ARCHITECTURE.md promises, checked.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
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
const SOURCE_DIRS: [&str; 6] = [
    "shared/src",
    "functions",
    "local/src",
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
    let mut mains = 0;
    for entry in std::fs::read_dir(root().join("functions")).unwrap() {
        let dir = entry.unwrap().path();
        // A crate's one main.rs, or its `src/bin/` entry points (several Lambdas, one library).
        let bins = if dir.join("src/bin").is_dir() {
            rust_files(&dir.join("src/bin"))
        } else {
            Vec::new()
        };
        let entry_points = if bins.is_empty() {
            vec![dir.join("src/main.rs")]
        } else {
            bins
        };
        for main in entry_points {
            let lines = std::fs::read_to_string(&main).unwrap().lines().count();
            assert!(lines <= 25, "{} has {lines} lines", main.display());
            mains += 1;
        }
    }
    assert!(mains >= 10, "{mains} entry points found");
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
            .map(|e| e.unwrap().path())
            // docs/images/ holds pictures the pages show.
            .filter(|p| p.extension().is_some_and(|e| e == "md")),
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

/// The kinds of item a module defines by name.
const ITEM_KINDS: [&str; 7] = ["struct", "enum", "trait", "fn", "type", "const", "static"];

/// The `shared/` crate's modules and the modules each one uses, from its `use` lines and
/// inline `crate::` paths (test modules and re-exports left out: a `pub use` is surface,
/// not a dependency). An item imported through a re-export counts as a use of the module
/// that defines it.
struct ModuleGraph {
    /// Module path (`["domain", "campaign", "model"]`) → its source text without tests.
    modules: BTreeMap<Vec<String>, String>,
}

impl ModuleGraph {
    fn load(src: &Path) -> Self {
        let mut modules = BTreeMap::new();
        for file in rust_files(src) {
            let relative = file.strip_prefix(src).unwrap().with_extension("");
            let mut path: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(path.last().map(String::as_str), Some("mod" | "lib")) {
                path.pop();
            }
            let text = std::fs::read_to_string(&file).unwrap();
            let code = match text.find("#[cfg(test)]\nmod tests") {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            modules.insert(path, code);
        }
        Self { modules }
    }

    fn defines(&self, module: &[String], name: &str) -> bool {
        self.modules.get(module).is_some_and(|code| {
            ITEM_KINDS.iter().any(|kind| {
                [" ", "<", "(", ":", ";"]
                    .iter()
                    .any(|after| code.contains(&format!("{kind} {name}{after}")))
            })
        })
    }

    /// The module that defines `name`, looked up from `module` through its re-exports.
    fn definer(&self, module: &[String], name: &str, depth: usize) -> Vec<String> {
        if depth > 8 || self.defines(module, name) {
            return module.to_vec();
        }
        let code = self.modules.get(module).map_or("", String::as_str);
        for reexport in statements(code, "pub use ") {
            for path in expand_use(&reexport) {
                let Some(segments) = self.absolute(module, &path) else {
                    continue;
                };
                match segments.split_last() {
                    Some((last, parent)) if last == "*" => {
                        let found = self.definer(parent, name, depth + 1);
                        if self.defines(&found, name) {
                            return found;
                        }
                    }
                    Some((last, _)) if last == name => return self.resolve(&segments, depth + 1),
                    _ => {}
                }
            }
        }
        module.to_vec()
    }

    /// The module an absolute path (`["ports", "CounterStore"]`) leads to.
    fn resolve(&self, segments: &[String], depth: usize) -> Vec<String> {
        let mut module: Vec<String> = Vec::new();
        for segment in segments {
            let mut deeper = module.clone();
            deeper.push(segment.clone());
            if self.modules.contains_key(&deeper) {
                module = deeper;
            } else if segment == "*" {
                break;
            } else {
                return self.definer(&module, segment, depth);
            }
        }
        module
    }

    /// A path as written in `module`, as segments from the crate root; `None` when it names
    /// another crate.
    fn absolute(&self, module: &[String], path: &str) -> Option<Vec<String>> {
        let mut segments = path.split("::").filter(|s| !s.is_empty()).peekable();
        let mut base: Vec<String> = match *segments.peek()? {
            "crate" => Vec::new(),
            "self" | "super" => module.to_vec(),
            child => {
                let mut inner = module.to_vec();
                inner.push(child.to_owned());
                if !self.modules.contains_key(&inner) {
                    return None;
                }
                module.to_vec()
            }
        };
        for segment in segments {
            match segment {
                "crate" | "self" => {}
                "super" => {
                    base.pop();
                }
                _ => base.push(segment.to_owned()),
            }
        }
        Some(base)
    }

    /// Every module → the modules it uses.
    fn edges(&self) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
        let mut edges = BTreeMap::new();
        for (module, code) in &self.modules {
            let mut paths: Vec<String> = statements(code, "use ")
                .iter()
                .flat_map(|s| expand_use(s))
                .collect();
            let mut rest = code.as_str();
            while let Some(at) = rest.find("crate::") {
                let tail = &rest[at..];
                let end = tail
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(tail.len());
                paths.push(tail[..end].trim_end_matches(':').to_owned());
                rest = &tail[end..];
            }
            let used = paths
                .iter()
                .filter_map(|path| self.absolute(module, path))
                .map(|segments| self.resolve(&segments, 0))
                .filter(|target| target != module && !target.is_empty())
                .collect();
            edges.insert(module.clone(), used);
        }
        edges
    }

    /// A circle of modules that use each other, if there is one.
    fn circle(&self) -> Option<Vec<Vec<String>>> {
        testkit::graph::find_circle(&self.edges())
    }
}

/// The statements of `code` that start a line with `keyword` (`use ` or `pub use `), up to
/// their `;`, whitespace collapsed.
fn statements(code: &str, keyword: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(keyword) {
        let line_start = rest[..at].rfind('\n').map_or(0, |n| n + 1);
        let indented = rest[line_start..at].trim().is_empty();
        let tail = &rest[at + keyword.len()..];
        let end = tail.find(';').unwrap_or(tail.len());
        if indented {
            out.push(tail[..end].split_whitespace().collect::<Vec<_>>().join(" "));
        }
        rest = &tail[end..];
    }
    out
}

/// `a::{b, c::{d, e as f}}` → `a::b`, `a::c::d`, `a::c::e` (`self` folded into its parent).
fn expand_use(tree: &str) -> Vec<String> {
    let tree: String = tree.replace(" as ", "@").split_whitespace().collect();
    let Some(open) = tree.find('{') else {
        let path = tree.split('@').next().unwrap_or_default();
        return vec![path.trim_end_matches("::self").to_owned()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|item| !item.is_empty())
        .flat_map(|item| expand_use(&format!("{prefix}{item}")))
        .collect()
}

#[test]
fn shared_has_no_import_circles() {
    let graph = ModuleGraph::load(&root().join("shared/src"));
    let edges = graph.edges();
    // The checker sees real uses: the inbox-writer's port is found where it is defined.
    assert!(
        edges[&vec!["consumer".to_owned()]].contains(&vec!["ports".to_owned(), "sqs".to_owned()]),
        "{:?}",
        edges[&vec!["consumer".to_owned()]]
    );
    if let Some(circle) = graph.circle() {
        let names: Vec<String> = circle.iter().map(|m| m.join("::")).collect();
        panic!(
            "modules of shared/ import each other in a circle: {}",
            names.join(" → ")
        );
    }
}

/// The check finds a circle that runs through a re-export (the one `shared/` had between
/// `consumer` and `ports`), and none once the shared type moves below both.
#[test]
fn the_circle_check_sees_through_re_exports() {
    let dir = std::env::temp_dir().join(format!("herald-tidy-{}", std::process::id()));
    let write = |path: &str, text: &str| {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    };
    write("lib.rs", "//! x\npub mod consumer;\npub mod ports;\n");
    write("ports/mod.rs", "//! x\npub mod sqs;\n\npub use sqs::*;\n");
    write(
        "ports/sqs.rs",
        "//! x\nuse crate::consumer::QueueMessage;\n\npub trait SourceQueue {}\n",
    );
    write(
        "consumer.rs",
        "//! x\nuse crate::ports::{\n    SourceQueue,\n};\n\npub struct QueueMessage;\n",
    );
    let circle = ModuleGraph::load(&dir).circle().expect("a circle");
    let names: Vec<String> = circle.iter().map(|m| m.join("::")).collect();
    assert!(names.contains(&"ports::sqs".to_owned()), "{names:?}");
    write(
        "ports/sqs.rs",
        "//! x\npub struct QueueMessage;\n\npub trait SourceQueue {}\n",
    );
    write(
        "consumer.rs",
        "//! x\npub use crate::ports::sqs::QueueMessage;\nuse crate::ports::SourceQueue;\n",
    );
    assert_eq!(ModuleGraph::load(&dir).circle(), None);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// ARCHITECTURE.md lets a newcomer find every concern: it names every source file (by its
/// path, its file name, or its module name in backticks; `lib.rs`, `main.rs` and `mod.rs`
/// are named by their folder), every port, and links every doc under docs/.
#[test]
fn the_codemap_names_every_module_port_and_doc() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    for dir in [
        "shared/src",
        "local/src",
        "functions",
        "xtask/src",
        "tests/src",
    ] {
        for file in rust_files(&root().join(dir)) {
            let relative = file
                .strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
            if matches!(stem.as_str(), "lib" | "main" | "mod") {
                continue;
            }
            let named = map.contains(&relative)
                || map.contains(&format!("`{stem}`"))
                || map.contains(&format!("`{stem}.rs`"))
                || map.contains(&format!("/{stem}.rs`"))
                || map.contains(&format!("`{stem}/`"));
            if !named {
                missing.push(relative);
            }
        }
    }
    for file in rust_files(&root().join("shared/src/ports")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("pub trait ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !map.contains(&format!("`{name}`")) {
                    missing.push(format!("port {name}"));
                }
            }
        }
    }
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") && !map.contains(&format!("(docs/{name})")) {
            missing.push(format!("a link to docs/{name}"));
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's codemap does not name: {}",
        missing.join(", ")
    );
}
