//! IMAP4rev1 (RFC 3501) and IMAP4rev2 (RFC 9051) sessions over mail files,
//! with imap-codec parsing every command and serialising every response.
//!
//! A selected mailbox is kept small in the session (UID, flags, size and date
//! of each message); bodies are read from the store only for items that need
//! them. Changes committed by other sessions and by deliveries arrive through
//! [`Store::subscribe`] and are shown (EXISTS, EXPUNGE, FETCH FLAGS) at NOOP,
//! IDLE and after commands that allow it. Owns the IMAP conversation only:
//! passwords are the [`AccessHandler`]'s, messages the store's.

mod fetch;
mod mime;
mod search;
mod sequence;

use std::borrow::Cow;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use imap_codec::encode::Encoder;
use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer, LiteralAnnouncement};
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::{
    AString, Atom, IString, LiteralMode, QuotedChar, Tag, Text, Vec1,
};
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::extensions::namespace::Namespace;
use imap_codec::imap_types::fetch::{Macro, MacroOrMessageDataItemNames, MessageDataItemName};
use imap_codec::imap_types::flag::{Flag, FlagNameAttribute, FlagPerm, StoreResponse, StoreType};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::response::{
    Bye, Capability, Code, CodeOther, CommandContinuationRequest, Data, Greeting, GreetingKind,
    Response, Status, StatusBody, StatusKind, Tagged,
};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::SequenceSet;
use imap_codec::imap_types::status::{StatusDataItem, StatusDataItemName};
use imap_codec::{
    AuthenticateDataCodec, CommandCodec, GreetingCodec, IdleDoneCodec, ResponseCodec,
};
use store::{ChangeKind, FlagOp, Flags, MailFileChange, Store, StoreError};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use crate::conn::{Conn, Io, SessionError};
use crate::pop3::blocking;
use crate::{AccessConfig, AccessHandler, AccessStats, Login, Protocol, listener, sasl};
use fetch::Meta;

/// The largest command (with its literals) accepted, e.g. an APPEND.
const MAX_MESSAGE: u32 = 64 * 1024 * 1024;
/// Before login, the largest literal: enough for the user name and
/// password of LOGIN. A bigger one is refused before a byte of it is read.
pub const PRE_LOGIN_LITERAL: u32 = 8 * 1024;
/// Before login, the largest command with its literals (LOGIN with two
/// literals of the largest size fits); a longer one ends the session.
pub const PRE_LOGIN_COMMAND: usize = 3 * PRE_LOGIN_LITERAL as usize;
/// Messages per slice of a FETCH answer.
const FETCH_SLICE: usize = 1000;
/// The hierarchy delimiter of folder names.
const DELIMITER: char = '/';

/// Serves IMAP on `listener` until `shutdown` completes.
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
        Protocol::Imap,
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
        listener::open(stream, peer, Protocol::Imap, handler.as_ref(), &stats).await?;
    let changes = store.subscribe();
    let mut session = Session {
        frag: Fragmentizer::new(MAX_MESSAGE),
        config,
        store,
        handler,
        stats: stats.clone(),
        state: State::NotAuthenticated,
        changes,
        dirty: false,
        out: Vec::new(),
        rev2: false,
        closing: false,
    };
    let greeting = Greeting {
        kind: GreetingKind::Ok,
        code: Some(Code::Capability(session.capabilities(&conn))),
        text: text(&format!("{} IMAP4 server ready", session.config.hostname)),
    };
    conn.write_all(&GreetingCodec::default().encode(&greeting).dump())
        .await?;
    loop {
        match session.converse(&mut conn).await? {
            End::Closed => break,
            End::StartTls(tls) => {
                conn = conn.start_tls(tls, session.config.idle_timeout).await?;
                guard.tls();
            }
        }
    }
    conn.shutdown().await;
    Ok(())
}

/// Why [`Session::converse`] returned.
enum End {
    Closed,
    StartTls(Arc<rustls::ServerConfig>),
}

fn text(s: &str) -> Text<'static> {
    Text::try_from(s.replace(['\r', '\n'], " ")).unwrap_or_else(|_| Text::unvalidated("done"))
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The folder a mailbox names, as the store spells it.
fn folder_of(mailbox: &Mailbox<'_>) -> String {
    match mailbox {
        Mailbox::Inbox => "Inbox".to_owned(),
        Mailbox::Other(other) => String::from_utf8_lossy(other.as_ref()).into_owned(),
    }
}

fn mailbox_of(folder: &str) -> Mailbox<'static> {
    if folder.eq_ignore_ascii_case("inbox") {
        return Mailbox::Inbox;
    }
    AString::try_from(folder.to_owned())
        .ok()
        .map(Mailbox::from)
        .unwrap_or(Mailbox::Inbox)
}

/// LIST wildcard match: `*` anything, `%` anything but the delimiter;
/// other bytes match themselves, ASCII case ignored. Takes at most
/// pattern × name steps (a run of wildcards counts once), whatever the
/// pattern: trying every split recursively took exponential time, so one
/// `LIST "" "%%%%…x"` could hold a server thread for ever.
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    // reach[j]: the pattern read so far matches name[..j].
    let mut reach = vec![false; name.len() + 1];
    reach[0] = true;
    let mut previous = None;
    for &p in pattern {
        match (p, previous) {
            // `**`, `%%` and `*%` match what `*` or `%` alone does.
            (b'*' | b'%', Some(b'*')) | (b'%', Some(b'%')) => continue,
            (b'*' | b'%', _) => {
                let mut on = false;
                for j in 0..=name.len() {
                    if p == b'%' && j > 0 && name[j - 1] == DELIMITER as u8 {
                        on = false;
                    }
                    on |= reach[j];
                    reach[j] = on;
                }
            }
            _ => {
                for j in (1..=name.len()).rev() {
                    reach[j] = reach[j - 1] && name[j - 1].eq_ignore_ascii_case(&p);
                }
                reach[0] = false;
                if !reach.contains(&true) {
                    return false;
                }
            }
        }
        previous = Some(p);
    }
    reach[name.len()]
}

/// The mailbox a session has selected.
struct Selected {
    login: Login,
    folder: String,
    uidvalidity: u32,
    read_only: bool,
    messages: Vec<Meta>,
}

impl Selected {
    fn uids(&self) -> Vec<u32> {
        self.messages.iter().map(|m| m.uid).collect()
    }

