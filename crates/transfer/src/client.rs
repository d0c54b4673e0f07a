//! One outbound SMTP connection: connect, greeting, EHLO (HELO fallback),
//! STARTTLS, one mail transaction with per-recipient replies, RSET, QUIT.
//! Every read and write runs under its phase's timeout and every reply is
//! bounded. Knows nothing of DNS, failover or the connection cache.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;

use crate::config::TransferConfig;
use crate::outcome::{Batch, RecipientResult, Target, TlsState};
use crate::reply::{MAX_LINE, MAX_LINES, Reply, parse_line};
use crate::tls::TlsClient;

/// The longest a polite QUIT may take before the connection is just closed.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The step of the conversation, for timeouts and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Mail,
    Rcpt,
    Data,
    /// The content and the reply to its final dot.
    Message,
    Rset,
    Quit,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Greeting => "the greeting",
            Self::Ehlo => "EHLO",
            Self::Helo => "HELO",
            Self::StartTls => "STARTTLS",
            Self::Mail => "MAIL FROM",
            Self::Rcpt => "RCPT TO",
            Self::Data => "DATA",
            Self::Message => "the message content",
            Self::Rset => "RSET",
            Self::Quit => "QUIT",
        })
    }
}

/// Why a host could not take the message; the text is the reason logged and
/// kept as the last error.
#[derive(Debug, Error)]
pub(crate) enum SessionError {
    #[error("Server not responding")]
    ConnectTimeout,
    #[error("Server not responding ({0})")]
    Connect(String),
    #[error("Server not responding (no reply to {0} in time)")]
    Timeout(Phase),
    #[error("Connection closed by the server during {0}")]
    Closed(Phase),
    #[error("Network error during {phase}: {source}")]
    Io {
        phase: Phase,
        #[source]
        source: io::Error,
    },
    #[error("{}", .reply.error_text())]
    Rejected { phase: Phase, reply: Reply },
    #[error("Invalid SMTP reply to {phase}: {detail}")]
    Protocol { phase: Phase, detail: String },
    #[error("TLS negotiation failed: {0}")]
    Tls(io::Error),
}

impl SessionError {
    /// The message may have reached the server: the connection failed after
    /// the content was sent and before its reply was read.
    pub(crate) fn is_uncertain(&self) -> bool {
        matches!(
            self,
            Self::Timeout(Phase::Message)
                | Self::Closed(Phase::Message)
                | Self::Io {
                    phase: Phase::Message,
                    ..
                }
        )
    }

    fn io(phase: Phase, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            Self::Closed(phase)
        } else {
            Self::Io { phase, source }
        }
    }
}

/// What the server announced in its EHLO reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Capabilities {
    pub(crate) pipelining: bool,
    /// SIZE: the largest message it takes (0: no fixed limit).
    pub(crate) size: Option<u64>,
    pub(crate) starttls: bool,
    pub(crate) eight_bit_mime: bool,
}

impl Capabilities {
    pub(crate) fn from_ehlo(reply: &Reply) -> Self {
        let mut caps = Self::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "STARTTLS" => caps.starttls = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                _ => {}
            }
        }
        caps
    }
}

/// The per-phase time limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) greeting: Duration,
    pub(crate) command: Duration,
    pub(crate) data: Duration,
}

impl From<&TransferConfig> for Timeouts {
    fn from(cfg: &TransferConfig) -> Self {
        Self {
            connect: cfg.connect_timeout,
            greeting: cfg.greeting_timeout,
            command: cfg.command_timeout,
            data: cfg.data_timeout,
        }
    }
}

/// The byte stream under a session: plain TCP, or TLS after STARTTLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An open SMTP connection, greeted and introduced (EHLO/HELO done).
pub(crate) struct Session {
    stream: Stream,
    /// Bytes read and not yet consumed.
    replies: ReplyReader,
    caps: Capabilities,
    tls: TlsState,
    target: Target,
    timeouts: Timeouts,
    /// `SMTPClientDebug`: log commands and replies.
    pub(crate) debug: bool,
}

impl Session {
    /// Connects, reads the greeting, says EHLO (HELO if EHLO is refused) and,
    /// when `tls` is given and the server offers it, STARTTLS.
    pub(crate) async fn open(
        target: &Target,
        helo_name: &str,
        timeouts: Timeouts,
        debug: bool,
        tls: Option<&TlsClient>,
    ) -> Result<Self, SessionError> {
        let tcp = connect(target, timeouts, debug).await?;
        let mut session = Self {
            stream: Stream::Plain(tcp),
            replies: ReplyReader::default(),
            caps: Capabilities::default(),
            tls: TlsState::Plain,
            target: target.clone(),
            timeouts,
            debug,
        };
        session.greeted(helo_name).await?;
        match tls {
            Some(tls) if session.caps.starttls => session.start_tls(tls, helo_name).await,
            _ => Ok(session),
        }
    }

