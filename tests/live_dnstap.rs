//! `mxwatch live --dnstap unix:PATH` against a real BIND 9 (#14): BIND in a
//! namespace the test creates sends dnstap (`dnstap { client; };
//! dnstap-output unix`) while dig sends known queries; the counts are exact.
//! mxwatch is stopped and restarted while BIND keeps answering; BIND
//! reconnects to the new mxwatch and nothing hangs. Needs root (SKIPPED
//! otherwise) and named (scripts/deps).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Lab, Mxwatch, capture, dataset, read_lines, require_tools, u};

const CLIENT: &str = "10.77.0.2";
const PROBE: &str = "10.77.0.3";

fn start_named(lab: &mut Lab, sock: &Path) {
    require_tools(&["named", "dig"]);
    let dir = lab.path("named");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("test.db"),
        "$TTL 20\n@ SOA ns.test. h.test. 1 60 60 600 10\n@ NS ns.test.\nns A 10.77.0.1\n\
         * A 192.0.2.1\n* MX 10 mx.test.\n* TXT \"x\"\n* AAAA 2001:db8::1\n",
    )
    .unwrap();
    let d = dir.display();
    std::fs::write(
        dir.join("named.conf"),
        format!(
            "options {{ directory \"{d}\"; pid-file \"{d}/named.pid\"; session-keyfile \"{d}/s.key\";\n\
             listen-on {{ 10.77.0.1; }}; listen-on-v6 {{ none; }}; notify no; dnssec-validation no;\n\
             recursion yes; allow-recursion {{ any; }};\n\
             dnstap {{ client; }}; dnstap-output unix \"{}\"; fstrm-set-reopen-interval 1; }};\n\
             controls {{ }};\nzone \"test\" {{ type primary; file \"{d}/test.db\"; }};\n",
            sock.display()
        ),
    )
    .unwrap();
    let conf = dir.join("named.conf");
    let log = lab.path("named.log");
    lab.spawn_in_srv(&["named", "-g", "-c", conf.to_str().unwrap()], &log);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !dig(lab, PROBE, &["ready.test", "A"]) {
        assert!(
            Instant::now() < deadline,
            "named did not answer: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn dig(lab: &Lab, from: &str, q: &[&str]) -> bool {
    let mut a = vec![
        "dig",
        "@10.77.0.1",
        "-b",
        from,
        "+tries=1",
        "+time=2",
        "+short",
    ];
    a.extend_from_slice(q);
    let out = lab.run_in_cli(&a);
    out.status.success() && !out.stdout.is_empty()
}

/// Events received over the socket so far, from the last capture_stats line.
fn events_seen(out: &Path) -> u64 {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .rfind(|l| dataset(l) == "mxwatch.capture_stats")
        .map_or(0, |l| {
            capture(&l)["inputs"]
                .as_array()
                .map_or(0, |a| a.iter().map(|i| u(&i["events"])).sum())
        })
}

fn start_mxwatch(lab: &Lab, sock: &Path, out: &Path) -> Mxwatch {
    let spec = format!("unix:{}", sock.display());
    let mut mx = lab.start_mxwatch(
        out,
        &[
            "--dnstap",
            &spec,
            "--allow-root",
            "--stats",
            "--bin",
            "1",
            "--stats-interval",
            "0.2",
        ],
    );
    mx.wait_stats_lines(1, Duration::from_secs(10));
    // BIND reconnects within its reopen interval (1 s here): probe until
    // a probe's messages arrive.
    let deadline = Instant::now() + Duration::from_secs(20);
    while events_seen(out) == 0 {
        assert!(Instant::now() < deadline, "BIND did not connect to mxwatch");
        assert!(
            dig(lab, PROBE, &["probe.test", "A"]),
            "BIND stopped answering"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    mx
}

/// Waits until `n` more events than `before` arrived.
fn wait_events(out: &Path, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while events_seen(out) < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} dnstap events arrived",
            events_seen(out)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn counts(out: &Path, client: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in read_lines(&[out.to_owned()]) {
        if dataset(&l) != "mxwatch.client_stats" || l["source"]["ip"] != client {
            continue;
        }
        let dns = &l["mxwatch"]["dns"];
        for (q, n) in dns["qtype"].as_object().unwrap() {
            *m.entry(q.clone()).or_default() += u(n);
        }
        *m.entry("responses".into()).or_default() += u(&dns["responses"]);
        *m.entry("unanswered".into()).or_default() += u(&dns["unanswered"]);
    }
    m.retain(|_, n| *n > 0);
    m
}

fn send(lab: &Lab, qtype: &str, n: usize, tag: &str) {
    let lines: Vec<String> = (0..n)
        .map(|i| format!("@10.77.0.1 -b {CLIENT} {tag}{i}.test {qtype}"))
        .collect();
    lab.dig_batch(&[], &lines);
}

#[test]
fn live_dnstap_from_bind_counts_exactly_and_survives_a_restart() {
    let Some(mut lab) = Lab::new(1) else { return };
    assert!(
        lab.run_in_cli(&["ip", "addr", "add", &format!("{PROBE}/24"), "dev", "c0"])
            .status
            .success()
    );
    let sock = lab.path("dnstap.sock");
    let out1 = lab.path("out1.jsonl");
    // BIND logs client messages (CLIENT_QUERY/RESPONSE) for recursive
    // queries (dig sets RD) when recursion is on; with nobody listening yet
    // it answers anyway and retries the socket every second.
    start_named(&mut lab, &sock);
    let t0 = Instant::now();
    let mut mx = start_mxwatch(&lab, &sock, &out1);
    let before = events_seen(&out1);
    send(&lab, "A", 20, "a");
    send(&lab, "MX", 10, "m");
    send(&lab, "TXT", 5, "t");
    wait_events(&out1, before + 2 * 35);
    let (status, stderr, took) = mx.stop(Duration::from_secs(10));
    assert!(status.success(), "{stderr}");
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    let want: BTreeMap<String, u64> = [("A", 20), ("MX", 10), ("TXT", 5), ("responses", 35)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(counts(&out1, CLIENT), want);

    // mxwatch is gone: BIND keeps answering, promptly.
    for i in 0..5 {
        let t = Instant::now();
        assert!(
            dig(&lab, CLIENT, &[&format!("down{i}.test"), "A"]),
            "BIND stopped answering"
        );
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "a query took {:?}",
            t.elapsed()
        );
    }

    // A new mxwatch on the same path: BIND reconnects; only what it sends now counts.
    let out2 = lab.path("out2.jsonl");
    let mut mx = start_mxwatch(&lab, &sock, &out2);
    let before = events_seen(&out2);
    send(&lab, "AAAA", 7, "six");
    wait_events(&out2, before + 14);
    let (status, stderr, _) = mx.stop(Duration::from_secs(10));
    assert!(status.success(), "{stderr}");
    let want: BTreeMap<String, u64> = [("AAAA", 7), ("responses", 7)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(counts(&out2, CLIENT), want);
    let fin = read_lines(std::slice::from_ref(&out2));
    let last = fin
        .iter()
        .rev()
        .find(|l| dataset(l) == "mxwatch.capture_stats")
        .unwrap();
    let inputs = capture(last)["inputs"].as_array().unwrap();
    assert!(inputs.iter().all(|i| u(&i["dropped"]) == 0), "{last}");
    assert!(!sock.exists(), "the socket file is removed at exit");
    eprintln!("live dnstap test: {:?}", t0.elapsed());
}

/// A Frame Streams sender as a DNS server is one: READY, wait for ACCEPT,
/// START, the frames, STOP, wait for FINISH.
fn send_file_over_socket(sock: &Path, frames: &[Vec<u8>]) {
    use mxwatch::input::framestream::{self, ControlKind, DNSTAP_CONTENT_TYPE, Frame, Reader};
    use std::io::Write;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = loop {
        match std::os::unix::net::UnixStream::connect(sock) {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "connect {}: {e}", sock.display());
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&framestream::control_frame(
        ControlKind::Ready,
        Some(DNSTAP_CONTENT_TYPE),
    ))
    .unwrap();
    let mut r = Reader::new(s.try_clone().unwrap());
    match r.next_frame().unwrap() {
        Some(Frame::Control(c)) => assert_eq!(c.kind, ControlKind::Accept),
        f => panic!("expected ACCEPT, got {f:?}"),
    }
    s.write_all(&framestream::control_frame(
        ControlKind::Start,
        Some(DNSTAP_CONTENT_TYPE),
    ))
    .unwrap();
    for f in frames {
        s.write_all(&framestream::data_frame(f)).unwrap();
    }
    s.write_all(&framestream::control_frame(ControlKind::Stop, None))
        .unwrap();
    match r.next_frame().unwrap() {
        Some(Frame::Control(c)) => assert_eq!(c.kind, ControlKind::Finish),
        f => panic!("expected FINISH, got {f:?}"),
    }
}

fn totals(lines: &[Value]) -> BTreeMap<(String, String), u64> {
    let mut m = BTreeMap::new();
    for l in lines
        .iter()
        .filter(|l| dataset(l) == "mxwatch.client_stats")
    {
        let ip = l["source"]["ip"].as_str().unwrap_or("folded").to_owned();
        let dns = &l["mxwatch"]["dns"];
        for (q, n) in dns["qtype"].as_object().unwrap() {
            *m.entry((ip.clone(), q.clone())).or_default() += u(n);
        }
        *m.entry((ip.clone(), "responses".into())).or_default() += u(&dns["responses"]);
    }
    m.retain(|_, n| *n > 0);
    m
}

/// The committed dnstap file, sent by two "servers" at once over the socket
/// (the handshake of a bidirectional sender): live counts twice what `read`
/// counts on the file, per client, qtype and responses. No root needed.
#[test]
fn live_dnstap_two_senders_count_what_read_counts_on_the_file() {
    use mxwatch::input::framestream::{Frame, Reader};
    let file =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pcaps/lab/inputs/relay.dnstap");
    let bytes = std::fs::read(&file).unwrap();
    let mut r = Reader::new(&bytes[..]);
    let mut frames = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        if let Frame::Data(d) = f {
            frames.push(d.to_vec());
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (sock, out) = (dir.path().join("s.sock"), dir.path().join("out.jsonl"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mxwatch"))
        .args([
            "live",
            "--dnstap",
            &format!("unix:{}", sock.display()),
            "--allow-root",
            "--stats",
            "--top",
            "10000",
        ])
        .args(["--stats-interval", "0.2", "-o", out.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| send_file_over_socket(&sock, &frames));
        }
    });
    wait_events(&out, 2 * frames.len() as u64);
    // SAFETY: a signal to our own child, by PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let live = totals(&read_lines(std::slice::from_ref(&out)));
    let file_out = std::process::Command::new(env!("CARGO_BIN_EXE_mxwatch"))
        .args(["read", "--stats", "--top", "10000", file.to_str().unwrap()])
        .output()
        .unwrap();
    let file_lines: Vec<Value> = String::from_utf8(file_out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want: BTreeMap<_, _> = totals(&file_lines)
        .into_iter()
        .map(|(k, v)| (k, 2 * v))
        .collect();
    assert_eq!(live, want);
    let last = read_lines(&[out])
        .into_iter()
        .rev()
        .find(|l| dataset(l) == "mxwatch.capture_stats")
        .unwrap();
    let inputs = capture(&last)["inputs"].as_array().unwrap().clone();
    assert_eq!(inputs.len(), 2, "{last}");
    assert!(
        inputs
            .iter()
            .all(|i| u(&i["events"]) == frames.len() as u64 && u(&i["dropped"]) == 0),
        "{last}"
    );
}
