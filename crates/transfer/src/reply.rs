//! SMTP replies (RFC 5321 §4.2): one line of a reply parsed, and the reply as
//! the client keeps it. Bounded: nothing a peer sends can make it grow without
//! limit. Knows no sockets.

use std::fmt;

/// The most bytes of one reply line that are kept; the rest is dropped.
pub(crate) const MAX_LINE: usize = 2048;
/// The most lines one reply may have.
pub(crate) const MAX_LINES: usize = 128;

/// A complete (possibly multi-line) reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) code: u16,
    /// The text of each line, without the code and separator.
    pub(crate) lines: Vec<String>,
}

impl Reply {
    pub(crate) fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    pub(crate) fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub(crate) fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The reply's RFC 3463 enhanced status code (`5.1.1`), or the class's
    /// generic one (`5.0.0`, `4.0.0`) when the server gave none.
    pub(crate) fn enhanced_status(&self) -> String {
        let first = self
            .lines
            .first()
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("");
        let parts: Vec<&str> = first.split('.').collect();
        let class = (self.code / 100).to_string();
        let numeric =
            |p: &str| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
        if parts.len() == 3 && parts[0] == class && numeric(parts[1]) && numeric(parts[2]) {
            first.to_owned()
        } else {
            format!("{class}.0.0")
        }
    }

    /// Domino's words for a negative reply, the reply (with its enhanced
    /// status code) quoted after them.
    pub(crate) fn error_text(&self) -> String {
        let kind = if self.is_permanent() {
            "Permanent"
        } else {
            "Transient"
        };
        format!("SMTP Protocol Returned a {kind} Error {self}")
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        for line in self.lines.iter().filter(|line| !line.is_empty()) {
            write!(f, " {line}")?;
        }
        Ok(())
    }
}

/// One parsed reply line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) code: u16,
    /// `false` when the separator was `-`: more lines follow.
    pub(crate) last: bool,
    pub(crate) text: String,
}

/// Parses one reply line (without its line end). The error is the reason.
pub(crate) fn parse_line(line: &[u8]) -> Result<Line, String> {
    let (digits, rest) = line.split_at_checked(3).unwrap_or((line, &[]));
    let code = std::str::from_utf8(digits)
        .ok()
        .filter(|d| d.len() == 3 && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<u16>().ok())
        .filter(|code| (200..600).contains(code))
        .ok_or_else(|| format!("not a reply: {}", printable(line)))?;
    let (last, text) = match rest.split_first() {
        None => (true, &[][..]),
        Some((b' ', text)) => (true, text),
        Some((b'-', text)) => (false, text),
        Some(_) => return Err(format!("bad separator in reply: {}", printable(line))),
    };
    Ok(Line {
        code,
        last,
        text: printable(text),
    })
}

/// Peer text made safe for logs and reports: lossy UTF-8, control characters
/// replaced, surrounding blanks trimmed.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_multi_and_bare_lines() {
        assert_eq!(
            parse_line(b"250 2.0.0 Ok: queued"),
            Ok(Line {
                code: 250,
                last: true,
                text: "2.0.0 Ok: queued".into()
            })
        );
        let first = parse_line(b"250-mx.example.com hello").unwrap();
        assert!(!first.last);
        assert_eq!(first.text, "mx.example.com hello");
        assert_eq!(
            parse_line(b"354").map(|l| (l.code, l.last)),
            Ok((354, true))
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"2",
            b"25",
            b"abc def",
            b"250x",
            b"999 nine",
            b"100 one",
            b"\xff\xfe\xfd",
            "2€0 x".as_bytes(),
        ] {
            assert!(parse_line(bad).is_err(), "{bad:?}");
        }
        let odd = parse_line(b"550 bad\x00\x07 \xff bytes").unwrap();
        assert_eq!(odd.text, "bad?? \u{fffd} bytes");
    }

    #[test]
    fn error_text_keeps_the_enhanced_code() {
        let reply = Reply {
            code: 550,
            lines: vec!["5.1.1 <bob@x.test>: unknown".into(), "5.1.1 sorry".into()],
        };
        assert_eq!(
            reply.error_text(),
            "SMTP Protocol Returned a Permanent Error 550 5.1.1 <bob@x.test>: unknown 5.1.1 sorry"
        );
        let busy = Reply {
            code: 451,
            lines: vec!["4.3.0 try later".into()],
        };
        assert_eq!(
            busy.error_text(),
            "SMTP Protocol Returned a Transient Error 451 4.3.0 try later"
        );
    }
}
