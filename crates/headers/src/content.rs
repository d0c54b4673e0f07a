//! What the server mail rules read of a message beyond its listing fields:
//! every header field (name and unfolded value), the text of the body's
//! text parts, and the attachments' file names. Read with mail-parser;
//! bounded, so a hostile message costs at most [`MAX_BODY_TEXT`] of text.

use mail_parser::{MessageParser, MimeHeaders};

use crate::{MAX_HEADER_BYTES, block};

/// Body text beyond this is not read for the rules.
pub const MAX_BODY_TEXT: usize = 1024 * 1024;

/// A message's content as the rules see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Content {
    /// Header fields in order: the name as written, the value unfolded and trimmed.
    pub headers: Vec<(String, String)>,
    /// The decoded text of the text parts, at most [`MAX_BODY_TEXT`] bytes
    /// (empty unless asked for).
    pub body: String,
    /// The attachments' file names (empty unless asked for).
    pub attachments: Vec<String>,
}

/// Reads the header fields, and with `with_body` the body text and the
/// attachments' names.
pub fn content(message: &[u8], with_body: bool) -> Content {
    let head = block(message);
    let head = &head[..head.len().min(MAX_HEADER_BYTES)];
    let mut out = Content {
        headers: header_fields(head),
        ..Content::default()
    };
    if !with_body {
        return out;
    }
    let Some(parsed) = MessageParser::default().parse(message) else {
        return out;
    };
    for part in parsed.text_bodies() {
        if out.body.len() >= MAX_BODY_TEXT {
            break;
        }
        if let Some(text) = part.text_contents() {
            let room = MAX_BODY_TEXT - out.body.len();
            let mut cut = text.len().min(room);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            out.body.push_str(&text[..cut]);
            out.body.push('\n');
        }
    }
    out.attachments = parsed
        .attachments()
        .filter_map(|a| a.attachment_name().map(str::to_owned))
        .collect();
    out
}

/// Each `Name: value` of a header block, folded lines joined.
fn header_fields(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTIPART: &str = "From: a@example.org\r\nSubject: Report\r\nX-Spam-Flag: YES\r\nX-Long: one\r\n two\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee the attached numbers.\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"numbers.xlsx\"\r\n\r\nAAAA\r\n--b--\r\n";

    #[test]
    fn headers_body_and_attachments() {
        let c = content(MULTIPART.as_bytes(), true);
        assert!(c.headers.contains(&("X-Spam-Flag".into(), "YES".into())));
        assert!(c.headers.contains(&("X-Long".into(), "one two".into())));
        assert!(c.body.contains("See the attached numbers."), "{}", c.body);
        assert!(!c.body.contains("AAAA"));
        assert_eq!(c.attachments, ["numbers.xlsx"]);
        let headers_only = content(MULTIPART.as_bytes(), false);
        assert_eq!(headers_only.headers, c.headers);
        assert!(headers_only.body.is_empty() && headers_only.attachments.is_empty());
    }

    #[test]
    fn body_text_is_bounded() {
        let big = format!("Subject: x\r\n\r\n{}", "é".repeat(MAX_BODY_TEXT));
        let c = content(big.as_bytes(), true);
        assert!(c.body.len() <= MAX_BODY_TEXT + 1, "{}", c.body.len());
    }
}
