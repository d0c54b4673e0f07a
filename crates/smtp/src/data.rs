//! The DATA body decoder: finds the `<CRLF>.<CRLF>` end, undoes
//! dot-stuffing and enforces the size, NUL, line-length and line-end
//! limits, chunk by chunk, without allocating per line.
//!
//! Only `CRLF . CRLF` ends a message (RFC 5321 §4.1.1.4). A bare LF (LF not
//! preceded by CR) or a bare CR (CR not followed by LF) is never a line end,
//! so `\n.\n`, `\r\n.\n`, `\r.\r` and the like never end or split a message
//! (SMTP smuggling). What happens to the message holding one depends on
//! [`BareNewlines`].
//!
//! Owns only byte-level decoding; it does no I/O and never sees commands.

use memchr::memchr3;

use crate::{Refusal, Reply};

/// Why a received message is refused once its end has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DataProblem {
    #[error("Message size exceeds fixed maximum message size")]
    TooBig,
    #[error("Message contains NUL characters")]
    Nul,
    #[error("Message contains a line longer than {0} bytes")]
    LongLine(usize),
    #[error(
        "Message refused: bare LF (line feed without carriage return) is not allowed; see RFC 5321 section 2.3.8"
    )]
    BareLf,
    #[error(
        "Message refused: bare CR (carriage return without line feed) is not allowed; see RFC 5321 section 2.3.8"
    )]
    BareCr,
    #[error("Insufficient system storage")]
    NoStorage,
}

impl DataProblem {
    pub(crate) fn reply(self) -> Reply {
        match self {
            DataProblem::TooBig => Reply::message_too_big(),
            DataProblem::Nul => Reply::new(554, (5, 6, 0), self.to_string()).counted(Refusal::Nul),
            DataProblem::LongLine(_) => {
                Reply::new(554, (5, 6, 0), self.to_string()).counted(Refusal::LongLine)
            }
            DataProblem::BareLf => {
                Reply::new(554, (5, 5, 2), self.to_string()).counted(Refusal::BareLf)
            }
            DataProblem::BareCr => {
                Reply::new(554, (5, 5, 2), self.to_string()).counted(Refusal::BareCr)
            }
            DataProblem::NoStorage => {
                Reply::new(452, (4, 3, 1), self.to_string()).counted(Refusal::InsufficientStorage)
            }
        }
    }
}

/// What a bare LF or bare CR in a message does (it never ends a line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BareNewlines {
    /// The message is refused with `554 5.5.2` once its end is read
    /// (Postfix `smtpd_forbid_bare_newline`).
    Refuse,
    /// Stored as CRLF, but still not a line end: a dot after it is content
    /// and cannot end the message.
    Normalize,
}

/// Where the decoder stands within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineState {
    /// At the first byte of a line (after CRLF, or at the start of data).
    Start,
    /// The line began with a dot (removed).
    Dot,
    /// The line is `.` then CR so far: LF ends the message.
    DotCr,
    /// Inside a line.
    Middle,
    /// Inside a line, after a CR not yet stored: LF makes it a line end.
    Cr,
}

/// Result of feeding one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feed {
    /// The whole chunk was consumed; the end has not been seen yet.
    NeedMore,
    /// The end was found; this many bytes of the chunk belong to the message.
    Done { consumed: usize },
}

/// Decodes one message body fed in arbitrary chunks.
#[derive(Debug)]
pub(crate) struct DataDecoder {
    state: LineState,
    /// Bytes of the current line so far (CR and LF not counted).
    line_len: usize,
    /// Decoded size, including what was not stored.
    size: u64,
    max_size: u64,
    max_line: usize,
    bare: BareNewlines,
    problem: Option<DataProblem>,
}

impl DataDecoder {
    pub(crate) fn new(max_size: u64, max_line: usize, bare: BareNewlines) -> DataDecoder {
        DataDecoder {
            state: LineState::Start,
            line_len: 0,
            size: 0,
            max_size,
            max_line,
            bare,
            problem: None,
        }
    }

