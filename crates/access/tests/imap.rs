//! IMAP over real TCP on loopback: imaplib as the client, raw sockets for edge cases.

mod common;

use std::time::{Duration, Instant};

use access::Protocol;
use common::{Raw, message, python, start};
use store::Flags;

async fn logged_in(addr: std::net::SocketAddr) -> Raw {
    let mut c = Raw::connect(addr).await;
    assert!(c.line().await.starts_with("* OK"));
    c.send(b"a LOGIN jdoe secret\r\n").await;
    let lines = c.until("a ").await;
    assert!(lines.last().unwrap().starts_with("a OK"), "{lines:?}");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imaplib_session() {
    let server = start().await;
    server
        .deliver(
            "mail/jdoe",
            (1..=3).map(|n| message(n, &format!("Topic {n}"))).collect(),
        )
        .await;
    let out = python(
        r#"
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
print('CAPS', m.capabilities)
print(m.login('jdoe', 'secret'))
print('LIST', m.list())
print(m.select('INBOX'))
print('SEARCH', m.search(None, 'SUBJECT', '"Topic 2"'))
print('SEARCHALL', m.search(None, 'ALL'))
typ, data = m.fetch('2', '(UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
print('FETCH', data)
typ, data = m.fetch('1', '(BODY[])')
print('BODY', data[0][1].decode())
print('FLAGS1', m.fetch('1', '(FLAGS)'))
print(m.store('3', '+FLAGS', '\\Deleted'))
print('UIDSEARCH', m.uid('SEARCH', None, 'DELETED'))
print('EXPUNGE', m.expunge())
print(m.create('Work/Projects'))
print('COPY', m.copy('1', 'Work/Projects'))
print('STATUS', m.status('Work/Projects', '(MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT SIZE)'))
print('APPEND', m.append('Work/Projects', '(\\Seen)', None, b'Subject: appended\r\n\r\nbody\r\n'))
print('LSUB', m.lsub())
print(m.rename('Work/Projects', 'Archive2'))
print(m.delete('Archive2'))
print('NOOP', m.noop())
m.close()
print(m.logout())
"#,
        server.imap.port(),
    )
    .await;
    for expected in [
        "IMAP4REV1",
        "LOGIN completed",
        r#"(\\HasNoChildren \\Sent) "/" Sent"#,
        "[b'3']",
        "SEARCH ('OK', [b'2'])",
        "SEARCHALL ('OK', [b'1 2 3'])",
        "RFC822.SIZE",
        "Subject: Topic 2",
        "\"Topic 2\"",
        "Hello 1",
        "\\\\Seen",
        "UIDSEARCH ('OK', [b'3'])",
        "EXPUNGE ('OK', [b'3'])",
        "COPY ('OK'",
        "MESSAGES 1",
        "APPENDUID",
        "NOOP ('OK'",
        "BYE",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert_eq!(server.stat(Protocol::Imap, "IMAP.Logins.Successful"), 1);
}

#[tokio::test]
async fn literals_split_across_packets_and_pipelining() {
    let server = start().await;
    let mut c = logged_in(server.imap).await;
    let msg = b"Subject: split\r\n\r\nbody text\r\n";
    c.send(format!("b APPEND INBOX (\\Flagged) {{{}}}\r\n", msg.len()).as_bytes())
        .await;
    assert!(c.line().await.starts_with("+ "));
    for chunk in msg.chunks(5) {
        c.send(chunk).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.send(b"\r\n").await;
    let lines = c.until("b ").await;
    assert!(lines.last().unwrap().contains("APPENDUID"), "{lines:?}");
    // LITERAL+ and several commands in one packet.
    let pipelined = format!(
        "c APPEND INBOX {{{}+}}\r\n{}\r\nd SELECT INBOX\r\ne FETCH 1:* (FLAGS)\r\nf NOOP\r\n",
        msg.len(),
        String::from_utf8_lossy(msg)
    );
    c.send(pipelined.as_bytes()).await;
    assert!(c.until("c ").await.last().unwrap().starts_with("c OK"));
    let select = c.until("d ").await;
    assert!(select.iter().any(|l| l == "* 2 EXISTS\r\n"), "{select:?}");
    let fetch = c.until("e ").await;
    assert!(fetch[0].contains("\\Flagged"), "{fetch:?}");
    assert_eq!(fetch.len(), 3);
    assert!(c.until("f ").await.last().unwrap().starts_with("f OK"));
}

#[tokio::test]
async fn malformed_commands_get_bad_and_session_goes_on() {
    let server = start().await;
    let mut c = Raw::connect(server.imap).await;
    c.line().await;
    c.send(b"x1 FROBNICATE\r\n").await;
    assert!(c.line().await.starts_with("x1 BAD"));
    c.send(b"x2 FETCH 1 (FLAGS)\r\n").await;
    assert!(c.line().await.starts_with("x2 BAD"));
    c.send(b"garbage\r\n").await;
    assert!(c.line().await.starts_with("* BAD"));
    c.send(b"x3 LOGIN jdoe wrong\r\n").await;
    assert_eq!(
        c.line().await,
        "x3 NO [AUTHENTICATIONFAILED] LOGIN invalid user name or password\r\n"
    );
    c.send(b"x4 LOGIN jdoe secret\r\nx5 SELECT\r\nx6 SELECT Nowhere\r\nx7 NOOP\r\n")
        .await;
    assert!(c.until("x4 ").await.last().unwrap().starts_with("x4 OK"));
    assert!(c.line().await.starts_with("x5 BAD"));
    assert!(c.line().await.starts_with("x6 NO"));
    assert!(c.line().await.starts_with("x7 OK"));
    assert_eq!(server.stat(Protocol::Imap, "IMAP.Logins.Failed"), 1);
}

#[tokio::test]
async fn disconnect_mid_literal_ends_quietly() {
    let server = start().await;
    let mut c = logged_in(server.imap).await;
    c.send(b"a APPEND INBOX {1000}\r\n").await;
    c.line().await;
    c.send(b"only a part").await;
    drop(c);
    // The server still serves others.
    let mut other = logged_in(server.imap).await;
    other.send(b"b STATUS INBOX (MESSAGES)\r\n").await;
    let lines = other.until("b ").await;
    assert!(lines[0].contains("MESSAGES 0"), "{lines:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        server.stat(Protocol::Imap, "IMAP.Sessions.Inbound.Active"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabyte_message_in_partial_ranges() {
    let server = start().await;
    let mut data = b"Subject: big\r\n\r\n".to_vec();
    let line =
        b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdef\r\n";
    while data.len() < 10 * 1024 * 1024 {
        data.extend_from_slice(line);
    }
    server.deliver("mail/jdoe", vec![data.clone()]).await;
    let mut c = logged_in(server.imap).await;
    c.send(b"s SELECT INBOX\r\n").await;
    c.until("s ").await;
    let mut got = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        c.send(format!("f{offset} FETCH 1 (BODY.PEEK[]<{offset}.1000000>)\r\n").as_bytes())
            .await;
        let head = c.line().await;
        let size: usize = head
            .rsplit_once('{')
            .and_then(|(_, s)| s.trim_end().strip_suffix('}'))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{head}"));
        assert!(head.contains(&format!("BODY[]<{offset}>")), "{head}");
        got.extend(c.exact(size).await);
        assert_eq!(c.line().await, ")\r\n");
        assert!(c.line().await.starts_with(&format!("f{offset} OK")));
        offset += 1_000_000;
    }
    assert_eq!(got, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_see_expunges_and_flags() {
    let server = start().await;
    server
        .deliver("mail/jdoe", (1..=5).map(|n| message(n, "x")).collect())
        .await;
    let mut a = logged_in(server.imap).await;
    let mut b = logged_in(server.imap).await;
    a.send(b"a1 SELECT INBOX\r\n").await;
    a.until("a1 ").await;
    b.send(b"b1 SELECT INBOX\r\n").await;
    b.until("b1 ").await;
    a.send(b"a2 STORE 2,4 +FLAGS.SILENT (\\Deleted)\r\na3 EXPUNGE\r\n")
        .await;
    assert_eq!(a.until("a2 ").await.len(), 1);
    let expunged = a.until("a3 ").await;
    assert_eq!(expunged[..2], ["* 4 EXPUNGE\r\n", "* 2 EXPUNGE\r\n"]);
    a.send(b"a4 STORE 1 +FLAGS (\\Flagged)\r\n").await;
    a.until("a4 ").await;
    // B learns of both at NOOP, with sequence numbers renumbered correctly.
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.send(b"b2 NOOP\r\n").await;
    let lines = b.until("b2 ").await;
    assert!(lines.contains(&"* 4 EXPUNGE\r\n".to_owned()), "{lines:?}");
    assert!(lines.contains(&"* 2 EXPUNGE\r\n".to_owned()), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("* 1 FETCH (FLAGS (\\Flagged)")),
        "{lines:?}"
    );
    b.send(b"b3 FETCH 1:* (UID)\r\n").await;
    let uids = b.until("b3 ").await;
    assert_eq!(
        uids[..3],
        [
            "* 1 FETCH (UID 1)\r\n",
            "* 2 FETCH (UID 3)\r\n",
            "* 3 FETCH (UID 5)\r\n"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_wakes_on_delivery_within_a_second() {
    let server = start().await;
    server.deliver("mail/jdoe", vec![message(1, "first")]).await;
    let mut c = logged_in(server.imap).await;
    c.send(b"s SELECT INBOX\r\ni IDLE\r\n").await;
    c.until("s ").await;
    assert!(c.line().await.starts_with("+ "));
    let sent = Instant::now();
    server
        .deliver("mail/jdoe", vec![message(2, "second")])
        .await;
    let line = tokio::time::timeout(Duration::from_secs(1), c.line())
        .await
        .expect("IDLE notified within a second");
    assert_eq!(line, "* 2 EXISTS\r\n");
    assert!(sent.elapsed() < Duration::from_secs(1));
    c.send(b"DONE\r\n").await;
    let done = c.line().await;
    assert!(done.starts_with("i OK"), "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages() {
    let server = start().await;
    server.store.ensure_mailfile("mail/jdoe").await.unwrap();
    let appends = (1..=10_000).map(|n| {
        let store = server.store.clone();
        let subject = if n % 1000 == 0 { "needle" } else { "hay" };
        async move {
            store
                .append(
                    "mail/jdoe",
                    "Inbox",
                    message(n, subject),
                    Flags::default(),
                    0,
                )
                .await
                .unwrap()
        }
    });
    let mut tasks = tokio::task::JoinSet::new();
    for append in appends {
        tasks.spawn(append);
    }
    while tasks.join_next().await.is_some() {}
    let mut c = logged_in(server.imap).await;
    c.send(b"s SELECT INBOX\r\n").await;
    let select = c.until("s ").await;
    assert!(
        select.contains(&"* 10000 EXISTS\r\n".to_owned()),
        "{select:?}"
    );
    c.send(b"f UID FETCH 1:* (FLAGS ENVELOPE)\r\n").await;
    let fetched = c.until("f ").await;
    assert_eq!(fetched.len(), 10_001);
    assert!(fetched[9_999].starts_with("* 10000 FETCH (UID 10000 FLAGS () ENVELOPE"));
    c.send(b"q SEARCH SUBJECT needle\r\n").await;
    let found = c.until("q ").await;
    assert_eq!(found[0].split(' ').count(), 2 + 10, "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_authenticate_plain() {
    let server = start().await;
    server.deliver("mail/jdoe", vec![message(1, "tls")]).await;
    let out = python(
        r#"
import imaplib, ssl, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
print(m.starttls(ssl_context=ssl._create_unverified_context()))
print('CAPS', m.capabilities)
print(m.authenticate('PLAIN', lambda _: b'\0jdoe\0secret'))
m.select('INBOX', readonly=True)
print('FETCH', m.fetch('1', '(BODY[TEXT])'))
print('FLAGS', m.fetch('1', '(FLAGS)'))
m.logout()
"#,
        server.imap.port(),
    )
    .await;
    assert!(
        !out.contains("'STARTTLS'"),
        "no STARTTLS once inside TLS: {out}"
    );
    assert!(out.contains("LOGIN completed"), "{out}");
    assert!(out.contains("Hello 1"), "{out}");
    assert!(
        out.contains("FLAGS ('OK', [b'1 (FLAGS ())'])"),
        "EXAMINE does not set \\Seen: {out}"
    );
    assert_eq!(
        server.stat(Protocol::Imap, "IMAP.Sessions.Inbound.Total.SSL"),
        1
    );
}
