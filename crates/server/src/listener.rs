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
}

/// Bind and serve; the sender stops the listener, the handle ends with it.
pub(crate) async fn start(
    inst: Arc<Instance>,
    kind: SmtpListenerKind,
    addr: SocketAddr,
) -> anyhow::Result<(crate::instance::Stop, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("SMTP Server: cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let (tx, rx) = oneshot::channel();
    let handler: Arc<dyn SessionHandler> = Arc::new(Handler {
        inst: Arc::downgrade(&inst),
        kind,
    });
    let stats = inst.smtp_stats.clone();
    let running = tokio::spawn(async move {
        let _ = smtp::serve(listener, handler, stats, async {
            let _ = rx.await;
        })
        .await;
    });
    info!(
        "SMTP Server: Listening for connect requests on TCP Port {}",
        bound.port()
    );
    Ok(((tx, running), bound))
}

fn unavailable() -> Reply {
    Reply::new(
        421,
        (4, 3, 0),
        "Service not available, closing transmission channel",
    )
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

    /// No new mail while the store cannot be trusted.
    async fn mail_from(&self, _s: &SessionInfo, _from: &str) -> Result<(), Reply> {
        let inst = self.inst()?;
        match inst.store.health() {
            Ok(()) => Ok(()),
            Err(why) => Err(Reply::new(
                421,
                (4, 3, 0),
                format!(
                    "{} Service not available, closing transmission channel: the mail store failed ({why})",
                    inst.snapshot().server.hostname
                ),
            )),
        }
    }

    async fn rcpt_to(&self, s: &SessionInfo, _env: &Envelope, rcpt: &str) -> Result<(), Reply> {
        let inst = self.inst()?;
        let snap = inst.snapshot();
        let parsed = routing::Address::parse(rcpt).map_err(|e| {
            Reply::new(
                501,
                (5, 1, 3),
                format!("Bad recipient address syntax: {}", e.0),
            )
        })?;
        match &parsed {
            routing::Address::Internet { domain, .. }
                if !snap.dir.is_local_internet_domain(&snap.server, domain) =>
            {
                if relay_allowed(&snap.config.inbound, s, rcpt) {
                    Ok(())
                } else {
                    Err(Reply::relay_denied())
                }
            }
            _ => {
                if !snap.config.verify_local_recipients {
                    return Ok(());
                }
                let steps = routing::resolve(snap.routing(), rcpt);
                match steps.first() {
                    Some(routing::Step {
                        action: routing::Action::Route(routing::Route::Fail(f)),
                        ..
                    }) if f.status == "5.1.1" => Err(Reply::unknown_user(f.reason.clone())),
                    _ => Ok(()),
                }
            }
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
        let headers = report::header_block(&message);
        let incoming = Incoming {
            from: env.from,
            recipients: env.recipients,
            hop_count: count_received(headers),
            message_id: header_value(headers, "message-id").map(|v| {
                v.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            }),
            subject: header_value(headers, "subject"),
            received_at: chrono::Utc::now().timestamp_millis(),
            kind: MessageKind::Normal,
            origin: format!(
                "smtp {} helo={}{}",
                s.peer.ip(),
                s.helo.as_deref().unwrap_or("-"),
                s.authenticated
                    .as_deref()
                    .map(|a| format!(" auth={a}"))
                    .unwrap_or_default()
            ),
            data: message,
        };
        match inst.store.accept(incoming).await {
            Ok(queued) => {
                let id = queued.id.to_string();
                inst.router.submit(queued).await;
                Ok(id)
            }
            Err(e) => {
                tracing::error!("SMTP Server: message not stored: {e}");
                match inst.store.health() {
                    // The store cannot be trusted: say so and close, as a server shutting down would.
                    Err(why) => Err(Reply::new(
                        421,
                        (4, 3, 0),
                        format!(
                            "{} Service not available, closing transmission channel: the mail store failed ({why})",
                            inst.snapshot().server.hostname
                        ),
                    )),
                    Ok(()) => Err(Reply::temporary_failure(
                        "Requested action aborted: local error in processing",
                    )),
                }
            }
        }
    }
}

/// SPEC §2 relay decision for a recipient outside the local Internet domains.
fn relay_allowed(inbound: &directory::Inbound, s: &SessionInfo, rcpt: &str) -> bool {
    use directory::RelayEnforcement::*;
    let ip = s.peer.ip();
    let in_hosts =
        |list: &[directory::HostPattern]| list.iter().any(|h| h.matches(ip, Option::None));
    let checked = match inbound.relay_enforcement {
        None => false,
        All => true,
        External => !in_hosts(&inbound.internal_hosts),
    };
    if !checked || in_hosts(&inbound.relay_exempt_hosts) {
        return true;
    }
    if s.authenticated.is_some() && inbound.authenticated_may_relay {
        return true;
    }
    let from = routing::list_verdict(&inbound.allow_relay_from, &inbound.deny_relay_from, |e| {
        e.matches_host(ip, Option::None)
    });
    let to = routing::list_verdict(&inbound.allow_relay_to, &inbound.deny_relay_to, |e| {
        e.matches_address(rcpt)
    });
    (from == Some(true) || to == Some(true)) && from != Some(false) && to != Some(false)
}

/// Hop count: the `Received:` headers a message already carries.
fn count_received(headers: &[u8]) -> u32 {
    headers
        .split(|&b| b == b'\n')
        .filter(|l| l.len() >= 9 && l[..9].eq_ignore_ascii_case(b"received:"))
        .count() as u32
}

/// The first value of a header, unfolded (no MIME decoding).
fn header_value(headers: &[u8], name: &str) -> Option<String> {
    let mut lines = headers.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if line.len() > name.len()
            && line[name.len()] == b':'
            && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        {
            let mut v = String::from_utf8_lossy(&line[name.len() + 1..])
                .trim()
                .to_owned();
            while let Some(next) = lines.peek() {
                if next.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                    v.push(' ');
                    v.push_str(String::from_utf8_lossy(next).trim());
                    lines.next();
                } else {
                    break;
                }
            }
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_read_for_the_mail_box() {
        let h = b"Received: from a\r\nreceived: from b\r\nSubject: Hello\r\n  world\r\nMessage-ID: <x@y>\r\n\r\n";
        assert_eq!(count_received(h), 2);
        assert_eq!(header_value(h, "subject").as_deref(), Some("Hello world"));
        assert_eq!(header_value(h, "message-id").as_deref(), Some("<x@y>"));
        assert_eq!(header_value(h, "to"), None);
    }
}
