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
    /// Silence from the client this long ends the session with `421 4.4.2`.
    pub idle_timeout: Duration,
    /// After this many bad commands the session is closed with `421`.
    pub max_errors: u32,
    /// `SMTPDebug` (0..4).
    pub debug: u8,
    /// `SMTPDebugIO` (0, 1, 3, 4).
    pub debug_io: u8,
}

impl ListenerConfig {
    /// The AUTH policy in force: submission ports always require AUTH.
    pub fn effective_auth(&self) -> AuthPolicy {
        match self.kind {
            ListenerKind::Submission => AuthPolicy::Required,
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
            max_errors: 20,
            debug: 0,
            debug_io: 0,
        }
    }
}
