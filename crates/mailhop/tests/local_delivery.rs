//! Local delivery end to end: a real mailhop process, real SMTP clients.

mod common;

use common::*;
use lettre::address::Envelope;
use lettre::{SmtpTransport, Transport};

fn lettre_send(server: &TestServer, from: &str, to: &[&str], data: &str) -> Result<(), String> {
    let transport = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.smtp.port())
        .build();
    let env = Envelope::new(
        Some(from.parse().unwrap()),
        to.iter().map(|t| t.parse().unwrap()).collect(),
    )
    .unwrap();
    transport
        .send_raw(&env, data.replace('\n', "\r\n").as_bytes())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn delivers_by_internet_address_short_name_and_alias_domain() {
    let server = TestServer::start(Setup::default());
    lettre_send(
        &server,
        "ext@example.org",
        &["jane.doe@acme.com"],
        &message("ext@example.org", "jane.doe@acme.com", "by address"),
    )
    .unwrap();
    lettre_send(
        &server,
        "ext@example.org",
        &["jdoe@acme.com"],
        &message("ext@example.org", "jdoe@acme.com", "by short name"),
    )
    .unwrap();
    lettre_send(
        &server,
        "ext@example.org",
        &["jane.doe@acme.nl"],
        &message("ext@example.org", "jane.doe@acme.nl", "by alias domain"),
    )
    .unwrap();
    let mail = server.wait_mail("mail/jdoe", 3);
    let subjects: Vec<&str> = mail
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["by address", "by short name", "by alias domain"]);
    assert_eq!(mail[0]["route_servers"][0], "Mail/Acme");
    assert!(
        mail[0]["message_id"]
            .as_str()
            .unwrap()
            .starts_with("by-address.")
    );
    let body = server.mailfile_show("mail/jdoe", mail[0]["id"].as_u64().unwrap());
    assert!(
        body.starts_with("Received: from "),
        "Received header first:\n{body}"
    );
    assert!(body.contains("by mail.acme.com"));
    assert_eq!(server.stat("Mail.Delivered"), 3);
}

#[test]
fn unknown_local_user_is_refused_at_rcpt() {
    let server = TestServer::start(Setup::default());
    let mut c = server.client();
    assert!(c.cmd("MAIL FROM:<a@example.org>").starts_with("250"));
    let r = c.cmd("RCPT TO:<nobody@acme.com>");
    assert!(r.starts_with("550 5.1.1"), "{r}");
    assert!(r.contains("not listed"), "{r}");
    // ... and the session goes on.
    assert!(c.cmd("RCPT TO:<jane.doe@acme.com>").starts_with("250"));
}

#[test]
fn relaying_for_strangers_is_refused() {
    let server = TestServer::start(Setup {
        config: "[configuration.inbound]\nrelay_enforcement = \"all\"",
        ..Setup::default()
    });
    let mut c = server.client();
    c.cmd("MAIL FROM:<a@example.org>");
    let r = c.cmd("RCPT TO:<someone@elsewhere.example>");
    assert!(r.starts_with("550 5.7.1"), "{r}");
}

#[test]
fn ambiguous_name_gets_a_report_in_the_senders_mail_file() {
    // Without verify_local_recipients the ambiguous name passes RCPT and
    // the router reports it.
    let server = TestServer::start(Setup::config("verify_local_recipients = false"));
    let mut c = server.client();
    let r = c.mail(
        "jane.doe@acme.com",
        &["smith@acme.com"],
        &message("jane.doe@acme.com", "smith@acme.com", "for smith"),
    );
    assert!(r.starts_with("250"), "{r}");
    let mail = server.wait_mail("mail/jdoe", 1);
    assert_eq!(mail.len(), 1);
    let subject = mail[0]["subject"].as_str().unwrap();
    assert!(subject.starts_with("DELIVERY FAILURE: Recipient user name smith@acme.com not unique.  Several matches found"), "{subject}");
    let report = server.mailfile_show("mail/jdoe", mail[0]["id"].as_u64().unwrap());
    assert!(report.contains("multipart/report"));
    assert!(
        report.contains("report-type=delivery-status")
            || report.contains("report-type=\"delivery-status\"")
    );
    assert!(
        report.contains("Subject: for smith"),
        "original headers attached"
    );
    assert!(server.mailfile("mail/jsmith").is_empty());
    assert!(server.mailfile("mail/msmith").is_empty());
    assert_eq!(server.stat("Mail.Reports.Failure"), 1);
}

