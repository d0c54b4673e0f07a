//! The validated directory and its lookups: servers by name, entries by
//! Internet address and by name, local Internet domains, merged
//! configurations. Indexes are built once at load, so every lookup is a hash
//! probe. Owns lookups only; it neither parses nor routes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::{Config, ConfigTarget, ConfigurationDoc, merge};
use crate::docs::{
    AdjacentDomain, ConnectionDoc, DomainDoc, ForeignSmtpDomain, GlobalDomain, Group, MailIn,
    NonAdjacentDomain, Person, ServerDoc,
};
use crate::keywords::LocalPartFrom;
use crate::names::{NotesName, name_key};

/// A directory entry that mail can be addressed to: an index into
/// [`Directory::persons`], [`Directory::groups`] or [`Directory::mail_ins`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryRef {
    Person(usize),
    Group(usize),
    MailIn(usize),
}

/// The documents read from the files, before indexing.
#[derive(Debug, Default)]
pub(crate) struct Documents {
    pub(crate) global_domain: Option<GlobalDomain>,
    pub(crate) servers: Vec<ServerDoc>,
    pub(crate) configurations: Vec<ConfigurationDoc>,
    pub(crate) connections: Vec<ConnectionDoc>,
    pub(crate) foreign_smtp_domains: Vec<ForeignSmtpDomain>,
    pub(crate) adjacent_domains: Vec<AdjacentDomain>,
    pub(crate) nonadjacent_domains: Vec<NonAdjacentDomain>,
    pub(crate) persons: Vec<Person>,
    pub(crate) groups: Vec<Group>,
    pub(crate) mail_ins: Vec<MailIn>,
}

#[derive(Debug, Clone, Default)]
struct Index {
    servers: HashMap<NotesName, usize>,
    by_address: HashMap<String, Vec<EntryRef>>,
    by_name: HashMap<String, Vec<EntryRef>>,
    configs: HashMap<NotesName, Config>,
    default_config: Config,
}

impl Index {
    fn add(map: &mut HashMap<String, Vec<EntryRef>>, key: String, entry: EntryRef) {
        if key.is_empty() {
            return;
        }
        let entries = map.entry(key).or_default();
        if !entries.contains(&entry) {
            entries.push(entry);
        }
    }
}

/// A validated directory (SPEC §2). The documents are public to read; the
/// lookup indexes are built at load, so treat the documents as read-only.
#[derive(Debug, Clone)]
pub struct Directory {
    pub domain: DomainDoc,
    pub global_domain: Option<GlobalDomain>,
    pub servers: Vec<ServerDoc>,
    pub configurations: Vec<ConfigurationDoc>,
    pub connections: Vec<ConnectionDoc>,
    pub foreign_smtp_domains: Vec<ForeignSmtpDomain>,
    pub adjacent_domains: Vec<AdjacentDomain>,
    pub nonadjacent_domains: Vec<NonAdjacentDomain>,
    pub persons: Vec<Person>,
    pub groups: Vec<Group>,
    pub mail_ins: Vec<MailIn>,
    base_dir: PathBuf,
    sources: Vec<(PathBuf, SystemTime)>,
    index: Index,
}

/// The Internet domain of a host name: `mailhub.acme.com` → `acme.com`; a
/// name of one or two labels is its own domain.
fn hostname_domain(hostname: &str) -> &str {
    let hostname = hostname.trim_end_matches('.');
    match hostname.split_once('.') {
        Some((_, rest)) if rest.contains('.') => rest,
        _ => hostname,
    }
}

impl Directory {
    pub(crate) fn assemble(
        domain: DomainDoc,
        docs: Documents,
        base_dir: PathBuf,
        sources: Vec<(PathBuf, SystemTime)>,
    ) -> Self {
        let mut directory = Directory {
            domain,
            global_domain: docs.global_domain,
            servers: docs.servers,
            configurations: docs.configurations,
            connections: docs.connections,
            foreign_smtp_domains: docs.foreign_smtp_domains,
            adjacent_domains: docs.adjacent_domains,
            nonadjacent_domains: docs.nonadjacent_domains,
            persons: docs.persons,
            groups: docs.groups,
            mail_ins: docs.mail_ins,
            base_dir,
            sources,
            index: Index::default(),
        };
        directory.index = directory.build_index();
        directory
    }

