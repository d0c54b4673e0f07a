//! The SMTP inbound controls of `[configuration.inbound]` end to end: a real
//! mailhop process, clients connecting from several loopback addresses
//! (127.0.0.1 stands for the inside, 127.0.0.9 and up for the Internet), a
//! loopback DNS server publishing the names, blacklist entries and domains
//! the controls ask about, and a relay sink counting what leaves.

mod common;

use std::net::Ipv4Addr;

use common::*;
use testkit::Rr;

const INTERNET: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);

fn dns(zones: Vec<(&'static str, Vec<Rr>)>) -> (tokio::runtime::Runtime, testkit::Dns) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dns = rt.block_on(testkit::Dns::start_zones(zones));
    (rt, dns)
}

#[test]
fn connection_controls_refuse_before_the_greeting() {
    let (_rt, dns) = dns(vec![
        (
            "127.in-addr.arpa.",
            vec![
                Rr::Ptr("10.0.0.127.in-addr.arpa.", "mx.bad.example."),
                Rr::Ptr("13.0.0.127.in-addr.arpa.", "mx.good.example."),
                // A name that does not resolve back to the address.
                Rr::Ptr("14.0.0.127.in-addr.arpa.", "liar.good.example."),
            ],
        ),
        (
            "bad.example.",
            vec![Rr::A("mx.bad.example.", Ipv4Addr::new(127, 0, 0, 10))],
        ),
        (
            "good.example.",
            vec![
                Rr::A("mx.good.example.", Ipv4Addr::new(127, 0, 0, 13)),
                Rr::A("liar.good.example.", Ipv4Addr::new(127, 0, 0, 99)),
            ],
        ),
    ]);
    let config = format!(
        r#"dns_servers = ["{}"]
[configuration.inbound]
verify_connecting_host = true
internal_hosts = ["127.0.0.1"]
deny_connections = ["*.bad.example", "127.0.0.12"]"#,
        dns.addr
    );
    let server = TestServer::start(Setup::config(&config));
    // Each row: the client's address, refused with what (None: greeted).
    let rows: &[(u8, Option<&str>)] = &[
        (10, Some("refused for policy reasons")),
        (11, Some("cannot be verified in DNS")),
        (12, Some("refused for policy reasons")),
        (13, None),
        (14, Some("cannot be verified in DNS")),
        // Internal: not asked to have a name.
        (1, None),
    ];
    for (last, refused) in rows {
        let ip = Ipv4Addr::new(127, 0, 0, *last);
        let (mut c, first) = RawSmtp::open_from(ip, server.smtp);
        match refused {
            Some(words) => {
                assert_eq!(status(&first), "554 5.7.1", "{ip}: {first}");
                assert!(first.contains(words), "{ip}: {first}");
                // Nothing more is said: the connection is closed.
                assert_eq!(c.drain(), "", "{ip}: the server closes the connection");
            }
            None => {
                assert!(first.starts_with("220"), "{ip}: {first}");
                assert!(c.cmd("EHLO client.example").starts_with("250"));
                c.send_ok(
                    "friend@example.org",
                    &["jane.doe@acme.com"],
                    &format!("from {ip}"),
                );
                c.cmd("QUIT");
            }
        }
    }
    let jane = server.wait_mail("mail/jdoe", 2);
    assert_eq!(jane.len(), 2, "{jane:?}");
    assert_eq!(server.stat("SMTP.Sessions.Inbound.Refused.Denied"), 2);
    assert_eq!(
        server.stat("SMTP.Sessions.Inbound.Refused.HostNotVerified"),
        2
    );
    let log = server.log();
    assert!(
        log.contains("127.0.0.12 refused the connection"),
        "the log names the client: {log}"
    );
}

#[test]
fn allow_connections_admits_only_what_it_lists() {
    let (_rt, dns) = dns(vec![]);
    let config = format!(
        r#"dns_servers = ["{}"]
[configuration.inbound]
allow_connections = ["127.0.0.0/30"]
deny_connections = ["127.0.0.2"]"#,
        dns.addr
    );
    let server = TestServer::start(Setup::config(&config));
    for (last, greeted) in [(1u8, true), (2, false), (3, true), (9, false)] {
        let ip = Ipv4Addr::new(127, 0, 0, last);
        let (_c, first) = RawSmtp::open_from(ip, server.smtp);
        assert_eq!(first.starts_with("220"), greeted, "{ip}: {first}");
    }
}

#[test]
fn sender_and_recipient_controls_and_the_senders_domain() {
    let (_rt, dns) = dns(vec![(
        "test.",
        vec![
            Rr::Mx("mx-only.test.", 10, "mx.mx-only.test."),
            Rr::A("mx.mx-only.test.", Ipv4Addr::new(127, 0, 0, 50)),
            Rr::A("a-only.test.", Ipv4Addr::new(127, 0, 0, 51)),
        ],
    )]);
    let config = format!(
        r#"dns_servers = ["{}"]
[configuration.inbound]
verify_sender_domain = true
deny_senders = ["@spam.test", "*.spam.test"]
deny_recipients = ["admin@acme.com"]"#,
        dns.addr
    );
    let server = TestServer::start(Setup::config(&config));
    let mail = |from: &str| {
        let mut c = RawSmtp::connect_from(INTERNET, server.smtp);
        let r = c.cmd(&format!("MAIL FROM:<{from}>"));
        c.cmd("QUIT");
        r
    };
    // Sender controls (refused before any DNS question).
    assert_eq!(status(&mail("x@spam.test")), "550 5.7.1");
    assert_eq!(status(&mail("x@deep.sub.spam.test")), "550 5.7.1");
    assert_eq!(status(&mail("x@not-spam.test")), "553 5.1.8");
    // The sender's domain in DNS: an MX, or an address, or nothing.
    assert_eq!(status(&mail("x@mx-only.test")), "250 2.1.0");
    assert_eq!(status(&mail("x@a-only.test")), "250 2.1.0");
    let none = mail("x@nowhere.test");
    assert_eq!(status(&none), "553 5.1.8", "{none}");
    assert!(none.contains("nowhere.test"), "{none}");
    // Delivery reports have no sender to verify.
    assert_eq!(status(&mail("")), "250 2.1.0");

    // Recipient controls apply to local recipients; postmaster is always
    // accepted.
    let mut c = RawSmtp::connect_from(INTERNET, server.smtp);
    assert!(c.cmd("MAIL FROM:<x@mx-only.test>").starts_with("250"));
    let r = c.cmd("RCPT TO:<admin@acme.com>");
    assert_eq!(status(&r), "550 5.7.1", "{r}");
    assert!(
        r.contains("Not authorized to send mail to this user or group"),
        "{r}"
    );
    assert_eq!(status(&c.cmd("RCPT TO:<jane.doe@acme.com>")), "250 2.1.5");
    assert_eq!(status(&c.cmd("RCPT TO:<postmaster@acme.com>")), "250 2.1.5");
    c.cmd("QUIT");

    // An authenticated client is not subject to the sender and recipient
    // controls.
    let mut c = RawSmtp::connect_from(INTERNET, server.smtp);
    let plain = base64_plain("jane.doe@acme.com", "jane-secret");
    let r = c.cmd(&format!("AUTH PLAIN {plain}"));
    assert!(r.starts_with("235"), "AUTH: {r}");
    let r = c.mail(
        "x@spam.test",
        &["admin@acme.com"],
        &message("x@spam.test", "admin@acme.com", "from a user"),
    );
    assert!(r.starts_with("250"), "{r}");
    c.cmd("QUIT");
    let admin = server.wait_mail("mail/admin", 1);
    assert_eq!(admin.len(), 1, "{admin:?}");

    assert_eq!(server.stat("SMTP.Senders.Refused.Denied"), 2);
    assert_eq!(server.stat("SMTP.Senders.Refused.DomainNotFound"), 2);
    assert_eq!(server.stat("SMTP.Recipients.Refused.Denied"), 1);
}

/// `AUTH PLAIN`'s initial response for `user` and `password`.
fn base64_plain(user: &str, password: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("\0{user}\0{password}").into_bytes();
    let mut out = String::new();
    for chunk in raw.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn blacklist_dns() -> (tokio::runtime::Runtime, testkit::Dns) {
    dns(vec![(
        "bl.test.",
        vec![
            Rr::A("9.0.0.127.bl.test.", Ipv4Addr::new(127, 0, 0, 2)),
            Rr::Txt("9.0.0.127.bl.test.", "Listed for testing\r\nX-Evil: 1"),
        ],
    )])
}

#[test]
fn a_dns_blacklist_refuses_tags_or_logs() {
    let (_rt, dns) = blacklist_dns();
    for action in ["reject", "tag", "log"] {
        let config = format!(
            r#"dns_servers = ["{}"]
[configuration.inbound]
dnsbl_zones = ["empty.test", "bl.test"]
dnsbl_action = "{action}""#,
            dns.addr
        );
        let server = TestServer::start(Setup::config(&config));
        // A client no zone lists.
        let mut c = RawSmtp::connect_from(Ipv4Addr::new(127, 0, 0, 1), server.smtp);
        c.send_ok("a@example.org", &["jane.doe@acme.com"], "clean");
        c.cmd("QUIT");
        // The listed client.
        let mut c = RawSmtp::connect_from(INTERNET, server.smtp);
        let r = c.cmd("MAIL FROM:<b@example.org>");
        if action == "reject" {
            assert_eq!(status(&r), "550 5.7.1", "{r}");
            assert!(
                r.contains("[127.0.0.9] is listed by bl.test: Listed for testing??X-Evil: 1"),
                "the zone's reason, made harmless: {r}"
            );
            c.cmd("QUIT");
        } else {
            assert_eq!(status(&r), "250 2.1.0", "{action}: {r}");
            assert!(c.cmd("RCPT TO:<jane.doe@acme.com>").starts_with("250"));
            assert!(c.cmd("DATA").starts_with("354"));
            c.send(
                message("b@example.org", "jane.doe@acme.com", "listed")
                    .replace('\n', "\r\n")
                    .as_bytes(),
            );
            let r = c.cmd("\r\n.");
            assert!(r.starts_with("250"), "{r}");
            c.cmd("QUIT");
        }
        let expected = if action == "reject" { 1 } else { 2 };
        let jane = server.wait_mail("mail/jdoe", expected);
        assert_eq!(jane.len(), expected, "{action}: {jane:?}");
        for entry in &jane {
            let id = entry["id"].as_u64().unwrap();
            let text = server.mailfile_show("mail/jdoe", id);
            let tagged = text.contains("X-Mailhop-DNSBL: 127.0.0.9 listed by bl.test");
            let want = action == "tag" && entry["subject"] == "listed";
            assert_eq!(tagged, want, "{action}: {text}");
            assert!(!text.contains("\nX-Evil"), "{text}");
        }
        assert_eq!(server.stat("SMTP.DNSBL.bl.test.TotalHits"), 1, "{action}");
        assert_eq!(
            server.stat("SMTP.Senders.Refused.DNSBL"),
            i64::from(action == "reject"),
            "{action}"
        );
    }
}

/// Seed 002's gateway (SMTP/Acme): takes the Internet's mail for acme.com and
/// relays for no one, except the inside (127.0.0.1) and users who log in.
#[test]
fn relay_battery_against_a_gateway_that_relays_for_no_one() {
    let sink = Sink::start();
    let (_rt, dns) = dns(vec![]);
    let config = format!(
        r#"smtp_outside_local_domain = true
relay_host = "[127.0.0.1]:{}"
dns_servers = ["{}"]
[configuration.inbound]
internal_hosts = ["127.0.0.1"]
deny_relay_to = ["*"]
deny_relay_from = ["*"]"#,
        sink.port, dns.addr
    );
    let server = TestServer::start(Setup::config(&config));
    // Every way a recipient outside acme.com has been smuggled past a
    // relay check. Each row: the sender, the recipient, the refusal.
    let battery: &[(&str, &str, &str)] = &[
        ("spammer@example.net", "victim@example.org", "550 5.7.1"),
        ("spammer@example.net", "VICTIM@EXAMPLE.ORG", "550 5.7.1"),
        ("spammer@example.net", "victim@Example.Org.", "550 5.7.1"),
        // Percent hack, bang path, quoted local part with @, double @.
        (
            "spammer@example.net",
            "victim%example.org@acme.com",
            "550 5.1.1",
        ),
        (
            "spammer@example.net",
            "example.org!victim@acme.com",
            "550 5.1.1",
        ),
        (
            "spammer@example.net",
            "\"victim@example.org\"@acme.com",
            "550 5.1.1",
        ),
        (
            "spammer@example.net",
            "victim@acme.com@example.org",
            "501 5.1.3",
        ),
        // Source routes are dropped, never followed.
        (
            "spammer@example.net",
            "@acme.com:victim@example.org",
            "550 5.7.1",
        ),
        (
            "spammer@example.net",
            "@acme.com,@mail.acme.com:victim@example.org",
            "550 5.7.1",
        ),
        // Address literals, our own included: not taken as recipients.
        ("spammer@example.net", "victim@[127.0.0.1]", "501 5.1.3"),
        (
            "spammer@example.net",
            "victim%example.org@[127.0.0.1]",
            "501 5.1.3",
        ),
        // IDN, as punycode.
        (
            "spammer@example.net",
            "victim@xn--bcher-kva.example",
            "550 5.7.1",
        ),
        // A Notes address in another domain.
        ("spammer@example.net", "Victim/Other@Other", "550 5.7.1"),
        // The null sender, and a sender in the local domain.
        ("", "victim@example.org", "550 5.7.1"),
        ("jane.doe@acme.com", "victim@example.org", "550 5.7.1"),
    ];
    for (from, to, refusal) in battery {
        let mut c = RawSmtp::connect_from(INTERNET, server.smtp);
        let r = c.cmd(&format!("MAIL FROM:<{from}>"));
        assert!(r.starts_with("250"), "MAIL <{from}>: {r}");
        let r = c.cmd(&format!("RCPT TO:<{to}>"));
        assert_eq!(status(&r), *refusal, "<{from}> -> <{to}>: {r}");
        // The transaction has no recipient: there is nothing to send.
        let r = c.cmd("DATA");
        assert!(r.starts_with("554") || r.starts_with("503"), "DATA: {r}");
        c.cmd("QUIT");
    }
    // An IDN in UTF-8 without SMTPUTF8 is refused as well.
    let mut c = RawSmtp::connect_from(INTERNET, server.smtp);
    assert!(c.cmd("MAIL FROM:<spammer@example.net>").starts_with("250"));
    let utf8 = c.cmd("RCPT TO:<victim@bücher.example>");
    assert!(utf8.starts_with('5'), "UTF-8 domain: {utf8}");
    c.cmd("QUIT");

    // The inside relays, and so does a user who logged in, each once.
    let mut c = RawSmtp::connect_from(Ipv4Addr::new(127, 0, 0, 1), server.smtp);
    c.send_ok("jane.doe@acme.com", &["inside@example.org"], "from inside");
    c.cmd("QUIT");
    let mut c = RawSmtp::connect_from(INTERNET, server.smtp);
    let r = c.cmd(&format!(
        "AUTH PLAIN {}",
        base64_plain("jane.doe@acme.com", "jane-secret")
    ));
    assert!(r.starts_with("235"), "AUTH: {r}");
    c.send_ok("jane.doe@acme.com", &["roaming@example.org"], "from a user");
    c.cmd("QUIT");
    wait_for(|| sink.messages().len() >= 2, "the two relayed messages");
    let sunk = sink.messages();
    let mut rcpts: Vec<String> = sunk.iter().flat_map(|m| m.rcpts.clone()).collect();
    rcpts.sort();
    assert_eq!(
        rcpts,
        ["inside@example.org", "roaming@example.org"],
        "only the allowed ones left, once each: {sunk:?}"
    );
    let relay_refusals = battery.iter().filter(|r| r.2 == "550 5.7.1").count()
        + usize::from(status(&utf8) == "550 5.7.1");
    assert_eq!(
        server.stat("SMTP.Recipients.Refused.RelayDenied"),
        i64::try_from(relay_refusals).unwrap()
    );
    // Nothing refused waits in the mail box.
    wait_for(
        || server.stat("Mail.TotalPending") == 0,
        "an empty mail box",
    );
}
