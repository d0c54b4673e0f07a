//! The outbound SMTP client's reply reader (`client.rs`: lines kept to
//! 2,048 bytes, replies to 128 lines, multi-line replies, `reply.rs`'s line
//! parser) and everything the client reads from a reply (class, enhanced
//! status code, the error text of reports and logs, EHLO capabilities), on
//! arbitrary bytes from the server arriving in arbitrary pieces.
//!
//! Checked: no panic, reading ends; the pieces never change what is read;
//! codes are 200..599; a reply has 1..=128 lines of at most 2,048
//! characters with no control characters; the text shown in logs and
//! reports holds no line break; the enhanced status code has the reply's
//! class; every line read took a line end of the input.
//!
//! Input: one byte of piece sizes, then what the server sends.

#![no_main]

use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};

/// Hands out `data` in pieces of the given sizes (cycled).
struct Pieces<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
}

impl AsyncRead for Pieces<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let size = this.sizes[this.next % this.sizes.len()];
        this.next += 1;
        let n = size.min(this.data.len()).min(buf.remaining());
        buf.put_slice(&this.data[..n]);
        this.data = &this.data[n..];
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    })
}

fn read(data: &[u8], sizes: Vec<usize>) -> (Vec<transfer::fuzzing::Reply>, String) {
    let stream = Pieces {
        data,
        sizes,
        next: 0,
    };
    runtime().block_on(transfer::fuzzing::read_replies(stream))
}

fn is_enhanced(status: &str, class: u16) -> bool {
    let parts: Vec<&str> = status.split('.').collect();
    parts.len() == 3
        && parts[0] == class.to_string()
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

fuzz_target!(|input: &[u8]| {
    let [pieces, server @ ..] = input else {
        return;
    };
    let sizes = vec![
        1 + usize::from(pieces & 0xf) * 300,
        1 + usize::from(pieces >> 4),
        4096,
    ];
    let (replies, end) = read(server, sizes);
    let whole = read(server, vec![usize::MAX]);
    assert_eq!(
        (&replies, &end),
        (&whole.0, &whole.1),
        "the pieces changed what was read"
    );

    let line_ends = server.iter().filter(|&&b| b == b'\n').count();
    let mut lines_read = 0;
    for reply in &replies {
        assert!((200..600).contains(&reply.code), "{reply:?}");
        assert!((1..=128).contains(&reply.lines.len()), "{reply:?}");
        lines_read += reply.lines.len();
        for line in &reply.lines {
            assert!(
                line.chars().count() <= 2048,
                "a line of {} chars",
                line.chars().count()
            );
            assert!(!line.chars().any(char::is_control), "{line:?}");
            assert_eq!(line.trim(), line);
        }
        for text in [&reply.shown, &reply.error_text, &reply.enhanced_status] {
            assert!(!text.contains(['\r', '\n']), "{text:?}");
        }
        let class = reply.code / 100;
        assert!(is_enhanced(&reply.enhanced_status, class), "{reply:?}");
        let kinds = [reply.positive, reply.transient, reply.permanent];
        assert_eq!(
            kinds.iter().filter(|&&k| k).count(),
            usize::from(class != 3),
            "{reply:?}"
        );
        assert!(reply.shown.starts_with(&reply.code.to_string()));
    }
    assert!(
        lines_read <= line_ends,
        "{lines_read} lines from {line_ends} line ends"
    );
    assert!(!end.is_empty());
});
