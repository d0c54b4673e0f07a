//! Listener configuration: what one SMTP port offers and enforces.
//!
//! Owns the plain data the server hands the listener (limits, TLS, AUTH
//! policy, debug levels). It holds no policy about addresses or routing.

use std::sync::Arc;
use std::time::Duration;

/// What kind of port a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// Port 25 style: STARTTLS when configured, AUTH per [`AuthPolicy`].
    Smtp,
    /// Message submission (RFC 6409): AUTH is always required.
    Submission,
    /// Implicit TLS (RFC 8314): the TLS handshake comes before the greeting.
    Smtps,
    /// The native protocol between servers of one domain (the console's
    /// `NRPC`): implicit TLS whose configuration requires a client
    /// certificate; the peer's identity, read from it by
    /// [`ListenerConfig::peer_identity`], stands for AUTH. No AUTH command,
    /// no STARTTLS.
    Native,
}

/// The server's `smtp_auth` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthPolicy {
    /// MAIL FROM is refused (530) until the client authenticated.
    Required,
    /// AUTH is offered; anonymous mail is accepted too.
    Optional,
    /// AUTH is neither offered nor accepted.
    Off,
}

/// Reads the peer's identity from the certificates it presented.
pub type PeerIdentity = fn(&[rustls::pki_types::CertificateDer<'_>]) -> Option<String>;

/// Everything one SMTP listener needs to know; read once per session.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Host name used in the greeting, the EHLO reply and `Received:`.
    pub hostname: String,
    pub kind: ListenerKind,
    /// The server's `smtp_auth`; [`ListenerKind::Submission`] forces `Required`.
    pub auth: AuthPolicy,
    /// STARTTLS is offered when present; required for [`ListenerKind::Smtps`].
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Advertised with SIZE; larger messages get `552 5.3.4`.
    pub max_message_size: u64,
    /// Recipients beyond this many get `452 4.5.3`.
    pub max_recipients: usize,
    /// Longest command line accepted (without CRLF); at most 65,533.
    pub max_line_length: usize,
    /// Longest message line accepted during DATA (without CRLF).
    pub max_data_line_length: usize,
    /// Silence from the client this long (or a write the client does not
    /// take this long) ends the session with `421 4.4.2`.
    pub idle_timeout: Duration,
    /// A whole command line must arrive within this long of the prompt,
    /// however its bytes trickle in (`smtp_command_timeout`).
    pub command_timeout: Duration,
    /// The message after `354` must end within this long (`smtp_data_timeout`).
    pub data_timeout: Duration,
    /// The whole session must end within this long (`smtp_session_timeout`).
    pub session_timeout: Duration,
    /// After this many 5xx replies the session is closed with `421 4.7.0`
    /// (`smtp_hard_error_limit`, Postfix's `smtpd_hard_error_limit`).
    pub max_errors: u32,
    /// Concurrent sessions of one listener; more get `421 4.7.0` at connect
    /// (`smtp_max_sessions`).
    pub max_sessions: usize,
    /// Concurrent sessions of one listener from one client address
    /// (`smtp_max_sessions_per_host`).
    pub max_sessions_per_host: usize,
    /// Message bytes being received at once by all sessions sharing one
    /// [`SmtpStats`](crate::SmtpStats) (all listeners of a server); a message
    /// that does not fit gets `452 4.3.1` (`smtp_inflight_message_bytes`).
    pub inflight_message_bytes: u64,
    /// For [`ListenerKind::Native`]: who the peer is, from the certificates
    /// it presented (end entity first), or `None` if they name no server of
    /// the domain (the session is then refused with `530 5.7.0`).
    pub peer_identity: Option<PeerIdentity>,
    /// AUTH only inside TLS, loopback clients included (the server's
    /// `require_tls_for_auth`); otherwise a client on this machine may
    /// authenticate without TLS.
    pub require_tls_for_auth: bool,
    /// `SMTPDebug` (0..4).
    pub debug: u8,
    /// `SMTPDebugIO` (0, 1, 3, 4).
    pub debug_io: u8,
}

impl ListenerConfig {
    /// The AUTH policy in force: submission ports always require AUTH.
    pub fn effective_auth(&self) -> AuthPolicy {
        match self.kind {
            ListenerKind::Submission | ListenerKind::Native => AuthPolicy::Required,
            ListenerKind::Smtp | ListenerKind::Smtps => self.auth,
        }
    }
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            hostname: "localhost".to_owned(),
            kind: ListenerKind::Smtp,
            auth: AuthPolicy::Optional,
            tls: None,
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 1000,
            max_line_length: 4096,
            max_data_line_length: 1_000_000,
            idle_timeout: Duration::from_secs(300),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(15 * 60),
            session_timeout: Duration::from_secs(3600),
            max_errors: 20,
            max_sessions: 1000,
            max_sessions_per_host: 50,
            inflight_message_bytes: 512 * 1024 * 1024,
            peer_identity: None,
            require_tls_for_auth: false,
            debug: 0,
            debug_io: 0,
        }
    }
}
