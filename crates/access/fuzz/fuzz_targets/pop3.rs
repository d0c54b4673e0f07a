//! A POP3 session (`access::pop3`: command lines, USER/PASS, AUTH PLAIN,
//! STLS, CAPA, STAT/LIST/UIDL/RETR/TOP/DELE/RSET/NOOP, QUIT and the UPDATE
//! state) over an in-memory stream, against a real store holding a fresh
//! mail file of three messages for each input.
//!
//! Input: one byte of settings (bit 0: TLS offered, 1: 64-byte lines, 2: a
//! remote peer, so no plaintext login, 3: logged in first), then the
//! client's bytes, sent at once, then the client closes.
//!
//! Checked: the session ends (within 10 s) and never panics; it greets
//! first; up to a STLS, everything it says is lines ending in CRLF, with no
//! bare CR or LF; the store stays healthy; the Inbox holds at most the three
//! messages and at least none.

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
            format!("USER {}\r\nPASS {}\r\n", common::USER, common::PASSWORD).as_bytes(),
        );
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
        let session = access::fuzzing::pop3_session(
            far,
            common::peer(*flags),
            store.clone(),
            handler,
            common::stats(),
        );
        let out = common::converse(session, near, &bytes).await;
        let shown = || out.escape_ascii().to_string();
        assert!(out.starts_with(b"+OK "), "no greeting: {:?}", shown());
        let plain = match out
            .windows(28)
            .position(|w| w == b"+OK Begin TLS negotiation\r\n")
        {
            Some(at) => &out[..at + 28],
            None => &out[..],
        };
        assert!(
            plain.is_empty() || plain.ends_with(b"\r\n"),
            "{:?}",
            shown()
        );
        for (i, &b) in plain.iter().enumerate() {
            let bare = (b == b'\n' && (i == 0 || plain[i - 1] != b'\r'))
                || (b == b'\r' && plain.get(i + 1) != Some(&b'\n'));
            assert!(!bare, "bare line end at {i}: {:?}", shown());
        }
        assert_eq!(store.health(), Ok(()));
        let inbox = store.messages(&mail_file, "Inbox").unwrap();
        assert!(inbox.len() <= 3);
    });
});
