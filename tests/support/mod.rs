//! Network-namespace lab for the live tests: a server namespace and a client
//! namespace joined by veth pairs, a real dnsmasq, real dig, and
//! `mxwatch live` run inside the client namespace. Everything is torn down
//! by `Drop` (processes killed by PID, namespaces deleted), also when an
//! assertion fails.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Fails (not skips) when a tool the tests rely on is missing.
pub fn require_tools(tools: &[&str]) {
    for t in tools {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
            .unwrap_or(false)
            || Path::new("/usr/sbin").join(t).is_file()
            || Path::new("/sbin").join(t).is_file();
        assert!(
            found,
            "live tests need `{t}` (apt-get install libpcap-dev tshark tcpdump tcpreplay \
             dnsmasq-base bind9-dnsutils iproute2; see scripts/deps)"
        );
    }
}

fn sh(args: &[&str]) -> std::process::Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

fn must(args: &[&str]) {
    let out = sh(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Lab {
    pub srv: String,
    pub cli: String,
    pub dir: tempfile::TempDir,
    links: usize,
    children: Vec<Child>,
}

impl Lab {
    /// Two namespaces joined by `links` veth pairs: `v{k}` (10.77.k.1) in
    /// the server namespace, `c{k}` (10.77.k.2) in the client namespace.
    /// None (after a loud SKIPPED line) when not root or netns fails.
    pub fn new(links: usize) -> Option<Lab> {
        require_tools(&["ip"]);
        // SAFETY: no arguments, cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("\n*** SKIPPED: needs root + netns (not root) ***\n");
            return None;
        }
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let base = format!("mxw-live-{}-{n}", std::process::id());
        let (srv, cli) = (format!("{base}-s"), format!("{base}-c"));
        if !sh(&["ip", "netns", "add", &srv]).status.success() {
            eprintln!("\n*** SKIPPED: needs root + netns (ip netns add failed) ***\n");
            return None;
        }
        let lab = Lab {
            srv: srv.clone(),
            cli: cli.clone(),
            dir: tempfile::tempdir().expect("tempdir"),
            links,
            children: Vec::new(),
        };
        must(&["ip", "netns", "add", &cli]);
        for ns in [&srv, &cli] {
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        for k in 0..links {
            let (v, c) = (format!("v{k}"), format!("c{k}"));
            must(&[
                "ip", "link", "add", &v, "netns", &srv, "type", "veth", "peer", "name", &c,
                "netns", &cli,
            ]);
            must(&[
                "ip",
                "-n",
                &srv,
                "addr",
                "add",
                &format!("10.77.{k}.1/24"),
                "dev",
                &v,
            ]);
            must(&[
                "ip",
                "-n",
                &cli,
                "addr",
                "add",
                &format!("10.77.{k}.2/24"),
                "dev",
                &c,
            ]);
            must(&["ip", "-n", &srv, "link", "set", &v, "up"]);
            must(&["ip", "-n", &cli, "link", "set", &c, "up"]);
        }
        Some(lab)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// dnsmasq in the server namespace, answering A for *.test on every
    /// link's server address; returns once it answers.
    pub fn start_dnsmasq(&mut self) {
        require_tools(&["dnsmasq", "dig"]);
        let listen: Vec<String> = (0..self.links).map(|k| format!("10.77.{k}.1")).collect();
        let pid = self.path("dnsmasq.pid");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.srv, "dnsmasq", "--no-daemon"])
            .args([
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
            ])
            .args(["--user=root", "--address=/test/192.0.2.1"])
            .arg(format!("--listen-address={}", listen.join(",")))
            .arg(format!("--pid-file={}", pid.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        self.children.push(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = sh(&[
                "ip",
                "netns",
                "exec",
                &self.cli,
                "dig",
                "@10.77.0.1",
                "+tries=1",
                "+time=1",
                "+short",
                "ready.test",
                "A",
            ]);
            if String::from_utf8_lossy(&out.stdout).contains("192.0.2.1") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not answer within 10 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `mxwatch live` in the client namespace, output to `out`.
    pub fn start_mxwatch(&self, out: &Path, args: &[&str]) -> Mxwatch {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.cli,
                env!("CARGO_BIN_EXE_mxwatch"),
                "live",
            ])
            .args(args)
            .arg("-o")
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mxwatch");
        Mxwatch {
            child: Some(child),
            out: out.to_owned(),
        }
    }

    /// Runs dig in the client namespace, one query per line (each
    /// `@server -b client name TYPE`): as one batch (`dig -f`) when `opts`
    /// is empty, else one dig per line (dig 9.18 ignores `+tcp` in batch
    /// mode, on the line and on the command line).
    pub fn dig_batch(&self, opts: &[&str], lines: &[String]) {
        let base = [
            "ip", "netns", "exec", &self.cli, "dig", "+tries=1", "+time=2", "+short",
        ];
        let runs: Vec<Vec<String>> = if opts.is_empty() {
            let file = self.path(&format!("dig-{}.txt", NEXT.fetch_add(1, Ordering::SeqCst)));
            std::fs::write(&file, lines.join("\n") + "\n").expect("write dig batch");
            vec![vec!["-f".into(), file.display().to_string()]]
        } else {
            lines
                .iter()
                .map(|l| {
                    let mut a: Vec<String> = opts.iter().map(|o| o.to_string()).collect();
                    a.extend(l.split_whitespace().map(str::to_owned));
                    a
                })
                .collect()
        };
        for r in runs {
            let mut args: Vec<&str> = base.to_vec();
            args.extend(r.iter().map(String::as_str));
            let out = sh(&args);
            assert!(
                out.status.success(),
                "dig failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// A long-running process in the server namespace, killed on drop.
    pub fn spawn_in_srv(&mut self, args: &[&str], log: &Path) {
        let log = std::fs::File::create(log).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.srv])
            .args(args)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?}: {e}"));
        self.children.push(child);
    }

    pub fn run_in_cli(&self, args: &[&str]) -> std::process::Output {
        let mut full = vec!["ip", "netns", "exec", &self.cli];
        full.extend_from_slice(args);
        sh(&full)
    }

    pub fn run_in_srv(&self, args: &[&str]) -> std::process::Output {
        let mut full = vec!["ip", "netns", "exec", &self.srv];
        full.extend_from_slice(args);
        sh(&full)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.srv, &self.cli] {
            let _ = sh(&["ip", "netns", "del", ns]);
        }
    }
}

/// A running `mxwatch live`; killed on drop if still running.
pub struct Mxwatch {
    child: Option<Child>,
    pub out: PathBuf,
}

impl Mxwatch {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: a signal to our own child, by PID.
        let rc = unsafe { libc::kill(self.pid() as i32, sig) };
        assert_eq!(rc, 0, "kill({sig}) failed");
    }

    /// Waits until the output holds `n` capture_stats lines (the handles
    /// are open once the first is written).
    pub fn wait_stats_lines(&mut self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            // Raw text: a line may be half written right now.
            let have = std::fs::read_to_string(&self.out)
                .unwrap_or_default()
                .matches("\"mxwatch.capture_stats\"")
                .count();
            if have >= n {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let stderr = self.take_stderr();
                panic!("mxwatch exited early ({status}): {stderr}");
            }
            assert!(
                Instant::now() < deadline,
                "no {n} capture_stats lines within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then wait (at most `timeout`); returns status, stderr, time.
    pub fn stop(&mut self, timeout: Duration) -> (ExitStatus, String, Duration) {
        self.signal(libc::SIGTERM);
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let elapsed = t0.elapsed();
                let stderr = self.take_stderr();
                self.child = None;
                return (s, stderr, elapsed);
            }
            assert!(
                t0.elapsed() < timeout,
                "mxwatch did not exit within {timeout:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn take_stderr(&mut self) -> String {
        use std::io::Read;
        let mut s = String::new();
        if let Some(e) = self.child.as_mut().and_then(|c| c.stderr.as_mut()) {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Mxwatch {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Every line of the files, in order, each parsed as JSON (panics on a
/// line that does not parse: a torn or merged line is a failure).
pub fn read_lines(files: &[PathBuf]) -> Vec<Value> {
    let mut all = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for (i, l) in text.lines().enumerate() {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}:{}: not JSON ({e}): {l}", f.display(), i + 1));
            all.push(v);
        }
    }
    all
}

pub fn dataset(v: &Value) -> &str {
    v["event"]["dataset"].as_str().unwrap_or("")
}

pub fn capture(v: &Value) -> &Value {
    &v["mxwatch"]["capture"]
}

pub fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}
