//! `config_for` merges SPEC §2 defaults, then `server = "*"`, then the
//! server's own document, field by field (inbound/outbound subtables too).

use std::path::Path;
use std::time::Duration;

use directory::*;

const DIRECTORY: &str = r#"
[domain]
name = "Acme"

[[server]]
name = "Mail/Acme"
hostname = "mail.acme.com"

[[server]]
name = "SMTP/Acme"
hostname = "smtp.acme.com"

[[server]]
name = "Hub/Acme"
hostname = "hub.acme.com"

# the server's own document comes first in the file: order does not matter
[[configuration]]
server = "SMTP/Acme"
smtp_outside_local_domain = true
relay_host = "relay1.example.net, relay2.example.net; [192.0.2.10]:2525"
transfer_threads = 20
mailboxes = 4
journal_to = "archive@acme.com"

[configuration.inbound]
deny_relay_to = ["*"]
allow_relay_from = ["192.0.2.0/24", "@partner.example"]

[configuration.outbound]
deny_to = ["@competitor.example"]

[[configuration.rule]]
when = { size_over = "10MB", sender = "boss@acme.com" }
action = "copy-to:audit@acme.com"

[[configuration.rule]]
action = "journal"

[[configuration]]
server = "*"
max_message_size = "10MB"
mailboxes = 2
initial_retry = "5m"
low_priority_window = "22:00-05:00"
host_name_resolution = "hosts"
dns_servers = ["127.0.0.1:5353"]

[configuration.inbound]
relay_enforcement = "all"
internal_hosts = ["127.0.0.0/8", "*.lan.acme.com"]
deny_relay_to = ["@example.org"]

[configuration.outbound]
allow_from = ["@acme.com"]

[[configuration.rule]]
when = { subject_contains = "viagra" }
action = "drop"
"#;

fn directory() -> Directory {
    parse_str(DIRECTORY, Path::new("acme.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn name(s: &str) -> NotesName {
    s.parse().unwrap()
}

#[test]
fn star_overrides_defaults() {
    let hub = directory().config_for(&name("Hub/Acme"));
    assert_eq!(hub.max_message_size, Size(10 << 20));
    assert_eq!(hub.mailboxes, 2);
    assert_eq!(hub.initial_retry, Duration::from_secs(300));
    assert_eq!(hub.low_priority_window.to_string(), "22:00-05:00");
    assert_eq!(hub.host_name_resolution, HostNameResolution::Hosts);
    assert_eq!(hub.dns_servers, ["127.0.0.1:5353".parse().unwrap()]);
    // not given anywhere: SPEC defaults
    assert_eq!(hub.retry_cap, Duration::from_secs(4 * 3600));
    assert_eq!(hub.outbound_smtp_port, 25);
    assert_eq!(hub.max_hop_count, 40);
    assert_eq!(hub.address_lookup, AddressLookup::FullnameThenLocalpart);
    assert_eq!(hub.transfer_threads, 8);
    assert_eq!(hub.max_concurrent_transfers, 4);
    assert_eq!(hub.inbound.relay_enforcement, RelayEnforcement::All);
    assert_eq!(hub.inbound.internal_hosts.len(), 2);
    assert_eq!(hub.rules.len(), 1);
    assert_eq!(hub.rules[0].action, RuleAction::Drop);
    assert_eq!(
        hub.rules[0].when.subject_contains.as_deref(),
        Some("viagra")
    );
}

#[test]
fn server_document_overrides_star_field_by_field() {
    let smtp = directory().config_for(&name("CN=SMTP/O=Acme"));
    // own fields
    assert!(smtp.smtp_outside_local_domain);
    assert_eq!(smtp.mailboxes, 4);
    assert_eq!(smtp.transfer_threads, 20);
    assert_eq!(
        smtp.max_concurrent_transfers, 10,
        "half of transfer_threads when not given"
    );
    assert_eq!(smtp.relay_host.levels.len(), 2);
    assert_eq!(smtp.relay_host.levels[0].len(), 2);
    assert_eq!(
        smtp.relay_host.to_string(),
        "relay1.example.net,relay2.example.net;[192.0.2.10]:2525"
    );
    // inherited from "*"
    assert_eq!(smtp.max_message_size, Size(10 << 20));
    assert_eq!(smtp.initial_retry, Duration::from_secs(300));
    // inbound: own deny_relay_to replaces the star's, the rest is inherited
    assert_eq!(smtp.inbound.deny_relay_to, [ListEntry::Any]);
    assert_eq!(smtp.inbound.relay_enforcement, RelayEnforcement::All);
    assert_eq!(
        smtp.inbound.internal_hosts,
        directory()
            .config_for(&name("Hub/Acme"))
            .inbound
            .internal_hosts
    );
    assert_eq!(smtp.inbound.allow_relay_from.len(), 2);
    assert!(smtp.inbound.authenticated_may_relay);
    // outbound: field by field as well
    assert_eq!(
        smtp.outbound.deny_to,
        [ListEntry::Domain("competitor.example".into())]
    );
    assert_eq!(
        smtp.outbound.allow_from,
        [ListEntry::Domain("acme.com".into())]
    );
    // rules given by the server replace the star's
    assert_eq!(smtp.rules.len(), 2);
    assert_eq!(
        smtp.rules[0].action,
        RuleAction::CopyTo("audit@acme.com".into())
    );
    assert_eq!(smtp.rules[0].when.size_over, Some(Size(10 << 20)));
    assert_eq!(smtp.rules[1].action, RuleAction::Journal);
    assert_eq!(smtp.rules[1].when, RuleCondition::default());
    assert_eq!(smtp.journal_to, "archive@acme.com");
}

#[test]
fn documents_keep_what_was_written() {
    let d = directory();
    let smtp_doc = &d.configurations[0];
    assert_eq!(smtp_doc.server, ConfigTarget::Server(name("SMTP/Acme")));
    assert_eq!(smtp_doc.mailboxes, Some(4));
    assert_eq!(smtp_doc.max_message_size, None);
    assert_eq!(smtp_doc.inbound.relay_enforcement, None);
    assert_eq!(smtp_doc.line, 18);
    let order: Vec<usize> = d
        .configuration_docs_for(&name("SMTP/Acme"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(order, [1, 0], "star first, then the server's own");
    let hub: Vec<usize> = d
        .configuration_docs_for(&name("Hub/Acme"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hub, [1]);
}

#[test]
fn without_configuration_documents_everything_is_default() {
    let d = parse_str(
        "[domain]\nname = \"Acme\"\n[[server]]\nname = \"Mail/Acme\"\nhostname = \"mail.acme.com\"\n",
        Path::new("min.toml"),
    )
    .unwrap();
    assert_eq!(d.config_for(&name("Mail/Acme")), Config::default());
    assert_eq!(d.config_for(&name("Unknown/Acme")), Config::default());
}
