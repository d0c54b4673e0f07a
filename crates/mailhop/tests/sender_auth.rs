//! SPF, DKIM, DMARC and ARC of inbound mail, end to end: a real mailhop
//! process, clients "from the Internet" at 127.0.0.9 and 127.0.0.10, a
//! loopback DNS server publishing SPF, DKIM and DMARC records of the zone
//! `test.`, messages signed here with keys `mailhop dkim keygen` made for
//! the test, and the `Authentication-Results:` header read in the mail file.

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use common::dkim::{TestKey, authenticator, keygen};
use common::*;
use testkit::Rr;

const GOOD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);
const BAD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 10);

/// The keys of the test's senders, made in `dir`.
struct Keys {
    rsa: TestKey,
    ed: TestKey,
    arc: TestKey,
}

fn keys(dir: &std::path::Path) -> Keys {
    Keys {
        rsa: keygen(dir, "sender.test", "rsa", "rsa"),
        ed: keygen(dir, "sender.test", "ed", "ed25519"),
        arc: keygen(dir, "fwd.test", "arc", "ed25519"),
    }
}

/// The senders' zone: SPF of the HELO name and of four domains, DMARC
/// `p=reject` for sender.test and `p=quarantine` for quar.test, the keys.
fn zone(keys: &Keys) -> Vec<Rr> {
    vec![
        Rr::A("mx.sender.test.", GOOD),
        Rr::Txt("mx.sender.test.", "v=spf1 a -all"),
        Rr::Txt("sender.test.", "v=spf1 ip4:127.0.0.9 -all"),
        Rr::Txt("_dmarc.sender.test.", "v=DMARC1; p=reject"),
        Rr::Txt("soft.test.", "v=spf1 ip4:192.0.2.1 ~all"),
        Rr::Txt("quar.test.", "v=spf1 ip4:192.0.2.1 -all"),
        Rr::Txt("_dmarc.quar.test.", "v=DMARC1; p=quarantine"),
        keys.rsa.record(),
        keys.ed.record(),
        keys.arc.record(),
    ]
}

struct World {
    _rt: tokio::runtime::Runtime,
    dns: testkit::Dns,
    keys: Keys,
    _keys_dir: tempfile::TempDir,
}

fn world() -> World {
    let keys_dir = tempfile::tempdir().unwrap();
    let keys = keys(keys_dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dns = rt.block_on(testkit::Dns::start(zone(&keys)));
    World {
        _rt: rt,
        dns,
        keys,
        _keys_dir: keys_dir,
    }
}

fn server(dns: SocketAddr, policy: &str, extra_inbound: &str) -> TestServer {
    let config = format!(
        "dns_servers = [\"{dns}\"]\n[configuration.inbound]\nverify_sender_authentication = true\ndmarc_policy = \"{policy}\"\n{extra_inbound}"
    );
    TestServer::start(Setup::config(&config))
}

/// A message with CRLF line ends.
fn message(from: &str, subject: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "{extra}From: <{from}>\r\nTo: <jane.doe@acme.com>\r\nSubject: {subject}\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <{}@test>\r\n\r\n{body}\r\n",
        subject.replace(' ', "-")
    )
    .into_bytes()
}

/// A client at `ip` that said `EHLO mx.sender.test`.
fn client(ip: Ipv4Addr, server: &TestServer) -> RawSmtp {
    let (mut c, greeting) = RawSmtp::open_from(ip, server.smtp);
    assert!(greeting.starts_with("220"), "{greeting}");
    assert!(c.cmd("EHLO mx.sender.test").starts_with("250"));
    c
}

/// One transaction of `data` (CRLF, no line starting with a dot) to Jane;
/// the reply to its end.
fn send(c: &mut RawSmtp, mail_from: &str, data: &[u8]) -> String {
    let r = c.cmd(&format!("MAIL FROM:<{mail_from}>"));
    assert!(r.starts_with("250"), "MAIL: {r}");
    let r = c.cmd("RCPT TO:<jane.doe@acme.com>");
    assert!(r.starts_with("250"), "RCPT: {r}");
    let r = c.cmd("DATA");
    assert!(r.starts_with("354"), "DATA: {r}");
    assert!(!data.windows(3).any(|w| w == b"\n.\r" || w == b"\n.."));
    c.send(data);
    c.cmd(".")
}

