//! Real peers for tests (never used by the server): an authoritative DNS
//! server for the zone `test.` on a loopback port, so that tests resolve MX
//! and A records without ever asking the system resolver.

pub mod dns;

pub use dns::{Dns, Rr};
