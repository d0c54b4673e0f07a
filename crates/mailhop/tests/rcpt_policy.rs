//! What the SMTP listener refuses at RCPT, and the server's upkeep of its
//! store: a real mailhop process on loopback ports, raw SMTP.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;

use common::*;

/// The reply to one RCPT TO in a fresh transaction (RSET after it).
fn rcpt(c: &mut RawSmtp, to: &str) -> String {
    let r = c.cmd("MAIL FROM:<someone@example.org>");
    assert!(r.starts_with("250"), "MAIL: {r}");
    let r = c.cmd(&format!("RCPT TO:<{to}>"));
    let rset = c.cmd("RSET");
    assert!(rset.starts_with("250"), "RSET: {rset}");
    r
}

/// Persons and a group that cannot all receive.
const UNREACHABLE: &str = r#"
[[person]]
full_name = "CN=Far Away/O=Acme"
short_name = "far"
internet_address = "far.away@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/far"
forward_to = "far@elsewhere.example"

[[person]]
full_name = "CN=Gone Forward/O=Acme"
short_name = "gone"
internet_address = "gone@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/gone"
forward_to = "ghost@acme.com"

[[group]]
name = "Mixed"
members = ["Jane Doe/Acme", "ghost@acme.com"]
internet_address = "mixed@acme.com"
"#;

#[test]
fn rcpt_refuses_every_local_recipient_that_cannot_be_delivered() {
    let server = TestServer::start(Setup {
        extra: UNREACHABLE,
        ..Setup::default()
    });
    let mut c = server.client();
    assert_eq!(status(&rcpt(&mut c, "nobody@acme.com")), "550 5.1.1");
    let ambiguous = rcpt(&mut c, "smith@acme.com");
    assert_eq!(status(&ambiguous), "550 5.1.4", "{ambiguous}");
    assert!(ambiguous.contains("not unique"), "{ambiguous}");
    let far = rcpt(&mut c, "far.away@acme.com");
    assert_eq!(status(&far), "550 5.4.4", "{far}");
    assert!(
        far.contains("No route found to domain elsewhere.example"),
        "{far}"
    );
    // A forward to nobody is refused too: the client gave that address.
    assert_eq!(status(&rcpt(&mut c, "gone@acme.com")), "550 5.1.1");
    // A group with a failing member is accepted: the member is reported to
    // the group's sender.
    assert_eq!(status(&rcpt(&mut c, "mixed@acme.com")), "250 2.1.5");
    c.send_ok("sender@acme.com", &["mixed@acme.com"], "to the group");
    let jane = server.wait_mail("mail/jdoe", 1);
    assert_eq!(jane.len(), 1, "{jane:?}");
    assert_eq!(jane[0]["subject"], "to the group");
    // Nothing refused was accepted into the mail box.
    assert_eq!(server.stat("SMTP.Messages.Accepted"), 1);
}

#[test]
fn notes_addresses_from_unauthenticated_clients_must_be_local_names() {
    let server = TestServer::start(Setup::default());
    let mut c = server.client();
    for to in ["victim@Evil", "victim/Evil@Evil", "victim@localhost"] {
        let r = rcpt(&mut c, to);
        assert_eq!(status(&r), "550 5.7.1", "{to}: {r}");
    }
    let unknown = rcpt(&mut c, "victim@Acme");
    assert_eq!(status(&unknown), "550 5.1.1", "{unknown}");
    assert!(
        unknown.contains("User victim not listed in Domino Directory"),
        "{unknown}"
    );
    // Local names are still accepted.
    assert_eq!(status(&rcpt(&mut c, "jdoe@Acme")), "250 2.1.5");
    assert_eq!(status(&rcpt(&mut c, "Jane_Doe@acme")), "550 5.1.1");
    assert_eq!(server.stat("SMTP.Messages.Accepted"), 0);
}

