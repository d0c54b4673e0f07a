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
