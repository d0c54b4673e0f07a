//! Name and address lookups (SPEC §3): case-insensitive, abbreviated =
//! canonical, ambiguity visible, local Internet domains with and without a
//! global domain, Internet addresses made from names.

use std::path::Path;

use directory::*;

const DIRECTORY: &str = r#"
[domain]
name = "Acme"

[[server]]
name = "Mail/Sales/Acme"
hostname = "mailhub.acme.com"

[[person]]
full_name = "CN=Jane Doe/OU=Sales/O=Acme"
first_name = "Jane"
last_name = "Doe"
short_name = "jdoe"
alternate_names = ["Janie", "CN=J Doe/O=Acme"]
mail_server = "Mail/Sales/Acme"
mail_file = "mail/jdoe"

[[person]]
full_name = "Jane Doe/Support/Acme"
first_name = "Jane"
last_name = "Doe"
short_name = "jdoe2"
internet_address = "Jane.Doe2@Acme.com"
mail_server = "CN=Mail/OU=Sales/O=Acme"

[[person]]
full_name = "John Smith/Acme"
mail_server = "Mail/Sales/Acme"

[[group]]
name = "Sales"
members = ["Jane Doe/Sales/Acme", "ops@partner.example"]
internet_address = "sales@acme.com"

[[mail_in]]
name = "Support"
internet_address = "support@acme.com"
server = "Mail/Sales/Acme"
mail_file = "mail/support"

[[mail_in]]
name = "JDoe"
server = "Mail/Sales/Acme"
mail_file = "mail/jdoe-shared"
"#;

fn directory(extra: &str) -> Directory {
    parse_str(&format!("{DIRECTORY}{extra}"), Path::new("acme.toml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn names_in_every_form() {
    let d = directory("");
    let jane = [EntryRef::Person(0)];
    for form in [
        "CN=Jane Doe/OU=Sales/O=Acme",
        "Jane Doe/Sales/Acme",
        "jane doe/sales/acme",
        "cn=JANE DOE/ou=sales/o=acme",
        "Janie",
        "J Doe/Acme",
        "CN=J Doe/O=Acme",
    ] {
        assert_eq!(d.by_name(form), jane, "{form}");
    }
    assert_eq!(d.by_name("John Smith"), [EntryRef::Person(2)]);
    assert_eq!(d.by_name("CN=John Smith/O=Acme"), [EntryRef::Person(2)]);
    assert!(d.by_name("John").is_empty());
    assert!(d.by_name("Nobody").is_empty());
    assert!(d.by_name("").is_empty());
}

#[test]
fn ambiguous_names_return_every_match_once() {
    let d = directory("");
    // common name and "first last" of two persons
    assert_eq!(
        d.by_name("jane doe"),
        [EntryRef::Person(0), EntryRef::Person(1)]
    );
    // a short name equal to a mail-in's name
    assert_eq!(
        d.by_name("JDOE"),
        [EntryRef::Person(0), EntryRef::MailIn(1)]
    );
    assert_eq!(d.by_name("sales"), [EntryRef::Group(0)]);
    assert_eq!(d.by_name("Support"), [EntryRef::MailIn(0)]);
}

#[test]
fn internet_addresses() {
    let d = directory("");
    assert_eq!(
        d.by_internet_address("jane.doe2@acme.com"),
        [EntryRef::Person(1)]
    );
    assert_eq!(
        d.by_internet_address(" JANE.DOE2@ACME.COM "),
        [EntryRef::Person(1)]
    );
    assert_eq!(
        d.by_internet_address("support@acme.com"),
        [EntryRef::MailIn(0)]
    );
    assert_eq!(
        d.by_internet_address("sales@ACME.com"),
        [EntryRef::Group(0)]
    );
    // persons without an address are found at the one made for them
    assert_eq!(
        d.internet_address_of_person(&d.persons[0]).as_deref(),
        Some("jdoe@acme.com")
    );
    assert_eq!(
        d.by_internet_address("jdoe@acme.com"),
        [EntryRef::Person(0)]
    );
    assert_eq!(
        d.internet_address_of_person(&d.persons[2]).as_deref(),
        Some("john.smith@acme.com")
    );
    assert_eq!(
        d.internet_address_of_person(&d.persons[1]).as_deref(),
        Some("Jane.Doe2@Acme.com")
    );
    assert!(d.by_internet_address("nobody@acme.com").is_empty());
}

#[test]
fn local_part_from_the_global_domain() {
    let common = directory(
        "[global_domain]\nprimary_internet_domain = \"acme.com\"\nlocal_part_from = \"common-name\"\n",
    );
    assert_eq!(
        common
            .internet_address_of_person(&common.persons[0])
            .as_deref(),
        Some("jane.doe@acme.com")
    );
    let short = directory(
        "[global_domain]\nprimary_internet_domain = \"Acme.example\"\nlocal_part_from = \"short-name\"\n",
    );
    assert_eq!(
        short
            .internet_address_of_person(&short.persons[0])
            .as_deref(),
        Some("jdoe@acme.example")
    );
    assert_eq!(
        short
            .internet_address_of_person(&short.persons[2])
            .as_deref(),
        Some("john.smith@acme.example")
    );
}

#[test]
fn local_domains_without_a_global_domain() {
    let d = directory("");
    let server = d.server_by_str("Mail/Sales/Acme").unwrap();
    assert!(d.is_local_internet_domain(server, "acme.com"));
    assert!(d.is_local_internet_domain(server, "ACME.COM."));
    assert!(d.is_local_internet_domain(server, "mailhost3.acme.com"));
    assert!(d.is_local_internet_domain(server, "a.b.acme.com"));
    assert!(!d.is_local_internet_domain(server, "notacme.com"));
    assert!(!d.is_local_internet_domain(server, "com"));
    assert!(!d.is_local_internet_domain(server, "acme.nl"));
    assert_eq!(
        d.primary_domain_for(server, "mailhost3.acme.com"),
        Some("acme.com")
    );
}

#[test]
fn local_domains_with_a_global_domain() {
    let d = directory(
        "[global_domain]\nprimary_internet_domain = \"acme.com\"\nalias_internet_domains = [\"acme.nl\", \"ACME.de\"]\n",
    );
    let server = d.server_by_str("Mail/Sales/Acme").unwrap();
    assert!(d.is_local_internet_domain(server, "acme.com"));
    assert!(d.is_local_internet_domain(server, "Acme.NL"));
    assert!(d.is_local_internet_domain(server, "acme.de"));
    assert!(!d.is_local_internet_domain(server, "example.com"));
    assert_eq!(d.primary_domain_for(server, "acme.nl"), Some("acme.com"));
    assert_eq!(d.primary_domain_for(server, "acme.com"), Some("acme.com"));
    assert_eq!(d.primary_domain_for(server, "example.com"), None);
}

#[test]
fn servers_by_name() {
    let d = directory("");
    let by_canonical = d.server_by_str("CN=Mail/OU=Sales/O=Acme").unwrap();
    let by_abbreviated = d.server(&"mail/sales/acme".parse().unwrap()).unwrap();
    assert_eq!(by_canonical.name, by_abbreviated.name);
    assert_eq!(by_canonical.data, Path::new("data/mail"));
    assert!(d.server_by_str("Mail/Acme").is_none());
    assert!(d.server_by_str("CN=/O=").is_none());
}
