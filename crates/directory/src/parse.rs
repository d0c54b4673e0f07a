//! Turns directory files into documents: every document type of SPEC §2 read
//! field by field with `reader`, then the checks that span documents
//! (references to servers, duplicates, per-server configuration). Owns
//! validation; it reads no file itself (`dkim` reads the DKIM keys) and
//! builds no lookup index.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::de::DeTable;

use crate::config::{
    ConfigTarget, ConfigurationDoc, InboundDoc, OutboundDoc, Rule, RuleAction, RuleCondition,
    RuleMatch,
};
use crate::directory::{Directory, Documents};
use crate::docs::{
    AdjacentDomain, ConnectionDoc, DebugSettings, DomainDoc, ForeignSmtpDomain, GlobalDomain,
    Group, Listen, MailIn, NonAdjacentDomain, Person, ServerDoc, TlsFiles,
};
use crate::error::{DirectoryError, DirectoryErrors, ValueError, shown};
use crate::keywords::ConnectionType;
use crate::names::NotesName;
use crate::patterns::{domain_name, internet_address};
use crate::reader::{
    MAX_LIST, MAX_MEMBERS, Report, Table, boolean, checked, int_in, int_of, non_empty, parsed,
    string, text,
};
use crate::relay::RelayHosts;
use crate::time::{Schedule, parse_duration};

const TOP_LEVEL: &[&str] = &[
    "domain",
    "global_domain",
    "server",
    "configuration",
    "connection",
    "foreign_smtp_domain",
    "adjacent_domain",
    "nonadjacent_domain",
    "person",
    "group",
    "mail_in",
];

/// Where a field was written.
#[derive(Debug, Clone)]
struct Loc {
    file: Arc<Path>,
    line: usize,
    field: String,
}

impl Loc {
    fn error(&self, reason: impl Into<String>) -> DirectoryError {
        DirectoryError::new(
            self.file.to_path_buf(),
            self.line,
            self.field.clone(),
            reason,
        )
    }
}

/// What must be unique across the whole directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Unique {
    ServerName,
    InternetAddress,
    DataFolder,
    ListenAddress,
    Configuration,
    AdjacentDomain,
}

impl Unique {
    fn describe(self) -> &'static str {
        match self {
            Unique::ServerName => "server name",
            Unique::InternetAddress => "Internet address",
            Unique::DataFolder => "data folder",
            Unique::ListenAddress => "listen address",
            Unique::Configuration => "configuration document for server",
            Unique::AdjacentDomain => "adjacent domain",
        }
    }
}

/// A check that needs every file read first.
#[derive(Debug)]
enum Check {
    /// The name must be a server of the directory.
    Server(NotesName, Loc),
    /// The name must not be a server (an smtp connection's placeholder).
    NotServer(NotesName, Loc),
    /// The name must be an `adjacent_domain`.
    AdjacentDomain(String, Loc),
    /// `key` must not be claimed twice; `shown` is how the error names it.
    Unique {
        kind: Unique,
        key: String,
        shown: String,
        loc: Loc,
    },
}

/// Reads files one after the other and validates the whole at the end.
pub(crate) struct Builder {
    base_dir: PathBuf,
    docs: Documents,
    domain: Option<DomainDoc>,
    checks: Vec<Check>,
    errors: Vec<DirectoryError>,
    syntax_failed: bool,
    /// A `[domain]` table was written (valid or not).
    domain_written: bool,
}

impl Builder {
    pub(crate) fn new(base_dir: PathBuf) -> Self {
        Self {
            base_dir,
            docs: Documents::default(),
            domain: None,
            checks: Vec::new(),
            errors: Vec::new(),
            syntax_failed: false,
            domain_written: false,
        }
    }

    /// Records a problem with a file as a whole (it could not be read).
    pub(crate) fn file_error(&mut self, file: &Path, field: &str, reason: impl Into<String>) {
        self.errors
            .push(DirectoryError::new(file.to_path_buf(), 0, field, reason));
    }

    /// Records a problem at a line of a file that could not be parsed.
    pub(crate) fn line_error(
        &mut self,
        file: &Path,
        line: usize,
        field: &str,
        reason: impl Into<String>,
    ) {
        self.errors
            .push(DirectoryError::new(file.to_path_buf(), line, field, reason));
        self.syntax_failed = true;
    }

