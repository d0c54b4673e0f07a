//! Entry points for the fuzz targets in `crates/smtp/fuzz`; not an API
//! (hidden from the docs, may change at any time).
//!
//! The session is driven through the public [`run_session`](crate::run_session);
//! only the DATA decoder, private to the session, needs a door here.

use crate::data::{self, BareNewlines, Feed};

/// The end-of-data decoder exactly as a session drives it.
#[derive(Debug)]
pub struct DataDecoder(data::DataDecoder);

impl DataDecoder {
    /// A decoder for one message. `lenient`: a bare CR or LF is stored as
    /// CRLF (authenticated sessions) instead of refusing the message.
    pub fn new(max_size: u64, max_line: usize, lenient: bool) -> DataDecoder {
        let bare = if lenient {
            BareNewlines::Normalize
        } else {
            BareNewlines::Refuse
        };
        DataDecoder(data::DataDecoder::new(max_size, max_line, bare))
    }

    /// Decodes `input` into `out`; `Some(n)` once the end was found, the
    /// first `n` bytes of `input` being the rest of the message.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        match self.0.feed(input, out) {
            Feed::NeedMore => None,
            Feed::Done { consumed } => Some(consumed),
        }
    }

    /// The decoded size and, if the message is refused, the reply's text.
    pub fn finish(self) -> (u64, Option<String>) {
        let (size, problem) = self.0.finish();
        (size, problem.map(|p| p.reply().to_string()))
    }
}
