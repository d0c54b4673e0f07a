//! The routing decision, exhaustively, against directories written as TOML.

use std::path::Path;

use directory::{Directory, NotesName};
use proptest::prelude::*;
use routing::{Action, Context, Route, SmtpVia, Step};

const BASE: &str = r#"
[domain]
name = "Acme"

[global_domain]
primary_internet_domain = "acme.com"
alias_internet_domains = ["acme.nl"]

[[server]]
name = "Mail/Acme"
hostname = "mail.acme.com"
networks = ["LAN"]

[[server]]
name = "Hub/Acme"
hostname = "hub.acme.com"
networks = ["LAN"]

[[server]]
name = "Remote/Acme"
hostname = "remote.acme.com"
networks = ["WAN"]

[[server]]
name = "Far/Acme"
hostname = "far.acme.com"
networks = ["FAR"]

[[connection]]
type = "native"
source = "Mail/Acme"
destination = "Remote/Acme"
cost = 5

[[connection]]
type = "native"
source = "Hub/Acme"
destination = "Remote/Acme"
cost = 1

[[configuration]]
server = "*"
{CONFIG}

[[person]]
full_name = "CN=Jane Doe/O=Acme"
first_name = "Jane"
last_name = "Doe"
short_name = "jdoe"
internet_address = "jane.doe@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/jdoe"
quota = "1MB"

[[person]]
full_name = "CN=John Smith/O=Acme"
last_name = "Smith"
short_name = "smith"
internet_address = "john.smith@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/jsmith"

[[person]]
full_name = "CN=Mary Smith/O=Acme"
last_name = "Smith"
short_name = "smith"
internet_address = "mary.smith@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/msmith"

[[person]]
full_name = "CN=Rita Remote/O=Acme"
short_name = "rita"
internet_address = "rita@acme.com"
mail_server = "Remote/Acme"
mail_file = "mail/rita"

[[person]]
full_name = "CN=Hugo Hub/O=Acme"
short_name = "hugo"
internet_address = "hugo@acme.com"
mail_server = "Hub/Acme"
mail_file = "mail/hugo"

[[person]]
full_name = "CN=Fred Far/O=Acme"
short_name = "fred"
internet_address = "fred@acme.com"
mail_server = "Far/Acme"
mail_file = "mail/fred"

[[person]]
full_name = "CN=Fwd One/O=Acme"
short_name = "fwd1"
internet_address = "fwd1@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/fwd1"
forward_to = "jane.doe@acme.com"

[[person]]
full_name = "CN=Loop A/O=Acme"
short_name = "loopa"
internet_address = "loopa@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/loopa"
forward_to = "loopb@acme.com"

[[person]]
full_name = "CN=Loop B/O=Acme"
short_name = "loopb"
internet_address = "loopb@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/loopb"
forward_to = "loopa@acme.com"

[[person]]
full_name = "CN=No File/O=Acme"
short_name = "nofile"
internet_address = "nofile@acme.com"
mail_server = "Mail/Acme"
mail_file = ""

[[group]]
name = "Sales"
members = ["Jane Doe/Acme", "jane.doe@acme.com", "Inner", "rita@acme.com"]
internet_address = "sales@acme.com"

[[group]]
name = "Inner"
members = ["Sales", "John Smith/Acme", "partner@example.org"]

[[mail_in]]
name = "Support"
internet_address = "support@acme.com"
server = "Mail/Acme"
mail_file = "mail/support"

{EXTRA}
"#;