    /// The native protocol: connects, runs the TLS handshake at once (the
    /// connector presents this server's ID and trusts only the domain's
    /// certifier; `name` is the peer's expected name), then the greeting
    /// and EHLO. A peer that is not the server expected fails the handshake.
    pub(crate) async fn open_native(
        target: &Target,
        helo_name: &str,
        timeouts: Timeouts,
        debug: bool,
        connector: &tokio_rustls::TlsConnector,
        name: rustls::pki_types::ServerName<'static>,
    ) -> Result<Self, SessionError> {
        let tcp = connect(target, timeouts, debug).await?;
        let stream = match timeout(timeouts.command, connector.connect(name, tcp)).await {
            Err(_) => return Err(SessionError::Tls(io::ErrorKind::TimedOut.into())),
            Ok(Err(e)) => return Err(SessionError::Tls(e)),
            Ok(Ok(stream)) => stream,
        };
        let mut session = Self {
            stream: Stream::Tls(Box::new(stream)),
            replies: ReplyReader::default(),
            caps: Capabilities::default(),
            tls: TlsState::Verified,
            target: target.clone(),
            timeouts,
            debug,
        };
        session.greeted(helo_name).await?;
        Ok(session)
    }

    /// Reads the greeting and says EHLO.
    async fn greeted(&mut self, helo_name: &str) -> Result<(), SessionError> {
        let greeting = self
            .read_reply(Phase::Greeting, self.timeouts.greeting)
            .await?;
        if !greeting.is_positive() {
            return Err(refused(Phase::Greeting, greeting));
        }
        self.hello(helo_name).await
    }

    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    pub(crate) fn tls(&self) -> TlsState {
        self.tls
    }

    /// EHLO, or HELO when the server refuses EHLO permanently.
    async fn hello(&mut self, helo_name: &str) -> Result<(), SessionError> {
        let ehlo = self
            .command(Phase::Ehlo, &format!("EHLO {helo_name}"))
            .await?;
        if ehlo.is_positive() {
            self.caps = Capabilities::from_ehlo(&ehlo);
            return Ok(());
        }
        if !ehlo.is_permanent() {
            return Err(refused(Phase::Ehlo, ehlo));
        }
        let helo = self
            .command(Phase::Helo, &format!("HELO {helo_name}"))
            .await?;
        if !helo.is_positive() {
            return Err(refused(Phase::Helo, helo));
        }
        self.caps = Capabilities::default();
        Ok(())
    }

    /// STARTTLS and a new EHLO. A refused STARTTLS leaves the session in
    /// plain text; a failed handshake is an error (the caller may retry
    /// without TLS).
    async fn start_tls(mut self, tls: &TlsClient, helo_name: &str) -> Result<Self, SessionError> {
        let reply = self.command(Phase::StartTls, "STARTTLS").await?;
        if reply.code != 220 {
            tracing::debug!(
                target: "transfer",
                "SMTPClient: STARTTLS refused by {} ({reply}), continuing without TLS",
                self.target.host
            );
            return Ok(self);
        }
        let Self {
            stream: Stream::Plain(tcp),
            target,
            timeouts,
            debug,
            ..
        } = self
        else {
            return Ok(self);
        };
        // Anything the server sent after its 220 is dropped with the old buffer.
        let (stream, state) = match timeout(timeouts.command, tls.handshake(tcp, &target)).await {
            Err(_) => return Err(SessionError::Tls(io::ErrorKind::TimedOut.into())),
            Ok(Err(e)) => return Err(SessionError::Tls(e)),
            Ok(Ok(done)) => done,
        };
        let mut session = Self {
            stream: Stream::Tls(Box::new(stream)),
            replies: ReplyReader::default(),
            caps: Capabilities::default(),
            tls: state,
            target,
            timeouts,
            debug,
        };
        session.hello(helo_name).await?;
        Ok(session)
    }

    /// Clears a previous transaction before the connection is used again.
    pub(crate) async fn rset(&mut self) -> Result<(), SessionError> {
        let reply = self.command(Phase::Rset, "RSET").await?;
        if reply.is_positive() {
            Ok(())
        } else {
            Err(refused(Phase::Rset, reply))
        }
    }

