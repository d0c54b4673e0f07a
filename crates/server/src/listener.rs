//! The SMTP listener's policy: what the `smtp` crate asks, the server answers
//! from the directory (recipients, relaying, AUTH) and the store (DATA).

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use smtp::{
    AuthPolicy, Envelope, ListenerConfig, ListenerKind, Reply, SessionHandler, SessionInfo,
};
use store::{Incoming, MessageKind};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::info;

use crate::controls::Controls;
use crate::instance::Instance;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SmtpListenerKind {
    Smtp,
    Submission,
    Smtps,
}

impl SmtpListenerKind {
    pub fn key(self) -> &'static str {
        match self {
            SmtpListenerKind::Smtp => "smtp",
            SmtpListenerKind::Submission => "submission",
            SmtpListenerKind::Smtps => "smtps",
        }
    }
}

struct Handler {
    inst: Weak<Instance>,
    kind: SmtpListenerKind,
    controls: Controls,
}

/// Bind and serve; the sender stops the listener, the handle ends with it.
pub(crate) async fn start(
    inst: Arc<Instance>,
    kind: SmtpListenerKind,
    addr: SocketAddr,
) -> anyhow::Result<(crate::instance::Stop, SocketAddr)> {
    let handler: Arc<dyn SessionHandler> = Arc::new(Handler {
        inst: Arc::downgrade(&inst),
        kind,
        controls: Controls::default(),
    });
    serve_on(&inst, addr, handler, "SMTP Server").await
}

