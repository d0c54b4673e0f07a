//! POP3 (RFC 1939) with CAPA (RFC 2449), STLS (RFC 2595), AUTH PLAIN
//! (RFC 5034) and implicit TLS, over the Inbox of the user's mail file.
//!
//! The session sees the Inbox as it was at login; DELE only marks, and the
//! marked messages are removed in the UPDATE state after QUIT. The maildrop is
//! locked for the session (`[IN-USE]`). Owns the POP3 conversation only: the
//! password check is the [`AccessHandler`]'s, the messages are the store's.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use store::{FlagOp, Flags, Store, StoreError};
use tokio::net::TcpListener;

use crate::conn::{Conn, Io, SessionError};
use crate::lock::{LockGuard, Locks};
use crate::{AccessConfig, AccessHandler, AccessStats, Login, Protocol, listener, sasl};

/// POP3 works on this folder only.
const INBOX: &str = "Inbox";

/// Before login, the longest command line, its CR LF not counted: RFC 2449
/// allows 255 octets, and this leaves room for a long password in `PASS`
/// or `AUTH PLAIN`. A longer line before login is answered `-ERR` and ends
/// the session.
pub const PRE_LOGIN_LINE: usize = 1024;

/// Maildrops held by POP3 sessions of this process.
static LOCKS: LazyLock<Locks> = LazyLock::new(Locks::default);

/// Serves POP3 on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    handler: Arc<dyn AccessHandler>,
    stats: Arc<AccessStats>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    listener::serve(
        listener,
        shutdown,
        Protocol::Pop3,
        store,
        handler,
        stats,
        session,
    )
    .await
}

/// One session over `stream` (a TCP connection, or an in-memory stream
/// for the fuzz targets), accepted from `peer`.
pub(crate) async fn session(
    stream: impl Io + 'static,
    peer: SocketAddr,
    store: Store,
    handler: Arc<dyn AccessHandler>,
    stats: Arc<AccessStats>,
) -> Result<(), SessionError> {
    let (config, mut guard, mut conn) =
        listener::open(stream, peer, Protocol::Pop3, handler.as_ref(), &stats).await?;
    let greeting = format!("+OK {} POP3 server ready\r\n", config.hostname);
    conn.write_all(greeting.as_bytes()).await?;
    let mut session = Session {
        input: Vec::new(),
        config,
        store,
        handler,
        stats: stats.clone(),
        state: State::Authorization { user: None },
    };
    loop {
        match session.converse(&mut conn).await {
            Ok(End::Closed) => break,
            Ok(End::StartTls(tls)) => {
                conn = conn.start_tls(tls, session.config.idle_timeout).await?;
                guard.tls();
            }
            Err(e) => return Err(e),
        }
    }
    conn.shutdown().await;
    Ok(())
}

/// A message of the maildrop as the session numbers it.
struct Entry {
    uid: u32,
    size: u64,
    deleted: bool,
}

/// The maildrop of a logged-in session.
struct Maildrop {
    mail_file: String,
    uidvalidity: u32,
    entries: Vec<Entry>,
    _lock: LockGuard,
}

impl Maildrop {
    /// The message numbered `arg` (1-based), unless deleted or out of range.
    fn get(&self, arg: Option<&str>) -> Result<(usize, &Entry), &'static str> {
        let n: usize = arg
            .and_then(|a| a.parse().ok())
            .ok_or("-ERR message number required")?;
        match n.checked_sub(1).and_then(|i| self.entries.get(i)) {
            Some(e) if e.deleted => Err("-ERR message already deleted"),
            Some(e) => Ok((n, e)),
            None => Err("-ERR no such message"),
        }
    }

    fn live(&self) -> impl Iterator<Item = (usize, &Entry)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.deleted)
            .map(|(i, e)| (i + 1, e))
    }

    fn uidl(&self, e: &Entry) -> String {
        format!("{}.{}", self.uidvalidity, e.uid)
    }
}

enum State {
    Authorization { user: Option<String> },
    Transaction(Maildrop),
}

/// Why [`Session::converse`] returned.
enum End {
    Closed,
    StartTls(Arc<rustls::ServerConfig>),
}

/// A command line read from the client.
enum Line {
    Text(String),
    TooLong,
    Eof,
}

struct Session {
    /// Bytes received and not yet consumed.
    input: Vec<u8>,
    config: Arc<AccessConfig>,
    store: Store,
    handler: Arc<dyn AccessHandler>,
    stats: Arc<AccessStats>,
    state: State,
}

