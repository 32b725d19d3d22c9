//! Every fuzz target's committed inputs, replayed by `cargo test` on stable
//! Rust (#12, #13): the seed corpus `fuzz/seeds/TARGET/*` and the inputs
//! that once crashed, `tests/fuzz-regressions/TARGET-*`, through the same
//! function the target calls (`mxwatch::fuzz::TARGET`). A regression of a
//! known crash fails the build without nightly or cargo-fuzz.

use std::path::{Path, PathBuf};

use mxwatch::fuzz::TARGETS;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn run(target: &str, f: fn(&[u8]), path: &Path) {
    let data = std::fs::read(path).unwrap();
    if std::panic::catch_unwind(|| f(&data)).is_err() {
        panic!("fuzz target {target} fails on {}", path.display());
    }
}

#[test]
fn every_target_has_a_binary_and_a_seed_corpus() {
    let manifest = std::fs::read_to_string(repo().join("fuzz/Cargo.toml")).unwrap();
    for (name, _) in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\""))
                && repo()
                    .join(format!("fuzz/fuzz_targets/{name}.rs"))
                    .is_file(),
            "fuzz target {name}: no binary in fuzz/"
        );
        let seeds = files(&repo().join("fuzz/seeds").join(name));
        assert!(!seeds.is_empty(), "fuzz target {name}: no seed corpus");
    }
    // And no binary without an entry here (it would never be replayed).
    for f in files(&repo().join("fuzz/fuzz_targets")) {
        let stem = f.file_stem().unwrap().to_str().unwrap();
        assert!(
            TARGETS.iter().any(|(n, _)| *n == stem),
            "fuzz/fuzz_targets/{stem}.rs is not in mxwatch::fuzz::TARGETS"
        );
    }
}

#[test]
fn the_seed_corpus_of_every_target_passes() {
    let mut n = 0;
    for (name, f) in TARGETS {
        for p in files(&repo().join("fuzz/seeds").join(name)) {
            run(name, *f, &p);
            n += 1;
        }
    }
    eprintln!("{n} corpus inputs replayed");
}

#[test]
fn every_fuzz_regression_passes() {
    let regressions = files(&repo().join("tests/fuzz-regressions"));
    assert!(!regressions.is_empty());
    for p in regressions {
        let name = p.file_name().unwrap().to_str().unwrap();
        // TARGET-what, the longest target name that fits (dns_head before dns).
        let (target, f) = TARGETS
            .iter()
            .filter(|(t, _)| name.starts_with(&format!("{t}-")))
            .max_by_key(|(t, _)| t.len())
            .unwrap_or_else(|| panic!("{name}: not named TARGET-what for a known target"));
        run(target, *f, &p);
    }
}
