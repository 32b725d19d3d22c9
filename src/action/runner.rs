//! Runs one command: argv (no shell), extra environment, the alert line on
//! stdin, stdout and stderr kept up to a bound, and a timeout after which the
//! command's whole process group is killed (SIGKILL). Blocking: only the
//! action thread calls it.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// ok | failed | timeout
    pub outcome: &'static str,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration: Duration,
    pub stdout: String,
    pub stderr: String,
    /// The command could not be started.
    pub error: Option<String>,
}

/// How often a running command is polled for its exit.
const POLL: Duration = Duration::from_millis(5);

pub fn run(
    argv: &[String],
    env: &[(String, String)],
    stdin: &[u8],
    timeout: Duration,
    keep_bytes: usize,
) -> Outcome {
    let t0 = Instant::now();
    let failed = |error: String| Outcome {
        outcome: "failed",
        exit_code: None,
        signal: None,
        duration: t0.elapsed(),
        stdout: String::new(),
        stderr: String::new(),
        error: Some(error),
    };
    let Some((prog, args)) = argv.split_first() else {
        return failed("empty command".into());
    };
    let mut child = match Command::new(prog)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot run {prog}: {e}")),
    };
    let pgid = child.id() as i32;
    // stdin, stdout and stderr on threads of their own: a command that does
    // not read its input or writes much cannot block the wait below.
    let input = child.stdin.take().map(|mut w| {
        let data = stdin.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        })
    });
    let reader = |r: Option<Box<dyn Read + Send>>| {
        r.map(|mut r| {
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let room = keep_bytes.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
                String::from_utf8_lossy(&kept).into_owned()
            })
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let deadline = t0 + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                // SAFETY: kill(2) on the command's own process group.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
                break child.wait();
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => break Err(e),
        }
    };
    // The group is gone (or exited): the pipes close, the threads end. A
    // grandchild that left the group could hold them open: kill it too.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let join = |h: Option<std::thread::JoinHandle<String>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    if let Some(h) = input {
        let _ = h.join();
    }
    let (stdout, stderr) = (join(out), join(err));
    let duration = t0.elapsed();
    match status {
        Ok(s) => Outcome {
            outcome: if timed_out {
                "timeout"
            } else if s.success() {
                "ok"
            } else {
                "failed"
            },
            exit_code: s.code(),
            signal: s.signal(),
            duration,
            stdout,
            stderr,
            error: None,
        },
        Err(e) => Outcome {
            duration,
            stdout,
            stderr,
            ..failed(format!("waiting for {prog}: {e}"))
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn a_command_gets_its_stdin_and_environment() {
        let o = run(
            &sh("read line; echo \"$MXW_RULE $line\"; echo oops >&2"),
            &[("MXW_RULE".into(), "spam_bot".into())],
            b"{\"alert\":1}\n",
            Duration::from_secs(5),
            512,
        );
        assert_eq!(o.outcome, "ok");
        assert_eq!(o.exit_code, Some(0));
        assert_eq!(o.stdout, "spam_bot {\"alert\":1}\n");
        assert_eq!(o.stderr, "oops\n");
    }

    #[test]
    fn timeout_kills_the_command_and_its_children() {
        let t0 = Instant::now();
        // A child that would outlive the shell, holding stdout open.
        let o = run(
            &sh("sleep 30 & sleep 30"),
            &[],
            b"",
            Duration::from_millis(200),
            512,
        );
        assert_eq!(o.outcome, "timeout");
        assert_eq!(o.signal, Some(libc::SIGKILL));
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    }

    #[test]
    fn failures_are_reported_not_raised() {
        let o = run(&sh("exit 3"), &[], b"", Duration::from_secs(5), 512);
        assert_eq!((o.outcome, o.exit_code), ("failed", Some(3)));
        let o = run(
            &["/nonexistent/cmd".into()],
            &[],
            b"",
            Duration::from_secs(5),
            512,
        );
        assert_eq!(o.outcome, "failed");
        assert!(o.error.unwrap().contains("/nonexistent/cmd"));
        // Output beyond the bound is cut; a command that ignores stdin is fine.
        let big = vec![b'x'; 1 << 20];
        let o = run(
            &sh("yes | head -c 100000"),
            &[],
            &big,
            Duration::from_secs(5),
            16,
        );
        assert_eq!((o.outcome, o.stdout.len()), ("ok", 16));
    }
}
