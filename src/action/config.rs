//! `[[action]]` and `[actions]` settings: what triggers an action, what it
//! runs, and the limits every action shares. Checked once, in [`check`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Write what would run (an `mxwatch.action` line with outcome `dry_run`); run nothing.
    #[default]
    Log,
    /// Run the commands.
    Act,
}

/// Alert phases that run the command (the undo runs at `end` or after the hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Start,
    Info,
    End,
}

/// The addresses an action acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The alert's client (`source.ip`): a spam bot, a mail server.
    #[default]
    Client,
    /// The incident's top SMTP peers (evidence `smtp.top_peers`): the
    /// relaying sources of a relay, the bounce sources of a backscatter.
    Peers,
    /// The alert's client as the server whose own settings the action
    /// changes (e.g. stop relaying, `dist/actions/postfix-relay-brake`), not
    /// an address it blocks: the allowlist (addresses never blocked) does
    /// not apply, the rate cap and every other limit do.
    Server,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    /// Names the action in its lines and in `MXW_ACTION`.
    pub name: String,
    /// Rule names that trigger it (`spam_relay`, `spam_bot`, ...).
    pub rules: Vec<String>,
    #[serde(default = "default_on")]
    pub on: Vec<Trigger>,
    #[serde(default)]
    pub target: Target,
    /// With `target = "peers"`: while the incident is open, run again for
    /// each bin's new top peers of the client (a relay rotating sources).
    #[serde(default)]
    pub follow_peers: bool,
    /// argv (no shell); the alert line on stdin, `MXW_*` in the environment.
    pub command: Vec<String>,
    /// argv run with the same targets at the incident's `end` (or after `hold_secs`).
    #[serde(default)]
    pub undo: Option<Vec<String>>,
    /// Undo this many seconds (packet time) after the first run instead of at `end`.
    #[serde(default)]
    pub hold_secs: Option<f64>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    #[serde(default)]
    pub mode: Mode,
    /// Extra environment for the command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

fn default_on() -> Vec<Trigger> {
    vec![Trigger::Start]
}

fn default_timeout() -> f64 {
    10.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionsConfig {
    /// Addresses and networks (`192.0.2.0/24`) never acted on.
    pub allowlist: Vec<String>,
    /// Runs (dry runs included, undos not) per minute of packet time, all actions together.
    pub max_per_minute: u32,
    /// Jobs waiting for the action thread; a job beyond is refused (`queue_full`).
    pub queue: usize,
    /// Incidents acted on and not yet undone; beyond, new runs are refused (`table_full`).
    pub max_open: usize,
    /// Bytes of a command's stdout and stderr kept in its line.
    pub output_bytes: usize,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        ActionsConfig {
            allowlist: Vec::new(),
            max_per_minute: 10,
            queue: 64,
            max_open: 1024,
            output_bytes: 512,
        }
    }
}

/// An address or a network (`addr/len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub len: u8,
}

impl Net {
    pub fn parse(s: &str) -> Result<Net, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("allowlist: {s:?} is not an address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => match l.trim().parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("allowlist: {s:?}: prefix length 0-{max}")),
            },
        };
        Ok(Net { addr, len })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| -> (u128, u32) {
            match a {
                IpAddr::V4(v) => (u128::from(v.to_bits()), 32),
                IpAddr::V6(v) => match v.to_ipv4_mapped() {
                    Some(m) => (u128::from(m.to_bits()), 32),
                    None => (v.to_bits(), 128),
                },
            }
        };
        let ((n, nw), (x, xw)) = (bits(self.addr), bits(ip));
        if nw != xw {
            return false;
        }
        let shift = nw - u32::from(self.len);
        shift >= nw || (n >> shift) == (x >> shift)
    }
}

/// Every action and the shared limits, checked; `known_rules` are the rule names.
pub fn check(
    actions: &[ActionConfig],
    limits: &ActionsConfig,
    known_rules: &[&str],
) -> Result<(), String> {
    for n in &limits.allowlist {
        Net::parse(n)?;
    }
    if limits.max_per_minute == 0 || limits.queue == 0 || limits.max_open == 0 {
        return Err("actions: max_per_minute, queue and max_open must be at least 1".into());
    }
    let mut names: Vec<&str> = Vec::new();
    for a in actions {
        let at = format!("action {:?}", a.name);
        if a.name.is_empty() || names.contains(&a.name.as_str()) {
            return Err(format!("{at}: every action needs a name of its own"));
        }
        names.push(&a.name);
        if a.rules.is_empty() {
            return Err(format!("{at}: rules is empty"));
        }
        for r in &a.rules {
            if !known_rules.contains(&r.as_str()) {
                return Err(format!(
                    "{at}: unknown rule {r:?} (rules: {})",
                    known_rules.join(", ")
                ));
            }
        }
        if a.command.is_empty() || a.undo.as_ref().is_some_and(Vec::is_empty) {
            return Err(format!(
                "{at}: command (and undo, if given) must not be empty"
            ));
        }
        if !(a.timeout_secs.is_finite() && a.timeout_secs > 0.0) {
            return Err(format!("{at}: timeout_secs must be positive"));
        }
        if a.hold_secs.is_some_and(|h| !(h.is_finite() && h > 0.0)) {
            return Err(format!("{at}: hold_secs must be positive"));
        }
        if a.hold_secs.is_some() && a.undo.is_none() {
            return Err(format!("{at}: hold_secs without undo"));
        }
        if a.follow_peers && a.target != Target::Peers {
            return Err(format!("{at}: follow_peers needs target = \"peers\""));
        }
        if a.env
            .keys()
            .any(|k| k.starts_with("MXW_") || k.is_empty() || k.contains('='))
        {
            return Err(format!(
                "{at}: env names must not start with MXW_ (mxwatch sets those)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses() {
        let n = Net::parse("10.53.0.0/24").unwrap();
        assert!(n.contains("10.53.0.25".parse().unwrap()));
        assert!(!n.contains("10.53.1.25".parse().unwrap()));
        assert!(n.contains("::ffff:10.53.0.9".parse().unwrap()));
        assert!(
            Net::parse("0.0.0.0/0")
                .unwrap()
                .contains("192.0.2.1".parse().unwrap())
        );
        assert!(
            Net::parse("2001:db8::/32")
                .unwrap()
                .contains("2001:db8::1".parse().unwrap())
        );
        assert!(
            !Net::parse("2001:db8::/32")
                .unwrap()
                .contains("10.0.0.1".parse().unwrap())
        );
        assert!(
            Net::parse("192.0.2.7")
                .unwrap()
                .contains("192.0.2.7".parse().unwrap())
        );
        assert!(Net::parse("10.0.0.0/33").is_err());
        assert!(Net::parse("mail.example").is_err());
    }
}
