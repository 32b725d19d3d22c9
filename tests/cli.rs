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

/// `--threads` out of 1..=64, or with --dnstap: one line, refused before
/// any interface is opened.
#[test]
fn live_threads_out_of_range_is_one_line() {
    for n in ["0", "65"] {
        let out = mxwatch(&["live", "-i", "lo", "--threads", n]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(
            err.trim(),
            format!("mxwatch: --threads must be between 1 and 64, not {n}")
        );
    }
    let out = mxwatch(&[
        "live",
        "--dnstap",
        "unix:/nonexistent/x.sock",
        "--threads",
        "2",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
    let help = String::from_utf8(mxwatch(&["live", "--help"]).stdout).unwrap();
    assert!(
        help.contains("--threads <N>") && help.contains("AF_PACKET fanout"),
        "{help}"
    );
}
