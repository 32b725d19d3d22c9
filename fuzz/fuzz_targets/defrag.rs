//! Arbitrary fragment sequences through the IP reassembler with small caps:
//! nothing may panic, the table never exceeds its caps, and every datagram
//! released is counted once (completed or from its first fragment).
//!
//! The body is `mxwatch::fuzz::defrag`, which `cargo test` also runs on the
//! committed corpus (fuzz/seeds/defrag) and regressions (tests/fuzz-regressions).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mxwatch::fuzz::defrag(data));
