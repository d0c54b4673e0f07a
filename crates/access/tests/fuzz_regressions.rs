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
    let session = access::fuzzing::imap_session(
        far,
        "127.0.0.1:40000".parse().unwrap(),
        store,
        handler,
        Arc::new(AccessStats::new()),
    );
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
