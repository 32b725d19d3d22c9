//! The syslog output: each JSON line as the MSG of a syslog message.
//!
//! RFC 5424 (default) or RFC 3164 (`format = "rfc3164"`, for old receivers),
//! over UDP (one datagram per line), TCP (octet-counting framing, RFC 6587
//! 3.4.1) or TLS (RFC 5425; rustls, the one file that talks to it; CA file,
//! client certificate optional), or to the local syslog socket (`/dev/log`,
//! datagrams in the RFC 3164 local form that rsyslog's imuxsock and
//! systemd-journald read).
//!
//! Header: PRI = facility (default local0) * 8 + a severity from the line
//! (alert start/info by `event.severity`: >= 90 crit, >= 70 err, >= 40
//! warning, else notice; alert end notice; metrics info); APP-NAME
//! `mxwatch`; PROCID the pid; MSGID the dataset (`mxwatch.detection`);
//! HOSTNAME the sensor name; TIMESTAMP the wall-clock time the line was
//! queued (the packet time is in the JSON); structured data
//! `[mxwatch@32473 rule=".." type=".." client=".."]` (32473 is the example
//! enterprise number of RFC 5612: a receiver matches on `mxwatch@32473`).

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::lines::LineMeta;
use super::queue::{Item, Transport};
use crate::time::rfc3339_micros;

/// Connect and write timeout of TCP and TLS receivers: a receiver that stops
/// reading is given up (and reconnected) after this long.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rfc5424,
    Rfc3164,
    /// RFC 3164 without HOSTNAME, for the local socket.
    Local,
}

/// Builds the syslog message of a line (on the output thread).
#[derive(Debug, Clone)]
pub struct Encoder {
    pub format: Format,
    pub facility: u8,
    pub hostname: String,
    /// Octet-counting framing (TCP, TLS).
    pub octet_counting: bool,
    pid: u32,
}

impl Encoder {
    pub fn new(format: Format, facility: u8, hostname: &str, octet_counting: bool) -> Encoder {
        let host: String = hostname
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(255)
            .collect();
        Encoder {
            format,
            facility,
            hostname: if host.is_empty() { "-".into() } else { host },
            octet_counting,
            pid: std::process::id(),
        }
    }

    pub fn encode(&self, meta: &LineMeta<'_>, json: &[u8]) -> Item {
        self.encode_at(meta, json, wall_micros())
    }

    pub fn encode_at(&self, meta: &LineMeta<'_>, json: &[u8], now: i64) -> Item {
        let pri = self.facility as u32 * 8 + severity(meta) as u32;
        let ts = rfc3339_micros(now);
        let mut msg = Vec::with_capacity(json.len() + 160);
        match self.format {
            Format::Rfc5424 => {
                let _ = write!(
                    msg,
                    "<{pri}>1 {ts} {} mxwatch {} {} ",
                    self.hostname,
                    self.pid,
                    meta.dataset.name()
                );
                structured_data(&mut msg, meta);
                msg.push(b' ');
            }
            Format::Rfc3164 => {
                let _ = write!(
                    msg,
                    "<{pri}>{} {} mxwatch[{}]: ",
                    bsd_time(&ts),
                    self.hostname,
                    self.pid
                );
            }
            Format::Local => {
                let _ = write!(msg, "<{pri}>{} mxwatch[{}]: ", bsd_time(&ts), self.pid);
            }
        }
        msg.extend_from_slice(json);
        let payload = if self.octet_counting {
            let mut framed = format!("{} ", msg.len()).into_bytes();
            framed.extend_from_slice(&msg);
            framed
        } else {
            msg
        };
        Item { key: None, payload }
    }
}

fn wall_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Syslog severity (RFC 5424 table 2) of a line.
pub fn severity(meta: &LineMeta<'_>) -> u8 {
    match (meta.kind, meta.severity) {
        (Some("end"), _) => 5,
        (_, Some(s)) if s >= 90 => 2,
        (_, Some(s)) if s >= 70 => 3,
        (_, Some(s)) if s >= 40 => 4,
        (_, Some(_)) => 5,
        _ => 6,
    }
}

/// `[mxwatch@32473 ...]`, or `-` when the line has nothing to put there.
fn structured_data(out: &mut Vec<u8>, meta: &LineMeta<'_>) {
    let client = meta.client.map(|c| c.to_string());
    let params = [
        ("rule", meta.rule),
        ("type", meta.kind),
        ("client", client.as_deref()),
    ];
    if params.iter().all(|(_, v)| v.is_none()) {
        out.push(b'-');
        return;
    }
    out.extend_from_slice(b"[mxwatch@32473");
    for (k, v) in params {
        if let Some(v) = v {
            let _ = write!(out, " {k}=\"");
            for ch in v.chars() {
                if matches!(ch, '"' | '\\' | ']') {
                    out.push(b'\\');
                }
                let mut b = [0; 4];
                out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
            }
            out.push(b'"');
        }
    }
    out.push(b']');
}

/// `2026-01-05T10:00:00.000000Z` -> `Jan  5 10:00:00` (RFC 3164 TIMESTAMP, UTC).
fn bsd_time(rfc3339: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m: usize = rfc3339.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    let d: u32 = rfc3339.get(8..10).and_then(|d| d.parse().ok()).unwrap_or(1);
    let hms = rfc3339.get(11..19).unwrap_or("00:00:00");
    format!("{} {d:>2} {hms}", MONTHS[(m.clamp(1, 12)) - 1])
}

