//! The data flows one way (issue #10): a module of `src/` may import only
//! modules listed before it in `LAYERS` (README, "Layout"), so there is no
//! import cycle and no stage imports one after it in the pipeline. Read from
//! the `crate::` paths of every source file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bottom to top. `lib.rs` and `main.rs` may use anything.
const LAYERS: &[&str] = &[
    "time", "packet", "dns", "smtp", "event", "decode", "input", "capture", "classify", "detect",
    "output", "action", "cluster", "engine", "pipeline", "cli", "config", "run", "report", "fuzz",
];

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to (`src/detect/rule.rs` -> `detect`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    let name = first.trim_end_matches(".rs").to_owned();
    (name != "lib" && name != "main").then_some(name)
}

/// Top-level modules named by `crate::` paths in `text`, including
/// `use crate::{a, b::c}` groups; comments are skipped.
fn imports(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: the first segment of each
            // comma-separated path at brace depth 0.
            let (mut depth, mut name, mut in_path) = (0, String::new(), false);
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !name.is_empty() {
                            out.push(std::mem::take(&mut name));
                        }
                        in_path = false;
                    }
                    c if depth == 0 && !in_path && (c.is_alphanumeric() || c == '_') => {
                        name.push(c)
                    }
                    ':' if depth == 0 && !name.is_empty() => {
                        out.push(std::mem::take(&mut name));
                        in_path = true;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                out.push(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
        }
    }
    out.retain(|n| !n.is_empty() && n.chars().next().unwrap().is_lowercase());
    out
}

#[test]
fn no_module_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let rank: BTreeMap<&str, usize> = LAYERS.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut bad = Vec::new();
    let mut seen = 0;
    for f in &all {
        let Some(m) = module_of(&src, f) else {
            continue;
        };
        let Some(&mine) = rank.get(m.as_str()) else {
            bad.push(format!("{}: module {m} is not in LAYERS", f.display()));
            continue;
        };
        for dep in imports(&std::fs::read_to_string(f).unwrap()) {
            seen += 1;
            match rank.get(dep.as_str()) {
                Some(&r) if r > mine => bad.push(format!(
                    "{}: {m} imports {dep}, which is above it",
                    f.strip_prefix(&src).unwrap().display()
                )),
                Some(_) => {}
                // Items of the crate root (FastMap) are fine.
                None if dep.chars().next().unwrap().is_lowercase()
                    && !rank.contains_key(dep.as_str()) =>
                {
                    bad.push(format!("{}: unknown module crate::{dep}", f.display()))
                }
                None => {}
            }
        }
    }
    assert!(seen > 50, "the scan found only {seen} crate:: paths");
    assert!(bad.is_empty(), "layering broken:\n{}", bad.join("\n"));
}

#[test]
fn the_scanner_reads_groups_and_paths() {
    let text = "use crate::{a::B, c, d::{e, f}};\nfn x() { crate::g::h(); }\n// crate::comment\n";
    assert_eq!(imports(text), vec!["a", "c", "d", "g"]);
}
