//! The shipped actions (dist/actions/, issue #17): each script against stub
//! `postmap`, `postfix` and `nft` that record their arguments (the relay
//! brake against the real `postconf`), and each
//! config snippet appended to a config passes `mxwatch config --check`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A directory of stubs: each appends "NAME ARGS" to `calls`.
fn stubs(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["postmap", "postfix", "nft"] {
        let p = bin.join(name);
        let body = format!(
            "#!/bin/sh\necho \"{name} $*\" >> {}\n[ \"$1\" = list ] && echo '' ; exit 0\n",
            dir.join("calls").display()
        );
        std::fs::write(&p, body).unwrap();
        Command::new("chmod").arg("+x").arg(&p).status().unwrap();
    }
    bin
}

fn run(script: &str, op: &str, dir: &Path, targets: &str, env: &[(&str, &str)]) -> String {
    let bin = stubs(dir);
    let out = Command::new(repo().join("dist/actions").join(script))
        .arg(op)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("MXW_TARGETS", targets)
        .env("MXW_RULE", "spam_relay")
        .env("MXW_ALERT_ID", "abc-1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} {op}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(dir.join("calls")).unwrap_or_default()
}

#[test]
fn postfix_access_adds_and_removes_map_entries_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("mxwatch_access");
    let m = map.to_str().unwrap();
    let env = [("POSTFIX_ACCESS_MAP", m), ("MAIL_CONFIG", "/etc/pf")];
    let calls = run(
        "postfix-access",
        "add",
        dir.path(),
        "10.53.10.1 10.53.10.2",
        &env,
    );
    run(
        "postfix-access",
        "add",
        dir.path(),
        "10.53.10.2 10.53.10.3",
        &env,
    );
    let text = std::fs::read_to_string(&map).unwrap();
    let keys: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(keys, ["10.53.10.1", "10.53.10.2", "10.53.10.3"]);
    assert!(text.starts_with("10.53.10.1 REJECT mxwatch spam_relay abc-1\n"));
    assert!(
        calls.contains(&format!("postmap -c /etc/pf hash:{m}")),
        "{calls}"
    );
    assert!(calls.contains("postfix -c /etc/pf reload"), "{calls}");
    run(
        "postfix-access",
        "del",
        dir.path(),
        "10.53.10.1 10.53.10.3",
        &env,
    );
    let text = std::fs::read_to_string(&map).unwrap();
    assert_eq!(text, "10.53.10.2 REJECT mxwatch spam_relay abc-1\n");
    // Something that is not an address is refused before anything is touched.
    let bin = stubs(dir.path());
    let st = Command::new(repo().join("dist/actions/postfix-access"))
        .arg("add")
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("MXW_TARGETS", "1.2.3.4;reboot")
        .env("POSTFIX_ACCESS_MAP", m)
        .status()
        .unwrap();
    assert!(!st.success());
}

