//! Any bytes as the two directions of an SMTP session, cut into segments at
//! fuzzer-chosen points: the tracker never panics and stays within its caps.
//!
//! The body is `mxwatch::fuzz::smtp_stream`, which `cargo test` also runs on the
//! committed corpus (fuzz/seeds/smtp_stream) and regressions (tests/fuzz-regressions).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mxwatch::fuzz::smtp_stream(data));
