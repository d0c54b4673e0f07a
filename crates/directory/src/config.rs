//! Configuration settings: `[[configuration]]` documents as written
//! (`ConfigurationDoc`, every field optional) and the complete `Config` of one
//! server, merged field by field: SPEC §2 defaults, then `server = "*"`, then
//! the server's own document. Owns the merge and the defaults.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::dkim::DkimSigning;
use crate::error::{ValueError, shown};
use crate::keywords::{
    AddressLookup, DmarcPolicy, DnsblAction, HostNameResolution, RelayEnforcement, SmtpReachable,
    SmtpWithinLocalDomain,
};
use crate::names::NotesName;
use crate::patterns::{HostPattern, ListEntry};
use crate::relay::RelayHosts;
use crate::size::Size;
use crate::time::TimeWindow;

/// Which servers a configuration document is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConfigTarget {
    /// `server = "*"`: the defaults of every server.
    AllServers,
    Server(NotesName),
}

/// What a server mail rule does (SPEC §2 `action`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleAction {
    /// `reject`: don't accept the message.
    Reject,
    /// `hold`: routing state held.
    Hold,
    /// `drop`: don't deliver.
    Drop,
    /// `drop-and-report`: don't deliver, send a failure report.
    DropAndReport,
    /// `journal`: send a copy to the configuration's `journal_to`.
    Journal,
    /// `copy-to:ADDR`.
    CopyTo(String),
    /// `move-to:MAILFILE`.
    MoveTo(String),
    /// `stop`: no later rule acts.
    Stop,
}

impl FromStr for RuleAction {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let target = |prefix: &str| {
            s.get(..prefix.len())
                .filter(|p| p.eq_ignore_ascii_case(prefix))
                .and_then(|_| s.get(prefix.len()..))
                .map(str::trim)
        };
        let action = match s.to_ascii_lowercase().as_str() {
            "reject" => RuleAction::Reject,
            "hold" => RuleAction::Hold,
            "drop" => RuleAction::Drop,
            "drop-and-report" => RuleAction::DropAndReport,
            "journal" => RuleAction::Journal,
            "stop" => RuleAction::Stop,
            _ => match (target("copy-to:"), target("move-to:")) {
                (Some(""), _) | (_, Some("")) => {
                    return Err(ValueError::new(format!(
                        "{s}: the target after ':' is missing",
                        s = shown(s)
                    )));
                }
                (Some(address), _) => RuleAction::CopyTo(address.to_owned()),
                (_, Some(mail_file)) => RuleAction::MoveTo(mail_file.to_owned()),
                (None, None) => {
                    return Err(ValueError::new(format!(
                        "{s} is not a rule action: \"reject\", \"hold\", \"drop\", \
                         \"drop-and-report\", \"journal\", \"copy-to:ADDR\", \"move-to:MAILFILE\" or \"stop\"",
                        s = shown(s)
                    )));
                }
            },
        };
        Ok(action)
    }
}

impl fmt::Display for RuleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleAction::Reject => f.write_str("reject"),
            RuleAction::Hold => f.write_str("hold"),
            RuleAction::Drop => f.write_str("drop"),
            RuleAction::DropAndReport => f.write_str("drop-and-report"),
            RuleAction::Journal => f.write_str("journal"),
            RuleAction::CopyTo(a) => write!(f, "copy-to:{a}"),
            RuleAction::MoveTo(m) => write!(f, "move-to:{m}"),
            RuleAction::Stop => f.write_str("stop"),
        }
    }
}

/// The `when` (or `unless`) of a rule: the conditions given, combined as
/// the rule's `match` says (text ignores case). No condition: every message
/// ("All documents").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleCondition {
    /// The Subject contains this.
    pub subject_contains: Option<String>,
    /// The envelope sender contains this.
    pub sender: Option<String>,
    /// An envelope recipient contains this.
    pub recipient: Option<String>,
    pub size_over: Option<Size>,
    /// `"Name"`: the message has that header; `"Name: text"`: a header of
    /// that name contains the text.
    pub header: Option<String>,
    /// The text of the body (its text parts, decoded) contains this.
    pub body_contains: Option<String>,
    /// An attachment's file name matches this (`*` and `?` wildcards).
    pub attachment_name: Option<String>,
    /// More envelope recipients than this.
    pub recipient_count_over: Option<u32>,
}

