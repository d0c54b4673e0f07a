//! The one reader of a message's header block. Everything in mailhop that
//! needs to know where the headers end, or what the Subject, Message-ID,
//! From, Date or the number of `Received:` lines is, asks here, so the
//! listener, the store, reports and IMAP read them the same way.
//!
//! The block ends after the first empty line (`\r\n` or a bare `\n`); a
//! message without one is all header. Fields are read with mail-parser
//! (RFC 2047 words decoded, folded lines unfolded), from at most
//! [`MAX_HEADER_BYTES`] of the block. Pure functions: no I/O.

use mail_parser::{HeaderName, MessageParser};

mod content;
pub use content::{Content, MAX_BODY_TEXT, content};

/// Header bytes beyond this are not read for fields (a real header block is
/// far smaller; this bounds what a hostile one costs).
pub const MAX_HEADER_BYTES: usize = 256 * 1024;

/// The header block: up to and including the first empty line, or the
/// whole message when there is none.
pub fn block(message: &[u8]) -> &[u8] {
    let mut start = 0;
    for line in message.split_inclusive(|b| *b == b'\n') {
        start += line.len();
        if line == b"\r\n" || line == b"\n" {
            return &message[..start];
        }
    }
    message
}

/// Where the body starts (the length of [`block`]).
pub fn body_start(message: &[u8]) -> usize {
    block(message).len()
}

/// The header fields mailhop reads from a message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    /// The From header, decoded: `Name <address>`, several joined by `, `.
    pub from: String,
    /// The Subject, decoded; `None` without one.
    pub subject: Option<String>,
    /// The Date header, Unix milliseconds.
    pub date: Option<i64>,
    /// The Message-ID without `<>`.
    pub message_id: Option<String>,
    /// How many `Received:` lines (the hop count).
    pub received: u32,
    /// The priority the sender asked for (`Importance:`, `X-Priority:`,
    /// `Priority:`, the first that says one); `None` when none does.
    pub importance: Option<Importance>,
}

/// A message's priority as its headers give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Importance {
    Low,
    Normal,
    High,
}

/// `Importance: high|normal|low` (RFC 2156), `X-Priority: 1..5` (1–2 high,
/// 3 normal, 4–5 low), `Priority: urgent|normal|non-urgent` (RFC 2156).
fn importance(parsed: &mail_parser::Message<'_>) -> Option<Importance> {
    let text = |name: &str| {
        parsed
            .header(name)
            .and_then(|v| v.as_text())
            .map(|t| t.trim().to_ascii_lowercase())
    };
    if let Some(v) = text("Importance") {
        match v.as_str() {
            "high" => return Some(Importance::High),
            "low" => return Some(Importance::Low),
            "normal" => return Some(Importance::Normal),
            _ => {}
        }
    }
    if let Some(v) = text("X-Priority") {
        match v.chars().next() {
            Some('1' | '2') => return Some(Importance::High),
            Some('3') => return Some(Importance::Normal),
            Some('4' | '5') => return Some(Importance::Low),
            _ => {}
        }
    }
    match text("Priority")?.as_str() {
        "urgent" => Some(Importance::High),
        "non-urgent" => Some(Importance::Low),
        "normal" => Some(Importance::Normal),
        _ => None,
    }
}

/// Reads the fields of `message`'s header block.
pub fn fields(message: &[u8]) -> Fields {
    let head = block(message);
    let head = &head[..head.len().min(MAX_HEADER_BYTES)];
    let Some(parsed) = MessageParser::new().parse_headers(head) else {
        return Fields::default();
    };
    let from = parsed
        .from()
        .map(|address| {
            address
                .iter()
                .map(|addr| match (addr.name(), addr.address()) {
                    (Some(name), Some(email)) => format!("{name} <{email}>"),
                    (Some(only), None) | (None, Some(only)) => only.to_owned(),
                    (None, None) => String::new(),
                })
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let received = parsed
        .headers()
        .iter()
        .filter(|h| h.name == HeaderName::Received)
        .count();
    Fields {
        from,
        subject: parsed.subject().map(str::to_owned),
        date: parsed
            .date()
            .filter(|d| d.is_valid())
            .map(|d| d.to_timestamp().saturating_mul(1000)),
        message_id: parsed
            .message_id()
            .map(str::to_owned)
            .filter(|id| !id.is_empty()),
        received: u32::try_from(received).unwrap_or(u32::MAX),
        importance: importance(&parsed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn importance_from_the_usual_headers() {
        let read = |h: &str| fields(format!("{h}\r\nSubject: x\r\n\r\nbody").as_bytes()).importance;
        assert_eq!(read("Importance: High"), Some(Importance::High));
        assert_eq!(read("Importance: low"), Some(Importance::Low));
        assert_eq!(read("X-Priority: 1 (Highest)"), Some(Importance::High));
        assert_eq!(read("X-Priority: 5"), Some(Importance::Low));
        assert_eq!(read("X-Priority: 3"), Some(Importance::Normal));
        assert_eq!(read("Priority: non-urgent"), Some(Importance::Low));
        assert_eq!(read("Priority: urgent"), Some(Importance::High));
        assert_eq!(read("X-Mailer: x"), None);
        assert_eq!(
            read("Importance: bogus\r\nX-Priority: 2"),
            Some(Importance::High)
        );
    }

    #[test]
    fn the_block_ends_at_the_first_empty_line() {
        assert_eq!(block(b"A: b\r\n\r\nbody"), b"A: b\r\n\r\n");
        assert_eq!(block(b"A: b\n\nbody\r\n\r\nmore"), b"A: b\n\n");
        assert_eq!(block(b"A: b\r\n"), b"A: b\r\n");
        assert_eq!(block(b""), b"");
        assert_eq!(body_start(b"A: b\r\n\r\nbody"), 8);
    }

    #[test]
    fn fields_are_decoded_and_unfolded() {
        let m = b"Received: from a\r\n\tby b; Tue, 14 Nov 2023 22:13:20 +0000\r\nReceived: from c by d; Tue, 14 Nov 2023 22:13:20 +0000\r\n\
From: \"Jane Doe\" <jane@acme.com>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n and more\r\n\
Message-ID: <abc@acme.com>\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\nSubject: not this\r\n";
        let f = fields(m);
        assert_eq!(f.from, "Jane Doe <jane@acme.com>");
        assert_eq!(f.subject.as_deref(), Some("Grüße and more"));
        assert_eq!(f.message_id.as_deref(), Some("abc@acme.com"));
        assert_eq!(f.date, Some(1_700_000_000_000));
        assert_eq!(f.received, 2);
    }

    #[test]
    fn a_body_line_is_never_a_header() {
        let f = fields(b"From: a@b.c\r\n\r\nReceived: x\r\nSubject: body\r\n");
        assert_eq!(f.received, 0);
        assert_eq!(f.subject, None);
    }

    proptest! {
        #[test]
        fn any_bytes_are_read_without_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let b = block(&data);
            prop_assert!(data.starts_with(b));
            let _ = fields(&data);
        }
    }
}
