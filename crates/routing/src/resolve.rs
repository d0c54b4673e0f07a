//! From a recipient address to the steps the router takes for it.

use std::collections::HashSet;

use directory::{Config, Directory, EntryRef, RelayHosts, ServerDoc};

use crate::address::Address;
use crate::tables::{CostRaises, RoutingTable};

/// What the routing decision is made against: one consistent snapshot.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub dir: &'a Directory,
    pub config: &'a Config,
    pub server: &'a ServerDoc,
    /// The domain's routing table built from `dir` (built on the spot when
    /// `None`).
    pub table: Option<&'a RoutingTable>,
    /// Costs raised by failed hops, and the time they are judged at (Unix ms).
    pub raises: Option<(&'a CostRaises, i64)>,
}

impl<'a> Context<'a> {
    /// A context with no routing table built yet and no raised costs.
    pub fn new(dir: &'a Directory, config: &'a Config, server: &'a ServerDoc) -> Context<'a> {
        Context {
            dir,
            config,
            server,
            table: None,
            raises: None,
        }
    }

    /// The least-cost path from this server to `to` (SPEC §3 step 6).
    pub fn path_to(&self, to: &directory::NotesName) -> Option<crate::PathChoice> {
        let none = CostRaises::default();
        let (raises, now) = self.raises.unwrap_or((&none, 0));
        match self.table {
            Some(t) => t.least_cost(&self.server.name, to, raises, now),
            None => RoutingTable::build(self.dir).least_cost(&self.server.name, to, raises, now),
        }
    }
}

/// A recipient that cannot be delivered, with Domino's words for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    /// RFC 3463 status for the delivery status notification.
    pub status: String,
}

impl Failure {
    pub fn new(status: impl Into<String>, reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            status: status.into(),
        }
    }
}

/// How SMTP finds the next host for an Internet recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpVia {
    /// Through relay hosts (failover levels, load-balanced hosts).
    Relay(RelayHosts),
    /// Directly to the domain's MX hosts.
    Mx(String),
}

/// The route of one final recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Deliver into a mail file on this server.
    Local {
        mail_file: String,
        /// The directory entry's display name, for logs and events.
        owner: String,
        quota: Option<u64>,
    },
    /// Transfer towards another server of the domain (`next_hop` first).
    Server {
        destination: String,
        next_hop: String,
    },
    /// Leave by SMTP from this server. `queue` names the destination queue.
    Smtp {
        queue: String,
        via: SmtpVia,
    },
    Fail(Failure),
}

/// What the router does with one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A group: its members follow as their own steps.
    Expanded {
        members: Vec<String>,
    },
    /// `forward_to`: the target follows as its own step.
    Forwarded {
        to: String,
    },
    /// Already reached through another address of the same message.
    Duplicate {
        of: String,
    },
    Route(Route),
}

/// One address of a message and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub address: String,
    /// The group or forwarding person this address was derived from, as
    /// written in the message or the directory; `None` for an address of
    /// the message itself.
    pub parent: Option<String>,
    pub action: Action,
}

/// The route towards a server of the domain (for `trace SERVER`).
pub fn route_to_server(ctx: Context<'_>, target: &directory::NotesName) -> Route {
    let r = Resolver {
        ctx,
        seen: HashSet::new(),
        targets: Vec::new(),
        steps: Vec::new(),
        parents: Vec::new(),
    };
    if *target == ctx.server.name {
        return Route::Local {
            mail_file: String::new(),
            owner: ctx.server.name.to_string(),
            quota: None,
        };
    }
    r.server_route(target)
}

const GROUP_DEPTH_LIMIT: usize = 32;

/// Resolve every recipient of one message: groups expand (nested, cycles
/// cut), forwards are followed, and each final target is reached once.
pub fn resolve_all(ctx: Context<'_>, recipients: &[String]) -> Vec<Step> {
    let mut r = Resolver {
        ctx,
        seen: HashSet::new(),
        targets: Vec::new(),
        steps: Vec::new(),
        parents: Vec::new(),
    };
    for rcpt in recipients {
        r.visit(rcpt, 0, &mut Vec::new());
    }
    r.steps
}

/// Resolve a single address (its expansion included).
pub fn resolve(ctx: Context<'_>, recipient: &str) -> Vec<Step> {
    resolve_all(ctx, &[recipient.to_owned()])
}

