//! Seed 002's Acme domain, end to end: `examples/acme/directory.toml` with
//! its ports replaced by free ones. SMTP/Acme takes the Internet's mail
//! anonymously and hands it to Mail/Acme natively; Jane authenticates on
//! Mail/Acme, whose Internet mail goes natively to SMTP/Acme and leaves by
//! the relay host; neither server relays for anyone else. Both servers in
//! one process, then as two.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

use common::domain::Domain;
use common::{RawSmtp, Sink, message, wait_for};

/// The example the test runs, as shipped.
const EXAMPLE: &str = include_str!("../../../examples/acme/directory.toml");
/// Jane's demo password (examples/acme/README.md); the example holds only its hash.
const JANE_PASSWORD: &str = "jane-demo";
/// Where the "Internet" clients connect from.
const INTERNET_CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);

/// The example with every loopback port `127.0.0.1:N` (listeners, and the
/// relay host `[127.0.0.1]:N`) made a `{PORT:N}` placeholder for a free
/// port, and `dns_servers` naming the test's DNS server.
fn template(dns: SocketAddr) -> String {
    let mut out = String::new();
    let mut rest = EXAMPLE;
    let mut ports = std::collections::BTreeSet::new();
    while let Some(at) = rest.find("127.0.0.1") {
        let after = &rest[at + "127.0.0.1".len()..];
        let sep = if after.starts_with("]:") {
            2
        } else if after.starts_with(':') {
            1
        } else {
            0
        };
        let digits = after[sep..].bytes().take_while(u8::is_ascii_digit).count();
        let head = at + "127.0.0.1".len() + sep;
        out.push_str(&rest[..head]);
        if sep > 0 && digits > 0 {
            let port = &after[sep..sep + digits];
            out.push_str(&format!("{{PORT:{port}}}"));
            ports.insert(port);
        }
        rest = &rest[head + digits..];
    }
    out.push_str(rest);
    // Mail/Acme's five listeners, SMTP/Acme's two, the relay host.
    assert_eq!(ports.len(), 8, "the example's ports changed: {ports:?}");
    let line = "dns_servers = []";
    assert!(out.contains(line), "the example has no `{line}`");
    out.replacen(line, &format!("dns_servers = [\"{dns}\"]"), 1)
}

/// The running domain, its relay-host sink and DNS server.
struct Acme {
    domain: Domain,
    sink: Sink,
    _dns: testkit::Dns,
    _rt: tokio::runtime::Runtime,
}

impl Acme {
    fn new() -> Acme {
        let rt = tokio::runtime::Runtime::new().unwrap();
        // Nothing in the example needs DNS (the relay host is a literal);
        // a resolver that asks anyway asks this one, not the system's.
        let dns = rt.block_on(testkit::Dns::start(vec![]));
        let domain = Domain::new(&template(dns.addr));
        let sink = Sink::start_on(domain.addr("2626").port());
        Acme {
            domain,
            sink,
            _dns: dns,
            _rt: rt,
        }
    }

    /// SMTP/Acme's SMTP port (the one acme.com's MX names).
    fn gateway(&self) -> SocketAddr {
        self.domain.addr("2526")
    }

    /// Mail/Acme's SMTP port (AUTH required).
    fn mail_server(&self) -> SocketAddr {
        self.domain.addr("2525")
    }

    fn settled(&self) {
        for s in ["Mail/Acme", "SMTP/Acme"] {
            wait_for(
                || self.domain.stat(s, "Mail.TotalPending") == 0,
                &format!("{s}'s mail box empty"),
            );
        }
    }

    fn jane(&self) -> Vec<serde_json::Value> {
        self.domain.mailfile("Mail/Acme", "mail/jdoe")
    }
}

