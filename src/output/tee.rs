//! Several outputs at once, each with its own selection of datasets.
//!
//! A [`LineSink`] over a list of outputs ([`OutputSpec`], validated by
//! `config`): files and stdout are written in line on the output thread (as
//! a single `-o FILE` always was: a full disk is an error of the run);
//! every network output (syslog, Kafka, unix socket) is encoded here and
//! handed to its own [`Queued`] worker, which never blocks this thread. The
//! same JSON bytes go to every output that selected the line's dataset.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::lines::{Dataset, Datasets, LineMeta, LineSink, OutputStat};
use super::queue::{Counters, Item, Queued, Transport};
use super::syslog::{self, Format, TlsFiles};
use super::unix::UnixTransport;

/// One output, validated (built by `config` from `-o` and `[[output]]`).
#[derive(Debug, Clone)]
pub struct OutputSpec {
    /// In capture_stats `outputs` and /metrics: the URL, or the `name` set.
    pub name: String,
    pub datasets: Datasets,
    pub kind: OutputKind,
    /// Network outputs: lines queued before drops.
    pub queue: usize,
    /// Network outputs: how long the end of a run waits for the queue to drain.
    pub drain: Duration,
}

#[derive(Debug, Clone)]
pub enum OutputKind {
    Stdout,
    File(PathBuf),
    Syslog {
        transport: SyslogTransportSpec,
        format: Format,
        facility: u8,
    },
    Kafka {
        brokers: String,
        topic: String,
        properties: BTreeMap<String, String>,
    },
    Unix {
        path: PathBuf,
        datagram: bool,
    },
}

#[derive(Debug, Clone)]
pub enum SyslogTransportSpec {
    Udp(String),
    Tcp(String),
    /// host:port, the host (certificate name), TLS files.
    Tls(String, String, TlsFiles),
    /// The local syslog socket (`/dev/log`).
    Local(PathBuf),
}

impl OutputKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            OutputKind::Stdout | OutputKind::File(_) => "file",
            OutputKind::Syslog { .. } => "syslog",
            OutputKind::Kafka { .. } => "kafka",
            OutputKind::Unix { .. } => "unix",
        }
    }

    pub fn is_network(&self) -> bool {
        !matches!(self, OutputKind::Stdout | OutputKind::File(_))
    }
}

enum Encode {
    Syslog(syslog::Encoder),
    #[cfg(feature = "kafka")]
    Kafka,
    Unix {
        datagram: bool,
    },
}

enum Dest {
    Writer {
        path: Option<PathBuf>,
        w: Box<dyn Write + Send>,
        stat: OutputStat,
    },
    Net {
        encode: Encode,
        queue: Queued,
    },
}

struct Route {
    datasets: Datasets,
    dest: Dest,
}

pub struct Tee {
    routes: Vec<Route>,
}

fn open_file(path: &Option<PathBuf>) -> io::Result<Box<dyn Write + Send>> {
    super::file::open(path)
}

impl Tee {
    /// Opens files and starts one worker per network output. `lossless`
    /// (`read`): a full queue waits a little for a connected receiver.
    pub fn open(specs: &[OutputSpec], hostname: &str, lossless: bool) -> Result<Tee, String> {
        let mut routes = Vec::new();
        for s in specs {
            let counters = Arc::new(Counters::default());
            let net = |encode: Encode, t: Box<dyn Transport>| Dest::Net {
                encode,
                queue: Queued::start(
                    s.name.clone(),
                    s.kind.type_name(),
                    t,
                    counters.clone(),
                    s.queue,
                    lossless,
                    s.drain,
                ),
            };
            let dest = match &s.kind {
                OutputKind::Stdout | OutputKind::File(_) => {
                    let path = match &s.kind {
                        OutputKind::File(p) => Some(p.clone()),
                        _ => None,
                    };
                    Dest::Writer {
                        w: open_file(&path).map_err(|e| e.to_string())?,
                        path,
                        stat: OutputStat {
                            name: s.name.clone(),
                            kind: "file",
                            ..OutputStat::default()
                        },
                    }
                }
                OutputKind::Syslog {
                    transport,
                    format,
                    facility,
                } => {
                    let (conn, framed, format) = match transport {
                        SyslogTransportSpec::Udp(a) => {
                            (syslog::Conn::Udp(a.clone()), false, *format)
                        }
                        SyslogTransportSpec::Tcp(a) => {
                            (syslog::Conn::Tcp(a.clone()), true, *format)
                        }
                        SyslogTransportSpec::Tls(a, host, files) => {
                            let config = syslog::tls_config(files)
                                .map_err(|e| format!("output {}: {e}", s.name))?;
                            let name = files.server_name.clone().unwrap_or_else(|| host.clone());
                            let server_name = rustls_pki_types::ServerName::try_from(name.clone())
                                .map_err(|e| {
                                    format!("output {}: server name {name:?}: {e}", s.name)
                                })?;
                            (
                                syslog::Conn::Tls {
                                    addr: a.clone(),
                                    server_name,
                                    config,
                                },
                                true,
                                *format,
                            )
                        }
                        SyslogTransportSpec::Local(p) => {
                            (syslog::Conn::Local(p.clone()), false, Format::Local)
                        }
                    };
                    net(
                        Encode::Syslog(syslog::Encoder::new(format, *facility, hostname, framed)),
                        Box::new(syslog::SyslogTransport::new(conn)),
                    )
                }
                #[cfg(feature = "kafka")]
                OutputKind::Kafka {
                    brokers,
                    topic,
                    properties,
                } => {
                    let t = super::kafka::KafkaTransport::new(
                        brokers,
                        topic,
                        s.queue,
                        properties,
                        counters.clone(),
                    )
                    .map_err(|e| format!("output {}: {e}", s.name))?;
                    net(Encode::Kafka, Box::new(t))
                }
                #[cfg(not(feature = "kafka"))]
                OutputKind::Kafka { .. } => {
                    return Err(format!(
                        "output {}: this mxwatch was built without the kafka feature",
                        s.name
                    ));
                }
                OutputKind::Unix { path, datagram } => net(
                    Encode::Unix {
                        datagram: *datagram,
                    },
                    Box::new(UnixTransport::new(path.clone(), *datagram)),
                ),
            };
            routes.push(Route {
                datasets: s.datasets,
                dest,
            });
        }
        Ok(Tee { routes })
    }
}