    fn index_of(&self, uid: u32) -> Option<usize> {
        self.messages.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    fn seq(i: usize) -> u32 {
        u32::try_from(i + 1).unwrap_or(u32::MAX)
    }
}

enum State {
    NotAuthenticated,
    Authenticated(Login),
    Selected(Selected),
}

impl State {
    fn login(&self) -> Option<&Login> {
        match self {
            State::NotAuthenticated => None,
            State::Authenticated(login) => Some(login),
            State::Selected(s) => Some(&s.login),
        }
    }
}

/// How a command ends.
struct Done {
    kind: StatusKind,
    code: Option<Code<'static>>,
    text: String,
}

fn ok(text: &str) -> Done {
    Done {
        kind: StatusKind::Ok,
        code: None,
        text: text.to_owned(),
    }
}

fn no(text: &str) -> Done {
    Done {
        kind: StatusKind::No,
        code: None,
        text: text.to_owned(),
    }
}

fn bad(text: &str) -> Done {
    Done {
        kind: StatusKind::Bad,
        code: None,
        text: text.to_owned(),
    }
}

fn with_code(mut done: Done, code: Code<'static>) -> Done {
    done.code = Some(code);
    done
}

fn store_failure(e: &StoreError) -> Done {
    match e {
        StoreError::NoSuchFolder { .. } | StoreError::NoSuchMailFile(_) => with_code(
            no("no such mailbox"),
            Code::Other(CodeOther::unvalidated(&b"NONEXISTENT"[..])),
        ),
        StoreError::FolderExists { .. } => with_code(
            no("mailbox already exists"),
            Code::Other(CodeOther::unvalidated(&b"ALREADYEXISTS"[..])),
        ),
        StoreError::InvalidFolderName { .. } | StoreError::InvalidKeyword(_) => no(&e.to_string()),
        _ => {
            // Folder names in it are the client's.
            tracing::warn!("IMAP: store error: {}", logsafe::shown(&e.to_string()));
            with_code(
                no("the mail file cannot be read or written now"),
                Code::Other(CodeOther::unvalidated(&b"UNAVAILABLE"[..])),
            )
        }
    }
}

/// What the loop does after a command.
enum After {
    Continue,
    Logout,
    StartTls(Arc<rustls::ServerConfig>),
    Idle(Tag<'static>),
    Authenticate(Tag<'static>),
}

struct Session {
    frag: Fragmentizer,
    config: Arc<AccessConfig>,
    store: Store,
    handler: Arc<dyn AccessHandler>,
    stats: Arc<AccessStats>,
    state: State,
    changes: broadcast::Receiver<MailFileChange>,
    /// The selected mailbox changed in the store since it was last shown.
    dirty: bool,
    /// Responses not yet sent.
    out: Vec<u8>,
    /// The client enabled IMAP4rev2.
    rev2: bool,
    /// The session ends: the client was told why.
    closing: bool,
}

/// A message read from the client.
enum Incoming {
    Complete,
    Eof,
}

impl Session {
    fn capabilities(&self, conn: &Conn) -> Vec1<Capability<'static>> {
        let other = |s: &'static str| Atom::try_from(s).ok().map(Capability::from);
        let mut caps = vec![Capability::Imap4Rev1];
        caps.extend(other("IMAP4rev2"));
        let plaintext_ok = self.config.login_allowed(conn.peer, conn.is_tls());
        if self.state.login().is_none() {
            if self.config.tls.is_some() && !conn.is_tls() {
                caps.push(Capability::StartTls);
            }
            if plaintext_ok {
                caps.push(Capability::Auth(AuthMechanism::Plain));
            } else {
                caps.push(Capability::LoginDisabled);
            }
            caps.push(Capability::SaslIr);
        }
        caps.extend([
            Capability::LiteralPlus,
            Capability::Idle,
            Capability::Namespace,
            Capability::Id,
            Capability::Enable,
            Capability::Unselect,
            Capability::Move,
            Capability::UidPlus,
            Capability::StatusSize,
            Capability::Binary,
        ]);
        caps.extend(other("SPECIAL-USE"));
        caps.extend(other("CHILDREN"));
        caps.extend(other("UTF8=ACCEPT"));
        Vec1::try_from(caps).unwrap_or_else(|_| Vec1::from(Capability::Imap4Rev1))
    }

    fn respond(&mut self, response: Response<'_>) {
        self.out
            .extend(ResponseCodec::default().encode(&response).dump());
    }

    fn data(&mut self, data: Data<'_>) {
        self.respond(Response::Data(data));
    }

    fn untagged(&mut self, kind: StatusKind, code: Option<Code<'static>>, message: &str) {
        self.respond(Response::Status(Status::Untagged(StatusBody {
            kind,
            code,
            text: text(message),
        })));
    }

    fn tagged(&mut self, tag: Tag<'static>, done: Done) {
        self.respond(Response::Status(Status::Tagged(Tagged {
            tag,
            body: StatusBody {
                kind: done.kind,
                code: done.code,
                text: text(&done.text),
            },
        })));
    }

    async fn flush(&mut self, conn: &mut Conn) -> Result<(), SessionError> {
        if !self.out.is_empty() {
            let out = std::mem::take(&mut self.out);
            conn.write_all(&out).await?;
        }
        Ok(())
    }

    /// Reads until the fragmentizer holds a complete message, answering
    /// synchronizing literals on the way. Before login only small commands
    /// and literals are taken ([`PRE_LOGIN_LITERAL`], [`PRE_LOGIN_COMMAND`]);
    /// `Eof` also when the session must end (the client was told why).
    /// `answering` is the tag of the command whose continuation is read
    /// (AUTHENTICATE), when it is not a command of its own.
    async fn next_message(
        &mut self,
        conn: &mut Conn,
        answering: Option<&Tag<'static>>,
    ) -> Result<Incoming, SessionError> {
        let mut buf = Vec::new();
        loop {
            if self.closing {
                return Ok(Incoming::Eof);
            }
            let logged_in = self.state.login().is_some();
            let progress = self.frag.progress();
            if !logged_in && self.frag.message_bytes().len() > PRE_LOGIN_COMMAND {
                self.refuse_and_close(conn, answering, "command too long before login")
                    .await?;
                continue;
            }
            match progress {
                None => {
                    buf.clear();
                    if conn.read_into(&mut buf, self.config.idle_timeout).await? == 0 {
                        return Ok(Incoming::Eof);
                    }
                    self.frag.enqueue_bytes(&buf);
                }
                Some(FragmentInfo::Line {
                    announcement: Some(LiteralAnnouncement { mode, length }),
                    ..
                }) => {
                    let most = if logged_in {
                        MAX_MESSAGE
                    } else {
                        PRE_LOGIN_LITERAL
                    };
                    if length <= most {
                        if mode == LiteralMode::Sync {
                            conn.write_all(b"+ Ready for literal data\r\n").await?;
                        }
                    } else if mode == LiteralMode::Sync {
                        // The client waits for `+`: it sends no literal.
                        let tag = self.frag.decode_tag().map(IntoStatic::into_static);
                        self.frag.skip_message();
                        let done = with_code(no("literal too big"), Code::TooBig);
                        match tag {
                            Some(tag) => self.tagged(tag, done),
                            None => self.untagged(StatusKind::Bad, None, "literal too big"),
                        }
                        self.flush(conn).await?;
                    } else if logged_in {
                        // Read past, never kept; the command fails.
                        self.frag.poison_message();
                    } else {
                        // RFC 7888 §4: a non-synchronizing literal too big
                        // is answered BAD, and the connection is closed
                        // before the literal is read.
                        self.refuse_and_close(conn, answering, "literal too big before login")
                            .await?;
                    }
                }
                Some(_) => {
                    if self.frag.is_message_complete() {
                        return Ok(Incoming::Complete);
                    }
                }
            }
        }
    }

    /// Answers the command being read `BAD [TOOBIG]`, says `BYE` and ends
    /// the session without reading more of it.
    async fn refuse_and_close(
        &mut self,
        conn: &mut Conn,
        answering: Option<&Tag<'static>>,
        why: &str,
    ) -> Result<(), SessionError> {
        let tag = match answering {
            Some(tag) => Some(tag.clone()),
            None => self.frag.decode_tag().map(IntoStatic::into_static),
        };
        let done = with_code(bad(why), Code::TooBig);
        match tag {
            Some(tag) => self.tagged(tag, done),
            None => self.untagged(StatusKind::Bad, Some(Code::TooBig), why),
        }
        self.respond(Response::Status(Status::Bye(Bye {
            code: None,
            text: text(&format!("{} closing the connection", self.config.hostname)),
        })));
        self.flush(conn).await?;
        self.closing = true;
        Ok(())
    }

    async fn converse(&mut self, conn: &mut Conn) -> Result<End, SessionError> {
        loop {
            if let Incoming::Eof = self.next_message(conn, None).await? {
                return Ok(End::Closed);
            }
            let command = match self.frag.decode_message(&CommandCodec::default()) {
                Ok(command) => command.into_static(),
                Err(_) => {
                    let tag = self.frag.decode_tag().map(IntoStatic::into_static);
                    match tag {
                        Some(tag) => self.tagged(tag, bad("command not understood")),
                        None => self.untagged(StatusKind::Bad, None, "command not understood"),
                    }
                    self.flush(conn).await?;
                    continue;
                }
            };
            match self.command(conn, command).await? {
                After::Continue => {}
                After::Logout => {
                    self.flush(conn).await?;
                    return Ok(End::Closed);
                }
                After::StartTls(tls) => {
                    self.flush(conn).await?;
                    // Anything pipelined after STARTTLS came in the clear: dropped.
                    self.frag = Fragmentizer::new(MAX_MESSAGE);
                    return Ok(End::StartTls(tls));
                }
                After::Idle(tag) => self.idle(conn, tag).await?,
                After::Authenticate(tag) => self.authenticate_continue(conn, tag).await?,
            }
            self.flush(conn).await?;
        }
    }
}

impl Session {
    async fn command(
        &mut self,
        conn: &mut Conn,
        command: Command<'static>,
    ) -> Result<After, SessionError> {
        let Command { tag, body } = command;
        let authenticated = self.state.login().is_some();
        let selected = matches!(self.state, State::Selected(_));
        // EXPUNGE responses are not allowed during FETCH, STORE and SEARCH (RFC 3501 §7.4.1).
        let mut expunge_ok = true;
        let done = match body {
            CommandBody::Capability => {
                let caps = self.capabilities(conn);
                self.data(Data::Capability(caps));
                ok("CAPABILITY completed")
            }
            CommandBody::Noop | CommandBody::Check => ok("completed"),
            CommandBody::Logout => {
                self.respond(Response::Status(Status::Bye(Bye {
                    code: None,
                    text: text(&format!(
                        "{} IMAP4 server signing off",
                        self.config.hostname
                    )),
                })));
                self.tagged(tag, ok("LOGOUT completed"));
                return Ok(After::Logout);
            }
            CommandBody::StartTLS if !authenticated => match &self.config.tls {
                Some(tls) if !conn.is_tls() => {
                    let tls = tls.clone();
                    self.tagged(tag, ok("Begin TLS negotiation now"));
                    return Ok(After::StartTls(tls));
                }
                _ => bad("TLS is not available or already active"),
            },
            CommandBody::Login { username, password } if !authenticated => {
                if self.config.login_allowed(conn.peer, conn.is_tls()) {
                    let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                    let password =
                        String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
                    self.login(conn, &user, &password).await
                } else {
                    privacy_required()
                }
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } if !authenticated => {
                if mechanism != AuthMechanism::Plain {
                    no("unsupported authentication mechanism")
                } else if !self.config.login_allowed(conn.peer, conn.is_tls()) {
                    privacy_required()
                } else if let Some(response) = initial_response {
                    let response = response.declassify().to_vec();
                    self.plain(conn, &response).await
                } else {
                    self.respond(Response::CommandContinuationRequest(
                        CommandContinuationRequest::Base64(Cow::Borrowed(b"")),
                    ));
                    return Ok(After::Authenticate(tag));
                }
            }
            CommandBody::Enable { capabilities } if authenticated => {
                let mut enabled = Vec::new();
                for cap in capabilities.into_iter() {
                    let name = cap.to_string().to_ascii_uppercase();
                    if name == "IMAP4REV2" {
                        self.rev2 = true;
                        enabled.push(cap);
                    } else if name == "UTF8=ACCEPT" {
                        enabled.push(cap);
                    }
                }
                self.data(Data::Enabled {
                    capabilities: enabled,
                });
                ok("ENABLE completed")
            }
            CommandBody::Id { .. } => {
                let pair = |k: &'static str, v: &'static str| {
                    IString::try_from(k)
                        .ok()
                        .zip(imap_codec::imap_types::core::NString::try_from(v).ok())
                };
                let params = [pair("name", "mailhop"), pair("vendor", "mailhop")]
                    .into_iter()
                    .flatten()
                    .collect();
                self.data(Data::Id {
                    parameters: Some(params),
                });
                ok("ID completed")
            }
            _ if !authenticated => bad("command not allowed before login"),
            CommandBody::Namespace => {
                let personal = vec![Namespace {
                    prefix: IString::try_from("").unwrap_or_else(|_| {
                        IString::Quoted(imap_codec::imap_types::core::Quoted::unvalidated(""))
                    }),
                    delimiter: QuotedChar::try_from(DELIMITER).ok(),
                    extensions: Vec::new(),
                }];
                self.data(Data::Namespace {
                    personal,
                    other: Vec::new(),
                    shared: Vec::new(),
                });
                ok("NAMESPACE completed")
            }
            CommandBody::Select { mailbox, .. } => self.select(&mailbox, false).await,
            CommandBody::Examine { mailbox, .. } => self.select(&mailbox, true).await,
            CommandBody::Create { mailbox } => {
                let (mf, folder) = (self.mail_file(), folder_of(&mailbox));
                let folder = folder.trim_end_matches(DELIMITER).to_owned();
                match self.store.create_folder(&mf, &folder, None).await {
                    Ok(_) => ok("CREATE completed"),
                    Err(e) => store_failure(&e),
                }
            }
            CommandBody::Delete { mailbox } => {
                let (mf, folder) = (self.mail_file(), folder_of(&mailbox));
                match self.store.delete_folder(&mf, &folder).await {
                    Ok(true) => ok("DELETE completed"),
                    Ok(false) => no("no such mailbox or it cannot be deleted"),
                    Err(e) => store_failure(&e),
                }
            }
            CommandBody::Rename { from, to } => {
                let mf = self.mail_file();
                match self
                    .store
                    .rename_folder(&mf, &folder_of(&from), &folder_of(&to))
                    .await
                {
                    Ok(()) => ok("RENAME completed"),
                    Err(e) => store_failure(&e),
                }
            }
            CommandBody::Subscribe { mailbox } => self.subscribe(&mailbox, true).await,
            CommandBody::Unsubscribe { mailbox } => self.subscribe(&mailbox, false).await,
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => self.list(&reference, &mailbox_wildcard, false).await,
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => self.list(&reference, &mailbox_wildcard, true).await,
            CommandBody::Status {
                mailbox,
                item_names,
            } => self.status(&mailbox, &item_names).await,
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => {
                let data = match message {
                    LiteralOrLiteral8::Literal(l) => l.into_inner().into_owned(),
                    LiteralOrLiteral8::Literal8(l) => l.data.into_owned(),
                };
                let date = date.map_or_else(now_millis, |d| d.as_ref().timestamp_millis());
                self.append(&mailbox, &flags, date, data).await
            }
            CommandBody::Idle => {
                self.sync(true).await;
                self.respond(Response::CommandContinuationRequest(
                    CommandContinuationRequest::basic(None, "idling")
                        .unwrap_or(CommandContinuationRequest::Base64(Cow::Borrowed(b""))),
                ));
                return Ok(After::Idle(tag));
            }
            _ if !selected => bad("no mailbox selected"),
            CommandBody::Unselect => {
                self.deselect();
                ok("UNSELECT completed")
            }
            CommandBody::Close => {
                if let State::Selected(sel) = &self.state
                    && !sel.read_only
                    && let Err(e) = self
                        .store
                        .expunge(&sel.login.mail_file, &sel.folder, None)
                        .await
                {
                    tracing::warn!(
                        "IMAP: CLOSE could not expunge: {}",
                        logsafe::shown(&e.to_string())
                    );
                }
                self.deselect();
                ok("CLOSE completed")
            }
            CommandBody::Expunge => self.expunge(None).await,
            CommandBody::ExpungeUid { sequence_set } => self.expunge(Some(&sequence_set)).await,
            CommandBody::Search { criteria, uid, .. } => {
                expunge_ok = uid;
                self.search(criteria, uid).await
            }
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                ..
            } => {
                expunge_ok = uid;
                self.fetch(conn, &sequence_set, macro_or_item_names, uid)
                    .await?
            }
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                ..
            } => {
                expunge_ok = uid;
                self.store_flags(&sequence_set, kind, response, &flags, uid)
                    .await
            }
            CommandBody::Copy {
                sequence_set,
                mailbox,
                uid,
            } => self.copy(&sequence_set, &mailbox, uid, false).await,
            CommandBody::Move {
                sequence_set,
                mailbox,
                uid,
            } => self.copy(&sequence_set, &mailbox, uid, true).await,
            _ => bad("command not supported"),
        };
        self.sync(expunge_ok).await;
        self.tagged(tag, done);
        Ok(After::Continue)
    }
}

