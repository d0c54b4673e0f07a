//! The SMTP listener's policy: what the `smtp` crate asks, the server answers
//! from the directory (recipients, relaying, AUTH) and the store (DATA).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::op::{Message, MessageType, OpCode, Query};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

use smtp::{
    AuthPolicy, Envelope, ListenerConfig, ListenerKind, Reply, SessionHandler, SessionInfo,
};
use store::{Incoming, MessageKind};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::info;

use crate::instance::{Instance, lock};

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
    names: ClientNames,
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
        names: ClientNames::default(),
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

    /// The client's forward-confirmed host name, looked up once per session
    /// and only when a host list of `[configuration.inbound]` holds a name
    /// pattern.
    async fn client_name(&self, s: &SessionInfo, config: &directory::Config) -> Option<String> {
        if !names_in_host_lists(&config.inbound) {
            return None;
        }
        let key = (s.session_id, s.peer);
        if let Some((_, name)) = lock(&self.names.sessions).get(&key) {
            return name.clone();
        }
        let name = match self.names.resolver(&config.dns_servers) {
            Some(r) => tokio::time::timeout(
                NAME_LOOKUP_TIMEOUT,
                forward_confirmed(&r, &config.dns_servers, s.peer.ip()),
            )
            .await
            .ok()
            .flatten(),
            None => None,
        };
        let now = Instant::now();
        let mut sessions = lock(&self.names.sessions);
        sessions.retain(|_, (at, _)| now.duration_since(*at) < NAME_CACHE_AGE);
        sessions.insert(key, (now, name.clone()));
        name
    }
}

/// The longest a client name lookup (PTR, then A/AAAA) may take.
const NAME_LOOKUP_TIMEOUT: Duration = Duration::from_secs(4);
/// A session's name is forgotten after this (sessions are shorter).
const NAME_CACHE_AGE: Duration = Duration::from_secs(600);

/// A session: its id and the client's address.
type SessionKey = (u64, SocketAddr);

/// Client host names already looked up, per session, and the resolver.
#[derive(Default)]
struct ClientNames {
    sessions: Mutex<HashMap<SessionKey, (Instant, Option<String>)>>,
    resolver: Mutex<Option<(Vec<SocketAddr>, Arc<TokioResolver>)>>,
}

impl ClientNames {
    /// A resolver asking `dns_servers` (empty: the system's), rebuilt when
    /// they change.
    fn resolver(&self, dns_servers: &[SocketAddr]) -> Option<Arc<TokioResolver>> {
        let mut slot = lock(&self.resolver);
        if let Some((servers, r)) = slot.as_ref()
            && servers.as_slice() == dns_servers
        {
            return Some(r.clone());
        }
        let mut builder = if dns_servers.is_empty() {
            TokioResolver::builder_tokio()
                .map_err(|e| tracing::warn!("SMTP Server: no DNS resolver for client names: {e}"))
                .ok()?
        } else {
            let servers = dns_servers.iter().map(|server| {
                let mut ns = NameServerConfig::udp_and_tcp(server.ip());
                for connection in &mut ns.connections {
                    connection.port = server.port();
                }
                ns
            });
            let mut builder = Resolver::builder_with_config(
                ResolverConfig::from_name_servers(servers.collect()),
                TokioRuntimeProvider::default(),
            );
            builder.options_mut().use_hosts_file = ResolveHosts::Never;
            builder
        };
        builder.options_mut().timeout = Duration::from_secs(2);
        builder.options_mut().attempts = 1;
        let r = Arc::new(
            builder
                .build()
                .map_err(|e| tracing::warn!("SMTP Server: no DNS resolver for client names: {e}"))
                .ok()?,
        );
        *slot = Some((dns_servers.to_vec(), r.clone()));
        Some(r)
    }
}

/// Does any host list of `[configuration.inbound]` hold a host name pattern?
fn names_in_host_lists(inbound: &directory::Inbound) -> bool {
    use directory::{HostPattern, ListEntry};
    let hosts = [&inbound.internal_hosts, &inbound.relay_exempt_hosts];
    let entries = [&inbound.allow_relay_from, &inbound.deny_relay_from];
    hosts
        .iter()
        .flat_map(|l| l.iter())
        .any(|h| matches!(h, HostPattern::Name(_) | HostPattern::Suffix(_)))
        || entries
            .iter()
            .flat_map(|l| l.iter())
            .any(|e| matches!(e, ListEntry::Domain(_) | ListEntry::SubdomainsOf(_)))
}

/// Forward-confirmed reverse DNS: the first name of the client address's
/// PTR records whose A/AAAA records contain that address, in lower case
/// without the final dot.
async fn forward_confirmed(
    resolver: &TokioResolver,
    dns_servers: &[SocketAddr],
    ip: IpAddr,
) -> Option<String> {
    let ip = ip.to_canonical();
    let servers = if dns_servers.is_empty() {
        system_dns_servers()
    } else {
        dns_servers.to_vec()
    };
    for name in ptr_names(&servers, ip).await {
        let addrs = match resolver.lookup_ip(name.as_str()).await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!("SMTP Server: host name {name} of {ip} not confirmed: {e}");
                continue;
            }
        };
        if addrs.iter().any(|a| a.to_canonical() == ip) {
            return Some(name.trim_end_matches('.').to_ascii_lowercase());
        }
        tracing::debug!("SMTP Server: host name {name} of {ip} does not resolve back to it");
    }
    None
}

