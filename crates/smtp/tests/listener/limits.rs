//! Limits that protect the server: session caps, command / DATA / session
//! deadlines, the hard error limit and the in-flight message budget. Each
//! test hits its limit over real TCP on loopback and counts what was stored.

use std::sync::atomic::Ordering;
use std::time::Duration;

use smtp::ListenerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{Client, Server, config};

/// Waits (bounded) until `check` holds; false if it never did.
async fn wait_for(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..3000 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

async fn greeted(server: &Server) -> Client<TcpStream> {
    let mut c = server.connect().await;
    assert!(c.reply().await.starts_with("220 "));
    c.expect("EHLO client.test", "250").await;
    c
}

/// Sends one whole message and returns the reply to its end.
async fn send_message(c: &mut Client<TcpStream>, subject: &str) -> String {
    c.expect("MAIL FROM:<bob@example.com>", "250").await;
    c.expect("RCPT TO:<alice@acme.test>", "250").await;
    c.expect("DATA", "354").await;
    c.send(format!("Subject: {subject}\r\n\r\nhello\r\n.\r\n"))
        .await;
    c.reply().await
}

fn stored_with_subject(server: &Server, subject: &str) -> usize {
    let needle = format!("Subject: {subject}\r\n");
    server
        .handler
        .received()
        .iter()
        .filter(|m| String::from_utf8_lossy(m.body()).contains(&needle))
        .count()
}

#[tokio::test]
async fn sessions_over_the_cap_get_421_and_a_later_client_is_served() {
    const CAP: usize = 20;
    let server = Server::start(ListenerConfig {
        max_sessions: CAP,
        max_sessions_per_host: 1000,
        ..config()
    })
    .await;
    let mut admitted = Vec::new();
    for _ in 0..CAP {
        admitted.push(greeted(&server).await);
    }
    for _ in 0..50 {
        let mut extra = server.connect().await;
        assert_eq!(
            extra.reply().await,
            "421 4.7.0 mail.acme.test Too many concurrent SMTP sessions; try again later"
        );
        assert!(extra.closed().await);
    }
    assert_eq!(server.stat("SMTP.Sessions.Inbound.Refused.Busy"), 50);
    assert_eq!(server.stat("SMTP.Sessions.Inbound.Total"), CAP as u64);
    // The admitted ones were not disturbed.
    for c in &mut admitted {
        c.expect("NOOP", "250").await;
    }
    for mut c in admitted {
        c.expect("QUIT", "221").await;
        assert!(c.closed().await);
    }
    assert!(wait_for(|| server.stat("SMTP.Sessions.Inbound.Active") == 0).await);
    let mut later = greeted(&server).await;
    assert!(
        send_message(&mut later, "after the crowd")
            .await
            .starts_with("250 2.0.0")
    );
    assert_eq!(stored_with_subject(&server, "after the crowd"), 1);
    assert_eq!(server.handler.data_calls.load(Ordering::SeqCst), 1);
}

/// A TCP connection to `server` from `source` (a loopback address).
async fn connect_from(server: &Server, source: &str) -> Client<TcpStream> {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("source address"))
        .expect("bind to a loopback source address");
    Client::new(socket.connect(server.addr).await.expect("connect"))
}

#[tokio::test]
async fn one_address_over_its_cap_gets_421_others_are_served() {
    let server = Server::start(ListenerConfig {
        max_sessions_per_host: 3,
        ..config()
    })
    .await;
    let mut mine = Vec::new();
    for _ in 0..3 {
        let mut c = connect_from(&server, "127.0.0.1").await;
        assert!(c.reply().await.starts_with("220 "));
        mine.push(c);
    }
    let mut fourth = connect_from(&server, "127.0.0.1").await;
    assert_eq!(
        fourth.reply().await,
        "421 4.7.0 mail.acme.test Too many sessions from your address; try again later"
    );
    assert!(fourth.closed().await);
    // Another address is not affected.
    let mut other = connect_from(&server, "127.0.0.2").await;
    assert!(other.reply().await.starts_with("220 "));
    other.expect("QUIT", "221").await;
    assert_eq!(server.stat("SMTP.Sessions.Inbound.Refused.PerHost"), 1);
    assert_eq!(server.stat("SMTP.Sessions.Inbound.Refused.Busy"), 0);
    // One of mine leaves: the address may connect again.
    let mut leaving = mine.pop().expect("session");
    leaving.expect("QUIT", "221").await;
    assert!(leaving.closed().await);
    assert!(wait_for(|| server.stat("SMTP.Sessions.Inbound.Active") == 2).await);
    let mut again = connect_from(&server, "127.0.0.1").await;
    assert!(again.reply().await.starts_with("220 "));
    again.expect("EHLO client.test", "250").await;
    assert!(
        send_message(&mut again, "per host")
            .await
            .starts_with("250 2.0.0")
    );
    assert_eq!(stored_with_subject(&server, "per host"), 1);
}