fn privacy_required() -> Done {
    with_code(
        no("plaintext login is refused without TLS: use STARTTLS first"),
        Code::Other(CodeOther::unvalidated(&b"PRIVACYREQUIRED"[..])),
    )
}

impl Session {
    fn mail_file(&self) -> String {
        self.state
            .login()
            .map(|l| l.mail_file.clone())
            .unwrap_or_default()
    }

    async fn login(&mut self, conn: &Conn, user: &str, password: &str) -> Done {
        let counters = self.stats.of(Protocol::Imap);
        let Some(login) = self
            .handler
            .login(conn.peer, Protocol::Imap, user, password)
            .await
        else {
            counters.login(false);
            return with_code(
                no("LOGIN invalid user name or password"),
                Code::Other(CodeOther::unvalidated(&b"AUTHENTICATIONFAILED"[..])),
            );
        };
        counters.login(true);
        if let Err(e) = self.store.ensure_mailfile(&login.mail_file).await {
            return store_failure(&e);
        }
        self.state = State::Authenticated(login);
        with_code(
            ok("LOGIN completed"),
            Code::Capability(self.capabilities(conn)),
        )
    }

    async fn plain(&mut self, conn: &Conn, response: &[u8]) -> Done {
        match sasl::plain(response) {
            Some((user, password)) => self.login(conn, &user, &password).await,
            None => bad("malformed PLAIN response"),
        }
    }

