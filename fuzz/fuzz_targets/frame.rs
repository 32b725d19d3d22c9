//! Any bytes as a frame of any link type, through the whole capture-side
//! decoder (link/IP/transport, DNS over TCP reassembly, SMTP tracking), then
//! the DNS head parser on every DNS message found: nothing may panic, and
//! the fast path must agree with etherparse wherever it answers.
//!
//! The body is `mxwatch::fuzz::frame`, which `cargo test` also runs on the
//! committed corpus (fuzz/seeds/frame) and regressions (tests/fuzz-regressions).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mxwatch::fuzz::frame(data));
