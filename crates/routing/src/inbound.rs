//! SMTP inbound controls (SPEC §2 `[configuration.inbound]`): pure
//! decisions about one client, sender or recipient, taken from the merged
//! configuration and what the listener learnt about the client (its
//! address, its forward-confirmed name, whether it authenticated).
//!
//! Owns the order of the checks and the words of the refusals. Does no DNS
//! and no I/O: the server asks DNS first and passes the answers in.

use std::net::IpAddr;

use directory::{HostPattern, Inbound, ListEntry, RelayEnforcement};

use crate::policy::list_verdict;

/// What the listener knows about the client when it asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client<'a> {
    pub ip: IpAddr,
    /// The forward-confirmed reverse DNS name, when it was looked up and found.
    pub name: Option<&'a str>,
    /// The client logged in with AUTH (or is a server of the domain).
    pub authenticated: bool,
}

/// Which control refused: one `show stat` counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Control {
    /// `deny_connections` / `allow_connections`.
    ConnectionDenied,
    /// `verify_connecting_host`: no forward-confirmed name.
    HostNotVerified,
    /// `deny_senders` / `allow_senders`.
    SenderDenied,
    /// `verify_sender_domain`: the domain has no MX and no address.
    SenderDomainUnknown,
    /// A DNS blacklist lists the client.
    Dnsbl,
    /// `deny_recipients` / `allow_recipients`.
    RecipientDenied,
    /// The relay controls.
    Relay,
}

/// A refusal: the reply code, enhanced status and text, and which control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub control: Control,
    pub code: u16,
    pub status: (u8, u16, u16),
    pub text: String,
}

impl Refusal {
    fn new(control: Control, code: u16, status: (u8, u16, u16), text: String) -> Refusal {
        Refusal {
            control,
            code,
            status,
            text,
        }
    }
}

/// Hosts that are never "external": `internal_hosts` when enforcement is
/// `external`, and `relay_exempt_hosts` always. The DNS checks of a
/// connection (`verify_connecting_host`, DNS blacklists) skip them too.
pub fn is_trusted_host(inbound: &Inbound, client: &Client<'_>) -> bool {
    let in_hosts = |list: &[HostPattern]| list.iter().any(|h| h.matches(client.ip, client.name));
    (inbound.relay_enforcement == RelayEnforcement::External && in_hosts(&inbound.internal_hosts))
        || in_hosts(&inbound.relay_exempt_hosts)
}

/// Does any list of the connection controls, or a list the relay and DNS
/// checks read, need the client's host name (not only its address)?
pub fn needs_client_name(inbound: &Inbound) -> bool {
    let named = |h: &HostPattern| matches!(h, HostPattern::Name(_) | HostPattern::Suffix(_));
    let named_entry =
        |e: &ListEntry| matches!(e, ListEntry::Domain(_) | ListEntry::SubdomainsOf(_));
    inbound.verify_connecting_host
        || [
            &inbound.internal_hosts,
            &inbound.relay_exempt_hosts,
            &inbound.allow_connections,
            &inbound.deny_connections,
        ]
        .iter()
        .any(|l| l.iter().any(named))
        || [&inbound.allow_relay_from, &inbound.deny_relay_from]
            .iter()
            .any(|l| l.iter().any(named_entry))
}

/// The connection controls, at connect: `deny_connections` /
/// `allow_connections` (the most specific matching entry wins, deny on a
/// tie; a non-empty allow list admits only what it matches), then
/// `verify_connecting_host` (trusted hosts are not asked).
pub fn connection_refusal(inbound: &Inbound, client: &Client<'_>) -> Option<Refusal> {
    let best = |list: &[HostPattern]| {
        list.iter()
            .filter(|h| h.matches(client.ip, client.name))
            .map(HostPattern::specificity)
            .max()
    };
    let denied = match (
        best(&inbound.allow_connections),
        best(&inbound.deny_connections),
    ) {
        (Some(a), Some(d)) => a <= d,
        (None, Some(_)) => true,
        (Some(_), None) => false,
        (None, None) => !inbound.allow_connections.is_empty(),
    };
    if denied {
        return Some(Refusal::new(
            Control::ConnectionDenied,
            554,
            (5, 7, 1),
            format!(
                "Connection from {} refused for policy reasons",
                host_words(client)
            ),
        ));
    }
    if inbound.verify_connecting_host && client.name.is_none() && !is_trusted_host(inbound, client)
    {
        return Some(Refusal::new(
            Control::HostNotVerified,
            554,
            (5, 7, 1),
            format!(
                "Connection from [{}] refused: its host name cannot be verified in DNS",
                client.ip
            ),
        ));
    }
    None
}