    /// Reads the documents of one file.
    pub(crate) fn add_file(&mut self, file: &Path, text: &str) {
        let mut report = Report::new(Arc::from(file), text);
        let (root, syntax) = DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            for error in syntax {
                let offset = error.span().map_or(0, |s| s.start);
                report.error(offset, "syntax".to_owned(), error.message().trim());
            }
            self.syntax_failed = true;
            self.errors.append(&mut report.errors);
            return;
        }
        let root = Table::root(&root);
        self.domain_written |= root.has("domain");
        root.known(&mut report, TOP_LEVEL);
        let mut file_reader = FileReader {
            report,
            base_dir: &self.base_dir,
            checks: &mut self.checks,
        };
        file_reader.read(&root, &mut self.docs, &mut self.domain);
        self.errors.append(&mut file_reader.report.errors);
    }

    /// Cross-document checks, then the directory with its indexes.
    pub(crate) fn finish(
        mut self,
        whole: &Path,
        sources: Vec<(PathBuf, std::time::SystemTime)>,
    ) -> Result<Directory, DirectoryErrors> {
        if self.syntax_failed {
            return Err(sorted(self.errors));
        }
        let Some(domain) = self.domain.take() else {
            if self.domain_written {
                return Err(sorted(self.errors));
            }
            self.file_error(
                whole,
                "domain",
                "missing [domain] document (name = \"YourDomain\")",
            );
            return Err(sorted(self.errors));
        };
        self.run_checks(&domain);
        if !self.errors.is_empty() {
            return Err(sorted(self.errors));
        }
        let directory = Directory::assemble(domain, self.docs, self.base_dir, sources);
        let errors = check_configs(&directory);
        if errors.is_empty() {
            Ok(directory)
        } else {
            Err(sorted(errors))
        }
    }

    fn run_checks(&mut self, domain: &DomainDoc) {
        let servers: HashSet<&NotesName> = self.docs.servers.iter().map(|s| &s.name).collect();
        let adjacent: HashSet<String> = self
            .docs
            .adjacent_domains
            .iter()
            .map(|d| d.name.to_lowercase())
            .collect();
        let mut seen: HashMap<(Unique, &str), &Loc> = HashMap::new();
        for check in &self.checks {
            match check {
                Check::Server(name, loc) if !servers.contains(name) => {
                    self.errors
                        .push(loc.error(format!("no server named {name} in the directory")));
                }
                Check::NotServer(name, loc) if servers.contains(name) => {
                    self.errors.push(loc.error(format!(
                        "{name} is a server; an smtp connection's destination is a placeholder \
                         that must not name one (e.g. all_internet_hosts)"
                    )));
                }
                Check::AdjacentDomain(name, loc) if !adjacent.contains(&name.to_lowercase()) => {
                    self.errors.push(loc.error(format!(
                        "no adjacent_domain named {name}",
                        name = shown(name)
                    )));
                }
                Check::Unique {
                    kind,
                    key,
                    shown,
                    loc,
                } => match seen.entry((*kind, key.as_str())) {
                    Entry::Occupied(first) => {
                        let first = first.get();
                        self.errors.push(loc.error(format!(
                            "duplicate {} {shown} (first at {}:{})",
                            kind.describe(),
                            first.file.display(),
                            first.line
                        )));
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(loc);
                    }
                },
                _ => {}
            }
        }
        for (i, adjacent) in self.docs.adjacent_domains.iter().enumerate() {
            if adjacent.name.eq_ignore_ascii_case(&domain.name) {
                self.errors.push(DirectoryError::new(
                    adjacent.file.to_path_buf(),
                    adjacent.line,
                    format!("adjacent_domain[{i}].name"),
                    format!("{} is this directory's own domain", adjacent.name),
                ));
            }
        }
    }
}

fn sorted(mut errors: Vec<DirectoryError>) -> DirectoryErrors {
    errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    DirectoryErrors(errors)
}

/// Checks that only hold for the merged configuration of each server.
fn check_configs(directory: &Directory) -> Vec<DirectoryError> {
    let mut errors = Vec::new();
    for server in &directory.servers {
        let config = directory.config_for(&server.name);
        let docs: Vec<(usize, &ConfigurationDoc)> =
            directory.configuration_docs_for(&server.name).collect();
        let error = |i: usize, doc: &ConfigurationDoc, field: String, reason: String| {
            DirectoryError::new(
                doc.file.to_path_buf(),
                doc.line,
                format!("configuration[{i}].{field}"),
                reason,
            )
        };
        if config.max_concurrent_transfers > config.transfer_threads {
            // Only a value given can exceed: the default is half of transfer_threads.
            if let Some((i, doc)) = docs
                .iter()
                .rev()
                .find(|(_, d)| d.max_concurrent_transfers.is_some())
            {
                errors.push(error(
                    *i,
                    doc,
                    "max_concurrent_transfers".to_owned(),
                    format!(
                        "{} concurrent transfers exceed transfer_threads = {} on server {}",
                        config.max_concurrent_transfers, config.transfer_threads, server.name
                    ),
                ));
            }
        }
        if let Some((i, doc)) = docs.iter().rev().find(|(_, d)| d.rules.is_some()) {
            for (j, rule) in config.rules.iter().enumerate() {
                if let RuleAction::MoveTo(target) = &rule.action
                    && directory.move_target(target).is_none()
                {
                    errors.push(DirectoryError {
                        line: rule.line,
                        ..error(
                            *i,
                            doc,
                            format!("rule[{j}].action"),
                            format!(
                                "move-to:{} names no mail-in database or person (by mail file, name or Internet address), or more than one",
                                shown(target)
                            ),
                        )
                    });
                }
            }
        }
        if config.journal_to.is_empty()
            && let Some((i, doc)) = docs.iter().rev().find(|(_, d)| d.rules.is_some())
        {
            for (j, rule) in config.rules.iter().enumerate() {
                if rule.action == RuleAction::Journal {
                    errors.push(DirectoryError {
                        line: rule.line,
                        ..error(
                            *i,
                            doc,
                            format!("rule[{j}].action"),
                            format!("\"journal\" needs journal_to on server {}", server.name),
                        )
                    });
                }
            }
        }
    }
    errors
}

/// Reads the documents of one file.
struct FileReader<'b> {
    report: Report,
    base_dir: &'b Path,
    checks: &'b mut Vec<Check>,
}