/// Jane authenticates on Mail/Acme's SMTP port with AUTH PLAIN (Python's
/// smtplib) and sends one message.
fn jane_sends(acme: &Acme, to: &str, subject: &str) {
    let script = r#"
import smtplib, sys
port, password, to, subject = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
    s.ehlo("jane.laptop.acme.com")
    assert "PLAIN" in s.esmtp_features.get("auth", "").split(), s.esmtp_features
    s.user, s.password = "jane.doe@acme.com", password
    code, reply = s.auth("PLAIN", s.auth_plain)
    assert code == 235, (code, reply)
    s.sendmail("jane.doe@acme.com", [to],
        "From: Jane Doe <jane.doe@acme.com>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nHello from Jane.\r\n" % (to, subject))
print("sent")
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(acme.mail_server().port().to_string())
        .args([JANE_PASSWORD, to, subject])
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("sent"),
        "smtplib: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (a) Internet → SMTP/Acme → Mail/Acme → Jane's mail file, once.
fn internet_mail_reaches_jane(acme: &Acme) {
    let subject = "from the Internet";
    let mut c = RawSmtp::connect_from(INTERNET_CLIENT, acme.gateway());
    let r = c.mail(
        "friend@example.org",
        &["jane.doe@acme.com"],
        &message("friend@example.org", "jane.doe@acme.com", subject),
    );
    assert!(r.starts_with("250"), "{r}");
    c.cmd("QUIT");

    acme.domain.wait_mail("Mail/Acme", "mail/jdoe", 1);
    wait_for(
        || acme.domain.stat("SMTP/Acme", "Mail.Transferred.NRPC") == 1,
        "SMTP/Acme's transfer to Mail/Acme",
    );
    acme.settled();
    let jane = acme.jane();
    let copies: Vec<_> = jane.iter().filter(|m| m["subject"] == subject).collect();
    assert_eq!(copies.len(), 1, "{jane:#?}");
    let m = copies[0];
    assert_eq!(
        m["route_servers"],
        serde_json::json!(["SMTP/Acme", "Mail/Acme"]),
        "{m}"
    );
    let text = acme
        .domain
        .mailfile_show("Mail/Acme", "mail/jdoe", m["id"].as_u64().unwrap());
    assert!(text.contains("by smtp.acme.com"), "{text}");
    assert!(text.contains("by mail.acme.com"), "{text}");
    assert!(text.contains("127.0.0.9"), "the client's address: {text}");
    assert_eq!(acme.domain.stat("Mail/Acme", "Mail.Delivered"), 1);
    assert_eq!(acme.domain.stat("SMTP/Acme", "Mail.Delivered"), 0);
}

/// (c) SMTP/Acme relays for no one; Mail/Acme takes no mail without AUTH.
fn no_one_relays_anonymously(acme: &Acme) {
    let mut c = RawSmtp::connect_from(INTERNET_CLIENT, acme.gateway());
    let r = c.cmd("MAIL FROM:<spammer@example.net>");
    assert!(r.starts_with("250"), "MAIL: {r}");
    let r = c.cmd("RCPT TO:<someone@example.org>");
    assert!(r.starts_with("550 5.7.1"), "anonymous relaying: {r}");
    c.cmd("QUIT");

    let mut c = RawSmtp::connect_from(INTERNET_CLIENT, acme.mail_server());
    let r = c.cmd("MAIL FROM:<jane.doe@acme.com>");
    assert!(r.starts_with("530"), "MAIL without AUTH: {r}");
    c.cmd("QUIT");

    // Nor from this machine's own address.
    let mut c = RawSmtp::connect(acme.mail_server());
    c.cmd("EHLO client.test");
    let r = c.cmd("MAIL FROM:<jane.doe@acme.com>");
    assert!(r.starts_with("530"), "MAIL without AUTH: {r}");
    c.cmd("QUIT");

    for s in ["Mail/Acme", "SMTP/Acme"] {
        assert_eq!(acme.domain.stat(s, "Mail.TotalPending"), 0, "{s}");
    }
}

/// (b) Jane → Mail/Acme → SMTP/Acme → the relay host, once.
fn jane_reaches_the_internet(acme: &Acme) {
    let subject = "from Jane";
    jane_sends(acme, "someone@example.org", subject);
    let ours = || -> Vec<common::Sunk> {
        acme.sink
            .messages()
            .into_iter()
            .filter(|m| m.data.contains(&format!("Subject: {subject}\r\n")))
            .collect()
    };
    wait_for(|| !ours().is_empty(), "the message at the relay host");
    wait_for(
        || acme.domain.stat("SMTP/Acme", "Mail.Transferred.SMTP") == 1,
        "SMTP/Acme's SMTP transfer counted",
    );
    acme.settled();
    let got = ours();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].from, "jane.doe@acme.com");
    assert_eq!(got[0].rcpts, ["someone@example.org"]);
    assert!(got[0].data.contains("by mail.acme.com"), "{}", got[0].data);
    assert!(got[0].data.contains("by smtp.acme.com"), "{}", got[0].data);
    assert_eq!(acme.domain.stat("Mail/Acme", "Mail.Transferred.NRPC"), 1);
    assert_eq!(acme.domain.stat("Mail/Acme", "Mail.Transferred.SMTP"), 0);
}

