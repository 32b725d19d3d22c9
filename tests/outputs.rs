//! Outputs to real receivers started by the test on loopback (issue 15):
//! rsyslog over UDP, TCP (octet counting) and TLS (a CA and certificate made
//! with openssl here); a TCP receiver that accepts and never reads; the
//! Prometheus /metrics endpoint checked by promtool and equal to
//! capture_stats. Each test fails with a message naming a missing tool
//! (scripts/deps installs rsyslog, rsyslog-gnutls, prometheus, openssl).

mod common;

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lines_of;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mxwatch");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tool(path: &str) -> String {
    assert!(
        Path::new(path).exists(),
        "this test needs {path} (scripts/deps installs it)"
    );
    path.to_owned()
}

/// A free loopback port (TCP and UDP both free, good enough for a test).
fn free_port() -> u16 {
    loop {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// Kills a child by PID when dropped (also on a failed assertion).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lab_args() -> Vec<String> {
    let lab = root().join("pcaps/lab");
    vec![
        "read".into(),
        "--no-progress".into(),
        "--config".into(),
        root()
            .join("scripts/lab/mxwatch.toml")
            .display()
            .to_string(),
        "--merge".into(),
        lab.join("relay-dns.pcap").display().to_string(),
        lab.join("relay-smtp.pcap").display().to_string(),
        "--sensor-name".into(),
        "sensor-1".into(),
    ]
}

fn run(args: &[String]) -> std::process::Output {
    let out = Command::new(BIN).args(args).output().expect("run mxwatch");
    assert!(
        out.status.success(),
        "mxwatch {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn dataset(line: &str) -> String {
    let v: Value = serde_json::from_str(line).unwrap();
    v["event"]["dataset"].as_str().unwrap().to_owned()
}

/// An RFC 5424 message split into its parts (RFC 5424 section 6).
#[derive(Debug)]
struct Syslog5424 {
    pri: u32,
    hostname: String,
    app: String,
    msgid: String,
    sd: String,
    msg: String,
}

fn parse_5424(m: &str) -> Syslog5424 {
    let rest = m.strip_prefix('<').unwrap_or_else(|| panic!("no PRI: {m}"));
    let (pri, rest) = rest.split_once('>').unwrap();
    let rest = rest
        .strip_prefix("1 ")
        .unwrap_or_else(|| panic!("not version 1: {m}"));
    let mut it = rest.splitn(6, ' ');
    let ts = it.next().unwrap();
    assert!(ts.ends_with('Z') && ts.contains('T'), "timestamp {ts}");
    let hostname = it.next().unwrap().to_owned();
    let app = it.next().unwrap().to_owned();
    let procid = it.next().unwrap();
    assert!(procid.parse::<u32>().is_ok(), "procid {procid}");
    let msgid = it.next().unwrap().to_owned();
    let rest = it.next().unwrap();
    let (sd, msg) = if let Some(r) = rest.strip_prefix("- ") {
        ("-".to_owned(), r.to_owned())
    } else {
        let end = rest
            .find("] ")
            .unwrap_or_else(|| panic!("structured data: {rest}"));
        (rest[..=end].to_owned(), rest[end + 2..].to_owned())
    };
    Syslog5424 {
        pri: pri.parse().unwrap(),
        hostname,
        app,
        msgid,
        sd,
        msg,
    }
}

/// A CA and a certificate for 127.0.0.1 / localhost, made with openssl.
fn make_certs(dir: &Path) {
    let openssl = tool("/usr/bin/openssl");
    let sh = |args: &[&str]| {
        let out = Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=mxwatch test CA",
    ]);
    sh(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    sh(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

/// rsyslog on three loopback ports, each input writing the raw messages it
/// received to its own file.
fn start_rsyslog(dir: &Path, udp: u16, tcp: u16, tls: u16) -> Proc {
    let rsyslogd = tool("/usr/sbin/rsyslogd");
    let d = dir.display();
    let conf = format!(
        r#"global(workDirectory="{d}"
       maxMessageSize="64k"
       DefaultNetstreamDriverCAFile="{d}/ca.pem"
       DefaultNetstreamDriverCertFile="{d}/server.pem"
       DefaultNetstreamDriverKeyFile="{d}/server.key")
module(load="imudp")
module(load="imtcp" maxSessions="20")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="udp") {{ action(type="omfile" file="{d}/udp.log" template="raw") }}
ruleset(name="tcp") {{ action(type="omfile" file="{d}/tcp.log" template="raw") }}
ruleset(name="tls") {{ action(type="omfile" file="{d}/tls.log" template="raw") }}
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="{tls}" ruleset="tls"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
"#
    );
    std::fs::write(dir.join("rsyslog.conf"), conf).unwrap();
    let child = Command::new(rsyslogd)
        .args(["-n", "-f"])
        .arg(dir.join("rsyslog.conf"))
        .arg("-i")
        .arg(dir.join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rsyslogd");
    let p = Proc(child);
    // Ready when the TCP ports accept.
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", tls)).is_err()
        || std::net::TcpStream::connect(("127.0.0.1", tcp)).is_err()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "rsyslogd did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    p
}

fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let t0 = Instant::now();
    loop {
        let l = lines_of(path);
        if l.len() >= n || t0.elapsed() > Duration::from_secs(15) {
            return l;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The lab's relay capture read once to a file and, in the same run, to
/// rsyslog over UDP (alerts and capture_stats), TCP and TLS (everything):
/// every message is RFC 5424 with our header, and the JSON bodies equal the
/// file's lines, in order.
#[test]
fn rsyslog_receives_rfc5424_over_udp_tcp_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let (udp, tcp, tls) = (free_port(), free_port(), free_port());
    let _rsyslog = start_rsyslog(dir.path(), udp, tcp, tls);
    let file = dir.path().join("out.jsonl");
    let ca = dir.path().join("ca.pem");
    let mut args = lab_args();
    args.extend([
        "--stats".into(),
        "-o".into(),
        file.display().to_string(),
        "-o".into(),
        format!("syslog+udp://127.0.0.1:{udp}?datasets=detection,capture_stats"),
        "-o".into(),
        format!("syslog+tcp://127.0.0.1:{tcp}"),
        "-o".into(),
        format!("syslog+tls://localhost:{tls}?ca={}", ca.display()),
    ]);
    let t0 = Instant::now();
    run(&args);
    eprintln!("read to file + 3 syslog outputs: {:?}", t0.elapsed());
    let all = lines_of(&file);
    let alerts_and_health: Vec<String> = all
        .iter()
        .filter(|l| dataset(l) != "mxwatch.client_stats")
        .cloned()
        .collect();
    assert!(
        all.iter()
            .filter(|l| dataset(l) == "mxwatch.detection")
            .count()
            >= 3
    );
    assert!(all.iter().any(|l| dataset(l) == "mxwatch.client_stats"));
    let last: Value = serde_json::from_str(all.last().unwrap()).unwrap();
    for (proto, expected) in [("udp", &alerts_and_health), ("tcp", &all), ("tls", &all)] {
        let got = wait_lines(&dir.path().join(format!("{proto}.log")), expected.len());
        let parsed: Vec<Syslog5424> = got.iter().map(|m| parse_5424(m)).collect();
        let bodies: Vec<&str> = parsed.iter().map(|p| p.msg.as_str()).collect();
        // The final capture_stats line goes out with the numbers before it:
        // every line but the last is byte-identical; the last differs only
        // in `outputs` (sent counts move while it is written).
        assert_eq!(bodies.len(), expected.len(), "{proto}: message count");
        for (i, (b, e)) in bodies.iter().zip(expected.iter()).enumerate() {
            assert_eq!(b, e, "{proto}: line {i} differs");
        }
        for (p, e) in parsed.iter().zip(expected.iter()) {
            let v: Value = serde_json::from_str(e).unwrap();
            assert_eq!(p.hostname, "sensor-1");
            assert_eq!(p.app, "mxwatch");
            assert_eq!(p.msgid, v["event"]["dataset"].as_str().unwrap());
            assert_eq!(p.pri / 8, 16, "facility local0");
            if let Some(rule) = v["rule"]["name"].as_str() {
                let ip = v["source"]["ip"].as_str().unwrap();
                assert!(
                    p.sd.starts_with("[mxwatch@32473 ")
                        && p.sd.contains(&format!("rule=\"{rule}\""))
                        && p.sd.contains(&format!("client=\"{ip}\"")),
                    "{}",
                    p.sd
                );
                assert!(p.pri % 8 <= 5, "alert severity {}", p.pri % 8);
            } else {
                assert_eq!(p.pri % 8, 6, "metrics are info");
            }
        }
    }
    // The outputs' counters in the final capture_stats line of the file.
    let outs = &last["mxwatch"]["outputs"];
    for o in outs.as_object().unwrap().values() {
        assert_eq!(o["dropped"], 0, "{outs}");
    }
}

/// A TCP receiver that accepts and never reads: `read` is not slowed (it
/// takes about as long as with the file alone), the file gets every line,
/// drops are counted on that output only. The lines (about 18 MB: a
/// generated capture of 5,000 clients, every client's counters every 0.1 s)
/// are far more than the kernel's loopback buffers absorb.
#[test]
fn a_receiver_that_never_reads_costs_counted_drops_not_time() {
    let dir = tempfile::tempdir().unwrap();
    // A small receive buffer (set before listen, so the window stays small):
    // the sender's writes block after a few tens of kB.
    let listener = unsafe {
        use std::os::fd::FromRawFd;
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let size: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        );
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as u16;
        addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        assert_eq!(
            libc::bind(
                fd,
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32
            ),
            0
        );
        assert_eq!(libc::listen(fd, 16), 0);
        TcpListener::from_raw_fd(fd)
    };
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        // Accept every connection and hold it open, unread.
        let mut conns = Vec::new();
        for c in listener.incoming().take(64) {
            conns.push(c);
        }
    });
    let plain = dir.path().join("plain.jsonl");
    let teed = dir.path().join("teed.jsonl");
    let capture = dir.path().join("many-clients.pcap");
    let st = Command::new(root().join("scripts/gen-bench-pcap"))
        .arg(&capture)
        .args(["--packets", "60000", "--clients", "5000", "--qps", "4000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let base: Vec<String> = vec![
        "read".into(),
        "--no-progress".into(),
        "--stats".into(),
        "--top".into(),
        "100000".into(),
        "--bin".into(),
        "0.1".into(),
        capture.display().to_string(),
    ];
    let mut a1 = base.clone();
    a1.extend(["-o".into(), plain.display().to_string()]);
    let t0 = Instant::now();
    run(&a1);
    let alone = t0.elapsed();
    let mut a2 = base.clone();
    a2.extend([
        "-o".into(),
        teed.display().to_string(),
        "-o".into(),
        format!("syslog+tcp://127.0.0.1:{port}?queue=100&drain_secs=0.5"),
        "-o".into(),
        format!(
            "unix://{}/absent.sock?datasets=detection&drain_secs=0.5",
            dir.path().display()
        ),
    ]);
    let t0 = Instant::now();
    let out = run(&a2);
    let with_stuck = t0.elapsed();
    eprintln!("file only: {alone:?}; with a receiver that never reads: {with_stuck:?}");
    let (p, t) = (lines_of(&plain), lines_of(&teed));
    assert_eq!(p.len(), t.len());
    // Same lines but for the `outputs` object of capture_stats.
    for (a, b) in p.iter().zip(&t) {
        let (mut va, mut vb): (Value, Value) = (
            serde_json::from_str(a).unwrap(),
            serde_json::from_str(b).unwrap(),
        );
        if let Some(m) = vb["mxwatch"].as_object_mut() {
            m.remove("outputs");
        }
        if let Some(m) = va["mxwatch"].as_object_mut() {
            m.remove("outputs");
        }
        assert_eq!(va, vb);
    }
    let last: Value = serde_json::from_str(t.last().unwrap()).unwrap();
    let outs = &last["mxwatch"]["outputs"];
    let file = &outs[teed.display().to_string().as_str()];
    eprintln!("outputs at the final line: {outs}");
    assert_eq!(file["dropped"], 0);
    assert_eq!(file["lines"].as_u64().unwrap() + 1, t.len() as u64);
    // Drops on the stuck output only, summed up after the final drain.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warns: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("lines dropped"))
        .collect();
    eprintln!("{warns:?}");
    assert!(
        warns
            .iter()
            .any(|w| w.contains(&format!("syslog+tcp://127.0.0.1:{port}"))),
        "{stderr}"
    );
    assert!(!warns.iter().any(|w| w.contains("jsonl")), "{stderr}");
    // The never-reading receiver costs at most the drain deadline and one
    // lossless wait (read waits a little for a connected receiver).
    assert!(
        with_stuck < alone + Duration::from_secs(3),
        "file only {alone:?}, with a stuck receiver {with_stuck:?}"
    );
    drop(held);
}

fn scrape(port: u16) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    let (head, body) = body.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200"),
        "{head}"
    );
    body.to_owned()
}

