//! The DATA body decoder: finds the `<CRLF>.<CRLF>` end, undoes
//! dot-stuffing, turns bare LF into CRLF and enforces the size, NUL and
//! line-length limits, chunk by chunk, without allocating per line.
//!
//! Owns only byte-level decoding; it does no I/O and never sees commands.

use memchr::memchr2;

use crate::Reply;

/// Why a received message is refused once its end has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DataProblem {
    #[error("Message size exceeds fixed maximum message size")]
    TooBig,
    #[error("Message contains NUL characters")]
    Nul,
    #[error("Message contains a line longer than {0} bytes")]
    LongLine(usize),
}

impl DataProblem {
    pub(crate) fn reply(self) -> Reply {
        match self {
            DataProblem::TooBig => Reply::message_too_big(),
            DataProblem::Nul | DataProblem::LongLine(_) => {
                Reply::new(554, (5, 6, 0), self.to_string())
            }
        }
    }
}

/// Where the decoder stands within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineState {
    /// At the first byte of a line.
    Start,
    /// The line began with a dot (removed).
    Dot,
    /// The line is `.` then CR so far: LF ends the message.
    DotCr,
    /// Inside a line.
    Middle,
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
    /// The last byte stored was CR.
    prev_cr: bool,
    /// Bytes of the current line so far (CR included, LF not).
    line_len: usize,
    /// Decoded size, including what was not stored.
    size: u64,
    max_size: u64,
    max_line: usize,
    problem: Option<DataProblem>,
}

impl DataDecoder {
    pub(crate) fn new(max_size: u64, max_line: usize) -> DataDecoder {
        DataDecoder {
            state: LineState::Start,
            prev_cr: false,
            line_len: 0,
            size: 0,
            max_size,
            max_line,
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
                LineState::Dot | LineState::DotCr if byte == b'\n' => {
                    return Feed::Done { consumed: i + 1 };
                }
                LineState::DotCr => {
                    self.emit(out, b"\r");
                    self.state = LineState::Middle;
                }
                LineState::Start | LineState::Dot => self.state = LineState::Middle,
                LineState::Middle => {
                    let rest = &input[i..];
                    let Some(pos) = memchr2(b'\n', 0, rest) else {
                        self.emit(out, rest);
                        if self.line_len > self.max_line.saturating_add(1) {
                            self.refuse(DataProblem::LongLine(self.max_line));
                        }
                        return Feed::NeedMore;
                    };
                    self.emit(out, &rest[..pos]);
                    i += pos + 1;
                    if rest[pos] == 0 {
                        self.refuse(DataProblem::Nul);
                    } else {
                        self.end_line(out);
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

    fn end_line(&mut self, out: &mut Vec<u8>) {
        if self.line_len.saturating_sub(usize::from(self.prev_cr)) > self.max_line {
            self.refuse(DataProblem::LongLine(self.max_line));
        }
        if self.prev_cr {
            self.emit(out, b"\n");
        } else {
            self.emit(out, b"\r\n");
        }
        self.line_len = 0;
        self.state = LineState::Start;
    }

    fn emit(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        let Some(&last) = bytes.last() else {
            return;
        };
        self.prev_cr = last == b'\r';
        self.line_len = self.line_len.saturating_add(bytes.len());
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.size > self.max_size {
            self.refuse(DataProblem::TooBig);
        }
        if self.problem.is_none() {
            out.extend_from_slice(bytes);
        }
    }

    fn refuse(&mut self, problem: DataProblem) {
        self.problem.get_or_insert(problem);
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
        let mut decoder = DataDecoder::new(max_size, max_line);
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

    #[test]
    fn bare_lf_becomes_crlf_and_bare_lf_dot_ends() {
        let (out, consumed, _) = simple(b"a\nb\r\n.\n");
        assert_eq!(out, b"a\r\nb\r\n");
        assert_eq!(consumed, Some(7));
    }

    #[test]
    fn dot_cr_without_lf_is_content() {
        let (out, consumed, _) = simple(b".\rx\r\n.\r\n");
        assert_eq!(out, b"\rx\r\n");
        assert_eq!(consumed, Some(8));
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
                proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'\r'), Just(b'a'), any::<u8>().prop_filter("no LF/NUL/CR", |b| *b != b'\n' && *b != 0 && *b != b'\r')], 0..20),
                0..20),
            chunk in 1usize..16,
        ) {
            // A CR at the end of a line would merge with the CRLF: the client
            // cannot send that unambiguously, so leave it out.
            let lines: Vec<Vec<u8>> = lines.into_iter().map(|mut l| { while l.last() == Some(&b'\r') { l.pop(); } l }).collect();
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

        #[test]
        fn arbitrary_bytes_never_overrun(wire in proptest::collection::vec(any::<u8>(), 0..400), chunk in 1usize..32) {
            let (out, consumed, _) = decode(&wire, chunk, 64, 16);
            prop_assert!(out.len() <= 64);
            prop_assert!(consumed.is_none_or(|n| n <= wire.len()));
        }
    }
}