impl RuleCondition {
    /// No condition given.
    pub fn is_empty(&self) -> bool {
        *self == RuleCondition::default()
    }
}

/// How a rule's conditions combine (`match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuleMatch {
    /// `all` (default): every condition given holds.
    #[default]
    All,
    /// `any`: at least one does.
    Any,
}

/// `[[configuration.rule]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub when: RuleCondition,
    /// How the conditions of `when` (and of `unless`) combine.
    pub combine: RuleMatch,
    /// Domino's exceptions: the rule does not act on a message these match.
    pub unless: Option<RuleCondition>,
    pub action: RuleAction,
    pub line: usize,
}

/// `[configuration.inbound]`, merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub relay_enforcement: RelayEnforcement,
    pub internal_hosts: Vec<HostPattern>,
    pub relay_exempt_hosts: Vec<HostPattern>,
    pub authenticated_may_relay: bool,
    pub allow_relay_to: Vec<ListEntry>,
    pub deny_relay_to: Vec<ListEntry>,
    pub allow_relay_from: Vec<ListEntry>,
    pub deny_relay_from: Vec<ListEntry>,
    pub deny_senders: Vec<ListEntry>,
    pub allow_senders: Vec<ListEntry>,
    pub deny_recipients: Vec<ListEntry>,
    pub allow_recipients: Vec<ListEntry>,
    /// "Verify connecting host name in DNS": a client without a
    /// forward-confirmed reverse DNS name is refused at connect.
    pub verify_connecting_host: bool,
    /// "Allow connections only from the following SMTP Internet host names/IP addresses".
    pub allow_connections: Vec<HostPattern>,
    /// "Deny connections from the following SMTP Internet host names/IP addresses".
    pub deny_connections: Vec<HostPattern>,
    /// "Verify sender's domain in DNS": the sender's domain must have an MX or an address.
    pub verify_sender_domain: bool,
    /// DNS blacklist zones asked about each unauthenticated client.
    pub dnsbl_zones: Vec<String>,
    pub dnsbl_action: DnsblAction,
    /// SPF, DKIM, DMARC and ARC are verified on each message from a client
    /// that did not authenticate and is not internal or exempt, and the
    /// results written in an `Authentication-Results:` header.
    pub verify_sender_authentication: bool,
    /// What a DMARC failure does: `report` (the header only) or `enforce`
    /// (`p=reject` refused, `p=quarantine` held).
    pub dmarc_policy: DmarcPolicy,
}

impl Default for Inbound {
    fn default() -> Self {
        Self {
            relay_enforcement: RelayEnforcement::External,
            internal_hosts: Vec::new(),
            relay_exempt_hosts: Vec::new(),
            authenticated_may_relay: true,
            allow_relay_to: Vec::new(),
            deny_relay_to: Vec::new(),
            allow_relay_from: Vec::new(),
            deny_relay_from: Vec::new(),
            deny_senders: Vec::new(),
            allow_senders: Vec::new(),
            deny_recipients: Vec::new(),
            allow_recipients: Vec::new(),
            verify_connecting_host: false,
            allow_connections: Vec::new(),
            deny_connections: Vec::new(),
            verify_sender_domain: false,
            dnsbl_zones: Vec::new(),
            dnsbl_action: DnsblAction::Reject,
            verify_sender_authentication: false,
            dmarc_policy: DmarcPolicy::Report,
        }
    }
}

/// `[configuration.outbound]`, merged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outbound {
    pub deny_to: Vec<ListEntry>,
    pub allow_to: Vec<ListEntry>,
    pub allow_from: Vec<ListEntry>,
    pub deny_from: Vec<ListEntry>,
    /// The domains whose mail is DKIM-signed when it leaves by SMTP for the
    /// Internet, each with its selector and key.
    pub dkim_sign: Vec<DkimSigning>,
}