    /// The client's answer to the AUTHENTICATE continuation.
    async fn authenticate_continue(
        &mut self,
        conn: &mut Conn,
        tag: Tag<'static>,
    ) -> Result<(), SessionError> {
        self.flush(conn).await?;
        if let Incoming::Eof = self.next_message(conn, Some(&tag)).await? {
            return Ok(());
        }
        let data = self
            .frag
            .decode_message(&AuthenticateDataCodec::default())
            .map(IntoStatic::into_static);
        let done = match data {
            Ok(AuthenticateData::Continue(response)) => {
                let response = response.declassify().to_vec();
                self.plain(conn, &response).await
            }
            Ok(AuthenticateData::Cancel) => bad("AUTHENTICATE cancelled"),
            Err(_) => bad("malformed AUTHENTICATE response"),
        };
        self.tagged(tag, done);
        Ok(())
    }

    /// IDLE until DONE, showing changes as they are committed.
    async fn idle(&mut self, conn: &mut Conn, tag: Tag<'static>) -> Result<(), SessionError> {
        self.flush(conn).await?;
        let mut buf = Vec::new();
        loop {
            // Bytes already received may hold DONE.
            while let Some(fragment) = self.frag.progress() {
                if matches!(fragment, FragmentInfo::Line { .. }) && self.frag.is_message_complete()
                {
                    let done = match self.frag.decode_message(&IdleDoneCodec::default()) {
                        Ok(_) => ok("IDLE terminated"),
                        Err(_) => bad("expected DONE"),
                    };
                    self.sync(true).await;
                    self.tagged(tag, done);
                    return Ok(());
                }
            }
            tokio::select! {
                read = conn.read_into(&mut buf, self.config.idle_timeout) => {
                    if read? == 0 {
                        return Ok(());
                    }
                    self.frag.enqueue_bytes(&buf);
                    buf.clear();
                }
                change = self.changes.recv() => {
                    self.note(change);
                    self.sync(true).await;
                    self.flush(conn).await?;
                }
            }
        }
    }

