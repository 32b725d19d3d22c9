//! A Kafka-protocol broker for the tests: tansu, in memory, built once into
//! a cache by `scripts/deps-broker` (which `scripts/test` runs first).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Partitions of every topic the tests create.
pub const PARTITIONS: i32 = 4;

pub fn tansu() -> PathBuf {
    let out = Command::new(super::repo().join("scripts/deps-broker"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Kafka test needs tansu: run scripts/deps-broker (about 16 min once, cached)"
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tansu broker in memory on `port`, with the topic created.
pub fn broker(tansu: &Path, port: u16, topic: &str) -> Proc {
    let url = format!("tcp://127.0.0.1:{port}");
    let p = Proc(
        Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu"),
    );
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "tansu did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    create_topic(tansu, port, topic);
    p
}

/// Creates `topic` with [`PARTITIONS`] partitions on the broker at `port`.
pub fn create_topic(tansu: &Path, port: u16, topic: &str) {
    let url = format!("tcp://127.0.0.1:{port}");
    let out = Command::new(tansu)
        .args(["topic", "create", topic, "--broker", &url, "--partitions"])
        .arg(PARTITIONS.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "topic create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
