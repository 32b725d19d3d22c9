//! The sentence a person reads in `event.reason`, made from a rule's numbers.

use crate::detect::{Alert, Signal, Why};
use crate::time::rfc3339_micros;

pub fn reason(a: &Alert) -> String {
    let name = a.rule.name;
    match &a.why {
        Why::Holds(s) => signal(s),
        Why::Continues { qps } => format!("{name} continues at {qps:.1} q/s."),
        Why::Ended { quiet_since } => {
            format!(
                "{name} ended: quiet since {}.",
                rfc3339_micros(*quiet_since)
            )
        }
        Why::Reclassified { to } => {
            format!("{name} ended: the evidence now points to {to}, which continues the incident.")
        }
        Why::SpoofedFlood {
            suppressed,
            clients,
            cap,
        } if a.phase != crate::detect::Phase::End => format!(
            "{suppressed} alerts of clients first seen (no baseline) folded into this one, beyond {cap} per bin ({clients} such clients alerting in this bin): many new sources alerting at once is what spoofed traffic looks like; samples in the evidence."
        ),
        Why::SpoofedFlood { .. } => {
            format!("{name} ended: no more than the cap of alerts from new clients in this bin.")
        }
        Why::EndOfInput { quiet_since } => format!(
            "{name} ended: quiet since {} (end of input)",
            rfc3339_micros(*quiet_since)
        ),
    }
}

fn signal(s: &Signal) -> String {
    match *s {
        Signal::MxExcess {
            qps,
            ratio,
            mx,
            mx_expected,
            share,
        } => format!(
            "MX lookups drive a query burst of {qps:.1} q/s ({ratio:.0} times the baseline): {mx} MX queries where {mx_expected:.1} were expected, {:.0}% of the excess; the mail server is sending mail to many new domains, as an abused relay does.",
            share * 100.0,
        ),
        Signal::UnresolvedExcess {
            qps,
            ratio,
            count,
            expected,
            share,
        } => format!(
            "Query burst of {qps:.1} q/s ({ratio:.0} times the baseline) with {count} qualified names with the local search domain appended where {expected:.1} were expected ({:.0}% of the excess): the mail server is checking forged senders of a bounce flood.",
            share * 100.0
        ),
        Signal::NxDomainExcess {
            qps,
            ratio,
            nxdomain,
            expected,
            share,
        } => format!(
            "Query burst of {qps:.1} q/s ({ratio:.0} times the baseline) with {nxdomain} NXDOMAIN answers where {expected:.1} were expected ({:.0}% of the excess answers): the mail server is checking forged senders of a bounce flood.",
            share * 100.0
        ),
        Signal::Loud { qps, ratio } => format!(
            "Query rate of {qps:.1} q/s is {ratio:.0} times this client's baseline, with no mail-specific pattern."
        ),
        Signal::Alpha {
            alpha,
            sessions,
            low,
            high,
        } => format!(
            "SMTP alpha (connections / MAIL FROM) is {alpha:.2} over {sessions} sessions, outside its usual band {low:.2}-{high:.2}."
        ),
        Signal::UserUnknown {
            count,
            rate,
            ratio,
            clients,
        } => format!(
            "{count} \"user unknown\" rejections ({rate:.2}/s, {ratio:.0} times the baseline) from up to {clients} client addresses per bin: a bounce flood to unknown users."
        ),
        Signal::MxDomains {
            mx,
            mx_expected,
            mx_qps,
            domains,
            outbound,
        } => {
            let seen = if outbound > 0 {
                format!(" and opens SMTP sessions itself ({outbound} outbound)")
            } else {
                String::new()
            };
            format!(
                "A client that is not a mail server looks up the MX of {domains} distinct domains: {mx} MX queries ({mx_qps:.2}/s) where {mx_expected:.1} were expected{seen}; a spam bot or mass-mailing worm sends mail direct to MX."
            )
        }
        Signal::Outbound { count, rate, ratio } => format!(
            "{count} outbound SMTP sessions ({rate:.2}/s, {ratio:.0} times the baseline): the server is sending mail out in bulk."
        ),
    }
}
