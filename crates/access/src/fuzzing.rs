//! Entry points for the fuzz targets in `crates/access/fuzz` and the tests
//! that replay what they found; not an API (hidden from the docs, may
//! change at any time).

use std::net::SocketAddr;
use std::sync::Arc;

use store::Store;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::{AccessHandler, AccessStats};

/// Runs one IMAP session over `stream` as if `peer` had connected to the
/// listener; the error is why it ended early.
pub async fn imap_session(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
    peer: SocketAddr,
    store: Store,
    handler: Arc<dyn AccessHandler>,
    stats: Arc<AccessStats>,
) -> Result<(), String> {
    crate::imap::session(stream, peer, store, handler, stats)
        .await
        .map_err(|e| e.to_string())
}

/// Runs one POP3 session over `stream`, likewise.
pub async fn pop3_session(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
    peer: SocketAddr,
    store: Store,
    handler: Arc<dyn AccessHandler>,
    stats: Arc<AccessStats>,
) -> Result<(), String> {
    crate::pop3::session(stream, peer, store, handler, stats)
        .await
        .map_err(|e| e.to_string())
}
