//! Servers of one domain hand mail to each other over the native protocol
//! (NRPC): mutual TLS under the domain's certifier, durable on the receiver
//! before it answers, every copy once. Real processes, real sockets.

mod common;

use std::process::Command;

use common::domain::Domain;
use common::{RawSmtp, message};

/// Two servers on one Notes named network; the user's mail file is on B.
const PAIR: &str = r#"
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
smtp_auth = "off"
networks = ["LAN"]
data = "data/b"

[server.listen]
smtp = "127.0.0.1:{PORT:b-smtp}"
native = "127.0.0.1:{PORT:b-native}"

[[configuration]]
server = "*"

[[person]]
full_name = "CN=Jane Doe/O=Acme"
short_name = "jdoe"
internet_address = "jane.doe@acme.com"
mail_server = "B/Acme"
mail_file = "mail/jdoe"

[[person]]
full_name = "CN=John Smith/O=Acme"
short_name = "jsmith"
internet_address = "john.smith@acme.com"
mail_server = "A/Acme"
mail_file = "mail/jsmith"
"#;

fn send(domain: &Domain, port: &str, to: &[&str], subject: &str) {
    let mut c = RawSmtp::connect(domain.addr(port));
    c.cmd("EHLO client.test");
    let r = c.mail(
        "sender@example.org",
        to,
        &message("sender@example.org", to[0], subject),
    );
    assert!(r.starts_with("250"), "{r}");
    c.cmd("QUIT");
}

/// Sends `n` messages to Jane (on B) by SMTP to A, and one to John (on A)
/// by SMTP to B; every copy arrives once, with both servers in its
/// `RouteServers` and `Received:` headers, and no routing items line.
fn one_hop_each_way(domain: &Domain, n: usize) {
    for i in 0..n {
        send(
            domain,
            "a-smtp",
            &["jane.doe@acme.com"],
            &format!("to B {i}"),
        );
    }
    send(domain, "b-smtp", &["john.smith@acme.com"], "to A");

    let jane = domain.wait_mail("B/Acme", "mail/jdoe", n);
    let john = domain.wait_mail("A/Acme", "mail/jsmith", 1);
    common::wait_for(
        || domain.stat("A/Acme", "Mail.Transferred.NRPC") == n as i64,
        "A's transfers recorded",
    );
    common::wait_for(
        || domain.stat("B/Acme", "Mail.Delivered") == n as i64,
        "B's deliveries recorded",
    );
    // Count the copies: each subject once.
    assert_eq!(jane.len(), n, "{jane:#?}");
    for i in 0..n {
        let subject = format!("to B {i}");
        let copies = jane.iter().filter(|m| m["subject"] == subject).count();
        assert_eq!(copies, 1, "{subject}: {jane:#?}");
    }
    assert_eq!(john.len(), 1);
    for m in &jane {
        assert_eq!(
            m["route_servers"],
            serde_json::json!(["A/Acme", "B/Acme"]),
            "{m}"
        );
        assert_eq!(m["route_times"].as_array().unwrap().len(), 2);
    }
    assert_eq!(
        john[0]["route_servers"],
        serde_json::json!(["B/Acme", "A/Acme"])
    );
    let id = jane[0]["id"].as_u64().unwrap();
    let text = domain.mailfile_show("B/Acme", "mail/jdoe", id);
    assert!(text.contains("by a.acme.com"), "{text}");
    assert!(text.contains("by b.acme.com"), "{text}");
    assert!(
        !text.to_ascii_lowercase().contains("x-mailhop-transfer"),
        "{text}"
    );
    // Nothing is left in either mail box.
    for s in ["A/Acme", "B/Acme"] {
        common::wait_for(
            || domain.stat(s, "Mail.TotalPending") == 0,
            "an empty mail box",
        );
    }
    assert_eq!(domain.stat("A/Acme", "Mail.Delivered"), 1);
    assert_eq!(domain.stat("B/Acme", "Mail.Transferred.NRPC"), 1);
}

#[test]
fn servers_in_one_process_transfer_natively() {
    let domain = Domain::new(PAIR);
    domain.start(&[], &["A/Acme", "B/Acme"]);
    one_hop_each_way(&domain, 20);
    let queues = domain.console("A/Acme", "tell router show queues");
    assert!(queues.starts_with("Msgs State"), "{queues}");
}

#[test]
fn servers_in_two_processes_transfer_natively() {
    let domain = Domain::new(PAIR);
    domain.start(&["A/Acme"], &["A/Acme"]);
    domain.start(&["B/Acme"], &["B/Acme"]);
    one_hop_each_way(&domain, 5);
}

