//! SMTP smuggling: a bare LF or bare CR that looks like an end of data
//! never ends a message, so a second message hidden after it is never
//! stored. Raw sockets on 127.0.0.1; every test counts what the handler got.

use std::sync::atomic::Ordering;

use tokio::net::TcpStream;

use crate::common::{Client, Server, config, plain};

/// The fake ends of data, by name.
const FAKE_ENDS: [(&str, &[u8]); 5] = [
    ("LF.LF", b"\n.\n"),
    ("LF.CRLF", b"\n.\r\n"),
    ("CRLF.LF", b"\r\n.\n"),
    ("CR.CR", b"\r.\r"),
    ("CRLF.CR", b"\r\n.\r"),
];

const FIRST: &[u8] = b"From: bob@example.com\r\nSubject: first\r\n\r\nfirst body";

/// A first message, the fake end, then a whole smuggled transaction that
/// ends at the only real `CRLF.CRLF`.
fn smuggling(fake_end: &[u8]) -> Vec<u8> {
    let mut wire = FIRST.to_vec();
    wire.extend_from_slice(fake_end);
    wire.extend_from_slice(
        b"MAIL FROM:<admin@acme.com>\r\n\
          RCPT TO:<victim@acme.test>\r\n\
          DATA\r\n\
          From: admin@acme.com\r\nSubject: smuggled\r\n\r\nplease wire the money\r\n.\r\n",
    );
    wire
}

/// Greets and opens a transaction up to `354`.
async fn open_data(c: &mut Client<TcpStream>) {
    c.expect("MAIL FROM:<bob@example.com>", "250").await;
    c.expect("RCPT TO:<alice@acme.test>", "250").await;
    c.expect("DATA", "354").await;
}

/// How many stored messages have `needle` in them.
fn copies(server: &Server, needle: &str) -> usize {
    server
        .handler
        .received()
        .iter()
        .filter(|m| String::from_utf8_lossy(&m.message).contains(needle))
        .count()
}

/// After the refused or accepted DATA, exactly one reply was due: the next
/// one must answer our NOOP, not a smuggled MAIL, RCPT or DATA.
async fn no_smuggled_replies(c: &mut Client<TcpStream>, name: &str) {
    assert_eq!(
        c.cmd("NOOP").await,
        "250 2.0.0 OK",
        "{name}: a smuggled command was answered"
    );
}

#[tokio::test]
async fn fake_ends_of_data_refuse_the_message_and_never_split_it() {
    let server = Server::start(config()).await;
    for (round, (name, fake_end)) in FAKE_ENDS.into_iter().enumerate() {
        let mut c = server.connect().await;
        c.reply().await;
        c.expect("EHLO client.test", "250").await;
        open_data(&mut c).await;
        c.send(smuggling(fake_end)).await;
        let reply = c.reply().await;
        let bare = if name.ends_with(".LF") || name.starts_with("LF") {
            "554 5.5.2 Message refused: bare LF (line feed without carriage return) is not allowed; see RFC 5321 section 2.3.8"
        } else {
            "554 5.5.2 Message refused: bare CR (carriage return without line feed) is not allowed; see RFC 5321 section 2.3.8"
        };
        assert_eq!(reply, bare, "{name}");
        no_smuggled_replies(&mut c, name).await;
        // Nothing was stored for that DATA, neither the first message nor the smuggled one.
        assert_eq!(
            server.handler.data_calls.load(Ordering::SeqCst),
            round,
            "{name}"
        );
        assert_eq!(copies(&server, "smuggled"), 0, "{name}");

        // The session is clean: no transaction is open and a proper message goes through.
        c.expect("RCPT TO:<alice@acme.test>", "503").await;
        open_data(&mut c).await;
        c.send(format!("Subject: proper {round}\r\n\r\nfine\r\n.\r\n"))
            .await;
        assert!(
            c.reply().await.starts_with("250 2.0.0 Ok: queued as"),
            "{name}"
        );
        c.expect("QUIT", "221").await;
        assert_eq!(
            server.handler.data_calls.load(Ordering::SeqCst),
            round + 1,
            "{name}"
        );
        assert_eq!(
            copies(&server, &format!("Subject: proper {round}\r\n")),
            1,
            "{name}"
        );
    }
    let got = server.handler.received();
    assert_eq!(got.len(), FAKE_ENDS.len());
    assert!(got.iter().all(|m| m.env.from == "bob@example.com"));
    assert_eq!(copies(&server, "admin@acme.com"), 0);
    assert_eq!(
        server.stat("SMTP.Messages.Rejected"),
        FAKE_ENDS.len() as u64
    );
}

