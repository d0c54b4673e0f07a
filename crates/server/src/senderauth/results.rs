//! The `Authentication-Results:` header (RFC 8601) as text: one result per
//! line, every value from the network quoted or cleaned so it cannot end
//! the header, add a field or break its grammar; and the removal of
//! incoming `Authentication-Results:` fields that claim this server's
//! authserv-id (RFC 8601 §5), which only this server may write.
//!
//! Owns the text only: what the results are is `senderauth`'s.

use std::fmt::Write as _;

/// The longest value (a domain, an address) written as it is; longer ones
/// are cut (RFC 5321 allows 255 for a domain, 256 for a path).
const MAX_VALUE: usize = 256;
/// The longest comment.
const MAX_COMMENT: usize = 120;

/// Builds one `Authentication-Results:` header.
pub(crate) struct ResultsHeader {
    text: String,
    results: usize,
}

impl ResultsHeader {
    /// A header for `authserv_id` (this server's host name).
    pub(crate) fn new(authserv_id: &str) -> Self {
        ResultsHeader {
            text: format!("Authentication-Results: {}", token(authserv_id)),
            results: 0,
        }
    }

    /// One `method=result (comment) prop=value ...` on a line of its own.
    pub(crate) fn result(
        &mut self,
        method: &str,
        result: &str,
        comment: Option<&str>,
        props: &[(&str, &str)],
    ) -> &mut Self {
        let _ = write!(self.text, ";\r\n\t{method}={result}");
        if let Some(c) = comment.map(clean_comment).filter(|c| !c.is_empty()) {
            let _ = write!(self.text, " ({c})");
        }
        for (name, value) in props {
            let _ = write!(self.text, " {name}={}", pvalue(value));
        }
        self.results += 1;
        self
    }

    /// The header with its CRLF; `none` when no result was added.
    pub(crate) fn finish(mut self) -> String {
        if self.results == 0 {
            self.text.push_str("; none");
        }
        self.text.push_str("\r\n");
        self.text
    }
}

