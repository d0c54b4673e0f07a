//! Users read their mail files over POP3 and IMAP with their Internet password.

mod common;

use common::*;

fn python(script: &str) {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn delivered_mail_is_read_over_pop3_and_imap() {
    let server = TestServer::start(Setup::default());
    let mut c = server.client();
    for i in 0..3 {
        assert!(
            c.mail(
                "a@example.org",
                &["jane.doe@acme.com"],
                &message("a@example.org", "jane.doe@acme.com", &format!("note {i}"))
            )
            .starts_with("250")
        );
    }
    server.wait_mail("mail/jdoe", 3);

    // IMAP: login by common name (fewer-names), read, flag, IDLE sees a new delivery.
    python(&format!(
        r#"
import imaplib
m = imaplib.IMAP4("127.0.0.1", {imap})
typ, _ = m.login("\"Jane Doe\"", "jane-secret")  # imaplib does not quote user names
assert typ == "OK"
typ, data = m.select("INBOX")
assert data[0] == b"3", data
typ, data = m.uid("SEARCH", None, "SUBJECT", '"note 1"')
assert data[0].split() == [b"2"], data
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert b"note 0" in data[0][1], data
m.store("1", "+FLAGS", "\\Seen")
typ, data = m.search(None, "UNSEEN")
assert data[0].split() == [b"2", b"3"], data
typ, data = m.list()
names = b" ".join(data)
assert b"Sent" in names and b"Trash" in names, data
m.logout()
# a wrong password and an ambiguous name are refused
m = imaplib.IMAP4("127.0.0.1", {imap})
for user, pw in (("\"Jane Doe\"", "nope"), ("smith", "x")):
    try:
        m.login(user, pw)
        raise SystemExit("login accepted: " + user)
    except imaplib.IMAP4.error:
        pass
"#,
        imap = server.imap.port()
    ));

    // POP3: login by Internet address, retrieve, delete one, which IMAP then no longer sees.
    python(&format!(
        r#"
import poplib
p = poplib.POP3("127.0.0.1", {pop3})
assert p.getwelcome().startswith(b"+OK")
p.user("jane.doe@acme.com")
p.pass_("jane-secret")
count, size = p.stat()
assert count == 3, count
resp, lines, _ = p.retr(3)
assert b"Subject: note 2" in lines, lines
p.dele(3)
p.quit()
p = poplib.POP3("127.0.0.1", {pop3})
p.user("jane.doe@acme.com"); p.pass_("jane-secret")
assert p.stat()[0] == 2
p.quit()
"#,
        pop3 = server.pop3.port()
    ));
    assert_eq!(server.mailfile("mail/jdoe").len(), 2);

    let tasks = server.console("show tasks");
    assert!(
        tasks.contains(&format!(
            "POP3 Server            Listen for connect requests on TCP Port {}",
            server.pop3.port()
        )),
        "{tasks}"
    );
    assert!(
        tasks.contains(&format!(
            "IMAP Server            Listen for connect requests on TCP Port {}",
            server.imap.port()
        )),
        "{tasks}"
    );
    assert!(server.stat("POP3.Logins.Successful") >= 2);
    assert!(server.stat("IMAP.Logins.Failed") >= 2);

    // tell pop3 quit / load pop3
    assert!(
        server
            .console("tell pop3 quit")
            .contains("1 listeners stopped")
    );
    assert!(std::net::TcpStream::connect(server.pop3).is_err());
    assert!(!server.console("show tasks").contains("POP3 Server"));
    assert!(server.console("load pop3").contains("Started"));
    wait_for(
        || std::net::TcpStream::connect(server.pop3).is_ok(),
        "POP3 again",
    );
}
