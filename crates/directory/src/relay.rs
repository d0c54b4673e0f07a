//! Relay host lists (SPEC §4): `;` separates preference levels (failover),
//! `,` separates hosts of one level (load balancing). Owns the syntax,
//! including the quirky forms Domino administrators write; resolving and
//! connecting are the transfer crate's.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use crate::error::{ValueError, shown};
use crate::patterns::domain_name;

/// Where a relay host is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RelayTarget {
    /// A host or domain name (lower case): looked up as MX first, then A/AAAA.
    Name(String),
    /// A literal address, used as is.
    Ip(IpAddr),
}

/// One relay host; without a port the configuration's `outbound_smtp_port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelayHost {
    pub host: RelayTarget,
    pub port: Option<u16>,
}

/// Relay hosts in preference levels: every host of `levels[0]` is tried (in
/// random order) before any of `levels[1]`. Empty: no relay host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RelayHosts {
    pub levels: Vec<Vec<RelayHost>>,
}

impl RelayHosts {
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }
}

fn port(text: &str, host: &str) -> Result<u16, ValueError> {
    let text = text.trim();
    match text.parse::<u16>() {
        Ok(p) if p > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(ValueError::new(format!(
            "{host}: bad port {text} (1..65535)",
            host = shown(host),
            text = shown(text)
        ))),
    }
}

fn parse_host(token: &str) -> Result<RelayHost, ValueError> {
    // The documented quirk: an extra '[' before the first address, `[[10.0.0.1],[10.0.0.2]`.
    let token = match token.strip_prefix('[') {
        Some(rest) if rest.starts_with('[') => rest,
        _ => token,
    };
    if let Some(inner) = token.strip_prefix('[') {
        let Some((literal, after)) = inner.split_once(']') else {
            return Err(ValueError::new(format!(
                "{token}: unclosed '['",
                token = shown(token)
            )));
        };
        let literal = literal.trim();
        let ip = match literal.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("ipv6:") => literal
                .get(5..)
                .and_then(|v6| v6.parse::<Ipv6Addr>().ok())
                .map(IpAddr::V6),
            _ => literal.parse::<IpAddr>().ok(),
        }
        .ok_or_else(|| {
            ValueError::new(format!(
                "{token}: {literal} is not an IP address",
                token = shown(token),
                literal = shown(literal)
            ))
        })?;
        let after = after.trim();
        let port = match after.strip_prefix(':') {
            Some(p) => Some(port(p, token)?),
            None if after.is_empty() => None,
            None => {
                return Err(ValueError::new(format!(
                    "{token}: unexpected {after} after ']'",
                    token = shown(token),
                    after = shown(after)
                )));
            }
        };
        return Ok(RelayHost {
            host: RelayTarget::Ip(ip),
            port,
        });
    }
    if token.contains(']') {
        return Err(ValueError::new(format!(
            "{token}: ']' without '['",
            token = shown(token)
        )));
    }
    if let Ok(ip) = token.parse::<IpAddr>() {
        return Ok(RelayHost {
            host: RelayTarget::Ip(ip),
            port: None,
        });
    }
    let (name, port) = match token.split_once(':') {
        Some((name, p)) => (name.trim(), Some(port(p, token)?)),
        None => (token, None),
    };
    let host = match name.parse::<IpAddr>() {
        Ok(ip) => RelayTarget::Ip(ip),
        Err(_) if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
            return Err(ValueError::new(format!(
                "{name} is not an IP address",
                name = shown(name)
            )));
        }
        Err(_) => RelayTarget::Name(
            domain_name(name)
                .map_err(|e| ValueError::new(format!("{token}: {e}", token = shown(token))))?,
        ),
    };
    Ok(RelayHost { host, port })
}

/// The most relay hosts one list may name, over all its levels.
pub const MAX_RELAY_HOSTS: usize = 100;

