//! The example directory of SPEC §1 (seed 002's two-server design) loads and
//! means what it says.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use directory::*;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn acme() -> Directory {
    load(&data("acme.toml")).unwrap_or_else(|e| panic!("acme.toml:\n{e}"))
}

fn name(s: &str) -> NotesName {
    s.parse().unwrap()
}

#[test]
fn the_shared_example_loads_too() {
    // The copy in tests/data is kept equal to shared/examples/acme.toml.
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/examples/acme.toml");
    if let Ok(text) = std::fs::read_to_string(&shared) {
        parse_str(&text, &shared).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            text,
            std::fs::read_to_string(data("acme.toml")).unwrap(),
            "tests/data/acme.toml is stale"
        );
    }
}

#[test]
fn documents() {
    let d = acme();
    assert_eq!(d.domain.name, "Acme");
    let global = d.global_domain.as_ref().unwrap();
    assert_eq!(global.primary_internet_domain, "acme.com");
    assert_eq!(global.alias_internet_domains, ["acme.nl"]);
    assert_eq!(global.local_part_from, LocalPartFrom::InternetAddress);
    assert_eq!(d.servers.len(), 2);
    assert_eq!(d.persons.len(), 2);
    assert_eq!(d.groups.len(), 1);
    assert_eq!(d.connections.len(), 1);
    assert_eq!(d.foreign_smtp_domains.len(), 1);
    assert_eq!(d.configurations.len(), 2);
    assert_eq!(d.base_dir(), data(""));
    assert_eq!(d.sources().len(), 1);
    assert_eq!(d.sources()[0].0, data("acme.toml"));
}

#[test]
fn servers() {
    let d = acme();
    let mail = d.server(&name("CN=Mail/O=Acme")).unwrap();
    assert_eq!(mail.hostname, "mail.acme.com");
    assert_eq!(mail.smtp_auth, SmtpAuth::Required);
    assert_eq!(mail.internet_auth, InternetAuth::FewerNames);
    assert_eq!(mail.data, data("data/mail"));
    assert_eq!(
        mail.listen.smtp,
        Some("127.0.0.1:2525".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(
        mail.listen.http,
        Some("127.0.0.1:8025".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(mail.listen.smtps, None);
    assert_eq!(mail.administrators, [name("Admin/Acme")]);
    assert_eq!(mail.debug, DebugSettings::default());
    assert_eq!(mail.debug.log_mail_routing, 20);
    assert_eq!(mail.line, 15);
    let smtp = d.server_by_str("smtp/acme").unwrap();
    assert_eq!(smtp.smtp_auth, SmtpAuth::Off);
    assert_eq!(smtp.internet_auth, InternetAuth::FewerNames);
    assert!(mail.shares_network_with(smtp));
    assert!(d.server_by_str("Hub/Acme").is_none());
    assert!(d.server_by_str("").is_none());
}

#[test]
fn configurations_merge() {
    let d = acme();
    let mail = d.config_for(&name("Mail/Acme"));
    assert!(!mail.smtp_outside_local_domain);
    assert!(mail.relay_host.is_empty());
    assert_eq!(mail.inbound, Inbound::default());
    let smtp = d.config_for(&name("SMTP/Acme"));
    assert!(smtp.smtp_outside_local_domain);
    assert_eq!(
        smtp.relay_host.to_string(),
        "[127.0.0.1]:2625;[127.0.0.1]:2626"
    );
    assert_eq!(smtp.relay_host.levels.len(), 2);
    assert_eq!(smtp.inbound.relay_enforcement, RelayEnforcement::All);
    assert_eq!(smtp.inbound.deny_relay_to, [ListEntry::Any]);
    assert_eq!(smtp.inbound.deny_relay_from, [ListEntry::Any]);
    assert!(smtp.inbound.authenticated_may_relay, "not given: default");
    assert_eq!(smtp.max_hop_count, 40);
    assert_eq!(smtp.expire_after, Duration::from_secs(86_400));
}

#[test]
fn internet_routing_documents() {
    let d = acme();
    let foreign = &d.foreign_smtp_domains[0];
    assert_eq!(foreign.internet_domain, DomainPattern::Any);
    assert_eq!(foreign.route_to_domain, "TheInternet");
    let c = &d.connections[0];
    assert_eq!(c.kind, ConnectionType::Smtp);
    assert_eq!(c.source, name("SMTP/Acme"));
    assert_eq!(c.destination.to_string(), "all_internet_hosts");
    assert_eq!(c.destination_domain, "TheInternet");
    assert_eq!((c.cost, c.route_at_once_if, c.enabled), (1, 5, true));
    assert_eq!(c.schedule, Schedule::default());
}

#[test]
fn lookups() {
    let d = acme();
    let jane = d.by_internet_address("Jane.Doe@ACME.com");
    assert_eq!(jane, [EntryRef::Person(1)]);
    assert_eq!(d.by_name("jdoe"), jane);
    assert_eq!(d.by_name("Jane Doe"), jane);
    assert_eq!(d.by_name("Jane Doe/Acme"), jane);
    assert_eq!(d.by_name("CN=Jane Doe/O=Acme"), jane);
    assert_eq!(
        d.by_internet_address("sales@acme.com"),
        [EntryRef::Group(0)]
    );
    assert_eq!(d.by_name("sales"), [EntryRef::Group(0)]);
    assert!(d.by_internet_address("nobody@acme.com").is_empty());
    let mail = d.server_by_str("Mail/Acme").unwrap();
    assert!(d.is_local_internet_domain(mail, "ACME.com"));
    assert!(d.is_local_internet_domain(mail, "acme.nl"));
    assert!(
        !d.is_local_internet_domain(mail, "mailhost3.acme.com"),
        "global domain: primary and aliases only"
    );
    assert!(!d.is_local_internet_domain(mail, "example.com"));
    assert_eq!(d.primary_domain_for(mail, "acme.nl"), Some("acme.com"));
    let person = &d.persons[1];
    assert_eq!(person.quota, Some(Size(100 << 20)));
    assert_eq!(
        d.internet_address_of_person(person).as_deref(),
        Some("jane.doe@acme.com")
    );
}
