//! A small SMTP server for tests: configurable replies, counts what it sees.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;
use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// What the sink answers.
#[derive(Clone)]
pub struct SinkConfig {
    pub ip: IpAddr,
    /// 0: any free port.
    pub port: u16,
    /// `None`: accept and never say anything.
    pub greeting: Option<String>,
    /// Capability lines after the first EHLO line.
    pub capabilities: Vec<String>,
    /// Replaces the whole EHLO reply (e.g. "500 5.5.1 no EHLO").
    pub ehlo_reply: Option<String>,
    pub mail_reply: String,
    /// Replies by recipient address; others get 250.
    pub rcpt_replies: HashMap<String, String>,
    pub data_reply: String,
    pub final_reply: String,
    /// Offer STARTTLS with this certificate.
    pub tls: Option<Arc<ServerConfig>>,
    /// Answer 220 to STARTTLS and then write junk instead of a handshake.
    pub broken_tls: bool,
    /// Close the connection right after the reply to the final dot.
    pub close_after_message: bool,
    /// Never answer this command (e.g. "DATA").
    pub hang_on: Option<String>,
    /// Take the whole content, then never answer the final dot.
    pub hang_after_content: bool,
    /// Answer DATA with 354 even when no recipient was accepted (and
    /// refuse the content that follows).
    pub data_without_recipients: bool,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            greeting: Some("220 sink.test ESMTP".into()),
            capabilities: vec![
                "PIPELINING".into(),
                "8BITMIME".into(),
                "SIZE 10000000".into(),
            ],
            ehlo_reply: None,
            mail_reply: "250 2.1.0 Ok".into(),
            rcpt_replies: HashMap::new(),
            data_reply: "354 End data with <CR><LF>.<CR><LF>".into(),
            final_reply: "250 2.0.0 Ok: queued".into(),
            tls: None,
            broken_tls: false,
            close_after_message: false,
            hang_on: None,
            hang_after_content: false,
            data_without_recipients: false,
        }
    }
}

/// One message as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub mail_from: String,
    pub rcpts: Vec<String>,
    pub data: Vec<u8>,
}

#[derive(Default)]
pub struct Stats {
    pub connections: AtomicUsize,
    pub tls_sessions: AtomicUsize,
    /// Some MAIL FROM arrived together with what followed it.
    pub pipelined: AtomicBool,
    /// Some RSET arrived together with the transaction after it.
    pub rset_grouped: AtomicBool,
    pub commands: Mutex<Vec<String>>,
    pub messages: Mutex<Vec<Received>>,
}

impl Stats {
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn messages(&self) -> Vec<Received> {
        self.messages.lock().clone()
    }

    pub fn saw(&self, verb: &str) -> usize {
        self.commands
            .lock()
            .iter()
            .filter(|c| c.to_ascii_uppercase().starts_with(verb))
            .count()
    }
}

pub struct Sink {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
}

impl Sink {
    pub async fn start(config: SinkConfig) -> Self {
        let listener = TcpListener::bind((config.ip, config.port))
            .await
            .expect("bind sink");
        let addr = listener.local_addr().expect("sink address");
        let stats = Arc::new(Stats::default());
        let config = Arc::new(config);
        let shared = stats.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                shared.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(tcp, config.clone(), shared.clone()));
            }
        });
        Self { addr, stats }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// A self-signed certificate for `sink.test`.
pub fn tls_config() -> Arc<ServerConfig> {
    let cert = rcgen::generate_simple_self_signed(vec!["sink.test".to_owned()]).expect("cert");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let config = ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .expect("server config");
    Arc::new(config)
}

async fn serve(tcp: TcpStream, config: Arc<SinkConfig>, stats: Arc<Stats>) {
    let Some(greeting) = &config.greeting else {
        // Hold the connection open and silent.
        let mut tcp = tcp;
        let mut buf = [0u8; 64];
        while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
        return;
    };
    let mut plain = BufReader::new(tcp);
    if reply(&mut plain, greeting).await.is_err() {
        return;
    }
    match converse(&mut plain, &config, &stats, false).await {
        Some(Upgrade::Tls) => {
            let Some(tls) = &config.tls else { return };
            let tcp = plain.into_inner();
            let Ok(stream) = TlsAcceptor::from(tls.clone()).accept(tcp).await else {
                return;
            };
            stats.tls_sessions.fetch_add(1, Ordering::SeqCst);
            let mut secure = BufReader::new(stream);
            converse(&mut secure, &config, &stats, true).await;
        }
        Some(Upgrade::Junk) => {
            let mut tcp = plain.into_inner();
            let _ = tcp.write_all(b"this is not TLS at all\r\n").await;
        }
        None => {}
    }
}