struct Resolver<'a> {
    ctx: Context<'a>,
    /// Addresses already given a step (lower case).
    seen: HashSet<String>,
    /// Final targets already reached: (key, the address that reached it).
    targets: Vec<(String, String)>,
    steps: Vec<Step>,
    /// The groups / forwarding persons being expanded, innermost last.
    parents: Vec<String>,
}

/// How a lookup ended.
enum Found {
    Entry(EntryRef),
    Route(Route),
}

impl Resolver<'_> {
    fn visit(&mut self, address: &str, depth: usize, chain: &mut Vec<String>) {
        let key = address.trim().to_ascii_lowercase();
        if !self.seen.insert(key.clone()) {
            return;
        }
        if depth > GROUP_DEPTH_LIMIT {
            self.push(address, Action::Route(Route::Fail(Failure::new(
                "5.4.6",
                "Maximum forwarding loop count exceeded.  Message probably in a forwarding loop. Examine Forwarding Address of intended recipient in Domino Directory.",
            ))));
            return;
        }
        let found = match Address::parse(address) {
            Ok(parsed) => crate::postmaster::find(self.ctx, &parsed).map_or_else(
                || self.find(&parsed),
                |p| p.map_or_else(Found::Route, Found::Entry),
            ),
            Err(bad) => Found::Route(Route::Fail(Failure::new("5.1.3", bad.0))),
        };
        let dir = self.ctx.dir;
        match found {
            Found::Route(route) => self.final_route(address, route),
            Found::Entry(EntryRef::Group(i)) => {
                let group = &dir.groups[i];
                let members = group.members.clone();
                self.push(
                    address,
                    Action::Expanded {
                        members: members.clone(),
                    },
                );
                chain.push(key);
                self.parents.push(address.to_owned());
                for m in &members {
                    self.visit(m, depth + 1, chain);
                }
                self.parents.pop();
                chain.pop();
            }
            Found::Entry(EntryRef::Person(i)) => {
                let person = &dir.persons[i];
                match person.forward_to.as_deref().map(str::trim) {
                    Some(to) if !to.is_empty() => {
                        let to_key = to.to_ascii_lowercase();
                        if chain.contains(&to_key) || to_key == key {
                            self.push(address, Action::Route(Route::Fail(Failure::new(
                                "5.4.6",
                                "Maximum forwarding loop count exceeded.  Message probably in a forwarding loop. Examine Forwarding Address of intended recipient in Domino Directory.",
                            ))));
                            return;
                        }
                        self.push(address, Action::Forwarded { to: to.to_owned() });
                        chain.push(key);
                        self.parents.push(address.to_owned());
                        self.visit(to, depth + 1, chain);
                        self.parents.pop();
                        chain.pop();
                    }
                    _ => {
                        let route = self.mail_file_route(
                            &person.mail_server,
                            &person.mail_file,
                            person.full_name.to_string(),
                            person.quota.map(|q| q.0),
                        );
                        self.final_route(address, route);
                    }
                }
            }
            Found::Entry(EntryRef::MailIn(i)) => {
                let m = &dir.mail_ins[i];
                let route = self.mail_file_route(&m.server, &m.mail_file, m.name.clone(), None);
                self.final_route(address, route);
            }
        }
    }

    fn push(&mut self, address: &str, action: Action) {
        self.steps.push(Step {
            address: address.to_owned(),
            parent: self.parents.last().cloned(),
            action,
        });
    }

    /// Record a final route once per target (a mail file, or the address itself).
    fn final_route(&mut self, address: &str, route: Route) {
        let target = match &route {
            Route::Local { mail_file, .. } => {
                Some(format!("file:{}", mail_file.to_ascii_lowercase()))
            }
            _ => None,
        };
        if let Some(t) = target {
            if let Some((_, first)) = self.targets.iter().find(|(k, _)| *k == t) {
                let of = first.clone();
                self.push(address, Action::Duplicate { of });
                return;
            }
            self.targets.push((t, address.to_owned()));
        }
        self.push(address, Action::Route(route));
    }

    fn mail_file_route(
        &self,
        server: &directory::NotesName,
        mail_file: &str,
        owner: String,
        quota: Option<u64>,
    ) -> Route {
        if mail_file.trim().is_empty() {
            return Route::Fail(Failure::new(
                "5.1.1",
                "Recipient's Domino Directory entry does not specify a valid Notes mail file",
            ));
        }
        if *server == self.ctx.server.name {
            return Route::Local {
                mail_file: mail_file.to_owned(),
                owner,
                quota,
            };
        }
        self.server_route(server)
    }

    /// SPEC §3 step 6: within the domain by SMTP instead of natively, when
    /// `smtp_within_local_domain` allows it (mailhop stores every message
    /// as MIME, so `mime-only` is every message), the destination listens
    /// for SMTP, and `smtp_reachable` lets this server reach it: straight
    /// to the destination's SMTP port, not hop by hop.
    fn smtp_within_domain(&self, dest: &ServerDoc) -> Option<Route> {
        use directory::{SmtpReachable, SmtpWithinLocalDomain};
        let Context { config, server, .. } = self.ctx;
        if config.smtp_within_local_domain == SmtpWithinLocalDomain::Disabled {
            return None;
        }
        let addr = dest.listen.smtp?;
        if config.smtp_reachable == SmtpReachable::SameNetwork && !server.shares_network_with(dest)
        {
            return None;
        }
        let literal = match addr.ip() {
            std::net::IpAddr::V4(ip) => format!("[{ip}]:{}", addr.port()),
            std::net::IpAddr::V6(ip) => format!("[IPv6:{ip}]:{}", addr.port()),
        };
        let hosts: RelayHosts = literal.parse().ok()?;
        Some(smtp_route(&dest.name.to_string(), SmtpVia::Relay(hosts)))
    }

    /// SPEC §3 step 6: towards another server of the domain.
    fn server_route(&self, target: &directory::NotesName) -> Route {
        let dir = self.ctx.dir;
        let this = self.ctx.server;
        let Some(dest) = dir.server(target) else {
            return Route::Fail(Failure::new(
                "5.4.4",
                format!(
                    "No route found to server {} from server {}.  Check Server and Connection documents in the Domino Directory.",
                    target, this.name
                ),
            ));
        };
        if let Some(route) = self.smtp_within_domain(dest) {
            return route;
        }
        let hop = self
            .ctx
            .path_to(&dest.name)
            .map(|p| p.next_hop().unwrap_or(&p.to).to_string());
        match hop {
            Some(hop) => Route::Server {
                destination: dest.name.to_string(),
                next_hop: hop,
            },
            None => Route::Fail(Failure::new(
                "5.4.4",
                format!(
                    "No route found to server {} from server {}.  Check Server and Connection documents in the Domino Directory.",
                    dest.name, this.name
                ),
            )),
        }
    }

    fn find(&self, address: &Address) -> Found {
        let Context {
            dir,
            config,
            server,
            ..
        } = self.ctx;
        match address {
            Address::Internet { local, domain } => {
                if dir.is_local_internet_domain(server, domain) {
                    self.lookup_local(local, domain)
                } else {
                    Found::Route(self.internet_route(domain))
                }
            }
            Address::Notes { name, domain } => {
                if let Some(d) = domain
                    && !d.eq_ignore_ascii_case(&dir.domain.name)
                {
                    return Found::Route(self.notes_domain_route(d));
                }
                let _ = config;
                self.pick(dir.by_name(name), name)
            }
        }
    }

    fn lookup_local(&self, local: &str, domain: &str) -> Found {
        use directory::AddressLookup::*;
        let Context { dir, config, .. } = self.ctx;
        let full = format!("{local}@{domain}");
        let by_full = || {
            let hits = dir.by_internet_address(&full);
            if !hits.is_empty() {
                return hits;
            }
            // An alias domain is tried with the primary domain too.
            match &dir.global_domain {
                Some(g) if !domain.eq_ignore_ascii_case(&g.primary_internet_domain) => {
                    dir.by_internet_address(&format!("{local}@{}", g.primary_internet_domain))
                }
                _ => Vec::new(),
            }
        };
        let by_local = || {
            let hits = dir.by_name(local);
            if !hits.is_empty() {
                return hits;
            }
            let spaced = local.replace(['.', '_'], " ");
            if spaced != local {
                dir.by_name(&spaced)
            } else {
                hits
            }
        };
        let hits = match config.address_lookup {
            FullnameOnly => by_full(),
            LocalpartOnly => by_local(),
            FullnameThenLocalpart => {
                let h = by_full();
                if h.is_empty() { by_local() } else { h }
            }
        };
        self.pick(hits, &full)
    }

    fn pick(&self, mut hits: Vec<EntryRef>, shown: &str) -> Found {
        hits.dedup();
        match hits.len() {
            0 => Found::Route(Route::Fail(Failure::new(
                "5.1.1",
                format!("User {shown} not listed in Domino Directory"),
            ))),
            1 => Found::Entry(hits[0]),
            _ => Found::Route(Route::Fail(Failure::new(
                "5.1.4",
                format!(
                    "Recipient user name {shown} not unique.  Several matches found in Domino Directory."
                ),
            ))),
        }
    }

    /// SPEC §3 step 5: a recipient outside the local Internet domains.
    fn internet_route(&self, domain: &str) -> Route {
        let Context {
            dir,
            config,
            server,
            ..
        } = self.ctx;
        let foreign = dir
            .foreign_smtp_domains
            .iter()
            .filter(|f| f.internet_domain.matches(domain))
            .max_by_key(|f| f.internet_domain.specificity());
        if let Some(f) = foreign {
            let conn = dir.connections.iter().find(|c| {
                c.enabled
                    && c.kind == directory::ConnectionType::Smtp
                    && c.destination_domain
                        .eq_ignore_ascii_case(&f.route_to_domain)
            });
            let Some(conn) = conn else {
                return no_route_to_domain(domain, server);
            };
            if conn.source == server.name {
                let via = if !conn.relay_host.is_empty() {
                    SmtpVia::Relay(conn.relay_host.clone())
                } else if !config.relay_host.is_empty() {
                    SmtpVia::Relay(config.relay_host.clone())
                } else {
                    SmtpVia::Mx(domain.to_owned())
                };
                return smtp_route(&f.route_to_domain, via);
            }
            return match dir.server(&conn.source) {
                Some(_) => self.server_route(&conn.source),
                None => no_route_to_domain(domain, server),
            };
        }
        if config.smtp_outside_local_domain {
            let via = if config.relay_host.is_empty() {
                SmtpVia::Mx(domain.to_owned())
            } else {
                SmtpVia::Relay(config.relay_host.clone())
            };
            return smtp_route(domain, via);
        }
        no_route_to_domain(domain, server)
    }

    /// SPEC §3 step 7: another Notes domain, through an adjacent domain document.
    /// A non-adjacent domain is reached through the adjacent domain its
    /// document names (Domino's "Route mail through domain").
    fn notes_domain_route(&self, domain: &str) -> Route {
        let Context { dir, server, .. } = self.ctx;
        let adjacent = |name: &str| {
            dir.adjacent_domains
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case(name))
        };
        if adjacent(domain).is_none()
            && let Some(n) = dir
                .nonadjacent_domains
                .iter()
                .find(|n| n.name.eq_ignore_ascii_case(domain))
        {
            return match adjacent(&n.via_domain) {
                Some(a) if a.via_server == server.name => Route::Fail(Failure::new(
                    "5.4.4",
                    format!(
                        "No route found to domain {domain} from server {} via server {}.  Check Server, Connection and Domain documents in the Domino Directory.",
                        server.name, a.via_server
                    ),
                )),
                Some(a) => self.server_route(&a.via_server),
                None => no_route_to_domain(domain, server),
            };
        }
        match adjacent(domain) {
            Some(a) if a.via_server == server.name => Route::Fail(Failure::new(
                "5.4.4",
                format!(
                    "No route found to domain {domain} from server {}.  Check Server, Connection and Domain documents in the Domino Directory.",
                    server.name
                ),
            )),
            Some(a) => self.server_route(&a.via_server),
            None => no_route_to_domain(domain, server),
        }
    }
}

fn smtp_route(queue: &str, via: SmtpVia) -> Route {
    Route::Smtp {
        queue: queue.to_ascii_lowercase(),
        via,
    }
}

fn no_route_to_domain(domain: &str, server: &ServerDoc) -> Route {
    Route::Fail(Failure::new(
        "5.4.4",
        format!(
            "No route found to domain {domain} from server {}.  Check Server, Connection and Domain documents in the Domino Directory.",
            server.name
        ),
    ))
}