impl Session {
    async fn converse(&mut self, conn: &mut Conn) -> Result<End, SessionError> {
        loop {
            let line = match self.read_line(conn).await? {
                Line::Eof => return Ok(End::Closed),
                Line::TooLong => {
                    conn.write_all(b"-ERR command line too long\r\n").await?;
                    if matches!(self.state, State::Authorization { .. }) {
                        return Ok(End::Closed);
                    }
                    continue;
                }
                Line::Text(line) => line,
            };
            let mut words = line.splitn(2, ' ');
            let verb = words.next().unwrap_or_default().to_ascii_uppercase();
            let arg = words.next().map(str::trim).filter(|a| !a.is_empty());
            let mut out = Vec::new();
            let plaintext_ok = self.config.login_allowed(conn.peer, conn.is_tls());
            match verb.as_str() {
                "QUIT" => {
                    let reply = self.update().await;
                    conn.write_all(reply.as_bytes()).await?;
                    return Ok(End::Closed);
                }
                "CAPA" => out.extend(self.capa(conn).as_bytes()),
                _ if matches!(self.state, State::Transaction(_)) => {
                    if let State::Transaction(drop) = &mut self.state {
                        transaction(&self.store, drop, &verb, arg, &mut out).await;
                    }
                }
                "STLS" => match &self.config.tls {
                    Some(tls) if !conn.is_tls() => {
                        let tls = tls.clone();
                        conn.write_all(b"+OK Begin TLS negotiation\r\n").await?;
                        // Anything pipelined after STLS came in the clear: dropped (RFC 2595).
                        self.input.clear();
                        return Ok(End::StartTls(tls));
                    }
                    Some(_) => out.extend(b"-ERR TLS is already active\r\n"),
                    None => out.extend(b"-ERR TLS is not available\r\n"),
                },
                "USER" | "PASS" if !plaintext_ok => out.extend(PRIVACY.as_bytes()),
                "USER" => match arg {
                    Some(name) => {
                        self.state = State::Authorization {
                            user: Some(name.to_owned()),
                        };
                        out.extend(b"+OK\r\n");
                    }
                    None => out.extend(b"-ERR user name required\r\n"),
                },
                "PASS" => {
                    let user = match &mut self.state {
                        State::Authorization { user } => user.take(),
                        State::Transaction(_) => None,
                    };
                    match (user, arg) {
                        (Some(name), Some(_)) => {
                            // The password may contain spaces: take the rest of the line.
                            let password = line.get(5..).unwrap_or_default();
                            let reply = self.login(conn.peer, &name, password).await;
                            out.extend(reply.as_bytes());
                        }
                        (None, _) => out.extend(b"-ERR USER first\r\n"),
                        (Some(_), None) => out.extend(b"-ERR password required\r\n"),
                    }
                }
                "AUTH" => {
                    let reply = self.auth(conn, arg).await?;
                    out.extend(reply.as_bytes());
                }
                _ => out.extend(b"-ERR unknown command or not allowed before login\r\n"),
            }
            conn.write_all(&out).await?;
        }
    }

    /// The longest line the session takes now: [`PRE_LOGIN_LINE`] before
    /// login, `max_line` after.
    fn max_line(&self) -> usize {
        match self.state {
            State::Authorization { .. } => PRE_LOGIN_LINE.min(self.config.max_line),
            State::Transaction(_) => self.config.max_line,
        }
    }

    /// Next CRLF- (or LF-) terminated line, without its ending. A line longer
    /// than [`Session::max_line`] is skipped to its end and reported as too
    /// long; before login, not even to its end.
    async fn read_line(&mut self, conn: &mut Conn) -> Result<Line, SessionError> {
        let max_line = self.max_line();
        let before_login = matches!(self.state, State::Authorization { .. });
        let mut scanned = 0;
        let mut too_long = false;
        loop {
            if let Some(pos) = self.input[scanned..].iter().position(|b| *b == b'\n') {
                let end = scanned + pos;
                let raw: Vec<u8> = self.input.drain(..=end).collect();
                let line = raw[..end].strip_suffix(b"\r").unwrap_or(&raw[..end]);
                if too_long || line.len() > max_line {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Text(String::from_utf8_lossy(line).into_owned()));
            }
            // (+1: the line's CR may be in, its LF not yet.)
            if self.input.len() > max_line + 1 {
                if before_login {
                    // The session ends: no need to find the line's end.
                    self.input.clear();
                    return Ok(Line::TooLong);
                }
                // Keep no more of an overlong line than needed to find its end.
                self.input.clear();
                too_long = true;
            }
            scanned = self.input.len();
            if conn
                .read_into(&mut self.input, self.config.idle_timeout)
                .await?
                == 0
            {
                return Ok(Line::Eof);
            }
        }
    }

    fn capa(&self, conn: &Conn) -> String {
        let mut capa = String::from("+OK Capability list follows\r\nTOP\r\nUIDL\r\n");
        if matches!(self.state, State::Authorization { .. }) {
            if self.config.login_allowed(conn.peer, conn.is_tls()) {
                capa.push_str("USER\r\nSASL PLAIN\r\n");
            }
            if self.config.tls.is_some() && !conn.is_tls() {
                capa.push_str("STLS\r\n");
            }
        }
        capa.push_str("RESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n");
        capa.push_str("IMPLEMENTATION mailhop\r\n.\r\n");
        capa
    }

