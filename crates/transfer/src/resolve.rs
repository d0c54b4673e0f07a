//! Turns a destination into the hosts to try and each host into addresses:
//! relay levels, MX by preference, implicit MX, null MX, A/AAAA, or a local
//! hosts file. Sends no SMTP; ordering for load balancing is the caller's.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData};
use hickory_resolver::{Resolver, TokioResolver};
use rand::seq::SliceRandom;

use crate::config::{Resolution, TransferConfig};
use crate::error::{PlanError, TransferError};
use crate::hosts::HostsFile;
use crate::outcome::{Destination, Target};
use directory::{RelayHost, RelayTarget};

/// A resolver asking `dns_servers` (UDP and TCP, each on its own port, no
/// hosts file), or the system's servers when the list is empty; the caller
/// sets its timeouts and builds it.
pub fn resolver_builder(
    dns_servers: &[SocketAddr],
) -> Result<hickory_resolver::ResolverBuilder<TokioRuntimeProvider>, NetError> {
    if dns_servers.is_empty() {
        return TokioResolver::builder_tokio();
    }
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
    Ok(builder)
}

/// The longest a single DNS query may take, whatever the connect timeout.
const MAX_DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a name gave no address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The name does not exist or has no address (NXDOMAIN, no data).
    NotFound,
    /// DNS could not answer (timeout, SERVFAIL, refused, no server).
    Unavailable(String),
}

/// A name that gave no address, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unresolved {
    pub(crate) host: String,
    pub(crate) failure: Failure,
}

impl Unresolved {
    /// The reason an administrator reads.
    pub(crate) fn reason(&self) -> String {
        match &self.failure {
            Failure::NotFound => format!("Unable to find an address for host {}", self.host),
            Failure::Unavailable(_) => PlanError::DnsUnavailable.to_string(),
        }
    }
}

/// One step of a level: an address to try, or a host that gave none.
pub(crate) type Hop = Result<Target, Unresolved>;

/// A host of a level, not yet resolved (resolution waits until it is tried).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Candidate {
    /// A bracketed literal: used as is.
    Literal(Target),
    /// A relay host name: MX first, falling back to A/AAAA.
    Relay { name: String, port: u16 },
    /// A mail exchanger (or an implicit MX): A/AAAA only.
    Exchanger { name: String, port: u16 },
}

impl Candidate {
    /// The host as the administrator wrote it or DNS named it.
    pub(crate) fn label(&self) -> &str {
        match self {
            Self::Literal(target) => &target.host,
            Self::Relay { name, .. } | Self::Exchanger { name, .. } => name,
        }
    }
}

/// What an MX query said.
enum MxAnswer {
    /// `(preference, exchanger)` pairs, null MX entries left out.
    Exchangers(Vec<(u16, String)>),
    /// RFC 7505: the domain accepts no mail.
    Null,
    /// The name exists but has no MX: use its own addresses (implicit MX).
    None,
}

/// Where names are looked up.
pub(crate) enum Lookup {
    Dns(Box<TokioResolver>),
    Hosts(HostsFile),
}