    fn build_index(&self) -> Index {
        let mut index = Index::default();
        for (i, server) in self.servers.iter().enumerate() {
            index.servers.entry(server.name.clone()).or_insert(i);
        }
        let mut by_address = HashMap::with_capacity(self.persons.len() + self.groups.len());
        let mut by_name = HashMap::with_capacity(self.persons.len() * 5);
        for (i, person) in self.persons.iter().enumerate() {
            let entry = EntryRef::Person(i);
            let address = self.address_of_person(person, &index.servers);
            if let Some(address) = address {
                Index::add(&mut by_address, address.to_lowercase(), entry);
            }
            let name = &person.full_name;
            Index::add(&mut by_name, name.key().to_owned(), entry);
            Index::add(&mut by_name, name.common_name().to_lowercase(), entry);
            Index::add(&mut by_name, person.short_name.to_lowercase(), entry);
            for alternate in &person.alternate_names {
                Index::add(&mut by_name, name_key(alternate), entry);
            }
            if !person.first_name.is_empty() && !person.last_name.is_empty() {
                let full = format!("{} {}", person.first_name, person.last_name);
                Index::add(&mut by_name, full.to_lowercase(), entry);
            }
        }
        for (i, group) in self.groups.iter().enumerate() {
            let entry = EntryRef::Group(i);
            if let Some(address) = &group.internet_address {
                Index::add(&mut by_address, address.to_lowercase(), entry);
            }
            Index::add(&mut by_name, name_key(&group.name), entry);
        }
        for (i, mail_in) in self.mail_ins.iter().enumerate() {
            let entry = EntryRef::MailIn(i);
            if let Some(address) = &mail_in.internet_address {
                Index::add(&mut by_address, address.to_lowercase(), entry);
            }
            Index::add(&mut by_name, name_key(&mail_in.name), entry);
        }
        index.by_address = by_address;
        index.by_name = by_name;
        let star = self
            .configurations
            .iter()
            .filter(|d| d.server == ConfigTarget::AllServers)
            .take(1);
        index.default_config = merge(star);
        for server in &self.servers {
            let docs = self.configuration_docs_for(&server.name).map(|(_, d)| d);
            index.configs.insert(server.name.clone(), merge(docs));
        }
        index
    }

    /// The folder of the directory file (or the directory folder itself):
    /// relative paths in the directory resolve against it.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// The files read (and, for a folder, the folder itself) with their
    /// modification time at load, for polling for changes. Empty for a
    /// directory parsed from a string.
    pub fn sources(&self) -> &[(PathBuf, SystemTime)] {
        &self.sources
    }