impl FileReader<'_> {
    fn loc(&self, table: &Table<'_, '_>, key: &str) -> Loc {
        Loc {
            file: self.report.file.clone(),
            line: table.line_of(&self.report, key),
            field: table.path(key),
        }
    }

    fn check_server(&mut self, table: &Table<'_, '_>, key: &str, name: &NotesName) {
        let loc = self.loc(table, key);
        self.checks.push(Check::Server(name.clone(), loc));
    }

    /// Claims `key` as unique; `shown` names it in a duplicate error.
    fn unique(
        &mut self,
        kind: Unique,
        key: String,
        shown: &str,
        table: &Table<'_, '_>,
        field: &str,
    ) {
        let loc = self.loc(table, field);
        let shown = shown.to_owned();
        self.checks.push(Check::Unique {
            kind,
            key,
            shown,
            loc,
        });
    }

    fn file(&self) -> Arc<Path> {
        self.report.file.clone()
    }

    fn read(&mut self, root: &Table<'_, '_>, docs: &mut Documents, domain: &mut Option<DomainDoc>) {
        if let Some(t) = root.table(&mut self.report, "domain")
            && let Some(doc) = self.domain(&t)
        {
            let line = doc.line;
            self.only_once(domain, doc, "domain", line, |d| (d.file.clone(), d.line));
        }
        if let Some(t) = root.table(&mut self.report, "global_domain")
            && let Some(doc) = self.global_domain(&t)
        {
            let line = doc.line;
            let slot = &mut docs.global_domain;
            self.only_once(slot, doc, "global_domain", line, |d| {
                (d.file.clone(), d.line)
            });
        }
        // Paths count documents across files: `person[3]` is `persons[3]`.
        macro_rules! each {
            ($key:literal, $list:ident, $read:ident) => {
                let first = docs.$list.len();
                for t in root.tables(&mut self.report, $key, first) {
                    if let Some(doc) = self.$read(&t) {
                        docs.$list.push(doc);
                    }
                }
            };
        }
        each!("server", servers, server);
        each!("configuration", configurations, configuration);
        each!("connection", connections, connection);
        each!(
            "foreign_smtp_domain",
            foreign_smtp_domains,
            foreign_smtp_domain
        );
        each!("adjacent_domain", adjacent_domains, adjacent_domain);
        each!(
            "nonadjacent_domain",
            nonadjacent_domains,
            nonadjacent_domain
        );
        each!("person", persons, person);
        each!("group", groups, group);
        each!("mail_in", mail_ins, mail_in);
    }

    /// Keeps a document that may appear in one file only.
    fn only_once<T>(
        &mut self,
        slot: &mut Option<T>,
        doc: T,
        key: &str,
        line: usize,
        first_at: impl Fn(&T) -> (Arc<Path>, usize),
    ) {
        match slot {
            Some(first) => {
                let (file, first_line) = first_at(first);
                self.report.error_at_line(
                    line,
                    key.to_owned(),
                    format!(
                        "[{key}] is already given at {}:{first_line}",
                        file.display()
                    ),
                );
            }
            None => *slot = Some(doc),
        }
    }

    fn domain(&mut self, t: &Table<'_, '_>) -> Option<DomainDoc> {
        let r = &mut self.report;
        t.known(r, &["name"]);
        let name = t.req(r, "name", checked(notes_domain))?;
        Some(DomainDoc {
            name,
            file: r.file.clone(),
            line: t.line(r),
        })
    }

    fn global_domain(&mut self, t: &Table<'_, '_>) -> Option<GlobalDomain> {
        let r = &mut self.report;
        t.known(
            r,
            &[
                "primary_internet_domain",
                "alias_internet_domains",
                "local_part_from",
            ],
        );
        let primary = t.req(r, "primary_internet_domain", checked(domain_name));
        let aliases = t.list(r, "alias_internet_domains", checked(domain_name));
        let local_part_from = t.opt(r, "local_part_from", parsed).unwrap_or_default();
        Some(GlobalDomain {
            primary_internet_domain: primary?,
            alias_internet_domains: aliases.unwrap_or_default(),
            local_part_from,
            file: r.file.clone(),
            line: t.line(r),
        })
    }

    fn server(&mut self, t: &Table<'_, '_>) -> Option<ServerDoc> {
        let r = &mut self.report;
        t.known(
            r,
            &[
                "name",
                "hostname",
                "networks",
                "administrators",
                "smtp_auth",
                "tls",
                "require_tls_for_auth",
                "internet_auth",
                "data",
                "listen",
                "debug",
            ],
        );
        let name = t.req(r, "name", parsed::<NotesName>);
        let hostname = t.req(r, "hostname", checked(domain_name));
        let networks = t.list(r, "networks", non_empty).unwrap_or_default();
        let administrators = t.list(r, "administrators", parsed).unwrap_or_default();
        let smtp_auth = t.opt(r, "smtp_auth", parsed).unwrap_or_default();
        let internet_auth = t.opt(r, "internet_auth", parsed).unwrap_or_default();
        let require_tls_for_auth = t.opt(r, "require_tls_for_auth", boolean).unwrap_or(false);
        let tls = t.table(r, "tls").and_then(|tls| {
            tls.known(r, &["cert", "key"]);
            let cert = tls.req(r, "cert", non_empty);
            let key = tls.req(r, "key", non_empty);
            Some(TlsFiles {
                cert: self.base_dir.join(cert?),
                key: self.base_dir.join(key?),
            })
        });
        if require_tls_for_auth && tls.is_none() {
            let line = t.line_of(r, "require_tls_for_auth");
            r.error_at_line(
                line,
                t.path("require_tls_for_auth"),
                "needs tls = { cert, key }: without TLS no one could log in",
            );
        }
        let data = t.opt(r, "data", non_empty).map(PathBuf::from);
        let listen = t.table(r, "listen").map(|l| self.listen(&l, tls.is_some()));
        let r = &mut self.report;
        let debug = t
            .table(r, "debug")
            .map(|d| debug_settings(r, &d.ignoring_case()));
        let name = name?;
        let data = self.base_dir.join(
            data.unwrap_or_else(|| Path::new("data").join(name.common_name().to_lowercase())),
        );
        self.unique(
            Unique::ServerName,
            name.key().to_owned(),
            &name.to_string(),
            t,
            "name",
        );
        // Compared by components: `data/mail` and `./data/mail/` are one folder.
        let folder = data.components().collect::<PathBuf>().display().to_string();
        self.unique(Unique::DataFolder, folder.clone(), &folder, t, "data");
        let listen = listen.unwrap_or_default();
        Some(ServerDoc {
            name,
            hostname: hostname?,
            networks,
            administrators,
            smtp_auth,
            tls,
            require_tls_for_auth,
            internet_auth,
            data,
            listen,
            debug: debug.unwrap_or_default(),
            file: self.file(),
            line: t.line(&self.report),
        })
    }

    /// The listen addresses; each is claimed as unique across servers.
    fn listen(&mut self, t: &Table<'_, '_>, has_tls: bool) -> Listen {
        let r = &mut self.report;
        t.known(
            r,
            &[
                "smtp",
                "submission",
                "smtps",
                "pop3",
                "pop3s",
                "imap",
                "imaps",
                "native",
                "http",
            ],
        );
        let socket = checked(|s: &str| {
            s.trim().parse::<SocketAddr>().map_err(|_| {
                ValueError::new(format!(
                    "{s} is not ip:port (e.g. 127.0.0.1:2525)",
                    s = shown(s)
                ))
            })
        });
        let mut get = |key: &str| t.opt(r, key, &socket);
        let listen = Listen {
            smtp: get("smtp"),
            submission: get("submission"),
            smtps: get("smtps"),
            pop3: get("pop3"),
            pop3s: get("pop3s"),
            imap: get("imap"),
            imaps: get("imaps"),
            native: get("native"),
            http: get("http"),
        };
        for (key, addr) in listen.entries() {
            if !has_tls && matches!(key, "smtps" | "pop3s" | "imaps") {
                let line = t.line_of(&self.report, key);
                self.report.error_at_line(
                    line,
                    t.path(key),
                    "implicit TLS needs the server's tls = { cert, key }",
                );
            }
            if addr.port() != 0 {
                let shown = addr.to_string();
                self.unique(Unique::ListenAddress, shown.clone(), &shown, t, key);
            }
        }
        listen
    }

    fn configuration(&mut self, t: &Table<'_, '_>) -> Option<ConfigurationDoc> {
        let r = &mut self.report;
        t.known(
            r,
            &[
                "server",
                "smtp_outside_local_domain",
                "smtp_within_local_domain",
                "smtp_reachable",
                "relay_host",
                "host_name_resolution",
                "dns_servers",
                "outbound_smtp_port",
                "address_lookup",
                "mailboxes",
                "max_hop_count",
                "hold_undeliverable",
                "journal_to",
                "verify_local_recipients",
                "max_message_size",
                "transfer_threads",
                "max_concurrent_transfers",
                "delivery_threads",
                "initial_retry",
                "retry_cap",
                "expire_after",
                "low_priority_window",
                "smtp_max_sessions",
                "smtp_max_sessions_per_host",
                "smtp_command_timeout",
                "smtp_data_timeout",
                "smtp_session_timeout",
                "smtp_hard_error_limit",
                "smtp_inflight_message_bytes",
                "access_max_sessions",
                "access_max_sessions_per_host",
                "postmaster",
                "event_retention",
                "inbound",
                "outbound",
                "rule",
            ],
        );
        let target = t.req(r, "server", |v| match text(v)?.trim() {
            "*" => Ok(ConfigTarget::AllServers),
            name => name
                .parse()
                .map(ConfigTarget::Server)
                .map_err(|e: ValueError| e.0),
        })?;
        let duration = checked(|s: &str| {
            parse_duration(s).and_then(|d| {
                if d.is_zero() {
                    Err(ValueError::new("must be longer than 0s"))
                } else {
                    Ok(d)
                }
            })
        });
        let socket = checked(|s: &str| {
            s.trim().parse::<SocketAddr>().map_err(|_| {
                ValueError::new(format!(
                    "{s} is not ip:port (e.g. 127.0.0.1:53)",
                    s = shown(s)
                ))
            })
        });
        let mut doc = ConfigurationDoc::empty(target.clone(), r.file.clone(), t.line(r));
        doc.smtp_outside_local_domain = t.opt(r, "smtp_outside_local_domain", boolean);
        doc.smtp_within_local_domain = t.opt(r, "smtp_within_local_domain", parsed);
        doc.smtp_reachable = t.opt(r, "smtp_reachable", parsed);
        doc.relay_host = t.opt(r, "relay_host", parsed::<RelayHosts>);
        doc.host_name_resolution = t.opt(r, "host_name_resolution", parsed);
        doc.dns_servers = t.list(r, "dns_servers", socket);
        doc.outbound_smtp_port = t.opt(r, "outbound_smtp_port", int_in(1, 65_535));
        doc.address_lookup = t.opt(r, "address_lookup", parsed);
        doc.mailboxes = t.opt(r, "mailboxes", int_in(1, 10));
        doc.max_hop_count = t.opt(r, "max_hop_count", int_in(1, 1_000));
        doc.hold_undeliverable = t.opt(r, "hold_undeliverable", boolean);
        doc.journal_to = t.opt(r, "journal_to", string);
        doc.verify_local_recipients = t.opt(r, "verify_local_recipients", boolean);
        doc.max_message_size = t.opt(r, "max_message_size", parsed);
        doc.transfer_threads = t.opt(r, "transfer_threads", int_in(1, 25));
        doc.max_concurrent_transfers = t.opt(r, "max_concurrent_transfers", int_in(1, 25));
        doc.delivery_threads = t.opt(r, "delivery_threads", int_in(1, 25));
        doc.initial_retry = t.opt(r, "initial_retry", &duration);
        doc.retry_cap = t.opt(r, "retry_cap", &duration);
        doc.expire_after = t.opt(r, "expire_after", &duration);
        doc.low_priority_window = t.opt(r, "low_priority_window", parsed);
        doc.smtp_max_sessions = t.opt(r, "smtp_max_sessions", int_in(1, 1_000_000));
        doc.smtp_max_sessions_per_host =
            t.opt(r, "smtp_max_sessions_per_host", int_in(1, 1_000_000));
        doc.smtp_command_timeout = t.opt(r, "smtp_command_timeout", &duration);
        doc.smtp_data_timeout = t.opt(r, "smtp_data_timeout", &duration);
        doc.smtp_session_timeout = t.opt(r, "smtp_session_timeout", &duration);
        doc.smtp_hard_error_limit = t.opt(r, "smtp_hard_error_limit", int_in(1, 100_000));
        doc.smtp_inflight_message_bytes = t.opt(r, "smtp_inflight_message_bytes", parsed);
        doc.access_max_sessions = t.opt(r, "access_max_sessions", int_in(1, 1_000_000));
        doc.access_max_sessions_per_host =
            t.opt(r, "access_max_sessions_per_host", int_in(1, 1_000_000));
        doc.postmaster = t.opt(r, "postmaster", string);
        doc.event_retention = t.opt(r, "event_retention", &duration);
        if let Some(inbound) = t.table(r, "inbound") {
            doc.inbound = inbound_doc(r, &inbound);
        }
        if let Some(outbound) = t.table(r, "outbound") {
            doc.outbound = outbound_doc(r, &outbound, self.base_dir);
        }
        if t.has("rule") {
            let mut rules = t.tables(r, "rule", 0);
            if rules.len() > MAX_LIST {
                r.error_at_line(
                    t.line_of(r, "rule"),
                    t.path("rule"),
                    format!("too many rules ({}; at most {MAX_LIST})", rules.len()),
                );
                rules.clear();
            }
            doc.rules = Some(rules.iter().filter_map(|rule| read_rule(r, rule)).collect());
        }
        let (key, shown) = match &target {
            ConfigTarget::AllServers => ("*".to_owned(), "\"*\"".to_owned()),
            ConfigTarget::Server(name) => {
                self.check_server(t, "server", name);
                (name.key().to_owned(), name.to_string())
            }
        };
        self.unique(Unique::Configuration, key, &shown, t, "server");
        Some(doc)
    }

    fn connection(&mut self, t: &Table<'_, '_>) -> Option<ConnectionDoc> {
        let r = &mut self.report;
        t.known(
            r,
            &[
                "type",
                "source",
                "destination",
                "destination_domain",
                "relay_host",
                "cost",
                "route_at_once_if",
                "schedule",
                "enabled",
            ],
        );
        let kind: ConnectionType = t.opt(r, "type", parsed).unwrap_or_default();
        let source = t.req(r, "source", parsed::<NotesName>);
        let destination = t.req(r, "destination", parsed::<NotesName>);
        let destination_domain = t.opt(r, "destination_domain", string).unwrap_or_default();
        let relay_host = t
            .opt(r, "relay_host", parsed::<RelayHosts>)
            .unwrap_or_default();
        let cost = t.opt(r, "cost", int_in(1, 65_535)).unwrap_or(1);
        let route_at_once_if = t
            .opt(r, "route_at_once_if", int_in(0, 1_000_000))
            .unwrap_or(5);
        let schedule = t.table(r, "schedule").map(|s| read_schedule(r, &s));
        let enabled = t.opt(r, "enabled", boolean).unwrap_or(true);
        match kind {
            ConnectionType::Smtp if destination_domain.is_empty() => r.error_at_line(
                t.line_of(r, "destination_domain"),
                t.path("destination_domain"),
                "an smtp connection names the virtual domain of a foreign_smtp_domain (route_to_domain)",
            ),
            ConnectionType::Native if !relay_host.is_empty() => r.error_at_line(
                t.line_of(r, "relay_host"),
                t.path("relay_host"),
                "relay_host is for smtp connections only",
            ),
            _ => {}
        }
        let (source, destination) = (source?, destination?);
        self.check_server(t, "source", &source);
        if kind == ConnectionType::Smtp {
            let loc = self.loc(t, "destination");
            self.checks.push(Check::NotServer(destination.clone(), loc));
        }
        Some(ConnectionDoc {
            kind,
            source,
            destination,
            destination_domain,
            relay_host,
            cost,
            route_at_once_if,
            schedule: schedule.unwrap_or_default(),
            enabled,
            file: self.file(),
            line: t.line(&self.report),
        })
    }

    fn foreign_smtp_domain(&mut self, t: &Table<'_, '_>) -> Option<ForeignSmtpDomain> {
        let r = &mut self.report;
        t.known(r, &["internet_domain", "route_to_domain"]);
        let internet_domain = t.req(r, "internet_domain", parsed);
        let route_to_domain = t.req(r, "route_to_domain", checked(notes_domain));
        Some(ForeignSmtpDomain {
            internet_domain: internet_domain?,
            route_to_domain: route_to_domain?,
            file: r.file.clone(),
            line: t.line(r),
        })
    }

    fn adjacent_domain(&mut self, t: &Table<'_, '_>) -> Option<AdjacentDomain> {
        let r = &mut self.report;
        t.known(r, &["name", "via_server"]);
        let name = t.req(r, "name", checked(notes_domain));
        let via_server = t.req(r, "via_server", parsed::<NotesName>);
        let (name, via_server) = (name?, via_server?);
        self.check_server(t, "via_server", &via_server);
        self.unique(
            Unique::AdjacentDomain,
            name.to_lowercase(),
            &name,
            t,
            "name",
        );
        Some(AdjacentDomain {
            name,
            via_server,
            file: self.file(),
            line: t.line(&self.report),
        })
    }

    fn nonadjacent_domain(&mut self, t: &Table<'_, '_>) -> Option<NonAdjacentDomain> {
        let r = &mut self.report;
        t.known(r, &["name", "via_domain"]);
        let name = t.req(r, "name", checked(notes_domain));
        let via_domain = t.req(r, "via_domain", checked(notes_domain));
        let (name, via_domain) = (name?, via_domain?);
        let loc = self.loc(t, "via_domain");
        self.checks
            .push(Check::AdjacentDomain(via_domain.clone(), loc));
        Some(NonAdjacentDomain {
            name,
            via_domain,
            file: self.file(),
            line: t.line(&self.report),
        })
    }

    /// `internet_address`: `None` when absent or empty; claimed as unique.
    fn internet_address(&mut self, t: &Table<'_, '_>) -> Option<String> {
        let r = &mut self.report;
        let address = t
            .opt(r, "internet_address", |v| {
                let s = text(v)?.trim();
                if s.is_empty() {
                    Ok(None)
                } else {
                    internet_address(s)
                        .map(|_| Some(s.to_owned()))
                        .map_err(|e| e.0)
                }
            })
            .flatten()?;
        let key = address.to_lowercase();
        self.unique(
            Unique::InternetAddress,
            key,
            &address,
            t,
            "internet_address",
        );
        Some(address)
    }

    fn person(&mut self, t: &Table<'_, '_>) -> Option<Person> {
        let r = &mut self.report;
        t.known(
            r,
            &[
                "full_name",
                "first_name",
                "last_name",
                "short_name",
                "alternate_names",
                "internet_address",
                "mail_server",
                "mail_file",
                "internet_password",
                "quota",
                "forward_to",
            ],
        );
        let full_name = t.req(r, "full_name", parsed::<NotesName>);
        let first_name = t.opt(r, "first_name", string).unwrap_or_default();
        let last_name = t.opt(r, "last_name", string).unwrap_or_default();
        let short_name = t.opt(r, "short_name", string).unwrap_or_default();
        let alternate_names = t.list(r, "alternate_names", non_empty).unwrap_or_default();
        let mail_server = t.req(r, "mail_server", parsed::<NotesName>);
        let mail_file = t.opt(r, "mail_file", string).unwrap_or_default();
        let internet_password = t.opt(r, "internet_password", checked(password_hash));
        let quota = t.opt(r, "quota", parsed);
        let forward_to = t.opt(r, "forward_to", string).filter(|f| !f.is_empty());
        let internet_address = self.internet_address(t);
        let (full_name, mail_server) = (full_name?, mail_server?);
        self.check_server(t, "mail_server", &mail_server);
        Some(Person {
            full_name,
            first_name,
            last_name,
            short_name,
            alternate_names,
            internet_address,
            mail_server,
            mail_file,
            internet_password,
            quota,
            forward_to,
            file: self.file(),
            line: t.line(&self.report),
        })
    }

    fn group(&mut self, t: &Table<'_, '_>) -> Option<Group> {
        let r = &mut self.report;
        t.known(r, &["name", "members", "internet_address"]);
        let name = t.req(r, "name", non_empty);
        let members = t
            .list_at_most(r, "members", MAX_MEMBERS, non_empty)
            .unwrap_or_default();
        let internet_address = self.internet_address(t);
        Some(Group {
            name: name?,
            members,
            internet_address,
            file: self.file(),
            line: t.line(&self.report),
        })
    }

    fn mail_in(&mut self, t: &Table<'_, '_>) -> Option<MailIn> {
        let r = &mut self.report;
        t.known(r, &["name", "internet_address", "server", "mail_file"]);
        let name = t.req(r, "name", non_empty);
        let server = t.req(r, "server", parsed::<NotesName>);
        let mail_file = t.req(r, "mail_file", non_empty);
        let internet_address = self.internet_address(t);
        let server = server?;
        self.check_server(t, "server", &server);
        Some(MailIn {
            name: name?,
            internet_address,
            server,
            mail_file: mail_file?,
            file: self.file(),
            line: t.line(&self.report),
        })
    }
}