/// Binds `addr` and runs SMTP sessions on it with `handler` until stopped;
/// `label` names the task in the log ("SMTP Server", "NRPC Server").
pub(crate) async fn serve_on(
    inst: &Arc<Instance>,
    addr: SocketAddr,
    handler: Arc<dyn SessionHandler>,
    label: &str,
) -> anyhow::Result<(crate::instance::Stop, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("{label}: cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let (tx, rx) = oneshot::channel();
    let stats = inst.smtp_stats.clone();
    let running = tokio::spawn(async move {
        let _ = smtp::serve(listener, handler, stats, async {
            let _ = rx.await;
        })
        .await;
    });
    info!(
        "{label}: Listening for connect requests on TCP Port {}",
        bound.port()
    );
    Ok(((tx, running), bound))
}

pub(crate) fn unavailable() -> Reply {
    Reply::new(
        421,
        (4, 3, 0),
        "Service not available, closing transmission channel",
    )
}

/// `421`: the store cannot be trusted, so no new mail; the client hears why.
pub(crate) fn store_failed(inst: &Instance, why: &str) -> Reply {
    Reply::new(
        421,
        (4, 3, 0),
        format!(
            "{} Service not available, closing transmission channel: the mail store failed ({why})",
            inst.snapshot().server.hostname
        ),
    )
    .counted(smtp::Refusal::StoreUnavailable)
}

/// The reply to a message the store did not take: `421` when the store
/// cannot be trusted (close, as a server shutting down would), else `451`.
pub(crate) fn not_stored(inst: &Instance) -> Reply {
    match inst.store.health() {
        Err(why) => store_failed(inst, &why),
        Ok(()) => Reply::temporary_failure("Requested action aborted: local error in processing")
            .counted(smtp::Refusal::StoreUnavailable),
    }
}

impl Handler {
    fn inst(&self) -> Result<Arc<Instance>, Reply> {
        self.inst.upgrade().ok_or_else(unavailable)
    }
}

#[async_trait::async_trait]
impl SessionHandler for Handler {
    fn config(&self) -> Arc<ListenerConfig> {
        let Some(inst) = self.inst.upgrade() else {
            return Arc::new(ListenerConfig::default());
        };
        let snap = inst.snapshot();
        let server = &snap.server;
        let kind = match self.kind {
            SmtpListenerKind::Smtp => ListenerKind::Smtp,
            SmtpListenerKind::Submission => ListenerKind::Submission,
            SmtpListenerKind::Smtps => ListenerKind::Smtps,
        };
        let auth = match server.smtp_auth {
            directory::SmtpAuth::Required => AuthPolicy::Required,
            directory::SmtpAuth::Optional => AuthPolicy::Optional,
            directory::SmtpAuth::Off => AuthPolicy::Off,
        };
        Arc::new(ListenerConfig {
            hostname: server.hostname.clone(),
            kind,
            auth,
            tls: inst.tls.load().as_ref().clone(),
            max_message_size: snap.config.max_message_size.0,
            idle_timeout: snap.config.smtp_command_timeout,
            command_timeout: snap.config.smtp_command_timeout,
            data_timeout: snap.config.smtp_data_timeout,
            session_timeout: snap.config.smtp_session_timeout,
            max_errors: snap.config.smtp_hard_error_limit,
            max_sessions: snap.config.smtp_max_sessions as usize,
            max_sessions_per_host: snap.config.smtp_max_sessions_per_host as usize,
            inflight_message_bytes: snap.config.smtp_inflight_message_bytes.0,
            require_tls_for_auth: server.require_tls_for_auth,
            // `set config SMTPDebug=N` outlives directory reloads.
            debug: inst
                .config_override("smtpdebug")
                .unwrap_or(server.debug.smtp_debug),
            debug_io: inst
                .config_override("smtpdebugio")
                .unwrap_or(server.debug.smtp_debug_io),
            ..ListenerConfig::default()
        })
    }

    /// The connection controls of `[configuration.inbound]`.
    async fn connect(&self, s: &SessionInfo) -> Result<(), Reply> {
        let inst = self.inst()?;
        let snap = inst.snapshot();
        self.controls.connect(s, &snap.config).await
    }

    fn disconnected(&self, s: &SessionInfo) {
        self.controls.forget(s);
    }

    /// No new mail while the store cannot be trusted; then the sender
    /// controls, the sender's domain and the DNS blacklists.
    async fn mail_from(&self, s: &SessionInfo, from: &str) -> Result<(), Reply> {
        let inst = self.inst()?;
        inst.store
            .health()
            .map_err(|why| store_failed(&inst, &why))?;
        let snap = inst.snapshot();
        self.controls
            .mail_from(&inst.control_stats, s, &snap.config, from)
            .await
    }

    async fn rcpt_to(&self, s: &SessionInfo, _env: &Envelope, rcpt: &str) -> Result<(), Reply> {
        let inst = self.inst()?;
        let snap = inst.snapshot();
        let ctx = snap.routing();
        let parsed = routing::Address::parse(rcpt).map_err(|e| {
            Reply::new(
                501,
                (5, 1, 3),
                format!("Bad recipient address syntax: {}", e.0),
            )
        })?;
        // RFC 5321 §4.5.1: postmaster is always accepted.
        if routing::is_postmaster(ctx, &parsed) {
            return Ok(());
        }
        // Whether the recipient leaves the local domains (relaying), and
        // whether it was given as a Notes name.
        let (external, relaying, notes_form) = match &parsed {
            routing::Address::Internet { domain, .. } => {
                let external = !snap.dir.is_local_internet_domain(&snap.server, domain);
                (external, external, false)
            }
            // Another Notes domain reached from SMTP is relaying: only for
            // clients that may relay, and any client that logged in.
            routing::Address::Notes {
                domain: Some(d), ..
            } if !d.trim().eq_ignore_ascii_case(&snap.dir.domain.name) => {
                (false, s.authenticated.is_none(), true)
            }
            routing::Address::Notes { .. } => (false, false, true),
        };
        self.controls.rcpt(s, &snap.config, rcpt, relaying).await?;
        if external {
            return Ok(());
        }
        // A Notes name from an unauthenticated client is always checked: it
        // must be a local name, never accepted to bounce to a forged sender.
        let checked =
            snap.config.verify_local_recipients || (notes_form && s.authenticated.is_none());
        if !checked {
            return Ok(());
        }
        match refusal(&routing::resolve(ctx, rcpt)) {
            Some(f) => Err(Reply::new(550, enhanced(&f.status), f.reason.clone())
                .counted(smtp::Refusal::UnknownRecipient)),
            None => Ok(()),
        }
    }

    async fn authenticate(&self, s: &SessionInfo, user: &str, password: &str) -> Option<String> {
        let inst = self.inst.upgrade()?;
        crate::auth::authenticate(&inst, s.peer.ip(), user, password, "SMTP", false)
            .await
            .map(|l| l.identity)
    }

    async fn data(
        &self,
        s: &SessionInfo,
        env: Envelope,
        message: Vec<u8>,
    ) -> Result<String, Reply> {
        let inst = self.inst()?;
        // SPF, DKIM, DMARC and ARC, once, on the message as it came.
        let shared = Arc::new(message);
        let authenticated = self
            .sender_authentication(&inst, s, &env.from, &shared)
            .await?;
        let mut message = Arc::try_unwrap(shared).unwrap_or_else(|shared| (*shared).clone());
        if let Some(listed) = self.controls.tag(s, &inst.snapshot().config) {
            // `dnsbl_action = "tag"`: the message says which blacklist lists
            // the client, above everything else.
            let reason = listed
                .reason
                .as_deref()
                .map(|r| format!(": {}", routing::inbound::clean_reason(r)))
                .unwrap_or_default();
            let line = format!(
                "X-Mailhop-DNSBL: {} listed by {}{reason}\r\n",
                s.peer.ip(),
                listed.zone
            );
            message.splice(0..0, line.into_bytes());
        }
        let mut dmarc_held = None;
        if inst.snapshot().config.inbound.verify_sender_authentication {
            // Only this server writes its authserv-id (RFC 8601 §5): a
            // claim of it in a message from anyone goes.
            let hostname = &inst.snapshot().server.hostname;
            let (cleaned, removed) = crate::senderauth::remove_claims(&message, hostname);
            if removed > 0 {
                tracing::info!(
                    "SMTP Server: removed {removed} Authentication-Results header(s) claiming {hostname} from a message from {}",
                    s.peer.ip()
                );
                inst.sender_auth.removed(removed);
                message = cleaned;
            }
        }
        if let Some(checked) = authenticated {
            // The results go on top.
            message.splice(0..0, checked.header.into_bytes());
            dmarc_held = checked.held;
        }
        // The one header reader: the hop count, Message-ID and Subject are
        // read as the store, reports and IMAP read them.
        let mut fields = headers::fields(&message);
        let snap = inst.snapshot();
        if fields.message_id.is_none() {
            // A message without a Message-ID gets one here, so the
            // routing events, tracking and the reports can name it.
            let id = new_message_id(&snap.server.hostname);
            tracing::info!(
                "SMTP Server: Message-ID <{id}> added to the message from <{}>",
                logsafe::shown(&env.from)
            );
            message.splice(0..0, format!("Message-ID: <{id}>\r\n").into_bytes());
            fields.message_id = Some(id);
        }
        let decision = crate::mailrules::at_accept(
            &snap.dir,
            &snap.config,
            &env,
            &message,
            fields.subject.as_deref().unwrap_or(""),
            s.peer.ip(),
        )
        .await?;
        let received_at = chrono::Utc::now().timestamp_millis();
        let journal = match (&decision.journal, snap.config.journal_to.trim()) {
            (Some(rule), to) if !to.is_empty() => Some((
                to.to_owned(),
                crate::mailrules::journal_copy(&env.from, &env.recipients, rule, &message),
            )),
            _ => None,
        };
        let origin = format!(
            "smtp {} helo={}{}",
            s.peer.ip(),
            s.helo.as_deref().unwrap_or("-"),
            s.authenticated
                .as_deref()
                .map(|a| format!(" auth={a}"))
                .unwrap_or_default()
        );
        let ruled = crate::mailrules::Ruled {
            server: snap.server.name.to_string(),
            hostname: &snap.server.hostname,
            from: &env.from,
            recipients: &env.recipients,
            message_id: fields.message_id.as_deref(),
            hop: fields.received,
            size: u64::try_from(message.len()).unwrap_or(u64::MAX),
            received_at,
        };
        let mut events = ruled.match_events(&decision.matched);
        let mut recipients = env.recipients.clone();
        let mut derived = decision.copies;
        let mut held = None;
        let mut report = None;
        // DMARC's quarantine holds the message as it came, whatever a
        // rule would have done with it (a rule's reject refused it above).
        let disposition = match dmarc_held {
            Some(reason) => crate::mailrules::Disposition::Hold(reason),
            None => decision.disposition,
        };
        match disposition {
            crate::mailrules::Disposition::Route => {}
            crate::mailrules::Disposition::Hold(reason) => held = Some(reason),
            crate::mailrules::Disposition::Drop {
                rule,
                report: with_report,
            } => {
                recipients.clear();
                events.extend(ruled.dropped_events(&rule, with_report));
                if with_report {
                    report = ruled.report(&rule, &message);
                }
            }
            crate::mailrules::Disposition::MoveTo { rule, recipient } => {
                recipients.clear();
                events.extend(ruled.moved_events(&rule, &recipient));
                derived.insert(0, (recipient, rule));
            }
        }
        let is_held = held.is_some();
        let mut batch: Vec<(Incoming, headers::Fields, bool)> = Vec::with_capacity(3);
        let (message_id, subject, hop_count) = (
            fields.message_id.clone(),
            fields.subject.clone(),
            fields.received,
        );
        if !recipients.is_empty() || !derived.is_empty() {
            let incoming = Incoming {
                from: env.from.clone(),
                recipients,
                hop_count,
                message_id: message_id.clone(),
                subject: subject.clone(),
                received_at,
                kind: MessageKind::Normal,
                priority: match fields.importance {
                    Some(headers::Importance::High) => store::Priority::High,
                    Some(headers::Importance::Low) => store::Priority::Low,
                    _ => store::Priority::Normal,
                },
                origin: origin.clone(),
                data: message,
                held,
                derived,
                ..Incoming::default()
            };
            // Held mail waits for `tell router release held`.
            batch.push((incoming, fields, !is_held));
        }
        if let Some((to, data)) = journal {
            // The journal copy is stored with the message, or neither is;
            // it goes even when the message is held or dropped.
            let copy = Incoming {
                from: env.from.clone(),
                recipients: vec![to],
                hop_count,
                message_id: message_id.clone(),
                subject: subject.clone(),
                received_at,
                kind: MessageKind::Normal,
                origin: format!("journal of {origin}"),
                data,
                ..Incoming::default()
            };
            let copy_fields = headers::fields(&copy.data);
            batch.push((copy, copy_fields, true));
        }
        if let Some(r) = report {
            let fields = headers::fields(&r.data);
            let incoming = Incoming {
                from: String::new(),
                recipients: vec![r.to],
                data: r.data,
                received_at,
                kind: MessageKind::Report,
                hop_count: 0,
                origin: format!("report about a message from {origin}"),
                message_id: Some(r.message_id),
                subject: Some(r.subject),
                ..Incoming::default()
            };
            batch.push((incoming, fields, true));
        }
        let submit: Vec<bool> = batch.iter().map(|(_, _, go)| *go).collect();
        let stored = if batch.len() == 1 && events.is_empty() {
            let (incoming, fields, _) = batch.pop().expect("one message");
            inst.store
                .accept_with_fields(incoming, fields)
                .await
                .map(|q| vec![q])
        } else {
            let msgs = batch.into_iter().map(|(m, f, _)| (m, f)).collect();
            inst.store.accept_all(msgs, events).await
        };
        match stored {
            Ok(queued) => {
                let id = queued
                    .first()
                    .map_or_else(|| "0".to_owned(), |q| q.id.to_string());
                for (q, go) in queued.into_iter().zip(submit) {
                    if go {
                        inst.router.submit(q).await;
                    }
                }
                Ok(id)
            }
            Err(e) => {
                tracing::error!("SMTP Server: message not stored: {e}");
                Err(not_stored(&inst))
            }
        }
    }
}

/// What sender authentication added to a message: the
/// `Authentication-Results:` header, and the Held reason of a DMARC
/// quarantine.
struct Checked {
    header: String,
    held: Option<String>,
}

impl Handler {
    /// SPF, DKIM, DMARC and ARC for a client that did not authenticate and
    /// is not in `internal_hosts` or `relay_exempt_hosts` (the clients the
    /// DNS blacklists skip), when `verify_sender_authentication` is on
    /// (`None`: nothing checked, nothing asked). Under `dmarc_policy =
    /// "enforce"`, a DMARC failure of a domain publishing `p=reject` is
    /// the `Err` reply, `p=quarantine` a Held reason.
    async fn sender_authentication(
        &self,
        inst: &Instance,
        s: &SessionInfo,
        from: &str,
        message: &Arc<Vec<u8>>,
    ) -> Result<Option<Checked>, Reply> {
        let snap = inst.snapshot();
        let inbound = &snap.config.inbound;
        if !inbound.verify_sender_authentication || s.authenticated.is_some() {
            return Ok(None);
        }
        let (name, authenticated) = self.controls.client(s, &snap.config).await;
        let client = routing::inbound::Client {
            ip: s.peer.ip(),
            name: name.as_deref(),
            authenticated,
        };
        if routing::inbound::is_trusted_host(inbound, &client) {
            return Ok(None);
        }
        let sender = crate::senderauth::Sender {
            ip: s.peer.ip(),
            helo: s.helo.clone().unwrap_or_default(),
            mail_from: from.to_owned(),
        };
        let verdict = inst
            .sender_auth
            .verify(
                &snap.config.dns_servers,
                &snap.server.hostname,
                sender,
                message.clone(),
            )
            .await;
        let mut held = None;
        if let Some(failure) = &verdict.dmarc_failure
            && inbound.dmarc_policy == directory::DmarcPolicy::Enforce
        {
            let domain = logsafe::shown(&failure.domain).to_string();
            match failure.policy {
                crate::senderauth::Asked::Reject => {
                    tracing::info!(
                        "SMTP Server: {} refused a message from <{}>: it fails DMARC and {domain} publishes p=reject",
                        s.peer.ip(),
                        logsafe::shown(from)
                    );
                    return Err(Reply::new(
                        550,
                        (5, 7, 1),
                        format!(
                            "Message rejected: it fails DMARC and the DMARC policy of {domain} is reject"
                        ),
                    )
                    .counted(smtp::Refusal::Dmarc));
                }
                crate::senderauth::Asked::Quarantine => {
                    tracing::info!(
                        "SMTP Server: a message from <{}> ({}) fails DMARC and {domain} publishes p=quarantine: held",
                        logsafe::shown(from),
                        s.peer.ip()
                    );
                    inst.sender_auth.quarantined();
                    held = Some(format!("Held: DMARC policy quarantine for {domain}"));
                }
                crate::senderauth::Asked::None => {}
            }
        }
        Ok(Some(Checked {
            header: verdict.header,
            held,
        }))
    }
}

/// A new Message-ID (without `<>`) for a message that has none:
/// `<time base 36>.<random>@hostname`.
fn new_message_id(hostname: &str) -> String {
    use rand::Rng as _;
    let millis = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or_default();
    let random: u64 = rand::rng().random();
    format!("{}.{}@{hostname}", base36(millis), base36(random))
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The failure that refuses the address the client gave: its own route, or
/// the end of its forwarding chain. Members of a group are not followed:
/// their failures are reported to the group's sender.
fn refusal(steps: &[routing::Step]) -> Option<&routing::Failure> {
    use routing::{Action, Route};
    let mut at = 0;
    for _ in 0..=steps.len() {
        let step = steps.get(at)?;
        match &step.action {
            Action::Route(Route::Fail(f)) => return Some(f),
            Action::Forwarded { to } => {
                at += 1 + steps.get(at + 1..)?.iter().position(|s| s.address == *to)?;
            }
            _ => return None,
        }
    }
    None
}

/// `"5.1.1"` → `(5, 1, 1)`; anything unreadable is `5.0.0`.
fn enhanced(status: &str) -> (u8, u16, u16) {
    let mut parts = status.split('.').map(str::parse::<u16>);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(c)), Some(Ok(s)), Some(Ok(d))) if c == 4 || c == 5 => (c as u8, s, d),
        _ => (5, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIRECTORY: &str = r#"
[domain]
name = "Acme"

[global_domain]
primary_internet_domain = "acme.com"

[[server]]
name = "Mail/Acme"
hostname = "mail.acme.com"

[[person]]
full_name = "Jane Doe/Acme"
short_name = "jdoe"
mail_server = "Mail/Acme"
mail_file = "mail/jdoe"

[[person]]
full_name = "Fwd Ghost/Acme"
short_name = "fwd"
mail_server = "Mail/Acme"
mail_file = "mail/fwd"
forward_to = "ghost@acme.com"

[[group]]
name = "Mixed"
members = ["jdoe", "ghost@acme.com"]
internet_address = "mixed@acme.com"
"#;

    fn refused(rcpt: &str) -> Option<String> {
        let dir = directory::parse_str(DIRECTORY, std::path::Path::new("d.toml")).unwrap();
        let server = dir.servers[0].clone();
        let config = dir.config_for(&server.name);
        let ctx = routing::Context::new(&dir, &config, &server);
        refusal(&routing::resolve(ctx, rcpt)).map(|f| f.status.clone())
    }

    #[test]
    fn refused_for_the_address_given_not_for_group_members() {
        assert_eq!(refused("jdoe@acme.com"), None);
        assert_eq!(refused("nobody@acme.com"), Some("5.1.1".to_owned()));
        assert_eq!(refused("fwd@acme.com"), Some("5.1.1".to_owned()));
        assert_eq!(refused("mixed@acme.com"), None);
        assert_eq!(refused("x@Other"), Some("5.4.4".to_owned()));
    }

    #[test]
    fn enhanced_status_codes() {
        assert_eq!(enhanced("5.1.1"), (5, 1, 1));
        assert_eq!(enhanced("5.4.4"), (5, 4, 4));
        assert_eq!(enhanced("x"), (5, 0, 0));
    }
}