/// While B is down, A keeps the mail in its NRPC queue (Retry, with the
/// error); once B is up, `route B/Acme` sends it, once.
#[test]
fn mail_waits_for_a_server_that_is_down() {
    let domain = Domain::new(PAIR);
    domain.start(&["A/Acme"], &["A/Acme"]);
    send(&domain, "a-smtp", &["jane.doe@acme.com"], "waits");
    common::wait_for(
        || {
            domain
                .console("A/Acme", "tell router show queues")
                .contains("Retry")
        },
        "a Retry queue",
    );
    let queues = domain.console("A/Acme", "tell router show queues");
    assert!(queues.contains("NRPC B/Acme"), "{queues}");
    assert!(queues.contains("Last error:"), "{queues}");
    domain.start(&["B/Acme"], &["B/Acme"]);
    domain.console("A/Acme", "route B/Acme");
    let jane = domain.wait_mail("B/Acme", "mail/jdoe", 1);
    assert_eq!(jane.len(), 1);
    common::wait_for(
        || domain.stat("A/Acme", "Mail.TotalPending") == 0,
        "A's mail box empty",
    );
    assert_eq!(domain.mailfile("B/Acme", "mail/jdoe").len(), 1);
}

/// A peer that cannot show a certificate of this domain's certifier puts
/// nothing in the mail box, and the refusal names its address: no client
/// certificate, a certificate of another domain's certifier, or plain text.
#[test]
fn a_peer_without_the_domains_certificate_is_refused() {
    let domain = Domain::new(PAIR);
    domain.start(&["B/Acme"], &["B/Acme"]);
    // Another domain's server ID, from its own certifier.
    let other = Domain::new(&PAIR.replace("name = \"Acme\"", "name = \"Evil\""));
    let id = other.tmp.path().join("id");
    let out = Command::new(common::BIN)
        .args(["certify", "--directory"])
        .arg(&other.directory)
        .args(["--server", "A/Acme", "--out"])
        .arg(&id)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let native = domain.addr("b-native");
    let script = r#"
import smtplib, ssl, sys
host, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if cert != "-":
    ctx.load_cert_chain(cert, key)
try:
    s = smtplib.SMTP_SSL(host, port, context=ctx, timeout=10)
    s.ehlo("evil.example")
    s.sendmail("evil@example.org", ["jane.doe@acme.com"], "Subject: smuggled\r\n\r\nx\r\n")
    print("SENT")
except Exception as e:
    print("REFUSED", type(e).__name__, e)
"#;
    let run = |cert: &str, key: &str| {
        let out = Command::new("python3")
            .args([
                "-c",
                script,
                "127.0.0.1",
                &native.port().to_string(),
                cert,
                key,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let foreign = run(
        id.join("server.id.pem").to_str().unwrap(),
        id.join("server.id.key").to_str().unwrap(),
    );
    assert!(foreign.starts_with("REFUSED"), "{foreign}");
    let anonymous = run("-", "-");
    assert!(anonymous.starts_with("REFUSED"), "{anonymous}");
    // Plain text on the native port: no greeting, nothing taken.
    let mut plain = std::net::TcpStream::connect(native).unwrap();
    plain
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    use std::io::{Read, Write};
    let _ = plain.write_all(b"EHLO evil.example\r\nMAIL FROM:<x@y.z>\r\n");
    let mut buf = [0u8; 64];
    let n = plain.read(&mut buf).unwrap_or(0);
    assert!(!buf[..n].starts_with(b"220") && !buf[..n].starts_with(b"250"));

    assert_eq!(domain.stat("B/Acme", "Mail.TotalPending"), 0);
    assert!(domain.mailfile("B/Acme", "mail/jdoe").is_empty());
    common::wait_for(
        || {
            domain
                .log()
                .matches("NRPC: connection from 127.0.0.1")
                .count()
                >= 2
        },
        "the refusals in the log",
    );
}

/// Sends `n` messages to Jane by SMTP to A, one connection, each its own
/// subject `crash {i}`.
fn send_many(domain: &Domain, n: usize) {
    let mut c = RawSmtp::connect(domain.addr("a-smtp"));
    c.cmd("EHLO client.test");
    for i in 0..n {
        let subject = format!("crash {i}");
        let r = c.mail(
            "sender@example.org",
            &["jane.doe@acme.com"],
            &message("sender@example.org", "jane.doe@acme.com", &subject),
        );
        assert!(r.starts_with("250"), "{r}");
    }
    c.cmd("QUIT");
}

/// Every `crash {i}` is in Jane's mail file exactly once.
fn assert_each_once(domain: &Domain, n: usize) {
    let jane = domain.mailfile("B/Acme", "mail/jdoe");
    let mut copies = vec![0usize; n];
    for m in &jane {
        let subject = m["subject"].as_str().unwrap_or_default();
        let i: usize = subject.strip_prefix("crash ").unwrap().parse().unwrap();
        copies[i] += 1;
    }
    let wrong: Vec<(usize, usize)> = copies
        .iter()
        .enumerate()
        .filter(|(_, c)| **c != 1)
        .map(|(i, c)| (i, *c))
        .collect();
    assert!(wrong.is_empty(), "(message, copies) not once: {wrong:?}");
    assert_eq!(jane.len(), n);
}

/// Waits until Jane holds `n` messages, telling A to route to B now and
/// then (a failed hop waits for its retry time otherwise).
fn drain_to_b(domain: &Domain, n: usize) {
    common::wait_for(
        || {
            let _ = domain.try_console("A/Acme", "route B/Acme");
            domain.mailfile("B/Acme", "mail/jdoe").len() >= n
                && domain.stat("A/Acme", "Mail.TotalPending") == 0
        },
        "every message on B and A's mail box empty",
    );
}

/// SIGKILL the receiver in the middle of a stream of transfers, then
/// start it again: nothing is lost and nothing is delivered twice.
#[test]
fn a_receiver_killed_mid_transfer_loses_and_doubles_nothing() {
    const N: usize = 600;
    let domain = Domain::new(PAIR);
    domain.start(&["A/Acme"], &["A/Acme"]);
    domain.start(&["B/Acme"], &["B/Acme"]);
    std::thread::scope(|s| {
        s.spawn(|| send_many(&domain, N));
        common::wait_for(
            || domain.mailfile("B/Acme", "mail/jdoe").len() >= N / 10,
            "some mail on B",
        );
        domain.kill("B/Acme");
        let at_kill = domain.mailfile("B/Acme", "mail/jdoe").len();
        assert!(at_kill < N, "the kill came after the last transfer");
        domain.start(&["B/Acme"], &["B/Acme"]);
    });
    drain_to_b(&domain, N);
    assert_each_once(&domain, N);
}

/// SIGKILL the sender while it transfers: a transfer whose settlement it
/// did not record is sent again after the restart, and the receiver
/// recognises it.
#[test]
fn a_sender_killed_mid_transfer_loses_and_doubles_nothing() {
    const N: usize = 600;
    let domain = Domain::new(PAIR);
    // B is down while the mail arrives on A: it all waits in A's queue.
    domain.start(&["A/Acme"], &["A/Acme"]);
    send_many(&domain, N);
    domain.start(&["B/Acme"], &["B/Acme"]);
    domain.console("A/Acme", "route B/Acme");
    common::wait_for(
        || domain.mailfile("B/Acme", "mail/jdoe").len() >= N / 10,
        "some mail on B",
    );
    domain.kill("A/Acme");
    let at_kill = domain.mailfile("B/Acme", "mail/jdoe").len();
    assert!(at_kill < N, "the kill came after the last transfer");
    domain.start(&["A/Acme"], &["A/Acme"]);
    drain_to_b(&domain, N);
    assert_each_once(&domain, N);
}

/// `smtp_within_local_domain = "all"`: mail for another server of the
/// domain that listens for SMTP goes there by SMTP, straight to its port;
/// with `smtp_reachable = "same-network"` only when the servers share a
/// Notes named network, else natively.
#[test]
fn smtp_within_the_domain_when_the_directory_allows_it() {
    let all = PAIR.replace(
        "[[configuration]]\nserver = \"*\"\n",
        "[[configuration]]\nserver = \"*\"\nsmtp_within_local_domain = \"all\"\n",
    );
    let domain = Domain::new(&all);
    domain.start(&[], &["A/Acme", "B/Acme"]);
    send(&domain, "a-smtp", &["jane.doe@acme.com"], "by smtp");
    let jane = domain.wait_mail("B/Acme", "mail/jdoe", 1);
    assert_eq!(jane.len(), 1);
    common::wait_for(
        || domain.stat("A/Acme", "Mail.Transferred.SMTP") == 1,
        "the SMTP transfer counted",
    );
    assert_eq!(domain.stat("A/Acme", "Mail.Transferred.NRPC"), 0);
    drop(domain);

    // Not on one network, and SMTP only within one: natively, over the
    // connection document.
    let apart = all
        .replace(
            "smtp_within_local_domain = \"all\"\n",
            "smtp_within_local_domain = \"all\"\nsmtp_reachable = \"same-network\"\n",
        )
        .replace(
            "networks = [\"LAN\"]\ndata = \"data/b\"",
            "networks = [\"WAN\"]\ndata = \"data/b\"",
        )
        + "\n[[connection]]\ntype = \"native\"\nsource = \"A/Acme\"\ndestination = \"B/Acme\"\nroute_at_once_if = 1\n";
    let domain = Domain::new(&apart);
    domain.start(&[], &["A/Acme", "B/Acme"]);
    send(&domain, "a-smtp", &["jane.doe@acme.com"], "natively");
    let jane = domain.wait_mail("B/Acme", "mail/jdoe", 1);
    assert_eq!(jane.len(), 1);
    common::wait_for(
        || domain.stat("A/Acme", "Mail.Transferred.NRPC") == 1,
        "the native transfer counted",
    );
    assert_eq!(domain.stat("A/Acme", "Mail.Transferred.SMTP"), 0);
}
