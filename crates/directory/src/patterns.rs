//! Host, address and domain patterns of the directory: CIDR blocks, the
//! entries of inbound/outbound allow and deny lists, host lists and foreign
//! SMTP domain patterns. Owns syntax, matching and specificity; which list
//! wins a decision is the policy code's business.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::error::{ValueError, shown};

/// Checks an Internet host or domain name (`mail.acme.com`) and returns it in
/// lower case.
pub(crate) fn domain_name(s: &str) -> Result<String, ValueError> {
    let name = s.trim();
    if name.is_empty() {
        return Err(ValueError::new("empty host or domain name"));
    }
    if name.len() > 253 {
        return Err(ValueError::new(format!(
            "name {name} is longer than 253 characters",
            name = shown(name)
        )));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(ValueError::new(format!(
                "{name} has an empty label",
                name = shown(name)
            )));
        }
        if label.len() > 63 {
            return Err(ValueError::new(format!(
                "{name} has a label longer than 63 characters",
                name = shown(name)
            )));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(ValueError::new(format!(
                "{name}: a label cannot start or end with '-'",
                name = shown(name)
            )));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(ValueError::new(format!(
                "{name}: invalid character {c:?} in a host name",
                name = shown(name)
            )));
        }
    }
    Ok(name.to_ascii_lowercase())
}

/// Checks an Internet address `local@domain` and returns it in lower case.
pub(crate) fn internet_address(s: &str) -> Result<String, ValueError> {
    let s = s.trim();
    let Some((local, domain)) = s.rsplit_once('@') else {
        return Err(ValueError::new(format!(
            "{s} is not an Internet address (local@domain)",
            s = shown(s)
        )));
    };
    if local.is_empty()
        || local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '@')
    {
        return Err(ValueError::new(format!(
            "{s}: invalid local part",
            s = shown(s)
        )));
    }
    Ok(format!(
        "{}@{}",
        local.to_ascii_lowercase(),
        domain_name(domain)?
    ))
}

/// The domain of an address (after the last `@`), without a trailing dot.
fn domain_of(address: &str) -> Option<&str> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('.'))
}

/// Does `domain` lie strictly below `parent` (any depth)?
fn is_subdomain(domain: &str, parent: &str) -> bool {
    domain.len() > parent.len()
        && domain
            .get(domain.len() - parent.len()..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(parent))
        && domain.as_bytes().get(domain.len() - parent.len() - 1) == Some(&b'.')
}

/// An IP network: an address and a prefix length (`192.0.2.0/24`,
/// `2001:db8::/32`); a single address is a full-length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network of `addr` with `prefix` bits; `None` when the prefix is too
    /// long for the address family. Host bits are cleared.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let addr = addr.to_canonical();
        let network = match addr {
            IpAddr::V4(v4) if prefix <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::from((u32::from(v4) & mask).to_be_bytes())
            }
            IpAddr::V6(v6) if prefix <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::from((u128::from(v6) & mask).to_be_bytes())
            }
            _ => return None,
        };
        Some(Self { network, prefix })
    }

    pub fn network(self) -> IpAddr {
        self.network
    }

    pub fn prefix(self) -> u8 {
        self.prefix
    }

    /// Is `ip` in this network? IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(self, ip: IpAddr) -> bool {
        Cidr::new(ip, self.prefix).is_some_and(|c| c.network == self.network)
    }

    fn max_prefix(self) -> u8 {
        if self.network.is_ipv4() { 32 } else { 128 }
    }
}

impl FromStr for Cidr {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || {
            ValueError::new(format!(
                "{s} is not an IP address or CIDR block (192.0.2.0/24)",
                s = shown(s)
            ))
        };
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, prefix)) => {
                let prefix = prefix.trim();
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                (ip.trim(), prefix.parse::<u8>().ok())
            }
            None => (s, None),
        };
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let max = if ip.to_canonical().is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None if s.contains('/') => return Err(bad()),
            None => max,
            Some(p) => p,
        };
        Cidr::new(ip, prefix).ok_or_else(|| {
            ValueError::new(format!("{s}: prefix length is at most {max}", s = shown(s)))
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == self.max_prefix() {
            write!(f, "{}", self.network)
        } else {
            write!(f, "{}/{}", self.network, self.prefix)
        }
    }
}