/// `name [ip]`, or `[ip]` without a name.
fn host_words(client: &Client<'_>) -> String {
    match client.name {
        Some(n) => format!("{n} [{}]", client.ip),
        None => format!("[{}]", client.ip),
    }
}

/// The inbound sender controls, at MAIL FROM, for a client that did not
/// authenticate: `deny_senders` / `allow_senders` (most specific entry
/// wins, deny on a tie; a non-empty allow list admits only what it
/// matches). The null sender `<>` (delivery reports) has no address to
/// list: only `*` in `deny_senders` refuses it.
pub fn sender_refusal(inbound: &Inbound, client: &Client<'_>, from: &str) -> Option<Refusal> {
    if client.authenticated {
        return None;
    }
    let from = from.trim();
    let refused = if from.is_empty() {
        inbound.deny_senders.contains(&ListEntry::Any)
            && !inbound.allow_senders.contains(&ListEntry::Any)
    } else {
        match list_verdict(&inbound.allow_senders, &inbound.deny_senders, |e| {
            e.matches_address(from)
        }) {
            Some(allowed) => !allowed,
            None => !inbound.allow_senders.is_empty(),
        }
    };
    refused.then(|| {
        Refusal::new(
            Control::SenderDenied,
            550,
            (5, 7, 1),
            format!("Mail from <{from}> refused for policy reasons"),
        )
    })
}

/// The inbound intended-recipient controls, at RCPT, for a client that did
/// not authenticate: `deny_recipients` / `allow_recipients`, which apply to
/// local recipients too. Domino's words.
pub fn recipient_refusal(inbound: &Inbound, client: &Client<'_>, rcpt: &str) -> Option<Refusal> {
    if client.authenticated {
        return None;
    }
    let refused = match list_verdict(&inbound.allow_recipients, &inbound.deny_recipients, |e| {
        e.matches_address(rcpt)
    }) {
        Some(allowed) => !allowed,
        None => !inbound.allow_recipients.is_empty(),
    };
    refused.then(|| {
        Refusal::new(
            Control::RecipientDenied,
            550,
            (5, 7, 1),
            "Not authorized to send mail to this user or group".to_owned(),
        )
    })
}

/// SPEC §2's relay decision for a recipient outside the local Internet
/// domains:
///  1. allowed if `relay_enforcement = "none"`, or the client is not checked
///     (`external` and it is in `internal_hosts`), or it is in
///     `relay_exempt_hosts`;
///  2. allowed if the client authenticated and `authenticated_may_relay`;
///  3. otherwise allowed only if the client matches `allow_relay_from` or the
///     destination matches `allow_relay_to`, and no deny list vetoes it (the
///     most specific entry of each pair of lists decides; deny on a tie).
pub fn relay_allowed(inbound: &Inbound, client: &Client<'_>, rcpt: &str) -> bool {
    let in_hosts = |list: &[HostPattern]| list.iter().any(|h| h.matches(client.ip, client.name));
    let checked = match inbound.relay_enforcement {
        RelayEnforcement::None => false,
        RelayEnforcement::All => true,
        RelayEnforcement::External => !in_hosts(&inbound.internal_hosts),
    };
    if !checked || in_hosts(&inbound.relay_exempt_hosts) {
        return true;
    }
    if client.authenticated && inbound.authenticated_may_relay {
        return true;
    }
    let from = list_verdict(&inbound.allow_relay_from, &inbound.deny_relay_from, |e| {
        e.matches_host(client.ip, client.name)
    });
    let to = list_verdict(&inbound.allow_relay_to, &inbound.deny_relay_to, |e| {
        e.matches_address(rcpt)
    });
    (from == Some(true) || to == Some(true)) && from != Some(false) && to != Some(false)
}

