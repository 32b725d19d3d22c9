//! mxwatch: a passive sensor that finds mail servers in trouble from the DNS
//! queries they send upstream and from their SMTP sessions.
//!
//! Data flow (one module per stage): `capture` -> `decode` -> `dns` / `smtp`
//! -> `classify` -> `detect` -> `output`, with `pipeline` wrapping the plain
//! stages in threads and channels.

pub mod decode;
pub mod smtp;
