//! What a sensor publishes (`--publish`) and a detector group reads
//! (`mxwatch detect --from`): one JSON message per client per closed bin,
//! keyed by the client's address, and a mark per partition per closed bin.
//! The format is documented in docs/scale.md; `v` changes when it does.
//!
//! A bin message carries the counters the detector needs and the
//! distinct-count sketches (linear-counting bitmaps of `DISTINCT_BITS` bits),
//! which merge by union: two sensors that saw the same name count it once.
//! A sketch is sent as the list of its set bits while it is sparse, as hex
//! of its 512 bytes once that is shorter.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::classify::{ClientBin, DISTINCT_BITS, DnsCounts, SUB_BINS, Sketch, SmtpCounts};

/// Version of the message format.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Message {
    Bin(Box<BinMsg>),
    Mark(Mark),
}

/// A sensor closed the bin [`start`, `end`): every bin message of it is out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    pub v: u32,
    pub sensor: String,
    pub start: i64,
    pub end: i64,
    /// The sensor's input ended (a `read` finished, a `live` stopped): it
    /// holds no detector back until it publishes again.
    #[serde(default)]
    pub last: bool,
}

/// One client's counters for one bin, as seen by one sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinMsg {
    pub v: u32,
    pub sensor: String,
    pub start: i64,
    pub end: i64,
    pub client: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_domain: Option<String>,
    /// The classifier's counters as they are (`classify::counters`); the
    /// distinct counts in them are ignored (estimated again from the merged sketches).
    pub dns: DnsCounts,
    pub smtp: SmtpCounts,
    /// (queries, unresolved FQDNs) per tenth of the bin.
    pub sub_bins: Vec<(u32, u32)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<(IpAddr, u64)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub smtp_peers: Vec<(IpAddr, u64)>,
    #[serde(default, skip_serializing_if = "Samples::is_empty")]
    pub samples: Samples,
    /// Sketches: distinct query names, MX names, SMTP clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Bits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mx_names: Option<Bits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_clients: Option<Bits>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Samples {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unresolved: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mx: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<String>,
}

impl Samples {
    pub fn is_empty(&self) -> bool {
        self.unresolved.is_empty() && self.mx.is_empty() && self.rejected.is_empty()
    }
}

/// A sketch: its set bits, or the whole bitmap in hex (64 words, little end first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Bits {
    Sparse(Vec<u16>),
    Hex(String),
}

const WORDS: usize = DISTINCT_BITS / 64;
/// A sparse list is at most ~6 bytes a bit; hex is 1,024 bytes.
const SPARSE_MAX: u32 = 160;

impl Bits {
    pub fn of(words: &[u64]) -> Option<Bits> {
        let ones: u32 = words.iter().map(|w| w.count_ones()).sum();
        if ones == 0 {
            return None;
        }
        if ones <= SPARSE_MAX {
            let mut v = Vec::with_capacity(ones as usize);
            for (i, w) in words.iter().enumerate() {
                let mut w = *w;
                while w != 0 {
                    let b = w.trailing_zeros();
                    v.push((i * 64) as u16 + b as u16);
                    w &= w - 1;
                }
            }
            return Some(Bits::Sparse(v));
        }
        let mut s = String::with_capacity(WORDS * 16);
        for w in words {
            s.push_str(&format!("{w:016x}"));
        }
        Some(Bits::Hex(s))
    }

    pub fn words(&self) -> Result<[u64; WORDS], String> {
        let mut out = [0u64; WORDS];
        match self {
            Bits::Sparse(v) => {
                for &b in v {
                    let b = usize::from(b);
                    if b >= DISTINCT_BITS {
                        return Err(format!("sketch bit {b} out of range"));
                    }
                    out[b / 64] |= 1 << (b % 64);
                }
            }
            Bits::Hex(s) => {
                if s.len() != WORDS * 16 || !s.is_ascii() {
                    return Err(format!(
                        "sketch of {} hex digits, not {}",
                        s.len(),
                        WORDS * 16
                    ));
                }
                for (i, o) in out.iter_mut().enumerate() {
                    *o = u64::from_str_radix(&s[i * 16..i * 16 + 16], 16)
                        .map_err(|e| format!("sketch: {e}"))?;
                }
            }
        }
        Ok(out)
    }
}

impl BinMsg {
    /// A closed bin's record (its sketches still in it: `keep_sketches`).
    pub fn of(
        sensor: &str,
        start: i64,
        end: i64,
        client: IpAddr,
        local_domain: Option<&str>,
        b: &ClientBin,
    ) -> BinMsg {
        let bits = |w: Sketch| b.sketch(w).words().and_then(Bits::of);
        let list = |v: &[Box<str>]| v.iter().map(|x| x.to_string()).collect();
        BinMsg {
            v: VERSION,
            sensor: sensor.to_owned(),
            start,
            end,
            client,
            local_domain: local_domain.map(str::to_owned),
            dns: b.dns.clone(),
            smtp: b.smtp.clone(),
            sub_bins: b.sub_bins.to_vec(),
            servers: b.servers.clone(),
            smtp_peers: b.smtp_peers.clone(),
            samples: Samples {
                unresolved: list(&b.sample_unresolved),
                mx: list(&b.sample_mx),
                rejected: list(&b.sample_rejected),
            },
            names: bits(Sketch::Names),
            mx_names: bits(Sketch::MxNames),
            smtp_clients: bits(Sketch::SmtpClients),
        }
    }

