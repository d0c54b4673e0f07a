//! POP3 and IMAP session caps: beyond `max_sessions` (or
//! `max_sessions_per_host` from one address) a connection is told why and
//! closed; a place given back admits the next client. Real TCP on loopback.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use access::Protocol;
use common::{Raw, start, start_with};
use tokio::io::BufReader;
use tokio::net::TcpSocket;

/// A raw client whose connection comes from `source` (a loopback address).
async fn connect_from(addr: SocketAddr, source: &str) -> Raw {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{source}:0").parse().unwrap())
        .expect("bind to a loopback source address");
    let (r, w) = socket.connect(addr).await.unwrap().into_split();
    Raw {
        reader: BufReader::new(r),
        writer: w,
    }
}

/// Connects until the greeting starts with `ok` (a place was given back),
/// at most 500 times; returns the admitted client.
async fn admitted_eventually(addr: SocketAddr, ok: &str) -> Raw {
    for _ in 0..500 {
        let mut c = Raw::connect(addr).await;
        if c.line().await.starts_with(ok) {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never admitted again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pop3_sessions_over_the_cap_are_refused() {
    let server = start_with(|c| c.max_sessions = 3).await;
    let mut admitted = Vec::new();
    for _ in 0..3 {
        let mut c = Raw::connect(server.pop3).await;
        assert!(c.line().await.starts_with("+OK "));
        admitted.push(c);
    }
    for _ in 0..5 {
        let mut extra = Raw::connect(server.pop3).await;
        assert_eq!(extra.line().await, "-ERR [SYS/TEMP] too many sessions\r\n");
        assert!(extra.closed().await);
    }
    assert_eq!(
        server.stat(Protocol::Pop3, "POP3.Sessions.Inbound.Total"),
        3
    );
    // The admitted ones still work; one leaves and a new client gets in.
    let mut leaving = admitted.pop().unwrap();
    leaving.send(b"QUIT\r\n").await;
    assert!(leaving.line().await.starts_with("+OK"));
    assert!(leaving.closed().await);
    let mut later = admitted_eventually(server.pop3, "+OK ").await;
    later.send(b"USER jdoe\r\n").await;
    assert!(later.line().await.starts_with("+OK"));
    later.send(b"PASS secret\r\n").await;
    assert!(later.line().await.starts_with("+OK"));
    // The refused ones never counted as sessions.
    assert_eq!(
        server.stat(Protocol::Pop3, "POP3.Sessions.Inbound.Total"),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_sessions_from_one_address_over_the_cap_are_refused() {
    let server = start_with(|c| c.max_sessions_per_host = 2).await;
    let mut mine = Vec::new();
    for _ in 0..2 {
        let mut c = connect_from(server.imap, "127.0.0.1").await;
        assert!(c.line().await.starts_with("* OK"));
        mine.push(c);
    }
    let mut third = connect_from(server.imap, "127.0.0.1").await;
    assert_eq!(
        third.line().await,
        "* BYE too many sessions from your address\r\n"
    );
    assert!(third.closed().await);
    // Another address is not affected, and may log in.
    let mut other = connect_from(server.imap, "127.0.0.2").await;
    assert!(other.line().await.starts_with("* OK"));
    other.send(b"a1 LOGIN jdoe secret\r\n").await;
    assert!(
        other
            .until("a1 ")
            .await
            .last()
            .unwrap()
            .starts_with("a1 OK")
    );
    assert_eq!(
        server.stat(Protocol::Imap, "IMAP.Sessions.Inbound.Total"),
        3
    );
}

#[tokio::test]
async fn imap_before_login_takes_only_small_literals() {
    let server = start().await;
    let mut c = Raw::connect(server.imap).await;
    assert!(c.line().await.starts_with("* OK"));
    // A synchronizing literal over the limit is refused; the client sends
    // nothing of it, and the session goes on.
    let over = access::imap::PRE_LOGIN_LITERAL + 1;
    c.send(format!("a1 LOGIN {{{over}}}\r\n").as_bytes()).await;
    assert_eq!(c.line().await, "a1 NO [TOOBIG] literal too big\r\n");
    // Literals up to the limit are taken: LOGIN with both at the limit.
    let most = access::imap::PRE_LOGIN_LITERAL as usize;
    let user = format!("jdoe{}", " ".repeat(most - 4));
    c.send(format!("a2 LOGIN {{{most}}}\r\n").as_bytes()).await;
    assert!(c.line().await.starts_with("+ "));
    c.send(format!("{user} {{{most}+}}\r\n").as_bytes()).await;
    c.send(format!("{}\r\n", "p".repeat(most)).as_bytes()).await;
    assert!(c.line().await.starts_with("a2 NO [AUTHENTICATIONFAILED]"));
    // A non-synchronizing literal over the limit: BAD, BYE and the end of
    // the connection, with the literal left unread (RFC 7888 §4).
    let header = format!("a3 LOGIN {{{}+}}\r\n", 64 * 1024 * 1024);
    c.send(&[header.as_bytes(), &[b'x'; 1000]].concat()).await;
    assert_eq!(
        c.line().await,
        "a3 BAD [TOOBIG] literal too big before login\r\n"
    );
    assert!(c.line().await.starts_with("* BYE "));
    assert!(c.closed().await);
    assert_eq!(server.stat(Protocol::Imap, "IMAP.Logins.Failed"), 1);
}

#[tokio::test]
async fn imap_before_login_a_long_command_ends_the_session() {
    let server = start().await;
    let mut c = Raw::connect(server.imap).await;
    c.line().await;
    let long = format!(
        "a1 LOGIN {} x\r\n",
        "u".repeat(access::imap::PRE_LOGIN_COMMAND + 1)
    );
    c.send(long.as_bytes()).await;
    assert_eq!(
        c.line().await,
        "a1 BAD [TOOBIG] command too long before login\r\n"
    );
    assert!(c.line().await.starts_with("* BYE "));
    assert!(c.closed().await);
    // After login, big literals are taken (an APPEND of 1 MB).
    let mut c = Raw::connect(server.imap).await;
    c.line().await;
    c.send(b"a1 LOGIN jdoe secret\r\n").await;
    assert!(c.until("a1 ").await.last().unwrap().starts_with("a1 OK"));
    let message = format!("Subject: big\r\n\r\n{}\r\n", "b".repeat(1 << 20));
    c.send(format!("a2 APPEND INBOX {{{}+}}\r\n", message.len()).as_bytes())
        .await;
    c.send(message.as_bytes()).await;
    c.send(b"\r\n").await;
    assert!(c.until("a2 ").await.last().unwrap().starts_with("a2 OK"));
}

#[tokio::test]
async fn imap_authenticate_response_is_small_before_login() {
    let server = start().await;
    let mut c = Raw::connect(server.imap).await;
    c.line().await;
    c.send(b"a1 AUTHENTICATE PLAIN\r\n").await;
    assert!(c.line().await.starts_with("+"));
    let long = format!("{}\r\n", "A".repeat(access::imap::PRE_LOGIN_COMMAND + 4));
    c.send(long.as_bytes()).await;
    assert_eq!(
        c.line().await,
        "a1 BAD [TOOBIG] command too long before login\r\n"
    );
    assert!(c.line().await.starts_with("* BYE "));
    assert!(c.closed().await);
}

#[tokio::test]
async fn pop3_before_login_a_long_line_ends_the_session() {
    let server = start().await;
    let mut c = Raw::connect(server.pop3).await;
    assert!(c.line().await.starts_with("+OK"));
    // Up to the limit is fine.
    let user = "u".repeat(access::pop3::PRE_LOGIN_LINE - "USER ".len());
    c.send(format!("USER {user}\r\n").as_bytes()).await;
    assert_eq!(c.line().await, "+OK\r\n");
    // One byte more ends the session, however long the line goes on.
    c.send(format!("PASS {}", "p".repeat(access::pop3::PRE_LOGIN_LINE)).as_bytes())
        .await;
    assert_eq!(c.line().await, "-ERR command line too long\r\n");
    assert!(c.closed().await);
    // So does an AUTH PLAIN response that is too long.
    let mut c = Raw::connect(server.pop3).await;
    c.line().await;
    c.send(b"AUTH PLAIN\r\n").await;
    assert_eq!(c.line().await, "+ \r\n");
    c.send(format!("{}\r\n", "A".repeat(2 * access::pop3::PRE_LOGIN_LINE)).as_bytes())
        .await;
    assert_eq!(c.line().await, "-ERR response too long\r\n");
    assert!(c.closed().await);
}
