//! The core's walls, checked mechanically (ARCHITECTURE.md, invariants 1 and 9): its manifest
//! names no IO crate, and its modules depend on each other without a cycle, so each room can
//! be read, tested and changed from the rooms below it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Crates that do IO or drive it; none may be a dependency of the core.
const IO_CRATES: &[&str] = &[
    "tokio",
    "madsim-tokio",
    "madsim",
    "rocksdb",
    "librocksdb-sys",
    "async-nats",
    "clap",
    "tracing-subscriber",
    "hyper",
    "reqwest",
    "monero-simple-request-rpc",
    "monero-daemon-rpc",
    "serde_json",
    "toml",
    "futures",
];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The dependency names of one `[...dependencies]` table of the manifest.
fn dependencies(manifest: &str, table: &str) -> Vec<String> {
    let mut in_table = false;
    let mut names = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_table = line == format!("[{table}]");
            continue;
        }
        if in_table && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.']).next().unwrap_or_default().trim();
            names.push(name.to_string());
        }
    }
    names
}

#[test]
fn the_core_depends_on_no_io_crate() {
    let manifest = std::fs::read_to_string(crate_dir().join("Cargo.toml")).unwrap();
    assert!(!manifest.contains("target."), "no platform- or cfg-specific dependencies in the core");
    let normal = dependencies(&manifest, "dependencies");
    assert!(normal.len() > 5, "the manifest's dependencies were not found: {normal:?}");
    for name in normal {
        assert!(!IO_CRATES.contains(&name.as_str()), "the core depends on the IO crate {name}");
    }
}

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Top-level module -> the top-level modules its non-test code names (`crate::x`).
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = crate_dir().join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative.iter().next().unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests may reach anywhere; only the code's own dependencies count.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let edges = graph.entry(module.clone()).or_default();
        for line in code.lines().filter(|line| !line.trim_start().starts_with("//")) {
            for (position, _) in line.match_indices("crate::") {
                let rest = &line[position + "crate::".len()..];
                let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                if !name.is_empty() && name != module {
                    edges.insert(name);
                }
            }
        }
    }
    graph
}

/// A cycle through `start`, if there is one.
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let last = path.last().cloned().unwrap_or_default();
        for next in graph.get(&last).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if visit(graph, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    visit(graph, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn the_core_modules_depend_on_each_other_without_a_cycle() {
    let graph = module_graph();
    for module in ["core", "scanner", "transaction", "payments", "rotation", "keygen", "db"] {
        assert!(graph.contains_key(module), "module {module} not found: {graph:?}");
    }
    // The lower rooms know nothing of the state machine.
    for module in ["db", "messages", "ids", "crypto", "scheduler", "chain", "sign", "keygen"] {
        assert!(!graph[module].contains("core"), "{module} depends on the state machine");
    }
    for module in graph.keys() {
        if let Some(cycle) = cycle_through(&graph, module) {
            panic!("modules depend on each other in a cycle: {}", cycle.join(" -> "));
        }
    }
}
