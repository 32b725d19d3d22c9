//! Unresolved-FQDN names: an already-qualified name with a local search
//! domain appended (`mail10.isp10.jp.sub.univ.test` = `mail10.isp10.jp` +
//! `sub.univ.test`), what glibc asks when a name it was given does not
//! resolve and the resolver's search list applies.
//!
//! "Already qualified" means the front part is a registrable name under a
//! suffix of the public suffix list (the `psl` crate, compiled from the list).
//! Local domains come from the configuration; without one, each client learns
//! its own: a suffix that keeps being appended to qualified names answered
//! NXDOMAIN. CDN names such as `www.example.com.edgekey.net` have the same
//! shape but resolve, which is why learning only counts NXDOMAIN answers.

/// NXDOMAIN answers to distinct qualified-name + suffix names before a suffix
/// is taken as the client's search domain.
pub const LEARN_MIN_NAMES: u32 = 3;
/// Candidate suffixes kept per client while learning (attacker-controlled names).
pub const LEARN_MAX_CANDIDATES: usize = 8;

/// Returns the qualified front part when `name` is `X.domain` and X is a
/// registrable name under a known public suffix.
pub fn unresolved_front<'a>(name: &'a str, domain: &str) -> Option<&'a str> {
    let front = name.strip_suffix(domain)?.strip_suffix('.')?;
    qualified(front).then_some(front)
}

/// X ends in a known public suffix with at least one label before it.
fn qualified(front: &str) -> bool {
    psl::domain(front.as_bytes()).is_some_and(|d| d.suffix().is_known())
}

/// Splits `name` into (qualified front, appended suffix of at least two labels).
/// Tries the longest suffix first: `a.example.com.sub.univ.test` gives
/// (`a.example.com`, `sub.univ.test`).
pub fn split_candidate(name: &str) -> Option<(&str, &str)> {
    let mut idx = 0;
    while let Some(dot) = name[idx..].find('.') {
        let cut = idx + dot;
        let (front, rest) = (&name[..cut], &name[cut + 1..]);
        idx = cut + 1;
        // The suffix needs two labels; the front needs two (name + public suffix).
        if !rest.contains('.') {
            break;
        }
        if front.contains('.') && qualified(front) {
            return Some((front, rest));
        }
    }
    None
}

/// Per-client learning of the appended search domain.
#[derive(Debug, Default, Clone)]
pub struct DomainLearner {
    pub learned: Option<std::sync::Arc<str>>,
    candidates: Vec<(Box<str>, u32, u64)>,
    /// Candidates dropped because the table was full.
    pub dropped: u64,
}

impl DomainLearner {
    /// Feeds the name of an NXDOMAIN answer; returns the domain when this
    /// answer made it learned.
    pub fn on_nxdomain(&mut self, name: &str) -> Option<&str> {
        if self.learned.is_some() {
            return None;
        }
        let (_, suffix) = split_candidate(name)?;
        let h = fast_hash(name.as_bytes());
        let pos = match self.candidates.iter().position(|(d, _, _)| &**d == suffix) {
            Some(p) => p,
            None if self.candidates.len() < LEARN_MAX_CANDIDATES => {
                self.candidates.push((suffix.into(), 0, 0));
                self.candidates.len() - 1
            }
            None => {
                self.dropped += 1;
                return None;
            }
        };
        let c = &mut self.candidates[pos];
        // Cheap distinctness: ignore a repeat of the previous name.
        if c.2 != h {
            c.1 += 1;
            c.2 = h;
        }
        if c.1 >= LEARN_MIN_NAMES {
            self.learned = Some((*c.0).into());
            self.candidates.clear();
            return self.learned.as_deref();
        }
        None
    }
}

/// Fast hash of a name for distinct counts within a run (fixed seeds: the
/// same on every run, so counts are reproducible).
pub fn fast_hash(name: &[u8]) -> u64 {
    static STATE: std::sync::LazyLock<ahash::RandomState> =
        std::sync::LazyLock::new(|| ahash::RandomState::with_seeds(0x6d78, 0x7761, 0x7463, 0x6821));
    STATE.hash_one(name)
}

/// FNV-1a: stable across versions and platforms (alert ids).
pub fn hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_must_be_qualified() {
        assert_eq!(
            unresolved_front("mail10.isp10.jp.sub.univ.test", "sub.univ.test"),
            Some("mail10.isp10.jp")
        );
        assert_eq!(
            unresolved_front("www.example.com.sub.univ.ac.jp", "sub.univ.ac.jp"),
            Some("www.example.com")
        );
        // A plain host of the local domain is not an appended FQDN.
        assert_eq!(unresolved_front("mx1.sub.univ.test", "sub.univ.test"), None);
        // A bare public suffix is not a registrable name.
        assert_eq!(unresolved_front("com.sub.univ.test", "sub.univ.test"), None);
        assert_eq!(unresolved_front("xsub.univ.test", "sub.univ.test"), None);
    }

    #[test]
    fn splits_at_the_longest_suffix() {
        assert_eq!(
            split_candidate("a.example.com.sub.univ.test"),
            Some(("a.example.com", "sub.univ.test"))
        );
        assert_eq!(split_candidate("www.example.com"), None);
        assert_eq!(split_candidate("mail.example.co.jp"), None);
    }

    #[test]
    fn learns_after_three_distinct_nxdomain_names() {
        let mut l = DomainLearner::default();
        assert_eq!(l.on_nxdomain("a.example.com.sub.univ.test"), None);
        assert_eq!(l.on_nxdomain("a.example.com.sub.univ.test"), None);
        assert_eq!(l.on_nxdomain("b.example.net.sub.univ.test"), None);
        assert_eq!(
            l.on_nxdomain("mail7.isp7.jp.sub.univ.test"),
            Some("sub.univ.test")
        );
    }
}
