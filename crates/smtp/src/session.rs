//! The SMTP session state machine (RFC 5321 with PIPELINING, SIZE,
//! 8BITMIME, ENHANCEDSTATUSCODES, STARTTLS, AUTH, SMTPUTF8).
//!
//! Owns the order of commands, the replies and the session's phase. Every
//! policy decision and the storing of a message are asked of the
//! [`SessionHandler`]; nothing here routes or stores mail.

use std::borrow::Cow;
use std::io;
use std::mem;
use std::sync::Arc;

use smtp_proto::{EhloResponse, MailFrom, RcptTo, Request};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::auth::{self, AuthError, Credentials, Mechanism};
use crate::conn::{Conn, Line, Timeouts};
use crate::data::{BareNewlines, DataDecoder, DataProblem, Feed};
use crate::message::ReceivedHeader;
use crate::stats::{ActiveSession, InFlight};
use crate::trace::{COMMANDS, CONNECTIONS, DETAILS, Trace};
use crate::{
    AuthPolicy, Envelope, ListenerConfig, ListenerKind, Refusal, Reply, SessionHandler,
    SessionInfo, SmtpStats,
};

/// Why a session ended other than by QUIT.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error("connection closed by the client")]
    Closed,
    #[error("timeout")]
    Timeout,
    #[error("too many errors")]
    TooManyErrors,
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    #[error("implicit TLS port without a TLS certificate")]
    NoTlsConfig,
    #[error("its certificate names no server of this domain")]
    NotAServer,
}

/// Most memory reserved up front for a message, whatever SIZE= announced.
const PREALLOCATE_MAX: u64 = 1024 * 1024;

/// Where the session stands.
#[derive(Debug)]
enum Phase {
    /// No HELO/EHLO yet (also right after STARTTLS).
    Connected,
    /// Greeted, no mail transaction.
    Ready,
    /// MAIL FROM accepted; recipients are being collected.
    Transaction { env: Envelope, smtputf8: bool },
}

/// What the conversation does after one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Continue,
    /// Send what is queued and close.
    Close,
    /// Send what is queued, then hand the stream to TLS.
    StartTls,
}

/// How one plaintext or encrypted conversation ended.
enum End<T> {
    Closed,
    StartTls(T),
}

/// An AUTH exchange that did not produce credentials.
enum AuthFailure {
    Session(SessionError),
    Reply(Reply),
}

impl From<SessionError> for AuthFailure {
    fn from(e: SessionError) -> Self {
        AuthFailure::Session(e)
    }
}

impl From<AuthError> for AuthFailure {
    fn from(e: AuthError) -> Self {
        AuthFailure::Reply(Reply::new(501, (5, 5, 2), e.to_string()))
    }
}

/// One session over any stream: greeting, commands, STARTTLS, QUIT.
/// Never panics on input; the stream is closed when this returns.
pub async fn run_session<S>(
    stream: S,
    info: SessionInfo,
    handler: Arc<dyn SessionHandler>,
    stats: Arc<SmtpStats>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let config = handler.config();
    run_with_config(stream, info, handler, config, stats, ()).await;
}

