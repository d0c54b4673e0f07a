//! Entry points for the fuzz targets in `crates/transfer/fuzz`; not an API
//! (hidden from the docs, may change at any time).

use tokio::io::AsyncRead;

use crate::client::{Capabilities, Phase, ReplyReader};

/// One reply as the client read it, with every reading the client makes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
    /// As logged and kept in reports (`250 text text`).
    pub shown: String,
    pub positive: bool,
    pub transient: bool,
    pub permanent: bool,
    pub enhanced_status: String,
    pub error_text: String,
    /// The capabilities it announces, read as an EHLO reply.
    pub pipelining: bool,
    pub size: Option<u64>,
    pub starttls: bool,
    pub eight_bit_mime: bool,
}

/// Reads replies off `stream` as the SMTP client does, until it gives up
/// (the stream ended, or what came is not an SMTP reply); returns them and
/// why it gave up.
pub async fn read_replies<R: AsyncRead + Unpin>(mut stream: R) -> (Vec<Reply>, String) {
    let mut reader = ReplyReader::default();
    let mut replies = Vec::new();
    loop {
        match reader.read(&mut stream, Phase::Ehlo).await {
            Ok(reply) => {
                let caps = Capabilities::from_ehlo(&reply);
                replies.push(Reply {
                    code: reply.code,
                    shown: reply.to_string(),
                    positive: reply.is_positive(),
                    transient: reply.is_transient(),
                    permanent: reply.is_permanent(),
                    enhanced_status: reply.enhanced_status(),
                    error_text: reply.error_text(),
                    pipelining: caps.pipelining,
                    size: caps.size,
                    starttls: caps.starttls,
                    eight_bit_mime: caps.eight_bit_mime,
                    lines: reply.lines,
                });
            }
            Err(e) => return (replies, e.to_string()),
        }
    }
}
