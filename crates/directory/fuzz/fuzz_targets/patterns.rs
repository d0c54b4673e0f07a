//! The host, address and domain patterns of the directory (`patterns.rs`:
//! CIDR blocks, allow/deny list entries, host lists, foreign SMTP domain
//! patterns) on arbitrary text, and their matching against arbitrary
//! addresses and host names.
//!
//! Input: one byte choosing the parser, then `pattern` and, after the first
//! line feed, the address or host name to match (an IP address when it
//! parses as one).
//!
//! Checked: no panic; what parses prints in a form that parses back to the
//! same value; a pattern matches what it names (a block its network, an
//! address entry its address, a domain pattern its domain and not the
//! parent of its subdomains, `*` everything).

#![no_main]

use std::fmt::Display;
use std::net::IpAddr;
use std::str::FromStr;

use directory::{Cidr, DomainPattern, HostPattern, ListEntry};
use libfuzzer_sys::fuzz_target;

fn round_trip<T>(text: &str) -> Option<T>
where
    T: FromStr + Display + PartialEq + std::fmt::Debug,
    T::Err: Display,
{
    let value: T = text.parse().ok()?;
    let shown = value.to_string();
    let again: T = shown
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} printed as {shown:?}, which fails: {e}"));
    assert_eq!(again, value, "{text:?} printed as {shown:?}");
    Some(value)
}

fuzz_target!(|input: &[u8]| {
    let [which, rest @ ..] = input else {
        return;
    };
    let rest = String::from_utf8_lossy(rest);
    let (pattern, subject) = rest.split_once('\n').unwrap_or((&rest, ""));
    let ip: IpAddr = subject
        .trim()
        .parse()
        .unwrap_or_else(|_| "192.0.2.1".parse().unwrap());
    let name = (!subject.is_empty()).then_some(subject);
    match which % 4 {
        0 => {
            let Some(cidr) = round_trip::<Cidr>(pattern) else {
                return;
            };
            assert!(cidr.contains(cidr.network()), "{cidr} misses its network");
            let _ = cidr.contains(ip);
        }
        1 => {
            let Some(entry) = round_trip::<ListEntry>(pattern) else {
                return;
            };
            let _ = entry.specificity();
            let _ = entry.matches_host(ip, name);
            let matched = entry.matches_address(subject);
            match &entry {
                ListEntry::Any => assert!(matched && entry.matches_host(ip, name)),
                ListEntry::Address(a) => assert!(entry.matches_address(a), "{a}"),
                ListEntry::Domain(d) => {
                    assert!(entry.matches_address(&format!("x@{d}")), "{d}");
                    assert!(!entry.matches_address(&format!("x@y.{d}")), "{d}");
                }
                ListEntry::SubdomainsOf(d) => {
                    assert!(entry.matches_address(&format!("x@y.{d}")), "{d}");
                    assert!(!entry.matches_address(&format!("x@{d}")), "{d}");
                }
                ListEntry::NotesDomain(_) => {}
                ListEntry::Cidr(c) => {
                    assert!(!matched);
                    assert!(entry.matches_host(c.network(), None));
                }
            }
        }
        2 => {
            let Some(host) = round_trip::<HostPattern>(pattern) else {
                return;
            };
            let _ = host.matches(ip, name);
            match &host {
                HostPattern::Any => assert!(host.matches(ip, name)),
                HostPattern::Name(n) => assert!(host.matches(ip, Some(n)), "{n}"),
                HostPattern::Suffix(s) => {
                    assert!(host.matches(ip, Some(&format!("a.{s}"))), "{s}");
                    assert!(!host.matches(ip, Some(s)), "{s}");
                }
                HostPattern::Cidr(c) => assert!(host.matches(c.network(), None)),
            }
        }
        _ => {
            let Some(domain) = round_trip::<DomainPattern>(pattern) else {
                return;
            };
            let _ = domain.specificity();
            let _ = domain.matches(subject);
            match &domain {
                DomainPattern::Any => assert!(domain.matches(subject)),
                DomainPattern::Exact(d) => assert!(domain.matches(d), "{d}"),
                DomainPattern::Subdomains(d) => {
                    assert!(domain.matches(&format!("a.{d}")), "{d}");
                    assert!(!domain.matches(d), "{d}");
                }
            }
        }
    }
});