fn debug_settings(r: &mut Report, t: &Table<'_, '_>) -> DebugSettings {
    t.known(
        r,
        &[
            "Log_MailRouting",
            "DebugRouter",
            "DebugRouterLookup",
            "SMTPClientDebug",
            "SMTPDebug",
            "SMTPDebugIO",
            "SMTPSaveImportErrors",
        ],
    );
    let defaults = DebugSettings::default();
    DebugSettings {
        log_mail_routing: t
            .opt(r, "Log_MailRouting", int_of(&[10, 20, 30, 40]))
            .unwrap_or(defaults.log_mail_routing),
        debug_router: t.opt(r, "DebugRouter", int_in(0, 3)).unwrap_or(0),
        debug_router_lookup: t.opt(r, "DebugRouterLookup", int_in(0, 3)).unwrap_or(0),
        smtp_client_debug: t.opt(r, "SMTPClientDebug", int_in(0, 1)).unwrap_or(0),
        smtp_debug: t.opt(r, "SMTPDebug", int_in(0, 4)).unwrap_or(0),
        smtp_debug_io: t.opt(r, "SMTPDebugIO", int_of(&[0, 1, 3, 4])).unwrap_or(0),
        smtp_save_import_errors: t.opt(r, "SMTPSaveImportErrors", int_in(0, 3)).unwrap_or(0),
    }
}