/// [`run_session`] with the configuration already asked of the handler;
/// `place` (the session's place under the listener's caps) is given back
/// before the session stops counting as active.
pub(crate) async fn run_with_config<S, P>(
    stream: S,
    info: SessionInfo,
    handler: Arc<dyn SessionHandler>,
    config: Arc<ListenerConfig>,
    stats: Arc<SmtpStats>,
    place: P,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    P: Send,
{
    let now = Instant::now();
    // A session timeout too large to add means none (a century from now).
    let deadline = now
        .checked_add(config.session_timeout)
        .or_else(|| now.checked_add(std::time::Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now);
    let trace = Trace {
        debug: config.debug,
        debug_io: config.debug_io,
        session: info.session_id,
    };
    let mut active = stats.session_started();
    // Dropped before `active` (locals drop in reverse order).
    let _place = place;
    trace.debug(
        CONNECTIONS,
        format_args!("SMTP Server: {} connected to {}", info.peer, info.local),
    );
    let peer = info.peer;
    let kind = config.kind;
    let mut session = Session {
        handler,
        config,
        deadline,
        info,
        phase: Phase::Connected,
        esmtp: false,
        errors: 0,
        messages: 0,
        trace,
        stats: Arc::clone(&stats),
    };
    let ended = session.run(stream, &mut active).await;
    session.handler.disconnected(&session.info);
    match ended {
        Ok(()) => trace.debug(
            CONNECTIONS,
            format_args!("SMTP Server: {peer} disconnected"),
        ),
        Err(e @ SessionError::NoTlsConfig) => {
            tracing::error!(target: "smtp", "SMTP Server: session from {peer} refused: {e}");
        }
        // A server of the domain that cannot prove it is one puts nothing
        // in the mail box; the administrator hears of it with its address.
        Err(e @ (SessionError::Tls(_) | SessionError::NotAServer))
            if kind == ListenerKind::Native =>
        {
            tracing::warn!(target: "smtp", "NRPC: connection from {peer} refused: {e}");
        }
        Err(e) => trace.debug(
            CONNECTIONS,
            format_args!("SMTP Server: {peer} disconnected: {e}"),
        ),
    }
}

struct Session {
    handler: Arc<dyn SessionHandler>,
    config: Arc<ListenerConfig>,
    /// The session ends (`421 4.4.2`) at this time whatever it is doing.
    deadline: Instant,
    info: SessionInfo,
    phase: Phase,
    /// The client greeted with EHLO (not HELO).
    esmtp: bool,
    /// 5xx replies so far (the hard error limit).
    errors: u32,
    /// Messages received in this session (for the `Received:` id).
    messages: u64,
    trace: Trace,
    stats: Arc<SmtpStats>,
}

impl Session {
    fn timeouts(&self) -> Timeouts {
        Timeouts {
            idle: self.config.idle_timeout,
            command: self.config.command_timeout,
            session_deadline: self.deadline,
        }
    }

    async fn run<S>(
        &mut self,
        stream: S,
        active: &mut ActiveSession<'_>,
    ) -> Result<(), SessionError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let plain = match self.config.kind {
            ListenerKind::Smtps => {
                let tls = self.start_tls(stream, active).await?;
                self.converse(tls, true).await?;
                return Ok(());
            }
            ListenerKind::Native => {
                let tls = self.start_tls(stream, active).await?;
                let certs = tls.get_ref().1.peer_certificates().unwrap_or_default();
                let identity = self.config.peer_identity.and_then(|read| read(certs));
                let Some(identity) = identity else {
                    let mut conn =
                        Conn::new(tls, self.timeouts(), Arc::clone(&self.stats), self.trace);
                    conn.queue(&Reply::new(
                        530,
                        (5, 7, 0),
                        "Authentication required: not a server of this domain",
                    ));
                    conn.close().await;
                    return Err(SessionError::NotAServer);
                };
                self.trace
                    .debug(DETAILS, format_args!("native peer is {identity}"));
                self.info.authenticated = Some(identity);
                self.converse(tls, true).await?;
                return Ok(());
            }
            ListenerKind::Smtp | ListenerKind::Submission => stream,
        };
        if let End::StartTls(stream) = self.converse(plain, true).await? {
            let tls = self.start_tls(stream, active).await?;
            self.converse(tls, false).await?;
        }
        Ok(())
    }

    /// TLS handshake; afterwards the session starts over (RFC 3207 §4.2).
    async fn start_tls<S>(
        &mut self,
        stream: S,
        active: &mut ActiveSession<'_>,
    ) -> Result<tokio_rustls::server::TlsStream<S>, SessionError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let tls = self.config.tls.clone().ok_or(SessionError::NoTlsConfig)?;
        let accept = tokio_rustls::TlsAcceptor::from(tls).accept(stream);
        let stream =
            tokio::time::timeout_at(self.timeouts().deadline(self.config.idle_timeout), accept)
                .await
                .map_err(|_| SessionError::Timeout)?
                .map_err(SessionError::Tls)?;
        active.tls_started();
        self.info.tls = true;
        self.info.helo = None;
        self.info.authenticated = None;
        self.phase = Phase::Connected;
        self.esmtp = false;
        self.trace
            .debug(DETAILS, format_args!("TLS handshake done"));
        Ok(stream)
    }

    /// Runs the command loop over one stream.
    async fn converse<T>(&mut self, io: T, greet: bool) -> Result<End<T>, SessionError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut conn = Conn::new(io, self.timeouts(), Arc::clone(&self.stats), self.trace);
        if greet {
            // The connection controls, before anything else is said; a
            // server of the domain proved who it is with its certificate.
            if self.config.kind != ListenerKind::Native
                && let Err(refusal) = self.handler.connect(&self.info).await
            {
                if let Some(kind) = refusal.refusal() {
                    self.stats.refused(kind);
                }
                conn.queue(&refusal);
                conn.close().await;
                return Ok(End::Closed);
            }
            let text = format!("{} ESMTP mailhop ready", self.config.hostname);
            conn.queue(&Reply::plain(220, text));
        }
        match self.dialogue(&mut conn).await {
            Ok(Step::StartTls) => {
                conn.flush().await?;
                conn.discard_input();
                Ok(End::StartTls(conn.into_inner()))
            }
            Ok(_) => {
                conn.close().await;
                Ok(End::Closed)
            }
            Err(SessionError::Timeout) => {
                self.stats.timed_out();
                let text = format!("{} Timeout, closing connection", self.config.hostname);
                conn.queue(&Reply::new(421, (4, 4, 2), text));
                conn.close().await;
                Err(SessionError::Timeout)
            }
            Err(SessionError::TooManyErrors) => {
                self.stats.refused(Refusal::TooManyErrors);
                let text = format!(
                    "{} Too many errors, closing connection",
                    self.config.hostname
                );
                conn.queue(&Reply::new(421, (4, 7, 0), text));
                conn.close().await;
                Err(SessionError::TooManyErrors)
            }
            Err(e) => Err(e),
        }
    }

    async fn dialogue<T>(&mut self, conn: &mut Conn<T>) -> Result<Step, SessionError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut line = Vec::with_capacity(512);
        loop {
            let step = match conn
                .read_line(&mut line, self.config.max_line_length)
                .await?
            {
                Line::TooLong => {
                    self.trace
                        .debug(COMMANDS, format_args!(">>> (line too long)"));
                    self.respond(conn, Reply::new(500, (5, 5, 2), "Line too long"))?
                }
                Line::Complete => self.command(conn, &line).await?,
            };
            if step != Step::Continue {
                return Ok(step);
            }
        }
    }

    /// Queues the reply to a command. A reply that is a refusal of a known
    /// kind is counted under its `show stat` name. Every 5xx reply counts as
    /// an error (bad commands, refused senders and recipients, refused
    /// messages); `max_errors` of them end the session (Postfix's hard
    /// error limit), which also stops directory harvesting.
    fn respond<T>(&mut self, conn: &mut Conn<T>, reply: Reply) -> Result<Step, SessionError>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        if let Some(kind) = reply.refusal() {
            self.stats.refused(kind);
        }
        conn.queue(&reply);
        if reply.code >= 500 {
            self.errors = self.errors.saturating_add(1);
            if self.errors >= self.config.max_errors {
                return Err(SessionError::TooManyErrors);
            }
        }
        Ok(Step::Continue)
    }

    async fn command<T>(&mut self, conn: &mut Conn<T>, line: &[u8]) -> Result<Step, SessionError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        self.trace
            .debug(COMMANDS, format_args!(">>> {}", Loggable(line)));
        let request = match Request::parse(&mut line.iter()) {
            Ok(request) => request,
            Err(e) => return self.respond(conn, parse_error_reply(e)),
        };
        match request {
            Request::Ehlo { host } => self.hello(conn, host, true),
            Request::Helo { host } => self.hello(conn, host, false),
            Request::Mail { from } => self.mail(conn, from).await,
            Request::Rcpt { to } => self.rcpt(conn, to).await,
            Request::Data => self.data(conn).await,
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(conn, mechanism, &initial_response).await,
            Request::StartTls => self.starttls(conn),
            Request::Rset => {
                if !matches!(self.phase, Phase::Connected) {
                    self.phase = Phase::Ready;
                }
                self.respond(conn, Reply::new(250, (2, 0, 0), "Reset OK"))
            }
            Request::Noop { .. } => self.respond(conn, Reply::new(250, (2, 0, 0), "OK")),
            Request::Vrfy { .. } => self.respond(
                conn,
                Reply::new(
                    252,
                    (2, 5, 0),
                    "Cannot VRFY user, but will accept message and attempt delivery",
                ),
            ),
            Request::Expn { .. } => {
                self.respond(conn, Reply::new(502, (5, 5, 1), "EXPN not available"))
            }
            Request::Help { .. } => self.respond(
                conn,
                Reply::new(
                    214,
                    (2, 0, 0),
                    "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT STARTTLS AUTH",
                ),
            ),
            Request::Quit => {
                conn.queue(&Reply::new(221, (2, 0, 0), "Bye"));
                Ok(Step::Close)
            }
            Request::Lhlo { .. }
            | Request::Bdat { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                self.respond(conn, Reply::new(502, (5, 5, 1), "Command not implemented"))
            }
        }
    }

    fn hello<T>(
        &mut self,
        conn: &mut Conn<T>,
        host: Cow<'_, str>,
        esmtp: bool,
    ) -> Result<Step, SessionError>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        // The name is the client's: escaped and cut, as in the log.
        let greeting = format!(
            "{} Hello {} [{}]",
            self.config.hostname,
            logsafe::shown(&host),
            self.info.peer.ip()
        );
        self.info.helo = Some(host.into_owned());
        self.esmtp = esmtp;
        self.phase = Phase::Ready;
        if !esmtp {
            return self.respond(conn, Reply::plain(250, greeting));
        }
        let mut ehlo = EhloResponse::new("");
        ehlo.capabilities = smtp_proto::EXT_PIPELINING
            | smtp_proto::EXT_SIZE
            | smtp_proto::EXT_8BIT_MIME
            | smtp_proto::EXT_ENHANCED_STATUS_CODES
            | smtp_proto::EXT_SMTP_UTF8;
        ehlo.size = usize::try_from(self.config.max_message_size).unwrap_or(usize::MAX);
        if self.config.tls.is_some() && !self.info.tls {
            ehlo.capabilities |= smtp_proto::EXT_START_TLS;
        }
        if self.auth_offered() {
            ehlo.capabilities |= smtp_proto::EXT_AUTH;
            ehlo.auth_mechanisms = smtp_proto::AUTH_PLAIN | smtp_proto::AUTH_LOGIN;
        }
        let mut capabilities = Vec::with_capacity(256);
        // smtp-proto writes its own first line; ours replaces it.
        let lines = match ehlo.write(&mut capabilities) {
            Ok(()) => capabilities
                .iter()
                .position(|&b| b == b'\n')
                .map_or(&[][..], |nl| &capabilities[nl + 1..]),
            Err(_) => &[][..],
        };
        if lines.is_empty() {
            return self.respond(conn, Reply::plain(250, greeting));
        }
        let mut reply = format!("250-{greeting}\r\n").into_bytes();
        reply.extend_from_slice(lines);
        conn.queue_raw(&reply);
        Ok(Step::Continue)
    }

    /// AUTH is advertised and accepted only when enabled and passwords
    /// would not cross the network in the clear.
    fn auth_offered(&self) -> bool {
        self.config.kind != ListenerKind::Native
            && self.config.effective_auth() != AuthPolicy::Off
            && self.info.auth_allowed(self.config.require_tls_for_auth)
    }

    async fn mail<T>(
        &mut self,
        conn: &mut Conn<T>,
        from: MailFrom<Cow<'_, str>>,
    ) -> Result<Step, SessionError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        match self.phase {
            Phase::Connected => {
                return self.respond(conn, Reply::new(503, (5, 5, 1), "Send HELO/EHLO first"));
            }
            Phase::Transaction { .. } => {
                return self.respond(conn, Reply::new(503, (5, 5, 1), "Nested MAIL command"));
            }
            Phase::Ready => {}
        }
        if self.config.effective_auth() == AuthPolicy::Required && self.info.authenticated.is_none()
        {
            let reply = Reply::new(530, (5, 7, 0), "Authentication required");
            return self.respond(conn, reply.counted(Refusal::AuthRequired));
        }
        let size = from.size as u64;
        if size > self.config.max_message_size {
            return self.respond(conn, Reply::message_too_big());
        }
        if !self
            .stats
            .inflight_fits(size, self.config.inflight_message_bytes)
        {
            self.trace.debug(
                DETAILS,
                format_args!("SIZE={size} does not fit the in-flight message budget"),
            );
            return self.respond(conn, DataProblem::NoStorage.reply());
        }
        if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            return self.respond(
                conn,
                Reply::new(555, (5, 5, 4), "BODY=BINARYMIME not supported"),
            );
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        if let Err(reply) = check_address(&from.address, smtputf8, (5, 1, 7)) {
            return self.respond(conn, reply);
        }
        if let Err(reply) = self.handler.mail_from(&self.info, &from.address).await {
            self.trace.debug(
                DETAILS,
                format_args!("sender {} refused: {reply}", logsafe::shown(&from.address)),
            );
            return self.respond(conn, reply);
        }
        self.phase = Phase::Transaction {
            env: Envelope {
                from: from.address.into_owned(),
                recipients: Vec::new(),
                body_8bit: from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0,
                size_hint: (size > 0).then_some(size),
                received_len: 0,
            },
            smtputf8,
        };
        self.respond(conn, Reply::new(250, (2, 1, 0), "Sender OK"))
    }

    async fn rcpt<T>(
        &mut self,
        conn: &mut Conn<T>,
        to: RcptTo<Cow<'_, str>>,
    ) -> Result<Step, SessionError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let reply = self.rcpt_reply(&to.address).await;
        self.respond(conn, reply)
    }

    /// The reply to `RCPT TO:<address>`; an accepted recipient joins the envelope.
    async fn rcpt_reply(&mut self, address: &str) -> Reply {
        let Phase::Transaction { env, smtputf8 } = &mut self.phase else {
            return Reply::new(503, (5, 5, 1), "Need MAIL before RCPT");
        };
        // smtp-proto gives `<postmaster>` (RFC 5321 §4.5.1) as the empty string.
        let rcpt = if address.is_empty() {
            "postmaster"
        } else {
            address
        };
        if let Err(reply) = check_address(rcpt, *smtputf8, (5, 1, 3)) {
            return reply;
        }
        if env.recipients.iter().any(|r| r == rcpt) {
            return Reply::new(250, (2, 1, 5), "Recipient OK");
        }
        if env.recipients.len() >= self.config.max_recipients {
            return Reply::new(452, (4, 5, 3), "Too many recipients")
                .counted(Refusal::TooManyRecipients);
        }
        match self.handler.rcpt_to(&self.info, env, rcpt).await {
            Ok(()) => {
                env.recipients.push(rcpt.to_owned());
                Reply::new(250, (2, 1, 5), "Recipient OK")
            }
            Err(reply) => {
                self.trace.debug(
                    DETAILS,
                    format_args!("recipient {} refused: {reply}", logsafe::shown(rcpt)),
                );
                reply
            }
        }
    }

    async fn data<T>(&mut self, conn: &mut Conn<T>) -> Result<Step, SessionError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let env = match mem::replace(&mut self.phase, Phase::Ready) {
            Phase::Transaction { env, .. } if !env.recipients.is_empty() => env,
            transaction @ Phase::Transaction { .. } => {
                self.phase = transaction;
                return self.respond(conn, Reply::new(554, (5, 5, 1), "No valid recipients"));
            }
            other => {
                self.phase = other;
                return self.respond(
                    conn,
                    Reply::new(503, (5, 5, 1), "Need MAIL and RCPT before DATA"),
                );
            }
        };
        conn.queue(&Reply::plain(354, "End data with <CR><LF>.<CR><LF>"));

        self.messages += 1;
        let id = format!("{:X}.{}", self.info.session_id, self.messages);
        // The client's SIZE= is a hint, not a reason to reserve memory.
        let expected = env.size_hint.unwrap_or(0).min(PREALLOCATE_MAX);
        let mut message =
            Vec::with_capacity(usize::try_from(expected).unwrap_or(0).saturating_add(4096));
        ReceivedHeader {
            helo: self.info.helo.as_deref().unwrap_or_default(),
            peer: self.info.peer.ip(),
            hostname: &self.config.hostname,
            esmtp: self.esmtp,
            tls: self.info.tls,
            authenticated: self.info.authenticated.is_some(),
            id: &id,
        }
        .write_received(&chrono::Local::now().to_rfc2822(), &mut message);
        let header_len = message.len();

        // Authenticated clients (submission) get bare LF / CR stored as
        // CRLF; everyone else has such a message refused. Neither ever ends it.
        let bare = if self.info.authenticated.is_some() {
            BareNewlines::Normalize
        } else {
            BareNewlines::Refuse
        };
        let mut decoder = DataDecoder::new(
            self.config.max_message_size,
            self.config.max_data_line_length,
            bare,
        );
        conn.set_deadline(self.config.data_timeout);
        // What this message holds of the server's in-flight budget.
        let stats = Arc::clone(&self.stats);
        let mut inflight = InFlight::new(&stats, self.config.inflight_message_bytes);
        loop {
            let feed = decoder.feed(conn.buffered(), &mut message);
            if !inflight.cover(message.len() as u64) {
                // No room: keep reading to the end, but drop what was kept.
                decoder.refuse(DataProblem::NoStorage);
                message = Vec::new();
                inflight.release_all();
            }
            match feed {
                Feed::Done { consumed } => {
                    conn.consume(consumed);
                    break;
                }
                Feed::NeedMore => {
                    conn.consume(conn.buffered().len());
                    conn.fill().await?;
                }
            }
        }
        let (size, problem) = decoder.finish();
        self.trace.content(&message);
        if let Some(problem) = problem {
            self.stats.message_rejected();
            self.trace
                .debug(DETAILS, format_args!("message refused: {problem}"));
            return self.respond(conn, problem.reply());
        }
        let message_id = headers::fields(&message[header_len..])
            .message_id
            .map(|id| format!("<{id}>"))
            .unwrap_or_default();
        let env = Envelope {
            received_len: header_len,
            ..env
        };
        match self.handler.data(&self.info, env, message).await {
            Ok(queue_id) => {
                self.stats.message_accepted();
                tracing::info!(
                    target: "smtp",
                    "SMTP Server: Message {queue_id} (MessageID: {}) received from {} size {size} bytes",
                    logsafe::shown(&message_id),
                    self.info.peer.ip()
                );
                self.respond(
                    conn,
                    Reply::new(250, (2, 0, 0), format!("Ok: queued as {queue_id}")),
                )
            }
            Err(reply) => {
                self.stats.message_rejected();
                self.trace.debug(
                    DETAILS,
                    format_args!("message refused by the server: {reply}"),
                );
                self.respond(conn, reply)
            }
        }
    }

    async fn auth<T>(
        &mut self,
        conn: &mut Conn<T>,
        mechanism: u64,
        initial: &str,
    ) -> Result<Step, SessionError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        if self.config.effective_auth() == AuthPolicy::Off {
            return self.respond(conn, Reply::new(502, (5, 5, 1), "AUTH not available"));
        }
        match self.phase {
            Phase::Connected => {
                return self.respond(conn, Reply::new(503, (5, 5, 1), "Send EHLO first"));
            }
            Phase::Transaction { .. } => {
                return self.respond(
                    conn,
                    Reply::new(503, (5, 5, 1), "AUTH not allowed during a mail transaction"),
                );
            }
            Phase::Ready => {}
        }
        if self.info.authenticated.is_some() {
            return self.respond(conn, Reply::new(503, (5, 5, 1), "Already authenticated"));
        }
        if !self.info.auth_allowed(self.config.require_tls_for_auth) {
            return self.respond(
                conn,
                Reply::new(
                    538,
                    (5, 7, 11),
                    "Encryption required for requested authentication mechanism",
                )
                .counted(Refusal::EncryptionRequired),
            );
        }
        let Some(mechanism) = Mechanism::from_proto(mechanism) else {
            return self.respond(
                conn,
                Reply::new(504, (5, 5, 4), "Unrecognized authentication type"),
            );
        };
        let credentials = match self.credentials(conn, mechanism, initial).await {
            Ok(credentials) => credentials,
            Err(AuthFailure::Session(e)) => return Err(e),
            Err(AuthFailure::Reply(reply)) => return self.respond(conn, reply),
        };
        match self
            .handler
            .authenticate(&self.info, &credentials.user, &credentials.password)
            .await
        {
            Some(identity) => {
                self.stats.login_succeeded();
                self.trace
                    .debug(DETAILS, format_args!("authenticated as {identity}"));
                self.info.authenticated = Some(identity);
                self.respond(
                    conn,
                    Reply::new(235, (2, 7, 0), "Authentication successful"),
                )
            }
            // The handler logs the failure once, with its reason.
            None => self.respond(
                conn,
                Reply::new(535, (5, 7, 8), "Authentication credentials invalid")
                    .counted(Refusal::AuthFailed),
            ),
        }
    }

    /// Runs the AUTH exchange of one mechanism.
    async fn credentials<T>(
        &self,
        conn: &mut Conn<T>,
        mechanism: Mechanism,
        initial: &str,
    ) -> Result<Credentials, AuthFailure>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        match mechanism {
            Mechanism::Plain => {
                let response = if initial.is_empty() {
                    self.challenge(conn, "").await?
                } else {
                    initial.to_owned()
                };
                Ok(auth::decode_plain(&response)?)
            }
            Mechanism::Login => {
                let user = if initial.is_empty() {
                    self.challenge(conn, "Username:").await?
                } else {
                    initial.to_owned()
                };
                let user = auth::decode_text(&user)?;
                let password = auth::decode_text(&self.challenge(conn, "Password:").await?)?;
                Ok(Credentials { user, password })
            }
        }
    }

    /// Sends a `334` challenge and reads the client's answer (`*` cancels).
    async fn challenge<T>(&self, conn: &mut Conn<T>, prompt: &str) -> Result<String, AuthFailure>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        conn.queue(&Reply::plain(334, auth::encode(prompt)));
        let mut line = Vec::new();
        match conn
            .read_line(&mut line, self.config.max_line_length)
            .await?
        {
            Line::TooLong => Err(AuthFailure::Reply(Reply::new(
                500,
                (5, 5, 6),
                "Authentication exchange line is too long",
            ))),
            Line::Complete => {
                let answer = String::from_utf8_lossy(&line).trim().to_owned();
                if answer == "*" {
                    Err(AuthFailure::Reply(Reply::new(
                        501,
                        (5, 0, 0),
                        "Authentication cancelled",
                    )))
                } else {
                    Ok(answer)
                }
            }
        }
    }

    fn starttls<T>(&mut self, conn: &mut Conn<T>) -> Result<Step, SessionError>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        if self.config.tls.is_none() {
            return self.respond(conn, Reply::new(502, (5, 5, 1), "STARTTLS not available"));
        }
        if self.info.tls {
            return self.respond(conn, Reply::new(503, (5, 5, 1), "TLS already active"));
        }
        conn.queue(&Reply::new(220, (2, 0, 0), "Ready to start TLS"));
        Ok(Step::StartTls)
    }
}