    /// One mail transaction. `Ok` holds one result per recipient of the batch
    /// (the host answered for each); `Err` means the host failed and none of
    /// the recipients was settled by it. `reset`: a connection used before is
    /// cleared (RSET) first; an answer that it is not usable is an error of
    /// the RSET phase, before any of the message was sent.
    pub(crate) async fn send(
        &mut self,
        batch: &Batch,
        reset: bool,
    ) -> Result<Vec<RecipientResult>, SessionError> {
        let mut results: Vec<Option<RecipientResult>> = batch
            .recipients
            .iter()
            .map(|rcpt| {
                (rcpt.is_empty() || !is_safe_path(rcpt)).then(|| RecipientResult::Permanent {
                    reply: format!("Invalid recipient address {rcpt:?}"),
                    status: "5.1.3".into(),
                })
            })
            .collect();
        if let Some(permanent) = self.refuse_whole_message(batch) {
            return Ok(vec![permanent; batch.recipients.len()]);
        }
        let pending: Vec<usize> = (0..results.len())
            .filter(|&i| results[i].is_none())
            .collect();
        if pending.is_empty() {
            return Ok(finish(results));
        }

        let mut mail = format!("MAIL FROM:<{}>", batch.from);
        if self.caps.size.is_some() {
            mail.push_str(&format!(" SIZE={}", batch.size));
        }
        if batch.body_8bit && self.caps.eight_bit_mime {
            mail.push_str(" BODY=8BITMIME");
        }
        let rcpts: Vec<String> = pending
            .iter()
            .map(|&i| format!("RCPT TO:<{}>", batch.recipients[i]))
            .collect();

        let mut replies = Vec::with_capacity(rcpts.len());
        // With PIPELINING (RFC 2920) RSET, MAIL, every RCPT and DATA go in one
        // write, DATA last: one round trip before the content.
        let (mail_reply, data_reply) = if self.caps.pipelining {
            let mut group = String::new();
            let reset_line = reset.then_some("RSET");
            let lines = reset_line
                .into_iter()
                .chain(std::iter::once(mail.as_str()))
                .chain(rcpts.iter().map(String::as_str))
                .chain(std::iter::once("DATA"));
            for line in lines {
                self.log_sent(line);
                group.push_str(line);
                group.push_str("\r\n");
            }
            let first = if reset { Phase::Rset } else { Phase::Mail };
            self.write(first, group.as_bytes(), self.timeouts.command)
                .await?;
            if reset {
                let reply = self.read_reply(Phase::Rset, self.timeouts.command).await?;
                if !reply.is_positive() {
                    return Err(refused(Phase::Rset, reply));
                }
            }
            let mail_reply = self.read_reply(Phase::Mail, self.timeouts.command).await?;
            for _ in &rcpts {
                replies.push(self.read_reply(Phase::Rcpt, self.timeouts.command).await?);
            }
            let data_reply = self.read_reply(Phase::Data, self.timeouts.command).await?;
            (mail_reply, Some(data_reply))
        } else {
            if reset {
                self.rset().await?;
            }
            let mail_reply = self.command(Phase::Mail, &mail).await?;
            if mail_reply.is_positive() {
                for rcpt in &rcpts {
                    replies.push(self.command(Phase::Rcpt, rcpt).await?);
                }
            }
            (mail_reply, None)
        };
        if mail_reply.is_permanent() {
            self.abandon_data(data_reply.as_ref()).await?;
            for &i in &pending {
                results[i] = Some(RecipientResult::Permanent {
                    reply: mail_reply.error_text(),
                    status: mail_reply.enhanced_status(),
                });
            }
            return Ok(finish(results));
        }
        if !mail_reply.is_positive() {
            return Err(refused(Phase::Mail, mail_reply));
        }

        let mut accepted = Vec::new();
        for (&i, reply) in pending.iter().zip(replies) {
            if reply.is_positive() {
                accepted.push(i);
            } else if reply.code == 421 {
                return Err(SessionError::Rejected {
                    phase: Phase::Rcpt,
                    reply,
                });
            } else if reply.is_permanent() {
                results[i] = Some(RecipientResult::Permanent {
                    reply: reply.error_text(),
                    status: reply.enhanced_status(),
                });
            } else if reply.is_transient() {
                results[i] = Some(RecipientResult::Transient {
                    reason: reply.error_text(),
                });
            } else {
                return Err(refused(Phase::Rcpt, reply));
            }
        }
        if accepted.is_empty() {
            self.abandon_data(data_reply.as_ref()).await?;
            return Ok(finish(results));
        }

        let data = match data_reply {
            Some(reply) => reply,
            None => self.command(Phase::Data, "DATA").await?,
        };
        let final_reply = if data.code == 354 {
            self.write(Phase::Message, &dot_stuff(&batch.data), self.timeouts.data)
                .await?;
            self.read_reply(Phase::Message, self.timeouts.data).await?
        } else if data.is_permanent() {
            data
        } else {
            return Err(refused(Phase::Data, data));
        };
        let outcome = if final_reply.is_positive() {
            RecipientResult::Delivered {
                host: self.target.host.clone(),
                reply: final_reply.to_string(),
            }
        } else if final_reply.is_permanent() {
            RecipientResult::Permanent {
                reply: final_reply.error_text(),
                status: final_reply.enhanced_status(),
            }
        } else {
            return Err(refused(Phase::Message, final_reply));
        };
        for i in accepted {
            results[i] = Some(outcome.clone());
        }
        Ok(finish(results))
    }