/// The refusal of a relay that is not allowed.
pub fn relay_refusal() -> Refusal {
    Refusal::new(Control::Relay, 550, (5, 7, 1), "Relaying denied".to_owned())
}

/// `verify_sender_domain`: the refusal of a sender whose domain DNS says
/// does not exist (no MX, no A/AAAA).
pub fn sender_domain_refusal(from: &str) -> Refusal {
    let domain = from.rsplit_once('@').map_or(from, |(_, d)| d);
    Refusal::new(
        Control::SenderDomainUnknown,
        553,
        (5, 1, 8),
        format!("Sender address <{from}> rejected: domain {domain} not found in DNS"),
    )
}

/// The refusal of a client a DNS blacklist lists, with the zone's reason.
pub fn dnsbl_refusal(ip: IpAddr, zone: &str, reason: Option<&str>) -> Refusal {
    let reason = reason
        .map(|r| format!(": {}", clean_reason(r)))
        .unwrap_or_default();
    Refusal::new(
        Control::Dnsbl,
        550,
        (5, 7, 1),
        format!("Your host [{ip}] is listed by {zone}{reason}"),
    )
}

/// A blacklist's TXT reason as it may go into a reply line: printable
/// ASCII only, at most 200 characters.
pub fn clean_reason(reason: &str) -> String {
    reason
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(200)
        .collect()
}

