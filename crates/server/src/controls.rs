//! The inbound controls applied to the SMTP sessions of one listener:
//! connection controls at connect, sender controls, the sender's domain and
//! DNS blacklists at MAIL FROM, recipient and relay controls at RCPT.
//!
//! Owns what it learnt about each open session (the client's name, a
//! blacklist's listing; forgotten when the session ends) and the refusal
//! counters. The decisions are `routing::inbound`'s; the DNS questions are
//! `dnscheck`'s. Knows nothing of the store or the router.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;

use directory::{Config, DnsblAction};
use routing::inbound::{self, Client, Control, Refusal};
use smtp::{Reply, SessionInfo};

use crate::dnscheck::{Dns, DomainAnswer, Listing};
use crate::instance::lock;

/// A session: its id and the client's address.
type SessionKey = (u64, SocketAddr);

/// What was learnt about one session's client.
#[derive(Debug, Default, Clone)]
struct Facts {
    /// The forward-confirmed name: `None` not asked yet, `Some(None)` none.
    name: Option<Option<String>>,
    /// The blacklists' verdict: `None` not asked yet, `Some(None)` not listed.
    listed: Option<Option<Listed>>,
}

/// A blacklist that lists the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub zone: String,
    pub reason: Option<String>,
}

/// The inbound controls of one listener.
#[derive(Default)]
pub(crate) struct Controls {
    dns: Dns,
    sessions: Mutex<HashMap<SessionKey, Facts>>,
}

fn key(s: &SessionInfo) -> SessionKey {
    (s.session_id, s.peer)
}

impl Controls {
    /// The client as the decisions see it, with its name looked up once per
    /// session when a control needs it.
    pub(crate) async fn client(&self, s: &SessionInfo, config: &Config) -> (Option<String>, bool) {
        let authenticated = s.authenticated.is_some();
        if !inbound::needs_client_name(&config.inbound) {
            return (None, authenticated);
        }
        if let Some(Some(name)) = lock(&self.sessions).get(&key(s)).map(|f| f.name.clone()) {
            return (name, authenticated);
        }
        let name = self.dns.client_name(&config.dns_servers, s.peer.ip()).await;
        lock(&self.sessions).entry(key(s)).or_default().name = Some(name.clone());
        (name, authenticated)
    }

    /// The connection controls; `Err` is said instead of the greeting.
    pub(crate) async fn connect(&self, s: &SessionInfo, config: &Config) -> Result<(), Reply> {
        let (name, authenticated) = self.client(s, config).await;
        let client = Client {
            ip: s.peer.ip(),
            name: name.as_deref(),
            authenticated,
        };
        match inbound::connection_refusal(&config.inbound, &client) {
            Some(refusal) => Err(refuse(s, refusal)),
            None => Ok(()),
        }
    }

