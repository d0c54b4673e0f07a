//! SMTPDebug / SMTPDebugIO logging for one session (tracing target "smtp").
//!
//! Owns the decision of what a debug level shows; it never changes the
//! conversation.

use std::fmt;

/// Debug levels of one session and its id for every line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trace {
    pub(crate) debug: u8,
    pub(crate) debug_io: u8,
    pub(crate) session: u64,
}

/// `SMTPDebug` levels.
pub(crate) const CONNECTIONS: u8 = 1;
pub(crate) const COMMANDS: u8 = 2;
pub(crate) const DETAILS: u8 = 3;

impl Trace {
    /// Logs at `SMTPDebug >= level`.
    pub(crate) fn debug(&self, level: u8, args: fmt::Arguments<'_>) {
        if self.debug >= level {
            tracing::info!(target: "smtp", session = self.session, "{args}");
        }
    }

    /// Logs raw traffic: `SMTPDebugIO` 1 byte counts, 3 the bytes too.
    pub(crate) fn io(&self, direction: &str, bytes: &[u8]) {
        if self.debug_io >= 3 {
            tracing::info!(target: "smtp", session = self.session, "{direction} {} bytes: {}", bytes.len(), bytes.escape_ascii());
        } else if self.debug_io >= 1 {
            tracing::info!(target: "smtp", session = self.session, "{direction} {} bytes", bytes.len());
        }
    }

    /// Logs a received message's RFC 822 content at `SMTPDebugIO >= 4`.
    pub(crate) fn content(&self, message: &[u8]) {
        if self.debug_io >= 4 {
            tracing::info!(target: "smtp", session = self.session, "message content:\n{}", String::from_utf8_lossy(message));
        }
    }
}
