//! Any bytes as a DNS message: the head parser never panics, keeps its name
//! bound, and agrees with itself on the question's name length.
//!
//! The body is `mxwatch::fuzz::dns_head`, which `cargo test` also runs on the
//! committed corpus (fuzz/seeds/dns_head) and regressions (tests/fuzz-regressions).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mxwatch::fuzz::dns_head(data));