    /// Back to a [`ClientBin`] (distinct counts not yet estimated: merge,
    /// then `finalize`). Rejects what a sensor cannot have sent.
    pub fn to_bin(&self) -> Result<ClientBin, String> {
        if self.end <= self.start {
            return Err(format!(
                "bin ends ({}) before it starts ({})",
                self.end, self.start
            ));
        }
        if self.sub_bins.len() > SUB_BINS {
            return Err(format!(
                "{} sub-bins, at most {SUB_BINS}",
                self.sub_bins.len()
            ));
        }
        let mut b = ClientBin::default();
        b.dns = self.dns.clone();
        b.smtp = self.smtp.clone();
        for (i, x) in self.sub_bins.iter().enumerate() {
            b.sub_bins[i] = *x;
        }
        // Bounded as the classifier bounds them: a message is input.
        b.servers = self.servers.iter().take(8).copied().collect();
        b.smtp_peers = self
            .smtp_peers
            .iter()
            .take(crate::classify::counters::MAX_SMTP_PEERS)
            .copied()
            .collect();
        for (list, from) in [
            (&mut b.sample_unresolved, &self.samples.unresolved),
            (&mut b.sample_mx, &self.samples.mx),
            (&mut b.sample_rejected, &self.samples.rejected),
        ] {
            for x in from.iter().take(crate::classify::counters::MAX_SAMPLES) {
                if x.len() <= 255 {
                    ClientBin::sample(list, x);
                }
            }
        }
        for (w, bits) in [
            (Sketch::Names, &self.names),
            (Sketch::MxNames, &self.mx_names),
            (Sketch::SmtpClients, &self.smtp_clients),
        ] {
            if let Some(bits) = bits {
                b.sketch_mut(w).union_words(&bits.words()?);
            }
        }
        Ok(b)
    }
}

/// Parses one message; one line of error naming what is wrong.
pub fn decode(payload: &[u8]) -> Result<Message, String> {
    let m: Message = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    let v = match &m {
        Message::Bin(b) => b.v,
        Message::Mark(k) => k.v,
    };
    if v != VERSION {
        return Err(format!("message version {v}, this mxwatch reads {VERSION}"));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::names::fast_hash;

    fn bin_with(names: std::ops::Range<u64>) -> ClientBin {
        let mut b = ClientBin::default();
        for i in names {
            b.dns.queries += 1;
            b.dns.qtype[3] += 1;
            b.see_name(fast_hash(format!("d{i}.example").as_bytes()));
            b.see_mx_name(fast_hash(format!("d{i}.example").as_bytes()));
        }
        b.sub_bins[3] = (7, 1);
        b.see_server(IpAddr::from([192, 0, 2, 53]));
        b.see_smtp_peer(IpAddr::from([203, 0, 113, 9]));
        ClientBin::sample(&mut b.sample_mx, "d1.example");
        b
    }

    #[test]
    fn a_bin_survives_the_wire_sparse_and_dense() {
        for n in [3u64, 2000] {
            let b = bin_with(0..n);
            let ip = IpAddr::from([10, 0, 0, 25]);
            let m = BinMsg::of("s1", 0, 5_000_000, ip, Some("sub.univ.test"), &b);
            let json = serde_json::to_vec(&Message::Bin(Box::new(m.clone()))).unwrap();
            let Message::Bin(back) = decode(&json).unwrap() else {
                panic!("not a bin")
            };
            assert_eq!(*back, m);
            let mut got = back.to_bin().unwrap();
            got.finalize();
            let mut want = b.clone();
            want.finalize();
            assert_eq!(got.dns, want.dns);
            assert_eq!(got.sub_bins, want.sub_bins);
            assert_eq!(got.servers, want.servers);
            assert_eq!(got.smtp_peers, want.smtp_peers);
            assert_eq!(got.sample_mx, want.sample_mx);
            if n > 1000 {
                assert!(matches!(m.names, Some(Bits::Hex(_))));
            } else {
                assert!(matches!(m.names, Some(Bits::Sparse(_))));
            }
        }
    }

    #[test]
    fn two_halves_merge_into_the_whole() {
        // Names 0..60 and 40..100: 100 distinct, not 120.
        let mut a = bin_with(0..60);
        let b = bin_with(40..100);
        a.merge(&b);
        a.finalize();
        assert_eq!(a.dns.queries, 120);
        assert!(
            (98..=102).contains(&a.dns.distinct_names),
            "{}",
            a.dns.distinct_names
        );
        assert!((98..=102).contains(&a.dns.distinct_mx_names));
        assert_eq!(a.sub_bins[3], (14, 2));
        assert_eq!(a.servers, vec![(IpAddr::from([192, 0, 2, 53]), 2)]);
        assert_eq!(a.smtp_peers, vec![(IpAddr::from([203, 0, 113, 9]), 2)]);
    }

    #[test]
    fn malformed_messages_are_refused_with_a_reason() {
        for (bad, why) in [
            (
                &br#"{"type":"mark","v":2,"sensor":"s","start":0,"end":1}"#[..],
                "version 2",
            ),
            (br#"{"type":"bin"}"#, "missing field"),
            (br#"not json"#, "expected"),
        ] {
            let e = decode(bad).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        assert!(
            Bits::Sparse(vec![4096])
                .words()
                .unwrap_err()
                .contains("out of range")
        );
        assert!(Bits::Hex("ab".into()).words().is_err());
    }
}