impl FromStr for RelayHosts {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Ok(RelayHosts::default());
        }
        let hosts = s.split([';', ',']).count();
        if hosts > MAX_RELAY_HOSTS {
            return Err(ValueError::new(format!(
                "too many relay hosts ({hosts}; at most {MAX_RELAY_HOSTS})"
            )));
        }
        let levels = s
            .split(';')
            .map(|level| {
                level
                    .split(',')
                    .map(|token| match token.trim() {
                        "" => Err(ValueError::new(format!(
                            "{}: empty host between separators",
                            shown(s.trim())
                        ))),
                        token => parse_host(token),
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RelayHosts { levels })
    }
}

impl fmt::Display for RelayHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            RelayTarget::Name(n) => f.write_str(n)?,
            RelayTarget::Ip(IpAddr::V4(v4)) => write!(f, "[{v4}]")?,
            RelayTarget::Ip(IpAddr::V6(v6)) => write!(f, "[IPv6:{v6}]")?,
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for RelayHosts {
    /// The canonical form, e.g. `[10.0.0.1]:2525;[10.0.0.2],relay.example.com`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, level) in self.levels.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            for (j, host) in level.iter().enumerate() {
                if j > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{host}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str, port: Option<u16>) -> RelayHost {
        RelayHost {
            host: RelayTarget::Ip(s.parse().unwrap()),
            port,
        }
    }

    fn name(s: &str, port: Option<u16>) -> RelayHost {
        RelayHost {
            host: RelayTarget::Name(s.into()),
            port,
        }
    }

    #[test]
    fn accepted_forms() {
        let cases: Vec<(&str, Vec<Vec<RelayHost>>)> = vec![
            ("", vec![]),
            ("   ", vec![]),
            (
                "relay.example.com",
                vec![vec![name("relay.example.com", None)]],
            ),
            (
                "Relay.Example.com:2525",
                vec![vec![name("relay.example.com", Some(2525))]],
            ),
            ("[10.0.0.1]", vec![vec![ip("10.0.0.1", None)]]),
            ("[10.0.0.1]:2525", vec![vec![ip("10.0.0.1", Some(2525))]]),
            ("[IPv6:2001:db8::1]", vec![vec![ip("2001:db8::1", None)]]),
            (
                "[ipv6:2001:db8::1]:587",
                vec![vec![ip("2001:db8::1", Some(587))]],
            ),
            ("[2001:db8::1]", vec![vec![ip("2001:db8::1", None)]]),
            ("10.0.0.1", vec![vec![ip("10.0.0.1", None)]]),
            ("10.0.0.1:26", vec![vec![ip("10.0.0.1", Some(26))]]),
            (
                "[10.0.0.1];[10.0.0.2]",
                vec![vec![ip("10.0.0.1", None)], vec![ip("10.0.0.2", None)]],
            ),
            (
                "[[10.0.0.1],[10.0.0.2]",
                vec![vec![ip("10.0.0.1", None), ip("10.0.0.2", None)]],
            ),
            (
                "10.0.0.1, 10.0.0.2",
                vec![vec![ip("10.0.0.1", None), ip("10.0.0.2", None)]],
            ),
            (
                " host1 , host2 ; host3 ",
                vec![
                    vec![name("host1", None), name("host2", None)],
                    vec![name("host3", None)],
                ],
            ),
            (
                "[127.0.0.1]:2625;[127.0.0.1]:2626",
                vec![
                    vec![ip("127.0.0.1", Some(2625))],
                    vec![ip("127.0.0.1", Some(2626))],
                ],
            ),
        ];
        for (text, levels) in cases {
            let parsed: RelayHosts = text.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(parsed.levels, levels, "{text:?}");
        }
        assert!("".parse::<RelayHosts>().unwrap().is_empty());
    }

    #[test]
    fn canonical_display() {
        let hosts: RelayHosts = "[10.0.0.1]:2525 ; 10.0.0.2 , Relay.Example.com"
            .parse()
            .unwrap();
        assert_eq!(
            hosts.to_string(),
            "[10.0.0.1]:2525;[10.0.0.2],relay.example.com"
        );
        let v6: RelayHosts = "[IPv6:2001:db8::1]:25".parse().unwrap();
        assert_eq!(v6.to_string(), "[IPv6:2001:db8::1]:25");
    }

    #[test]
    fn rejected_forms() {
        let cases = [
            ("a;;b", "empty host"),
            ("a,", "empty host"),
            (";", "empty host"),
            ("relay:0", "bad port"),
            ("relay:70000", "bad port"),
            ("relay:", "bad port"),
            ("relay:+25", "bad port"),
            ("[10.0.0.1", "unclosed"),
            ("[10.0.0.1]:x", "bad port"),
            ("[10.0.0.1]x", "unexpected"),
            ("[10.0.0.300]", "not an IP address"),
            ("[IPv6:10.0.0.1]", "not an IP address"),
            ("[relay.example.com]", "not an IP address"),
            ("10.0.0.1]", "without '['"),
            ("10.0.0.300", "not an IP address"),
            ("bad host", "invalid character"),
            ("under..dots", "empty label"),
            ("a:b:c", "bad port"),
        ];
        for (text, reason) in cases {
            match text.parse::<RelayHosts>() {
                Ok(v) => panic!("{text:?} accepted as {v:?}"),
                Err(e) => assert!(e.to_string().contains(reason), "{text:?}: {e}"),
            }
        }
    }

    fn relay_host() -> impl Strategy<Value = RelayHost> {
        let target = prop_oneof![
            proptest::collection::vec("[a-z]([a-z0-9-]{0,6}[a-z0-9])?", 1..4)
                .prop_map(|labels| RelayTarget::Name(labels.join("."))),
            any::<[u8; 4]>().prop_map(|a| RelayTarget::Ip(IpAddr::from(a))),
            any::<[u8; 16]>().prop_map(|a| RelayTarget::Ip(IpAddr::from(a))),
        ];
        (target, proptest::option::of(1u16..)).prop_map(|(host, port)| RelayHost { host, port })
    }

    proptest! {
        #[test]
        fn round_trips(levels in proptest::collection::vec(proptest::collection::vec(relay_host(), 1..4), 0..4)) {
            let hosts = RelayHosts { levels };
            let text = hosts.to_string();
            prop_assert_eq!(text.parse::<RelayHosts>().unwrap(), hosts);
        }

        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = s.parse::<RelayHosts>();
        }

        #[test]
        fn never_panics_on_relay_like_text(s in "[\\[\\]:;,. 0-9a-fIPv6]{0,30}") {
            let _ = s.parse::<RelayHosts>();
        }
    }
}