    /// AUTH [PLAIN [initial-response]] (RFC 5034).
    async fn auth(&mut self, conn: &mut Conn, arg: Option<&str>) -> Result<String, SessionError> {
        let Some(arg) = arg else {
            return Ok("+OK\r\nPLAIN\r\n.\r\n".to_owned());
        };
        let mut parts = arg.split_ascii_whitespace();
        if !parts
            .next()
            .is_some_and(|m| m.eq_ignore_ascii_case("PLAIN"))
        {
            return Ok("-ERR unsupported authentication mechanism\r\n".to_owned());
        }
        if !self.config.login_allowed(conn.peer, conn.is_tls()) {
            return Ok(PRIVACY.to_owned());
        }
        let response = match parts.next() {
            Some("=") => String::new(),
            Some(initial) => initial.to_owned(),
            None => {
                conn.write_all(b"+ \r\n").await?;
                match self.read_line(conn).await? {
                    Line::Text(text) => text,
                    Line::TooLong => {
                        conn.write_all(b"-ERR response too long\r\n").await?;
                        return Err(SessionError::TooLong(PRE_LOGIN_LINE));
                    }
                    Line::Eof => return Err(SessionError::Io(io::ErrorKind::UnexpectedEof.into())),
                }
            }
        };
        if response.trim() == "*" {
            return Ok("-ERR authentication cancelled\r\n".to_owned());
        }
        let Some((user, password)) = sasl::base64(response.as_bytes())
            .as_deref()
            .and_then(sasl::plain)
        else {
            return Ok("-ERR malformed PLAIN response\r\n".to_owned());
        };
        Ok(self.login(conn.peer, &user, &password).await)
    }

    /// Checks the password, locks and opens the maildrop; the reply line.
    async fn login(&mut self, peer: SocketAddr, user: &str, password: &str) -> String {
        let counters = self.stats.of(Protocol::Pop3);
        let Some(login) = self
            .handler
            .login(peer, Protocol::Pop3, user, password)
            .await
        else {
            counters.login(false);
            return "-ERR [AUTH] Error authentication failed\r\n".to_owned();
        };
        counters.login(true);
        match open_maildrop(&self.store, &login).await {
            Ok(Some(maildrop)) => {
                let reply = format!(
                    "+OK {} has {} messages\r\n",
                    login.identity,
                    maildrop.entries.len()
                );
                self.state = State::Transaction(maildrop);
                reply
            }
            Ok(None) => "-ERR [IN-USE] mailbox locked by another session\r\n".to_owned(),
            Err(e) => {
                tracing::warn!("POP3: cannot open mail file {}: {e}", login.mail_file);
                "-ERR [SYS/TEMP] cannot open the mail file\r\n".to_owned()
            }
        }
    }

    /// QUIT: in the TRANSACTION state, the UPDATE state removes what DELE marked.
    async fn update(&mut self) -> String {
        let State::Transaction(maildrop) = &self.state else {
            return format!("+OK {} POP3 server signing off\r\n", self.config.hostname);
        };
        let uids: Vec<u32> = maildrop
            .entries
            .iter()
            .filter(|e| e.deleted)
            .map(|e| e.uid)
            .collect();
        let left = maildrop.entries.len() - uids.len();
        if !uids.is_empty() {
            let deleted = Flags {
                deleted: true,
                ..Flags::default()
            };
            let mf = &maildrop.mail_file;
            let result = match self
                .store
                .set_flags(mf, INBOX, &uids, FlagOp::Add, deleted)
                .await
            {
                Ok(_) => self.store.expunge(mf, INBOX, Some(&uids)).await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!("POP3: cannot remove deleted messages of {mf}: {e}");
                return "-ERR [SYS/TEMP] some deleted messages not removed\r\n".to_owned();
            }
        }
        format!(
            "+OK {} POP3 server signing off ({left} messages left)\r\n",
            self.config.hostname
        )
    }
}

const PRIVACY: &str = "-ERR [AUTH] plaintext login is refused without TLS: use STLS first\r\n";

/// Locks the maildrop and takes the Inbox snapshot; `None` if it is locked.
async fn open_maildrop(store: &Store, login: &Login) -> Result<Option<Maildrop>, StoreError> {
    // One maildrop: this store's mail file (several servers may share a process).
    let key = format!("{}\n{}", store.location().display(), login.mail_file);
    let Some(lock) = LOCKS.try_lock(&key) else {
        return Ok(None);
    };
    store.ensure_mailfile(&login.mail_file).await?;
    let (s, mf) = (store.clone(), login.mail_file.clone());
    let (info, messages) =
        blocking(move || Ok((s.folder(&mf, INBOX)?, s.messages(&mf, INBOX)?))).await?;
    Ok(Some(Maildrop {
        mail_file: login.mail_file.clone(),
        uidvalidity: info.map_or(0, |i| i.uidvalidity),
        entries: messages
            .into_iter()
            .map(|m| Entry {
                uid: m.uid,
                size: m.size,
                deleted: false,
            })
            .collect(),
        _lock: lock,
    }))
}

