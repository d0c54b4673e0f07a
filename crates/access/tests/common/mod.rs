//! Shared test setup: a real store in a temp dir, a handler with fixed
//! passwords, servers on 127.0.0.1, raw clients and python clients.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use access::{AccessConfig, AccessHandler, AccessStats, Login, Protocol};
use store::{Flags, Store};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

pub struct TestHandler {
    pub pop3: Arc<AccessConfig>,
    pub imap: Arc<AccessConfig>,
}

#[async_trait::async_trait]
impl AccessHandler for TestHandler {
    fn config(&self, protocol: Protocol) -> Arc<AccessConfig> {
        match protocol {
            Protocol::Pop3 => self.pop3.clone(),
            Protocol::Imap => self.imap.clone(),
        }
    }

    async fn login(&self, _: SocketAddr, _: Protocol, user: &str, password: &str) -> Option<Login> {
        let (identity, mail_file) = match (user, password) {
            ("jdoe", "secret") => ("John Doe", "mail/jdoe"),
            ("asmith", "pass word") => ("Alice Smith", "mail/asmith"),
            _ => return None,
        };
        Some(Login {
            identity: identity.into(),
            mail_file: mail_file.into(),
        })
    }
}

pub struct Server {
    pub _dir: tempfile::TempDir,
    pub store: Store,
    pub stats: Arc<AccessStats>,
    pub pop3: SocketAddr,
    pub imap: SocketAddr,
    _stop: Vec<oneshot::Sender<()>>,
}

pub fn tls_config() -> Arc<rustls::ServerConfig> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    Arc::new(config)
}

pub async fn start() -> Server {
    start_with(|_| {}).await
}

pub async fn start_with(adjust: impl Fn(&mut AccessConfig)) -> Server {
    start_at("127.0.0.1".parse().unwrap(), adjust).await
}

/// Servers listening on `ip` (a port of its own each).
pub async fn start_at(ip: std::net::IpAddr, adjust: impl Fn(&mut AccessConfig)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut pop3 = AccessConfig::new("mail.example.com", Protocol::Pop3);
    pop3.tls = Some(tls_config());
    adjust(&mut pop3);
    let mut imap = AccessConfig::new("mail.example.com", Protocol::Imap);
    imap.tls = pop3.tls.clone();
    adjust(&mut imap);
    let handler: Arc<dyn AccessHandler> = Arc::new(TestHandler {
        pop3: Arc::new(pop3),
        imap: Arc::new(imap),
    });
    let stats = Arc::new(AccessStats::new());
    let pop3_listener = TcpListener::bind((ip, 0)).await.unwrap();
    let imap_listener = TcpListener::bind((ip, 0)).await.unwrap();
    let (pop3_addr, imap_addr) = (
        pop3_listener.local_addr().unwrap(),
        imap_listener.local_addr().unwrap(),
    );
    let (tx1, rx1) = oneshot::channel::<()>();
    let (tx2, rx2) = oneshot::channel::<()>();
    tokio::spawn(access::pop3::serve(
        pop3_listener,
        store.clone(),
        handler.clone(),
        stats.clone(),
        async move {
            let _ = rx1.await;
        },
    ));
    tokio::spawn(access::imap::serve(
        imap_listener,
        store.clone(),
        handler,
        stats.clone(),
        async move {
            let _ = rx2.await;
        },
    ));
    Server {
        _dir: dir,
        store,
        stats,
        pop3: pop3_addr,
        imap: imap_addr,
        _stop: vec![tx1, tx2],
    }
}

pub fn message(n: usize, subject: &str) -> Vec<u8> {
    format!(
        "From: Sender {n} <sender{n}@example.org>\r\nTo: John Doe <jdoe@example.com>\r\n\
         Subject: {subject}\r\nDate: Mon, 3 Mar 2025 10:00:00 +0000\r\n\
         Message-ID: <m{n}@example.org>\r\n\r\nHello {n}\r\n.dot line\r\nbye\r\n"
    )
    .into_bytes()
}

impl Server {
    /// Puts messages into a mail file's Inbox (created if needed).
    pub async fn deliver(&self, mail_file: &str, messages: Vec<Vec<u8>>) -> Vec<u32> {
        self.store.ensure_mailfile(mail_file).await.unwrap();
        let mut uids = Vec::new();
        for data in messages {
            let entry = self
                .store
                .append(
                    mail_file,
                    "Inbox",
                    data,
                    Flags::default(),
                    1_740_996_000_000,
                )
                .await
                .unwrap();
            uids.push(entry.uid);
        }
        uids
    }

    pub fn stat(&self, protocol: Protocol, name: &str) -> u64 {
        self.stats
            .snapshot(protocol)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .unwrap()
    }
}

/// Runs a python3 script with the port as argv[1]; returns its stdout.
pub async fn python(script: &str, port: u16) -> String {
    let script = script.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(port.to_string())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A line-oriented raw client.
pub struct Raw {
    pub reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    pub writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        Raw {
            reader: BufReader::new(r),
            writer: w,
        }
    }

    pub async fn send(&mut self, data: &[u8]) {
        self.writer.write_all(data).await.unwrap();
    }

    pub async fn line(&mut self) -> String {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(20), self.reader.read_line(&mut line))
            .await
            .expect("server answers")
            .unwrap();
        assert!(n > 0, "connection closed");
        line
    }

    /// Lines until one starts with `prefix` (e.g. the tag); all of them.
    pub async fn until(&mut self, prefix: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            let done = line.starts_with(prefix);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    pub async fn exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.reader.read_exact(&mut buf).await.unwrap();
        buf
    }

    /// True once the server closed the connection.
    pub async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(10), self.reader.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}
