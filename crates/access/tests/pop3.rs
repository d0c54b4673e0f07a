//! POP3 over real TCP on loopback: poplib as the client, raw sockets for edge cases.

mod common;

use access::Protocol;
use common::{Raw, message, python, start, start_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poplib_reads_and_deletes_on_quit() {
    let server = start().await;
    server
        .deliver(
            "mail/jdoe",
            (1..=3).map(|n| message(n, &format!("Hi {n}"))).collect(),
        )
        .await;
    let out = python(
        r#"
import poplib, sys
p = poplib.POP3('127.0.0.1', int(sys.argv[1]))
print(p.getwelcome().decode())
print(p.user('jdoe').decode())
print(p.pass_('secret').decode())
print(p.stat())
print(p.list()[1])
print(p.uidl()[1])
resp, lines, octets = p.retr(2)
print(b'\n'.join(lines).decode())
resp, lines, octets = p.top(1, 0)
print('TOP', len(lines), lines[-1])
print(p.dele(1).decode())
print(p.stat())
print(p.rset().decode())
print(p.dele(3).decode())
print(p.quit().decode())
"#,
        server.pop3.port(),
    )
    .await;
    assert!(
        out.contains("+OK mail.example.com POP3 server ready"),
        "{out}"
    );
    assert!(out.contains("+OK John Doe has 3 messages"), "{out}");
    assert!(out.contains("(3, "), "{out}");
    assert!(out.contains("Subject: Hi 2"), "{out}");
    assert!(
        out.contains("\n.dot line\n"),
        "dot-stuffing undone by the client: {out}"
    );
    assert!(out.contains("TOP 6 b''"), "header only: {out}");
    assert!(out.contains("+OK message 1 deleted"), "{out}");
    assert!(out.contains("(2, "), "{out}");
    assert!(out.contains("signing off (2 messages left)"), "{out}");
    let left: Vec<u32> = server
        .store
        .messages("mail/jdoe", "Inbox")
        .unwrap()
        .iter()
        .map(|m| m.uid)
        .collect();
    assert_eq!(left, vec![1, 2]);
    assert_eq!(server.stat(Protocol::Pop3, "POP3.Logins.Successful"), 1);
    assert!(server.stat(Protocol::Pop3, "POP3.Sessions.Inbound.BytesSent") > 0);
}

#[tokio::test]
async fn uidl_is_stable_and_list_sizes_match() {
    let server = start().await;
    let uids = server
        .deliver("mail/jdoe", vec![message(1, "a"), message(2, "b")])
        .await;
    let validity = server
        .store
        .folder("mail/jdoe", "Inbox")
        .unwrap()
        .unwrap()
        .uidvalidity;
    let mut c = Raw::connect(server.pop3).await;
    c.line().await;
    c.send(b"USER jdoe\r\nPASS secret\r\nUIDL\r\nUIDL 2\r\nLIST 1\r\nLIST 9\r\n")
        .await;
    c.line().await;
    c.line().await;
    let uidl = c.until(".").await;
    assert_eq!(uidl[1], format!("1 {validity}.{}\r\n", uids[0]));
    assert_eq!(uidl[2], format!("2 {validity}.{}\r\n", uids[1]));
    assert_eq!(c.line().await, format!("+OK 2 {validity}.{}\r\n", uids[1]));
    let size = message(1, "a").len();
    assert_eq!(c.line().await, format!("+OK 1 {size}\r\n"));
    assert!(c.line().await.starts_with("-ERR"));
}

#[tokio::test]
async fn deletions_only_happen_in_update_state() {
    let server = start().await;
    server
        .deliver("mail/jdoe", vec![message(1, "a"), message(2, "b")])
        .await;
    // DELE then disconnect without QUIT: nothing removed.
    let mut c = Raw::connect(server.pop3).await;
    c.line().await;
    c.send(b"USER jdoe\r\nPASS secret\r\nDELE 1\r\nDELE 1\r\n")
        .await;
    c.line().await;
    c.line().await;
    assert!(c.line().await.starts_with("+OK"));
    assert_eq!(c.line().await, "-ERR message already deleted\r\n");
    drop(c);
    let count = || server.store.messages("mail/jdoe", "Inbox").unwrap().len();
    // The lock being free again shows the session ended.
    let mut c = loop {
        let mut c = Raw::connect(server.pop3).await;
        c.line().await;
        c.send(b"USER jdoe\r\nPASS secret\r\n").await;
        c.line().await;
        if c.line().await.starts_with("+OK") {
            break c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(count(), 2);
    c.send(b"DELE 2\r\nQUIT\r\n").await;
    c.line().await;
    assert!(c.line().await.starts_with("+OK"));
    assert_eq!(count(), 1);
}

#[tokio::test]
async fn second_session_finds_the_maildrop_locked() {
    let server = start().await;
    server.deliver("mail/jdoe", vec![message(1, "a")]).await;
    let mut first = Raw::connect(server.pop3).await;
    first.line().await;
    first.send(b"USER jdoe\r\nPASS secret\r\n").await;
    first.line().await;
    assert!(first.line().await.starts_with("+OK"));
    let mut second = Raw::connect(server.pop3).await;
    second.line().await;
    second.send(b"USER jdoe\r\nPASS secret\r\n").await;
    second.line().await;
    assert_eq!(
        second.line().await,
        "-ERR [IN-USE] mailbox locked by another session\r\n"
    );
    // Still in the AUTHORIZATION state: a retry after the first quits works.
    first.send(b"QUIT\r\n").await;
    first.line().await;
    assert!(first.closed().await);
    second.send(b"USER jdoe\r\nPASS secret\r\nSTAT\r\n").await;
    second.line().await;
    assert_eq!(second.line().await, "+OK John Doe has 1 messages\r\n");
    assert!(second.line().await.starts_with("+OK 1 "));
}

#[tokio::test]
async fn auth_plain_with_initial_response_and_continuation() {
    let server = start().await;
    let mut c = Raw::connect(server.pop3).await;
    c.line().await;
    // "\0jdoe\0wrong"
    c.send(b"AUTH PLAIN AGpkb2UAd3Jvbmc=\r\n").await;
    assert!(c.line().await.starts_with("-ERR [AUTH]"));
    c.send(b"AUTH PLAIN\r\n").await;
    assert_eq!(c.line().await, "+ \r\n");
    c.send(b"*\r\n").await;
    assert!(c.line().await.starts_with("-ERR"));
    c.send(b"AUTH PLAIN\r\n").await;
    c.line().await;
    // "\0asmith\0pass word"
    c.send(b"AGFzbWl0aABwYXNzIHdvcmQ=\r\n").await;
    assert_eq!(c.line().await, "+OK Alice Smith has 0 messages\r\n");
    c.send(b"STAT\r\nQUIT\r\n").await;
    assert_eq!(c.line().await, "+OK 0 0\r\n");
    assert!(c.line().await.starts_with("+OK"));
    assert_eq!(server.stat(Protocol::Pop3, "POP3.Logins.Failed"), 1);
    assert_eq!(server.stat(Protocol::Pop3, "POP3.Logins.Successful"), 1);
}

#[tokio::test]
async fn capa_bad_commands_and_long_lines() {
    let server = start_with(|c| c.max_line = 100).await;
    let mut c = Raw::connect(server.pop3).await;
    c.line().await;
    c.send(b"CAPA\r\n").await;
    let capa = c.until(".").await.concat();
    for cap in [
        "TOP",
        "UIDL",
        "USER",
        "SASL PLAIN",
        "STLS",
        "RESP-CODES",
        "PIPELINING",
    ] {
        assert!(capa.contains(&format!("{cap}\r\n")), "{capa}");
    }
    c.send(b"STAT\r\nXYZZY\r\n").await;
    assert!(c.line().await.starts_with("-ERR"));
    assert!(c.line().await.starts_with("-ERR"));
    c.send(b"PASS secret\r\n").await;
    assert_eq!(c.line().await, "-ERR USER first\r\n");
    // After login a long line is refused and the session goes on.
    c.send(b"USER jdoe\r\nPASS secret\r\n").await;
    assert!(c.line().await.starts_with("+OK"));
    assert!(c.line().await.starts_with("+OK"));
    let long = format!("LIST {}\r\nNOOP\r\n", "1".repeat(5000));
    c.send(long.as_bytes()).await;
    assert_eq!(c.line().await, "-ERR command line too long\r\n");
    assert_eq!(c.line().await, "+OK\r\n");
    c.send(b"QUIT\r\n").await;
    assert!(c.line().await.starts_with("+OK"));
    assert!(c.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stls_and_implicit_tls_with_poplib() {
    let server = start().await;
    server
        .deliver("mail/jdoe", vec![message(1, "secure")])
        .await;
    let out = python(
        r#"
import poplib, ssl, sys
ctx = ssl._create_unverified_context()
p = poplib.POP3('127.0.0.1', int(sys.argv[1]))
print(p.capa())
print(p.stls(context=ctx).decode())
print(p.user('jdoe').decode())
print(p.pass_('secret').decode())
print(b'\n'.join(p.retr(1)[1]).decode())
p.quit()
"#,
        server.pop3.port(),
    )
    .await;
    assert!(out.contains("Begin TLS"), "{out}");
    assert!(out.contains("Subject: secure"), "{out}");
    assert_eq!(
        server.stat(Protocol::Pop3, "POP3.Sessions.Inbound.Total.SSL"),
        1
    );

    let implicit = start_with(|c| c.implicit_tls = true).await;
    implicit
        .deliver("mail/jdoe", vec![message(1, "implicit")])
        .await;
    let out = python(
        r#"
import poplib, ssl, sys
ctx = ssl._create_unverified_context()
p = poplib.POP3_SSL('127.0.0.1', int(sys.argv[1]), context=ctx)
print(p.getwelcome().decode())
p.user('jdoe'); p.pass_('secret')
print(b'\n'.join(p.retr(1)[1]).decode())
p.quit()
"#,
        implicit.pop3.port(),
    )
    .await;
    assert!(out.contains("Subject: implicit"), "{out}");
}