/// The name servers of the system configuration (`/etc/resolv.conf`).
fn system_dns_servers() -> Vec<SocketAddr> {
    match hickory_resolver::system_conf::read_system_conf() {
        Ok((config, _)) => config
            .name_servers()
            .iter()
            .map(|ns| {
                let port = ns.connections.first().map_or(53, |c| c.port);
                SocketAddr::new(ns.ip, port)
            })
            .collect(),
        Err(e) => {
            tracing::warn!("SMTP Server: no system DNS servers for client names: {e}");
            Vec::new()
        }
    }
}

/// The PTR names of `ip`, asked of each server in turn over UDP until one
/// answers. Asked directly: the resolver answers every loopback address
/// with `localhost` itself (RFC 6761), whatever the servers publish.
async fn ptr_names(servers: &[SocketAddr], ip: IpAddr) -> Vec<String> {
    let mut query = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(Name::from(ip), RecordType::PTR));
    let Ok(bytes) = query.to_vec() else {
        return Vec::new();
    };
    for server in servers {
        let bind: SocketAddr = if server.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(socket) = tokio::net::UdpSocket::bind(bind).await else {
            continue;
        };
        if socket.connect(server).await.is_err() || socket.send(&bytes).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        let answer = loop {
            match tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await {
                Ok(Ok(n)) => match Message::from_vec(&buf[..n]) {
                    Ok(m) if m.metadata.id == query.metadata.id => break Some(m),
                    _ => continue,
                },
                _ => break None,
            }
        };
        let Some(answer) = answer else {
            tracing::debug!(
                "SMTP Server: DNS server {server} did not answer the PTR query of {ip}"
            );
            continue;
        };
        return answer
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::PTR(p) => Some(p.0.to_ascii()),
                _ => None,
            })
            .collect();
    }
    Vec::new()
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
        inst.store.health().map_err(|why| store_failed(&inst, &why))
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
        let inbound = &snap.config.inbound;
        let notes_form = match &parsed {
            routing::Address::Internet { domain, .. }
                if !snap.dir.is_local_internet_domain(&snap.server, domain) =>
            {
                let name = self.client_name(s, &snap.config).await;
                return if relay_allowed(inbound, s, name.as_deref(), rcpt) {
                    Ok(())
                } else {
                    Err(Reply::relay_denied())
                };
            }
            routing::Address::Internet { .. } => false,
            routing::Address::Notes {
                domain: Some(d), ..
            } if !d.trim().eq_ignore_ascii_case(&snap.dir.domain.name) => {
                // Another Notes domain reached from SMTP is relaying: only
                // for clients that may relay.
                let name = self.client_name(s, &snap.config).await;
                if s.authenticated.is_none() && !relay_allowed(inbound, s, name.as_deref(), rcpt) {
                    return Err(Reply::relay_denied());
                }
                true
            }
            routing::Address::Notes { .. } => true,
        };
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
        // The one header reader: the hop count, Message-ID and Subject are
        // read as the store, reports and IMAP read them.
        let fields = headers::fields(&message);
        let incoming = Incoming {
            from: env.from,
            recipients: env.recipients,
            hop_count: fields.received,
            message_id: fields.message_id.clone(),
            subject: fields.subject.clone(),
            received_at: chrono::Utc::now().timestamp_millis(),
            kind: MessageKind::Normal,
            priority: match fields.importance {
                Some(headers::Importance::High) => store::Priority::High,
                Some(headers::Importance::Low) => store::Priority::Low,
                _ => store::Priority::Normal,
            },
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
            ..Incoming::default()
        };
        match inst.store.accept_with_fields(incoming, fields).await {
            Ok(queued) => {
                let id = queued.id.to_string();
                inst.router.submit(queued).await;
                Ok(id)
            }
            Err(e) => {
                tracing::error!("SMTP Server: message not stored: {e}");
                Err(not_stored(&inst))
            }
        }
    }
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

/// SPEC §2 relay decision for a recipient outside the local Internet domains.
/// `name` is the client's forward-confirmed host name, when it has one.
fn relay_allowed(
    inbound: &directory::Inbound,
    s: &SessionInfo,
    name: Option<&str>,
    rcpt: &str,
) -> bool {
    use directory::RelayEnforcement::*;
    let ip = s.peer.ip();
    let in_hosts = |list: &[directory::HostPattern]| list.iter().any(|h| h.matches(ip, name));
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
        e.matches_host(ip, name)
    });
    let to = routing::list_verdict(&inbound.allow_relay_to, &inbound.deny_relay_to, |e| {
        e.matches_address(rcpt)
    });
    (from == Some(true) || to == Some(true)) && from != Some(false) && to != Some(false)
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
