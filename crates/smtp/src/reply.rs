//! SMTP replies: a code, an optional enhanced status code (RFC 2034/3463)
//! and text, written in wire form.
//!
//! Owns the reply value and its rendering; it does not decide which reply a
//! situation calls for.

use std::fmt;

use crate::Refusal;

/// One SMTP reply, e.g. `550 5.1.1 User unknown`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code `class.subject.detail`, e.g. `(5, 1, 1)`.
    pub enhanced: Option<(u8, u16, u16)>,
    /// Reply text; several lines give a multi-line reply.
    pub text: String,
    /// The kind of refusal this reply is, counted when it is sent.
    refusal: Option<Refusal>,
}

impl Reply {
    /// A reply with an enhanced status code.
    pub fn new(code: u16, enhanced: (u8, u16, u16), text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            text: text.into(),
            refusal: None,
        }
    }

    /// A reply without an enhanced status code (greeting, 354, 334).
    pub fn plain(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            text: text.into(),
            refusal: None,
        }
    }

    /// The same reply, counted under `kind` (its `show stat` counter) when
    /// the session sends it.
    #[must_use]
    pub fn counted(mut self, kind: Refusal) -> Reply {
        self.refusal = Some(kind);
        self
    }

    /// The kind of refusal this reply is counted as, if any.
    pub fn refusal(&self) -> Option<Refusal> {
        self.refusal
    }

    /// `550 5.1.1 <text>`: the mailbox does not exist.
    pub fn unknown_user(text: impl Into<String>) -> Reply {
        Reply::new(550, (5, 1, 1), text).counted(Refusal::UnknownRecipient)
    }

    /// `550 5.7.1 Relaying denied`.
    pub fn relay_denied() -> Reply {
        Reply::new(550, (5, 7, 1), "Relaying denied").counted(Refusal::RelayDenied)
    }

    /// `451 4.3.0 <text>`: a local problem; the client should retry later.
    pub fn temporary_failure(text: impl Into<String>) -> Reply {
        Reply::new(451, (4, 3, 0), text)
    }

    /// `552 5.3.4 Message size exceeds fixed maximum message size`.
    pub fn message_too_big() -> Reply {
        Reply::new(
            552,
            (5, 3, 4),
            "Message size exceeds fixed maximum message size",
        )
        .counted(Refusal::MessageTooBig)
    }

    /// True for 2xx and 3xx replies.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// Appends the reply in wire form (CRLF line ends, `code-` continuation
    /// lines for multi-line text). Line breaks inside the text never escape
    /// into the protocol stream.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut lines = self.lines().peekable();
        while let Some(line) = lines.next() {
            let sep = if lines.peek().is_some() { '-' } else { ' ' };
            out.extend_from_slice(self.prefix(sep).as_bytes());
            out.extend(line.bytes().filter(|&b| b != b'\r'));
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The text's lines; empty text is one empty line.
    fn lines(&self) -> impl Iterator<Item = &str> {
        self.text
            .trim_end_matches(['\r', '\n'])
            .split('\n')
            .map(|line| line.trim_end_matches('\r'))
    }

    fn prefix(&self, sep: char) -> String {
        match self.enhanced {
            Some((class, subject, detail)) => {
                format!("{}{sep}{class}.{subject}.{detail} ", self.code)
            }
            None => format!("{}{sep}", self.code),
        }
    }
}

impl fmt::Display for Reply {
    /// `550 5.1.1 text` on one line (multi-line text joined with spaces).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some((class, subject, detail)) = self.enhanced {
            write!(f, " {class}.{subject}.{detail}")?;
        }
        for line in self.lines() {
            write!(f, " {line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(reply: &Reply) -> String {
        let mut out = Vec::new();
        reply.write_to(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn single_line_with_enhanced_code() {
        let reply = Reply::unknown_user("User unknown");
        assert_eq!(wire(&reply), "550 5.1.1 User unknown\r\n");
        assert_eq!(reply.to_string(), "550 5.1.1 User unknown");
    }

    #[test]
    fn plain_reply_has_no_enhanced_code() {
        let reply = Reply::plain(354, "End data with <CR><LF>.<CR><LF>");
        assert_eq!(wire(&reply), "354 End data with <CR><LF>.<CR><LF>\r\n");
    }

    #[test]
    fn multi_line_text_uses_continuation_lines() {
        let reply = Reply::new(451, (4, 3, 0), "first\r\nsecond\nthird");
        assert_eq!(
            wire(&reply),
            "451-4.3.0 first\r\n451-4.3.0 second\r\n451 4.3.0 third\r\n"
        );
        assert_eq!(reply.to_string(), "451 4.3.0 first second third");
    }

    #[test]
    fn empty_text_still_ends_the_line() {
        assert_eq!(wire(&Reply::plain(334, "")), "334 \r\n");
        assert_eq!(wire(&Reply::new(250, (2, 0, 0), "")), "250 2.0.0 \r\n");
    }
}