/// The name a DNS blacklist is asked for `ip` in `zone`: the address's
/// octets (IPv4) or nibbles (IPv6) reversed, then the zone.
pub fn dnsbl_query(ip: IpAddr, zone: &str) -> String {
    let zone = zone.trim_end_matches('.');
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.{zone}.")
        }
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(64 + zone.len());
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            out.push_str(zone);
            out.push('.');
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbound(toml_lines: &str) -> Inbound {
        let text = format!(
            r#"
[domain]
name = "Acme"
[global_domain]
primary_internet_domain = "acme.com"
[[server]]
name = "SMTP/Acme"
hostname = "smtp.acme.com"
[[configuration]]
server = "*"
[configuration.inbound]
{toml_lines}
"#
        );
        let dir = directory::parse_str(&text, std::path::Path::new("d.toml"))
            .unwrap_or_else(|e| panic!("test directory: {e}"));
        let server = dir.servers[0].name.clone();
        dir.config_for(&server).inbound.clone()
    }

    fn client(ip: &str, name: Option<&'static str>, authenticated: bool) -> Client<'static> {
        Client {
            ip: ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}")),
            name,
            authenticated,
        }
    }

    const EXTERNAL: &str = "192.0.2.9";

    #[test]
    fn connections_most_specific_entry_wins_and_deny_wins_ties() {
        // Each row: the lists, the client (address, name), refused?
        let rows: &[(&str, &str, Option<&'static str>, bool)] = &[
            ("", EXTERNAL, None, false),
            (r#"deny_connections = ["*"]"#, EXTERNAL, None, true),
            (
                r#"deny_connections = ["192.0.2.0/24"]"#,
                EXTERNAL,
                None,
                true,
            ),
            (
                r#"deny_connections = ["192.0.2.0/24"]"#,
                "198.51.100.1",
                None,
                false,
            ),
            (
                r#"deny_connections = ["192.0.2.0/24"]
allow_connections = ["192.0.2.9"]"#,
                EXTERNAL,
                None,
                false,
            ),
            (
                r#"deny_connections = ["192.0.2.9"]
allow_connections = ["192.0.2.9"]"#,
                EXTERNAL,
                None,
                true,
            ),
            (
                r#"allow_connections = ["10.0.0.0/8"]"#,
                EXTERNAL,
                None,
                true,
            ),
            (
                r#"allow_connections = ["10.0.0.0/8"]"#,
                "10.1.2.3",
                None,
                false,
            ),
            (
                r#"deny_connections = ["*.bad.example"]"#,
                EXTERNAL,
                Some("mx.bad.example"),
                true,
            ),
            (
                r#"deny_connections = ["*.bad.example"]"#,
                EXTERNAL,
                Some("bad.example"),
                false,
            ),
            (
                r#"deny_connections = ["*.bad.example"]
allow_connections = ["good.bad.example"]"#,
                EXTERNAL,
                Some("good.bad.example"),
                false,
            ),
            // A name pattern cannot match a client whose name is unknown.
            (
                r#"deny_connections = ["*.bad.example"]"#,
                EXTERNAL,
                None,
                false,
            ),
        ];
        for (lines, ip, name, refused) in rows {
            let got = connection_refusal(&inbound(lines), &client(ip, *name, false));
            assert_eq!(got.is_some(), *refused, "{lines} / {ip} {name:?}: {got:?}");
            if let Some(r) = got {
                assert_eq!((r.code, r.status), (554, (5, 7, 1)));
                assert_eq!(r.control, Control::ConnectionDenied);
            }
        }
    }

    #[test]
    fn verify_connecting_host_refuses_a_client_without_a_name_unless_trusted() {
        let i = inbound(
            r#"verify_connecting_host = true
internal_hosts = ["10.0.0.0/8"]
relay_exempt_hosts = ["172.16.0.1"]"#,
        );
        let r = connection_refusal(&i, &client(EXTERNAL, None, false)).expect("refused");
        assert_eq!(r.control, Control::HostNotVerified);
        assert!(r.text.contains("[192.0.2.9]"), "{}", r.text);
        assert_eq!(
            connection_refusal(&i, &client(EXTERNAL, Some("mx.example.org"), false)),
            None
        );
        assert_eq!(
            connection_refusal(&i, &client("10.9.9.9", None, false)),
            None
        );
        assert_eq!(
            connection_refusal(&i, &client("172.16.0.1", None, false)),
            None
        );
    }

    #[test]
    fn senders_allow_and_deny() {
        // Each row: the lists, the sender, refused?
        let rows: &[(&str, &str, bool)] = &[
            ("", "a@x.com", false),
            (r#"deny_senders = ["spam@x.com"]"#, "spam@x.com", true),
            (r#"deny_senders = ["spam@x.com"]"#, "SPAM@X.COM", true),
            (r#"deny_senders = ["spam@x.com"]"#, "ham@x.com", false),
            (r#"deny_senders = ["@x.com"]"#, "ham@x.com", true),
            (r#"deny_senders = ["@x.com"]"#, "ham@sub.x.com", false),
            (r#"deny_senders = ["*.x.com"]"#, "ham@sub.x.com", true),
            (r#"deny_senders = ["*.x.com"]"#, "ham@x.com", false),
            (
                r#"deny_senders = ["@x.com"]
allow_senders = ["boss@x.com"]"#,
                "boss@x.com",
                false,
            ),
            (
                r#"deny_senders = ["boss@x.com"]
allow_senders = ["@x.com"]"#,
                "boss@x.com",
                true,
            ),
            (
                r#"deny_senders = ["@x.com"]
allow_senders = ["@x.com"]"#,
                "a@x.com",
                true,
            ),
            (
                r#"allow_senders = ["@partner.example"]"#,
                "a@partner.example",
                false,
            ),
            (
                r#"allow_senders = ["@partner.example"]"#,
                "a@other.example",
                true,
            ),
            (r#"deny_senders = ["*"]"#, "a@x.com", true),
            (
                r#"deny_senders = ["*"]
allow_senders = ["@x.com"]"#,
                "a@x.com",
                false,
            ),
            // The null sender: only `*` in deny_senders refuses it.
            (r#"allow_senders = ["@partner.example"]"#, "", false),
            (r#"deny_senders = ["@x.com"]"#, "", false),
            (r#"deny_senders = ["*"]"#, "", true),
        ];
        for (lines, from, refused) in rows {
            let got = sender_refusal(&inbound(lines), &client(EXTERNAL, None, false), from);
            assert_eq!(got.is_some(), *refused, "{lines} / <{from}>: {got:?}");
        }
        // An authenticated client is not subject to sender controls.
        let i = inbound(r#"deny_senders = ["*"]"#);
        assert_eq!(
            sender_refusal(&i, &client(EXTERNAL, None, true), "a@x.com"),
            None
        );
        let r = sender_refusal(&i, &client(EXTERNAL, None, false), "a@x.com").expect("refused");
        assert_eq!(
            (r.code, r.status, r.control),
            (550, (5, 7, 1), Control::SenderDenied)
        );
    }

    #[test]
    fn recipients_allow_and_deny_local_ones_too() {
        let rows: &[(&str, &str, bool)] = &[
            ("", "ceo@acme.com", false),
            (
                r#"deny_recipients = ["ceo@acme.com"]"#,
                "ceo@acme.com",
                true,
            ),
            (
                r#"deny_recipients = ["ceo@acme.com"]"#,
                "CEO@Acme.com",
                true,
            ),
            (
                r#"deny_recipients = ["ceo@acme.com"]"#,
                "jane@acme.com",
                false,
            ),
            (
                r#"allow_recipients = ["@acme.com"]"#,
                "jane@acme.com",
                false,
            ),
            (
                r#"allow_recipients = ["@acme.com"]"#,
                "jane@sub.acme.com",
                true,
            ),
            (
                r#"allow_recipients = ["@acme.com"]
deny_recipients = ["ceo@acme.com"]"#,
                "ceo@acme.com",
                true,
            ),
            (r#"deny_recipients = ["%Acme"]"#, "Jane Doe/Acme@Acme", true),
        ];
        for (lines, rcpt, refused) in rows {
            let got = recipient_refusal(&inbound(lines), &client(EXTERNAL, None, false), rcpt);
            assert_eq!(got.is_some(), *refused, "{lines} / <{rcpt}>: {got:?}");
            if let Some(r) = got {
                assert_eq!(r.text, "Not authorized to send mail to this user or group");
            }
        }
        let i = inbound(r#"deny_recipients = ["*"]"#);
        assert_eq!(
            recipient_refusal(&i, &client(EXTERNAL, None, true), "a@acme.com"),
            None
        );
    }

    /// SPEC §2's relay decision, line by line.
    #[test]
    fn relay_decision_follows_the_spec_line_by_line() {
        let to = "u@example.org";
        // Each row: the settings, the client (address, name, authenticated), allowed?
        let rows: &[(&str, &str, Option<&'static str>, bool, bool)] = &[
            // Nothing allows it.
            ("", EXTERNAL, None, false, false),
            // 1. enforcement "none": everyone relays.
            (r#"relay_enforcement = "none""#, EXTERNAL, None, false, true),
            // 1. "external" and the client is internal: not checked.
            (
                r#"internal_hosts = ["192.0.2.0/24"]"#,
                EXTERNAL,
                None,
                false,
                true,
            ),
            // ... but with "all", internal hosts are checked too.
            (
                r#"relay_enforcement = "all"
internal_hosts = ["192.0.2.0/24"]"#,
                EXTERNAL,
                None,
                false,
                false,
            ),
            // 1. relay_exempt_hosts are never checked, whatever the enforcement.
            (
                r#"relay_enforcement = "all"
relay_exempt_hosts = ["192.0.2.9"]
deny_relay_from = ["*"]"#,
                EXTERNAL,
                None,
                false,
                true,
            ),
            // 2. authenticated, and authenticated_may_relay (the default):
            //    exempt from the lists.
            (r#"deny_relay_to = ["*"]"#, EXTERNAL, None, true, true),
            (
                r#"authenticated_may_relay = false
deny_relay_to = ["*"]"#,
                EXTERNAL,
                None,
                true,
                false,
            ),
            (
                r#"authenticated_may_relay = false"#,
                EXTERNAL,
                None,
                true,
                false,
            ),
            // 3. allow_relay_from by address, by name, by suffix.
            (
                r#"allow_relay_from = ["192.0.2.0/24"]"#,
                EXTERNAL,
                None,
                false,
                true,
            ),
            (
                r#"allow_relay_from = ["@mx.partner.example"]"#,
                EXTERNAL,
                Some("mx.partner.example"),
                false,
                true,
            ),
            (
                r#"allow_relay_from = ["*.partner.example"]"#,
                EXTERNAL,
                Some("mx.partner.example"),
                false,
                true,
            ),
            (
                r#"allow_relay_from = ["*.partner.example"]"#,
                EXTERNAL,
                None,
                false,
                false,
            ),
            // 3. allow_relay_to the destination.
            (
                r#"allow_relay_to = ["@example.org"]"#,
                EXTERNAL,
                None,
                false,
                true,
            ),
            (
                r#"allow_relay_to = ["*.example.org"]"#,
                EXTERNAL,
                None,
                false,
                false,
            ),
            (r#"allow_relay_to = ["*"]"#, EXTERNAL, None, false, true),
            // 3. a deny list vetoes an allow of the other pair.
            (
                r#"allow_relay_from = ["192.0.2.0/24"]
deny_relay_to = ["@example.org"]"#,
                EXTERNAL,
                None,
                false,
                false,
            ),
            (
                r#"allow_relay_to = ["@example.org"]
deny_relay_from = ["*"]"#,
                EXTERNAL,
                None,
                false,
                false,
            ),
            // Within a pair, the most specific entry wins; deny on a tie.
            (
                r#"allow_relay_from = ["192.0.2.9"]
deny_relay_from = ["192.0.2.0/24"]"#,
                EXTERNAL,
                None,
                false,
                true,
            ),
            (
                r#"allow_relay_from = ["192.0.2.0/24"]
deny_relay_from = ["192.0.2.9"]"#,
                EXTERNAL,
                None,
                false,
                false,
            ),
            (
                r#"allow_relay_to = ["@example.org"]
deny_relay_to = ["@example.org"]"#,
                EXTERNAL,
                None,
                false,
                false,
            ),
            (
                r#"allow_relay_to = ["u@example.org"]
deny_relay_to = ["*"]"#,
                EXTERNAL,
                None,
                false,
                true,
            ),
            // Seed 002's gateway: relays for no one.
            (
                r#"deny_relay_to = ["*"]
deny_relay_from = ["*"]"#,
                "127.0.0.1",
                None,
                false,
                false,
            ),
        ];
        for (lines, ip, name, auth, allowed) in rows {
            let got = relay_allowed(&inbound(lines), &client(ip, *name, *auth), to);
            assert_eq!(got, *allowed, "{lines} / {ip} {name:?} auth={auth}");
        }
    }

    #[test]
    fn dnsbl_names_are_reversed_addresses() {
        assert_eq!(
            dnsbl_query("192.0.2.9".parse().expect("ip"), "bl.example"),
            "9.2.0.192.bl.example."
        );
        assert_eq!(
            dnsbl_query("::ffff:127.0.0.2".parse().expect("ip"), "bl.example."),
            "2.0.0.127.bl.example."
        );
        let v6 = dnsbl_query("2001:db8::1".parse().expect("ip"), "bl.example");
        assert!(v6.starts_with("1.0.0.0.0.0.0.0."), "{v6}");
        assert!(v6.ends_with(".8.b.d.0.1.0.0.2.bl.example."), "{v6}");
        assert_eq!(
            clean_reason("listed\r\nX-Injected: 1"),
            "listed??X-Injected: 1"
        );
    }

    #[test]
    fn names_are_needed_only_for_name_patterns() {
        assert!(!needs_client_name(&inbound(
            r#"deny_connections = ["192.0.2.0/24"]"#
        )));
        assert!(needs_client_name(&inbound(
            r#"deny_connections = ["*.bad.example"]"#
        )));
        assert!(needs_client_name(&inbound("verify_connecting_host = true")));
        assert!(needs_client_name(&inbound(
            r#"allow_relay_from = ["@mx.x.com"]"#
        )));
    }
}
