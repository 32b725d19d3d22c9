//! Time in one place: packet time in microseconds since the epoch, bins of
//! packet time, and RFC 3339 UTC timestamps with microseconds (written in
//! every output line, read back by tests and tools).
//!
//! Nothing in mxwatch's detection path reads the wall clock: bins open and
//! close on packet time (live mode feeds a quiet wire's clock in as ticks).

/// Packet time: microseconds since the Unix epoch.
pub type Micros = i64;

/// Fixed-size bins of packet time, aligned on the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bins {
    /// Bin length in microseconds (at least 1).
    pub micros: Micros,
}

impl Bins {
    pub fn new(micros: Micros) -> Self {
        Bins {
            micros: micros.max(1),
        }
    }

    /// Start of the bin that holds `ts`.
    pub fn start_of(&self, ts: Micros) -> Micros {
        ts.div_euclid(self.micros) * self.micros
    }

    /// Start of the bin after the one that holds `ts`.
    pub fn next_after(&self, ts: Micros) -> Micros {
        self.start_of(ts) + self.micros
    }

    /// Index of the bin that holds `ts` (bins since the epoch).
    pub fn index(&self, ts: Micros) -> i64 {
        ts.div_euclid(self.micros)
    }

    pub fn secs(&self) -> f64 {
        self.micros as f64 / 1e6
    }
}

/// Formats microseconds since the epoch as `2026-01-15T10:00:00.000000Z`.
pub fn rfc3339_micros(ts: i64) -> String {
    let secs = ts.div_euclid(1_000_000);
    let micros = ts.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `2026-01-15T10:00:00.000000Z` (as [`rfc3339_micros`] writes it, fraction
/// optional) to microseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<Micros> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let micros = match s.get(19..s.len() - 1)? {
        "" => 0,
        f => {
            let digits = f.strip_prefix('.')?;
            let padded = format!("{digits:0<6}");
            padded.get(..6)?.parse::<i64>().ok()?
        }
    };
    let days = days_from_civil(y, m as u32, d as u32);
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000) + micros)
}

/// (year, month, day) to days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        for ts in [0, 1_700_000_000_123_456, 951_782_400_000_001, -1_000_000] {
            assert_eq!(parse_rfc3339(&rfc3339_micros(ts)), Some(ts), "{ts}");
        }
        assert_eq!(parse_rfc3339("nonsense"), None);
    }

    #[test]
    fn bins_align_on_the_epoch_also_before_it() {
        let b = Bins::new(5_000_000);
        assert_eq!(b.start_of(12_345_678), 10_000_000);
        assert_eq!(b.next_after(12_345_678), 15_000_000);
        assert_eq!(b.start_of(-1), -5_000_000);
        assert_eq!(b.index(10_000_000), 2);
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_micros(1_768_471_200_000_001),
            "2026-01-15T10:00:00.000001Z"
        );
        assert_eq!(
            rfc3339_micros(951_782_400_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(rfc3339_micros(-1), "1969-12-31T23:59:59.999999Z");
    }
}
