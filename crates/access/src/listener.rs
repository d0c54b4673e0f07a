//! The accept loop shared by POP3 and IMAP: one task per connection until
//! shutdown. Owns no protocol state.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use store::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::conn::{Conn, SessionError};
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
    run(listener, shutdown, move |tcp, peer| {
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
    tcp: TcpStream,
    peer: SocketAddr,
    protocol: Protocol,
    handler: &dyn AccessHandler,
    stats: &'s Arc<AccessStats>,
) -> Result<(Arc<AccessConfig>, SessionGuard<'s>, Conn), SessionError> {
    let config = handler.config(protocol);
    let mut guard = stats.of(protocol).session();
    let mut conn = Conn::new(tcp, peer, stats.clone(), protocol);
    if config.implicit_tls {
        let tls = config.tls.clone().ok_or_else(|| {
            SessionError::Tls(io::Error::other("implicit TLS without a certificate"))
        })?;
        conn = conn.start_tls(tls, config.idle_timeout).await?;
        guard.tls();
    }
    Ok((config, guard, conn))
}

/// Accepts connections and runs `session` for each until `shutdown` completes;
/// sessions still running then are ended.
pub(crate) async fn run<F, Fut>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    session: F,
) -> io::Result<()>
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut sessions = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    sessions.spawn(session(tcp, peer));
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
    sessions.shutdown().await;
    Ok(())
}