/// Writes `bytes` one at a time every `every` until the server closes;
/// returns everything the server said.
async fn dribble(stream: TcpStream, bytes: Vec<u8>, every: Duration) -> String {
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        for byte in bytes {
            // The pacing is the attack under test, not a wait for a result.
            tokio::time::sleep(every).await;
            if write.write_all(&[byte]).await.is_err() {
                break;
            }
        }
        write
    });
    let mut said = Vec::new();
    // A reset after the reply (our bytes met a closed socket) still leaves
    // what was read in `said`.
    let _ = tokio::time::timeout(Duration::from_secs(60), read.read_to_end(&mut said))
        .await
        .expect("the server closes within 60 s");
    writer.abort();
    String::from_utf8_lossy(&said).into_owned()
}

#[tokio::test]
async fn a_command_line_dribbled_byte_by_byte_is_cut_off() {
    // Each byte comes well within the idle timeout, the line not within its deadline.
    let server = Server::start(ListenerConfig {
        idle_timeout: Duration::from_secs(20),
        command_timeout: Duration::from_millis(400),
        ..config()
    })
    .await;
    let mut c = greeted(&server).await;
    c.expect("NOOP", "250").await;
    let line = b"MAIL FROM:<slow.sender.with.a.long.name@example.com>\r\n".to_vec();
    let said = dribble(c.into_inner(), line, Duration::from_millis(50)).await;
    assert_eq!(
        said,
        "421 4.4.2 mail.acme.test Timeout, closing connection\r\n"
    );
    assert!(wait_for(|| server.stat("SMTP.Sessions.Inbound.TimedOut") == 1).await);
}