fn dir(config: &str, extra: &str) -> Directory {
    let text = BASE.replace("{CONFIG}", config).replace("{EXTRA}", extra);
    directory::parse_str(&text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn steps(d: &Directory, server: &str, rcpts: &[&str]) -> Vec<Step> {
    let name: NotesName = server.parse().unwrap();
    let config = d.config_for(&name);
    let server = d.server(&name).unwrap();
    let ctx = Context::new(d, &config, server);
    let owned: Vec<String> = rcpts.iter().map(|s| s.to_string()).collect();
    routing::resolve_all(ctx, &owned)
}

fn one(d: &Directory, rcpt: &str) -> Action {
    let s = steps(d, "Mail/Acme", &[rcpt]);
    assert_eq!(s.len(), 1, "{s:?}");
    s[0].action.clone()
}

fn local_file(a: &Action) -> Option<&str> {
    match a {
        Action::Route(Route::Local { mail_file, .. }) => Some(mail_file),
        _ => None,
    }
}

fn failure(a: &Action) -> Option<&str> {
    match a {
        Action::Route(Route::Fail(f)) => Some(&f.reason),
        _ => None,
    }
}

#[test]
fn local_lookup_by_address_short_name_alias_and_notes_name() {
    let d = dir("", "");
    for rcpt in [
        "jane.doe@acme.com",
        "JANE.DOE@ACME.COM",
        "jdoe@acme.com",
        "jane.doe@acme.nl",
        "<jane.doe@acme.com>",
        "Jane Doe/Acme",
        "CN=Jane Doe/O=Acme",
        "Jane Doe/Acme@Acme",
        "Jane.Doe@acme.com",
    ] {
        assert_eq!(local_file(&one(&d, rcpt)), Some("mail/jdoe"), "{rcpt}");
    }
    assert_eq!(
        local_file(&one(&d, "support@acme.com")),
        Some("mail/support")
    );
    match one(&d, "jdoe@acme.com") {
        Action::Route(Route::Local { quota, .. }) => assert_eq!(quota, Some(1 << 20)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn lookup_modes() {
    let full_only = dir("address_lookup = \"fullname-only\"", "");
    assert_eq!(
        local_file(&one(&full_only, "jane.doe@acme.com")),
        Some("mail/jdoe")
    );
    assert!(
        failure(&one(&full_only, "jdoe@acme.com"))
            .unwrap()
            .contains("not listed")
    );
    let local_only = dir("address_lookup = \"localpart-only\"", "");
    assert_eq!(
        local_file(&one(&local_only, "jdoe@acme.com")),
        Some("mail/jdoe")
    );
    assert!(failure(&one(&local_only, "support@acme.com")).is_none());
}

#[test]
fn failures_in_dominos_words() {
    let d = dir("", "");
    assert_eq!(
        failure(&one(&d, "nobody@acme.com")),
        Some("User nobody@acme.com not listed in Domino Directory")
    );
    assert_eq!(
        failure(&one(&d, "smith@acme.com")),
        Some(
            "Recipient user name smith@acme.com not unique.  Several matches found in Domino Directory."
        )
    );
    assert_eq!(
        failure(&one(&d, "nofile@acme.com")),
        Some("Recipient's Domino Directory entry does not specify a valid Notes mail file")
    );
    assert_eq!(
        failure(&one(&d, "x@example.org")),
        Some(
            "No route found to domain example.org from server Mail/Acme.  Check Server, Connection and Domain documents in the Domino Directory."
        )
    );
    let loop_steps = steps(&d, "Mail/Acme", &["loopa@acme.com"]);
    assert!(
        loop_steps.iter().any(|s| failure(&s.action)
            .is_some_and(|f| f.starts_with("Maximum forwarding loop count exceeded."))),
        "{loop_steps:?}"
    );
}

#[test]
fn groups_expand_nested_cycles_cut_each_target_once() {
    let d = dir("", "");
    let s = steps(&d, "Mail/Acme", &["sales@acme.com", "jdoe@acme.com"]);
    let locals: Vec<&str> = s.iter().filter_map(|s| local_file(&s.action)).collect();
    assert_eq!(locals, ["mail/jdoe", "mail/jsmith"]);
    let dups = s
        .iter()
        .filter(|s| matches!(s.action, Action::Duplicate { .. }))
        .count();
    assert_eq!(dups, 2, "jane reached twice more: {s:?}");
    assert!(s.iter().any(|s| s.address == "rita@acme.com"
        && matches!(&s.action, Action::Route(Route::Server { destination, .. }) if destination == "Remote/Acme")));
    // The external member has no route here (no SMTP), and says so.
    assert!(
        s.iter()
            .any(|s| s.address == "partner@example.org" && failure(&s.action).is_some())
    );
}

#[test]
fn forward_to_follows_the_forward() {
    let d = dir("", "");
    let s = steps(&d, "Mail/Acme", &["fwd1@acme.com"]);
    assert!(matches!(&s[0].action, Action::Forwarded { to } if to == "jane.doe@acme.com"));
    assert_eq!(local_file(&s[1].action), Some("mail/jdoe"));
}

#[test]
fn other_servers_same_network_or_least_cost_path() {
    let d = dir("", "");
    match one(&d, "hugo@acme.com") {
        Action::Route(Route::Server {
            destination,
            next_hop,
        }) => {
            assert_eq!(
                (destination.as_str(), next_hop.as_str()),
                ("Hub/Acme", "Hub/Acme")
            );
        }
        other => panic!("{other:?}"),
    }
    // Mail → Remote directly costs 5; Mail → Hub (LAN, 1) → Remote (1) costs 2.
    match one(&d, "rita@acme.com") {
        Action::Route(Route::Server {
            destination,
            next_hop,
        }) => {
            assert_eq!(
                (destination.as_str(), next_hop.as_str()),
                ("Remote/Acme", "Hub/Acme")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        failure(&one(&d, "fred@acme.com")),
        Some(
            "No route found to server Far/Acme from server Mail/Acme.  Check Server and Connection documents in the Domino Directory."
        )
    );
}

const FOREIGN: &str = r#"
[[foreign_smtp_domain]]
internet_domain = "*"
route_to_domain = "TheInternet"

[[foreign_smtp_domain]]
internet_domain = "*.partner.example"
route_to_domain = "PartnerNet"

[[connection]]
type = "smtp"
source = "Hub/Acme"
destination = "all_internet_hosts"
destination_domain = "TheInternet"

[[connection]]
type = "smtp"
source = "Mail/Acme"
destination = "partner_hosts"
destination_domain = "PartnerNet"
relay_host = "[10.1.1.1]:2525;[10.1.1.2]"
"#;

#[test]
fn internet_routes_foreign_domain_connection_config_mx() {
    // Not the connection's source: towards it.
    let d = dir("", FOREIGN);
    match one(&d, "x@example.org") {
        Action::Route(Route::Server { destination, .. }) => assert_eq!(destination, "Hub/Acme"),
        other => panic!("{other:?}"),
    }
    // Most specific pattern wins; the connection's relay host is used.
    match one(&d, "x@mx.partner.example") {
        Action::Route(Route::Smtp {
            queue,
            via: SmtpVia::Relay(r),
        }) => {
            assert_eq!(queue, "partnernet");
            assert_eq!(r.levels.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    // On the source server without a relay host on the connection: the configuration's, else MX.
    let steps_hub = steps(&d, "Hub/Acme", &["x@example.org"]);
    assert!(
        matches!(&steps_hub[0].action, Action::Route(Route::Smtp { via: SmtpVia::Mx(dom), .. }) if dom == "example.org")
    );
    let d2 = dir("relay_host = \"relay.acme.com\"", FOREIGN);
    let steps_hub = steps(&d2, "Hub/Acme", &["x@example.org"]);
    assert!(matches!(
        &steps_hub[0].action,
        Action::Route(Route::Smtp {
            via: SmtpVia::Relay(_),
            ..
        })
    ));
    // No foreign domain documents: smtp_outside_local_domain.
    let d3 = dir("smtp_outside_local_domain = true", "");
    assert!(matches!(
        one(&d3, "x@example.org"),
        Action::Route(Route::Smtp {
            via: SmtpVia::Mx(_),
            ..
        })
    ));
}

#[test]
fn other_notes_domains_through_adjacent_domain_documents() {
    let d = dir(
        "",
        "[[adjacent_domain]]\nname = \"Partner\"\nvia_server = \"Hub/Acme\"\n",
    );
    assert!(
        matches!(one(&d, "Pat/Partner@Partner"), Action::Route(Route::Server { destination, .. }) if destination == "Hub/Acme")
    );
    assert!(
        failure(&one(&d, "Pat/Other@Other"))
            .unwrap()
            .starts_with("No route found to domain Other")
    );
}

#[test]
fn non_adjacent_domains_through_the_adjacent_domain_they_name() {
    let d = dir(
        "",
        "[[adjacent_domain]]\nname = \"Partner\"\nvia_server = \"Hub/Acme\"\n\n[[nonadjacent_domain]]\nname = \"Far\"\nvia_domain = \"Partner\"\n",
    );
    assert!(
        matches!(one(&d, "Fay/Far@Far"), Action::Route(Route::Server { destination, .. }) if destination == "Hub/Acme")
    );
}

const POOL: &[&str] = &[
    "jane.doe@acme.com",
    "jdoe@acme.com",
    "sales@acme.com",
    "Inner",
    "Sales",
    "smith@acme.com",
    "john.smith@acme.com",
    "rita@acme.com",
    "fwd1@acme.com",
    "loopa@acme.com",
    "support@acme.com",
    "nobody@acme.com",
    "x@example.org",
    "Jane Doe/Acme",
    "",
    "@@",
    "a@b",
    "fred@acme.com",
];

proptest! {
    #[test]
    fn each_address_once_each_mail_file_once(
        picks in proptest::collection::vec(0..POOL.len(), 0..12),
        junk in "\\PC{0,30}",
    ) {
        let d = dir("", "");
        let mut rcpts: Vec<&str> = picks.iter().map(|&i| POOL[i]).collect();
        rcpts.push(&junk);
        let s = steps(&d, "Mail/Acme", &rcpts);
        let mut addrs: Vec<String> = s.iter().map(|s| s.address.trim().to_ascii_lowercase()).collect();
        let n = addrs.len();
        addrs.sort();
        addrs.dedup();
        prop_assert_eq!(addrs.len(), n, "an address got two steps");
        let mut files: Vec<&str> = s.iter().filter_map(|s| local_file(&s.action)).collect();
        let nf = files.len();
        files.sort();
        files.dedup();
        prop_assert_eq!(files.len(), nf, "a mail file delivered twice");
        // Every recipient given has a step.
        for r in &rcpts {
            let key = r.trim().to_ascii_lowercase();
            prop_assert!(s.iter().any(|s| s.address.trim().to_ascii_lowercase() == key));
        }
    }
}
