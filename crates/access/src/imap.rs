//! IMAP4rev1/IMAP4rev2 sessions over mail files.

use std::future::Future;
use std::io;
use std::sync::Arc;

use store::Store;
use tokio::net::TcpListener;

use crate::{AccessHandler, AccessStats};

/// Serves IMAP on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    handler: Arc<dyn AccessHandler>,
    stats: Arc<AccessStats>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let _ = (listener, store, handler, stats);
    shutdown.await;
    Ok(())
}
