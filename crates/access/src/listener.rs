//! The accept loop shared by POP3 and IMAP: one task per connection until
//! shutdown. Owns no protocol state.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

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