/// One entry of an inbound or outbound allow/deny list (SPEC §2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListEntry {
    /// `user@x.com` (stored lower case).
    Address(String),
    /// `@x.com`: exactly that domain.
    Domain(String),
    /// `*.x.com`: subdomains of x.com at any depth, not x.com itself.
    SubdomainsOf(String),
    /// `%Acme`: a Notes domain.
    NotesDomain(String),
    /// `192.0.2.0/24` or a single IP address.
    Cidr(Cidr),
    /// `*`: everything.
    Any,
}

impl ListEntry {
    /// Does the entry match an address (`user@x.com`, or a Notes address
    /// `Jane Doe/Acme@Acme` for `%Acme`)?
    pub fn matches_address(&self, address: &str) -> bool {
        let domain = domain_of(address);
        match self {
            ListEntry::Address(a) => a.eq_ignore_ascii_case(address.trim()),
            ListEntry::Domain(d) => domain.is_some_and(|x| x.eq_ignore_ascii_case(d)),
            ListEntry::SubdomainsOf(d) => domain.is_some_and(|x| is_subdomain(x, d)),
            ListEntry::NotesDomain(d) => domain.is_some_and(|x| x.eq_ignore_ascii_case(d)),
            ListEntry::Cidr(_) => false,
            ListEntry::Any => true,
        }
    }

    /// Does the entry match a connecting host (its address, and its name when
    /// known)?
    pub fn matches_host(&self, ip: IpAddr, name: Option<&str>) -> bool {
        let name = name.map(|n| n.trim_end_matches('.'));
        match self {
            ListEntry::Cidr(c) => c.contains(ip),
            ListEntry::Domain(d) => name.is_some_and(|n| n.eq_ignore_ascii_case(d)),
            ListEntry::SubdomainsOf(d) => name.is_some_and(|n| is_subdomain(n, d)),
            ListEntry::Any => true,
            ListEntry::Address(_) | ListEntry::NotesDomain(_) => false,
        }
    }

    /// Ranks matching entries: address > `@domain` / `%Notes` > longer
    /// `*.suffix` > longer CIDR prefix > `*`.
    pub fn specificity(&self) -> u32 {
        match self {
            ListEntry::Any => 0,
            ListEntry::Cidr(c) => 1 + u32::from(c.prefix),
            ListEntry::SubdomainsOf(d) => 1_000 + u32::try_from(d.len()).unwrap_or(u32::MAX / 4),
            ListEntry::Domain(_) | ListEntry::NotesDomain(_) => 10_000,
            ListEntry::Address(_) => 20_000,
        }
    }
}

impl FromStr for ListEntry {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "*" {
            Ok(ListEntry::Any)
        } else if let Some(notes) = s.strip_prefix('%') {
            let notes = notes.trim();
            if notes.is_empty() || notes.contains(['@', '/', '%']) {
                return Err(ValueError::new(format!(
                    "{s}: write a Notes domain as %Acme",
                    s = shown(s)
                )));
            }
            Ok(ListEntry::NotesDomain(notes.to_owned()))
        } else if let Some(suffix) = s.strip_prefix("*.") {
            Ok(ListEntry::SubdomainsOf(domain_name(suffix)?))
        } else if let Some(domain) = s.strip_prefix('@') {
            Ok(ListEntry::Domain(domain_name(domain)?))
        } else if s.contains('@') {
            Ok(ListEntry::Address(internet_address(s)?))
        } else if let Ok(cidr) = s.parse::<Cidr>() {
            Ok(ListEntry::Cidr(cidr))
        } else {
            Err(ValueError::new(format!(
                "{s} is not a list entry: write user@x.com, @x.com (the domain), *.x.com \
                 (its subdomains), %NotesDomain, 192.0.2.0/24 or *",
                s = shown(s)
            )))
        }
    }
}