#[test]
fn notes_addresses_are_checked_even_without_verify_local_recipients() {
    let server = TestServer::start(Setup::config("verify_local_recipients = false"));
    let mut c = server.client();
    assert_eq!(status(&rcpt(&mut c, "victim@Evil")), "550 5.7.1");
    assert_eq!(status(&rcpt(&mut c, "victim@Acme")), "550 5.1.1");
    // Internet addresses keep the old behaviour: accepted, reported later.
    assert_eq!(status(&rcpt(&mut c, "nobody@acme.com")), "250 2.1.5");
}

#[test]
fn postmaster_is_always_accepted_and_reaches_the_postmaster_mail_file() {
    let server = TestServer::start(Setup::default());
    let mut c = server.client();
    for to in [
        "postmaster",
        "Postmaster",
        "POSTMASTER@acme.com",
        "postmaster@acme.nl",
        "postmaster@Acme",
    ] {
        assert_eq!(status(&rcpt(&mut c, to)), "250 2.1.5", "{to}");
    }
    // Not for other domains.
    assert_eq!(
        status(&rcpt(&mut c, "postmaster@elsewhere.example")),
        "550 5.7.1"
    );
    c.send_ok("someone@example.org", &["PostMaster@acme.com"], "hello pm");
    let pm = server.wait_mail("mail/postmaster", 1);
    assert_eq!(pm.len(), 1, "{pm:?}");
    assert_eq!(pm[0]["subject"], "hello pm");
}

#[test]
fn postmaster_goes_to_the_configured_person() {
    let server = TestServer::start(Setup::config("postmaster = \"Admin/Acme\""));
    let mut c = server.client();
    c.send_ok("someone@example.org", &["postmaster@acme.com"], "for admin");
    c.send_ok("someone@example.org", &["postmaster"], "bare");
    let admin = server.wait_mail("mail/admin", 2);
    assert_eq!(admin.len(), 2, "{admin:?}");
    assert!(server.mailfile("mail/postmaster").is_empty());
}

/// A loopback DNS server whose PTR for 127.0.0.1 is `mx.bad.example`, with
/// that name's A record pointing at `forward`.
fn dns_for_loopback(rt: &tokio::runtime::Runtime, forward: Ipv4Addr) -> testkit::Dns {
    rt.block_on(testkit::Dns::start_zones(vec![
        (
            "127.in-addr.arpa.",
            vec![testkit::Rr::Ptr(
                "1.0.0.127.in-addr.arpa.",
                "mx.bad.example.",
            )],
        ),
        (
            "bad.example.",
            vec![testkit::Rr::A("mx.bad.example.", forward)],
        ),
    ]))
}

fn deny_bad_example(dns: &testkit::Dns) -> String {
    format!(
        "dns_servers = [\"{}\"]\n[configuration.inbound]\nallow_relay_to = [\"*\"]\ndeny_relay_from = [\"*.bad.example\"]",
        dns.addr
    )
}

#[test]
fn host_name_patterns_match_the_forward_confirmed_client_name() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dns = dns_for_loopback(&rt, Ipv4Addr::new(127, 0, 0, 1));
    let server = TestServer::start(Setup::config(&deny_bad_example(&dns)));
    let mut c = server.client();
    let r = rcpt(&mut c, "someone@elsewhere.example");
    assert_eq!(status(&r), "550 5.7.1", "{r}\n{}", server.log());
    // Local mail is not relaying.
    assert_eq!(status(&rcpt(&mut c, "jane.doe@acme.com")), "250 2.1.5");
    drop(server);
    drop(rt);
}

#[test]
fn a_reverse_name_that_does_not_resolve_back_is_not_used() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dns = dns_for_loopback(&rt, Ipv4Addr::new(127, 0, 0, 2));
    let server = TestServer::start(Setup::config(&deny_bad_example(&dns)));
    let mut c = server.client();
    let r = rcpt(&mut c, "someone@elsewhere.example");
    assert_eq!(status(&r), "250 2.1.5", "{r}");
    drop(server);
    drop(rt);
}

