//! A whole inbound SMTP session (`run_session`: command lines, smtp-proto's
//! command parser, the state machine, AUTH, STARTTLS, DATA) over an
//! in-memory stream, the client sending arbitrary bytes and then closing.
//!
//! Checked: the session ends and never panics; every line the server writes
//! is a well-formed reply (`DDD`, `DDD text`, `DDD-text`, CRLF, no stray CR
//! or LF, continuation lines of one code); no message is taken without a
//! `.CRLF` after a line end in the input for it; a message from a session
//! that did not log in holds no bare CR or LF; envelopes have recipients,
//! no duplicates and no more than the limit.
//!
//! Input: one byte choosing the listener's settings, then the client's bytes.

#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use smtp::{
    AuthPolicy, Envelope, ListenerConfig, ListenerKind, Reply, SessionHandler, SessionInfo,
    SmtpStats,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Message {
    authenticated: bool,
    env: Envelope,
    data: Vec<u8>,
}

/// Accepts everyone but `blocked@` senders and `unknown@` recipients; the
/// only account is alice/secret; a `fail@` recipient makes storing fail.
struct Handler {
    config: Arc<ListenerConfig>,
    messages: Mutex<Vec<Message>>,
}

#[async_trait::async_trait]
impl SessionHandler for Handler {
    fn config(&self) -> Arc<ListenerConfig> {
        Arc::clone(&self.config)
    }

    async fn mail_from(&self, _: &SessionInfo, from: &str) -> Result<(), Reply> {
        if from.starts_with("blocked@") {
            return Err(Reply::new(550, (5, 7, 1), "Sender refused"));
        }
        Ok(())
    }

    async fn rcpt_to(&self, _: &SessionInfo, _: &Envelope, rcpt: &str) -> Result<(), Reply> {
        if rcpt.starts_with("unknown@") {
            return Err(Reply::unknown_user("User unknown"));
        }
        Ok(())
    }

    async fn authenticate(&self, _: &SessionInfo, user: &str, password: &str) -> Option<String> {
        (user == "alice" && password == "secret").then(|| "Alice/Acme".to_owned())
    }

    async fn data(&self, s: &SessionInfo, env: Envelope, data: Vec<u8>) -> Result<String, Reply> {
        if env.recipients.iter().any(|r| r.starts_with("fail@")) {
            return Err(Reply::temporary_failure("Mail box unavailable"));
        }
        let mut messages = self.messages.lock().unwrap();
        messages.push(Message {
            authenticated: s.authenticated.is_some(),
            env,
            data,
        });
        Ok(format!("Q{}", messages.len()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

fn tls() -> Arc<rustls::ServerConfig> {
    static TLS: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    TLS.get_or_init(|| {
        let cert = rcgen::generate_simple_self_signed(vec!["mail.acme.test".into()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        Arc::new(config)
    })
    .clone()
}

fn config(flags: u8) -> ListenerConfig {
    let mut config = ListenerConfig {
        hostname: "mail.acme.test".to_owned(),
        kind: if flags & 1 != 0 {
            ListenerKind::Submission
        } else {
            ListenerKind::Smtp
        },
        auth: match (flags >> 1) & 3 {
            0 => AuthPolicy::Optional,
            1 => AuthPolicy::Required,
            _ => AuthPolicy::Off,
        },
        tls: (flags & 8 != 0).then(tls),
        idle_timeout: Duration::from_secs(30),
        ..ListenerConfig::default()
    };
    if flags & 32 != 0 {
        config.max_recipients = 3;
        config.max_line_length = 64;
        config.max_data_line_length = 100;
        config.max_message_size = 1000;
        config.max_errors = 5;
        config.inflight_message_bytes = 2000;
    }
    config
}

/// Checks that `out` is a sequence of well-formed replies, up to a `220`
/// that starts TLS (what follows it is TLS).
fn check_replies(out: &[u8]) {
    let mut rest = out;
    let mut continued: Option<&[u8]> = None;
    while !rest.is_empty() {
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            panic!("reply without CRLF: {:?}", rest.escape_ascii().to_string());
        };
        let line = &rest[..end];
        rest = &rest[end + 2..];
        let shown = line.escape_ascii().to_string();
        assert!(line.len() >= 3, "short reply line {shown:?}");
        let (code, tail) = line.split_at(3);
        assert!(code.iter().all(u8::is_ascii_digit), "bad code in {shown:?}");
        assert!((b'2'..=b'5').contains(&code[0]), "bad code in {shown:?}");
        assert!(
            !tail.contains(&b'\r') && !tail.contains(&b'\n'),
            "stray line end in {shown:?}"
        );
        if let Some(previous) = continued {
            assert_eq!(previous, code, "continuation changed its code: {shown:?}");
        }
        continued = match tail.first() {
            Some(b'-') => Some(code),
            None | Some(b' ') => None,
            Some(_) => panic!("bad separator in {shown:?}"),
        };
        if line.starts_with(b"220 2.0.0 Ready to start TLS") {
            return;
        }
    }
    assert!(continued.is_none(), "the last reply was left unfinished");
}

/// Bare CR (not before LF) or bare LF (not after CR).
fn has_bare_line_end(data: &[u8]) -> bool {
    data.iter().enumerate().any(|(i, &b)| {
        (b == b'\n' && (i == 0 || data[i - 1] != b'\r'))
            || (b == b'\r' && data.get(i + 1) != Some(&b'\n'))
    })
}

fuzz_target!(|input: &[u8]| {
    let [flags, client @ ..] = input else {
        return;
    };
    let config = Arc::new(config(*flags));
    let handler = Arc::new(Handler {
        config: Arc::clone(&config),
        messages: Mutex::new(Vec::new()),
    });
    let peer: SocketAddr = if flags & 16 != 0 {
        "192.0.2.7:40000".parse().unwrap()
    } else {
        "127.0.0.1:40000".parse().unwrap()
    };
    let info = SessionInfo::new(peer, "127.0.0.1:25".parse().unwrap(), 1);
    let stats = Arc::new(SmtpStats::new());

    let out = runtime().block_on(async {
        let (near, far) = tokio::io::duplex(64 * 1024);
        let (mut reader, mut writer) = tokio::io::split(near);
        let session = smtp::run_session(far, info, handler.clone(), stats);
        let send = async {
            // The server may close first (QUIT, too many errors): not an error.
            let _ = writer.write_all(client).await;
            let _ = writer.shutdown().await;
        };
        let receive = async {
            let mut out = Vec::new();
            let _ = reader.read_to_end(&mut out).await;
            out
        };
        let run = async { tokio::join!(session, send, receive).2 };
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the session ended")
    });

    check_replies(&out);

    let messages = handler.messages.lock().unwrap();
    let ends = (1..client.len())
        .filter(|&i| client[i - 1] == b'\n' && client[i..].starts_with(b".\r\n"))
        .count();
    assert!(
        messages.len() <= ends,
        "{} messages, {ends} ends",
        messages.len()
    );
    for message in messages.iter() {
        assert!(message.data.starts_with(b"Received: "));
        let content = &message.data[message.env.received_len..];
        if !message.authenticated {
            assert!(!has_bare_line_end(content), "bare line end stored");
        }
        let recipients = &message.env.recipients;
        assert!(!recipients.is_empty());
        assert!(recipients.len() <= config.max_recipients);
        for (i, r) in recipients.iter().enumerate() {
            assert!(!recipients[..i].contains(r), "duplicate recipient {r}");
        }
    }
});
