//! The boundary between the listener and the server: facts about a session
//! and the questions the listener asks.
//!
//! Owns [`SessionInfo`], [`Envelope`] and the [`SessionHandler`] trait. Every
//! policy decision (who may send, who may receive, whether a password is
//! right) and the storing of a message belong to the handler, not here.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::{ListenerConfig, Reply};

/// What the listener knows about one SMTP session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The name the client gave in HELO/EHLO.
    pub helo: Option<String>,
    /// The session is encrypted (STARTTLS done, or implicit TLS).
    pub tls: bool,
    /// The identity returned by [`SessionHandler::authenticate`].
    pub authenticated: Option<String>,
    pub session_id: u64,
}

impl SessionInfo {
    /// A fresh session: no HELO, no TLS, not authenticated.
    pub fn new(peer: SocketAddr, local: SocketAddr, session_id: u64) -> SessionInfo {
        SessionInfo {
            peer,
            local,
            helo: None,
            tls: false,
            authenticated: None,
            session_id,
        }
    }

    /// The client connects from this machine (127.0.0.0/8, ::1, or ::ffff:127.x).
    pub fn peer_is_loopback(&self) -> bool {
        self.peer.ip().to_canonical().is_loopback()
    }

    /// Passwords may be sent in the clear only over TLS or from this machine.
    pub fn plaintext_auth_allowed(&self) -> bool {
        self.tls || self.peer_is_loopback()
    }

    /// [`SessionInfo::plaintext_auth_allowed`], or only over TLS when the
    /// server requires TLS for AUTH.
    pub fn auth_allowed(&self, require_tls: bool) -> bool {
        if require_tls {
            self.tls
        } else {
            self.plaintext_auth_allowed()
        }
    }
}

/// The envelope of the message being received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse path; empty for the null sender `<>`.
    pub from: String,
    /// Accepted recipients, in the order given, without duplicates.
    pub recipients: Vec<String>,
    /// The client declared `BODY=8BITMIME`.
    pub body_8bit: bool,
    /// The client's `SIZE=` estimate.
    pub size_hint: Option<u64>,
    /// Given with the message to [`SessionHandler::data`]: the length of the
    /// `Received:` header this server put on top; the client's content
    /// starts there.
    pub received_len: usize,
}

/// The server's side of a session: every decision and the storing of mail.
#[async_trait::async_trait]
pub trait SessionHandler: Send + Sync + 'static {
    /// The configuration for a new session (the directory may have been
    /// reloaded since the last one).
    fn config(&self) -> Arc<ListenerConfig>;

    /// May this client connect? Asked before the greeting (not on the native
    /// port); `Err` is sent instead of the greeting and the connection closed.
    async fn connect(&self, _session: &SessionInfo) -> Result<(), Reply> {
        Ok(())
    }

    /// The session ended, however it ended: what the handler kept about it
    /// may go.
    fn disconnected(&self, _session: &SessionInfo) {}

    /// May this sender send? `Err` is sent to the client as is.
    async fn mail_from(&self, _session: &SessionInfo, _from: &str) -> Result<(), Reply> {
        Ok(())
    }

    /// May this recipient receive (unknown user, relaying denied...)?
    async fn rcpt_to(&self, session: &SessionInfo, env: &Envelope, rcpt: &str)
    -> Result<(), Reply>;

    /// Checks a user name and password; `Some(identity)` on success.
    async fn authenticate(
        &self,
        session: &SessionInfo,
        user: &str,
        password: &str,
    ) -> Option<String>;

    /// Stores the message durably; `Ok(queue id)` makes the reply
    /// `250 2.0.0 Ok: queued as <id>`, `Err` is sent as is (e.g. 451 4.3.0).
    async fn data(
        &self,
        session: &SessionInfo,
        env: Envelope,
        message: Vec<u8>,
    ) -> Result<String, Reply>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(peer: &str) -> SessionInfo {
        let peer = peer.parse().expect("test address");
        let local = "127.0.0.1:25".parse().expect("test address");
        SessionInfo::new(peer, local, 1)
    }

    #[test]
    fn loopback_peers_may_send_plaintext_passwords() {
        assert!(info("127.0.0.1:4000").plaintext_auth_allowed());
        assert!(info("127.8.9.10:4000").plaintext_auth_allowed());
        assert!(info("[::1]:4000").plaintext_auth_allowed());
        assert!(info("[::ffff:127.0.0.1]:4000").plaintext_auth_allowed());
    }

    #[test]
    fn remote_peers_need_tls_for_plaintext_passwords() {
        let mut remote = info("203.0.113.7:4000");
        assert!(!remote.peer_is_loopback());
        assert!(!remote.plaintext_auth_allowed());
        remote.tls = true;
        assert!(remote.plaintext_auth_allowed());
        assert!(!info("[2001:db8::1]:4000").plaintext_auth_allowed());
    }
}