/// The complete configuration of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub smtp_outside_local_domain: bool,
    pub smtp_within_local_domain: SmtpWithinLocalDomain,
    pub smtp_reachable: SmtpReachable,
    pub relay_host: RelayHosts,
    pub host_name_resolution: HostNameResolution,
    pub dns_servers: Vec<SocketAddr>,
    pub outbound_smtp_port: u16,
    pub address_lookup: AddressLookup,
    pub mailboxes: u8,
    pub max_hop_count: u32,
    pub hold_undeliverable: bool,
    pub journal_to: String,
    pub verify_local_recipients: bool,
    pub max_message_size: Size,
    pub transfer_threads: u8,
    pub max_concurrent_transfers: u8,
    pub delivery_threads: u8,
    pub initial_retry: Duration,
    pub retry_cap: Duration,
    pub expire_after: Duration,
    pub low_priority_window: TimeWindow,
    /// Concurrent sessions of one SMTP listener.
    pub smtp_max_sessions: u32,
    /// Concurrent sessions of one SMTP listener from one client address.
    pub smtp_max_sessions_per_host: u32,
    /// A whole SMTP command line must arrive within this long.
    pub smtp_command_timeout: Duration,
    /// The message after `354` must arrive within this long.
    pub smtp_data_timeout: Duration,
    /// An SMTP session ends after this long whatever it does.
    pub smtp_session_timeout: Duration,
    /// 5xx replies after which an SMTP session is closed.
    pub smtp_hard_error_limit: u32,
    /// Message bytes all SMTP sessions of the server may be receiving at once.
    pub smtp_inflight_message_bytes: Size,
    /// Concurrent sessions of one POP3 or IMAP listener.
    pub access_max_sessions: u32,
    /// Concurrent sessions of one POP3 or IMAP listener from one client address.
    pub access_max_sessions_per_host: u32,
    /// Who receives mail for `postmaster` (a name or address in the
    /// directory); empty: the server's first administrator that names one
    /// entry, else the mail file `mail/postmaster` of the server.
    pub postmaster: String,
    /// How long routing events are kept before they are pruned.
    pub event_retention: Duration,
    pub inbound: Inbound,
    pub outbound: Outbound,
    pub rules: Vec<Rule>,
}

impl Default for Config {
    /// The defaults of SPEC §2.
    fn default() -> Self {
        Self {
            smtp_outside_local_domain: false,
            smtp_within_local_domain: SmtpWithinLocalDomain::Disabled,
            smtp_reachable: SmtpReachable::Always,
            relay_host: RelayHosts::default(),
            host_name_resolution: HostNameResolution::Dns,
            dns_servers: Vec::new(),
            outbound_smtp_port: 25,
            address_lookup: AddressLookup::FullnameThenLocalpart,
            mailboxes: 1,
            max_hop_count: 40,
            hold_undeliverable: false,
            journal_to: String::new(),
            verify_local_recipients: true,
            max_message_size: Size(25 << 20),
            transfer_threads: 8,
            max_concurrent_transfers: 4,
            delivery_threads: 4,
            initial_retry: Duration::from_secs(15 * 60),
            retry_cap: Duration::from_secs(4 * 3600),
            expire_after: Duration::from_secs(24 * 3600),
            low_priority_window: TimeWindow::MIDNIGHT_TO_SIX,
            smtp_max_sessions: 1000,
            smtp_max_sessions_per_host: 50,
            smtp_command_timeout: Duration::from_secs(5 * 60),
            smtp_data_timeout: Duration::from_secs(15 * 60),
            smtp_session_timeout: Duration::from_secs(3600),
            smtp_hard_error_limit: 20,
            smtp_inflight_message_bytes: Size(512 << 20),
            access_max_sessions: 1000,
            access_max_sessions_per_host: 50,
            postmaster: String::new(),
            event_retention: Duration::from_secs(30 * 86_400),
            inbound: Inbound::default(),
            outbound: Outbound::default(),
            rules: Vec::new(),
        }
    }
}

/// `[configuration.inbound]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InboundDoc {
    pub relay_enforcement: Option<RelayEnforcement>,
    pub internal_hosts: Option<Vec<HostPattern>>,
    pub relay_exempt_hosts: Option<Vec<HostPattern>>,
    pub authenticated_may_relay: Option<bool>,
    pub allow_relay_to: Option<Vec<ListEntry>>,
    pub deny_relay_to: Option<Vec<ListEntry>>,
    pub allow_relay_from: Option<Vec<ListEntry>>,
    pub deny_relay_from: Option<Vec<ListEntry>>,
    pub deny_senders: Option<Vec<ListEntry>>,
    pub allow_senders: Option<Vec<ListEntry>>,
    pub deny_recipients: Option<Vec<ListEntry>>,
    pub allow_recipients: Option<Vec<ListEntry>>,
    pub verify_connecting_host: Option<bool>,
    pub allow_connections: Option<Vec<HostPattern>>,
    pub deny_connections: Option<Vec<HostPattern>>,
    pub verify_sender_domain: Option<bool>,
    pub dnsbl_zones: Option<Vec<String>>,
    pub dnsbl_action: Option<DnsblAction>,
    pub verify_sender_authentication: Option<bool>,
    pub dmarc_policy: Option<DmarcPolicy>,
}