impl fmt::Display for ListEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListEntry::Address(a) => f.write_str(a),
            ListEntry::Domain(d) => write!(f, "@{d}"),
            ListEntry::SubdomainsOf(d) => write!(f, "*.{d}"),
            ListEntry::NotesDomain(d) => write!(f, "%{d}"),
            ListEntry::Cidr(c) => write!(f, "{c}"),
            ListEntry::Any => f.write_str("*"),
        }
    }
}

/// An entry of a host list (`internal_hosts`, `relay_exempt_hosts`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// An IP address or CIDR block.
    Cidr(Cidr),
    /// Exactly this host name (lower case).
    Name(String),
    /// `*.x.com`: hosts below x.com.
    Suffix(String),
    /// `*`: every host.
    Any,
}

impl HostPattern {
    /// Does a connecting host (address, and name when known) match?
    pub fn matches(&self, ip: IpAddr, name: Option<&str>) -> bool {
        let name = name.map(|n| n.trim_end_matches('.'));
        match self {
            HostPattern::Cidr(c) => c.contains(ip),
            HostPattern::Name(n) => name.is_some_and(|x| x.eq_ignore_ascii_case(n)),
            HostPattern::Suffix(s) => name.is_some_and(|x| is_subdomain(x, s)),
            HostPattern::Any => true,
        }
    }

    /// Ranks matching patterns as list entries are ranked: a host name >
    /// longer `*.suffix` > longer CIDR prefix > `*`.
    pub fn specificity(&self) -> u32 {
        match self {
            HostPattern::Any => 0,
            HostPattern::Cidr(c) => 1 + u32::from(c.prefix),
            HostPattern::Suffix(d) => 1_000 + u32::try_from(d.len()).unwrap_or(u32::MAX / 4),
            HostPattern::Name(_) => 10_000,
        }
    }
}

impl FromStr for HostPattern {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "*" {
            Ok(HostPattern::Any)
        } else if let Some(suffix) = s.strip_prefix("*.") {
            Ok(HostPattern::Suffix(domain_name(suffix)?))
        } else if s.contains(['/', ':']) || s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            s.parse().map(HostPattern::Cidr)
        } else {
            Ok(HostPattern::Name(domain_name(s)?))
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Cidr(c) => write!(f, "{c}"),
            HostPattern::Name(n) => f.write_str(n),
            HostPattern::Suffix(s) => write!(f, "*.{s}"),
            HostPattern::Any => f.write_str("*"),
        }
    }
}

/// The Internet domain pattern of a foreign SMTP domain: `*`,
/// `example.com`, `*.example.com` (subdomains only).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainPattern {
    Any,
    Exact(String),
    Subdomains(String),
}

impl DomainPattern {
    pub fn matches(&self, domain: &str) -> bool {
        let domain = domain.trim().trim_end_matches('.');
        match self {
            DomainPattern::Any => true,
            DomainPattern::Exact(d) => domain.eq_ignore_ascii_case(d),
            DomainPattern::Subdomains(d) => is_subdomain(domain, d),
        }
    }

    /// Higher is more specific; among patterns matching one domain the most
    /// specific wins (`a.example.com` > `*.example.com` > `*`).
    pub fn specificity(&self) -> usize {
        let labels = |d: &str| d.split('.').count();
        match self {
            DomainPattern::Any => 0,
            DomainPattern::Exact(d) => 2 * labels(d) + 1,
            DomainPattern::Subdomains(d) => 2 * (labels(d) + 1),
        }
    }
}