/// Facility names (RFC 5424 table 1) to numbers.
pub fn facility(name: &str) -> Option<u8> {
    const NAMES: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
        "local3", "local4", "local5", "local6", "local7",
    ];
    NAMES.iter().position(|n| *n == name).map(|i| i as u8)
}

/// TLS settings of a `syslog+tls` output.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// PEM CA certificates the receiver's certificate must chain to.
    pub ca: Option<PathBuf>,
    /// PEM client certificate chain and key (both or neither).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Name checked in the receiver's certificate [default: the URL's host].
    pub server_name: Option<String>,
}

/// Builds the rustls client configuration (at startup: errors are config errors).
pub fn tls_config(files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let Some(ca) = &files.ca else {
        return Err(
            "syslog+tls needs ca = \"FILE\" (PEM certificates of the receiver's CA)".into(),
        );
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
        .and_then(|i| i.collect())
        .map_err(|e| format!("cannot read CA {}: {e}", ca.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in CA file {}", ca.display()));
    }
    for c in certs {
        roots
            .add(c)
            .map_err(|e| format!("bad CA certificate in {}: {e}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots);
    let config = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect())
                .map_err(|e| format!("cannot read certificate {}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("cannot read key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("cert and key go together".into()),
    };
    Ok(Arc::new(config))
}

pub enum Conn {
    Udp(String),
    Tcp(String),
    Tls {
        addr: String,
        server_name: rustls_pki_types::ServerName<'static>,
        config: Arc<rustls::ClientConfig>,
    },
    Local(PathBuf),
}

/// The connection of a syslog output (worker thread).
pub struct SyslogTransport {
    conn: Conn,
    udp: Option<UdpSocket>,
    tcp: Option<TcpStream>,
    tls: Option<Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>>,
    local: Option<UnixDatagram>,
}

impl SyslogTransport {
    pub fn new(conn: Conn) -> SyslogTransport {
        SyslogTransport {
            conn,
            udp: None,
            tcp: None,
            tls: None,
            local: None,
        }
    }
}

fn resolve(addr: &str) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{addr}: no address")))
}

fn tcp_connect(addr: &str) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&resolve(addr)?, IO_TIMEOUT)?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

impl Transport for SyslogTransport {
    fn connect(&mut self) -> io::Result<()> {
        match &self.conn {
            Conn::Udp(addr) => {
                let to = resolve(addr)?;
                let bind: SocketAddr = if to.is_ipv4() {
                    "0.0.0.0:0".parse().unwrap()
                } else {
                    "[::]:0".parse().unwrap()
                };
                let s = UdpSocket::bind(bind)?;
                s.connect(to)?;
                self.udp = Some(s);
            }
            Conn::Tcp(addr) => self.tcp = Some(tcp_connect(addr)?),
            Conn::Tls {
                addr,
                server_name,
                config,
            } => {
                let tcp = tcp_connect(addr)?;
                let conn = rustls::ClientConnection::new(config.clone(), server_name.clone())
                    .map_err(io::Error::other)?;
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                // Handshake now, so a bad certificate is a connect error.
                while tls.conn.is_handshaking() {
                    tls.conn.complete_io(&mut tls.sock)?;
                }
                self.tls = Some(Box::new(tls));
            }
            Conn::Local(path) => {
                let s = UnixDatagram::unbound()?;
                s.connect(path)?;
                self.local = Some(s);
            }
        }
        Ok(())
    }

    fn send(&mut self, item: &Item) -> io::Result<bool> {
        let r = if let Some(s) = &self.udp {
            s.send(&item.payload).map(|_| ())
        } else if let Some(s) = &mut self.tcp {
            s.write_all(&item.payload)
        } else if let Some(s) = &mut self.tls {
            s.write_all(&item.payload).and_then(|_| s.flush())
        } else if let Some(s) = &self.local {
            s.send(&item.payload).map(|_| ())
        } else {
            Err(io::Error::other("not connected"))
        };
        if r.is_err() {
            self.udp = None;
            self.tcp = None;
            self.tls = None;
            self.local = None;
        }
        r.map(|_| true)
    }

    fn finish(&mut self, _: std::time::Instant) -> u64 {
        if let Some(mut s) = self.tls.take() {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::lines::Dataset;

    #[test]
    fn rfc5424_header_and_framing() {
        let e = Encoder::new(Format::Rfc5424, 16, "sensor 1", true);
        let meta = LineMeta {
            dataset: Dataset::Detection,
            client: Some("10.0.0.1".parse().unwrap()),
            rule: Some("spam_relay"),
            kind: Some("start"),
            severity: Some(70),
        };
        let item = e.encode_at(&meta, br#"{"a":1}"#, 0);
        let s = String::from_utf8(item.payload).unwrap();
        let (len, msg) = s.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        let pid = std::process::id();
        assert_eq!(
            msg,
            format!(
                "<131>1 1970-01-01T00:00:00.000000Z sensor1 mxwatch {pid} mxwatch.detection \
                 [mxwatch@32473 rule=\"spam_relay\" type=\"start\" client=\"10.0.0.1\"] {{\"a\":1}}"
            )
        );
        let e = Encoder::new(Format::Rfc3164, 16, "s", false);
        let item = e.encode_at(&LineMeta::metric(Dataset::CaptureStats, None), b"{}", 0);
        assert_eq!(
            String::from_utf8(item.payload).unwrap(),
            format!("<134>Jan  1 00:00:00 s mxwatch[{pid}]: {{}}")
        );
    }
}
