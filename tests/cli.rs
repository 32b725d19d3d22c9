//! The man page and completions come from the clap definitions: every
//! subcommand and flag is in them (#13).

mod common;

use common::mxwatch;

#[test]
fn man_page_and_completions_name_every_subcommand_and_flag() {
    let man = String::from_utf8(mxwatch(&["man"]).stdout).unwrap();
    assert!(
        man.starts_with(".ie") || man.contains(".TH mxwatch"),
        "{}",
        &man[..200.min(man.len())]
    );
    for needle in [
        "MXWATCH READ",
        "MXWATCH LIVE",
        "MXWATCH REPORT",
        "in\\-order",
        "stats\\-interval",
        "Examples:",
    ] {
        assert!(man.contains(needle), "man page lacks {needle}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let out = mxwatch(&["completions", shell]);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        for flag in ["in-order", "stats-interval", "local-domain"] {
            assert!(text.contains(flag), "{shell} completions lack --{flag}");
        }
    }
    let bad = mxwatch(&["completions", "tcsh"]);
    assert!(!bad.status.success());
}
