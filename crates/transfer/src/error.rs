//! Errors of building a transferer and of planning a route, in the words an
//! administrator reads.

use std::path::PathBuf;

use thiserror::Error;

/// A [`crate::Transferer`] could not be built from its configuration.
#[derive(Debug, Error)]
pub enum TransferError {
    #[error("cannot read the hosts file {path}: {source}")]
    HostsFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(String),
    #[error("cannot set up TLS for outbound SMTP: {0}")]
    Tls(#[from] rustls::Error),
}

/// No host could be found for a destination.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    /// The domain does not exist, publishes a null MX, or names no address.
    #[error("No route found to domain {0}.  Check DNS configuration.")]
    NoRoute(String),
    /// DNS could not be asked (timeout, SERVFAIL, no server reachable).
    #[error("DNS is unavailable, message will be requeued.")]
    DnsUnavailable,
    /// Relay hosts were given but none of them has an address.
    #[error("Unable to find an address for relay host {0}")]
    NoAddress(String),
    /// The relay host list is empty.
    #[error("No relay host is configured")]
    NoRelayHost,
}