    /// The configuration documents that apply to `server`, in merge order:
    /// `server = "*"` first, then the server's own, with their indexes.
    pub fn configuration_docs_for<'a>(
        &'a self,
        server: &'a NotesName,
    ) -> impl Iterator<Item = (usize, &'a ConfigurationDoc)> + 'a {
        let find = move |wanted: fn(&ConfigTarget, &NotesName) -> bool| {
            self.configurations
                .iter()
                .enumerate()
                .find(move |(_, d)| wanted(&d.server, server))
        };
        find(|t, _| *t == ConfigTarget::AllServers)
            .into_iter()
            .chain(find(|t, s| matches!(t, ConfigTarget::Server(n) if n == s)))
    }

    /// The complete configuration of a server: SPEC §2 defaults, overridden
    /// field by field by `server = "*"`, then by the server's own document.
    pub fn config_for(&self, server: &NotesName) -> Config {
        self.index
            .configs
            .get(server)
            .unwrap_or(&self.index.default_config)
            .clone()
    }

    pub fn server(&self, name: &NotesName) -> Option<&ServerDoc> {
        self.index
            .servers
            .get(name)
            .and_then(|&i| self.servers.get(i))
    }

    /// A server by name as a user writes it (`Mail/Acme`, `CN=Mail/O=Acme`).
    pub fn server_by_str(&self, name: &str) -> Option<&ServerDoc> {
        self.server(&name.parse().ok()?)
    }

    /// The entries whose Internet address is `address` (case-insensitive).
    /// A person without an `internet_address` is found at the address
    /// [`Directory::internet_address_of_person`] gives. More than one entry
    /// means the address is ambiguous.
    pub fn by_internet_address(&self, address: &str) -> Vec<EntryRef> {
        self.index
            .by_address
            .get(&address.trim().to_lowercase())
            .cloned()
            .unwrap_or_default()
    }

    /// The entries a name designates, case-insensitively: persons by short
    /// name, common name, full name (abbreviated or canonical), alternate
    /// names and "first last"; groups and mail-ins by name. Several entries:
    /// the name is ambiguous.
    pub fn by_name(&self, name: &str) -> Vec<EntryRef> {
        self.index
            .by_name
            .get(&name_key(name))
            .cloned()
            .unwrap_or_default()
    }

    /// SPEC §3 step 2: is `domain` a local Internet domain for this server?
    /// The primary or an alias of `[global_domain]`; without one, the domain
    /// of the server's hostname or a host in it.
    pub fn is_local_internet_domain(&self, this_server: &ServerDoc, domain: &str) -> bool {
        self.primary_domain_for(this_server, domain).is_some()
    }

    /// The primary local Internet domain for a local `domain` (an alias →
    /// the primary; `mailhost3.acme.com` → `acme.com` without a global
    /// domain); `None` when `domain` is not local.
    pub fn primary_domain_for<'a>(
        &'a self,
        this_server: &'a ServerDoc,
        domain: &str,
    ) -> Option<&'a str> {
        let domain = domain.trim().trim_end_matches('.');
        match &self.global_domain {
            Some(global) => {
                let primary = global.primary_internet_domain.as_str();
                (primary.eq_ignore_ascii_case(domain)
                    || global
                        .alias_internet_domains
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(domain)))
                .then_some(primary)
            }
            None => {
                let local = hostname_domain(&this_server.hostname);
                let below = domain.len() > local.len()
                    && domain
                        .get(domain.len() - local.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(local))
                    && domain.as_bytes().get(domain.len() - local.len() - 1) == Some(&b'.');
                (domain.eq_ignore_ascii_case(local) || below).then_some(local)
            }
        }
    }

    /// Where a server mail rule's `move-to:TARGET` sends a message: the
    /// recipient to route for the mail-in database or person whose mail file
    /// is TARGET (case-insensitive, `.nsf` and `\\` or `/` alike), or whose
    /// name or Internet address TARGET is. `None` when TARGET names none of
    /// them, or more than one.
    pub fn move_target(&self, target: &str) -> Option<String> {
        let file_key = |f: &str| {
            let f = f.trim().replace('\\', "/").to_lowercase();
            f.strip_suffix(".nsf").map(str::to_owned).unwrap_or(f)
        };
        let wanted = file_key(target);
        let mut owners = self
            .mail_ins
            .iter()
            .filter(|m| file_key(&m.mail_file) == wanted)
            .map(|m| m.internet_address.clone().unwrap_or_else(|| m.name.clone()))
            .chain(
                self.persons
                    .iter()
                    .filter(|p| file_key(&p.mail_file) == wanted)
                    .filter_map(|p| self.internet_address_of_person(p)),
            );
        if let Some(first) = owners.next() {
            return owners.next().is_none().then_some(first);
        }
        let named = if target.contains('@') {
            self.by_internet_address(target)
        } else {
            self.by_name(target)
        };
        match named.as_slice() {
            [EntryRef::Person(_) | EntryRef::MailIn(_)] => Some(target.trim().to_owned()),
            _ => None,
        }
    }

    /// A person's Internet address: `internet_address` when given, otherwise
    /// made per `local_part_from` (short name, or the common name with spaces
    /// as dots; `internet-address` falls back to the short name) in lower case
    /// at the primary Internet domain, or without a global domain at the
    /// domain of the person's mail server's hostname.
    pub fn internet_address_of_person(&self, person: &Person) -> Option<String> {
        self.address_of_person(person, &self.index.servers)
    }

    fn address_of_person(
        &self,
        person: &Person,
        servers: &HashMap<NotesName, usize>,
    ) -> Option<String> {
        if let Some(address) = &person.internet_address {
            return Some(address.clone());
        }
        let mode = self
            .global_domain
            .as_ref()
            .map_or_else(LocalPartFrom::default, |g| g.local_part_from);
        let common = || {
            person
                .full_name
                .common_name()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(".")
        };
        let local = match mode {
            LocalPartFrom::CommonName => common(),
            LocalPartFrom::ShortName | LocalPartFrom::InternetAddress
                if !person.short_name.is_empty() =>
            {
                person
                    .short_name
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(".")
            }
            LocalPartFrom::ShortName | LocalPartFrom::InternetAddress => common(),
        };
        let domain = match &self.global_domain {
            Some(global) => global.primary_internet_domain.as_str(),
            None => {
                let server = servers
                    .get(&person.mail_server)
                    .and_then(|&i| self.servers.get(i))?;
                hostname_domain(&server.hostname)
            }
        };
        Some(format!("{}@{domain}", local.to_lowercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::hostname_domain;

    #[test]
    fn hostname_domains() {
        assert_eq!(hostname_domain("mailhub.acme.com"), "acme.com");
        assert_eq!(hostname_domain("a.b.acme.com."), "b.acme.com");
        assert_eq!(hostname_domain("acme.com"), "acme.com");
        assert_eq!(hostname_domain("localhost"), "localhost");
    }
}
