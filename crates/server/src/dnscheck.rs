//! The DNS questions the inbound controls ask: the client's
//! forward-confirmed host name, whether a DNS blacklist lists it, and
//! whether a sender's domain exists. Asked of `dns_servers` (empty: the
//! system's), each with a deadline.
//!
//! Owns the resolver (rebuilt when `dns_servers` changes). Decides nothing:
//! `routing::inbound` turns the answers into refusals.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::op::{Message, MessageType, OpCode, Query};
use hickory_resolver::proto::rr::{Name, RData, RecordType};

use crate::instance::lock;

/// The longest one check (a name, a blacklist zone, a domain) may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(4);

/// What DNS says of a sender's domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DomainAnswer {
    /// An MX, or an address for the domain itself.
    Exists,
    /// No such domain, or neither MX nor address records (a null MX counts
    /// as existing: the domain is real, it just receives no mail).
    NotFound,
    /// DNS did not answer: the client should try again later.
    Unavailable(String),
}

/// A DNS blacklist's answer about one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Listing {
    NotListed,
    /// Listed, with the zone's TXT reason when it gives one.
    Listed(Option<String>),
    /// The zone did not answer (not a listing: mail is not refused for it).
    Unavailable(String),
}

/// The resolver of the inbound checks.
#[derive(Default)]
pub(crate) struct Dns {
    resolver: Mutex<Option<(Vec<SocketAddr>, Arc<TokioResolver>)>>,
}

impl Dns {
    /// A resolver asking `dns_servers` (empty: the system's), rebuilt when
    /// they change.
    fn resolver(&self, dns_servers: &[SocketAddr]) -> Option<Arc<TokioResolver>> {
        let mut slot = lock(&self.resolver);
        if let Some((servers, r)) = slot.as_ref()
            && servers.as_slice() == dns_servers
        {
            return Some(r.clone());
        }
        let mut builder = transfer::resolver_builder(dns_servers)
            .map_err(|e| tracing::warn!("SMTP Server: no DNS resolver: {e}"))
            .ok()?;
        builder.options_mut().timeout = Duration::from_secs(2);
        builder.options_mut().attempts = 1;
        let r = Arc::new(
            builder
                .build()
                .map_err(|e| tracing::warn!("SMTP Server: no DNS resolver: {e}"))
                .ok()?,
        );
        *slot = Some((dns_servers.to_vec(), r.clone()));
        Some(r)
    }

    /// The client's forward-confirmed reverse DNS name, or `None`.
    pub(crate) async fn client_name(
        &self,
        dns_servers: &[SocketAddr],
        ip: IpAddr,
    ) -> Option<String> {
        let resolver = self.resolver(dns_servers)?;
        tokio::time::timeout(
            LOOKUP_TIMEOUT,
            forward_confirmed(&resolver, dns_servers, ip),
        )
        .await
        .ok()
        .flatten()
    }

    /// Does the blacklist `zone` list `ip`? An address record for the
    /// reversed address means listed; its TXT record is the reason.
    pub(crate) async fn dnsbl(
        &self,
        dns_servers: &[SocketAddr],
        ip: IpAddr,
        zone: &str,
    ) -> Listing {
        let Some(resolver) = self.resolver(dns_servers) else {
            return Listing::Unavailable("no DNS resolver".into());
        };
        let name = routing::inbound::dnsbl_query(ip, zone);
        let asked = tokio::time::timeout(LOOKUP_TIMEOUT, async {
            match resolver.ipv4_lookup(name.as_str()).await {
                Ok(lookup) if lookup.answers().is_empty() => Listing::NotListed,
                Ok(_) => {
                    let reason = match resolver.txt_lookup(name.as_str()).await {
                        Ok(txt) => txt.answers().iter().find_map(|r| match &r.data {
                            RData::TXT(t) => Some(
                                t.txt_data
                                    .iter()
                                    .map(|part| String::from_utf8_lossy(part))
                                    .collect::<String>(),
                            ),
                            _ => None,
                        }),
                        Err(_) => None,
                    };
                    Listing::Listed(reason)
                }
                Err(e) if e.is_nx_domain() || e.is_no_records_found() => Listing::NotListed,
                Err(e) => Listing::Unavailable(e.to_string()),
            }
        })
        .await;
        asked.unwrap_or_else(|_| Listing::Unavailable("timed out".into()))
    }

    /// Does `domain` exist for mail: an MX record, or an address?
    pub(crate) async fn sender_domain(
        &self,
        dns_servers: &[SocketAddr],
        domain: &str,
    ) -> DomainAnswer {
        let domain = domain.trim().trim_end_matches('.');
        if domain.starts_with('[') {
            // An address literal names a host, not a domain DNS could deny.
            return DomainAnswer::Exists;
        }
        let Some(resolver) = self.resolver(dns_servers) else {
            return DomainAnswer::Unavailable("no DNS resolver".into());
        };
        let fqdn = format!("{domain}.");
        let asked = tokio::time::timeout(LOOKUP_TIMEOUT, async {
            match resolver.mx_lookup(fqdn.as_str()).await {
                Ok(lookup)
                    if lookup
                        .answers()
                        .iter()
                        .any(|r| matches!(r.data, RData::MX(_))) =>
                {
                    return DomainAnswer::Exists;
                }
                Ok(_) => {}
                Err(e) if e.is_nx_domain() => return DomainAnswer::NotFound,
                Err(e) if e.is_no_records_found() => {}
                Err(e) => return DomainAnswer::Unavailable(e.to_string()),
            }
            match resolver.lookup_ip(fqdn.as_str()).await {
                Ok(lookup) if lookup.iter().next().is_some() => DomainAnswer::Exists,
                Ok(_) => DomainAnswer::NotFound,
                Err(e) if e.is_nx_domain() || e.is_no_records_found() => DomainAnswer::NotFound,
                Err(e) => DomainAnswer::Unavailable(e.to_string()),
            }
        })
        .await;
        asked.unwrap_or_else(|_| DomainAnswer::Unavailable("timed out".into()))
    }
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
