//! mailhop's access protocols: POP3 ([`pop3`]) and IMAP ([`imap`]) sessions over
//! the mail files of the `store` crate.
//!
//! This crate knows the protocols only. Who a user is and which mail file they
//! own is asked of an [`AccessHandler`] the server implements; it never routes
//! mail and never touches the directory.

mod conn;
#[doc(hidden)]
pub mod fuzzing;
pub mod imap;
mod listener;
mod lock;
pub mod pop3;
mod sasl;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use stats::AccessStats;

/// Settings of one protocol's listener.
#[derive(Clone, Debug)]
pub struct AccessConfig {
    /// The name in greetings.
    pub hostname: String,
    /// Certificates for STLS/STARTTLS and implicit TLS; `None`: plaintext only.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// TLS from the first byte (POP3S 995, IMAPS 993).
    pub implicit_tls: bool,
    /// A session that sends nothing for this long is closed (POP3 10 min, IMAP 30 min).
    pub idle_timeout: Duration,
    /// Longest command line accepted, in bytes.
    pub max_line: usize,
    /// Concurrent sessions of one listener; more are refused at connect.
    pub max_sessions: usize,
    /// Concurrent sessions of one listener from one client address.
    pub max_sessions_per_host: usize,
    /// Passwords only inside TLS, loopback clients included (the server's
    /// `require_tls_for_auth`).
    pub require_tls_for_login: bool,
}

impl AccessConfig {
    /// Defaults for `protocol`: no TLS, the RFC idle timeouts, 8 KB lines.
    pub fn new(hostname: impl Into<String>, protocol: Protocol) -> AccessConfig {
        AccessConfig {
            hostname: hostname.into(),
            tls: None,
            implicit_tls: false,
            idle_timeout: match protocol {
                Protocol::Pop3 => Duration::from_secs(10 * 60),
                Protocol::Imap => Duration::from_secs(30 * 60),
            },
            max_line: 8192,
            max_sessions: 1000,
            max_sessions_per_host: 50,
            require_tls_for_login: false,
        }
    }

    /// May a password be given now: inside TLS, or from this machine unless
    /// TLS is required ([`plaintext_login_allowed`]).
    pub fn login_allowed(&self, peer: SocketAddr, tls: bool) -> bool {
        if self.require_tls_for_login {
            tls
        } else {
            plaintext_login_allowed(peer, tls)
        }
    }
}

/// A user who logged in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    /// The person's full name.
    pub identity: String,
    /// The mail file they own, e.g. `mail/jdoe`.
    pub mail_file: String,
}

/// What the server decides for the access protocols.
#[async_trait::async_trait]
pub trait AccessHandler: Send + Sync + 'static {
    fn config(&self, protocol: Protocol) -> Arc<AccessConfig>;
    /// Check an Internet password (argon2, throttling and logging of failures are the server's job).
    async fn login(
        &self,
        peer: SocketAddr,
        protocol: Protocol,
        user: &str,
        password: &str,
    ) -> Option<Login>;
}

/// An access protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Pop3,
    Imap,
}

impl Protocol {
    /// The statistics prefix: `POP3` or `IMAP`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Pop3 => "POP3",
            Protocol::Imap => "IMAP",
        }
    }
}

/// Whether a password may be sent in the clear: only inside TLS, or from a
/// loopback peer (a local client cannot be sniffed on the wire).
pub fn plaintext_login_allowed(peer: SocketAddr, tls: bool) -> bool {
    tls || peer.ip().is_loopback()
        || match peer {
            SocketAddr::V6(v6) => v6.ip().to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
            SocketAddr::V4(_) => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_policy() {
        let remote: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let local6: SocketAddr = "[::1]:4000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:4000".parse().unwrap();
        let remote6: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
        assert!(!plaintext_login_allowed(remote, false));
        assert!(!plaintext_login_allowed(remote6, false));
        assert!(plaintext_login_allowed(remote, true));
        assert!(plaintext_login_allowed(local, false));
        assert!(plaintext_login_allowed(local6, false));
        assert!(plaintext_login_allowed(mapped, false));
    }
}
