//! The `Received:` trace header (RFC 5321 §4.4) the listener writes into a
//! received message. Reading headers is the `headers` crate's.
//!
//! Owns only this header text; it never parses MIME or changes the body.

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
}
