//! An IMAP session (`access::imap`: imap-codec's fragmentizer and parser,
//! literals, LOGIN/AUTHENTICATE, STARTTLS, SELECT/EXAMINE, FETCH with
//! BODYSTRUCTURE/ENVELOPE/sections, SEARCH, STORE, COPY/MOVE, EXPUNGE,
//! APPEND, CREATE/RENAME/DELETE, LIST patterns, STATUS, IDLE) over an
//! in-memory stream, against a real store holding a fresh mail file of
//! three messages (one multipart) for each input.
//!
//! Input: one byte of settings (bit 0: TLS offered, 1: 64-byte lines, 2: a
//! remote peer, so no plaintext login, 3: logged in first, 4: INBOX
//! selected first), then the client's bytes, sent at once, then the client
//! closes.
//!
//! Checked: the session ends (within 10 s) and never panics; it greets
//! first; the store stays healthy and the mail file keeps its Inbox.

#![no_main]

#[path = "common.rs"]
mod common;

use access::Protocol;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let [flags, client @ ..] = input else {
        return;
    };
    let mut bytes = Vec::new();
    if flags & 8 != 0 {
        bytes.extend_from_slice(
            format!("L LOGIN {} {}\r\n", common::USER, common::PASSWORD).as_bytes(),
        );
        if flags & 16 != 0 {
            bytes.extend_from_slice(b"S SELECT INBOX\r\n");
        }
    }
    bytes.extend_from_slice(client);

    common::runtime().block_on(async {
        let (store, mail_file) = common::mail_file().await;
        let handler = std::sync::Arc::new(common::Handler {
            imap: common::config(Protocol::Imap, *flags),
            pop3: common::config(Protocol::Pop3, *flags),
            mail_file: mail_file.clone(),
        });
        let (near, far) = tokio::io::duplex(64 * 1024);
        let session = access::fuzzing::imap_session(
            far,
            common::peer(*flags),
            store.clone(),
            handler,
            common::stats(),
        );
        let out = common::converse(session, near, &bytes).await;
        assert!(
            out.starts_with(b"* OK "),
            "no greeting: {:?}",
            out.escape_ascii().to_string()
        );
        assert_eq!(store.health(), Ok(()));
        let folders = store.folders(&mail_file).unwrap();
        assert!(folders.iter().any(|f| f.name == "Inbox"), "{folders:?}");
    });
});