    /// A reason that fails every recipient before anything is sent: the
    /// message is over the server's SIZE, or the sender address is unusable.
    fn refuse_whole_message(&self, batch: &Batch) -> Option<RecipientResult> {
        if let Some(max) = self.caps.size
            && max > 0
            && batch.size > max
        {
            return Some(RecipientResult::Permanent {
                reply: format!(
                    "Message size {} bytes exceeds the maximum message size {} bytes of host {}",
                    batch.size, max, self.target.host
                ),
                status: "5.3.4".into(),
            });
        }
        (!is_safe_path(&batch.from)).then(|| RecipientResult::Permanent {
            reply: format!("Invalid sender address {:?}", batch.from),
            status: "5.1.7".into(),
        })
    }

    /// A pipelined DATA that the server took although no recipient was
    /// accepted: an empty content ends it, so the connection stays in step.
    async fn abandon_data(&mut self, data_reply: Option<&Reply>) -> Result<(), SessionError> {
        if data_reply.is_some_and(|r| r.code == 354) {
            self.log_sent(".");
            self.write(Phase::Data, b".\r\n", self.timeouts.command)
                .await?;
            self.read_reply(Phase::Data, self.timeouts.command).await?;
        }
        Ok(())
    }

    /// QUIT and close, without waiting long for a server that does not answer.
    pub(crate) async fn quit(mut self) {
        let limit = QUIT_TIMEOUT.min(self.timeouts.command);
        let polite = async {
            self.log_sent("QUIT");
            self.stream.write_all(b"QUIT\r\n").await.ok()?;
            self.read_reply_unbounded(Phase::Quit).await.ok()?;
            self.stream.shutdown().await.ok()
        };
        let _ = timeout(limit, polite).await;
    }

    /// Writes one command line and reads its reply.
    async fn command(&mut self, phase: Phase, line: &str) -> Result<Reply, SessionError> {
        self.log_sent(line);
        let wire = format!("{line}\r\n");
        self.write(phase, wire.as_bytes(), self.timeouts.command)
            .await?;
        self.read_reply(phase, self.timeouts.command).await
    }

