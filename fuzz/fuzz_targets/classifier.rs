//! Events into one classifier + detector shard with small caps (8 clients,
//! 8 pending queries, short warm-up): DNS queries and responses built from
//! the fuzzer's bytes or taken raw (the pending table, the search-domain
//! learner, the client table's eviction), SMTP events of every kind, ticks
//! and time going back; closed bins merged and written as JSON. Nothing
//! panics, the client table stays within its cap, bins close in order.
//!
//! The body is `mxwatch::fuzz::classifier`, which `cargo test` also runs on the
//! committed corpus (fuzz/seeds/classifier) and regressions (tests/fuzz-regressions).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mxwatch::fuzz::classifier(data));
