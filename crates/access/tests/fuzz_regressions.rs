//! Inputs the fuzz targets of `crates/access/fuzz` (or their harness) found
//! to break a session, replayed over an in-memory stream the way the
//! targets drive a session. Each must now end quickly and sanely.

mod common;

use std::sync::Arc;
use std::time::Duration;

use access::{AccessConfig, AccessHandler, AccessStats, Protocol};
use common::{TestHandler, message};
use store::{Flags, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs one IMAP session for `jdoe` (three messages in the Inbox) on
/// `client`, sent at once before the client closes; returns what the
/// server said.
async fn imap(client: &[u8]) -> String {
    session(Protocol::Imap, "127.0.0.1:40000", client).await
}

/// One session of `protocol` from `peer` (not connected to: the stream is
/// in memory), as [`imap`] describes.
async fn session(protocol: Protocol, peer: &str, client: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.ensure_mailfile("mail/jdoe").await.unwrap();
    for n in 1..=3 {
        let data = message(n, &format!("Topic {n}"));
        store
            .append(
                "mail/jdoe",
                "Inbox",
                data,
                Flags::default(),
                1_740_996_000_000,
            )
            .await
            .unwrap();
    }
    let handler: Arc<dyn AccessHandler> = Arc::new(TestHandler {
        pop3: Arc::new(AccessConfig::new("mail.example.com", Protocol::Pop3)),
        imap: Arc::new(AccessConfig::new("mail.example.com", Protocol::Imap)),
    });
    let (near, far) = tokio::io::duplex(64 * 1024);
    let peer = peer.parse().unwrap();
    let stats = Arc::new(AccessStats::new());
    let session = async move {
        match protocol {
            Protocol::Imap => access::fuzzing::imap_session(far, peer, store, handler, stats).await,
            Protocol::Pop3 => access::fuzzing::pop3_session(far, peer, store, handler, stats).await,
        }
    };
    let (mut reader, mut writer) = tokio::io::split(near);
    let send = async {
        let _ = writer.write_all(client).await;
        let _ = writer.shutdown().await;
    };
    let receive = async {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out).await;
        out
    };
    let (_, _, out) = tokio::join!(session, send, receive);
    String::from_utf8_lossy(&out).into_owned()
}

/// A LIST pattern of many wildcards took time exponential in their number
/// (the matcher tried every split of every folder name), holding the
/// session's thread: forty `%` took seconds, sixty would take years.
#[tokio::test]
async fn list_with_many_wildcards_answers_at_once() {
    let percent = "%".repeat(60);
    let stars = "*".repeat(60);
    let input = format!(
        "a LOGIN jdoe secret\r\nb LIST \"\" \"{percent}x\"\r\nc LIST \"\" \"{stars}\"\r\n\
         d LIST \"\" \"{percent}\"\r\ne LOGOUT\r\n"
    );
    // A hang guard, not a speed measure: the old matcher never returned.
    let out = tokio::time::timeout(Duration::from_secs(60), imap(input.as_bytes()))
        .await
        .expect("the session ended");
    assert!(out.contains("b OK LIST completed"), "{out}");
    assert!(out.contains("c OK LIST completed"), "{out}");
    assert!(out.contains("\"/\" Sent\r\n"), "{out}");
    assert!(out.contains("e OK LOGOUT completed"), "{out}");
}

/// A client off this machine without TLS is never asked for a password:
/// IMAP says LOGINDISABLED and refuses LOGIN and AUTHENTICATE, POP3 offers
/// neither USER nor SASL and refuses them. The peer is a documentation
/// address given to an in-memory session; nothing is sent anywhere.
#[tokio::test]
async fn remote_clients_without_tls_cannot_send_a_password() {
    let out = session(
        Protocol::Imap,
        "203.0.113.7:40000",
        b"a1 LOGIN jdoe secret\r\na2 AUTHENTICATE PLAIN AGpkb2UAc2VjcmV0\r\na3 LOGOUT\r\n",
    )
    .await;
    let greeting = out.lines().next().unwrap_or_default();
    assert!(greeting.contains("LOGINDISABLED"), "{out}");
    assert!(!greeting.contains("AUTH=PLAIN"), "{out}");
    assert!(out.contains("a1 NO [PRIVACYREQUIRED]"), "{out}");
    assert!(out.contains("a2 NO [PRIVACYREQUIRED]"), "{out}");
    assert!(!out.contains("a1 OK"), "{out}");

    let out = session(
        Protocol::Pop3,
        "203.0.113.7:40000",
        b"CAPA\r\nUSER jdoe\r\nPASS secret\r\nAUTH PLAIN AGpkb2UAc2VjcmV0\r\nQUIT\r\n",
    )
    .await;
    let capa = out.split("\r\n.\r\n").next().unwrap_or_default();
    assert!(
        !capa.contains("USER\r\n") && !capa.contains("SASL"),
        "{out}"
    );
    let privacy = "-ERR [AUTH] plaintext login is refused without TLS: use STLS first";
    assert_eq!(out.matches(privacy).count(), 3, "{out}");
    assert!(
        !out.contains("+OK Logged in") && !out.contains("+OK maildrop"),
        "{out}"
    );
}
