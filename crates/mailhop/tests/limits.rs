//! The directory's session limits reach the running listeners.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

/// The first line a refused connection gets.
fn first_line(addr: SocketAddr) -> String {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

#[test]
fn directory_session_limits_reach_smtp_and_pop3() {
    let server = TestServer::start(Setup::config(
        "smtp_max_sessions_per_host = 2\nsmtp_hard_error_limit = 3\naccess_max_sessions = 1",
    ));
    // The start-up probes are gone before counting.
    wait_for(
        || server.stat("SMTP.Sessions.Inbound.Active") == 0,
        "probe sessions to end",
    );
    let mut a = server.client();
    let mut b = server.client();
    assert_eq!(
        first_line(server.smtp),
        "421 4.7.0 mail.acme.com Too many sessions from your address; try again later\r\n"
    );
    assert_eq!(server.stat("SMTP.Sessions.Inbound.Refused.PerHost"), 1);

    // Three unknown recipients end the session.
    assert!(a.cmd("MAIL FROM:<harvest@example.org>").starts_with("250"));
    for n in 1..=2 {
        let r = a.cmd(&format!("RCPT TO:<nobody{n}@acme.com>"));
        assert!(r.starts_with("550 5.1.1"), "{r}");
    }
    let r = a.cmd("RCPT TO:<nobody3@acme.com>");
    assert!(r.starts_with("550 5.1.1"), "{r}");
    assert_eq!(
        a.reply(),
        "421 4.7.0 mail.acme.com Too many errors, closing connection\r\n"
    );
    assert_eq!(a.drain(), "");
    assert_eq!(server.stat("SMTP.Sessions.Inbound.TooManyErrors"), 1);

    // The other session still delivers.
    b.send_ok("a@example.org", &["jane.doe@acme.com"], "limits");
    assert_eq!(server.wait_mail("mail/jdoe", 1).len(), 1);

    // One POP3 session at a time.
    let pop3 = TcpStream::connect(server.pop3).unwrap();
    let mut pop3 = BufReader::new(pop3);
    let mut greeting = String::new();
    pop3.read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("+OK"), "{greeting}");
    assert_eq!(
        first_line(server.pop3),
        "-ERR [SYS/TEMP] too many sessions\r\n"
    );
}

#[test]
fn every_smtp_refusal_is_counted_by_its_kind() {
    let server = TestServer::start(Setup::config(
        "max_message_size = \"10KB\"\nsmtp_inflight_message_bytes = \"2KB\"\n\
         [configuration.inbound]\nrelay_enforcement = \"all\"",
    ));
    let mut c = server.client();
    // MAIL FROM: too big for the server, too big for the in-flight budget.
    let r = c.cmd("MAIL FROM:<a@example.org> SIZE=20000");
    assert!(r.starts_with("552 5.3.4"), "{r}");
    let r = c.cmd("MAIL FROM:<a@example.org> SIZE=5000");
    assert!(r.starts_with("452 4.3.1"), "{r}");
    // RCPT TO: relaying for a stranger, a user nobody is.
    assert!(c.cmd("MAIL FROM:<a@example.org>").starts_with("250"));
    let r = c.cmd("RCPT TO:<x@elsewhere.example>");
    assert!(r.starts_with("550 5.7.1"), "{r}");
    let r = c.cmd("RCPT TO:<nobody@acme.com>");
    assert!(r.starts_with("550 5.1.1"), "{r}");
    assert!(c.cmd("RCPT TO:<jane.doe@acme.com>").starts_with("250"));
    // DATA: a bare LF.
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd("Subject: bare\nline\r\n.");
    assert!(r.starts_with("554 5.5.2"), "{r}");
    // AUTH: a wrong password.
    let r = c.cmd("AUTH PLAIN AGphbmUuZG9lQGFjbWUuY29tAHdyb25n");
    assert!(r.starts_with("535 5.7.8"), "{r}");
    // Submission: no mail without AUTH.
    let mut s = RawSmtp::connect(server.submission);
    s.cmd("EHLO client.test");
    let r = s.cmd("MAIL FROM:<jane.doe@acme.com>");
    assert!(r.starts_with("530 5.7.0"), "{r}");

    let shown = server.console("show stat SMTP");
    for (name, value) in [
        ("SMTP.Messages.Refused.TooBig", 1),
        ("SMTP.Messages.Refused.InsufficientStorage", 1),
        ("SMTP.Recipients.Refused.RelayDenied", 1),
        ("SMTP.Recipients.Refused.Unknown", 1),
        ("SMTP.Messages.Refused.BareLF", 1),
        ("SMTP.Logins.Failed", 1),
        ("SMTP.Senders.Refused.AuthRequired", 1),
        ("SMTP.Messages.Refused.BareCR", 0),
        ("SMTP.Messages.Refused.NUL", 0),
        ("SMTP.Messages.Refused.LongLine", 0),
        ("SMTP.Messages.Refused.StoreUnavailable", 0),
        ("SMTP.Recipients.Refused.TooMany", 0),
        ("SMTP.Logins.Refused.EncryptionRequired", 0),
        ("SMTP.Logins.Successful", 0),
        ("SMTP.Sessions.Inbound.Refused.Busy", 0),
        ("SMTP.Sessions.Inbound.Refused.PerHost", 0),
        ("SMTP.Sessions.Inbound.TooManyErrors", 0),
    ] {
        assert!(
            shown.contains(&format!("  {name} = {value}\n")),
            "{name} = {value} not in:\n{shown}"
        );
    }
    assert_eq!(server.stat("SMTP.Messages.Rejected"), 1);
}