/// Runs a store read off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(StoreError::Closed))
}

/// A TRANSACTION-state command; the reply goes to `out`.
async fn transaction(
    store: &Store,
    drop: &mut Maildrop,
    verb: &str,
    arg: Option<&str>,
    out: &mut Vec<u8>,
) {
    let mut line = |text: String| {
        out.extend(text.as_bytes());
        out.extend(b"\r\n");
    };
    match verb {
        "STAT" => {
            let (count, size) = drop
                .live()
                .fold((0, 0), |(c, s), (_, e)| (c + 1, s + e.size));
            line(format!("+OK {count} {size}"));
        }
        "LIST" | "UIDL" => {
            let show = |n: usize, e: &Entry| match verb {
                "LIST" => format!("{n} {}", e.size),
                _ => format!("{n} {}", drop.uidl(e)),
            };
            if arg.is_some() {
                match drop.get(arg) {
                    Ok((n, e)) => line(format!("+OK {}", show(n, e))),
                    Err(err) => line(err.to_owned()),
                }
            } else {
                line("+OK".to_owned());
                for (n, e) in drop.live() {
                    line(show(n, e));
                }
                line(".".to_owned());
            }
        }
        "RETR" | "TOP" => {
            let mut args = arg.unwrap_or_default().split_ascii_whitespace();
            let number = args.next();
            let lines = match (verb, args.next().map(str::parse::<usize>)) {
                ("TOP", Some(Ok(n))) => Some(n),
                ("TOP", _) => {
                    return line("-ERR TOP needs a message number and a line count".into());
                }
                _ => None,
            };
            let (uid, size) = match drop.get(number) {
                Ok((_, e)) => (e.uid, e.size),
                Err(err) => return line(err.to_owned()),
            };
            let (s, mf) = (store.clone(), drop.mail_file.clone());
            match blocking(move || s.message_body(&mf, INBOX, uid)).await {
                Ok(Some(body)) => {
                    line(format!("+OK {size} octets"));
                    write_stuffed(out, &body, lines);
                }
                Ok(None) => line("-ERR message was removed by another session".to_owned()),
                Err(e) => {
                    tracing::warn!("POP3: cannot read a message of {}: {e}", drop.mail_file);
                    line("-ERR [SYS/TEMP] cannot read the message".to_owned());
                }
            }
        }
        "DELE" => match drop.get(arg) {
            Ok((n, _)) => {
                if let Some(e) = drop.entries.get_mut(n - 1) {
                    e.deleted = true;
                }
                line(format!("+OK message {n} deleted"));
            }
            Err(err) => line(err.to_owned()),
        },
        "RSET" => {
            drop.entries.iter_mut().for_each(|e| e.deleted = false);
            line(format!("+OK maildrop has {} messages", drop.entries.len()));
        }
        "NOOP" => line("+OK".to_owned()),
        _ => line("-ERR unknown command".to_owned()),
    }
}

/// The message with CRLF line ends, dot-stuffed, then the terminating `.`;
/// with `body_lines`, only the header and that many body lines (TOP).
fn write_stuffed(out: &mut Vec<u8>, message: &[u8], body_lines: Option<usize>) {
    let mut in_body = false;
    let mut left = body_lines;
    for raw in message.split_inclusive(|b| *b == b'\n') {
        if in_body {
            match left.as_mut() {
                Some(0) => break,
                Some(n) => *n -= 1,
                None => {}
            }
        }
        let content = raw.strip_suffix(b"\n").unwrap_or(raw);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.is_empty() {
            in_body = true;
        }
        if content.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuffed(message: &[u8], lines: Option<usize>) -> String {
        let mut out = Vec::new();
        write_stuffed(&mut out, message, lines);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn dot_stuffing_and_crlf() {
        assert_eq!(
            stuffed(b"Subject: x\n\n.hidden\r\nend", None),
            "Subject: x\r\n\r\n..hidden\r\nend\r\n.\r\n"
        );
    }

    #[test]
    fn top_counts_body_lines() {
        let msg = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n";
        assert_eq!(stuffed(msg, Some(0)), "A: 1\r\nB: 2\r\n\r\n.\r\n");
        assert_eq!(
            stuffed(msg, Some(2)),
            "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n.\r\n"
        );
        assert_eq!(
            stuffed(msg, Some(9)),
            "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n.\r\n"
        );
    }
}
