//! POP3 and IMAP session caps: beyond `max_sessions` (or
//! `max_sessions_per_host` from one address) a connection is told why and
//! closed; a place given back admits the next client. Real TCP on loopback.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use access::Protocol;
use common::{Raw, start_with};
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
