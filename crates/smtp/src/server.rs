//! The accept loop: one task per connection until shutdown, within the
//! listener's session caps.
//!
//! Owns accepting, session ids and the count of sessions per listener and
//! per client address; everything said on an accepted connection belongs to
//! the session.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::session::run_with_config;
use crate::{ListenerConfig, ListenerKind, Refusal, Reply, SessionHandler, SessionInfo, SmtpStats};

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// How long a refused client gets to take its `421`.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A session id unique in this process.
pub fn next_session_id() -> u64 {
    NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed)
}

/// Sessions running on one listener: in all and per client address.
#[derive(Debug, Default)]
struct Sessions {
    total: usize,
    per_host: HashMap<IpAddr, usize>,
}

/// Which session cap a connection met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AtCap {
    /// The listener has `max_sessions` sessions.
    Busy,
    /// The client's address has `max_sessions_per_host` sessions.
    PerHost,
}

impl AtCap {
    fn kind(self) -> Refusal {
        match self {
            AtCap::Busy => Refusal::Busy,
            AtCap::PerHost => Refusal::PerHost,
        }
    }
}

/// One admitted session; dropping it gives its place back.
struct Slot {
    sessions: Arc<Mutex<Sessions>>,
    ip: IpAddr,
}

/// Admits a session from `ip` if the listener's caps allow it.
fn admit(
    sessions: &Arc<Mutex<Sessions>>,
    ip: IpAddr,
    config: &ListenerConfig,
) -> Result<Slot, AtCap> {
    let mut guard = sessions.lock().unwrap_or_else(PoisonError::into_inner);
    if guard.total >= config.max_sessions {
        return Err(AtCap::Busy);
    }
    let from_host = guard.per_host.entry(ip).or_insert(0);
    if *from_host >= config.max_sessions_per_host {
        return Err(AtCap::PerHost);
    }
    *from_host += 1;
    guard.total += 1;
    Ok(Slot {
        sessions: Arc::clone(sessions),
        ip,
    })
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut guard = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        guard.total = guard.total.saturating_sub(1);
        if let Some(n) = guard.per_host.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                guard.per_host.remove(&self.ip);
            }
        }
    }
}

/// The reply that refuses a connection over a cap.
fn refusal_reply(why: AtCap, hostname: &str) -> Reply {
    let text = match why {
        AtCap::Busy => format!("{hostname} Too many concurrent SMTP sessions; try again later"),
        AtCap::PerHost => {
            format!("{hostname} Too many sessions from your address; try again later")
        }
    };
    Reply::new(421, (4, 7, 0), text)
}

/// Answers `421` and closes. Implicit-TLS ports close without a word: a
/// plaintext reply would be garbage there, and a handshake is the work the
/// cap saves.
async fn refuse(mut stream: TcpStream, why: AtCap, config: Arc<ListenerConfig>) {
    if matches!(config.kind, ListenerKind::Smtps | ListenerKind::Native) {
        return;
    }
    let mut wire = Vec::with_capacity(128);
    refusal_reply(why, &config.hostname).write_to(&mut wire);
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(&wire).await?;
        stream.shutdown().await
    })
    .await;
}

/// Accepts connections until `shutdown` resolves; each session runs in its
/// own task (sessions already running are left to finish). Beyond
/// `max_sessions` concurrent sessions, or `max_sessions_per_host` from one
/// address, a connection gets `421 4.7.0` and is closed. Never panics on
/// input; transient accept errors (e.g. out of file descriptors) are logged
/// and retried.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<dyn SessionHandler>,
    stats: Arc<SmtpStats>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    tracing::debug!(target: "smtp", "SMTP Server: listening on {local}");
    let sessions = Arc::new(Mutex::new(Sessions::default()));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let config = handler.config();
                    let slot = match admit(&sessions, peer.ip().to_canonical(), &config) {
                        Ok(slot) => slot,
                        Err(why) => {
                            stats.refused(why.kind());
                            tracing::info!(
                                target: "smtp",
                                "SMTP Server: connection from {} refused: {}",
                                peer.ip(),
                                refusal_reply(why, &config.hostname)
                            );
                            tokio::spawn(refuse(stream, why, config));
                            continue;
                        }
                    };
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(target: "smtp", "SMTP Server: TCP_NODELAY for {peer}: {e}");
                    }
                    let local = stream.local_addr().unwrap_or(local);
                    let info = SessionInfo::new(peer, local, next_session_id());
                    let handler = Arc::clone(&handler);
                    let stats = Arc::clone(&stats);
                    tokio::spawn(run_with_config(stream, info, handler, config, stats, slot));
                }
                Err(e) => {
                    tracing::warn!(target: "smtp", "SMTP Server: accept failed on {local}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_listener_and_per_address() {
        let sessions = Arc::new(Mutex::new(Sessions::default()));
        let config = ListenerConfig {
            max_sessions: 3,
            max_sessions_per_host: 2,
            ..ListenerConfig::default()
        };
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let first = admit(&sessions, a, &config).expect("first");
        let _second = admit(&sessions, a, &config).expect("second");
        assert_eq!(admit(&sessions, a, &config).err(), Some(AtCap::PerHost));
        let third = admit(&sessions, b, &config).expect("another address");
        assert_eq!(admit(&sessions, b, &config).err(), Some(AtCap::Busy));
        drop(first);
        drop(third);
        let _again = admit(&sessions, a, &config).expect("a place was given back");
        assert_eq!(sessions.lock().expect("lock").per_host.get(&b), None);
    }
}
