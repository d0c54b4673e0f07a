//! Relay host lists as the directory hands them over: preference levels of
//! hosts. This module only holds the shapes; parsing `relay_host` strings is
//! the directory's job.
// TODO: use directory's RelayHosts / RelayHost / RelayTarget once that crate exports them.

use std::net::IpAddr;

/// A parsed `relay_host` value: `;`-separated preference levels (failover, in
/// order), each a `,`-separated list of hosts (load balancing).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelayHosts {
    pub levels: Vec<Vec<RelayHost>>,
}

/// One relay host: a name or an address literal, with an optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayHost {
    pub host: RelayTarget,
    pub port: Option<u16>,
}

/// What a relay host names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayTarget {
    /// A host or domain name: looked up as MX first, then A/AAAA.
    Name(String),
    /// A bracketed address literal: used as is.
    Ip(IpAddr),
}
