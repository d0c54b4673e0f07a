//! The accept loop: one task per connection until shutdown.
//!
//! Owns accepting and session ids only; everything said on a connection
//! belongs to the session.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::{SessionHandler, SessionInfo, SmtpStats, run_session};

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// A session id unique in this process.
pub fn next_session_id() -> u64 {
    NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed)
}

/// Accepts connections until `shutdown` resolves; each session runs in its
/// own task (sessions already running are left to finish). Never panics on
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
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(target: "smtp", "SMTP Server: TCP_NODELAY for {peer}: {e}");
                    }
                    let local = stream.local_addr().unwrap_or(local);
                    let info = SessionInfo::new(peer, local, next_session_id());
                    tokio::spawn(run_session(stream, info, Arc::clone(&handler), Arc::clone(&stats)));
                }
                Err(e) => {
                    tracing::warn!(target: "smtp", "SMTP Server: accept failed on {local}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}