/// `[configuration.outbound]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboundDoc {
    pub deny_to: Option<Vec<ListEntry>>,
    pub allow_to: Option<Vec<ListEntry>>,
    pub allow_from: Option<Vec<ListEntry>>,
    pub deny_from: Option<Vec<ListEntry>>,
    pub dkim_sign: Option<Vec<DkimSigning>>,
}

/// `[[configuration]]` as written: `None` for a field not given.
/// `rules` given in a server's document replace those of `server = "*"`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigurationDoc {
    pub server: ConfigTarget,
    pub smtp_outside_local_domain: Option<bool>,
    pub smtp_within_local_domain: Option<SmtpWithinLocalDomain>,
    pub smtp_reachable: Option<SmtpReachable>,
    pub relay_host: Option<RelayHosts>,
    pub host_name_resolution: Option<HostNameResolution>,
    pub dns_servers: Option<Vec<SocketAddr>>,
    pub outbound_smtp_port: Option<u16>,
    pub address_lookup: Option<AddressLookup>,
    pub mailboxes: Option<u8>,
    pub max_hop_count: Option<u32>,
    pub hold_undeliverable: Option<bool>,
    pub journal_to: Option<String>,
    pub verify_local_recipients: Option<bool>,
    pub max_message_size: Option<Size>,
    pub transfer_threads: Option<u8>,
    pub max_concurrent_transfers: Option<u8>,
    pub delivery_threads: Option<u8>,
    pub initial_retry: Option<Duration>,
    pub retry_cap: Option<Duration>,
    pub expire_after: Option<Duration>,
    pub low_priority_window: Option<TimeWindow>,
    pub smtp_max_sessions: Option<u32>,
    pub smtp_max_sessions_per_host: Option<u32>,
    pub smtp_command_timeout: Option<Duration>,
    pub smtp_data_timeout: Option<Duration>,
    pub smtp_session_timeout: Option<Duration>,
    pub smtp_hard_error_limit: Option<u32>,
    pub smtp_inflight_message_bytes: Option<Size>,
    pub access_max_sessions: Option<u32>,
    pub access_max_sessions_per_host: Option<u32>,
    pub postmaster: Option<String>,
    pub event_retention: Option<Duration>,
    pub inbound: InboundDoc,
    pub outbound: OutboundDoc,
    pub rules: Option<Vec<Rule>>,
    pub file: Arc<Path>,
    pub line: usize,
}

macro_rules! overlay {
    ($target:expr, $doc:expr; $($field:ident),+ $(,)?) => {
        $(if let Some(value) = &$doc.$field {
            $target.$field = value.clone();
        })+
    };
}

impl ConfigurationDoc {
    /// A document for `server` with no field given.
    pub fn empty(server: ConfigTarget, file: Arc<Path>, line: usize) -> Self {
        Self {
            server,
            smtp_outside_local_domain: None,
            smtp_within_local_domain: None,
            smtp_reachable: None,
            relay_host: None,
            host_name_resolution: None,
            dns_servers: None,
            outbound_smtp_port: None,
            address_lookup: None,
            mailboxes: None,
            max_hop_count: None,
            hold_undeliverable: None,
            journal_to: None,
            verify_local_recipients: None,
            max_message_size: None,
            transfer_threads: None,
            max_concurrent_transfers: None,
            delivery_threads: None,
            initial_retry: None,
            retry_cap: None,
            expire_after: None,
            low_priority_window: None,
            smtp_max_sessions: None,
            smtp_max_sessions_per_host: None,
            smtp_command_timeout: None,
            smtp_data_timeout: None,
            smtp_session_timeout: None,
            smtp_hard_error_limit: None,
            smtp_inflight_message_bytes: None,
            access_max_sessions: None,
            access_max_sessions_per_host: None,
            postmaster: None,
            event_retention: None,
            inbound: InboundDoc::default(),
            outbound: OutboundDoc::default(),
            rules: None,
            file,
            line,
        }
    }

