//! Hostile and broken input: long lines, NUL bytes, garbage, too many
//! errors, disconnects, and arbitrary bytes over an in-memory stream.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use proptest::prelude::*;
use smtp::{ListenerConfig, SessionHandler, SessionInfo, SmtpStats, run_session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{Client, Recorder, Server, config, plain, tls_server_config};

#[tokio::test]
async fn megabyte_command_line_is_refused_and_the_session_survives() {
    let server = Server::start(config()).await;
    let mut c = server.connect().await;
    c.reply().await;
    c.send(vec![b'A'; 1024 * 1024]).await;
    assert_eq!(c.reply().await, "500 5.5.2 Line too long");
    c.send("\r\n").await;
    c.expect("NOOP", "250").await;
    // A long line that does end is refused once too.
    c.expect(&format!("EHLO {}", "h".repeat(5000)), "500 5.5.2")
        .await;
    c.expect("NOOP", "250").await;
}

async fn start_data(c: &mut Client<TcpStream>) {
    c.reply().await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<bob@example.com>", "250").await;
    c.expect("RCPT TO:<alice@acme.test>", "250").await;
    c.expect("DATA", "354").await;
}

#[tokio::test]
async fn nul_bytes_reject_the_message_not_the_session() {
    let server = Server::start(config()).await;
    let mut c = server.connect().await;
    start_data(&mut c).await;
    c.send(b"Subject: nul\r\n\r\na\0b\r\n.\r\n").await;
    assert_eq!(c.reply().await, "554 5.6.0 Message contains NUL characters");
    c.expect("NOOP", "250").await;
    assert_eq!(server.handler.data_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn overlong_data_line_rejects_the_message_not_the_session() {
    let server = Server::start(ListenerConfig {
        max_data_line_length: 1000,
        ..config()
    })
    .await;
    let mut c = server.connect().await;
    start_data(&mut c).await;
    let mut body = b"Subject: long\r\n\r\n".to_vec();
    body.extend(std::iter::repeat_n(b'y', 1024 * 1024));
    body.extend_from_slice(b"\r\n.\r\n");
    c.send(body).await;
    assert_eq!(
        c.reply().await,
        "554 5.6.0 Message contains a line longer than 1000 bytes"
    );
    c.expect("NOOP", "250").await;
    assert_eq!(server.handler.data_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn malformed_commands_get_5xx_and_the_session_survives() {
    let server = Server::start(config()).await;
    let mut c = server.connect().await;
    c.reply().await;
    c.expect("EHLO client.test", "250").await;
    for bad in [
        &b"MAIL FROM:<<<\r\n"[..],
        b"MAIL FROM:bob@example.com\r\n",
        b"MAIL FROM:<bob@example.com> FOO=BAR\r\n",
        b"MAIL FROM:<a@b> BODY=BINARYMIME\r\n",
        b"\x01\x02\x03 garbage\r\n",
        b"\xff\xfe\xfd\xc3\x28 8-bit junk\r\n",
        b"MAIL FROM:<b\xffo@example.com>\r\n",
        b"\r\n",
        b"AUTH\r\n",
        b"AUTH CRAM-MD5\r\n",
    ] {
        c.send(bad).await;
        let reply = c.reply().await;
        assert!(
            reply.starts_with('5'),
            "{:?} gave {reply:?}",
            bad.escape_ascii().to_string()
        );
    }
    c.expect("MAIL FROM:<bob@example.com>", "250").await;
    c.expect("RCPT TO:<\u{fffd}@x>", "5").await;
    c.expect("RCPT TO:<jö@acme.test>", "553 5.6.7").await;
    c.expect("NOOP", "250").await;
}

#[tokio::test]
async fn too_many_errors_close_with_421() {
    let server = Server::start(ListenerConfig {
        max_errors: 3,
        ..config()
    })
    .await;
    let mut c = server.connect().await;
    c.reply().await;
    c.send("FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n").await;
    assert!(c.reply().await.starts_with("500"));
    assert!(c.reply().await.starts_with("500"));
    assert!(c.reply().await.starts_with("500"));
    let reply = c.reply().await;
    assert!(
        reply.starts_with("421 4.7.0 mail.acme.test Too many errors"),
        "{reply}"
    );
    assert!(c.closed().await);
}

#[tokio::test]
async fn disconnect_mid_data_stores_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handler = Recorder::new(config());
    let h: Arc<dyn SessionHandler> = handler.clone();
    let stats = Arc::new(SmtpStats::new());
    let session_stats = Arc::clone(&stats);
    let session = tokio::spawn(async move {
        let (stream, peer) = listener.accept().await.expect("accept");
        let info = SessionInfo::new(peer, addr, 7);
        run_session(stream, info, h, session_stats).await;
    });
    let mut c = Client::new(TcpStream::connect(addr).await.expect("connect"));
    start_data(&mut c).await;
    c.send("Subject: cut\r\n\r\nhalf a mess").await;
    drop(c);
    tokio::time::timeout(Duration::from_secs(10), session)
        .await
        .expect("session ends")
        .expect("session task did not panic");
    assert_eq!(handler.data_calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        stats
            .snapshot()
            .iter()
            .find(|(n, _)| *n == "SMTP.Sessions.Inbound.Active")
            .map(|p| p.1),
        Some(0)
    );
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("address")
}

/// Runs a whole session over an in-memory stream: writes `input`, closes,
/// and returns everything the listener answered.
async fn converse(
    config: ListenerConfig,
    peer: SocketAddr,
    input: Vec<u8>,
) -> (Vec<u8>, Arc<Recorder>) {
    let handler = Recorder::new(config);
    let h: Arc<dyn SessionHandler> = handler.clone();
    let (client, server) = tokio::io::duplex(64 * 1024);
    let info = SessionInfo::new(peer, addr("127.0.0.1:25"), 1);
    let session = tokio::spawn(run_session(server, info, h, Arc::new(SmtpStats::new())));
    let (mut read, mut write) = tokio::io::split(client);
    let writer = tokio::spawn(async move {
        // The listener may close first (QUIT, too many errors): then writing fails.
        if write.write_all(&input).await.is_ok() {
            let _ = write.shutdown().await;
        }
        write
    });
    let mut output = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), read.read_to_end(&mut output))
        .await
        .expect("the listener closes")
        .expect("read");
    let _write_half = writer.await.expect("writer");
    session.await.expect("the session task does not panic");
    (output, handler)
}

#[tokio::test]
async fn remote_peer_without_tls_cannot_send_a_password() {
    let input = format!(
        "EHLO remote.test\r\nAUTH PLAIN {}\r\nAUTH LOGIN\r\nQUIT\r\n",
        plain("alice", "secret")
    );
    let (output, _) = converse(config(), addr("203.0.113.9:40000"), input.into_bytes()).await;
    let output = String::from_utf8_lossy(&output);
    assert!(
        !output.contains("AUTH PLAIN"),
        "AUTH offered without TLS: {output}"
    );
    assert_eq!(
        output
            .matches("538 5.7.11 Encryption required for requested authentication mechanism")
            .count(),
        2,
        "{output}"
    );
    assert!(output.ends_with("221 2.0.0 Bye\r\n"));
}

#[tokio::test]
async fn run_session_over_memory_delivers_a_message() {
    let input = b"EHLO mem.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nSubject: m\r\n\r\nhello\r\n.\r\nQUIT\r\n".to_vec();
    let (output, handler) = converse(config(), addr("198.51.100.1:1000"), input).await;
    let output = String::from_utf8_lossy(&output);
    assert!(output.contains("250 2.0.0 Ok: queued as Q0001"), "{output}");
    let got = handler.received();
    assert_eq!(got[0].body(), b"Subject: m\r\n\r\nhello\r\n");
    assert!(
        got[0]
            .received_header()
            .starts_with("Received: from mem.test ([198.51.100.1])")
    );
}

fn shared_tls_config() -> Arc<rustls::ServerConfig> {
    static CONFIG: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(tls_server_config))
}

fn command_line() -> impl Strategy<Value = Vec<u8>> {
    let known = prop_oneof![
        Just(b"EHLO x".to_vec()),
        Just(b"HELO x".to_vec()),
        Just(b"MAIL FROM:<a@b.c>".to_vec()),
        Just(b"MAIL FROM:<>".to_vec()),
        Just(b"RCPT TO:<d@e.f>".to_vec()),
        Just(b"DATA".to_vec()),
        Just(b".".to_vec()),
        Just(b"AUTH PLAIN".to_vec()),
        Just(b"AUTH LOGIN".to_vec()),
        Just(b"*".to_vec()),
        Just(b"STARTTLS".to_vec()),
        Just(b"RSET".to_vec()),
        Just(b"BDAT 10 LAST".to_vec()),
    ];
    let line = prop_oneof![known, proptest::collection::vec(any::<u8>(), 0..300)];
    (
        line,
        prop_oneof![Just(&b"\r\n"[..]), Just(&b"\n"[..]), Just(&b""[..])],
    )
        .prop_map(|(mut l, end)| {
            l.extend_from_slice(end);
            l
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn arbitrary_lines_never_panic(
        lines in proptest::collection::vec(command_line(), 0..40),
        remote in any::<bool>(),
        tls in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let input: Vec<u8> = lines.concat();
        let peer = if remote { addr("192.0.2.1:9") } else { addr("127.0.0.1:9") };
        let cfg = ListenerConfig { max_line_length: 100, max_data_line_length: 200, max_message_size: 2000, max_errors: 1000, ..config() };
        let cfg = ListenerConfig { tls: tls.then(shared_tls_config), ..cfg };
        let (output, _) = runtime.block_on(converse(cfg, peer, input));
        prop_assert!(output.starts_with(b"220 "));
        // Every reply line is well formed, up to a STARTTLS that was taken:
        // what follows it is the TLS handshake (the client's garbage gets a
        // TLS alert), never a reply to plaintext sent after STARTTLS.
        let ready = b"220 2.0.0 Ready to start TLS\r\n";
        let plain = match output.windows(ready.len()).position(|w| w == ready) {
            Some(at) => &output[..at + ready.len()],
            None => &output[..],
        };
        for line in plain.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            prop_assert!(line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit), "bad reply line {:?}", line.escape_ascii().to_string());
            prop_assert!(line.ends_with(b"\r"));
        }
    }
}

/// Collects log output of the current thread.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn debug_logging_shows_the_conversation_but_not_passwords() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let secret = plain("alice", "secret");
    let input = format!(
        "EHLO log.test\r\nAUTH PLAIN {secret}\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nMessage-ID: <log1@b.test>\r\n\r\nhi\r\n.\r\nQUIT\r\n"
    );
    let cfg = ListenerConfig {
        debug: 4,
        debug_io: 1,
        ..config()
    };
    converse(cfg, addr("127.0.0.1:5000"), input.into_bytes()).await;
    let log = String::from_utf8_lossy(&captured.0.lock().expect("log lock")).into_owned();
    for expected in [
        "SMTP Server: 127.0.0.1:5000 connected",
        ">>> EHLO log.test",
        "<<< 250 2.1.0 Sender OK",
        ">>> AUTH PLAIN ****",
        "authenticated as Alice Example/Acme",
        "SMTP Server: Message Q0001 (MessageID: <log1@b.test>) received from 127.0.0.1 size 33 bytes",
        "read ",
        "disconnected",
    ] {
        assert!(
            log.contains(expected),
            "{expected:?} missing from log:\n{log}"
        );
    }
    assert!(
        !log.contains(&secret),
        "password leaked into the log:\n{log}"
    );
}
