//! The end-of-data decoder (`data.rs`) on a stream of arbitrary bytes fed in
//! arbitrary chunks, message after message, checked against a plain model:
//! only CRLF.CRLF (or `.CRLF` at the very start) ends a message, so a bare
//! LF or CR never ends or splits one (SMTP smuggling); what is stored is the
//! model's un-dot-stuffed content; a message is refused exactly when the
//! model finds a NUL, a bare line end (strict mode), too many bytes or too
//! long a line; the chunking never changes the outcome (the end, the size,
//! the reply, and what is stored when the message is taken).
//!
//! Input: one byte of settings, one of chunk sizes, then the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp::fuzzing::DataDecoder;

#[derive(Debug, Clone, Copy)]
struct Settings {
    lenient: bool,
    max_size: u64,
    max_line: usize,
}

#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    /// Bytes of the stream the message took, end marker included.
    consumed: Option<usize>,
    out: Vec<u8>,
    size: u64,
    problem: Option<String>,
}

/// Decodes one message from `stream`, fed in chunks of the given sizes (cycled).
fn decode(stream: &[u8], settings: Settings, sizes: &[usize]) -> Decoded {
    let mut decoder = DataDecoder::new(settings.max_size, settings.max_line, settings.lenient);
    let mut out = Vec::new();
    let mut offset = 0;
    let mut consumed = None;
    for &size in sizes.iter().cycle() {
        if offset >= stream.len() {
            break;
        }
        let end = (offset + size).min(stream.len());
        let chunk = &stream[offset..end];
        if let Some(n) = decoder.feed(chunk, &mut out) {
            assert!(
                n <= chunk.len(),
                "consumed {n} of a {}-byte chunk",
                chunk.len()
            );
            consumed = Some(offset + n);
            break;
        }
        offset = end;
    }
    let (size, problem) = decoder.finish();
    Decoded {
        consumed,
        out,
        size,
        problem,
    }
}

/// Where the model says the message starting at `stream[0]` ends.
fn model_end(stream: &[u8]) -> Option<usize> {
    if stream.starts_with(b".\r\n") {
        return Some(3);
    }
    stream
        .windows(5)
        .position(|w| w == b"\r\n.\r\n")
        .map(|at| at + 5)
}

/// The model's decoding of a message's content (its bytes before the final
/// `.CRLF`): lines split at CRLF only, one leading dot removed from each, a
/// bare CR or LF inside a line stored as CRLF. Also: was there a NUL, a bare
/// line end, and the longest stretch between stored CRLFs.
struct Model {
    out: Vec<u8>,
    nul: bool,
    bare: bool,
    longest: usize,
}

fn model(content: &[u8]) -> Model {
    let mut out = Vec::new();
    let mut bare = false;
    let mut rest = content;
    while !rest.is_empty() {
        let (line, next) = match rest.windows(2).position(|w| w == b"\r\n") {
            Some(at) => (&rest[..at], &rest[at + 2..]),
            None => unreachable!("the content of a finished message ends with CRLF"),
        };
        let line = line.strip_prefix(b".").unwrap_or(line);
        for &b in line {
            if b == b'\r' || b == b'\n' {
                bare = true;
                out.extend_from_slice(b"\r\n");
            } else {
                out.push(b);
            }
        }
        out.extend_from_slice(b"\r\n");
        rest = next;
    }
    let longest = out
        .split(|&b| b == b'\n')
        .map(|segment| segment.strip_suffix(b"\r").unwrap_or(segment).len())
        .max()
        .unwrap_or(0);
    Model {
        nul: content.contains(&0),
        out,
        bare,
        longest,
    }
}

fuzz_target!(|input: &[u8]| {
    let [flags, chunking, stream @ ..] = input else {
        return;
    };
    let settings = Settings {
        lenient: flags & 1 != 0,
        max_size: match (flags >> 1) & 3 {
            0 => u64::MAX,
            1 => 16,
            2 => 64,
            _ => 1024,
        },
        max_line: match (flags >> 3) & 3 {
            0 => usize::MAX,
            1 => 4,
            2 => 16,
            _ => 78,
        },
    };
    let sizes = [
        1 + usize::from(chunking & 0x7),
        1 + usize::from(chunking >> 3),
        1,
    ];
    let ends = stream.windows(5).filter(|w| *w == b"\r\n.\r\n").count();

    let mut pos = 0;
    let mut messages = 0;
    while pos < stream.len() {
        let rest = &stream[pos..];
        let chunked = decode(rest, settings, &sizes);
        let whole = decode(rest, settings, &[rest.len()]);
        // What was stored before a refusal is thrown away; the rest must agree.
        let outcome = |d: &Decoded| (d.consumed, d.size, d.problem.clone());
        assert_eq!(
            outcome(&chunked),
            outcome(&whole),
            "the chunking changed the outcome"
        );
        if chunked.problem.is_none() {
            assert_eq!(
                chunked.out, whole.out,
                "the chunking changed what was stored"
            );
        }

        let expected_end = model_end(rest);
        assert_eq!(chunked.consumed, expected_end, "not the first CRLF.CRLF");
        let Some(end) = chunked.consumed else {
            break;
        };
        let message = &rest[..end];
        assert!(message == b".\r\n" || message.ends_with(b"\r\n.\r\n"));

        let m = model(&message[..end - 3]);
        assert!(
            m.out.starts_with(&chunked.out),
            "stored bytes that are not the content"
        );
        let cause = m.nul
            || (m.bare && !settings.lenient)
            || m.out.len() as u64 > settings.max_size
            || m.longest > settings.max_line;
        assert_eq!(
            chunked.problem.is_some(),
            cause,
            "refusal disagrees with the model: {:?}",
            chunked.problem
        );
        if chunked.problem.is_none() {
            assert_eq!(chunked.out, m.out);
            assert_eq!(chunked.size, m.out.len() as u64);
            // Only CRLF line ends are ever stored.
            assert!(
                !chunked
                    .out
                    .windows(2)
                    .any(|w| w[1] == b'\n' && w[0] != b'\r')
            );
            assert!(
                !chunked
                    .out
                    .windows(2)
                    .any(|w| w[0] == b'\r' && w[1] != b'\n')
            );
        }
        messages += 1;
        pos += end;
    }
    // Never more than one message per CRLF.CRLF (the first may end at `.CRLF`).
    assert!(messages <= ends + 1, "{messages} messages for {ends} ends");
});