/// Jane's messages by subject, as stored.
fn stored(server: &TestServer, n: usize) -> BTreeMap<String, String> {
    let list = server.wait_mail("mail/jdoe", n);
    assert_eq!(list.len(), n, "{list:#?}");
    list.iter()
        .map(|m| {
            let subject = m["subject"].as_str().unwrap().to_owned();
            let text = server.mailfile_show("mail/jdoe", m["id"].as_u64().unwrap());
            (subject, text)
        })
        .collect()
}

/// The `Authentication-Results:` header at the top of a stored message.
fn results(text: &str) -> &str {
    assert!(
        text.starts_with("Authentication-Results: mail.acme.com;\r\n"),
        "not on top:\n{text}"
    );
    let end = text
        .match_indices("\r\n")
        .map(|(i, _)| i + 2)
        .find(|&i| !text[i..].starts_with('\t'))
        .unwrap();
    &text[..end]
}

#[test]
fn report_writes_spf_dkim_dmarc_and_arc_results_and_stores_every_message() {
    let w = world();
    let server = server(w.dns.addr, "report", "");
    let k = &w.keys;
    let mut good = client(GOOD, &server);
    // SPF pass; claims of our authserv-id go, another server's stay.
    let forged = "Authentication-Results: mail.acme.com; spf=pass; dkim=pass; dmarc=pass\r\n\
                  Authentication-Results: mx.elsewhere.test; spf=fail\r\n";
    let r = send(
        &mut good,
        "a@sender.test",
        &message("a@sender.test", "spf pass", forged, "hi"),
    );
    assert!(r.starts_with("250"), "{r}");
    for (domain, subject) in [("soft.test", "spf softfail"), ("nospf.test", "spf none")] {
        let from = format!("a@{domain}");
        let r = send(&mut good, &from, &message(&from, subject, "", "hi"));
        assert!(r.starts_with("250"), "{r}");
    }
    // Signed by sender.test, sent with another domain's bounce address:
    // DMARC passes by DKIM alone.
    let signed = k
        .rsa
        .sign(&message("a@sender.test", "dkim rsa", "", "signed body"));
    assert!(send(&mut good, "bounce@nospf.test", &signed).starts_with("250"));
    let signed =
        k.ed.sign(&message("a@sender.test", "dkim ed25519", "", "signed body"));
    assert!(send(&mut good, "bounce@nospf.test", &signed).starts_with("250"));
    // The body altered after signing: DKIM fails, and so does DMARC.
    let signed = k
        .rsa
        .sign(&message("a@sender.test", "dkim altered", "", "signed body"));
    let altered = String::from_utf8(signed)
        .unwrap()
        .replace("signed body", "another body");
    assert!(send(&mut good, "bounce@nospf.test", altered.as_bytes()).starts_with("250"));
    // Twelve signatures: ten are verified, the rest reported as one.
    let plain = message("a@sender.test", "many signatures", "", "signed body");
    let mut many = Vec::new();
    for _ in 0..12 {
        let signed = k.rsa.sign(&plain);
        many.extend_from_slice(&signed[..signed.len() - plain.len()]);
    }
    many.extend_from_slice(&plain);
    assert!(send(&mut good, "bounce@nospf.test", &many).starts_with("250"));
    // Forwarded: DKIM-signed by sender.test, then ARC-sealed by fwd.test.
    let signed = k
        .rsa
        .sign(&message("a@sender.test", "arc sealed", "", "signed body"));
    let sealed = arc_seal(w.dns.addr, &k.arc, &signed);
    assert!(send(&mut good, "bounce@nospf.test", &sealed).starts_with("250"));
    good.cmd("QUIT");
    // SPF fail: the wrong address for both the sender and the HELO name;
    // DMARC fails with p=reject, and `report` stores it all the same.
    let mut bad = client(BAD, &server);
    let r = send(
        &mut bad,
        "a@sender.test",
        &message("a@sender.test", "spf fail", "", "hi"),
    );
    assert!(r.starts_with("250"), "{r}");
    bad.cmd("QUIT");

    let mail = stored(&server, 9);
    let text = &mail["spf pass"];
    assert_eq!(
        results(text),
        "Authentication-Results: mail.acme.com;\r\n\
         \tspf=pass (domain of sender.test designates 127.0.0.9 as permitted sender) smtp.mailfrom=a@sender.test;\r\n\
         \tspf=pass (domain of mx.sender.test designates 127.0.0.9 as permitted sender) smtp.helo=mx.sender.test;\r\n\
         \tdkim=none;\r\n\
         \tarc=none;\r\n\
         \tdmarc=pass header.from=sender.test policy.dmarc=reject\r\n"
    );
    assert_eq!(
        text.matches("Authentication-Results: mail.acme.com")
            .count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("Authentication-Results: mx.elsewhere.test; spf=fail\r\n"),
        "{text}"
    );

    let softfail = results(&mail["spf softfail"]);
    assert!(softfail.contains("\tspf=softfail (domain of soft.test reports soft fail for 127.0.0.9) smtp.mailfrom=a@soft.test;"), "{softfail}");
    assert!(
        softfail.contains("\tdmarc=none header.from=soft.test"),
        "{softfail}"
    );
    let none = results(&mail["spf none"]);
    assert!(
        none.contains("\tspf=none (no SPF record for nospf.test) smtp.mailfrom=a@nospf.test;"),
        "{none}"
    );
    assert!(
        none.contains("\tdmarc=none header.from=nospf.test"),
        "{none}"
    );
    let fail = results(&mail["spf fail"]);
    assert!(fail.contains("\tspf=fail (domain of sender.test does not designate 127.0.0.10 as permitted sender) smtp.mailfrom=a@sender.test;"), "{fail}");
    assert!(fail.contains("\tspf=fail (domain of mx.sender.test does not designate 127.0.0.10 as permitted sender) smtp.helo=mx.sender.test;"), "{fail}");
    assert!(fail.contains("\tdmarc=fail (neither SPF nor DKIM passes for the From: domain) header.from=sender.test policy.dmarc=reject"), "{fail}");

    let rsa = results(&mail["dkim rsa"]);
    assert!(
        rsa.contains("\tdkim=pass header.d=sender.test header.s=rsa header.a=rsa-sha256 header.b="),
        "{rsa}"
    );
    assert!(
        rsa.contains("\tdmarc=pass header.from=sender.test"),
        "{rsa}"
    );
    let ed = results(&mail["dkim ed25519"]);
    assert!(
        ed.contains(
            "\tdkim=pass header.d=sender.test header.s=ed header.a=ed25519-sha256 header.b="
        ),
        "{ed}"
    );
    assert!(ed.contains("\tdmarc=pass header.from=sender.test"), "{ed}");
    let altered = results(&mail["dkim altered"]);
    assert!(
        altered
            .contains("\tdkim=fail (body hash did not verify) header.d=sender.test header.s=rsa"),
        "{altered}"
    );
    assert!(altered.contains("\tdmarc=fail "), "{altered}");
    let many = results(&mail["many signatures"]);
    assert_eq!(many.matches("\tdkim=pass ").count(), 10, "{many}");
    assert!(
        many.contains("\tdkim=policy (2 more signatures not verified: at most 10 are);"),
        "{many}"
    );
    let arc = results(&mail["arc sealed"]);
    assert!(arc.contains("\tarc=pass (i=1);"), "{arc}");
    assert!(arc.contains("\tdkim=pass header.d=sender.test"), "{arc}");

    for (name, value) in [
        ("SMTP.SPF.Pass", 1),
        ("SMTP.SPF.SoftFail", 1),
        ("SMTP.SPF.Fail", 1),
        ("SMTP.SPF.None", 6),
        ("SMTP.DKIM.Pass", 13),
        ("SMTP.DKIM.Fail", 1),
        ("SMTP.DKIM.Policy", 1),
        ("SMTP.DKIM.None", 4),
        ("SMTP.DMARC.Pass", 5),
        ("SMTP.DMARC.Fail", 2),
        ("SMTP.DMARC.None", 2),
        ("SMTP.ARC.Pass", 1),
        ("SMTP.AuthenticationResults.Removed", 1),
        ("SMTP.Messages.Refused.DMARC", 0),
    ] {
        assert_eq!(server.stat(name), value, "{name}");
    }
}