fn inbound_doc(r: &mut Report, t: &Table<'_, '_>) -> InboundDoc {
    t.known(
        r,
        &[
            "relay_enforcement",
            "internal_hosts",
            "relay_exempt_hosts",
            "authenticated_may_relay",
            "allow_relay_to",
            "deny_relay_to",
            "allow_relay_from",
            "deny_relay_from",
            "deny_senders",
            "allow_senders",
            "deny_recipients",
            "allow_recipients",
            "verify_connecting_host",
            "allow_connections",
            "deny_connections",
            "verify_sender_domain",
            "dnsbl_zones",
            "dnsbl_action",
            "verify_sender_authentication",
            "dmarc_policy",
        ],
    );
    InboundDoc {
        relay_enforcement: t.opt(r, "relay_enforcement", parsed),
        internal_hosts: t.list(r, "internal_hosts", parsed),
        relay_exempt_hosts: t.list(r, "relay_exempt_hosts", parsed),
        authenticated_may_relay: t.opt(r, "authenticated_may_relay", boolean),
        allow_relay_to: t.list(r, "allow_relay_to", parsed),
        deny_relay_to: t.list(r, "deny_relay_to", parsed),
        allow_relay_from: t.list(r, "allow_relay_from", parsed),
        deny_relay_from: t.list(r, "deny_relay_from", parsed),
        deny_senders: t.list(r, "deny_senders", parsed),
        allow_senders: t.list(r, "allow_senders", parsed),
        deny_recipients: t.list(r, "deny_recipients", parsed),
        allow_recipients: t.list(r, "allow_recipients", parsed),
        verify_connecting_host: t.opt(r, "verify_connecting_host", boolean),
        allow_connections: t.list(r, "allow_connections", parsed),
        deny_connections: t.list(r, "deny_connections", parsed),
        verify_sender_domain: t.opt(r, "verify_sender_domain", boolean),
        dnsbl_zones: t.list(r, "dnsbl_zones", checked(domain_name)),
        dnsbl_action: t.opt(r, "dnsbl_action", parsed),
        verify_sender_authentication: t.opt(r, "verify_sender_authentication", boolean),
        dmarc_policy: t.opt(r, "dmarc_policy", parsed),
    }
}

