//! Text that came from the network, made safe to write in the log.
//!
//! A client chooses the user names, HELO names, addresses and command
//! arguments mailhop logs. Written as they are, a CR or LF in one forges
//! whole log lines, an escape sequence rewrites the administrator's
//! terminal, and a 10 MB name makes a 10 MB line. [`shown`] (and
//! [`shown_bytes`] for bytes that may not be UTF-8) is the one way every
//! log site of the listeners prints such a value: control characters and
//! invisible formatting characters escaped (`\r`, `\n`, `\u{1b}`...), a
//! backslash doubled so an escape cannot be faked, and at most
//! [`MAX_CHARS`] characters, then `…`.
//!
//! Owns this rendering only; it decides nothing about what is logged.

use std::fmt::{self, Write as _};

/// The most characters of one value a log line shows.
pub const MAX_CHARS: usize = 256;

/// A value from the network as the log shows it (see the crate's docs).
#[derive(Clone, Copy)]
pub struct Shown<'a> {
    text: Text<'a>,
}

#[derive(Clone, Copy)]
enum Text<'a> {
    Str(&'a str),
    Bytes(&'a [u8]),
}

/// `text` escaped and cut to [`MAX_CHARS`] characters for the log.
pub fn shown(text: &str) -> Shown<'_> {
    Shown {
        text: Text::Str(text),
    }
}

/// Bytes from the network (perhaps not UTF-8) escaped and cut for the log;
/// a byte that is not part of valid UTF-8 shows as `\xNN`.
pub fn shown_bytes(bytes: &[u8]) -> Shown<'_> {
    Shown {
        text: Text::Bytes(bytes),
    }
}

/// One piece of the value: a character, or a byte that is not UTF-8.
enum Unit {
    Char(char),
    Byte(u8),
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.text {
            Text::Str(s) => write_units(f, s.chars().map(Unit::Char)),
            Text::Bytes(b) => write_units(
                f,
                b.utf8_chunks().flat_map(|chunk| {
                    let chars = chunk.valid().chars().map(Unit::Char);
                    chars.chain(chunk.invalid().iter().map(|&b| Unit::Byte(b)))
                }),
            ),
        }
    }
}

/// Writes at most [`MAX_CHARS`] units; when more follow, the last place
/// holds `…` instead.
fn write_units(f: &mut fmt::Formatter<'_>, units: impl Iterator<Item = Unit>) -> fmt::Result {
    let mut units = units.peekable();
    let mut shown = 0;
    while let Some(unit) = units.next() {
        shown += 1;
        if shown == MAX_CHARS && units.peek().is_some() {
            return f.write_char('…');
        }
        match unit {
            Unit::Char(c) => write_char(f, c)?,
            Unit::Byte(b) => write!(f, "\\x{b:02x}")?,
        }
    }
    Ok(())
}

fn write_char(f: &mut fmt::Formatter<'_>, c: char) -> fmt::Result {
    match c {
        '\\' => f.write_str("\\\\"),
        '\r' => f.write_str("\\r"),
        '\n' => f.write_str("\\n"),
        '\t' => f.write_str("\\t"),
        c if hidden(c) => write!(f, "\\u{{{:x}}}", u32::from(c)),
        c => f.write_char(c),
    }
}

/// Is `c` a character no one sees as it is: a control (C0, DEL, C1), a
/// line or paragraph separator, or an invisible formatting character that
/// reorders or hides text (bidirectional overrides and isolates,
/// zero-width characters, the byte order mark)? Such a character has no
/// place in a name or an address either.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
}

/// Characters a log line shows escaped: the invisible ones, and any other
/// the standard library would not print plainly in `{:?}`.
fn hidden(c: char) -> bool {
    // `escape_debug` keeps printable characters as they are.
    is_invisible(c) || (!matches!(c, '\'' | '"') && c.escape_debug().nth(1).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_controls_are_escaped() {
        assert_eq!(
            shown("jane\r\n2025-01-01 INFO forged").to_string(),
            "jane\\r\\n2025-01-01 INFO forged"
        );
        assert_eq!(shown("a\u{1b}[31mred").to_string(), "a\\u{1b}[31mred");
        assert_eq!(shown("tab\there").to_string(), "tab\\there");
        assert_eq!(shown("nul\0").to_string(), "nul\\u{0}");
        assert_eq!(shown("del\u{7f}").to_string(), "del\\u{7f}");
        assert_eq!(shown("c1\u{85}").to_string(), "c1\\u{85}");
    }

    #[test]
    fn invisible_formatting_is_escaped() {
        assert_eq!(shown("evil\u{202e}txt").to_string(), "evil\\u{202e}txt");
        assert_eq!(shown("a\u{2028}b").to_string(), "a\\u{2028}b");
        assert_eq!(shown("zero\u{200b}width").to_string(), "zero\\u{200b}width");
        assert_eq!(shown("\u{feff}bom").to_string(), "\\u{feff}bom");
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        for s in [
            "jane.doe@acme.com",
            "Jane Doe/Acme",
            "O'Brien \"x\"",
            "Jörg Müller",
            "日本",
        ] {
            assert_eq!(shown(s).to_string(), s);
        }
        assert_eq!(
            shown("a\\r").to_string(),
            "a\\\\r",
            "a real backslash is doubled"
        );
    }

    #[test]
    fn long_values_are_cut_with_an_ellipsis() {
        let long = "x".repeat(10_000_000);
        let out = shown(&long).to_string();
        assert_eq!(out.chars().count(), MAX_CHARS);
        assert!(out.ends_with('…'));
        let exact = "y".repeat(MAX_CHARS);
        assert_eq!(
            shown(&exact).to_string(),
            exact,
            "exactly the cap: no ellipsis"
        );
        let over = "y".repeat(MAX_CHARS + 1);
        assert_eq!(shown(&over).to_string().chars().count(), MAX_CHARS);
        assert!(shown(&over).to_string().ends_with('…'));
        let lines = "\n".repeat(1000);
        let out = shown(&lines).to_string();
        assert!(!out.contains('\n'));
        assert_eq!(out.matches("\\n").count(), MAX_CHARS - 1);
    }

    #[test]
    fn bytes_that_are_not_utf8_show_as_hex() {
        assert_eq!(shown_bytes(b"ab\xffc\r\n").to_string(), "ab\\xffc\\r\\n");
        assert_eq!(shown_bytes("é".as_bytes()).to_string(), "é");
        let junk = vec![0xffu8; 5000];
        let out = shown_bytes(&junk).to_string();
        assert!(out.ends_with('…'));
        assert_eq!(out.matches("\\xff").count(), MAX_CHARS - 1);
    }
}