/// `message` sealed by `key`'s domain as a forwarder would: its own
/// results, then the ARC set on top.
fn arc_seal(dns: SocketAddr, key: &TestKey, message: &[u8]) -> Vec<u8> {
    use mail_auth::common::headers::HeaderWriter as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let auth = authenticator(dns);
        let parsed = mail_auth::AuthenticatedMessage::parse(message).unwrap();
        let dkim = auth.verify_dkim(&parsed).await;
        let arc = auth.verify_arc(&parsed).await;
        let results = mail_auth::AuthenticationResults::new("fwd.test")
            .with_dkim_results(&dkim, "a@sender.test")
            .with_arc_result(&arc, "192.0.2.7".parse().unwrap());
        let set = mail_auth::arc::ArcSealer::from_key(key.key())
            .domain(key.domain.clone())
            .selector(key.selector.clone())
            .headers(["From", "To", "Subject", "DKIM-Signature"])
            .seal(&parsed, &results, &arc)
            .unwrap();
        let mut out = set.to_header().into_bytes();
        out.extend_from_slice(message);
        out
    })
}

#[test]
fn enforce_refuses_p_reject_and_holds_p_quarantine_until_released() {
    let w = world();
    let server = server(w.dns.addr, "enforce", "");
    // DMARC fails by SPF (the wrong address) for a p=reject domain.
    let mut bad = client(BAD, &server);
    let r = send(
        &mut bad,
        "a@sender.test",
        &message("a@sender.test", "spoofed", "", "hi"),
    );
    assert_eq!(status(&r), "550 5.7.1", "{r}");
    assert!(r.contains("DMARC") && r.contains("sender.test"), "{r}");
    bad.cmd("QUIT");
    let mut good = client(GOOD, &server);
    // DMARC fails by DKIM (the body altered), SPF of another domain.
    let signed = w
        .keys
        .rsa
        .sign(&message("a@sender.test", "altered", "", "body"));
    let altered = String::from_utf8(signed)
        .unwrap()
        .replace("\r\n\r\nbody", "\r\n\r\nBODY");
    let r = send(&mut good, "bounce@nospf.test", altered.as_bytes());
    assert_eq!(status(&r), "550 5.7.1", "{r}");
    // p=quarantine: held, with DMARC and the domain as the reason.
    let r = send(
        &mut good,
        "a@quar.test",
        &message("a@quar.test", "quarantined", "", "hi"),
    );
    assert!(r.starts_with("250"), "{r}");
    // DMARC passes: delivered.
    let r = send(
        &mut good,
        "a@sender.test",
        &message("a@sender.test", "genuine", "", "hi"),
    );
    assert!(r.starts_with("250"), "{r}");
    good.cmd("QUIT");

    wait_for(|| server.stat("Mail.Hold") == 1, "one held message");
    let held = server.console("show mailbox held");
    assert!(
        held.contains("Held: DMARC policy quarantine for quar.test"),
        "{held}"
    );
    let mail = stored(&server, 1);
    assert!(mail.contains_key("genuine"), "{mail:?}");
    assert_eq!(server.stat("SMTP.Messages.Refused.DMARC"), 2);
    assert_eq!(server.stat("SMTP.DMARC.Quarantined"), 1);
    assert_eq!(server.stat("SMTP.DMARC.Fail"), 3);

    server.console("tell router release held");
    let mail = stored(&server, 2);
    let released = results(&mail["quarantined"]);
    assert!(released.contains("\tdmarc=fail "), "{released}");
    assert!(
        released.contains("header.from=quar.test policy.dmarc=quarantine"),
        "{released}"
    );
    wait_for(|| server.stat("Mail.Hold") == 0, "nothing held");
    wait_for(
        || server.stat("Mail.TotalPending") == 0,
        "an empty mail box",
    );
    assert_eq!(server.mailfile("mail/jdoe").len(), 2, "one copy each");
}