/// The reply to a line smtp-proto could not parse.
fn parse_error_reply(e: smtp_proto::Error) -> Reply {
    use smtp_proto::Error;
    match e {
        Error::UnknownCommand => Reply::new(500, (5, 5, 1), "Command unrecognized"),
        Error::InvalidSenderAddress => Reply::new(501, (5, 1, 7), "Bad sender address syntax"),
        Error::InvalidRecipientAddress => {
            Reply::new(501, (5, 1, 3), "Bad recipient address syntax")
        }
        Error::SyntaxError { syntax } => Reply::new(501, (5, 5, 4), format!("Syntax: {syntax}")),
        Error::InvalidParameter { param } => Reply::new(
            501,
            (5, 5, 4),
            format!("Invalid value for parameter {param}"),
        ),
        Error::UnsupportedParameter { param } => {
            let param: String = param
                .chars()
                .filter(char::is_ascii_graphic)
                .take(64)
                .collect();
            Reply::new(555, (5, 5, 4), format!("Unsupported parameter {param}"))
        }
        Error::NeedsMoreData { .. } | Error::ResponseTooLong | Error::InvalidResponse { .. } => {
            Reply::new(501, (5, 5, 4), "Syntax error")
        }
    }
}

/// Checks what smtp-proto leaves open in an address: bytes that were not
/// UTF-8, control characters, invisible formatting characters (which
/// would also travel into the log), and non-ASCII without SMTPUTF8.
fn check_address(address: &str, smtputf8: bool, bad_syntax: (u8, u16, u16)) -> Result<(), Reply> {
    if address
        .chars()
        .any(|c| c == char::REPLACEMENT_CHARACTER || c.is_whitespace() || logsafe::is_invisible(c))
    {
        return Err(Reply::new(501, bad_syntax, "Bad address syntax"));
    }
    if !smtputf8 && !address.is_ascii() {
        return Err(Reply::new(
            553,
            (5, 6, 7),
            "Non-ASCII address requires SMTPUTF8",
        ));
    }
    Ok(())
}