#[tokio::test]
async fn fake_ends_split_across_writes_never_end_the_message() {
    let server = Server::start(config()).await;
    for (name, fake_end) in FAKE_ENDS {
        let mut c = server.connect().await;
        c.reply().await;
        c.expect("EHLO client.test", "250").await;
        open_data(&mut c).await;
        // Byte by byte through the fake end, so every chunk boundary is tried.
        let wire = smuggling(fake_end);
        let cut = FIRST.len() + fake_end.len() + 10;
        for byte in &wire[..cut] {
            c.send([*byte]).await;
        }
        c.send(&wire[cut..]).await;
        assert!(
            c.reply()
                .await
                .starts_with("554 5.5.2 Message refused: bare"),
            "{name}"
        );
        no_smuggled_replies(&mut c, name).await;
        c.expect("QUIT", "221").await;
    }
    assert_eq!(server.handler.data_calls.load(Ordering::SeqCst), 0);
}

/// Authenticated clients may send bare LF / CR (stored as CRLF), but a fake
/// end still never ends the message: one DATA, one message, the smuggled
/// text inside it as content.
#[tokio::test]
async fn authenticated_fake_ends_stay_inside_one_message() {
    let server = Server::start(config()).await;
    for (round, (name, fake_end)) in FAKE_ENDS.into_iter().enumerate() {
        let mut c = server.connect().await;
        c.reply().await;
        c.expect("EHLO client.test", "250").await;
        c.expect(&format!("AUTH PLAIN {}", plain("alice", "secret")), "235")
            .await;
        open_data(&mut c).await;
        c.send(smuggling(fake_end)).await;
        assert!(
            c.reply().await.starts_with("250 2.0.0 Ok: queued as"),
            "{name}"
        );
        no_smuggled_replies(&mut c, name).await;
        c.expect("QUIT", "221").await;
        let got = server.handler.received();
        assert_eq!(got.len(), round + 1, "{name}: one message per DATA");
        let last = &got[round];
        assert_eq!(last.env.from, "bob@example.com", "{name}");
        assert_eq!(last.env.recipients, ["alice@acme.test"], "{name}");
        let body = last.body();
        assert!(
            body.starts_with(b"From: bob@example.com\r\nSubject: first\r\n"),
            "{name}"
        );
        let text = String::from_utf8_lossy(body);
        assert_eq!(
            text.matches("Subject: smuggled").count(),
            1,
            "{name}: {text:?}"
        );
        // Stored with CRLF line ends only.
        assert!(
            !body.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
            "{name}: {text:?}"
        );
        assert!(
            !body.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n'),
            "{name}: {text:?}"
        );
    }
    assert_eq!(
        server.handler.data_calls.load(Ordering::SeqCst),
        FAKE_ENDS.len()
    );
    assert_eq!(copies(&server, "Subject: first"), FAKE_ENDS.len());
    assert_eq!(
        server
            .handler
            .received()
            .iter()
            .filter(|m| m.body().starts_with(b"From: admin@acme.com"))
            .count(),
        0,
        "no message of its own for the smuggled text"
    );
}

#[tokio::test]
async fn a_bare_lf_alone_refuses_the_message_and_the_session_goes_on() {
    let server = Server::start(config()).await;
    let mut c = server.connect().await;
    c.reply().await;
    c.expect("EHLO client.test", "250").await;
    open_data(&mut c).await;
    c.send("Subject: lf\r\n\r\nunix\nline\r\n.\r\n").await;
    assert!(
        c.reply()
            .await
            .starts_with("554 5.5.2 Message refused: bare LF")
    );
    open_data(&mut c).await;
    c.send("Subject: cr\r\n\r\nold mac\rline\r\n.\r\n").await;
    assert!(
        c.reply()
            .await
            .starts_with("554 5.5.2 Message refused: bare CR")
    );
    open_data(&mut c).await;
    c.send("Subject: ok\r\n\r\nline\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250 2.0.0"));
    assert_eq!(server.handler.data_calls.load(Ordering::SeqCst), 1);
}
