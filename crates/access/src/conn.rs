//! One client connection: plaintext or TLS (implicit or after STLS/STARTTLS),
//! with idle timeouts and byte counters. Owns the socket only; no protocol here.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::server::TlsStream;

use crate::{AccessStats, Protocol};

/// Why a session ended early. Only `TooLong` was answered to the client.
#[derive(Debug, Error)]
pub(crate) enum SessionError {
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    #[error("the client sent nothing for {0:?}")]
    IdleTimeout(Duration),
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    #[error("a line longer than {0} bytes before login")]
    TooLong(usize),
}

/// What a connection runs over: a TCP socket, or any stream that reads and
/// writes like one (the fuzz targets use an in-memory one).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

enum Stream {
    Plain(Box<dyn Io>),
    Tls(Box<TlsStream<Box<dyn Io>>>),
}

/// A connection with its peer and the counters it feeds.
pub(crate) struct Conn {
    stream: Stream,
    pub(crate) peer: SocketAddr,
    stats: Arc<AccessStats>,
    protocol: Protocol,
    /// Where reads land before they are handed out.
    scratch: Box<[u8]>,
}

/// Bytes read at most per call.
const CHUNK: usize = 64 * 1024;

impl Conn {
    pub(crate) fn new(
        stream: impl Io + 'static,
        peer: SocketAddr,
        stats: Arc<AccessStats>,
        protocol: Protocol,
    ) -> Conn {
        Conn {
            stream: Stream::Plain(Box::new(stream)),
            peer,
            stats,
            protocol,
            scratch: vec![0; CHUNK].into_boxed_slice(),
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Appends what the client sent next to `out`; `Ok(0)` at the end of the
    /// stream. Cancel-safe: if the future is dropped, `out` is unchanged and no
    /// byte is lost.
    pub(crate) async fn read_into(
        &mut self,
        out: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<usize, SessionError> {
        let scratch = &mut self.scratch[..];
        let read = match &mut self.stream {
            Stream::Plain(s) => tokio::time::timeout(timeout, s.read(scratch)).await,
            Stream::Tls(s) => tokio::time::timeout(timeout, s.read(scratch)).await,
        };
        let n = read.map_err(|_| SessionError::IdleTimeout(timeout))??;
        out.extend_from_slice(&self.scratch[..n]);
        self.stats.of(self.protocol).received(n);
        Ok(n)
    }

    pub(crate) async fn write_all(&mut self, data: &[u8]) -> Result<(), SessionError> {
        match &mut self.stream {
            Stream::Plain(s) => {
                s.write_all(data).await?;
                s.flush().await?;
            }
            Stream::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await?;
            }
        }
        self.stats.of(self.protocol).sent(data.len());
        Ok(())
    }

    /// Runs the TLS handshake (implicit TLS or after STLS/STARTTLS).
    pub(crate) async fn start_tls(
        self,
        config: Arc<rustls::ServerConfig>,
        timeout: Duration,
    ) -> Result<Conn, SessionError> {
        let Conn {
            stream,
            peer,
            stats,
            protocol,
            scratch,
        } = self;
        let tcp = match stream {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(_) => {
                return Err(SessionError::Tls(io::Error::other("TLS is already active")));
            }
        };
        let accept = tokio_rustls::TlsAcceptor::from(config).accept(tcp);
        let tls = tokio::time::timeout(timeout, accept)
            .await
            .map_err(|_| SessionError::IdleTimeout(timeout))?
            .map_err(SessionError::Tls)?;
        Ok(Conn {
            stream: Stream::Tls(Box::new(tls)),
            peer,
            stats,
            protocol,
            scratch,
        })
    }

    pub(crate) async fn shutdown(&mut self) {
        let _ = match &mut self.stream {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(s) => s.shutdown().await,
        };
    }
}
