//! Times SELECT, `UID FETCH 1:* (FLAGS ENVELOPE)` and `SEARCH SUBJECT` on a
//! 10,000-message mailbox over loopback with a raw client.
//! Run: `cargo bench -p access --bench imap`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use access::{AccessConfig, AccessHandler, AccessStats, Login, Protocol};
use store::{Flags, Store};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

struct Handler(Arc<AccessConfig>);

#[async_trait::async_trait]
impl AccessHandler for Handler {
    fn config(&self, _: Protocol) -> Arc<AccessConfig> {
        self.0.clone()
    }

    async fn login(&self, _: SocketAddr, _: Protocol, user: &str, pw: &str) -> Option<Login> {
        (user == "bench" && pw == "bench").then(|| Login {
            identity: "Bench User".into(),
            mail_file: "mail/bench".into(),
        })
    }
}

/// Sends a command; returns the number of response lines up to its tagged reply.
async fn command(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    tag: &str,
    text: &str,
) -> usize {
    writer
        .write_all(format!("{tag} {text}\r\n").as_bytes())
        .await
        .expect("send");
    let mut lines = 0;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await.expect("read") == 0 {
            panic!("server closed the connection");
        }
        lines += 1;
        if line.starts_with(&format!("{tag} ")) {
            assert!(line.starts_with(&format!("{tag} OK")), "{line}");
            return lines;
        }
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("store");
    store
        .ensure_mailfile("mail/bench")
        .await
        .expect("mail file");
    let built = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..10_000u32 {
        let store = store.clone();
        tasks.spawn(async move {
            let subject = if n % 1000 == 0 {
                "needle"
            } else {
                "weekly report"
            };
            let data = format!(
                "From: Sender {n} <s{n}@example.org>\r\nTo: Bench <bench@example.com>\r\n\
                 Cc: Team <team@example.com>\r\nSubject: {subject} {n}\r\n\
                 Date: Mon, 3 Mar 2025 10:00:00 +0000\r\nMessage-ID: <b{n}@example.org>\r\n\r\n\
                 Body of message {n}\r\n"
            );
            store
                .append(
                    "mail/bench",
                    "Inbox",
                    data.into_bytes(),
                    Flags::default(),
                    0,
                )
                .await
                .expect("append")
        });
    }
    while tasks.join_next().await.is_some() {}
    println!("built 10000 messages in {:?}", built.elapsed());

    let config = Arc::new(AccessConfig::new("bench.example.com", Protocol::Imap));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(access::imap::serve(
        listener,
        store,
        Arc::new(Handler(config)),
        Arc::new(AccessStats::new()),
        std::future::pending(),
    ));
    let (r, mut writer) = TcpStream::connect(addr)
        .await
        .expect("connect")
        .into_split();
    let mut reader = BufReader::new(r);
    let mut greeting = String::new();
    reader.read_line(&mut greeting).await.expect("greeting");
    command(&mut reader, &mut writer, "l", "LOGIN bench bench").await;
    for round in 1..=3 {
        let t = Instant::now();
        command(&mut reader, &mut writer, "s", "SELECT INBOX").await;
        let select = t.elapsed();
        let t = Instant::now();
        let lines = command(
            &mut reader,
            &mut writer,
            "f",
            "UID FETCH 1:* (FLAGS ENVELOPE)",
        )
        .await;
        let fetch = t.elapsed();
        assert_eq!(lines, 10_001);
        let t = Instant::now();
        command(&mut reader, &mut writer, "q", "SEARCH SUBJECT needle").await;
        let search = t.elapsed();
        println!(
            "round {round}: SELECT {select:?}  UID FETCH 1:* (FLAGS ENVELOPE) {fetch:?}  SEARCH SUBJECT {search:?}"
        );
    }
}