#[test]
fn check_warns_once_per_field_not_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let text = acme_text(
        "journal_to = \"audit@acme.com\"\nlow_priority_window = \"01:00-05:00\"\nmailboxes = 2\nsmtp_reachable = \"always\"\n[[configuration.rule]]\naction = \"drop\"",
    );
    let path = tmp.path().join("directory.toml");
    std::fs::write(&path, &text).unwrap();
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.starts_with(needle))
            .map(|i| i + 1)
            .unwrap()
    };
    let out = Command::new(BIN)
        .args(["check", "--directory"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let warnings: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("not applied yet"))
        .collect();
    let p = path.display();
    let reason = "not applied yet (mailhop accepts it but does nothing with it)";
    assert_eq!(
        warnings,
        [format!(
            "{p}:{}: configuration[0].mailboxes: {reason}",
            line_of("mailboxes = 2")
        ),],
        "{stdout}"
    );
    assert!(stdout.contains("valid"), "{stdout}");
}

#[test]
fn serve_prints_the_same_warnings() {
    let server = TestServer::start(Setup::config("mailboxes = 3"));
    let warnings: Vec<String> = server
        .log()
        .lines()
        .filter(|l| l.contains("not applied yet"))
        .map(str::to_owned)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(": configuration[0].mailboxes: not applied yet"),
        "{warnings:?}"
    );
}

#[test]
fn every_mail_file_exists_from_the_start_and_after_a_reload() {
    let server = TestServer::start(Setup::default());
    let ls = |mail_file: &str| {
        Command::new(BIN)
            .args(["mailfile", "--directory"])
            .arg(&server.directory)
            .args(["ls", mail_file])
            .output()
            .unwrap()
    };
    for mail_file in ["mail/jdoe", "mail/admin", "mail/tiny"] {
        let out = ls(mail_file);
        assert!(
            out.status.success(),
            "{mail_file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{mail_file}: Inbox is empty\n")
        );
    }
    server.rewrite_directory(|t| {
        t + "\n[[mail_in]]\nname = \"Support\"\ninternet_address = \"support@acme.com\"\nserver = \"Mail/Acme\"\nmail_file = \"mail/support\"\n"
    });
    wait_for(|| ls("mail/support").status.success(), "mail/support");
    assert_eq!(
        String::from_utf8_lossy(&ls("mail/support").stdout),
        "mail/support: Inbox is empty\n"
    );
}

/// `python3 -c` with the events table of the server's store.
fn sql(server: &TestServer, statement: &str) -> String {
    let db = server.data().join("store/mailhop.db");
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nr=c.execute(\"{statement}\").fetchall()\nc.commit()\nprint(r[0][0] if r else '')"
        ))
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn routing_events_older_than_the_retention_are_pruned() {
    let mut server = TestServer::start(Setup::config("event_retention = \"1d\""));
    let mut c = server.client();
    c.send_ok("someone@example.org", &["jane.doe@acme.com"], "old one");
    server.wait_mail("mail/jdoe", 1);
    wait_for(
        || sql(&server, "SELECT count(*) FROM events") != "0",
        "the event of the first message",
    );
    drop(c);
    server.kill();
    // Two days ago, as far as the log can tell.
    sql(
        &server,
        "UPDATE events SET time = time - 2*86400000 RETURNING 1",
    );
    let old = sql(&server, "SELECT count(*) FROM events");
    assert_ne!(old, "0");
    server.spawn();
    let mut c = server.client();
    c.send_ok("someone@example.org", &["jane.doe@acme.com"], "new one");
    server.wait_mail("mail/jdoe", 2);
    let day_ago = "(CAST(strftime('%s','now') AS INTEGER) - 86400) * 1000";
    wait_for(
        || {
            sql(
                &server,
                &format!("SELECT count(*) FROM events WHERE time < {day_ago}"),
            ) == "0"
        },
        "the old events to be pruned",
    );
    wait_for(
        || sql(&server, "SELECT count(*) FROM events") != "0",
        "the event of the new message",
    );
    let new = sql(
        &server,
        &format!("SELECT count(*) FROM events WHERE time >= {day_ago} AND recipient LIKE '%jane%'"),
    );
    assert_ne!(new, "0");
}
