//! mxwatch: a passive sensor that finds mail servers in trouble from the DNS
//! queries they send upstream and from their SMTP sessions.
//!
//! Data flow (one module per stage, each importing only those before it;
//! `tests/layering.rs` checks it): `capture` -> `decode` -> `dns` / `smtp`
//! -> `classify` -> `detect` -> `output`; `engine` runs them all on one
//! thread, `pipeline` wraps the engine's pieces in threads and channels, and
//! `run` / `report` are the commands. See docs/architecture.md.

pub mod action;
pub mod capture;
pub mod classify;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod decode;
pub mod detect;
pub mod dns;
pub mod engine;
pub mod event;
pub mod fuzz;
pub mod input;
pub mod output;
pub mod packet;
pub mod pipeline;
pub mod report;
pub mod run;
pub mod smtp;
pub mod time;

/// Hash map for tables keyed by what the wire says (addresses, flows, names):
/// aHash with a per-process random key, fast and resistant to collision floods.
pub type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
pub type FastSet<K> = std::collections::HashSet<K, ahash::RandomState>;
