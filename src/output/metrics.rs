//! Prometheus `/metrics` (`--metrics-listen ADDR`): the numbers of the
//! capture_stats lines, and alerts by rule, in the Prometheus text format.
//!
//! Every numeric field of the last capture_stats line of each source
//! (interface, or `files`) becomes one sample: `mxwatch.capture.X.Y` is
//! `mxwatch_X_Y_total{source="eth0"}` (gauges without `_total`:
//! `clients_tracked`; `*_delta` fields are left out, Prometheus takes its own
//! rates), and `mxwatch.outputs.NAME.F` is `mxwatch_output_F_total{output=
//! "NAME",type="syslog"}` (`queued` a gauge); with several capture threads
//! per interface (`live --threads N`), each entry of `mxwatch.capture.threads`
//! is `mxwatch_thread_X_Y_total{source="eth0",thread="K"}` (a family of its
//! own, so that summing a `mxwatch_libpcap_*` family never counts a packet
//! twice). So /metrics and capture_stats
//! can never disagree: they are the same values, updated when the line is
//! written (`--stats-interval` live, at the end of `read`). Alerts:
//! `mxwatch_alerts_total{rule,type}`, counted as lines are written.
//!
//! Why no client crate: the values are snapshots of counters owned by the
//! pipeline, not metrics this process increments, so a registry
//! (`prometheus-client`) would mean a second copy of every counter or a
//! custom collector larger than this file; the text format is small and the
//! test checks it with `promtool check metrics` and a real Prometheus
//! scrape. The HTTP side is `tiny_http` (synchronous, one thread, no async
//! runtime), the one file that talks to it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::schema::CaptureStatsLine;

/// A metric family: (gauge?, help, samples as (labels, value)).
type Family = (bool, String, Vec<(String, f64)>);

#[derive(Default)]
struct State {
    /// Last capture_stats line per source (`mxwatch` object).
    capture: BTreeMap<String, Value>,
    alerts: BTreeMap<(String, String), u64>,
}

#[derive(Default)]
pub struct Metrics {
    state: Mutex<State>,
}

/// Fields that are gauges (everything else numeric is a counter).
fn is_gauge(path: &[&str]) -> bool {
    matches!(path.last(), Some(&"clients_tracked") | Some(&"queued"))
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// Called with every capture_stats line as it is written.
    pub fn capture_stats(&self, line: &CaptureStatsLine<'_>) {
        let c = &line.mxwatch.capture;
        let source = c.interface.map_or_else(|| c.mode.to_owned(), str::to_owned);
        let source = if c.mode == "file" {
            "files".into()
        } else {
            source
        };
        if let Ok(v) = serde_json::to_value(&line.mxwatch) {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.capture.insert(source, v);
        }
    }

    /// Called with every alert line as it is written.
    pub fn alert(&self, rule: &str, kind: &str) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *st.alerts.entry((rule.into(), kind.into())).or_default() += 1;
    }

    /// The text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // family -> (gauge?, help, samples)
        let mut fams: BTreeMap<String, Family> = BTreeMap::new();
        let mut add = |name: String, gauge: bool, help: String, labels: String, v: f64| {
            fams.entry(name)
                .or_insert_with(|| (gauge, help, Vec::new()))
                .2
                .push((labels, v));
        };
        // Output numbers are sensor-wide: taken from one line only.
        let mut outputs_done = false;
        for (source, body) in &st.capture {
            if let Some(cap) = body.get("capture") {
                let mut path = Vec::new();
                walk(cap, &mut path, &mut |p, v| {
                    let gauge = is_gauge(p);
                    let mut name = format!("mxwatch_{}", p.join("_"));
                    if !gauge {
                        name.push_str("_total");
                    }
                    let help = format!("capture_stats mxwatch.capture.{} (SCHEMA.md)", p.join("."));
                    add(name, gauge, help, format!("source=\"{}\"", esc(source)), v);
                });
            }
            if let Some(Value::Array(threads)) = body.get("capture").and_then(|c| c.get("threads"))
            {
                for t in threads {
                    let Value::Object(fields) = t else { continue };
                    let k = fields.get("thread").and_then(Value::as_u64).unwrap_or(0);
                    let mut rest = fields.clone();
                    rest.remove("thread");
                    let rest = Value::Object(rest);
                    let mut path = vec!["thread"];
                    walk(&rest, &mut path, &mut |p, v| {
                        let name = format!("mxwatch_{}_total", p.join("_"));
                        let help = format!(
                            "capture_stats mxwatch.capture.threads[].{} (SCHEMA.md)",
                            p[1..].join(".")
                        );
                        let labels = format!("source=\"{}\",thread=\"{k}\"", esc(source));
                        add(name, false, help, labels, v);
                    });
                }
            }
            if outputs_done {
                continue;
            }
            if let Some(Value::Object(outs)) = body.get("outputs") {
                outputs_done = true;
                for (oname, o) in outs {
                    let kind = o.get("type").and_then(Value::as_str).unwrap_or("");
                    let Value::Object(fields) = o else { continue };
                    for (f, v) in fields {
                        let Some(v) = v.as_f64() else { continue };
                        let gauge = is_gauge(&[f.as_str()]);
                        let name =
                            format!("mxwatch_output_{f}{}", if gauge { "" } else { "_total" });
                        let help = format!("capture_stats mxwatch.outputs.NAME.{f} (SCHEMA.md)");
                        let labels = format!("output=\"{}\",type=\"{}\"", esc(oname), esc(kind));
                        add(name, gauge, help, labels, v);
                    }
                }
            }
        }
        for ((rule, kind), n) in &st.alerts {
            add(
                "mxwatch_alerts_total".into(),
                false,
                "alert lines written, by rule and event.type".into(),
                format!("rule=\"{}\",type=\"{}\"", esc(rule), esc(kind)),
                *n as f64,
            );
        }
        let mut out = String::new();
        for (name, (gauge, help, samples)) in fams {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(
                out,
                "# TYPE {name} {}",
                if gauge { "gauge" } else { "counter" }
            );
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        }
        out
    }
}

