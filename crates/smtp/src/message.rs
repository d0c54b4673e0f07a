//! Facts the listener writes into or reads from a received message: the
//! `Received:` trace header (RFC 5321 §4.4) and the Message-ID for the log.
//!
//! Owns only these header texts; it never parses MIME or changes the body.

use std::fmt::Write;
use std::net::IpAddr;

/// What the `Received:` header says about the session.
pub(crate) struct ReceivedHeader<'a> {
    pub(crate) helo: &'a str,
    pub(crate) peer: IpAddr,
    pub(crate) hostname: &'a str,
    pub(crate) esmtp: bool,
    pub(crate) tls: bool,
    pub(crate) authenticated: bool,
    pub(crate) id: &'a str,
}

impl ReceivedHeader<'_> {
    /// The protocol keyword of RFC 3848: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA.
    fn protocol(&self) -> &'static str {
        match (self.esmtp, self.tls, self.authenticated) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        }
    }

    /// Appends the header (folded, CRLF-terminated) to `out`.
    pub(crate) fn write_received(&self, date: &str, out: &mut Vec<u8>) {
        let literal = match self.peer.to_canonical() {
            IpAddr::V4(ip) => format!("[{ip}]"),
            IpAddr::V6(ip) => format!("[IPv6:{ip}]"),
        };
        let mut header = String::with_capacity(160);
        let _ = write!(
            header,
            "Received: from {} ({literal})\r\n\tby {} (mailhop) with {} id {};\r\n\t{date}\r\n",
            printable(self.helo),
            printable(self.hostname),
            self.protocol(),
            printable(self.id),
        );
        out.extend_from_slice(header.as_bytes());
    }
}

/// The text with anything that could break a header line replaced by `?`.
fn printable(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_control() || c.is_whitespace() {
                '?'
            } else {
                c
            }
        })
        .collect();
    if clean.is_empty() {
        "unknown".to_owned()
    } else {
        clean
    }
}

/// The value of the first `Message-ID:` header in the header block.
pub(crate) fn message_id(message: &[u8]) -> Option<String> {
    let mut value: Option<String> = None;
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let folded = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        match (&mut value, folded) {
            (Some(v), true) => v.push_str(String::from_utf8_lossy(line).trim()),
            (Some(_), false) => break,
            (None, false) => {
                if let Some(rest) = strip_name(line, b"message-id:") {
                    value = Some(String::from_utf8_lossy(rest).trim().to_owned());
                }
            }
            (None, true) => {}
        }
    }
    value.filter(|v| !v.is_empty())
}

fn strip_name<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let head = line.get(..name.len())?;
    head.eq_ignore_ascii_case(name).then(|| &line[name.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(esmtp: bool, tls: bool, authenticated: bool) -> ReceivedHeader<'static> {
        ReceivedHeader {
            helo: "client.example",
            peer: "127.0.0.1".parse().expect("ip"),
            hostname: "mail.acme.com",
            esmtp,
            tls,
            authenticated,
            id: "1F.1",
        }
    }

    #[test]
    fn received_names_the_protocol() {
        let mut out = Vec::new();
        trace(true, true, true).write_received("Mon, 1 Jan 2024 00:00:00 +0000", &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "Received: from client.example ([127.0.0.1])\r\n\tby mail.acme.com (mailhop) with ESMTPSA id 1F.1;\r\n\tMon, 1 Jan 2024 00:00:00 +0000\r\n"
        );
        assert_eq!(trace(false, true, true).protocol(), "SMTP");
        assert_eq!(trace(true, false, false).protocol(), "ESMTP");
        assert_eq!(trace(true, true, false).protocol(), "ESMTPS");
        assert_eq!(trace(true, false, true).protocol(), "ESMTPA");
    }

    #[test]
    fn received_cannot_be_broken_by_the_helo_name() {
        let mut t = trace(true, false, false);
        t.helo = "evil\r\nX-Injected: 1";
        t.peer = "::1".parse().expect("ip");
        let mut out = Vec::new();
        t.write_received("date", &mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("Received: from evil??X-Injected:?1 ([IPv6:::1])"));
    }

    #[test]
    fn message_id_is_found_unfolded_and_only_in_headers() {
        let msg = b"Subject: x\r\nMESSAGE-ID:\r\n <abc@x>\r\nTo: y\r\n\r\nMessage-ID: <body@x>\r\n";
        assert_eq!(message_id(msg).as_deref(), Some("<abc@x>"));
        assert_eq!(message_id(b"Subject: x\r\n\r\nMessage-ID: <b@x>\r\n"), None);
        assert_eq!(message_id(b""), None);
    }
}
