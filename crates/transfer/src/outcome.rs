//! What the router hands over (a batch for one destination) and what it gets
//! back (per-recipient results and the attempts made). Plain data only.

use std::net::SocketAddr;
use std::sync::Arc;

use directory::RelayHosts;

/// Where a batch goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Through relay hosts (levels tried in order, hosts of a level balanced).
    Relay(RelayHosts),
    /// Directly to the exchangers of this recipient domain.
    Mx(String),
}

/// One message for recipients who share a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The reverse path; `""` is the null sender `<>`.
    pub from: String,
    pub recipients: Vec<String>,
    /// The message as stored (RFC 5322, CRLF line ends); dot-stuffed on the wire.
    pub data: Arc<Vec<u8>>,
    /// The size announced with SIZE= and checked against the server's limit.
    pub size: u64,
    /// The content is 8-bit MIME (sent with BODY=8BITMIME when offered).
    pub body_8bit: bool,
}

/// The outcome for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientResult {
    /// Accepted by `host`, whose reply to the final dot was `reply`.
    Delivered { host: String, reply: String },
    /// Will never succeed: a Delivery Failure Report reason, and its RFC
    /// 3463 status (the reply's enhanced code, or one for the failure).
    Permanent { reply: String, status: String },
    /// Try again later; `reason` is the last error.
    Transient { reason: String },
}

/// Whether a connection ran over TLS and whether its certificate chained to
/// a trusted root for the host's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsState {
    #[default]
    Plain,
    Unverified,
    Verified,
}

/// One try of one host (or one address of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The host as configured or found in DNS (`[10.0.0.1]`, `mx1.example.com`).
    pub host: String,
    /// None when the host name could not be resolved.
    pub addr: Option<SocketAddr>,
    /// The final reply when the message went through, else why the host failed.
    pub outcome: String,
    pub tls: TlsState,
}

/// Everything [`crate::Transferer::send`] learned about one batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransferReport {
    /// One entry per recipient of the batch, in the batch's order.
    pub results: Vec<(String, RecipientResult)>,
    pub attempts: Vec<Attempt>,
    /// Every recipient waits because DNS could not be asked (Mail.WaitingForDNS).
    pub waiting_for_dns: bool,
    /// The last host failure, if any host failed.
    pub last_error: Option<String>,
}

/// One address to connect to, as [`crate::Transferer::plan`] lists them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The host's name as configured or found in DNS, or `[ip]` for a literal.
    pub host: String,
    pub addr: SocketAddr,
}