/// `[configuration.outbound]`; `dkim_sign`'s key files are relative to `base_dir`.
fn outbound_doc(r: &mut Report, t: &Table<'_, '_>, base_dir: &Path) -> OutboundDoc {
    t.known(
        r,
        &[
            "deny_to",
            "allow_to",
            "allow_from",
            "deny_from",
            "dkim_sign",
        ],
    );
    OutboundDoc {
        deny_to: t.list(r, "deny_to", parsed),
        allow_to: t.list(r, "allow_to", parsed),
        allow_from: t.list(r, "allow_from", parsed),
        deny_from: t.list(r, "deny_from", parsed),
        dkim_sign: crate::dkim::read_dkim_sign(r, t, base_dir),
    }
}

fn read_rule(r: &mut Report, t: &Table<'_, '_>) -> Option<Rule> {
    t.known(r, &["when", "unless", "match", "action"]);
    let when = t.table(r, "when").map(|w| rule_condition(r, &w));
    let unless = t.table(r, "unless").map(|w| rule_condition(r, &w));
    let combine = t.opt(r, "match", |v| {
        match text(v)?.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(RuleMatch::All),
            "any" => Ok(RuleMatch::Any),
            other => Err(format!("{other:?} is not one of \"all\", \"any\"")),
        }
    });
    let action = t.req(r, "action", parsed)?;
    Some(Rule {
        when: when.unwrap_or_default(),
        combine: combine.unwrap_or_default(),
        unless,
        action,
        line: t.line(r),
    })
}