impl FromStr for DomainPattern {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "*" {
            Ok(DomainPattern::Any)
        } else if let Some(suffix) = s.strip_prefix("*.") {
            Ok(DomainPattern::Subdomains(domain_name(suffix)?))
        } else {
            Ok(DomainPattern::Exact(domain_name(s)?))
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Any => f.write_str("*"),
            DomainPattern::Exact(d) => f.write_str(d),
            DomainPattern::Subdomains(d) => write!(f, "*.{d}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_blocks() {
        let net: Cidr = "192.0.2.0/24".parse().unwrap();
        assert!(net.contains(ip("192.0.2.200")));
        assert!(!net.contains(ip("192.0.3.1")));
        assert!(net.contains(ip("::ffff:192.0.2.9")));
        assert!(!net.contains(ip("2001:db8::1")));
        let host: Cidr = "10.0.0.1".parse().unwrap();
        assert_eq!(host.prefix(), 32);
        assert_eq!(host.to_string(), "10.0.0.1");
        assert_eq!(
            "192.0.2.77/24".parse::<Cidr>().unwrap().to_string(),
            "192.0.2.0/24"
        );
        assert!(
            "2001:db8::/32"
                .parse::<Cidr>()
                .unwrap()
                .contains(ip("2001:db8:1::5"))
        );
        assert!(
            "0.0.0.0/0"
                .parse::<Cidr>()
                .unwrap()
                .contains(ip("203.0.113.1"))
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/-1",
            "::/129",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn list_entries() {
        let e = |s: &str| s.parse::<ListEntry>().unwrap();
        assert_eq!(e("User@X.com"), ListEntry::Address("user@x.com".into()));
        assert_eq!(e("@X.com"), ListEntry::Domain("x.com".into()));
        assert_eq!(e("*.x.com"), ListEntry::SubdomainsOf("x.com".into()));
        assert_eq!(e("%Acme"), ListEntry::NotesDomain("Acme".into()));
        assert_eq!(e("*"), ListEntry::Any);
        assert!(matches!(e("192.0.2.0/24"), ListEntry::Cidr(_)));
        assert!(e("@x.com").matches_address("a@X.COM"));
        assert!(!e("@x.com").matches_address("a@sub.x.com"));
        assert!(e("*.x.com").matches_address("a@deep.sub.x.com"));
        assert!(!e("*.x.com").matches_address("a@x.com"));
        assert!(!e("*.x.com").matches_address("a@evilx.com"));
        assert!(e("%Acme").matches_address("Jane Doe/Acme@acme"));
        assert!(e("192.0.2.0/24").matches_host(ip("192.0.2.1"), None));
        assert!(e("*.x.com").matches_host(ip("198.51.100.1"), Some("mx.x.com.")));
        assert!(!e("user@x.com").matches_host(ip("198.51.100.1"), Some("x.com")));
        assert!(e("a@x.com").specificity() > e("@x.com").specificity());
        assert!(e("@x.com").specificity() > e("*.b.x.com").specificity());
        assert!(e("*.b.x.com").specificity() > e("*.x.com").specificity());
        assert!(e("*.x.com").specificity() > e("10.0.0.0/8").specificity());
        assert!(e("10.0.0.0/16").specificity() > e("10.0.0.0/8").specificity());
        assert!(e("10.0.0.0/8").specificity() > e("*").specificity());
        for bad in [
            "",
            "x.com",
            "@",
            "@bad..com",
            "a@",
            "@x.com@",
            "%",
            "*.",
            "*x.com",
            "a b@x.com",
        ] {
            assert!(bad.parse::<ListEntry>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn host_patterns() {
        let h = |s: &str| s.parse::<HostPattern>().unwrap();
        assert!(h("127.0.0.0/8").matches(ip("127.0.0.5"), None));
        assert!(h("relay.acme.com").matches(ip("192.0.2.1"), Some("Relay.Acme.com")));
        assert!(h("*.acme.com").matches(ip("192.0.2.1"), Some("a.b.acme.com")));
        assert!(!h("*.acme.com").matches(ip("192.0.2.1"), Some("acme.com")));
        assert!(h("*").matches(ip("::1"), None));
        for bad in ["", "10.0.0.0/40", "10.0.0", "bad host", "a..b"] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn domain_patterns() {
        let d = |s: &str| s.parse::<DomainPattern>().unwrap();
        assert!(d("*").matches("anything.example"));
        assert!(d("Example.com").matches("example.COM."));
        assert!(!d("example.com").matches("a.example.com"));
        assert!(d("*.example.com").matches("a.b.example.com"));
        assert!(!d("*.example.com").matches("example.com"));
        assert!(d("a.example.com").specificity() > d("*.example.com").specificity());
        assert!(d("*.a.example.com").specificity() > d("a.example.com").specificity());
        assert!(d("*.example.com").specificity() > d("*").specificity());
        for bad in ["", "*.", "exa mple.com", "-x.com"] {
            assert!(bad.parse::<DomainPattern>().is_err(), "{bad:?} accepted");
        }
    }

    fn domain() -> impl Strategy<Value = String> {
        proptest::collection::vec("[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", 1..4)
            .prop_map(|l| l.join("."))
    }

    fn cidr() -> impl Strategy<Value = Cidr> {
        prop_oneof![
            (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, p)| Cidr::new(IpAddr::from(a), p).unwrap()),
            (any::<[u8; 16]>(), 0u8..=128)
                .prop_filter("not IPv4-mapped", |(a, _)| IpAddr::from(*a)
                    .to_canonical()
                    .is_ipv6())
                .prop_map(|(a, p)| Cidr::new(IpAddr::from(a), p).unwrap()),
        ]
    }

    fn list_entry() -> impl Strategy<Value = ListEntry> {
        prop_oneof![
            ("[a-z0-9._+-]{1,10}", domain())
                .prop_map(|(l, d)| ListEntry::Address(format!("{l}@{d}"))),
            domain().prop_map(ListEntry::Domain),
            domain().prop_map(ListEntry::SubdomainsOf),
            "[A-Za-z][A-Za-z0-9 ]{0,8}[A-Za-z0-9]".prop_map(ListEntry::NotesDomain),
            cidr().prop_map(ListEntry::Cidr),
            Just(ListEntry::Any),
        ]
    }

    fn host_pattern() -> impl Strategy<Value = HostPattern> {
        prop_oneof![
            cidr().prop_map(HostPattern::Cidr),
            domain()
                .prop_filter("a name, not an address", |d| d.parse::<Cidr>().is_err()
                    && !d.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
                .prop_map(HostPattern::Name),
            domain().prop_map(HostPattern::Suffix),
            Just(HostPattern::Any),
        ]
    }

    fn domain_pattern() -> impl Strategy<Value = DomainPattern> {
        prop_oneof![
            Just(DomainPattern::Any),
            domain().prop_map(DomainPattern::Exact),
            domain().prop_map(DomainPattern::Subdomains),
        ]
    }

    proptest! {
        #[test]
        fn list_entries_round_trip(entry in list_entry()) {
            prop_assert_eq!(entry.to_string().parse::<ListEntry>().unwrap(), entry);
        }

        #[test]
        fn host_patterns_round_trip(pattern in host_pattern()) {
            prop_assert_eq!(pattern.to_string().parse::<HostPattern>().unwrap(), pattern);
        }

        #[test]
        fn domain_patterns_round_trip(pattern in domain_pattern()) {
            prop_assert_eq!(pattern.to_string().parse::<DomainPattern>().unwrap(), pattern);
        }

        #[test]
        fn never_panics(s in "\\PC*", ip in any::<[u8; 16]>()) {
            let ip = IpAddr::from(ip);
            if let Ok(e) = s.parse::<ListEntry>() {
                let _ = e.matches_address(&s);
                let _ = e.matches_host(ip, Some(&s));
            }
            if let Ok(h) = s.parse::<HostPattern>() {
                let _ = h.matches(ip, Some(&s));
            }
            if let Ok(d) = s.parse::<DomainPattern>() {
                let _ = d.matches(&s);
            }
            let _ = s.parse::<Cidr>();
        }
    }
}