#[test]
fn groups_expand_nested_with_each_address_once() {
    let server = TestServer::start(Setup::default());
    let mut c = server.client();
    // Sales holds Jane, Admin and Inner; Inner holds Jane again and Sales (a cycle).
    let r = c.mail(
        "ext@example.org",
        &["sales@acme.com", "jane.doe@acme.com"],
        &message("ext@example.org", "sales@acme.com", "to sales"),
    );
    assert!(r.starts_with("250"), "{r}");
    server.wait_mail("mail/admin", 1);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(server.mailfile("mail/jdoe").len(), 1, "Jane once");
    assert_eq!(server.mailfile("mail/admin").len(), 1, "Admin once");
    assert_eq!(server.stat("Mail.Delivered"), 2);
}

#[test]
fn quota_exceeded_sends_a_report() {
    let server = TestServer::start(Setup::default());
    let mut c = server.client();
    let big = format!(
        "{}{}\n",
        message("jane.doe@acme.com", "tiny@acme.com", "too big for tiny"),
        "x".repeat(8000)
    );
    assert!(
        c.mail("jane.doe@acme.com", &["tiny@acme.com"], &big)
            .starts_with("250")
    );
    let mail = server.wait_mail("mail/jdoe", 1);
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0]["subject"]
            .as_str()
            .unwrap()
            .contains("mail file size exceeds the maximum size")
    );
    assert!(server.mailfile("mail/tiny").is_empty());
    // a small message still fits
    c.send_ok("jane.doe@acme.com", &["tiny@acme.com"], "small");
    assert_eq!(server.wait_mail("mail/tiny", 1).len(), 1);
}

