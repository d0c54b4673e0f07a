//! The few header fields a mail-file listing shows (From, Subject, Date,
//! Message-ID), read from the header block only, once, when a body is
//! stored (`bodies::Body::new`) — on the caller's task where it can be, not
//! on the writer thread, and never per delivery.

use mail_parser::MessageParser;

/// Headers beyond this many bytes are not looked at (a real header block is far smaller).
const MAX_HEADER_BYTES: usize = 256 * 1024;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HeaderMeta {
    pub from: String,
    pub subject: String,
    /// Unix milliseconds.
    pub date: Option<i64>,
    pub message_id: Option<String>,
}

/// The header block: up to and including the first empty line (the whole
/// message if there is none).
pub(crate) fn header_block(data: &[u8]) -> &[u8] {
    let mut line_start = 0;
    for (i, byte) in data.iter().enumerate() {
        if *byte == b'\n' {
            let line = &data[line_start..i];
            if line.is_empty() || line == b"\r" {
                return &data[..=i];
            }
            line_start = i + 1;
        }
    }
    data
}

pub(crate) fn scan(data: &[u8]) -> HeaderMeta {
    let head = &data[..data.len().min(MAX_HEADER_BYTES)];
    let Some(message) = MessageParser::new().parse_headers(header_block(head)) else {
        return HeaderMeta::default();
    };
    let from = message
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
    HeaderMeta {
        from,
        subject: message.subject().unwrap_or_default().to_owned(),
        date: message
            .date()
            .filter(|d| d.is_valid())
            .map(|d| d.to_timestamp().saturating_mul(1000)),
        message_id: message.message_id().map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_the_listing_fields() {
        let data =
            b"From: \"Jane Doe\" <jane@acme.com>\r\nSubject: =?utf-8?q?caf=C3=A9?= menu\r\n \
            folded\r\nDate: Thu, 1 Jan 2009 09:53:09 +0000\r\nMessage-ID: <abc@acme.com>\r\n\r\n\
            Subject: not a header\r\n";
        let meta = scan(data);
        assert_eq!(meta.from, "Jane Doe <jane@acme.com>");
        assert_eq!(meta.subject, "café menu folded");
        assert_eq!(meta.date, Some(1_230_803_589_000));
        assert_eq!(meta.message_id.as_deref(), Some("abc@acme.com"));
    }

    #[test]
    fn the_body_is_not_read() {
        assert_eq!(header_block(b"A: b\n\nFrom: x@y.z\n"), b"A: b\n\n");
        assert_eq!(scan(b"A: b\n\nFrom: x@y.z\n").from, "");
    }

    #[test]
    fn no_headers_gives_empty_fields() {
        assert_eq!(scan(b""), HeaderMeta::default());
    }

    proptest! {
        #[test]
        fn any_bytes_scan_without_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = scan(&data);
        }
    }
}