/// (d) The relay host refuses the recipient (550): Jane gets a Delivery
/// Failure Report, from SMTP/Acme, in her mail file.
fn refused_recipient_is_reported_to_jane(acme: &Acme) {
    let before = acme.jane().len();
    jane_sends(acme, "reject-me@example.org", "to a refused address");
    acme.domain.wait_mail("Mail/Acme", "mail/jdoe", before + 1);
    acme.settled();
    let jane = acme.jane();
    let reports: Vec<_> = jane
        .iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with("DELIVERY FAILURE"))
        })
        .collect();
    assert_eq!(reports.len(), 1, "{jane:#?}");
    assert_eq!(jane.len(), before + 1, "{jane:#?}");
    let report = reports[0];
    assert_eq!(
        report["route_servers"],
        serde_json::json!(["SMTP/Acme", "Mail/Acme"]),
        "{report}"
    );
    let text = acme
        .domain
        .mailfile_show("Mail/Acme", "mail/jdoe", report["id"].as_u64().unwrap());
    assert!(text.contains("reject-me@example.org"), "{text}");
    assert!(text.contains("550 5.1.1"), "{text}");
    assert!(
        text.contains("Routing path: Mail/Acme, SMTP/Acme"),
        "{text}"
    );
    assert!(text.contains("Subject: to a refused address"), "{text}");
    assert!(
        !acme
            .sink
            .messages()
            .iter()
            .any(|m| m.rcpts.iter().any(|r| r.starts_with("reject"))),
        "the refused recipient was not refused"
    );
}

fn the_acme_design(acme: &Acme) {
    internet_mail_reaches_jane(acme);
    no_one_relays_anonymously(acme);
    jane_reaches_the_internet(acme);
    refused_recipient_is_reported_to_jane(acme);
    let queues = acme.domain.console("SMTP/Acme", "tell router show queues");
    assert!(queues.starts_with("Msgs State"), "{queues}");
}

#[test]
fn acme_in_one_process() {
    let acme = &mut Acme::new();
    acme.domain.start(&[], &["Mail/Acme", "SMTP/Acme"]);
    the_acme_design(acme);
}

#[test]
fn acme_in_two_processes() {
    let acme = &mut Acme::new();
    acme.domain.start(&["Mail/Acme"], &["Mail/Acme"]);
    acme.domain.start(&["SMTP/Acme"], &["SMTP/Acme"]);
    the_acme_design(acme);
}

/// The example as shipped is a valid directory.
#[test]
fn the_example_checks() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/acme/directory.toml"
    );
    let out = Command::new(common::BIN)
        .args(["check", "--directory", path])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("valid (2 servers, 2 persons, 1 groups)"),
        "{stdout}"
    );
}
