//! When queues wait (SPEC §5, Wait): a connection document's schedule and
//! `route_at_once_if`, `route SERVER` overriding them, high priority never
//! waiting, low priority waiting for the low-priority window.

mod common;

use chrono::Timelike;
use common::RawSmtp;
use common::domain::Domain;

/// A reaches C only by a connection document (no shared network), whose
/// schedule opens for one minute three hours from now, so it stays shut
/// through the test; B shares A's network.
const DOMAIN: &str = r#"
[domain]
name = "Acme"

[global_domain]
primary_internet_domain = "acme.com"

[[server]]
name = "A/Acme"
hostname = "a.acme.com"
smtp_auth = "off"
networks = ["LAN"]
data = "data/a"
[server.listen]
smtp = "127.0.0.1:{PORT:a-smtp}"
native = "127.0.0.1:{PORT:a-native}"

[[server]]
name = "B/Acme"
hostname = "b.acme.com"
networks = ["LAN"]
data = "data/b"
[server.listen]
native = "127.0.0.1:{PORT:b-native}"

[[server]]
name = "C/Acme"
hostname = "c.acme.com"
data = "data/c"
[server.listen]
native = "127.0.0.1:{PORT:c-native}"

[[connection]]
type = "native"
source = "A/Acme"
destination = "C/Acme"
route_at_once_if = 3
schedule = { times = "{SHUT}", repeat = "0m", days = "Mon-Sun" }

[[configuration]]
server = "*"
low_priority_window = "{LOW}"

[[person]]
full_name = "CN=Bob/O=Acme"
short_name = "bob"
internet_address = "bob@acme.com"
mail_server = "B/Acme"
mail_file = "mail/bob"

[[person]]
full_name = "CN=Carol/O=Acme"
short_name = "carol"
internet_address = "carol@acme.com"
mail_server = "C/Acme"
mail_file = "mail/carol"
"#;

/// `HH:MM-HH:MM`, `from` to `from + len` minutes after now, local time.
fn window(from: u32, len: u32) -> String {
    let now = chrono::Local::now();
    let m = now.hour() * 60 + now.minute();
    let start = (m + from) % 1440;
    let end = (start + len) % 1440;
    format!(
        "{:02}:{:02}-{:02}:{:02}",
        start / 60,
        start % 60,
        end / 60,
        end % 60
    )
}

fn domain() -> Domain {
    let d = Domain::new(
        &DOMAIN
            .replace("{SHUT}", &window(180, 1))
            .replace("{LOW}", &window(240, 1)),
    );
    d.start(&[], &["A/Acme", "B/Acme", "C/Acme"]);
    d
}

fn send(d: &Domain, to: &str, subject: &str, extra_header: &str) {
    let mut c = RawSmtp::connect(d.addr("a-smtp"));
    c.cmd("EHLO client.test");
    let body = format!(
        "From: <sender@acme.com>\nTo: <{to}>\nSubject: {subject}\n{extra_header}Message-ID: <{}@test>\n\nHello.\n",
        subject.replace(' ', "-")
    );
    let r = c.mail("sender@acme.com", &[to], &body);
    assert!(r.starts_with("250"), "{r}");
    c.cmd("QUIT");
}

fn queue_line(d: &Domain, dest: &str) -> String {
    d.console("A/Acme", "tell router show queues")
        .lines()
        .find(|l| l.contains(dest))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_scheduled_connection_waits_for_its_threshold_or_route() {
    let d = domain();
    send(&d, "carol@acme.com", "one", "");
    send(&d, "carol@acme.com", "two", "");
    common::wait_for(
        || queue_line(&d, "C/Acme").starts_with("2    Wait"),
        "two messages waiting for C",
    );
    let line = queue_line(&d, "C/Acme");
    assert!(line.contains("NRPC C/Acme"), "{line}");
    assert!(line.contains("Waiting for: schedule"), "{line}");
    assert!(line.contains("Next route:"), "{line}");
    assert!(d.mailfile("C/Acme", "mail/carol").is_empty());

    // The third reaches route_at_once_if = 3: all three go.
    send(&d, "carol@acme.com", "three", "");
    let carol = d.wait_mail("C/Acme", "mail/carol", 3);
    assert_eq!(carol.len(), 3);

    // One more waits again; `route C/Acme` sends it now.
    send(&d, "carol@acme.com", "four", "");
    common::wait_for(
        || queue_line(&d, "C/Acme").starts_with("1    Wait"),
        "one message waiting",
    );
    d.console("A/Acme", "route C/Acme");
    let carol = d.wait_mail("C/Acme", "mail/carol", 4);
    assert_eq!(carol.len(), 4);

    // High priority never waits.
    send(&d, "carol@acme.com", "five", "");
    common::wait_for(
        || queue_line(&d, "C/Acme").starts_with("1    Wait"),
        "one message waiting",
    );
    send(&d, "carol@acme.com", "urgent", "Importance: high\n");
    common::wait_for(
        || {
            d.mailfile("C/Acme", "mail/carol")
                .iter()
                .any(|m| m["subject"] == "urgent")
        },
        "the urgent message on C",
    );
    let carol = d.mailfile("C/Acme", "mail/carol");
    assert_eq!(carol.len(), 5, "only the urgent one went: {carol:#?}");
    assert!(queue_line(&d, "C/Acme").starts_with("1    Wait"));
}

#[test]
fn low_priority_mail_waits_for_its_window() {
    let d = domain();
    send(&d, "bob@acme.com", "later", "X-Priority: 5\n");
    send(&d, "bob@acme.com", "now", "");
    common::wait_for(
        || {
            d.mailfile("B/Acme", "mail/bob")
                .iter()
                .any(|m| m["subject"] == "now")
        },
        "the normal message on B",
    );
    common::wait_for(
        || queue_line(&d, "B/Acme").starts_with("1    Wait"),
        "the low-priority message waiting",
    );
    let line = queue_line(&d, "B/Acme");
    assert!(
        line.contains("Waiting for: the low-priority window"),
        "{line}"
    );
    assert_eq!(d.mailfile("B/Acme", "mail/bob").len(), 1);
    d.console("A/Acme", "route B/Acme");
    let bob = d.wait_mail("B/Acme", "mail/bob", 2);
    assert_eq!(bob.len(), 2);
}