/// The conditions of a rule's `when` or `unless`.
fn rule_condition(r: &mut Report, w: &Table<'_, '_>) -> RuleCondition {
    w.known(
        r,
        &[
            "subject_contains",
            "sender",
            "recipient",
            "size_over",
            "header",
            "body_contains",
            "attachment_name",
            "recipient_count_over",
        ],
    );
    RuleCondition {
        subject_contains: w.opt(r, "subject_contains", non_empty),
        sender: w.opt(r, "sender", non_empty),
        recipient: w.opt(r, "recipient", non_empty),
        size_over: w.opt(r, "size_over", parsed),
        header: w.opt(r, "header", non_empty),
        body_contains: w.opt(r, "body_contains", non_empty),
        attachment_name: w.opt(r, "attachment_name", non_empty),
        recipient_count_over: w.opt(r, "recipient_count_over", int_in(0, 1_000_000)),
    }
}

fn read_schedule(r: &mut Report, t: &Table<'_, '_>) -> Schedule {
    t.known(r, &["times", "repeat", "days"]);
    let defaults = Schedule::default();
    Schedule {
        times: t.opt(r, "times", parsed).unwrap_or(defaults.times),
        repeat: t
            .opt(r, "repeat", checked(parse_duration))
            .unwrap_or(defaults.repeat),
        days: t.opt(r, "days", parsed).unwrap_or(defaults.days),
    }
}

