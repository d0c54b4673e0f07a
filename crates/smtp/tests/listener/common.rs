//! Test fixtures: a recording handler, a started listener, a raw SMTP
//! client over any stream, and TLS configurations with a self-signed
//! certificate.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use smtp::{Envelope, ListenerConfig, Reply, SessionHandler, SessionInfo, SmtpStats};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// One message as the handler received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub session: SessionInfo,
    pub env: Envelope,
    pub message: Vec<u8>,
}

impl Received {
    /// The message without the listener's `Received:` header.
    pub fn body(&self) -> &[u8] {
        assert!(
            self.message.starts_with(b"Received: from "),
            "no Received header"
        );
        let mut rest = &self.message[..];
        loop {
            let nl = rest
                .iter()
                .position(|&b| b == b'\n')
                .expect("header line end");
            rest = &rest[nl + 1..];
            if rest.first() != Some(&b'\t') {
                return rest;
            }
        }
    }

    pub fn received_header(&self) -> String {
        let body_len = self.body().len();
        String::from_utf8_lossy(&self.message[..self.message.len() - body_len]).into_owned()
    }
}

/// A handler that records everything and has a few rules for tests:
/// `unknown@...` is an unknown user, `blocked@...` may not send,
/// `alice`/`secret` is the only account, `fail@...` recipients make
/// `data` fail with 451.
pub struct Recorder {
    config: Arc<ListenerConfig>,
    pub messages: Mutex<Vec<Received>>,
    pub data_calls: AtomicUsize,
}

impl Recorder {
    pub fn new(config: ListenerConfig) -> Arc<Recorder> {
        Arc::new(Recorder {
            config: Arc::new(config),
            messages: Mutex::new(Vec::new()),
            data_calls: AtomicUsize::new(0),
        })
    }

    pub fn received(&self) -> Vec<Received> {
        self.messages.lock().expect("lock").clone()
    }
}

#[async_trait::async_trait]
impl SessionHandler for Recorder {
    fn config(&self) -> Arc<ListenerConfig> {
        Arc::clone(&self.config)
    }

    async fn mail_from(&self, _s: &SessionInfo, from: &str) -> Result<(), Reply> {
        if from.starts_with("blocked@") {
            return Err(Reply::new(550, (5, 7, 1), "Sender refused"));
        }
        Ok(())
    }

    async fn rcpt_to(&self, _s: &SessionInfo, _env: &Envelope, rcpt: &str) -> Result<(), Reply> {
        if rcpt.starts_with("unknown@") {
            return Err(Reply::unknown_user("User unknown"));
        }
        Ok(())
    }

    async fn authenticate(&self, _s: &SessionInfo, user: &str, password: &str) -> Option<String> {
        (user == "alice" && password == "secret").then(|| "Alice Example/Acme".to_owned())
    }

    async fn data(
        &self,
        s: &SessionInfo,
        env: Envelope,
        message: Vec<u8>,
    ) -> Result<String, Reply> {
        let n = self.data_calls.fetch_add(1, Ordering::SeqCst) + 1;
        if env.recipients.iter().any(|r| r.starts_with("fail@")) {
            return Err(Reply::temporary_failure("Mail box unavailable"));
        }
        self.messages.lock().expect("lock").push(Received {
            session: s.clone(),
            env,
            message,
        });
        Ok(format!("Q{n:04}"))
    }
}

/// A listener serving on a loopback port until dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub handler: Arc<Recorder>,
    pub stats: Arc<SmtpStats>,
    _shutdown: oneshot::Sender<()>,
}

impl Server {
    pub async fn start(config: ListenerConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handler = Recorder::new(config);
        let stats = Arc::new(SmtpStats::new());
        let (tx, rx) = oneshot::channel::<()>();
        let h: Arc<dyn SessionHandler> = handler.clone();
        tokio::spawn(smtp::serve(listener, h, Arc::clone(&stats), async {
            let _ = rx.await;
        }));
        Server {
            addr,
            handler,
            stats,
            _shutdown: tx,
        }
    }

    pub async fn connect(&self) -> Client<TcpStream> {
        let stream = TcpStream::connect(self.addr).await.expect("connect");
        Client::new(stream)
    }

    pub fn stat(&self, name: &str) -> u64 {
        self.stats
            .snapshot()
            .into_iter()
            .find(|&(n, _)| n == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no statistic {name}"))
    }
}

/// A config for tests: short timeouts so a stuck test fails fast.
pub fn config() -> ListenerConfig {
    ListenerConfig {
        hostname: "mail.acme.test".to_owned(),
        idle_timeout: Duration::from_secs(20),
        ..ListenerConfig::default()
    }
}

/// A raw SMTP client: send lines, read (multi-line) replies.
pub struct Client<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn new(io: S) -> Client<S> {
        Client {
            io: BufReader::new(io),
        }
    }

    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.io
            .get_mut()
            .write_all(bytes.as_ref())
            .await
            .expect("write");
        self.io.get_mut().flush().await.expect("flush");
    }

    /// Reads one reply; all its lines joined with `\n`. Empty at EOF.
    pub async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(30), self.io.read_line(&mut line))
                .await
                .expect("reply within 30 s")
                .expect("read");
            if n == 0 {
                return all;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if !all.is_empty() {
                all.push('\n');
            }
            all.push_str(line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    /// Sends a command line and returns the reply.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n")).await;
        self.reply().await
    }

    /// Asserts the reply starts with `code`.
    pub async fn expect(&mut self, line: &str, code: &str) -> String {
        let reply = self.cmd(line).await;
        assert!(
            reply.starts_with(code),
            "{line:?} gave {reply:?}, expected {code}"
        );
        reply
    }

    /// True once the server closed the connection.
    pub async fn closed(&mut self) -> bool {
        self.reply().await.is_empty()
    }

    /// Everything the server sends until it closes.
    pub async fn drain(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), self.io.read_to_end(&mut rest))
            .await
            .expect("closed within 30 s")
            .expect("read");
        rest
    }

    pub fn into_inner(self) -> S {
        assert!(self.io.buffer().is_empty(), "unread server data");
        self.io.into_inner()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A server TLS config with a fresh self-signed certificate for localhost.
pub fn tls_server_config() -> Arc<ServerConfig> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    Arc::new(config)
}

/// Accepts any server certificate: the test only checks the listener.
#[derive(Debug)]
struct AcceptAny;

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Wraps a stream in a TLS client session that accepts any certificate.
pub async fn tls_connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
) -> tokio_rustls::client::TlsStream<S> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").expect("name");
    connector
        .connect(name, stream)
        .await
        .expect("TLS handshake")
}

/// `\0user\0password` in base64, for AUTH PLAIN.
pub fn plain(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

pub fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Polls until `check` holds (sessions finish in their own tasks).
pub async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}