#[tokio::test]
async fn a_message_dribbled_byte_by_byte_is_cut_off_and_not_stored() {
    let server = Server::start(ListenerConfig {
        idle_timeout: Duration::from_secs(20),
        command_timeout: Duration::from_secs(20),
        data_timeout: Duration::from_millis(500),
        ..config()
    })
    .await;
    let mut c = greeted(&server).await;
    c.expect("MAIL FROM:<bob@example.com>", "250").await;
    c.expect("RCPT TO:<alice@acme.test>", "250").await;
    c.expect("DATA", "354").await;
    let body = b"Subject: slow\r\n\r\nthis message arrives one byte at a time\r\n.\r\n".to_vec();
    let said = dribble(c.into_inner(), body, Duration::from_millis(50)).await;
    assert_eq!(
        said,
        "421 4.4.2 mail.acme.test Timeout, closing connection\r\n"
    );
    assert_eq!(server.handler.data_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_session_of_quick_commands_still_ends_at_the_session_timeout() {
    let server = Server::start(ListenerConfig {
        command_timeout: Duration::from_secs(20),
        session_timeout: Duration::from_millis(800),
        ..config()
    })
    .await;
    let mut c = greeted(&server).await;
    let mut last = String::new();
    for _ in 0..2000 {
        last = c.cmd("NOOP").await;
        if last != "250 2.0.0 OK" {
            break;
        }
        // Quick commands, each well inside the command deadline: only the
        // session deadline can end this session.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last, "421 4.4.2 mail.acme.test Timeout, closing connection");
    assert!(c.closed().await);
}

#[tokio::test]
async fn unknown_recipients_past_the_hard_error_limit_close_the_session() {
    let server = Server::start(ListenerConfig {
        max_errors: 5,
        ..config()
    })
    .await;
    let mut c = greeted(&server).await;
    c.expect("MAIL FROM:<harvester@example.com>", "250").await;
    // A known recipient in between does not reset the count.
    c.expect("RCPT TO:<alice@acme.test>", "250").await;
    for n in 1..5 {
        c.expect(&format!("RCPT TO:<unknown@acme.test{n}>"), "550 5.1.1")
            .await;
    }
    assert_eq!(
        c.cmd("RCPT TO:<unknown@acme.test5>").await,
        "550 5.1.1 User unknown"
    );
    assert_eq!(
        c.reply().await,
        "421 4.7.0 mail.acme.test Too many errors, closing connection"
    );
    assert!(c.closed().await);
    assert!(wait_for(|| server.stat("SMTP.Sessions.Inbound.TooManyErrors") == 1).await);
    assert_eq!(server.handler.data_calls.load(Ordering::SeqCst), 0);
}

/// A body of `lines` lines of 1,000 bytes (998 and CRLF).
fn big_body(subject: &str, lines: usize) -> Vec<u8> {
    let mut body = format!("Subject: {subject}\r\n\r\n").into_bytes();
    for _ in 0..lines {
        body.extend(std::iter::repeat_n(b'x', 998));
        body.extend_from_slice(b"\r\n");
    }
    body
}

const BUDGET: u64 = 1024 * 1024;
const IN_FLIGHT: &str = "SMTP.Messages.InFlight.Bytes";

async fn budget_server() -> Server {
    Server::start(ListenerConfig {
        inflight_message_bytes: BUDGET,
        ..config()
    })
    .await
}

async fn start_data(server: &Server) -> Client<TcpStream> {
    let mut c = greeted(server).await;
    c.expect("MAIL FROM:<bob@example.com>", "250").await;
    c.expect("RCPT TO:<alice@acme.test>", "250").await;
    c.expect("DATA", "354").await;
    c
}

#[tokio::test]
async fn a_message_over_the_inflight_budget_gets_452_and_a_later_one_is_accepted() {
    let server = budget_server().await;
    // The first client holds 700 KB of its message, not yet ended.
    let mut first = start_data(&server).await;
    first.send(big_body("first", 700)).await;
    assert!(wait_for(|| server.stat(IN_FLIGHT) >= 700_000).await);
    // The second one's 700 KB do not fit beside it.
    let mut second = start_data(&server).await;
    let mut body = big_body("second", 700);
    body.extend_from_slice(b".\r\n");
    second.send(body).await;
    assert_eq!(
        second.reply().await,
        "452 4.3.1 Insufficient system storage"
    );
    // Its bytes were given back; the first still holds its own.
    let held = server.stat(IN_FLIGHT);
    assert!((700_000..BUDGET).contains(&held), "{held}");
    // An announced SIZE that does not fit is refused at MAIL.
    second
        .expect(
            "MAIL FROM:<bob@example.com> SIZE=700000",
            "452 4.3.1 Insufficient system storage",
        )
        .await;
    // The first one finishes; then the second one's retry fits.
    first.send(".\r\n").await;
    assert!(first.reply().await.starts_with("250 2.0.0"));
    assert!(wait_for(|| server.stat(IN_FLIGHT) == 0).await);
    second
        .expect("MAIL FROM:<bob@example.com> SIZE=700000", "250")
        .await;
    second.expect("RCPT TO:<alice@acme.test>", "250").await;
    second.expect("DATA", "354").await;
    let mut body = big_body("second again", 700);
    body.extend_from_slice(b".\r\n");
    second.send(body).await;
    assert!(second.reply().await.starts_with("250 2.0.0"));
    assert_eq!(stored_with_subject(&server, "first"), 1);
    assert_eq!(stored_with_subject(&server, "second"), 0);
    assert_eq!(stored_with_subject(&server, "second again"), 1);
    assert_eq!(server.handler.data_calls.load(Ordering::SeqCst), 2);
    assert_eq!(server.stat("SMTP.Messages.Refused.InsufficientStorage"), 2);
    assert_eq!(server.stat(IN_FLIGHT), 0);
}

#[tokio::test]
async fn the_inflight_budget_returns_to_zero_when_clients_vanish_mid_data() {
    let server = budget_server().await;
    let mut gone = Vec::new();
    for n in 0..2 {
        let mut c = start_data(&server).await;
        c.send(big_body(&format!("cut {n}"), 400)).await;
        gone.push(c);
    }
    assert!(wait_for(|| server.stat(IN_FLIGHT) >= 800_000).await);
    drop(gone);
    assert!(wait_for(|| server.stat(IN_FLIGHT) == 0).await);
    assert!(wait_for(|| server.stat("SMTP.Sessions.Inbound.Active") == 0).await);
    // The whole budget is there again.
    let mut c = start_data(&server).await;
    let mut body = big_body("whole budget", 1000);
    body.extend_from_slice(b".\r\n");
    c.send(body).await;
    assert!(c.reply().await.starts_with("250 2.0.0"));
    assert_eq!(server.handler.data_calls.load(Ordering::SeqCst), 1);
    assert_eq!(stored_with_subject(&server, "whole budget"), 1);
    assert_eq!(server.stat(IN_FLIGHT), 0);
}