    /// Decodes `input` into `out` up to the end-of-data marker. Nothing more
    /// is stored once a problem is found; the end is still looked for.
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Feed {
        let mut i = 0;
        while let Some(&byte) = input.get(i) {
            match self.state {
                LineState::Start if byte == b'.' => {
                    self.state = LineState::Dot;
                    i += 1;
                }
                LineState::Dot if byte == b'\r' => {
                    self.state = LineState::DotCr;
                    i += 1;
                }
                LineState::DotCr if byte == b'\n' => {
                    return Feed::Done { consumed: i + 1 };
                }
                LineState::Cr if byte == b'\n' => {
                    i += 1;
                    self.end_line(out);
                }
                LineState::DotCr | LineState::Cr => {
                    // The CR is not followed by LF; the byte is looked at again.
                    self.bare_newline(out, DataProblem::BareCr);
                    self.state = LineState::Middle;
                }
                LineState::Start | LineState::Dot => self.state = LineState::Middle,
                LineState::Middle => {
                    let rest = &input[i..];
                    let Some(pos) = memchr3(b'\r', b'\n', 0, rest) else {
                        self.emit(out, rest);
                        return Feed::NeedMore;
                    };
                    self.emit(out, &rest[..pos]);
                    i += pos + 1;
                    match rest[pos] {
                        b'\r' => self.state = LineState::Cr,
                        b'\n' => self.bare_newline(out, DataProblem::BareLf),
                        _ => self.refuse(DataProblem::Nul),
                    }
                }
            }
        }
        Feed::NeedMore
    }

    /// The decoded size and, if the message must be refused, why.
    pub(crate) fn finish(self) -> (u64, Option<DataProblem>) {
        (self.size, self.problem)
    }

    /// Refuses the message for a reason found outside the decoder; nothing
    /// more is stored.
    pub(crate) fn refuse(&mut self, problem: DataProblem) {
        self.problem.get_or_insert(problem);
    }

    /// A line ended with CRLF.
    fn end_line(&mut self, out: &mut Vec<u8>) {
        self.emit_raw(out, b"\r\n");
        self.line_len = 0;
        self.state = LineState::Start;
    }

    /// A bare LF or CR: refused, or stored as CRLF without ending the line
    /// (the next byte is never the start of a line, so never a dot that ends).
    fn bare_newline(&mut self, out: &mut Vec<u8>, problem: DataProblem) {
        match self.bare {
            BareNewlines::Refuse => self.refuse(problem),
            BareNewlines::Normalize => {
                self.emit_raw(out, b"\r\n");
                self.line_len = 0;
            }
        }
    }

    /// Line content (no CR, no LF). When the line passes its limit inside
    /// `bytes`, what comes before that byte is counted first: the problem
    /// kept is the one met first in the message, however the bytes were
    /// split into chunks (a message both too long in a line and too big gets
    /// the same reply whatever its TCP segments).
    fn emit(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let room = self.max_line.saturating_sub(self.line_len);
        self.line_len = self.line_len.saturating_add(bytes.len());
        match bytes.split_at_checked(room) {
            Some((fits, rest)) if !rest.is_empty() => {
                self.emit_raw(out, fits);
                self.refuse(DataProblem::LongLine(self.max_line));
                self.emit_raw(out, rest);
            }
            _ => self.emit_raw(out, bytes),
        }
    }

