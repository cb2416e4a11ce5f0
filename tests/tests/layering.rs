//! The layering of each crate, enforced: every top-level module may name (`crate::X`, in `use`
//! lines, paths and doc links) only modules of a lower layer. Unit-test modules
//! (`#[cfg(test)] mod tests`) may reach further and are not counted.
//!
//! The tables below are the map of ARCHITECTURE.md; a new top-level module must be placed in
//! its crate's table, which is where a reviewer sees the layering change.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Bottom layer first; modules on one line are one layer and must not name each other.
const SENTRY: &[&[&str]] = &[
    &["abi"],
    &["auth", "waiter", "memory"],
    &["mm"],
    // The vDSO: its pages and the sandbox's clocks, over the memory manager.
    &["vfs", "vdso"],
    // Terminals sit below the filesystems: devpts (in `fs`) makes the sentry's ptys.
    &["tty"],
    &["elf", "fs", "net"],
    &["kernel"],
    &["procfs", "cgroupfs"],
    &["syscalls"],
    &["boot"],
    // The `runsc-rs` binary's OCI runtime CLI, above the whole library.
    &["oci"],
];

const PLATFORM: &[&[&str]] = &[
    &["stub_filter"],
    &["stub"],
    &["patch"],
    &["testing"],
    &["ptrace"],
    &["systrap"],
];

const SHIM: &[&[&str]] = &[
    &["error", "bootstrap"],
    &["cgroup", "image", "io"],
    &["sandbox"],
    &["service"],
    &["shim"],
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// The source files of `src` with the top-level module each belongs to (None for the crate
/// root files, which may name anything).
fn sources(src: &Path) -> Vec<(Option<String>, PathBuf)> {
    let mut out = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let top = first.trim_end_matches(".rs").to_owned();
            let module = (!["lib", "main", "bin"].contains(&top.as_str())).then_some(top);
            out.push((module, path));
        }
    }
    out
}

/// The text of a file without its unit-test module.
fn without_unit_tests(text: &str) -> &str {
    let mut from = 0;
    while let Some(at) = text[from..].find("#[cfg(test)]") {
        let start = from + at;
        let rest = text[start + "#[cfg(test)]".len()..].trim_start();
        if rest.starts_with("mod tests") {
            return &text[..start];
        }
        from = start + 1;
    }
    text
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first path segments after every `crate::` in `text` (both `crate::a::b` and the
/// grouped `crate::{a, b::c}`).
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut start_of_path = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => start_of_path = true,
                    c if start_of_path && depth == 1 && (c.is_alphanumeric() || c == '_') => {
                        refs.insert(ident(&group[i..]).to_owned());
                        start_of_path = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                refs.insert(name.to_owned());
            }
        }
    }
    refs
}

fn layer_of(table: &[&[&str]], module: &str) -> Option<usize> {
    table.iter().position(|layer| layer.contains(&module))
}

/// Every violation of `table` in crate `dir`, as readable lines.
fn violations(dir: &str, table: &[&[&str]]) -> Vec<String> {
    let src = workspace().join(dir).join("src");
    let modules: BTreeSet<&str> = table.iter().flat_map(|l| l.iter().copied()).collect();
    let mut found = Vec::new();
    for (module, path) in sources(&src) {
        let Some(module) = module else { continue };
        let Some(layer) = layer_of(table, &module) else {
            found.push(format!(
                "{dir}: top-level module `{module}` ({}) is in no layer of the table",
                path.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        for name in crate_refs(without_unit_tests(&text)) {
            if name == module || !modules.contains(name.as_str()) {
                continue;
            }
            let other = layer_of(table, &name).unwrap();
            if other >= layer {
                found.push(format!(
                    "{dir}: `{module}` (layer {layer}) names `{name}` (layer {other}) in {}",
                    path.strip_prefix(workspace()).unwrap_or(&path).display()
                ));
            }
        }
    }
    found
}

#[test]
fn each_module_names_only_lower_layers() {
    let mut all = Vec::new();
    all.extend(violations("sentry", SENTRY));
    all.extend(violations("platform", PLATFORM));
    all.extend(violations("shim", SHIM));
    assert!(all.is_empty(), "layering violations:\n{}", all.join("\n"));
}

#[test]
fn the_checker_sees_grouped_and_plain_paths() {
    let text = "use crate::{abi::Errno, kernel::{Task, task}, vfs};\nlet x = crate::net::y;\n\
                #[cfg(test)]\nmod tests { use crate::boot; }";
    let refs = crate_refs(without_unit_tests(text));
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    assert_eq!(refs, ["abi", "kernel", "net", "vfs"]);
}
