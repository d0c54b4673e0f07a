//! The accept loop shared by POP3 and IMAP: one task per connection until
//! shutdown, within the listener's session caps (`max_sessions` in all,
//! `max_sessions_per_host` per client address). Owns no protocol state.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use store::Store;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::conn::{Conn, Io, SessionError};
use crate::stats::SessionGuard;
use crate::{AccessConfig, AccessHandler, AccessStats, Protocol};

/// Serves `protocol` on `listener` until `shutdown` completes: each
/// connection runs `session`; how one ended is logged at debug level.
pub(crate) async fn serve<F, Fut>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    protocol: Protocol,
    store: Store,
    handler: Arc<dyn AccessHandler>,
    stats: Arc<AccessStats>,
    session: F,
) -> io::Result<()>
where
    F: Fn(TcpStream, SocketAddr, Store, Arc<dyn AccessHandler>, Arc<AccessStats>) -> Fut,
    Fut: Future<Output = Result<(), SessionError>> + Send + 'static,
{
    let limits = handler.clone();
    let limits = move || {
        let config = limits.config(protocol);
        (
            config.max_sessions,
            config.max_sessions_per_host,
            config.implicit_tls,
        )
    };
    run(listener, shutdown, protocol, limits, move |tcp, peer| {
        let ended = session(tcp, peer, store.clone(), handler.clone(), stats.clone());
        async move {
            if let Err(e) = ended.await {
                tracing::debug!("{} session with {peer} ended: {e}", protocol.name());
            }
        }
    })
    .await
}

/// The start every session shares: its configuration, its statistics, and
/// the TLS handshake when the port is implicit TLS.
pub(crate) async fn open<'s>(
    stream: impl Io + 'static,
    peer: SocketAddr,
    protocol: Protocol,
    handler: &dyn AccessHandler,
    stats: &'s Arc<AccessStats>,
) -> Result<(Arc<AccessConfig>, SessionGuard<'s>, Conn), SessionError> {
    let config = handler.config(protocol);
    let mut guard = stats.of(protocol).session();
    let mut conn = Conn::new(stream, peer, stats.clone(), protocol);
    if config.implicit_tls {
        let tls = config.tls.clone().ok_or_else(|| {
            SessionError::Tls(io::Error::other("implicit TLS without a certificate"))
        })?;
        conn = conn.start_tls(tls, config.idle_timeout).await?;
        guard.tls();
    }
    Ok((config, guard, conn))
}

/// Sessions running on one listener: in all and per client address.
#[derive(Debug, Default)]
struct Sessions {
    total: usize,
    per_host: HashMap<IpAddr, usize>,
}

/// Why a connection was refused at connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Busy,
    PerHost,
}

/// One admitted session; dropping it gives its place back.
struct Slot {
    sessions: Arc<Mutex<Sessions>>,
    ip: IpAddr,
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

/// Admits a session from `ip` if fewer than `max` run in all and fewer
/// than `per_host` from that address.
fn admit(
    sessions: &Arc<Mutex<Sessions>>,
    ip: IpAddr,
    max: usize,
    per_host: usize,
) -> Result<Slot, Refusal> {
    let mut guard = sessions.lock().unwrap_or_else(PoisonError::into_inner);
    if guard.total >= max {
        return Err(Refusal::Busy);
    }
    let from_host = guard.per_host.entry(ip).or_insert(0);
    if *from_host >= per_host {
        return Err(Refusal::PerHost);
    }
    *from_host += 1;
    guard.total += 1;
    Ok(Slot {
        sessions: Arc::clone(sessions),
        ip,
    })
}

/// The line that refuses a connection over a cap.
fn refusal_line(protocol: Protocol, why: Refusal) -> &'static [u8] {
    match (protocol, why) {
        (Protocol::Pop3, Refusal::Busy) => b"-ERR [SYS/TEMP] too many sessions\r\n",
        (Protocol::Pop3, Refusal::PerHost) => {
            b"-ERR [SYS/TEMP] too many sessions from your address\r\n"
        }
        (Protocol::Imap, Refusal::Busy) => b"* BYE too many sessions\r\n",
        (Protocol::Imap, Refusal::PerHost) => b"* BYE too many sessions from your address\r\n",
    }
}

/// Says why and closes. Implicit-TLS ports close without a word: plaintext
/// would be garbage there, and a handshake is the work the cap saves.
async fn refuse(mut tcp: TcpStream, line: &'static [u8], implicit_tls: bool) {
    if implicit_tls {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        tcp.write_all(line).await?;
        tcp.shutdown().await
    })
    .await;
}

/// Accepts connections and runs `session` for each until `shutdown` completes;
/// sessions still running then are ended. `limits` gives the caps in force
/// (all sessions, per address) and whether the port is implicit TLS.
pub(crate) async fn run<F, Fut, L>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    protocol: Protocol,
    limits: L,
    session: F,
) -> io::Result<()>
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
    L: Fn() -> (usize, usize, bool),
{
    let mut sessions = JoinSet::new();
    let running = Arc::new(Mutex::new(Sessions::default()));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let (max, per_host, implicit_tls) = limits();
                    match admit(&running, peer.ip().to_canonical(), max, per_host) {
                        Ok(slot) => {
                            let _ = tcp.set_nodelay(true);
                            let running = session(tcp, peer);
                            sessions.spawn(async move {
                                running.await;
                                drop(slot);
                            });
                        }
                        Err(why) => {
                            let line = refusal_line(protocol, why);
                            tracing::info!(
                                "{} Server: connection from {} refused: {}",
                                protocol.name(),
                                peer.ip(),
                                String::from_utf8_lossy(line).trim_end()
                            );
                            tokio::spawn(refuse(tcp, line, implicit_tls));
                        }
                    }
                }
                Err(e) => {
                    // Out of descriptors and the like: wait a moment, keep listening.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    // Stop listening at once; then end the sessions still running.
    drop(listener);
    sessions.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_in_all_and_per_address() {
        let running = Arc::new(Mutex::new(Sessions::default()));
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let first = admit(&running, a, 3, 2).expect("first");
        let _second = admit(&running, a, 3, 2).expect("second");
        assert_eq!(admit(&running, a, 3, 2).err(), Some(Refusal::PerHost));
        let _third = admit(&running, b, 3, 2).expect("other address");
        assert_eq!(admit(&running, b, 3, 2).err(), Some(Refusal::Busy));
        drop(first);
        assert!(admit(&running, a, 3, 2).is_ok(), "a place was given back");
    }
}