    /// Marks the selected mailbox dirty if `change` concerns it.
    fn note(&mut self, change: Result<MailFileChange, broadcast::error::RecvError>) {
        let State::Selected(sel) = &self.state else {
            return;
        };
        match change {
            Ok(c) => {
                if c.mail_file.eq_ignore_ascii_case(&sel.login.mail_file)
                    && c.folder == sel.folder
                    && !matches!(c.kind, ChangeKind::Folders)
                {
                    self.dirty = true;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => self.dirty = true,
            // The store is gone: nothing more will change.
            Err(broadcast::error::RecvError::Closed) => {}
        }
    }

    /// Shows what other sessions and deliveries changed in the selected mailbox.
    async fn sync(&mut self, expunge_ok: bool) {
        loop {
            match self.changes.try_recv() {
                Ok(change) => self.note(Ok(change)),
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    self.note(Err(broadcast::error::RecvError::Lagged(n)))
                }
                Err(_) => break,
            }
        }
        if !self.dirty || !expunge_ok {
            return;
        }
        let State::Selected(sel) = &self.state else {
            self.dirty = false;
            return;
        };
        let (store, mf, folder) = (
            self.store.clone(),
            sel.login.mail_file.clone(),
            sel.folder.clone(),
        );
        let Ok(entries) = blocking(move || store.entries(&mf, &folder, None)).await else {
            return;
        };
        self.dirty = false;
        let mut responses = Vec::new();
        let State::Selected(sel) = &mut self.state else {
            return;
        };
        // Expunged: highest sequence numbers first, so each number is still valid.
        for i in (0..sel.messages.len()).rev() {
            let uid = sel.messages[i].uid;
            if entries.binary_search_by_key(&uid, |e| e.uid).is_err() {
                sel.messages.remove(i);
                if let Some(seq) = NonZeroU32::new(Selected::seq(i)) {
                    responses.push(Data::Expunge(seq));
                }
            }
        }
        // Flags changed.
        let mut changed = Vec::new();
        for (i, meta) in sel.messages.iter_mut().enumerate() {
            if let Ok(e) = entries.binary_search_by_key(&meta.uid, |e| e.uid)
                && entries[e].flags != meta.flags
            {
                meta.flags = entries[e].flags.clone();
                changed.push((Selected::seq(i), meta.uid, meta.flags.clone()));
            }
        }
        // Appended.
        let last = sel.messages.last().map_or(0, |m| m.uid);
        let before = sel.messages.len();
        sel.messages
            .extend(entries.iter().filter(|e| e.uid > last).cloned());
        let exists = (sel.messages.len() != before)
            .then(|| u32::try_from(sel.messages.len()).unwrap_or(u32::MAX));
        for data in responses {
            self.data(data);
        }
        for (seq, uid, flags) in changed {
            let mut items = vec![imap_codec::imap_types::fetch::MessageDataItem::Flags(
                fetch::flag_list(&flags),
            )];
            if let Some(uid) = NonZeroU32::new(uid) {
                items.push(imap_codec::imap_types::fetch::MessageDataItem::Uid(uid));
            }
            fetch::encode_fetch(&mut self.out, seq, items);
        }
        if let Some(n) = exists {
            self.data(Data::Exists(n));
        }
    }

    fn deselect(&mut self) {
        if let State::Selected(sel) = std::mem::replace(&mut self.state, State::NotAuthenticated) {
            self.state = State::Authenticated(sel.login);
        }
        self.dirty = false;
    }

    async fn select(&mut self, mailbox: &Mailbox<'_>, read_only: bool) -> Done {
        let Some(login) = self.state.login().cloned() else {
            return bad("not logged in");
        };
        if matches!(self.state, State::Selected(_)) {
            self.deselect();
            // RFC 7162 §3.2.11 style: tell the client the old mailbox is closed.
            self.untagged(
                StatusKind::Ok,
                Some(Code::Other(CodeOther::unvalidated(&b"CLOSED"[..]))),
                "previous mailbox closed",
            );
        }
        let folder = folder_of(mailbox);
        let (store, mf, f) = (self.store.clone(), login.mail_file.clone(), folder.clone());
        // Changes queued so far are in the listing read below; later ones
        // arrive as notifications (re-reading is idempotent).
        while self.changes.try_recv().is_ok() {}
        let read = blocking(move || store.listing(&mf, &f)).await;
        let (info, entries) = match read {
            Ok(Some((info, entries))) => (info, entries),
            Ok(None) => {
                return store_failure(&StoreError::NoSuchFolder {
                    mail_file: login.mail_file,
                    folder,
                });
            }
            Err(e) => return store_failure(&e),
        };
        let messages: Vec<Meta> = entries;
        let flags = [
            Flag::Answered,
            Flag::Flagged,
            Flag::Deleted,
            Flag::Seen,
            Flag::Draft,
        ];
        self.data(Data::Flags(flags.to_vec()));
        self.data(Data::Exists(
            u32::try_from(messages.len()).unwrap_or(u32::MAX),
        ));
        if !self.rev2 {
            let recent = messages.iter().filter(|m| m.flags.recent).count();
            self.data(Data::Recent(u32::try_from(recent).unwrap_or(u32::MAX)));
            if let Some(first) = messages.iter().position(|m| !m.flags.seen)
                && let Some(seq) = NonZeroU32::new(Selected::seq(first))
            {
                self.untagged(StatusKind::Ok, Some(Code::Unseen(seq)), "first unseen");
            }
        }
        let mut perm: Vec<FlagPerm<'static>> = flags.into_iter().map(FlagPerm::Flag).collect();
        perm.push(FlagPerm::Asterisk);
        self.untagged(
            StatusKind::Ok,
            Some(Code::PermanentFlags(if read_only {
                Vec::new()
            } else {
                perm
            })),
            "flags permitted",
        );
        if let Some(v) = NonZeroU32::new(info.uidvalidity) {
            self.untagged(StatusKind::Ok, Some(Code::UidValidity(v)), "UIDs valid");
        }
        if let Some(n) = NonZeroU32::new(info.uidnext) {
            self.untagged(StatusKind::Ok, Some(Code::UidNext(n)), "predicted next UID");
        }
        if self.rev2 {
            let attrs = Vec::new();
            self.data(Data::List {
                items: attrs,
                delimiter: QuotedChar::try_from(DELIMITER).ok(),
                mailbox: mailbox_of(&info.name),
            });
        }
        self.state = State::Selected(Selected {
            login,
            uidvalidity: info.uidvalidity,
            folder: info.name,
            read_only,
            messages,
        });
        self.dirty = false;
        if read_only {
            with_code(ok("EXAMINE completed"), Code::ReadOnly)
        } else {
            with_code(ok("SELECT completed"), Code::ReadWrite)
        }
    }

    async fn subscribe(&mut self, mailbox: &Mailbox<'_>, on: bool) -> Done {
        let mf = self.mail_file();
        match self
            .store
            .set_subscribed(&mf, &folder_of(mailbox), on)
            .await
        {
            Ok(()) => ok(if on {
                "SUBSCRIBE completed"
            } else {
                "UNSUBSCRIBE completed"
            }),
            Err(e) => store_failure(&e),
        }
    }

    async fn list(
        &mut self,
        reference: &Mailbox<'_>,
        pattern: &ListMailbox<'_>,
        lsub: bool,
    ) -> Done {
        let pattern: &[u8] = match pattern {
            ListMailbox::Token(t) => t.as_ref(),
            ListMailbox::String(s) => s.as_ref(),
        };
        let reference = match reference {
            Mailbox::Inbox => "INBOX".to_owned(),
            Mailbox::Other(o) => String::from_utf8_lossy(o.as_ref()).into_owned(),
        };
        let delimiter = QuotedChar::try_from(DELIMITER).ok();
        if pattern.is_empty() && !lsub {
            let root = AString::try_from("")
                .ok()
                .map(Mailbox::from)
                .unwrap_or(Mailbox::Inbox);
            self.data(Data::List {
                items: vec![FlagNameAttribute::Noselect],
                delimiter,
                mailbox: root,
            });
            return ok("LIST completed");
        }
        let mut full = reference.into_bytes();
        full.extend_from_slice(pattern);
        let mf = self.mail_file();
        let store = self.store.clone();
        let folders = match blocking(move || store.folders(&mf)).await {
            Ok(f) => f,
            Err(e) => return store_failure(&e),
        };
        let attr = |name: &str| {
            Atom::try_from(name.to_owned())
                .ok()
                .map(FlagNameAttribute::from)
        };
        for info in &folders {
            let shown = if info.name == "Inbox" {
                "INBOX"
            } else {
                info.name.as_str()
            };
            if !wildcard(&full, shown.as_bytes()) || (lsub && !info.subscribed) {
                continue;
            }
            let prefix = format!("{}{DELIMITER}", info.name);
            let children = folders.iter().any(|f| f.name.starts_with(&prefix));
            let mut items: Vec<FlagNameAttribute<'static>> = Vec::new();
            items.extend(attr(if children {
                "HasChildren"
            } else {
                "HasNoChildren"
            }));
            if let Some(special) = info.special_use {
                items.extend(attr(special.attribute().trim_start_matches('\\')));
            }
            if info.subscribed && !lsub {
                items.extend(attr("Subscribed"));
            }
            let data = if lsub {
                Data::Lsub {
                    items,
                    delimiter,
                    mailbox: mailbox_of(&info.name),
                }
            } else {
                Data::List {
                    items,
                    delimiter,
                    mailbox: mailbox_of(&info.name),
                }
            };
            self.data(data);
        }
        ok(if lsub {
            "LSUB completed"
        } else {
            "LIST completed"
        })
    }

    async fn status(&mut self, mailbox: &Mailbox<'_>, names: &[StatusDataItemName]) -> Done {
        let (store, mf, folder) = (self.store.clone(), self.mail_file(), folder_of(mailbox));
        let need_size = names.contains(&StatusDataItemName::Size)
            || names.contains(&StatusDataItemName::Deleted);
        let read = blocking(move || {
            let info = store.folder(&mf, &folder)?;
            let entries = if need_size {
                store.entries(&mf, &folder, None)?
            } else {
                Vec::new()
            };
            Ok((info, entries))
        })
        .await;
        let (info, entries) = match read {
            Ok((Some(info), entries)) => (info, entries),
            Ok((None, _)) => {
                return store_failure(&StoreError::NoSuchFolder {
                    mail_file: self.mail_file(),
                    folder: folder_of(mailbox),
                });
            }
            Err(e) => return store_failure(&e),
        };
        let mut items = Vec::new();
        for name in names {
            items.extend(match name {
                StatusDataItemName::Messages => Some(StatusDataItem::Messages(info.exists)),
                StatusDataItemName::Recent => Some(StatusDataItem::Recent(info.recent)),
                StatusDataItemName::UidNext => {
                    NonZeroU32::new(info.uidnext).map(StatusDataItem::UidNext)
                }
                StatusDataItemName::UidValidity => {
                    NonZeroU32::new(info.uidvalidity).map(StatusDataItem::UidValidity)
                }
                StatusDataItemName::Unseen => Some(StatusDataItem::Unseen(info.unseen)),
                StatusDataItemName::Deleted => Some(StatusDataItem::Deleted(
                    u32::try_from(entries.iter().filter(|e| e.flags.deleted).count())
                        .unwrap_or(u32::MAX),
                )),
                StatusDataItemName::Size => {
                    Some(StatusDataItem::Size(entries.iter().map(|e| e.size).sum()))
                }
                #[allow(unreachable_patterns)]
                _ => None,
            });
        }
        self.data(Data::Status {
            mailbox: mailbox_of(&info.name),
            items: items.into(),
        });
        ok("STATUS completed")
    }

    async fn append(
        &mut self,
        mailbox: &Mailbox<'_>,
        flags: &[Flag<'_>],
        date: i64,
        data: Vec<u8>,
    ) -> Done {
        let (mf, folder) = (self.mail_file(), folder_of(mailbox));
        let flags = Flags::from_names(
            flags
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        );
        let (store, m, f) = (self.store.clone(), mf.clone(), folder.clone());
        let validity = match blocking(move || store.folder(&m, &f)).await {
            Ok(Some(info)) => info.uidvalidity,
            Ok(None) => return with_code(no("no such mailbox"), Code::TryCreate),
            Err(e) => return store_failure(&e),
        };
        match self.store.append(&mf, &folder, data, flags, date).await {
            Ok(entry) => match (NonZeroU32::new(validity), NonZeroU32::new(entry.uid)) {
                (Some(uid_validity), Some(uid)) => with_code(
                    ok("APPEND completed"),
                    Code::AppendUid { uid_validity, uid },
                ),
                _ => ok("APPEND completed"),
            },
            Err(e @ StoreError::NoSuchFolder { .. }) => {
                with_code(store_failure(&e), Code::TryCreate)
            }
            Err(e) => store_failure(&e),
        }
    }

    /// EXPUNGE, or UID EXPUNGE of `set`.
    async fn expunge(&mut self, set: Option<&SequenceSet>) -> Done {
        let State::Selected(sel) = &self.state else {
            return bad("no mailbox selected");
        };
        if sel.read_only {
            return no("mailbox is read-only");
        }
        let uids: Option<Vec<u32>> = set.map(|set| {
            let all = sel.uids();
            sequence::resolve(set, &all, true)
                .into_iter()
                .map(|i| all[i])
                .collect()
        });
        let (mf, folder) = (sel.login.mail_file.clone(), sel.folder.clone());
        let removed = match self.store.expunge(&mf, &folder, uids.as_deref()).await {
            Ok(removed) => removed,
            Err(e) => return store_failure(&e),
        };
        self.forget(&removed);
        ok("EXPUNGE completed")
    }

    /// Removes `uids` from the selected mailbox, with EXPUNGE responses.
    fn forget(&mut self, uids: &[u32]) {
        let State::Selected(sel) = &mut self.state else {
            return;
        };
        let mut gone = Vec::new();
        for uid in uids {
            if let Some(i) = sel.index_of(*uid) {
                gone.push(i);
            }
        }
        gone.sort_unstable();
        let mut responses = Vec::new();
        for i in gone.into_iter().rev() {
            sel.messages.remove(i);
            if let Some(seq) = NonZeroU32::new(Selected::seq(i)) {
                responses.push(Data::Expunge(seq));
            }
        }
        for data in responses {
            self.data(data);
        }
    }

    async fn search(&mut self, criteria: Vec1<SearchKey<'static>>, uid: bool) -> Done {
        let State::Selected(sel) = &self.state else {
            return bad("no mailbox selected");
        };
        let key = SearchKey::And(criteria);
        let messages: Vec<(u32, u32, Flags)> = sel
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| (Selected::seq(i), m.uid, m.flags.clone()))
            .collect();
        let (store, mf, folder) = (
            self.store.clone(),
            sel.login.mail_file.clone(),
            sel.folder.clone(),
        );
        let found = blocking(move || {
            let entries = store.messages(&mf, &folder)?;
            let max_seq = u32::try_from(messages.len()).unwrap_or(u32::MAX);
            let max_uid = messages.last().map_or(0, |m| m.1);
            let mut found = Vec::new();
            for (seq, uid_value, flags) in &messages {
                let entry = entries
                    .binary_search_by_key(uid_value, |e| e.uid)
                    .ok()
                    .map(|i| &entries[i]);
                let candidate = search::Candidate {
                    seq: *seq,
                    uid: *uid_value,
                    flags,
                    entry,
                    max_seq,
                    max_uid,
                };
                let mut body = LazyBody {
                    store: &store,
                    mail_file: &mf,
                    folder: &folder,
                    uid: *uid_value,
                    data: None,
                };
                if search::matches(&key, &candidate, &mut body) {
                    found.extend(NonZeroU32::new(if uid { *uid_value } else { *seq }));
                }
            }
            Ok(found)
        })
        .await;
        match found {
            Ok(found) => {
                self.data(Data::Search(found));
                ok("SEARCH completed")
            }
            Err(e) => store_failure(&e),
        }
    }

    async fn fetch(
        &mut self,
        conn: &mut Conn,
        set: &SequenceSet,
        names: MacroOrMessageDataItemNames<'static>,
        uid: bool,
    ) -> Result<Done, SessionError> {
        let mut names = match names {
            MacroOrMessageDataItemNames::Macro(m) => {
                let mut names = vec![
                    MessageDataItemName::Flags,
                    MessageDataItemName::InternalDate,
                    MessageDataItemName::Rfc822Size,
                ];
                if matches!(m, Macro::All | Macro::Full) {
                    names.push(MessageDataItemName::Envelope);
                }
                if matches!(m, Macro::Full) {
                    names.push(MessageDataItemName::Body);
                }
                names
            }
            MacroOrMessageDataItemNames::MessageDataItemNames(names) => names,
        };
        if uid && !names.contains(&MessageDataItemName::Uid) {
            names.insert(0, MessageDataItemName::Uid);
        }
        let State::Selected(sel) = &mut self.state else {
            return Ok(bad("no mailbox selected"));
        };
        let indexes = sequence::resolve(set, &sel.uids(), uid);
        if !uid && indexes.is_empty() && !sel.messages.is_empty() {
            return Ok(bad("no such message"));
        }
        // Reading a body sets \Seen (not with PEEK, not in a read-only mailbox).
        if !sel.read_only && names.iter().any(fetch::sets_seen) {
            let unseen: Vec<u32> = indexes
                .iter()
                .filter(|i| !sel.messages[**i].flags.seen)
                .map(|i| sel.messages[*i].uid)
                .collect();
            if !unseen.is_empty() {
                let seen = Flags {
                    seen: true,
                    ..Flags::default()
                };
                let (mf, folder) = (sel.login.mail_file.clone(), sel.folder.clone());
                match self
                    .store
                    .set_flags(&mf, &folder, &unseen, FlagOp::Add, seen)
                    .await
                {
                    Ok(updated) => {
                        if let State::Selected(sel) = &mut self.state {
                            for (uid, flags) in updated {
                                if let Some(i) = sel.index_of(uid) {
                                    sel.messages[i].flags = flags;
                                }
                            }
                        }
                    }
                    Err(e) => return Ok(store_failure(&e)),
                }
                if !names.contains(&MessageDataItemName::Flags) {
                    names.push(MessageDataItemName::Flags);
                }
            }
        }
        let State::Selected(sel) = &self.state else {
            return Ok(bad("no mailbox selected"));
        };
        let targets: Vec<(u32, Meta)> = indexes
            .iter()
            .map(|i| (Selected::seq(*i), sel.messages[*i].clone()))
            .collect();
        let at = Arc::new(fetch::Mailbox {
            mail_file: sel.login.mail_file.clone(),
            folder: sel.folder.clone(),
            uidvalidity: sel.uidvalidity,
        });
        let names = Arc::new(names);
        // Built and sent in slices: a session never holds a whole large
        // mailbox's answer in memory, and the client starts reading early.
        for slice in targets.chunks(FETCH_SLICE) {
            let (store, at, names, slice) = (
                self.store.clone(),
                at.clone(),
                names.clone(),
                slice.to_vec(),
            );
            match blocking(move || fetch::build(&store, &at, &slice, &names)).await {
                Ok(bytes) => {
                    self.out.extend(bytes);
                    self.flush(conn).await?;
                }
                Err(e) => return Ok(store_failure(&e)),
            }
        }
        Ok(ok("FETCH completed"))
    }

    async fn store_flags(
        &mut self,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &[Flag<'_>],
        uid: bool,
    ) -> Done {
        let State::Selected(sel) = &self.state else {
            return bad("no mailbox selected");
        };
        if sel.read_only {
            return no("mailbox is read-only");
        }
        let all = sel.uids();
        let uids: Vec<u32> = sequence::resolve(set, &all, uid)
            .into_iter()
            .map(|i| all[i])
            .collect();
        let names: Vec<String> = flags.iter().map(ToString::to_string).collect();
        let flags = Flags::from_names(names.iter().map(String::as_str));
        let op = match kind {
            StoreType::Replace => FlagOp::Set,
            StoreType::Add => FlagOp::Add,
            StoreType::Remove => FlagOp::Remove,
        };
        let (mf, folder) = (sel.login.mail_file.clone(), sel.folder.clone());
        let updated = match self.store.set_flags(&mf, &folder, &uids, op, flags).await {
            Ok(updated) => updated,
            Err(e) => return store_failure(&e),
        };
        let State::Selected(sel) = &mut self.state else {
            return bad("no mailbox selected");
        };
        let mut out = Vec::new();
        for (u, flags) in updated {
            if let Some(i) = sel.index_of(u) {
                sel.messages[i].flags = flags.clone();
                if response == StoreResponse::Answer {
                    let mut items = vec![imap_codec::imap_types::fetch::MessageDataItem::Flags(
                        fetch::flag_list(&flags),
                    )];
                    if uid && let Some(u) = NonZeroU32::new(u) {
                        items.push(imap_codec::imap_types::fetch::MessageDataItem::Uid(u));
                    }
                    fetch::encode_fetch(&mut out, Selected::seq(i), items);
                }
            }
        }
        self.out.extend(out);
        ok("STORE completed")
    }

    async fn copy(
        &mut self,
        set: &SequenceSet,
        mailbox: &Mailbox<'_>,
        uid: bool,
        remove: bool,
    ) -> Done {
        let State::Selected(sel) = &self.state else {
            return bad("no mailbox selected");
        };
        if remove && sel.read_only {
            return no("mailbox is read-only");
        }
        let all = sel.uids();
        let uids: Vec<u32> = sequence::resolve(set, &all, uid)
            .into_iter()
            .map(|i| all[i])
            .collect();
        let (mf, from, to) = (
            sel.login.mail_file.clone(),
            sel.folder.clone(),
            folder_of(mailbox),
        );
        let (store, m, t) = (self.store.clone(), mf.clone(), to.clone());
        let validity = match blocking(move || store.folder(&m, &t)).await {
            Ok(Some(info)) => info.uidvalidity,
            Ok(None) => return with_code(no("no such mailbox"), Code::TryCreate),
            Err(e) => return store_failure(&e),
        };
        let pairs = match self.store.copy(&mf, &from, &uids, &to, remove).await {
            Ok(pairs) => pairs,
            Err(e) => return store_failure(&e),
        };
        let code = copy_uid(validity, &pairs);
        let verb = if remove {
            "MOVE completed"
        } else {
            "COPY completed"
        };
        if remove {
            if let Some(code) = code {
                self.untagged(StatusKind::Ok, Some(code), "moved");
            }
            let moved: Vec<u32> = pairs.iter().map(|(old, _)| *old).collect();
            self.forget(&moved);
            ok(verb)
        } else {
            match code {
                Some(code) => with_code(ok(verb), code),
                None => ok(verb),
            }
        }
    }
}

fn copy_uid(validity: u32, pairs: &[(u32, u32)]) -> Option<Code<'static>> {
    let uid_validity = NonZeroU32::new(validity)?;
    use imap_codec::imap_types::extensions::uidplus::{UidElement, UidSet};
    let set = |values: Vec<u32>| -> Option<UidSet> {
        let elements: Vec<UidElement> = values
            .into_iter()
            .filter_map(NonZeroU32::new)
            .map(UidElement::Single)
            .collect();
        Vec1::try_from(elements).ok().map(UidSet)
    };
    Some(Code::CopyUid {
        uid_validity,
        source: set(pairs.iter().map(|p| p.0).collect())?,
        destination: set(pairs.iter().map(|p| p.1).collect())?,
    })
}

/// A message body read on first use by SEARCH.
struct LazyBody<'a> {
    store: &'a Store,
    mail_file: &'a str,
    folder: &'a str,
    uid: u32,
    data: Option<Option<Vec<u8>>>,
}