/// `name{labels} value` lines of an exposition.
fn samples(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

/// Every numeric leaf of capture_stats' `mxwatch.capture` as the metric it
/// must be.
fn expected_samples(capture: &Value, source: &str) -> Vec<(String, f64)> {
    fn walk(v: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, f64)>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if k.ends_with("_delta") {
                        continue;
                    }
                    path.push(k.clone());
                    walk(v, path, out);
                    path.pop();
                }
            }
            Value::Number(n) => out.push((path.clone(), n.as_f64().unwrap())),
            _ => {}
        }
    }
    let mut leaves = Vec::new();
    walk(capture, &mut Vec::new(), &mut leaves);
    leaves
        .into_iter()
        .map(|(p, v)| {
            let gauge = p.last().unwrap() == "clients_tracked";
            let name = format!(
                "mxwatch_{}{}",
                p.join("_"),
                if gauge { "" } else { "_total" }
            );
            (format!("{name}{{source=\"{source}\"}}"), v)
        })
        .collect()
}

/// `live` on lo with /metrics: promtool accepts the exposition, a real
/// Prometheus scrapes it, and every number equals the last capture_stats line.
#[test]
fn metrics_equal_capture_stats_and_pass_promtool_and_prometheus() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root (live capture on lo)");
        return;
    }
    let promtool = tool("/usr/bin/promtool");
    let prometheus = tool("/usr/bin/prometheus");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let mport = free_port();
    let dns_port = free_port();
    let mx = Proc(
        Command::new(BIN)
            .args([
                "live",
                "-i",
                "lo",
                "--allow-root",
                "--stats-interval",
                "0.3",
                "--bin",
                "1",
            ])
            .args(["--filter", &format!("udp port {dns_port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{mport}")])
            .arg("-o")
            .arg(&out)
            .arg("-o")
            .arg(format!(
                "unix://{}/absent.sock?datasets=detection",
                dir.path().display()
            ))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", mport)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "no /metrics");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    // Traffic the decoder counts (DNS needs port 53; these are "other ports").
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..200 {
        s.send_to(
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x00\x00\x01\x00\x01",
            ("127.0.0.1", dns_port),
        )
        .unwrap();
    }
    // Prometheus scrapes it.
    let pport = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mxwatch\n    static_configs:\n      - targets: ['127.0.0.1:{mport}']\n"
        ),
    )
    .unwrap();
    let _prom = Proc(
        Command::new(&prometheus)
            .arg(format!(
                "--config.file={}/prometheus.yml",
                dir.path().display()
            ))
            .arg(format!("--storage.tsdb.path={}/tsdb", dir.path().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_secs(1));
    // Equal to the last capture_stats line (no traffic now: retry if a
    // line is written between the scrape and the read).
    let mut ok = false;
    for _ in 0..20 {
        let text = scrape(mport);
        let got = samples(&text);
        let last = lines_of(&out)
            .into_iter()
            .rev()
            .find(|l| dataset(l) == "mxwatch.capture_stats")
            .unwrap();
        let v: Value = serde_json::from_str(&last).unwrap();
        let expected = expected_samples(&v["mxwatch"]["capture"], "lo");
        assert!(expected.len() > 30);
        let packets = v["mxwatch"]["capture"]["packets_read"].as_u64().unwrap();
        let same = expected.iter().all(|(k, x)| got.get(k) == Some(x));
        if same && packets >= 200 {
            // promtool agrees the exposition is well-formed.
            let f = dir.path().join("metrics.txt");
            std::fs::write(&f, &text).unwrap();
            let check = Command::new(&promtool)
                .args(["check", "metrics"])
                .stdin(std::fs::File::open(&f).unwrap())
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "promtool: {}{}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            );
            assert!(
                got.keys()
                    .any(|k| k.starts_with("mxwatch_output_dropped_total{output=\"unix://")),
                "{text}"
            );
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(ok, "metrics never equalled the last capture_stats line");
    // A real Prometheus scraped the same number.
    let t0 = Instant::now();
    loop {
        let mut s = match std::net::TcpStream::connect(("127.0.0.1", pport)) {
            Ok(s) => s,
            Err(_) => {
                assert!(
                    t0.elapsed() < Duration::from_secs(20),
                    "prometheus did not start"
                );
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        use std::io::Write;
        write!(
            s,
            "GET /api/v1/query?query=mxwatch_packets_read_total HTTP/1.0\r\nHost: x\r\n\r\n"
        )
        .unwrap();
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        if let Some((_, json)) = body.split_once("\r\n\r\n")
            && let Ok(v) = serde_json::from_str::<Value>(json)
            && let Some(r) = v["data"]["result"].as_array()
            && let Some(first) = r.first()
        {
            let n: f64 = first["value"][1].as_str().unwrap().parse().unwrap();
            assert!(n >= 200.0, "prometheus saw {n}");
            eprintln!("prometheus scraped mxwatch_packets_read_total = {n}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "prometheus never scraped: {body}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(mx);
}
