//! What the IMAP and POP3 targets share: one runtime and one store (in
//! memory when /dev/shm is there) for many inputs, a fresh mail file per
//! input holding the same three messages (so an input always meets the same
//! mailbox, UIDs 1..3), a handler with one account, and a session driven
//! over an in-memory stream: the client's bytes are sent, its side is
//! closed, and everything the server says is read until it closes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use access::{AccessConfig, AccessHandler, AccessStats, Login, Protocol};
use store::{Flags, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// A new store is opened after this many inputs, so it never grows large.
const INPUTS_PER_STORE: u64 = 2000;

pub const USER: &str = "jdoe";
pub const PASSWORD: &str = "secret";

const MESSAGES: [&[u8]; 3] = [
    b"From: Sender One <one@example.org>\r\nTo: John Doe <jdoe@acme.com>\r\n\
      Subject: Topic 1\r\nDate: Mon, 3 Mar 2025 10:00:00 +0000\r\n\
      Message-ID: <m1@example.org>\r\n\r\nHello 1\r\n.dot line\r\nbye\r\n",
    b"From: =?UTF-8?B?SsO2cmc=?= <jorg@example.org>\r\nTo: jdoe@acme.com, \"A, B\" <ab@x.test>\r\n\
      Cc: group: a@x.test, b@x.test;\r\nSubject: =?ISO-8859-1?Q?Caf=E9?= report\r\n\
      Date: Tue, 4 Mar 2025 11:30:00 +0100\r\nMIME-Version: 1.0\r\n\
      Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
      preamble\r\n--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n\
      --inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain text\r\n\
      --inner\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
      <p>html=20text</p>\r\n--inner--\r\n--outer\r\n\
      Content-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=a.pdf\r\n\
      Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--outer\r\n\
      Content-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: x@y.test\r\n\r\ninner body\r\n\
      --outer--\r\nepilogue\r\n",
    b"Subject: no date, long header\r\n folded onto two lines\r\nX-Odd: \xff\xfe bytes\r\n\r\n\
      body without a final line end",
];

pub struct Handler {
    pub imap: Arc<AccessConfig>,
    pub pop3: Arc<AccessConfig>,
    pub mail_file: String,
}

#[async_trait::async_trait]
impl AccessHandler for Handler {
    fn config(&self, protocol: Protocol) -> Arc<AccessConfig> {
        match protocol {
            Protocol::Imap => self.imap.clone(),
            Protocol::Pop3 => self.pop3.clone(),
        }
    }

    async fn login(&self, _: SocketAddr, _: Protocol, user: &str, password: &str) -> Option<Login> {
        (user == USER && password == PASSWORD).then(|| Login {
            identity: "John Doe".to_owned(),
            mail_file: self.mail_file.clone(),
        })
    }
}

pub fn runtime() -> &'static tokio::runtime::Runtime {
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

struct Stores {
    store: Option<Store>,
    dir: PathBuf,
    used: u64,
    inputs: u64,
}

/// The store for this input and a mail file of its own, made ready.
pub async fn mail_file() -> (Store, String) {
    static STORES: Mutex<Stores> = Mutex::new(Stores {
        store: None,
        dir: PathBuf::new(),
        used: 0,
        inputs: 0,
    });
    let (store, n) = {
        let mut stores = STORES.lock().unwrap();
        if stores.store.is_none() || stores.used >= INPUTS_PER_STORE {
            stores.store = None;
            if !stores.dir.as_os_str().is_empty() {
                let _ = std::fs::remove_dir_all(&stores.dir);
            }
            let shm = std::path::Path::new("/dev/shm");
            let base = if shm.is_dir() {
                shm.to_path_buf()
            } else {
                std::env::temp_dir()
            };
            stores.dir = base.join(format!(
                "mailhop-fuzz-access-{}-{}",
                std::process::id(),
                stores.inputs
            ));
            stores.store = Some(Store::open(&stores.dir).unwrap());
            stores.used = 0;
        }
        stores.used += 1;
        stores.inputs += 1;
        (stores.store.clone().unwrap(), stores.inputs)
    };
    let mail_file = format!("mail/f{n}");
    store.ensure_mailfile(&mail_file).await.unwrap();
    let seen = Flags {
        seen: true,
        ..Flags::default()
    };
    let append = |data: &[u8], flags: Flags| {
        store.append(&mail_file, "Inbox", data.to_vec(), flags, 1_740_996_000_000)
    };
    // Together, so the store commits them as one group.
    let (a, b, c, work) = tokio::join!(
        append(MESSAGES[0], seen),
        append(MESSAGES[1], Flags::default()),
        append(MESSAGES[2], Flags::default()),
        store.create_folder(&mail_file, "Work", None),
    );
    for appended in [a, b, c] {
        appended.unwrap();
    }
    work.unwrap();
    (store, mail_file)
}

/// Settings for one input: TLS offered or not, and the limits.
pub fn config(protocol: Protocol, flags: u8) -> Arc<AccessConfig> {
    let mut config = AccessConfig::new("mail.acme.test", protocol);
    if flags & 1 != 0 {
        config.tls = Some(tls());
    }
    if flags & 2 != 0 {
        config.max_line = 64;
    }
    config.idle_timeout = Duration::from_secs(30);
    Arc::new(config)
}

/// The peer: loopback (plaintext passwords allowed) or remote (not).
pub fn peer(flags: u8) -> SocketAddr {
    if flags & 4 != 0 {
        "192.0.2.7:40000".parse().unwrap()
    } else {
        "127.0.0.1:40000".parse().unwrap()
    }
}

/// Sends `client` to the session running on the other end of the stream,
/// closes, and returns what the server said.
pub async fn converse(
    session: impl std::future::Future<Output = Result<(), String>>,
    near: DuplexStream,
    client: &[u8],
) -> Vec<u8> {
    let (mut reader, mut writer) = tokio::io::split(near);
    let send = async {
        // The server may close first (LOGOUT, QUIT): not an error.
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
}

pub fn stats() -> Arc<AccessStats> {
    Arc::new(AccessStats::new())
}
