//! The settings of the SMTP client, taken from the Configuration Settings
//! document and the server document by whoever builds a [`crate::Transferer`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How host names are turned into addresses (`host_name_resolution`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Resolution {
    /// DNS: MX, then A/AAAA, through `dns_servers` (or the system resolver).
    #[default]
    Dns,
    /// A local hosts file (`/etc/hosts` format); no DNS query at all.
    Hosts(PathBuf),
}

/// Whether the client offers STARTTLS to servers that announce it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// STARTTLS whenever offered, accepting any certificate; whether it was
    /// verified against the system's roots is recorded in each attempt.
    #[default]
    Opportunistic,
    /// Never STARTTLS.
    Off,
}

/// Settings of the outbound SMTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferConfig {
    /// The name said in EHLO/HELO: the sending server's `hostname`.
    pub helo_name: String,
    /// `outbound_smtp_port`: used for MX hosts and relay hosts without a port.
    pub outbound_port: u16,
    /// `host_name_resolution`.
    pub host_name_resolution: Resolution,
    /// `dns_servers`; empty: the system resolver.
    pub dns_servers: Vec<SocketAddr>,
    /// TCP connect; also the time one DNS query may take (at most 5 s).
    pub connect_timeout: Duration,
    /// Waiting for the server's greeting.
    pub greeting_timeout: Duration,
    /// Each command's reply (EHLO, STARTTLS, MAIL, RCPT, DATA, RSET, QUIT)
    /// and the TLS handshake.
    pub command_timeout: Duration,
    /// Sending the message content, and waiting for the reply to its final dot.
    pub data_timeout: Duration,
    /// `SMTPClientDebug`: log every command and reply (never the content).
    pub client_debug: bool,
    pub tls: TlsMode,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            helo_name: "localhost".to_owned(),
            outbound_port: 25,
            host_name_resolution: Resolution::Dns,
            dns_servers: Vec::new(),
            connect_timeout: Duration::from_secs(30),
            greeting_timeout: Duration::from_secs(300),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            client_debug: false,
            tls: TlsMode::Opportunistic,
        }
    }
}
