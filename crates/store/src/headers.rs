//! The few header fields a mail-file listing shows (From, Subject, Date,
//! Message-ID), read from the header block only, once, when a body is
//! stored (`bodies::Body::new`) — on the caller's task where it can be, not
//! on the writer thread, and never per delivery.

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HeaderMeta {
    pub from: String,
    pub subject: String,
    /// Unix milliseconds.
    pub date: Option<i64>,
    pub message_id: Option<String>,
}

/// The header block: up to and including the first empty line (the whole
/// message if there is none), as the one header reader finds it.
pub(crate) fn header_block(data: &[u8]) -> &[u8] {
    headers::block(data)
}

/// The listing fields, read by the one header reader (the `headers` crate).
pub(crate) fn scan(data: &[u8]) -> HeaderMeta {
    HeaderMeta::from(headers::fields(data))
}

impl From<headers::Fields> for HeaderMeta {
    fn from(f: headers::Fields) -> HeaderMeta {
        HeaderMeta {
            from: f.from,
            subject: f.subject.unwrap_or_default(),
            date: f.date,
            message_id: f.message_id,
        }
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