    /// The sender controls, the sender's domain and the blacklists, for a
    /// client that did not authenticate.
    pub(crate) async fn mail_from(
        &self,
        stats: &ControlStats,
        s: &SessionInfo,
        config: &Config,
        from: &str,
    ) -> Result<(), Reply> {
        if s.authenticated.is_some() {
            return Ok(());
        }
        let (name, authenticated) = self.client(s, config).await;
        let client = Client {
            ip: s.peer.ip(),
            name: name.as_deref(),
            authenticated,
        };
        let inbound = &config.inbound;
        if let Some(refusal) = inbound::sender_refusal(inbound, &client, from) {
            return Err(refuse(s, refusal));
        }
        if !inbound.dnsbl_zones.is_empty() && !inbound::is_trusted_host(inbound, &client) {
            let listed = self.listing(stats, s, config).await;
            if let Some(l) = listed
                && inbound.dnsbl_action == DnsblAction::Reject
            {
                let refusal = inbound::dnsbl_refusal(client.ip, &l.zone, l.reason.as_deref());
                return Err(refuse(s, refusal));
            }
        }
        if inbound.verify_sender_domain
            && let Some((_, domain)) = from.rsplit_once('@')
        {
            match self.dns.sender_domain(&config.dns_servers, domain).await {
                DomainAnswer::Exists => {}
                DomainAnswer::NotFound => {
                    return Err(refuse(s, inbound::sender_domain_refusal(from)));
                }
                DomainAnswer::Unavailable(why) => {
                    tracing::info!(
                        "SMTP Server: the domain of sender {} from {} could not be verified: {why}",
                        from.escape_debug(),
                        s.peer.ip()
                    );
                    return Err(Reply::new(
                        451,
                        (4, 4, 3),
                        format!(
                            "Sender's domain {} cannot be verified now, try again later",
                            domain.escape_debug()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The recipient controls, then (outside the local domains) the relay
    /// controls. `relaying` says whether `rcpt` leaves the local domains.
    pub(crate) async fn rcpt(
        &self,
        s: &SessionInfo,
        config: &Config,
        rcpt: &str,
        relaying: bool,
    ) -> Result<(), Reply> {
        let (name, authenticated) = self.client(s, config).await;
        let client = Client {
            ip: s.peer.ip(),
            name: name.as_deref(),
            authenticated,
        };
        if let Some(refusal) = inbound::recipient_refusal(&config.inbound, &client, rcpt) {
            return Err(refuse(s, refusal));
        }
        if relaying && !inbound::relay_allowed(&config.inbound, &client, rcpt) {
            return Err(refuse(s, inbound::relay_refusal()));
        }
        Ok(())
    }

    /// The blacklist that lists this session's client, when the action is
    /// `tag` (the message gets a header naming it).
    pub(crate) fn tag(&self, s: &SessionInfo, config: &Config) -> Option<Listed> {
        if config.inbound.dnsbl_action != DnsblAction::Tag {
            return None;
        }
        lock(&self.sessions)
            .get(&key(s))
            .and_then(|f| f.listed.clone())
            .flatten()
    }

    /// The session ended: what was learnt about it goes.
    pub(crate) fn forget(&self, s: &SessionInfo) {
        lock(&self.sessions).remove(&key(s));
    }

    /// Asks each blacklist zone in order, once per session; the first that
    /// lists the client counts a hit and is logged.
    async fn listing(
        &self,
        stats: &ControlStats,
        s: &SessionInfo,
        config: &Config,
    ) -> Option<Listed> {
        if let Some(Some(listed)) = lock(&self.sessions).get(&key(s)).map(|f| f.listed.clone()) {
            return listed;
        }
        let ip = s.peer.ip();
        let mut found = None;
        for zone in &config.inbound.dnsbl_zones {
            match self.dns.dnsbl(&config.dns_servers, ip, zone).await {
                Listing::NotListed => {}
                Listing::Listed(reason) => {
                    stats.dnsbl_hit(zone);
                    tracing::warn!(
                        "SMTP Server: {ip} is listed by DNS blacklist {zone}{} ({})",
                        reason
                            .as_deref()
                            .map(|r| format!(": {}", inbound::clean_reason(r)))
                            .unwrap_or_default(),
                        match config.inbound.dnsbl_action {
                            DnsblAction::Reject => "rejected",
                            DnsblAction::Tag => "tagged",
                            DnsblAction::Log => "logged only",
                        }
                    );
                    found = Some(Listed {
                        zone: zone.clone(),
                        reason,
                    });
                    break;
                }
                Listing::Unavailable(why) => {
                    tracing::info!(
                        "SMTP Server: DNS blacklist {zone} did not answer for {ip}: {why}"
                    );
                }
            }
        }
        lock(&self.sessions).entry(key(s)).or_default().listed = Some(found.clone());
        found
    }
}

/// Logs a refusal and makes it the reply, counted by the session under
/// its control's `show stat` name.
fn refuse(s: &SessionInfo, refusal: Refusal) -> Reply {
    tracing::info!(
        "SMTP Server: {} refused {}: {}",
        s.peer.ip(),
        match refusal.control {
            Control::ConnectionDenied | Control::HostNotVerified => "the connection",
            Control::SenderDenied | Control::SenderDomainUnknown | Control::Dnsbl => "the sender",
            Control::RecipientDenied | Control::Relay => "a recipient",
        },
        refusal.text
    );
    let kind = match refusal.control {
        Control::ConnectionDenied => smtp::Refusal::ConnectionDenied,
        Control::HostNotVerified => smtp::Refusal::HostNotVerified,
        Control::SenderDenied => smtp::Refusal::SenderDenied,
        Control::SenderDomainUnknown => smtp::Refusal::SenderDomainNotFound,
        Control::Dnsbl => smtp::Refusal::Dnsbl,
        Control::RecipientDenied => smtp::Refusal::RecipientDenied,
        Control::Relay => smtp::Refusal::RelayDenied,
    };
    Reply::new(refusal.code, refusal.status, refusal.text).counted(kind)
}

/// The DNS blacklist hits of the inbound controls (`show stat SMTP`); the
/// refusals are counted by the session with the other SMTP refusals.
#[derive(Default)]
pub(crate) struct ControlStats {
    dnsbl_hits: Mutex<BTreeMap<String, u64>>,
}

impl ControlStats {
    fn dnsbl_hit(&self, zone: &str) {
        *lock(&self.dnsbl_hits).entry(zone.to_owned()).or_default() += 1;
    }

    /// Every counter under its `show stat` name.
    pub(crate) fn snapshot(&self) -> Vec<(String, u64)> {
        lock(&self.dnsbl_hits)
            .iter()
            .map(|(zone, n)| (format!("SMTP.DNSBL.{zone}.TotalHits"), *n))
            .collect()
    }
}