#[test]
fn dns_that_does_not_answer_is_a_temperror_never_a_refusal() {
    // A port nobody answers on.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    drop(silent);
    let server = server(addr, "enforce", "");
    let mut c = client(BAD, &server);
    let r = send(
        &mut c,
        "a@sender.test",
        &message("a@sender.test", "no dns", "", "hi"),
    );
    assert!(r.starts_with("250"), "{r}");
    c.cmd("QUIT");
    let mail = stored(&server, 1);
    let header = results(&mail["no dns"]);
    assert!(
        header.contains("\tspf=temperror (DNS did not answer) smtp.mailfrom=a@sender.test;"),
        "{header}"
    );
    assert!(header.contains("\tdmarc=temperror"), "{header}");
    assert_eq!(server.stat("SMTP.Messages.Refused.DMARC"), 0);
}

/// A DNS server that never answers, to see whether anything was asked.
struct Listening(std::net::UdpSocket);

impl Listening {
    fn new() -> Listening {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        Listening(s)
    }

    fn addr(&self) -> SocketAddr {
        self.0.local_addr().unwrap()
    }

    /// Nothing was asked so far (a question sent before a reply we read is
    /// in the socket's queue already).
    fn asked_nothing(&self) -> bool {
        let mut buf = [0u8; 512];
        matches!(self.0.recv(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

fn auth_plain(c: &mut RawSmtp) {
    use base64::Engine as _;
    let token =
        base64::engine::general_purpose::STANDARD.encode("\0jane.doe@acme.com\0jane-secret");
    let r = c.cmd(&format!("AUTH PLAIN {token}"));
    assert!(r.starts_with("235"), "AUTH: {r}");
}

#[test]
fn internal_authenticated_and_off_mean_nothing_asked_and_no_results_added() {
    let dns = Listening::new();
    let forged = "Authentication-Results: mail.acme.com; dmarc=pass\r\n";
    // On, for an internal host and for a client that logged in.
    let server = server(dns.addr(), "enforce", "internal_hosts = [\"127.0.0.1\"]");
    let mut inside = client(Ipv4Addr::LOCALHOST, &server);
    let r = send(
        &mut inside,
        "a@sender.test",
        &message("a@sender.test", "internal", forged, "hi"),
    );
    assert!(r.starts_with("250"), "{r}");
    let mut user = client(GOOD, &server);
    auth_plain(&mut user);
    let r = send(
        &mut user,
        "a@sender.test",
        &message("a@sender.test", "logged in", forged, "hi"),
    );
    assert!(r.starts_with("250"), "{r}");
    assert!(dns.asked_nothing());
    let mail = stored(&server, 2);
    for text in mail.values() {
        assert!(text.starts_with("Received: "), "nothing on top:\n{text}");
        // A claim of this server's authserv-id is removed from any message.
        assert!(!text.contains("Authentication-Results:"), "{text}");
    }
    assert_eq!(server.stat("SMTP.AuthenticationResults.Removed"), 2);
    drop(server);

    // Off (the default): a stranger's message is not looked at, and left
    // as it came.
    let config = format!("dns_servers = [\"{}\"]", dns.addr());
    let server = TestServer::start(Setup::config(&config));
    let mut stranger = client(BAD, &server);
    let r = send(
        &mut stranger,
        "a@sender.test",
        &message("a@sender.test", "off", forged, "hi"),
    );
    assert!(r.starts_with("250"), "{r}");
    assert!(dns.asked_nothing());
    let mail = stored(&server, 1);
    assert!(mail["off"].starts_with("Received: "), "{}", mail["off"]);
    assert!(mail["off"].contains(forged), "{}", mail["off"]);
    assert_eq!(
        server.stat("SMTP.SPF.Pass") + server.stat("SMTP.SPF.Fail"),
        0
    );
}
