//! Time stamps at the start of log lines, as BIND and syslog write them:
//!
//! - `29-Nov-2026 11:22:35.044` (BIND `print-time yes` / `local`, 9.11-9.20)
//! - `2026-11-29T11:22:35.044[Z|+01:00]` (BIND `print-time iso8601[-utc]`,
//!   rsyslog's RFC 3339 format, RFC 5424 after `<PRI>1 `)
//! - `Nov 29 11:22:35` (classic syslog, Postfix's `maillog_file`: no year)
//!
//! Times without a zone are read as UTC (run the DNS and mail servers, or
//! mxwatch's reading of their logs, in UTC; the packets are UTC). A year-less
//! time takes its year from [`Year`].

use crate::time::days_from_civil;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Where a year-less syslog time gets its year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Year {
    /// Given (`--log-year`): every year-less line is in this year.
    Fixed(i64),
    /// The file's modification time (microseconds): the year that puts the
    /// line at most one day after it (a December line in a file written in
    /// January is from the year before).
    Modified(i64),
}

fn month(s: &str) -> Option<u32> {
    MONTHS.iter().position(|m| *m == s).map(|i| i as u32 + 1)
}

fn num(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `HH:MM:SS[.frac]` -> microseconds of the day.
fn clock(s: &str) -> Option<i64> {
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut it = hms.split(':');
    let (h, m, sec) = (num(it.next()?)?, num(it.next()?)?, num(it.next()?)?);
    if it.next().is_some() || h > 23 || m > 59 || sec > 60 || frac.len() > 9 {
        return None;
    }
    let mut micros = 0i64;
    for (i, c) in frac.bytes().take(6).enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        micros += (c - b'0') as i64 * 10i64.pow(5 - i as u32);
    }
    Some(((h * 60 + m) * 60 + sec) * 1_000_000 + micros)
}

fn at(y: i64, mo: u32, d: i64, day_micros: i64) -> Option<i64> {
    if !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, mo, d as u32) * 86_400_000_000 + day_micros)
}

/// A time stamp at the start of `line`: (microseconds, the rest of the line
/// after the stamp and its separating blanks). `None`: no stamp there.
pub fn parse(line: &str, year: Year) -> Option<(i64, &str)> {
    let line = skip_rfc5424_head(line);
    let (first, rest) = line.split_once(' ')?;
    // 29-Nov-2026 11:22:35.044
    if let [d, m, y] = first.split('-').collect::<Vec<_>>()[..]
        && let (Some(d), Some(mo), Some(y)) = (num(d), month(m), num(y))
    {
        let (t, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        return Some((at(y, mo, d, clock(t)?)?, rest.trim_start()));
    }
    // 2026-11-29T11:22:35.044Z, +01:00
    if let Some((date, t)) = first.split_once('T') {
        let mut it = date.split('-');
        let (y, mo, d) = (num(it.next()?)?, num(it.next()?)?, num(it.next()?)?);
        let (t, offset) = split_zone(t)?;
        let ts = at(
            y,
            u32::try_from(mo).ok().filter(|m| (1..=12).contains(m))?,
            d,
            clock(t)?,
        )?;
        return Some((ts - offset, rest.trim_start()));
    }
    // Nov 29 11:22:35 (day padded with a blank: "Nov  9")
    let mo = month(first)?;
    let rest = rest.trim_start();
    let (d, rest) = rest.split_once(' ')?;
    let (t, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let (d, day) = (num(d)?, clock(t)?);
    let ts = match year {
        Year::Fixed(y) => at(y, mo, d, day)?,
        Year::Modified(m) => {
            let y = crate::time::rfc3339_micros(m)[..4].parse::<i64>().ok()?;
            let ts = at(y, mo, d, day)?;
            if ts > m + 86_400_000_000 {
                at(y - 1, mo, d, day)?
            } else {
                ts
            }
        }
    };
    Some((ts, rest.trim_start()))
}

/// `<34>1 ` (RFC 5424 priority and version) before the time stamp.
fn skip_rfc5424_head(line: &str) -> &str {
    if let Some(r) = line.strip_prefix('<')
        && let Some((pri, rest)) = r.split_once('>')
        && num(pri).is_some()
    {
        return rest.strip_prefix("1 ").unwrap_or(rest);
    }
    line
}

/// `11:22:35.044+01:00` -> (`11:22:35.044`, offset in microseconds).
fn split_zone(t: &str) -> Option<(&str, i64)> {
    if let Some(t) = t.strip_suffix('Z') {
        return Some((t, 0));
    }
    match t.rfind(['+', '-']) {
        Some(i) if i >= 8 => {
            let (clock, zone) = t.split_at(i);
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = zone[1..].split_once(':').unwrap_or((&zone[1..], "0"));
            Some((clock, sign * (num(h)? * 60 + num(m)?) * 60_000_000))
        }
        _ => Some((t, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn t(s: &str) -> i64 {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn bind_iso_and_syslog_stamps() {
        let y = Year::Fixed(2026);
        assert_eq!(
            parse("29-Nov-2026 11:22:35.044 queries: info: x", y),
            Some((t("2026-11-29T11:22:35.044000Z"), "queries: info: x"))
        );
        assert_eq!(
            parse("2026-11-29T11:22:35.044+01:00 client", y),
            Some((t("2026-11-29T10:22:35.044000Z"), "client"))
        );
        assert_eq!(
            parse("2026-11-29T11:22:35.044Z client", y).unwrap().0,
            t("2026-11-29T11:22:35.044000Z")
        );
        assert_eq!(
            parse("Nov  9 01:02:03 mx postfix/smtpd[1]: x", y),
            Some((t("2026-11-09T01:02:03.000000Z"), "mx postfix/smtpd[1]: x"))
        );
        assert_eq!(
            parse("<30>1 2026-11-29T11:22:35Z host named 1 - - client", y)
                .unwrap()
                .0,
            t("2026-11-29T11:22:35.000000Z")
        );
        assert_eq!(parse("client @0x1 10.0.0.1#5", y), None);
        assert_eq!(parse("Foo 29 11:22:35 x", y), None);
    }

    #[test]
    fn year_from_modification_time_rolls_back_over_new_year() {
        let m = Year::Modified(t("2027-01-02T00:00:00.000000Z"));
        assert_eq!(
            parse("Dec 31 23:59:59 mx x", m).unwrap().0,
            t("2026-12-31T23:59:59.000000Z")
        );
        assert_eq!(
            parse("Jan  1 00:00:01 mx x", m).unwrap().0,
            t("2027-01-01T00:00:01.000000Z")
        );
    }
}
