//! Any bytes as the untrusted inputs of #14: a Frame Streams stream (file or
//! socket), each data frame as a dnstap protobuf, and every line as a BIND
//! query log line and a Postfix maillog line. Nothing panics; frames stay
//! within the Frame Streams limit; a dnstap message's bytes come from the frame.
//!
//! The body is `mxwatch::fuzz::inputs`, which `cargo test` also runs on the
//! committed corpus (fuzz/seeds/inputs) and regressions (tests/fuzz-regressions).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mxwatch::fuzz::inputs(data));
