//! Buffered, timed I/O of one session: command lines, raw chunks for DATA,
//! and replies gathered so that a pipelined batch is answered in one write.
//!
//! Owns the read and write buffers and the timeouts: an idle timeout per
//! read and write, a deadline for each command line (set when the line is
//! asked for, so a client trickling bytes cannot hold it open), a deadline
//! the session sets for DATA, and the whole session's deadline. It does not
//! parse commands or decide replies.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use memchr::memchr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::SmtpStats;
use crate::reply::Reply;
use crate::session::SessionError;
use crate::trace::{COMMANDS, Trace};

/// Largest size of the read buffer; also bounds the longest command line.
pub(crate) const READ_BUFFER: usize = 64 * 1024;
/// Size of a session's read buffer at first: it doubles (up to
/// [`READ_BUFFER`]) only for a line or a stream of data that fills it, so a
/// session that sends short commands costs 4 KiB, not 64.
const FIRST_READ_BUFFER: usize = 4 * 1024;

/// What [`Conn::read_line`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line {
    /// A complete line (with its LF) is in the caller's buffer.
    Complete,
    /// The line exceeded the limit; its rest is skipped up to its LF.
    TooLong,
}

/// One session's stream with its buffers.
pub(crate) struct Conn<T> {
    io: T,
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    wbuf: Vec<u8>,
    /// Skipping the rest of an over-long line.
    discarding: bool,
    timeouts: Timeouts,
    /// The read in progress must be done by then.
    deadline: Instant,
    stats: Arc<SmtpStats>,
    trace: Trace,
}

/// The timeouts of one session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// Per read and per write.
    pub(crate) idle: Duration,
    /// For one whole command line.
    pub(crate) command: Duration,
    /// When the session ends whatever it is doing.
    pub(crate) session_deadline: Instant,
}

impl Timeouts {
    /// `within` from now, but not past the session's deadline.
    pub(crate) fn deadline(&self, within: Duration) -> Instant {
        Instant::now()
            .checked_add(within)
            .map_or(self.session_deadline, |at| at.min(self.session_deadline))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Conn<T> {
    pub(crate) fn new(io: T, timeouts: Timeouts, stats: Arc<SmtpStats>, trace: Trace) -> Conn<T> {
        Conn {
            deadline: timeouts.deadline(timeouts.command),
            io,
            rbuf: vec![0; FIRST_READ_BUFFER],
            start: 0,
            end: 0,
            wbuf: Vec::with_capacity(1024),
            discarding: false,
            timeouts,
            stats,
            trace,
        }
    }

    /// The stream, dropping whatever was buffered in either direction.
    pub(crate) fn into_inner(self) -> T {
        self.io
    }

    /// Input received but not consumed yet.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.rbuf[self.start..self.end]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// Forgets all buffered input (after STARTTLS: nothing sent in the clear
    /// may be taken as a command of the encrypted session).
    pub(crate) fn discard_input(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Reads from now on must be done within `within` (and the session's
    /// deadline).
    pub(crate) fn set_deadline(&mut self, within: Duration) {
        self.deadline = self.timeouts.deadline(within);
    }

    /// Flushes pending replies, then waits for more input.
    pub(crate) async fn fill(&mut self) -> Result<(), SessionError> {
        self.flush().await?;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.rbuf.len() {
            self.rbuf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.rbuf.len() {
            self.grow();
        }
        // A client whose bytes are always ready still meets the deadline.
        if Instant::now() >= self.deadline {
            return Err(SessionError::Timeout);
        }
        let free = &mut self.rbuf[self.end..];
        let filled_all = free.len();
        let limit = self
            .timeouts
            .deadline(self.timeouts.idle)
            .min(self.deadline);
        let n = tokio::time::timeout_at(limit, self.io.read(free))
            .await
            .map_err(|_| SessionError::Timeout)??;
        if n == 0 {
            return Err(SessionError::Closed);
        }
        self.trace.io("read", &self.rbuf[self.end..self.end + n]);
        self.end += n;
        self.stats.received(n);
        if n == filled_all {
            // More is likely waiting (a message's data): read more at a time.
            self.grow();
        }
        Ok(())
    }

    /// Doubles the read buffer, up to [`READ_BUFFER`].
    fn grow(&mut self) {
        let len = (self.rbuf.len() * 2).min(READ_BUFFER);
        self.rbuf.resize(len, 0);
    }

    /// Reads one line (LF included) into `line`; lines over `max` bytes
    /// (CRLF not counted) are reported as soon as they pass the limit. The
    /// whole line must arrive within the command timeout.
    pub(crate) async fn read_line(
        &mut self,
        line: &mut Vec<u8>,
        max: usize,
    ) -> Result<Line, SessionError> {
        self.set_deadline(self.timeouts.command);
        let max = max.min(READ_BUFFER - 2);
        loop {
            if self.discarding {
                match memchr(b'\n', self.buffered()) {
                    Some(pos) => {
                        self.consume(pos + 1);
                        self.discarding = false;
                    }
                    None => {
                        self.consume(self.end - self.start);
                        self.fill().await?;
                        continue;
                    }
                }
            }
            let buffered = self.buffered();
            if let Some(pos) = memchr(b'\n', buffered) {
                let content = buffered[..pos]
                    .strip_suffix(b"\r")
                    .unwrap_or(&buffered[..pos]);
                let too_long = content.len() > max;
                if !too_long {
                    line.clear();
                    line.extend_from_slice(&buffered[..=pos]);
                }
                self.consume(pos + 1);
                return Ok(if too_long {
                    Line::TooLong
                } else {
                    Line::Complete
                });
            }
            if buffered.len() > max + 1 {
                self.consume(buffered.len());
                self.discarding = true;
                return Ok(Line::TooLong);
            }
            self.fill().await?;
        }
    }

    /// Queues a reply; it goes out with the next flush.
    pub(crate) fn queue(&mut self, reply: &Reply) {
        self.trace.debug(COMMANDS, format_args!("<<< {reply}"));
        reply.write_to(&mut self.wbuf);
    }

    /// Queues raw reply bytes (a pre-formatted multi-line reply).
    pub(crate) fn queue_raw(&mut self, bytes: &[u8]) {
        self.trace
            .debug(COMMANDS, format_args!("<<< {}", bytes.escape_ascii()));
        self.wbuf.extend_from_slice(bytes);
    }

    /// Sends the queued replies.
    pub(crate) async fn flush(&mut self) -> Result<(), SessionError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let write = async {
            self.io.write_all(&self.wbuf).await?;
            self.io.flush().await
        };
        tokio::time::timeout(self.timeouts.idle, write)
            .await
            .map_err(|_| SessionError::Timeout)??;
        self.trace.io("wrote", &self.wbuf);
        self.stats.sent(self.wbuf.len());
        self.wbuf.clear();
        Ok(())
    }

    /// Sends what is queued and closes the stream (TLS close_notify), best effort.
    pub(crate) async fn close(&mut self) {
        if self.flush().await.is_ok() {
            let _ = tokio::time::timeout(self.timeouts.idle, self.io.shutdown()).await;
        }
    }
}