/// Numeric leaves of a JSON tree (booleans, strings and `*_delta` skipped).
fn walk<'a>(v: &'a Value, path: &mut Vec<&'a str>, f: &mut dyn FnMut(&[&str], f64)) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k.ends_with("_delta") {
                    continue;
                }
                path.push(k);
                walk(v, path, f);
                path.pop();
            }
        }
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                f(path, x);
            }
        }
        _ => {}
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` on `addr` from a background thread.
pub fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<(), String> {
    let server =
        tiny_http::Server::http(addr).map_err(|e| format!("--metrics-listen {addr}: {e}"))?;
    std::thread::Builder::new()
        .name("mxwatch-metrics".into())
        .spawn(move || {
            let header = tiny_http::Header::from_bytes(
                &b"Content-Type"[..],
                &b"text/plain; version=0.0.4; charset=utf-8"[..],
            )
            .expect("static header");
            for req in server.incoming_requests() {
                let resp = if req.url() == "/metrics" || req.url().starts_with("/metrics?") {
                    tiny_http::Response::from_string(metrics.render()).with_header(header.clone())
                } else {
                    tiny_http::Response::from_string("see /metrics\n").with_status_code(404)
                };
                let _ = req.respond(resp);
            }
        })
        .map_err(|e| format!("metrics thread: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_threads_are_families_of_their_own() {
        let m = Metrics::new();
        let body = serde_json::json!({"capture": {
            "mode": "live", "interface": "eth1", "packets_read": 10,
            "libpcap": {"received": 10, "received_delta": 4},
            "threads": [
                {"thread": 0, "packets_read": 6, "libpcap": {"received": 6, "received_delta": 2}},
                {"thread": 1, "packets_read": 4, "libpcap": {"received": 4, "received_delta": 2}},
            ],
        }});
        m.state.lock().unwrap().capture.insert("eth1".into(), body);
        let text = m.render();
        for line in [
            "mxwatch_packets_read_total{source=\"eth1\"} 10",
            "mxwatch_libpcap_received_total{source=\"eth1\"} 10",
            "mxwatch_thread_packets_read_total{source=\"eth1\",thread=\"0\"} 6",
            "mxwatch_thread_libpcap_received_total{source=\"eth1\",thread=\"1\"} 4",
            "# TYPE mxwatch_thread_libpcap_received_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(
            !text.contains("delta") && !text.contains("thread_thread"),
            "{text}"
        );
    }
}