/// The relay brake against Debian's real `postconf` on a config directory of
/// its own (stubs only for `postfix reload`, `postqueue` and `postsuper`,
/// which need a running Postfix: the lab runs that, LAB_ACTION=brake).
#[test]
fn postfix_relay_brake_closes_relaying_holds_remote_mail_and_restores() {
    assert!(
        Path::new("/usr/sbin/postconf").exists(),
        "needs Debian's postfix (scripts/deps)"
    );
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let before = "permit_mynetworks, reject_unauth_destination";
    std::fs::write(
        etc.join("main.cf"),
        format!("mydestination = sub.univ.test, localhost\nsmtpd_relay_restrictions = {before}\n"),
    )
    .unwrap();
    let bin = stubs(dir.path());
    let calls = dir.path().join("calls");
    // Two queued messages: one to a remote domain (held), one local (not).
    std::fs::write(
        bin.join("postqueue"),
        "#!/bin/sh\necho '{\"queue_id\":\"AAA1\",\"recipients\":[{\"address\":\"x@spam-target.example\"}]}'\n\
         echo '{\"queue_id\":\"BBB2\",\"recipients\":[{\"address\":\"user@sub.univ.test\"}]}'\n",
    )
    .unwrap();
    std::fs::write(
        bin.join("postsuper"),
        format!("#!/bin/sh\necho \"postsuper $*\" >> {}\n", calls.display()),
    )
    .unwrap();
    for n in ["postqueue", "postsuper"] {
        Command::new("chmod")
            .arg("+x")
            .arg(bin.join(n))
            .status()
            .unwrap();
    }
    let state = dir.path().join("state/brake");
    let brake = |op: &str| {
        let out = Command::new(repo().join("dist/actions/postfix-relay-brake"))
            .arg(op)
            .env("PATH", format!("{}:/usr/sbin:/usr/bin:/bin", bin.display()))
            .env("MAIL_CONFIG", &etc)
            .env("BRAKE_STATE", &state)
            .env("MXW_TARGETS", "10.53.0.25")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{op}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let relay = || {
        let out = Command::new("/usr/sbin/postconf")
            .args(["-c"])
            .arg(&etc)
            .args(["-h", "smtpd_relay_restrictions"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let said = brake("on");
    assert_eq!(
        relay(),
        "permit_sasl_authenticated, reject_unauth_destination"
    );
    assert!(said.contains("1 queued messages held"), "{said}");
    let c = std::fs::read_to_string(&calls).unwrap();
    assert!(c.contains("postsuper -c"), "{c}");
    assert!(
        c.contains("-h AAA1") && !c.contains("BBB2"),
        "only remote mail held: {c}"
    );
    assert!(c.contains("reload"), "{c}");
    // A second `on` keeps the original setting saved.
    brake("on");
    brake("off");
    assert_eq!(relay(), before);
    assert!(!state.exists());
    assert!(brake("off").contains("nothing saved"));
    assert_eq!(relay(), before);
}

#[test]
fn nft_actions_add_elements_with_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let calls = run("nft-set", "add", dir.path(), "203.0.113.5 2001:db8::7", &[]);
    assert!(
        calls.contains("nft add element inet mxwatch block4 { 203.0.113.5 timeout 1h }"),
        "{calls}"
    );
    assert!(
        calls.contains("nft add element inet mxwatch block6 { 2001:db8::7 timeout 1h }"),
        "{calls}"
    );
    assert!(calls.contains("ip saddr @block4 drop"), "{calls}");
    let dir = tempfile::tempdir().unwrap();
    let calls = run(
        "nft-spambot",
        "add",
        dir.path(),
        "10.53.2.66",
        &[("NFT_TIMEOUT", "2h")],
    );
    assert!(
        calls.contains("nft add element inet mxwatch spambot4 { 10.53.2.66 timeout 2h }"),
        "{calls}"
    );
    assert!(
        calls.contains("ip saddr @spambot4 tcp dport 25 reject with tcp reset"),
        "{calls}"
    );
    let calls = run("nft-spambot", "del", dir.path(), "10.53.2.66", &[]);
    assert!(
        calls.contains("nft delete element inet mxwatch spambot4 { 10.53.2.66 }"),
        "{calls}"
    );
}

#[test]
fn each_snippet_appended_to_a_config_checks() {
    let base = std::fs::read_to_string(repo().join("scripts/lab/mxwatch.toml")).unwrap();
    for name in [
        "postfix-access",
        "postfix-relay-brake",
        "nft-set",
        "nft-spambot",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let snippet =
            std::fs::read_to_string(repo().join(format!("dist/actions/{name}.toml"))).unwrap();
        assert!(
            snippet.contains("mode = \"log\""),
            "{name}: log mode by default"
        );
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, format!("{base}\n{snippet}")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_mxwatch"))
            .args(["config", "--check"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// End to end in `read`: the lab's relay with the Postfix snippet (log mode)
/// writes dry-run lines for the relaying sources, the follow-ups, and the undo.
#[test]
fn read_writes_dry_run_action_lines_for_the_lab_relay() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(repo().join("scripts/lab/mxwatch.toml")).unwrap();
    let snippet = std::fs::read_to_string(repo().join("dist/actions/postfix-access.toml")).unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("{base}\n{snippet}\n[actions]\nallowlist = [\"10.53.0.0/24\", \"10.53.1.0/24\", \"10.53.2.0/24\"]\n"),
    )
    .unwrap();
    let lab = repo().join("pcaps/lab");
    let out = Command::new(env!("CARGO_BIN_EXE_mxwatch"))
        .arg("read")
        .arg("--config")
        .arg(&cfg)
        .arg(lab.join("relay-dns.pcap"))
        .arg(lab.join("relay-smtp.pcap"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["event"]["dataset"] == "mxwatch.action")
        .collect();
    assert!(!lines.is_empty());
    let mut acted = Vec::new();
    for l in &lines {
        let a = &l["mxwatch"]["action"];
        assert_eq!(a["mode"], "log");
        assert!(
            a["outcome"] == "dry_run" || a["refusal"] == "allowlist",
            "{l}"
        );
        if a["trigger"] != "undo" {
            for t in a["targets"].as_array().unwrap() {
                let t = t.as_str().unwrap();
                assert!(t.starts_with("10.53.10."), "only relaying sources: {l}");
                acted.push(t.to_owned());
            }
        }
    }
    let undo = lines.last().unwrap();
    assert_eq!(undo["mxwatch"]["action"]["trigger"], "undo", "{undo}");
    let mut undone: Vec<String> = undo["mxwatch"]["action"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    acted.sort();
    undone.sort();
    assert_eq!(acted, undone);
    assert!(acted.len() >= 10, "{acted:?}");
}