impl search::Body for LazyBody<'_> {
    fn body(&mut self) -> Option<&[u8]> {
        let (store, mf, folder, uid) = (self.store, self.mail_file, self.folder, self.uid);
        self.data
            .get_or_insert_with(|| store.message_body(mf, folder, uid).ok().flatten())
            .as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recursive matcher `wildcard` replaced: right, but exponential.
    fn reference(pattern: &[u8], name: &[u8]) -> bool {
        match pattern.split_first() {
            None => name.is_empty(),
            Some((b'*', rest)) => (0..=name.len()).any(|i| reference(rest, &name[i..])),
            Some((b'%', rest)) => (0..=name.len())
                .take_while(|i| *i == 0 || name[i - 1] != DELIMITER as u8)
                .any(|i| reference(rest, &name[i..])),
            Some((p, rest)) => name
                .split_first()
                .is_some_and(|(n, name)| n.eq_ignore_ascii_case(p) && reference(rest, name)),
        }
    }

    /// Every string of up to `max` bytes from `alphabet`.
    fn strings(alphabet: &[u8], max: usize) -> Vec<Vec<u8>> {
        let mut all = vec![Vec::new()];
        let mut last = vec![Vec::new()];
        for _ in 0..max {
            last = last
                .iter()
                .flat_map(|s| {
                    alphabet.iter().map(move |&c| {
                        let mut t = s.clone();
                        t.push(c);
                        t
                    })
                })
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn wildcard_matches_as_the_recursive_definition_does() {
        let names = strings(b"ab/", 5);
        for pattern in strings(b"aA/*%", 4) {
            for name in &names {
                assert_eq!(
                    wildcard(&pattern, name),
                    reference(&pattern, name),
                    "{:?} against {:?}",
                    pattern.escape_ascii().to_string(),
                    name.escape_ascii().to_string()
                );
            }
        }
        assert!(wildcard(b"INBOX", b"Inbox"));
        assert!(wildcard(b"Work/%", b"Work/Projects"));
        assert!(!wildcard(b"Work/%", b"Work/Projects/2025"));
        assert!(wildcard(b"Work/*", b"Work/Projects/2025"));
    }

    /// Thousands of wildcards against a long name: an exponential matcher
    /// would never return from these (the test would hang, not pass).
    #[test]
    fn many_wildcards_are_answered() {
        let name = [b'a'; 512];
        for (pattern, matches) in [
            ([&[b'%'; 4000][..], b"x"].concat(), false),
            ([&[b'*'; 4000][..], b"x"].concat(), false),
            (b"%*".repeat(2000), true),
            (b"*a".repeat(2000), false),
            (b"*a".repeat(200), true),
        ] {
            assert_eq!(
                wildcard(&pattern, &name),
                matches,
                "{} bytes",
                pattern.len()
            );
        }
    }
}