/// RFC 2045 `token` characters, and `.`/`@` of a domain or an address.
fn plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`{|}~@".contains(c)
}

/// The authserv-id: a host name from the directory, cleaned all the same.
fn token(s: &str) -> String {
    let t: String = s
        .chars()
        .filter(|c| plain(*c) && *c != '@')
        .take(MAX_VALUE)
        .collect();
    if t.is_empty() {
        "localhost".to_owned()
    } else {
        t
    }
}

/// A property value: as it is when it is plain, else a quoted-string with
/// `"` and `\` escaped and anything not printable ASCII as `?`; cut at
/// [`MAX_VALUE`] characters.
pub(crate) fn pvalue(s: &str) -> String {
    let cut: Vec<char> = s.chars().take(MAX_VALUE).collect();
    if !cut.is_empty() && cut.iter().all(|c| plain(*c)) && cut.first() != Some(&'@') {
        return cut.into_iter().collect();
    }
    let mut out = String::with_capacity(cut.len() + 2);
    out.push('"');
    for c in cut {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

/// A comment's text: printable ASCII without parentheses or backslashes,
/// spaces collapsed, cut at [`MAX_COMMENT`] characters.
pub(crate) fn clean_comment(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if out.len() >= MAX_COMMENT {
            break;
        }
        let c = match c {
            '(' | ')' | '\\' => continue,
            c if c.is_ascii_whitespace() || c.is_control() => ' ',
            c if c.is_ascii() => c,
            _ => '?',
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    out.trim_end().to_owned()
}

/// The message without the `Authentication-Results:` fields of its header
/// that claim `authserv_id` (case-insensitive), and how many there were.
/// Fields of other authserv-ids, and the body, are kept as they are.
pub(crate) fn remove_claims(message: &[u8], authserv_id: &str) -> (Vec<u8>, usize) {
    let header_end = header_end(message);
    let mut out = Vec::with_capacity(message.len());
    let mut removed = 0;
    let mut at = 0;
    while at < header_end {
        let end = field_end(message, at, header_end);
        let field = &message[at..end];
        if claims(field, authserv_id) {
            removed += 1;
        } else {
            out.extend_from_slice(field);
        }
        at = end;
    }
    out.extend_from_slice(&message[header_end..]);
    (out, removed)
}

/// Where the header section ends: the start of the empty line that ends
/// it (or the end of the message when there is none).
fn header_end(message: &[u8]) -> usize {
    let mut at = 0;
    while at < message.len() {
        let line_end = memchr(b'\n', &message[at..]).map_or(message.len(), |i| at + i + 1);
        let line = &message[at..line_end];
        if line == b"\r\n" || line == b"\n" {
            return at;
        }
        at = line_end;
    }
    message.len()
}

/// The end of the field starting at `at`: its first line and every
/// continuation line (starting with a space or a tab).
fn field_end(message: &[u8], at: usize, limit: usize) -> usize {
    let mut end = memchr(b'\n', &message[at..limit]).map_or(limit, |i| at + i + 1);
    while end < limit && matches!(message[end], b' ' | b'\t') {
        end = memchr(b'\n', &message[end..limit]).map_or(limit, |i| end + i + 1);
    }
    end
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|b| *b == needle)
}

/// Is `field` an `Authentication-Results:` field whose authserv-id is
/// `authserv_id`?
fn claims(field: &[u8], authserv_id: &str) -> bool {
    let Some(colon) = memchr(b':', field) else {
        return false;
    };
    let name = field[..colon].trim_ascii_end();
    if !name.eq_ignore_ascii_case(b"Authentication-Results") {
        return false;
    }
    let value = skip_cfws(&field[colon + 1..]);
    let id_len = value
        .iter()
        .position(|b| b.is_ascii_whitespace() || matches!(b, b';' | b'('))
        .unwrap_or(value.len());
    let id = &value[..id_len];
    // A quoted authserv-id is a `value` too (RFC 8601 §2.2).
    let id = id
        .strip_prefix(b"\"")
        .and_then(|i| i.strip_suffix(b"\""))
        .unwrap_or(id);
    id.eq_ignore_ascii_case(authserv_id.as_bytes())
}

/// `value` without the white space and (nested) comments it starts with.
fn skip_cfws(mut value: &[u8]) -> &[u8] {
    loop {
        value = value.trim_ascii_start();
        if value.first() != Some(&b'(') {
            return value;
        }
        let mut depth = 0usize;
        let mut i = 0;
        let mut escaped = false;
        while i < value.len() {
            match value[i] {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        value = value.get(i + 1..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_has_one_result_a_line_and_no_value_escapes() {
        let mut h = ResultsHeader::new("mail.acme.com");
        h.result(
            "spf",
            "pass",
            Some("sender (ok)\r\nX-Evil: 1"),
            &[("smtp.mailfrom", "a@sender.test")],
        )
        .result(
            "dkim",
            "fail",
            None,
            &[
                ("header.d", "bad\r\nX-Injected: yes"),
                ("header.b", "ab/c+="),
            ],
        );
        let text = h.finish();
        assert_eq!(
            text,
            "Authentication-Results: mail.acme.com;\r\n\
             \tspf=pass (sender ok X-Evil: 1) smtp.mailfrom=a@sender.test;\r\n\
             \tdkim=fail header.d=\"bad??X-Injected: yes\" header.b=\"ab/c+=\"\r\n"
        );
        assert_eq!(
            ResultsHeader::new("mail.acme.com").finish(),
            "Authentication-Results: mail.acme.com; none\r\n"
        );
        assert_eq!(pvalue("quo\"te\\"), "\"quo\\\"te\\\\\"");
        assert_eq!(pvalue(""), "\"\"");
        assert_eq!(pvalue(&"a".repeat(1000)).len(), MAX_VALUE);
    }

    #[test]
    fn only_claims_of_our_authserv_id_are_removed() {
        let message = b"Received: from x\r\n\
Authentication-Results: MAIL.acme.com; dkim=pass\r\n\
Authentication-Results: (forged) mail.acme.com;\r\n\tspf=pass\r\n\
authentication-results : \"mail.acme.com\"; dmarc=pass\r\n\
Authentication-Results: mx.other.example; spf=fail\r\n\
Authentication-Results: mail.acme.com.evil; spf=fail\r\n\
Subject: hi\r\n\
\r\n\
Authentication-Results: mail.acme.com; in the body\r\n";
        let (out, removed) = remove_claims(message, "mail.acme.com");
        assert_eq!(removed, 3);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Received: from x\r\n\
Authentication-Results: mx.other.example; spf=fail\r\n\
Authentication-Results: mail.acme.com.evil; spf=fail\r\n\
Subject: hi\r\n\
\r\n\
Authentication-Results: mail.acme.com; in the body\r\n"
        );
        let (same, removed) = remove_claims(b"Subject: x\r\n\r\nbody", "mail.acme.com");
        assert_eq!(
            (same.as_slice(), removed),
            (&b"Subject: x\r\n\r\nbody"[..], 0)
        );
        // Unclosed comments and fields without a colon do not upset it.
        let (_, removed) = remove_claims(b"Authentication-Results: (((\r\nno colon\r\n", "x");
        assert_eq!(removed, 0);
    }
}