    fn emit_raw(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.size > self.max_size {
            self.refuse(DataProblem::TooBig);
        }
        if self.problem.is_none() {
            out.extend_from_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `wire` in chunks of `chunk` bytes; returns (stored, consumed, problem).
    fn decode(
        wire: &[u8],
        chunk: usize,
        max_size: u64,
        max_line: usize,
    ) -> (Vec<u8>, Option<usize>, Option<DataProblem>) {
        decode_with(wire, chunk, max_size, max_line, BareNewlines::Refuse)
    }

    fn decode_with(
        wire: &[u8],
        chunk: usize,
        max_size: u64,
        max_line: usize,
        bare: BareNewlines,
    ) -> (Vec<u8>, Option<usize>, Option<DataProblem>) {
        let mut decoder = DataDecoder::new(max_size, max_line, bare);
        let mut out = Vec::new();
        let mut offset = 0;
        let mut consumed = None;
        for piece in wire.chunks(chunk.max(1)) {
            if let Feed::Done { consumed: n } = decoder.feed(piece, &mut out) {
                consumed = Some(offset + n);
                break;
            }
            offset += piece.len();
        }
        let (_, problem) = decoder.finish();
        (out, consumed, problem)
    }

    fn simple(wire: &[u8]) -> (Vec<u8>, Option<usize>, Option<DataProblem>) {
        decode(wire, wire.len(), u64::MAX, 1000)
    }

    #[test]
    fn undoes_dot_stuffing_and_finds_the_end() {
        let wire = b"Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n";
        let (out, consumed, problem) = simple(wire);
        assert_eq!(out, b"Subject: x\r\n\r\n.leading dot\r\n");
        assert_eq!(consumed, Some(wire.len() - b"QUIT\r\n".len()));
        assert_eq!(problem, None);
    }

    #[test]
    fn empty_message_ends_at_once() {
        assert_eq!(simple(b".\r\n"), (Vec::new(), Some(3), None));
    }

    /// The fake ends of SMTP smuggling, each followed by a smuggled message.
    const FAKE_ENDS: [&[u8]; 6] = [
        b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r\n.\r", b"\r.\r\n",
    ];

    fn smuggling(fake_end: &[u8]) -> Vec<u8> {
        let mut wire = b"Subject: first\r\n\r\nbody".to_vec();
        wire.extend_from_slice(fake_end);
        wire.extend_from_slice(b"MAIL FROM:<admin@acme.com>\r\nRCPT TO:<x@acme.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n");
        wire
    }

    #[test]
    fn fake_ends_never_end_the_message_and_refuse_it() {
        for fake_end in FAKE_ENDS {
            for chunk in [1, 2, 3, 7, 1000] {
                let wire = smuggling(fake_end);
                let (_, consumed, problem) = decode(&wire, chunk, u64::MAX, 1000);
                let shown = fake_end.escape_ascii().to_string();
                assert_eq!(consumed, Some(wire.len()), "{shown} ended early");
                let expected = if fake_end.starts_with(b"\r\n.\n") || fake_end.starts_with(b"\n") {
                    DataProblem::BareLf
                } else {
                    DataProblem::BareCr
                };
                assert_eq!(problem, Some(expected), "{shown}");
            }
        }
    }

    #[test]
    fn normalized_fake_ends_stay_content() {
        for fake_end in FAKE_ENDS {
            let wire = smuggling(fake_end);
            for chunk in [1, 5, 1000] {
                let (out, consumed, problem) =
                    decode_with(&wire, chunk, u64::MAX, 1000, BareNewlines::Normalize);
                let shown = fake_end.escape_ascii().to_string();
                assert_eq!(consumed, Some(wire.len()), "{shown} ended early");
                assert_eq!(problem, None, "{shown}");
                let text = String::from_utf8_lossy(&out);
                assert!(text.contains("Subject: smuggled"), "{shown}: {text:?}");
                // Every line end stored is CRLF.
                assert!(
                    !out.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
                    "{shown}: {text:?}"
                );
                assert!(
                    !out.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n'),
                    "{shown}: {text:?}"
                );
            }
        }
        let (out, _, _) = decode_with(
            b"a\nb\r\n.\r\n",
            100,
            u64::MAX,
            1000,
            BareNewlines::Normalize,
        );
        assert_eq!(out, b"a\r\nb\r\n");
    }

    #[test]
    fn bare_lf_dot_lf_is_not_an_end() {
        let (_, consumed, problem) = simple(b"a\nb\r\n.\n");
        assert_eq!(consumed, None);
        assert_eq!(problem, Some(DataProblem::BareLf));
    }

    #[test]
    fn dot_cr_without_lf_is_a_bare_cr() {
        let (_, consumed, problem) = simple(b".\rx\r\n.\r\n");
        assert_eq!(consumed, Some(8));
        assert_eq!(problem, Some(DataProblem::BareCr));
        let (out, _, problem) = decode_with(
            b".\rx\r\n.\r\n",
            100,
            u64::MAX,
            1000,
            BareNewlines::Normalize,
        );
        assert_eq!(problem, None);
        assert_eq!(out, b"\r\nx\r\n");
    }

    #[test]
    fn dot_inside_a_line_is_kept() {
        let (out, _, _) = simple(b"a.b\r\n.\r\n");
        assert_eq!(out, b"a.b\r\n");
    }

    #[test]
    fn missing_end_needs_more() {
        assert_eq!(simple(b"a\r\n.x").1, None);
    }

    #[test]
    fn nul_is_refused_but_the_end_is_found() {
        let (_, consumed, problem) = simple(b"a\0b\r\n.\r\n");
        assert_eq!(consumed, Some(8));
        assert_eq!(problem, Some(DataProblem::Nul));
    }

    #[test]
    fn long_line_is_refused() {
        let (_, _, problem) = decode(b"12345\r\n.\r\n", 100, u64::MAX, 5);
        assert_eq!(problem, None);
        let (_, consumed, problem) = decode(b"123456\r\n.\r\n", 100, u64::MAX, 5);
        assert_eq!(problem, Some(DataProblem::LongLine(5)));
        assert_eq!(consumed, Some(11));
        let (_, _, problem) = decode(b"1234567890123", 4, u64::MAX, 5);
        assert_eq!(problem, Some(DataProblem::LongLine(5)));
    }

    /// Found by the `data` fuzz target (this is its input, limits 16 bytes
    /// and 78-byte lines): a message over both the size and the line limit
    /// was refused as too big or for its long line depending on how its
    /// bytes were split into reads.
    #[test]
    fn the_first_problem_met_wins_whatever_the_chunks() {
        let mut wire = b"a".to_vec();
        wire.extend_from_slice(&[0xff; 121]);
        wire.extend_from_slice(b"\0b\r\n");
        wire.extend_from_slice(&[b'y'; 61]);
        wire.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(wire.len(), 192);
        // (What was stored before the refusal is thrown away; it may differ.)
        let outcome = |chunk| {
            let (_, consumed, problem) = decode(&wire, chunk, 16, 78);
            (consumed, problem)
        };
        let whole = outcome(wire.len());
        assert_eq!(whole, (Some(wire.len()), Some(DataProblem::TooBig)));
        for chunk in [1, 2, 5, 6, 17, 100] {
            assert_eq!(outcome(chunk), whole, "chunks of {chunk}");
        }
        // The line limit met first wins the same way.
        let wire = b"0123456789abcdef\r\n.\r\n";
        for chunk in 1..=wire.len() {
            let (_, consumed, problem) = decode(wire, chunk, 12, 4);
            assert_eq!(consumed, Some(wire.len()));
            assert_eq!(problem, Some(DataProblem::LongLine(4)), "chunks of {chunk}");
        }
    }

    #[test]
    fn oversize_stops_storing() {
        let wire = b"0123456789\r\n0123456789\r\n.\r\n";
        let (out, consumed, problem) = decode(wire, 7, 15, 1000);
        assert_eq!(problem, Some(DataProblem::TooBig));
        assert_eq!(consumed, Some(wire.len()));
        assert!(out.len() <= 15);
    }

    /// Dot-stuffs CRLF-terminated lines the way a client does.
    fn stuff(lines: &[Vec<u8>]) -> Vec<u8> {
        let mut wire = Vec::new();
        for line in lines {
            if line.first() == Some(&b'.') {
                wire.push(b'.');
            }
            wire.extend_from_slice(line);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b".\r\n");
        wire
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_original_lines(
            lines in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'a'), any::<u8>().prop_filter("no LF/NUL/CR", |b| *b != b'\n' && *b != 0 && *b != b'\r')], 0..20),
                0..20),
            chunk in 1usize..16,
        ) {
            let wire = stuff(&lines);
            let (out, consumed, problem) = decode(&wire, chunk, u64::MAX, 1000);
            let mut expected = Vec::new();
            for line in &lines {
                expected.extend_from_slice(line);
                expected.extend_from_slice(b"\r\n");
            }
            prop_assert_eq!(problem, None);
            prop_assert_eq!(consumed, Some(wire.len()));
            prop_assert_eq!(out, expected);
        }

        /// Random bytes (rich in CR, LF, dots and NULs), in random chunks,
        /// end exactly at the first CRLF.CRLF (or a leading .CRLF), in both
        /// modes; a bare CR or LF before it always refuses the message.
        #[test]
        fn the_only_end_is_crlf_dot_crlf(
            wire in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b'a'), Just(0u8), any::<u8>()], 0..300),
            chunk in 1usize..32,
            normalize in any::<bool>(),
        ) {
            let expected = if wire.starts_with(b".\r\n") {
                Some(3)
            } else {
                wire.windows(5).position(|w| w == b"\r\n.\r\n").map(|k| k + 5)
            };
            let bare = if normalize { BareNewlines::Normalize } else { BareNewlines::Refuse };
            let (out, consumed, problem) = decode_with(&wire, chunk, u64::MAX, usize::MAX, bare);
            prop_assert_eq!(consumed, expected);
            if let Some(end) = expected {
                let message = &wire[..end];
                let bare_lf = message.iter().enumerate().any(|(i, &b)| b == b'\n' && (i == 0 || message[i - 1] != b'\r'));
                let bare_cr = message.iter().enumerate().any(|(i, &b)| b == b'\r' && message.get(i + 1) != Some(&b'\n'));
                let nul = message.contains(&0);
                prop_assert_eq!(problem.is_some(), nul || (!normalize && (bare_lf || bare_cr)), "{:?}", problem);
                if problem.is_none() {
                    // What is stored never holds a bare CR or LF.
                    prop_assert!(!out.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
                    prop_assert!(!out.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n'));
                    prop_assert!(!out.starts_with(b"\n") && !out.ends_with(b"\r"));
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_overrun(wire in proptest::collection::vec(any::<u8>(), 0..400), chunk in 1usize..32) {
            let (out, consumed, _) = decode(&wire, chunk, 64, 16);
            prop_assert!(out.len() <= 64);
            prop_assert!(consumed.is_none_or(|n| n <= wire.len()));
        }
    }
}
