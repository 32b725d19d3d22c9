//! Any bytes as a config file: parsing never panics; a config that passes
//! validation prints (`mxwatch config --check`) as a config that parses
//! again to the same text, gives settings, and an engine built from them
//! reads a few frames and finishes.
//!
//! The body is `mxwatch::fuzz::config`, which `cargo test` also runs on the
//! committed corpus (fuzz/seeds/config) and regressions (tests/fuzz-regressions).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mxwatch::fuzz::config(data));