/// A command line as the debug log shows it: AUTH secrets hidden, the
/// client's bytes escaped and cut short (`logsafe`), formatted only if the
/// line is actually logged.
struct Loggable<'a>(&'a [u8]);

impl std::fmt::Display for Loggable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = self.0.trim_ascii_end();
        let mut words = line
            .split(u8::is_ascii_whitespace)
            .filter(|w| !w.is_empty());
        match (words.next(), words.next()) {
            (Some(verb), Some(mechanism)) if verb.eq_ignore_ascii_case(b"AUTH") => {
                let hidden = if words.next().is_some() { " ****" } else { "" };
                write!(
                    f,
                    "{} {}{hidden}",
                    logsafe::shown_bytes(verb),
                    logsafe::shown_bytes(mechanism)
                )
            }
            _ => write!(f, "{}", logsafe::shown_bytes(line)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_secrets_are_not_logged() {
        assert_eq!(
            Loggable(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n").to_string(),
            "AUTH PLAIN ****"
        );
        assert_eq!(Loggable(b"auth login\r\n").to_string(), "auth login");
        assert_eq!(
            Loggable(b"MAIL FROM:<a@b>\r\n").to_string(),
            "MAIL FROM:<a@b>"
        );
    }

    #[test]
    fn logged_lines_are_escaped_and_cut() {
        assert_eq!(
            Loggable(b"HELO x\rforged\x1b[0m\r\n").to_string(),
            "HELO x\\rforged\\u{1b}[0m"
        );
        let long = format!("HELO {}\r\n", "h".repeat(100_000));
        let shown = Loggable(long.as_bytes()).to_string();
        assert_eq!(shown.chars().count(), logsafe::MAX_CHARS);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn addresses_are_checked_for_what_the_parser_allows() {
        assert!(check_address("a@b.example", false, (5, 1, 3)).is_ok());
        assert!(check_address("", false, (5, 1, 7)).is_ok());
        assert_eq!(
            check_address("jö@b.example", false, (5, 1, 3)).map_err(|r| r.code),
            Err(553)
        );
        assert!(check_address("jö@b.example", true, (5, 1, 3)).is_ok());
        let bad = check_address("a\u{fffd}@b", true, (5, 1, 3)).map_err(|r| r.enhanced);
        assert_eq!(bad, Err(Some((5, 1, 3))));
        assert!(check_address("a\u{1}@b", true, (5, 1, 7)).is_err());
        assert!(check_address("evil\u{202e}moc.b@c", true, (5, 1, 3)).is_err());
        assert!(check_address("zero\u{200b}width@b", true, (5, 1, 3)).is_err());
        assert!(check_address("e\u{301}@b.example", true, (5, 1, 3)).is_ok());
    }

    #[test]
    fn parse_errors_map_to_5xx() {
        for line in [
            &b"MAIL FROM:<<<\r\n"[..],
            b"FOO\r\n",
            b"\xff\xfe\r\n",
            b"RCPT TO:\r\n",
            b"\r\n",
        ] {
            let reply = match Request::parse(&mut line.iter()) {
                Ok(r) => panic!("{line:?} parsed as {r:?}"),
                Err(e) => parse_error_reply(e),
            };
            assert!((500..=555).contains(&reply.code), "{line:?} gave {reply}");
        }
    }
}
