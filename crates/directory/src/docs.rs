//! The documents of the directory (SPEC §2) other than configurations, as
//! typed, validated values. Owns their shapes; parsing is in `parse`, lookups
//! in `directory`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::keywords::{ConnectionType, InternetAuth, LocalPartFrom, SmtpAuth};
use crate::names::NotesName;
use crate::patterns::DomainPattern;
use crate::relay::RelayHosts;
use crate::size::Size;
use crate::time::Schedule;

/// `[domain]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainDoc {
    pub name: String,
    pub file: Arc<Path>,
    pub line: usize,
}

/// `[global_domain]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalDomain {
    /// Lower case.
    pub primary_internet_domain: String,
    /// Lower case.
    pub alias_internet_domains: Vec<String>,
    pub local_part_from: LocalPartFrom,
    pub file: Arc<Path>,
    pub line: usize,
}

/// `tls = { cert, key }` of a server, resolved against the directory's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[server.listen]`: the address of each task; `None` leaves the task off.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listen {
    pub smtp: Option<SocketAddr>,
    pub submission: Option<SocketAddr>,
    pub smtps: Option<SocketAddr>,
    pub pop3: Option<SocketAddr>,
    pub pop3s: Option<SocketAddr>,
    pub imap: Option<SocketAddr>,
    pub imaps: Option<SocketAddr>,
    pub native: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
}

impl Listen {
    /// Every configured task as (key, address), in the order of SPEC §2.
    pub fn entries(&self) -> impl Iterator<Item = (&'static str, SocketAddr)> {
        [
            ("smtp", self.smtp),
            ("submission", self.submission),
            ("smtps", self.smtps),
            ("pop3", self.pop3),
            ("pop3s", self.pop3s),
            ("imap", self.imap),
            ("imaps", self.imaps),
            ("native", self.native),
            ("http", self.http),
        ]
        .into_iter()
        .filter_map(|(key, addr)| addr.map(|a| (key, a)))
    }
}

/// `[server.debug]`, with Domino's notes.ini names in the file
/// (`Log_MailRouting`, `DebugRouter`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugSettings {
    /// `Log_MailRouting`: 10, 20, 30 or 40.
    pub log_mail_routing: u8,
    /// `DebugRouter`: 0..3.
    pub debug_router: u8,
    /// `DebugRouterLookup`: 0..3.
    pub debug_router_lookup: u8,
    /// `SMTPClientDebug`: 0 or 1.
    pub smtp_client_debug: u8,
    /// `SMTPDebug`: 0..4.
    pub smtp_debug: u8,
    /// `SMTPDebugIO`: 0, 1, 3 or 4.
    pub smtp_debug_io: u8,
    /// `SMTPSaveImportErrors`: 0..3.
    pub smtp_save_import_errors: u8,
}

impl Default for DebugSettings {
    fn default() -> Self {
        Self {
            log_mail_routing: 20,
            debug_router: 0,
            debug_router_lookup: 0,
            smtp_client_debug: 0,
            smtp_debug: 0,
            smtp_debug_io: 0,
            smtp_save_import_errors: 0,
        }
    }
}

/// `[[server]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerDoc {
    pub name: NotesName,
    /// Fully qualified, lower case.
    pub hostname: String,
    pub networks: Vec<String>,
    pub administrators: Vec<NotesName>,
    pub smtp_auth: SmtpAuth,
    pub tls: Option<TlsFiles>,
    /// Passwords only inside TLS, on every port, loopback clients included
    /// (without it, a client on this machine may log in without TLS).
    pub require_tls_for_auth: bool,
    pub internet_auth: InternetAuth,
    /// The store folder, already joined to the directory's folder.
    pub data: PathBuf,
    pub listen: Listen,
    pub debug: DebugSettings,
    pub file: Arc<Path>,
    pub line: usize,
}

impl ServerDoc {
    /// Do the two servers share a Notes named network?
    pub fn shares_network_with(&self, other: &ServerDoc) -> bool {
        self.networks
            .iter()
            .any(|n| other.networks.iter().any(|o| o.eq_ignore_ascii_case(n)))
    }
}

/// `[[connection]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionDoc {
    pub kind: ConnectionType,
    pub source: NotesName,
    /// native: the destination server; smtp: a placeholder that names no server.
    pub destination: NotesName,
    /// smtp: the virtual domain of a foreign SMTP domain; native: empty.
    pub destination_domain: String,
    /// smtp only.
    pub relay_host: RelayHosts,
    pub cost: u32,
    pub route_at_once_if: u32,
    pub schedule: Schedule,
    pub enabled: bool,
    pub file: Arc<Path>,
    pub line: usize,
}

/// `[[foreign_smtp_domain]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignSmtpDomain {
    pub internet_domain: DomainPattern,
    /// The virtual domain an smtp connection's `destination_domain` names.
    pub route_to_domain: String,
    pub file: Arc<Path>,
    pub line: usize,
}

/// `[[adjacent_domain]]`: another Notes domain reached through `via_server`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdjacentDomain {
    pub name: String,
    pub via_server: NotesName,
    pub file: Arc<Path>,
    pub line: usize,
}

/// `[[nonadjacent_domain]]`: a Notes domain reached through an adjacent
/// domain (`via_domain`, Domino's "Route mail through domain"), which must be
/// an `adjacent_domain` of this directory.
#[derive(Debug, Clone, PartialEq)]
pub struct NonAdjacentDomain {
    pub name: String,
    pub via_domain: String,
    pub file: Arc<Path>,
    pub line: usize,
}

/// `[[person]]`. Empty strings stand for fields not given.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub full_name: NotesName,
    pub first_name: String,
    pub last_name: String,
    pub short_name: String,
    pub alternate_names: Vec<String>,
    /// As written (matched case-insensitively).
    pub internet_address: Option<String>,
    pub mail_server: NotesName,
    pub mail_file: String,
    /// An argon2 PHC string (`$argon2id$v=19$...`).
    pub internet_password: Option<String>,
    pub quota: Option<Size>,
    pub forward_to: Option<String>,
    pub file: Arc<Path>,
    pub line: usize,
}

/// `[[group]]`: members are names or addresses, possibly other groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub members: Vec<String>,
    pub internet_address: Option<String>,
    pub file: Arc<Path>,
    pub line: usize,
}

/// `[[mail_in]]`: a shared mailbox.
#[derive(Debug, Clone, PartialEq)]
pub struct MailIn {
    pub name: String,
    pub internet_address: Option<String>,
    pub server: NotesName,
    pub mail_file: String,
    pub file: Arc<Path>,
    pub line: usize,
}