#[test]
fn over_size_message_is_refused_with_552() {
    let server = TestServer::start(Setup {
        config: "max_message_size = \"10KB\"",
        ..Setup::default()
    });
    let mut c = RawSmtp::connect(server.smtp);
    let ehlo = c.cmd("EHLO client.test");
    assert!(ehlo.contains("SIZE 10240"), "{ehlo}");
    let r = c.cmd("MAIL FROM:<a@example.org> SIZE=20000");
    assert!(r.starts_with("552"), "{r}");
    // Without SIZE=, during DATA
    assert!(c.cmd("MAIL FROM:<a@example.org>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<jane.doe@acme.com>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(format!("Subject: big\r\n\r\n{}\r\n", "y".repeat(30_000)).as_bytes());
    let r = c.cmd(".");
    assert!(r.starts_with("552"), "{r}");
    assert!(c.cmd("NOOP").starts_with("250"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(server.mailfile("mail/jdoe").is_empty());
}

#[test]
fn undeliverable_report_goes_dead_and_is_released_by_the_console() {
    // A sender nobody knows, writing to an ambiguous name: the report to the
    // sender cannot be delivered either, so it is Dead (RCPT does not
    // verify recipients here, or it would refuse the ambiguous name).
    let server = TestServer::start(Setup::config("verify_local_recipients = false"));
    let mut c = server.client();
    c.send_ok("ghost@acme.com", &["smith@acme.com"], "from a ghost");
    wait_for(|| server.stat("Mail.Dead") == 1, "a dead message");
    let stat = server.console("show stat mail");
    assert!(stat.contains("  Mail.Dead = 1\n"), "{stat}");
    assert!(stat.contains("  Mail.TotalPending = 1\n"), "{stat}");
    let boxed = server.console("show mailbox dead");
    assert!(boxed.contains("ghost@acme.com"), "{boxed}");
    assert!(boxed.contains("not listed"), "{boxed}");
    assert!(server.console("show server").contains("Dead mail: 1"));

    // The administrator adds the person, then releases the dead report.
    server.rewrite_directory(|t| {
        t + "\n[[person]]\nfull_name = \"CN=Ghost/O=Acme\"\nshort_name = \"ghost\"\ninternet_address = \"ghost@acme.com\"\nmail_server = \"Mail/Acme\"\nmail_file = \"mail/ghost\"\n"
    });
    wait_for(
        || {
            server
                .console("trace ghost@acme.com")
                .contains("mail/ghost")
        },
        "the reload",
    );
    let out = server.console("tell router release dead");
    assert!(out.contains("Released 1 dead"), "{out}");
    let mail = server.wait_mail("mail/ghost", 1);
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0]["subject"]
            .as_str()
            .unwrap()
            .starts_with("DELIVERY FAILURE")
    );
    wait_for(|| server.stat("Mail.Dead") == 0, "no dead mail");
}

#[test]
fn held_when_hold_undeliverable_and_deleted_by_the_console() {
    let server = TestServer::start(Setup {
        config: "hold_undeliverable = true\nverify_local_recipients = false",
        ..Setup::default()
    });
    let mut c = server.client();
    c.send_ok("jane.doe@acme.com", &["smith@acme.com"], "held one");
    wait_for(|| server.stat("Mail.Hold") == 1, "a held message");
    assert!(
        server.mailfile("mail/jdoe").is_empty(),
        "no report when held"
    );
    let boxed = server.console("show mailbox held");
    let id: i64 = boxed
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let out = server.console(&format!("tell router delete {id}"));
    assert!(out.contains("deleted"), "{out}");
    assert_eq!(server.stat("Mail.Hold"), 0);
}

#[test]
fn python_smtplib_delivers() {
    let server = TestServer::start(Setup::default());
    let script = format!(
        r#"
import smtplib
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "py@example.org"
m["To"] = "jane.doe@acme.com"
m["Subject"] = "from python ünïcode"
m.set_content("Hello from smtplib\n.leading dot line\n")
with smtplib.SMTP("127.0.0.1", {port}) as s:
    s.ehlo("python.test")
    assert s.has_extn("pipelining") and s.has_extn("8bitmime") and s.has_extn("enhancedstatuscodes")
    s.send_message(m)
    try:
        s.sendmail("py@example.org", ["nobody@acme.com"], "Subject: x\r\n\r\nx\r\n")
        raise SystemExit("unknown user accepted")
    except smtplib.SMTPRecipientsRefused as e:
        code, msg = e.recipients["nobody@acme.com"]
        assert code == 550, code
print("ok")
"#,
        port = server.smtp.port()
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = server.wait_mail("mail/jdoe", 1);
    assert_eq!(mail[0]["subject"], "from python ünïcode");
    let body = server.mailfile_show("mail/jdoe", mail[0]["id"].as_u64().unwrap());
    assert!(
        body.contains("\r\n.leading dot line"),
        "dot-stuffing undone:\n{body}"
    );
}

#[test]
fn smtp_debug_set_at_run_time_logs_the_conversation() {
    let server = TestServer::start(Setup::default());
    let mut c = RawSmtp::connect(server.smtp);
    c.cmd("EHLO quiet.test");
    assert!(!server.log().contains(">>> EHLO quiet.test"));
    assert_eq!(server.console("set config SMTPDebug=2"), "SMTPDebug=2\n");
    assert_eq!(server.console("show config SMTPDebug"), "SMTPDebug=2\n");
    let mut c = RawSmtp::connect(server.smtp);
    c.cmd("EHLO chatty.test");
    wait_for(
        || server.log().contains(">>> EHLO chatty.test"),
        "the command in the log",
    );
}