    async fn write(
        &mut self,
        phase: Phase,
        bytes: &[u8],
        limit: Duration,
    ) -> Result<(), SessionError> {
        let write = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match timeout(limit, write).await {
            Err(_) => Err(SessionError::Timeout(phase)),
            Ok(Err(e)) => Err(SessionError::io(phase, e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn read_reply(&mut self, phase: Phase, limit: Duration) -> Result<Reply, SessionError> {
        match timeout(limit, self.read_reply_unbounded(phase)).await {
            Err(_) => Err(SessionError::Timeout(phase)),
            Ok(reply) => reply,
        }
    }

    /// Reads one complete reply; no time limit of its own.
    async fn read_reply_unbounded(&mut self, phase: Phase) -> Result<Reply, SessionError> {
        let reply = self.replies.read(&mut self.stream, phase).await?;
        if self.debug {
            tracing::info!(target: "transfer", "SMTPClient: Received: {reply}");
        }
        Ok(reply)
    }

    fn log_sent(&self, line: &str) {
        if self.debug {
            tracing::info!(target: "transfer", "SMTPClient: Sent: {line}");
        }
    }
}

/// Reads replies off a stream, bounded: a line is kept to [`MAX_LINE`]
/// bytes and a reply to [`MAX_LINES`] lines, whatever the peer sends.
#[derive(Debug, Default)]
pub(crate) struct ReplyReader {
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
}

impl ReplyReader {
    /// Reads one complete reply; no time limit of its own.
    pub(crate) async fn read<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
        phase: Phase,
    ) -> Result<Reply, SessionError> {
        let mut code = None;
        let mut lines = Vec::new();
        loop {
            let raw = self
                .read_line(stream)
                .await
                .map_err(|e| SessionError::io(phase, e))?;
            let line =
                parse_line(&raw).map_err(|detail| SessionError::Protocol { phase, detail })?;
            // A multi-line reply keeps the code of its first line.
            let code = *code.get_or_insert(line.code);
            lines.push(line.text);
            if line.last {
                return Ok(Reply { code, lines });
            }
            if lines.len() >= MAX_LINES {
                return Err(SessionError::Protocol {
                    phase,
                    detail: format!("reply longer than {MAX_LINES} lines"),
                });
            }
        }
    }

    /// One line without its line end, at most [`MAX_LINE`] bytes of it.
    async fn read_line<R: AsyncRead + Unpin>(&mut self, stream: &mut R) -> io::Result<Vec<u8>> {
        let mut head: Option<Vec<u8>> = None;
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                if let Some(head) = head {
                    return Ok(head);
                }
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                line.truncate(MAX_LINE);
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE {
                head.get_or_insert_with(|| self.buf[..MAX_LINE].to_vec());
                self.buf.clear();
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A TCP connection to `target`, commands sent at once (no Nagle delay).
async fn connect(
    target: &Target,
    timeouts: Timeouts,
    debug: bool,
) -> Result<TcpStream, SessionError> {
    tracing::info!(
        target: "transfer",
        "SMTPClient: Attempting to Connect: Host {}, Port {}",
        target.host,
        target.addr.port()
    );
    let tcp = match timeout(timeouts.connect, TcpStream::connect(target.addr)).await {
        Err(_) => return Err(SessionError::ConnectTimeout),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            return Err(SessionError::Connect("connection refused".to_owned()));
        }
        Ok(Err(e)) => return Err(SessionError::Connect(e.to_string())),
        Ok(Ok(tcp)) => tcp,
    };
    // Commands are small and each waits for its reply: send them at once.
    let _ = tcp.set_nodelay(true);
    if debug {
        tracing::info!(target: "transfer", "SMTPClient: Connection successful");
    }
    Ok(tcp)
}

/// The error for a reply that should have been positive: a 4xx/5xx is the
/// host refusing, anything else (1xx, 3xx) a protocol error.
fn refused(phase: Phase, reply: Reply) -> SessionError {
    if reply.is_transient() || reply.is_permanent() {
        SessionError::Rejected { phase, reply }
    } else {
        SessionError::Protocol {
            phase,
            detail: format!("unexpected reply {reply}"),
        }
    }
}

/// The results of a transaction; every recipient was answered by then.
fn finish(results: Vec<Option<RecipientResult>>) -> Vec<RecipientResult> {
    results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| RecipientResult::Transient {
                reason: "No reply from the server for this recipient".to_owned(),
            })
        })
        .collect()
}

/// An address that can go between `<` and `>` on a command line: no line
/// breaks or other controls that would smuggle in a command.
fn is_safe_path(address: &str) -> bool {
    !address
        .chars()
        .any(|c| c.is_control() || c == '<' || c == '>')
}

/// The content as sent after DATA: CRLF line ends, a leading dot doubled,
/// and the final `.` line.
fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32 + 8);
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    if !data.is_empty() {
        for line in body.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_and_line_ends() {
        assert_eq!(dot_stuff(b""), b".\r\n");
        assert_eq!(dot_stuff(b"a\r\n"), b"a\r\n.\r\n");
        assert_eq!(dot_stuff(b"a"), b"a\r\n.\r\n");
        assert_eq!(
            dot_stuff(b"S: x\r\n\r\n.\r\n..two\nbare\n."),
            b"S: x\r\n\r\n..\r\n...two\r\nbare\r\n..\r\n.\r\n"
        );
    }

    #[test]
    fn ehlo_capabilities() {
        let reply = Reply {
            code: 250,
            lines: vec![
                "mx.test greets you".into(),
                "pipelining".into(),
                "SIZE 1000".into(),
                "STARTTLS".into(),
                "8BITMIME".into(),
                "AUTH PLAIN".into(),
            ],
        };
        assert_eq!(
            Capabilities::from_ehlo(&reply),
            Capabilities {
                pipelining: true,
                size: Some(1000),
                starttls: true,
                eight_bit_mime: true
            }
        );
        let bare = Reply {
            code: 250,
            lines: vec!["mx".into(), "SIZE".into()],
        };
        assert_eq!(Capabilities::from_ehlo(&bare).size, Some(0));
    }

    #[test]
    fn unsafe_addresses() {
        assert!(is_safe_path(""));
        assert!(is_safe_path("\"odd name\"@x.test"));
        assert!(!is_safe_path("a@x.test>\r\nRCPT TO:<b@y.test"));
        assert!(!is_safe_path("a@x.test>"));
    }
}