    /// Writes every field given in this document over `config`.
    fn apply(&self, config: &mut Config) {
        overlay!(config, self;
            smtp_outside_local_domain, smtp_within_local_domain, smtp_reachable, relay_host,
            host_name_resolution, dns_servers, outbound_smtp_port, address_lookup, mailboxes,
            max_hop_count, hold_undeliverable, journal_to, verify_local_recipients,
            max_message_size, transfer_threads, max_concurrent_transfers, delivery_threads,
            initial_retry, retry_cap, expire_after, low_priority_window, postmaster,
            event_retention, rules,
        );
        overlay!(config, self;
            smtp_max_sessions, smtp_max_sessions_per_host, smtp_command_timeout,
            smtp_data_timeout, smtp_session_timeout, smtp_hard_error_limit,
            smtp_inflight_message_bytes, access_max_sessions, access_max_sessions_per_host,
        );
        overlay!(config.inbound, self.inbound;
            relay_enforcement, internal_hosts, relay_exempt_hosts, authenticated_may_relay,
            allow_relay_to, deny_relay_to, allow_relay_from, deny_relay_from, deny_senders,
            allow_senders, deny_recipients, allow_recipients, verify_connecting_host,
            allow_connections, deny_connections, verify_sender_domain, dnsbl_zones, dnsbl_action,
            verify_sender_authentication, dmarc_policy,
        );
        overlay!(config.outbound, self.outbound;
            deny_to, allow_to, allow_from, deny_from, dkim_sign,
        );
    }
}

/// Merges the documents that apply to one server, least specific first, over
/// the defaults. `max_concurrent_transfers` not given anywhere is half of
/// `transfer_threads` (at least 1).
pub(crate) fn merge<'a>(docs: impl IntoIterator<Item = &'a ConfigurationDoc>) -> Config {
    let mut config = Config::default();
    let mut concurrency_given = false;
    for doc in docs {
        doc.apply(&mut config);
        concurrency_given |= doc.max_concurrent_transfers.is_some();
    }
    if !concurrency_given {
        config.max_concurrent_transfers = (config.transfer_threads / 2).max(1);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_actions() {
        let cases = [
            ("reject", RuleAction::Reject),
            ("HOLD", RuleAction::Hold),
            ("drop", RuleAction::Drop),
            ("drop-and-report", RuleAction::DropAndReport),
            ("journal", RuleAction::Journal),
            (
                "copy-to:audit@acme.com",
                RuleAction::CopyTo("audit@acme.com".into()),
            ),
            (
                "Move-To: mail/quarantine",
                RuleAction::MoveTo("mail/quarantine".into()),
            ),
            ("stop", RuleAction::Stop),
        ];
        for (text, action) in cases {
            let parsed: RuleAction = text.parse().unwrap();
            assert_eq!(parsed, action);
            assert_eq!(parsed.to_string().parse::<RuleAction>().unwrap(), action);
        }
        for bad in ["", "copy-to:", "move-to: ", "bounce", "copy-to"] {
            assert!(bad.parse::<RuleAction>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = Config::default();
        assert_eq!(c.max_message_size, "25MB".parse().unwrap());
        assert_eq!(c.low_priority_window.to_string(), "00:00-06:00");
        assert_eq!(
            (
                c.transfer_threads,
                c.max_concurrent_transfers,
                c.delivery_threads
            ),
            (8, 4, 4)
        );
        assert_eq!(c.initial_retry, Duration::from_secs(900));
        assert!(c.inbound.authenticated_may_relay && c.verify_local_recipients);
        assert_eq!(
            (c.smtp_max_sessions, c.smtp_max_sessions_per_host),
            (1000, 50)
        );
        assert_eq!(c.smtp_command_timeout, Duration::from_secs(300));
        assert_eq!(c.smtp_data_timeout, Duration::from_secs(900));
        assert_eq!(c.smtp_session_timeout, Duration::from_secs(3600));
        assert_eq!(c.smtp_hard_error_limit, 20);
        assert_eq!(c.smtp_inflight_message_bytes, "512MB".parse().unwrap());
        assert_eq!(
            (c.access_max_sessions, c.access_max_sessions_per_host),
            (1000, 50)
        );
        assert_eq!(merge([]), c);
    }
}