/// A Notes domain name (`Acme`, `TheInternet`).
fn notes_domain(s: &str) -> Result<String, ValueError> {
    let s = s.trim();
    if s.is_empty() {
        Err(ValueError::new("must not be empty"))
    } else if s.contains(['@', '/', '%']) || s.chars().any(char::is_control) {
        Err(ValueError::new(format!(
            "{s}: a Notes domain name cannot contain '@', '/' or '%'",
            s = shown(s)
        )))
    } else {
        Ok(s.to_owned())
    }
}

/// An argon2 PHC string: `$argon2id$v=19$m=...,t=...,p=...$salt$hash`.
fn password_hash(s: &str) -> Result<String, ValueError> {
    let s = s.trim();
    let mut parts = s.split('$');
    let shaped = parts.next() == Some("")
        && matches!(parts.next(), Some("argon2id" | "argon2i" | "argon2d"))
        && {
            let rest: Vec<&str> = parts.collect();
            let rest = match rest.first() {
                Some(v) if v.starts_with("v=") => &rest[1..],
                _ => &rest[..],
            };
            rest.len() == 3 && rest.iter().all(|p| !p.is_empty()) && rest[0].contains('=')
        };
    if shaped {
        Ok(s.to_owned())
    } else {
        Err(ValueError::new(
            "passwords must be argon2 hashes (use mailhop passwd)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::{NotesName, Size, parse_str};

    const BASE: &str = r#"
[domain]
name = "Acme"

[[server]]
name = "Mail/Acme"
hostname = "mail.acme.com"
"#;

    #[test]
    fn session_limits_are_read_and_merged() {
        let text = format!(
            r#"{BASE}
[[configuration]]
server = "*"
smtp_max_sessions = 20
smtp_command_timeout = "30s"
access_max_sessions = 7

[[configuration]]
server = "Mail/Acme"
smtp_max_sessions_per_host = 3
smtp_data_timeout = "2m"
smtp_session_timeout = "1h30m"
smtp_hard_error_limit = 5
smtp_inflight_message_bytes = "64MB"
access_max_sessions_per_host = 4
"#
        );
        let dir = parse_str(&text, Path::new("acme.toml")).unwrap_or_else(|e| panic!("{e}"));
        let name: NotesName = "Mail/Acme".parse().expect("name");
        let c = dir.config_for(&name);
        assert_eq!((c.smtp_max_sessions, c.smtp_max_sessions_per_host), (20, 3));
        assert_eq!(c.smtp_command_timeout, Duration::from_secs(30));
        assert_eq!(c.smtp_data_timeout, Duration::from_secs(120));
        assert_eq!(c.smtp_session_timeout, Duration::from_secs(5400));
        assert_eq!(c.smtp_hard_error_limit, 5);
        assert_eq!(c.smtp_inflight_message_bytes, Size(64 << 20));
        assert_eq!(
            (c.access_max_sessions, c.access_max_sessions_per_host),
            (7, 4)
        );
    }

    #[test]
    fn bad_session_limits_are_errors() {
        for (line, field) in [
            ("smtp_max_sessions = 0", "smtp_max_sessions"),
            (
                "smtp_max_sessions_per_host = -1",
                "smtp_max_sessions_per_host",
            ),
            ("smtp_command_timeout = \"0s\"", "smtp_command_timeout"),
            ("smtp_data_timeout = \"soon\"", "smtp_data_timeout"),
            ("smtp_session_timeout = 5", "smtp_session_timeout"),
            ("smtp_hard_error_limit = 0", "smtp_hard_error_limit"),
            (
                "smtp_inflight_message_bytes = \"lots\"",
                "smtp_inflight_message_bytes",
            ),
            ("access_max_sessions = 0", "access_max_sessions"),
            (
                "access_max_sessions_per_host = 0",
                "access_max_sessions_per_host",
            ),
        ] {
            let text = format!("{BASE}\n[[configuration]]\nserver = \"*\"\n{line}\n");
            let errors = parse_str(&text, Path::new("acme.toml"))
                .err()
                .unwrap_or_else(|| panic!("{line} accepted"));
            assert!(
                errors.0.iter().any(|e| e.field.ends_with(field)),
                "{line}: {errors}"
            );
        }
    }
}