impl Lookup {
    pub(crate) fn new(cfg: &TransferConfig) -> Result<Self, TransferError> {
        match &cfg.host_name_resolution {
            Resolution::Hosts(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| TransferError::HostsFile {
                        path: path.clone(),
                        source,
                    })?;
                Ok(Self::Hosts(HostsFile::parse(&text)))
            }
            Resolution::Dns => {
                let timeout = cfg.connect_timeout.min(MAX_DNS_TIMEOUT);
                let resolver_error = |e: NetError| TransferError::Resolver(e.to_string());
                let mut builder = resolver_builder(&cfg.dns_servers).map_err(resolver_error)?;
                builder.options_mut().timeout = timeout;
                let resolver = builder.build().map_err(resolver_error)?;
                Ok(Self::Dns(Box::new(resolver)))
            }
        }
    }

    /// The levels of hosts for a destination, in configured / preference order.
    pub(crate) async fn levels(
        &self,
        dest: &Destination,
        outbound_port: u16,
    ) -> Result<Vec<Vec<Candidate>>, PlanError> {
        match dest {
            Destination::Relay(relays) => {
                let levels: Vec<Vec<Candidate>> = relays
                    .levels
                    .iter()
                    .filter(|level| !level.is_empty())
                    .map(|level| {
                        level
                            .iter()
                            .map(|host| relay_candidate(host, outbound_port))
                            .collect()
                    })
                    .collect();
                if levels.is_empty() {
                    return Err(PlanError::NoRelayHost);
                }
                Ok(levels)
            }
            Destination::Mx(domain) => {
                let no_route = || PlanError::NoRoute(domain.clone());
                match self.mx(domain).await {
                    Ok(MxAnswer::Exchangers(mut exchangers)) => {
                        exchangers.sort_by_key(|(preference, _)| *preference);
                        let mut levels: Vec<Vec<Candidate>> = Vec::new();
                        let mut last = None;
                        for (preference, name) in exchangers {
                            let candidate = Candidate::Exchanger {
                                name,
                                port: outbound_port,
                            };
                            match levels.last_mut() {
                                Some(level) if last == Some(preference) => level.push(candidate),
                                _ => levels.push(vec![candidate]),
                            }
                            last = Some(preference);
                        }
                        Ok(levels)
                    }
                    Ok(MxAnswer::None) => Ok(vec![vec![Candidate::Exchanger {
                        name: domain.clone(),
                        port: outbound_port,
                    }]]),
                    Ok(MxAnswer::Null) | Err(Failure::NotFound) => Err(no_route()),
                    Err(Failure::Unavailable(why)) => {
                        tracing::debug!(target: "transfer", "MX lookup of {domain} failed: {why}");
                        Err(PlanError::DnsUnavailable)
                    }
                }
            }
        }
    }

    /// The addresses to try for one host, in order.
    pub(crate) async fn expand(&self, candidate: &Candidate) -> Vec<Hop> {
        match candidate {
            Candidate::Literal(target) => vec![Ok(target.clone())],
            Candidate::Exchanger { name, port } => self.hops(name, *port).await,
            Candidate::Relay { name, port } => match self.mx(name).await {
                Ok(MxAnswer::Exchangers(mut exchangers)) => {
                    // Random among equal preferences, then by preference.
                    exchangers.shuffle(&mut rand::rng());
                    exchangers.sort_by_key(|(preference, _)| *preference);
                    let mut hops = Vec::new();
                    for (_, exchanger) in &exchangers {
                        hops.extend(self.hops(exchanger, *port).await);
                    }
                    hops
                }
                Ok(MxAnswer::None | MxAnswer::Null) => self.hops(name, *port).await,
                Err(failure) => vec![Err(Unresolved {
                    host: name.clone(),
                    failure,
                })],
            },
        }
    }

    async fn hops(&self, name: &str, port: u16) -> Vec<Hop> {
        match self.addresses(name).await {
            Ok(addrs) => addrs
                .into_iter()
                .map(|ip| {
                    Ok(Target {
                        host: name.to_owned(),
                        addr: SocketAddr::new(ip, port),
                    })
                })
                .collect(),
            Err(failure) => vec![Err(Unresolved {
                host: name.to_owned(),
                failure,
            })],
        }
    }

    async fn mx(&self, name: &str) -> Result<MxAnswer, Failure> {
        let Self::Dns(resolver) = self else {
            return Ok(MxAnswer::None);
        };
        let fqdn = fqdn(name).ok_or(Failure::NotFound)?;
        match resolver.mx_lookup(fqdn).await {
            Ok(lookup) => {
                let mut null = false;
                let exchangers: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::MX(mx) if mx.exchange.is_root() => {
                            null = true;
                            None
                        }
                        RData::MX(mx) => Some((
                            mx.preference,
                            mx.exchange.to_ascii().trim_end_matches('.').to_owned(),
                        )),
                        _ => None,
                    })
                    .collect();
                Ok(match (exchangers.is_empty(), null) {
                    (false, _) => MxAnswer::Exchangers(exchangers),
                    (true, true) => MxAnswer::Null,
                    (true, false) => MxAnswer::None,
                })
            }
            Err(e) if e.is_nx_domain() => Err(Failure::NotFound),
            Err(e) if e.is_no_records_found() => Ok(MxAnswer::None),
            Err(e) => Err(Failure::Unavailable(e.to_string())),
        }
    }

    async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, Failure> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let addrs = match self {
            Self::Hosts(hosts) => hosts.lookup(name).to_vec(),
            Self::Dns(resolver) => {
                let fqdn = fqdn(name).ok_or(Failure::NotFound)?;
                match resolver.lookup_ip(fqdn).await {
                    Ok(lookup) => lookup.iter().collect(),
                    Err(e) if e.is_nx_domain() || e.is_no_records_found() => Vec::new(),
                    Err(e) => return Err(Failure::Unavailable(e.to_string())),
                }
            }
        };
        if addrs.is_empty() {
            Err(Failure::NotFound)
        } else {
            Ok(addrs)
        }
    }
}

/// A relay host as the directory gave it, with `outbound_port` filled in.
fn relay_candidate(host: &RelayHost, outbound_port: u16) -> Candidate {
    let port = host.port.unwrap_or(outbound_port);
    match &host.host {
        RelayTarget::Name(name) => Candidate::Relay {
            name: name.clone(),
            port,
        },
        RelayTarget::Ip(ip) => Candidate::Literal(Target {
            // The directory's canonical literal form, without the port.
            host: RelayHost {
                host: host.host.clone(),
                port: None,
            }
            .to_string(),
            addr: SocketAddr::new(*ip, port),
        }),
    }
}

/// A name as an absolute DNS name (no search list), IDNs in punycode.
fn fqdn(name: &str) -> Option<Name> {
    let mut name = Name::from_utf8(name.trim_end_matches('.')).ok()?;
    name.set_fqdn(true);
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_relays_keep_brackets_and_ports() {
        let v4 = RelayHost {
            host: RelayTarget::Ip("10.0.0.1".parse().unwrap()),
            port: Some(2525),
        };
        let v6 = RelayHost {
            host: RelayTarget::Ip("::1".parse().unwrap()),
            port: None,
        };
        assert_eq!(
            relay_candidate(&v4, 25),
            Candidate::Literal(Target {
                host: "[10.0.0.1]".into(),
                addr: "10.0.0.1:2525".parse().unwrap()
            })
        );
        assert_eq!(relay_candidate(&v6, 25).label(), "[IPv6:::1]");
    }

    #[test]
    fn names_become_absolute() {
        assert_eq!(
            fqdn("mx.example.com").unwrap().to_ascii(),
            "mx.example.com."
        );
        assert_eq!(
            fqdn("mx.example.com.").unwrap().to_ascii(),
            "mx.example.com."
        );
        assert!(fqdn("bad name..x").is_none());
    }
}