impl Encode {
    fn item(&self, meta: &LineMeta<'_>, json: &[u8]) -> Item {
        match self {
            Encode::Syslog(e) => e.encode(meta, json),
            #[cfg(feature = "kafka")]
            Encode::Kafka => super::kafka::encode(meta, json),
            Encode::Unix { datagram } => UnixTransport::encode(*datagram, json),
        }
    }
}

impl LineSink for Tee {
    fn line(&mut self, meta: &LineMeta<'_>, json: &[u8]) -> io::Result<()> {
        for r in &mut self.routes {
            if !r.datasets.contains(meta.dataset) {
                continue;
            }
            match &mut r.dest {
                Dest::Writer { w, stat, .. } => {
                    w.write_all(json)?;
                    w.write_all(b"\n")?;
                    stat.lines += 1;
                    stat.sent += 1;
                }
                Dest::Net { encode, queue } => queue.push(encode.item(meta, json)),
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        for r in &mut self.routes {
            if let Dest::Writer { w, .. } = &mut r.dest {
                w.flush()?;
            }
        }
        Ok(())
    }

    /// Every file output is reopened by its path (`w`, opened by the caller
    /// for a single file, is not needed).
    fn reopen(&mut self, _w: Box<dyn Write + Send>) -> io::Result<()> {
        for r in &mut self.routes {
            if let Dest::Writer {
                path: Some(p), w, ..
            } = &mut r.dest
            {
                w.flush()?;
                *w = open_file(&Some(p.clone()))?;
            }
        }
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        let flushed = self.flush();
        for r in &mut self.routes {
            if let Dest::Net { queue, .. } = &mut r.dest {
                queue.begin_close();
            }
        }
        for r in &mut self.routes {
            if let Dest::Net { queue, .. } = &mut r.dest {
                queue.close();
                let s = queue.stat();
                if s.dropped > 0 {
                    tracing::warn!(
                        "output {}: {} of {} lines dropped ({} sent)",
                        s.name,
                        s.dropped,
                        s.lines,
                        s.sent
                    );
                }
            }
        }
        flushed
    }

    fn stats(&self) -> Vec<OutputStat> {
        self.routes
            .iter()
            .map(|r| match &r.dest {
                Dest::Writer { stat, .. } => stat.clone(),
                Dest::Net { queue, .. } => queue.stat(),
            })
            .collect()
    }
}

/// The datasets of a list of names (`detection`, `client_stats`, `capture_stats`, or `all`).
pub fn parse_datasets(names: &[String]) -> Result<Datasets, String> {
    let mut list = Vec::new();
    for n in names {
        if n.trim() == "all" {
            return Ok(Datasets::ALL);
        }
        list.push(Dataset::parse(n).ok_or_else(|| {
            format!("unknown dataset {n:?} (detection, client_stats, capture_stats or all)")
        })?);
    }
    if list.is_empty() {
        return Err("datasets is empty".into());
    }
    Ok(Datasets::of(&list))
}