enum Upgrade {
    Tls,
    Junk,
}

async fn reply<S: AsyncWrite + Unpin>(stream: &mut S, text: &str) -> std::io::Result<()> {
    stream.write_all(format!("{text}\r\n").as_bytes()).await?;
    stream.flush().await
}

/// Commands until QUIT or close; `Some` when the client asked for STARTTLS.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    config: &SinkConfig,
    stats: &Stats,
    secure: bool,
) -> Option<Upgrade> {
    let mut mail_from = String::new();
    let mut rcpts = Vec::new();
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end().to_owned();
        stats.commands.lock().push(line.clone());
        let upper = line.to_ascii_uppercase();
        if config
            .hang_on
            .as_deref()
            .is_some_and(|verb| upper.starts_with(verb))
        {
            std::future::pending::<()>().await;
        }
        let answer: String = if upper.starts_with("EHLO") {
            match &config.ehlo_reply {
                Some(text) => text.clone(),
                None => {
                    let mut caps = config.capabilities.clone();
                    if (config.tls.is_some() || config.broken_tls) && !secure {
                        caps.push("STARTTLS".into());
                    }
                    let mut text = String::from("250");
                    text.push(if caps.is_empty() { ' ' } else { '-' });
                    text.push_str("sink.test hello");
                    for (i, cap) in caps.iter().enumerate() {
                        let sep = if i + 1 == caps.len() { ' ' } else { '-' };
                        text.push_str(&format!("\r\n250{sep}{cap}"));
                    }
                    text
                }
            }
        } else if upper.starts_with("HELO") {
            "250 sink.test".into()
        } else if upper == "STARTTLS" {
            reply(stream, "220 2.0.0 Ready to start TLS").await.ok()?;
            return Some(if config.broken_tls {
                Upgrade::Junk
            } else {
                Upgrade::Tls
            });
        } else if upper.starts_with("MAIL FROM:") {
            if !stream.buffer().is_empty() {
                stats.pipelined.store(true, Ordering::SeqCst);
            }
            mail_from = between_brackets(&line);
            rcpts.clear();
            config.mail_reply.clone()
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = between_brackets(&line);
            match config.rcpt_replies.get(&rcpt) {
                Some(text) => text.clone(),
                None => {
                    rcpts.push(rcpt);
                    "250 2.1.5 Ok".into()
                }
            }
        } else if upper == "DATA" {
            if rcpts.is_empty() && config.data_without_recipients {
                reply(stream, &config.data_reply).await.ok()?;
                read_data(stream).await?;
                "554 5.5.1 No valid recipients".into()
            } else if rcpts.is_empty() {
                "554 5.5.1 No valid recipients".into()
            } else if !config.data_reply.starts_with('3') {
                config.data_reply.clone()
            } else {
                reply(stream, &config.data_reply).await.ok()?;
                let data = read_data(stream).await?;
                if config.hang_after_content {
                    std::future::pending::<()>().await;
                }
                stats.messages.lock().push(Received {
                    mail_from: mail_from.clone(),
                    rcpts: std::mem::take(&mut rcpts),
                    data,
                });
                reply(stream, &config.final_reply).await.ok()?;
                if config.close_after_message {
                    return None;
                }
                continue;
            }
        } else if upper == "RSET" {
            if !stream.buffer().is_empty() {
                stats.rset_grouped.store(true, Ordering::SeqCst);
            }
            rcpts.clear();
            "250 2.0.0 Ok".into()
        } else if upper == "QUIT" {
            let _ = reply(stream, "221 2.0.0 Bye").await;
            return None;
        } else {
            "502 5.5.2 Error: command not recognized".into()
        };
        reply(stream, &answer).await.ok()?;
    }
}

/// The content up to the final dot, un-stuffed.
async fn read_data<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        if stream.read_until(b'\n', &mut line).await.ok()? == 0 {
            return None;
        }
        if line == b".\r\n" {
            return Some(data);
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(line);
    }
}

fn between_brackets(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line.rfind('>').unwrap_or(line.len());
    line.get(start..end).unwrap_or_default().to_owned()
}
