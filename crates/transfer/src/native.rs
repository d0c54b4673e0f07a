//! The native protocol between servers of one domain (the console's
//! `NRPC`): ESMTP over implicit TLS where both ends present a certificate of
//! the domain's certifier, and Domino's routing items ride in one header
//! line put before the message, `X-Mailhop-Transfer:`, which the receiver
//! takes off (only on its native port, only as the very first line).
//!
//! This module owns that line: what it carries and how it is written and
//! read. It knows nothing of the store or of routing.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;

/// The field name of the routing items line.
pub const ITEMS_FIELD: &str = "X-Mailhop-Transfer";

/// The TLS client side of the native protocol: this server's ID, trusting
/// only the domain's certifier.
pub type NativeTls = Arc<rustls::ClientConfig>;

/// The next server of the domain on a message's path.
#[derive(Clone)]
pub struct NativeTarget {
    /// Its Notes name (`Hub/Acme`), for logs and the connection cache.
    pub server: String,
    /// Its `listen.native` address.
    pub addr: SocketAddr,
    /// The name its certificate must carry.
    pub name: ServerName<'static>,
    pub tls: NativeTls,
}

impl std::fmt::Debug for NativeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeTarget")
            .field("server", &self.server)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Domino's routing items for one message handed to the next server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Items {
    /// The sending server's store identity: with its name, where the
    /// message came from (a store made anew is another origin).
    pub store: i64,
    /// The sending server's mail box id of the message: with each
    /// recipient's address it names one recipient row, so the receiver
    /// recognises a resend.
    pub message: i64,
    /// The hop count the message arrives with.
    pub hops: u32,
    /// `low`, `normal` or `high`.
    pub priority: String,
    /// `RouteServers` / `RouteTimes`: every server passed so far, the sender
    /// last, each with the time (Unix ms) it sent the message on.
    pub route: Vec<(String, i64)>,
}

/// Why a routing items line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemsError {
    #[error("the message does not start with its {ITEMS_FIELD} line")]
    Missing,
    #[error("{ITEMS_FIELD}: {0}")]
    Bad(String),
}

impl Items {
    /// The line, CRLF included.
    pub fn line(&self) -> String {
        let mut out = format!(
            "{ITEMS_FIELD}: v=1; store={}; id={}; hops={}; priority={}; route=",
            self.store,
            self.message,
            self.hops,
            escape(&self.priority)
        );
        for (i, (server, time)) in self.route.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{}@{time}", escape(server));
        }
        out.push_str("\r\n");
        out
    }

    /// Reads the line at the start of `data`; returns the items and the
    /// length of the line (CRLF included), so the caller can take it off.
    pub fn read(data: &[u8]) -> Result<(Items, usize), ItemsError> {
        let end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or(ItemsError::Missing)?;
        let line = std::str::from_utf8(&data[..end]).map_err(|_| ItemsError::Missing)?;
        let (name, value) = line.split_once(':').ok_or(ItemsError::Missing)?;
        if !name.eq_ignore_ascii_case(ITEMS_FIELD) {
            return Err(ItemsError::Missing);
        }
        let bad = |what: &str| ItemsError::Bad(what.to_owned());
        let (mut store, mut message, mut hops, mut priority, mut route) =
            (None, None, None, None, None);
        for part in value.split(';') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (key, val) = part
                .split_once('=')
                .ok_or_else(|| bad("an item without '='"))?;
            match key.trim().to_ascii_lowercase().as_str() {
                "v" if val.trim() == "1" => {}
                "v" => return Err(bad("an unknown version")),
                "store" => store = Some(val.trim().parse().map_err(|_| bad("a bad store"))?),
                "id" => message = Some(val.trim().parse().map_err(|_| bad("a bad id"))?),
                "hops" => hops = Some(val.trim().parse().map_err(|_| bad("a bad hop count"))?),
                "priority" => {
                    priority = Some(unescape(val.trim()).ok_or_else(|| bad("a bad priority"))?)
                }
                "route" => route = Some(read_route(val.trim()).ok_or_else(|| bad("a bad route"))?),
                // Items of a later version that this one does not use.
                _ => {}
            }
        }
        let items = Items {
            store: store.ok_or_else(|| bad("no store"))?,
            message: message.ok_or_else(|| bad("no id"))?,
            hops: hops.ok_or_else(|| bad("no hop count"))?,
            priority: priority.unwrap_or_else(|| "normal".to_owned()),
            route: route.unwrap_or_default(),
        };
        Ok((items, end + 2))
    }
}

fn read_route(text: &str) -> Option<Vec<(String, i64)>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',')
        .map(|hop| {
            let (server, time) = hop.rsplit_once('@')?;
            Some((unescape(server)?, time.parse().ok()?))
        })
        .collect()
}

/// `%HH` for the characters that separate items, controls and non-ASCII.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'%' | b',' | b';' | b'@' | b'=') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip() {
        let items = Items {
            store: 77,
            message: 42,
            hops: 3,
            priority: "high".into(),
            route: vec![
                ("SMTP/Acme".into(), 1_700_000_000_000),
                ("CN=Hub Server/O=Acme; x@y,z=%".into(), 1_700_000_000_500),
            ],
        };
        let mut data = items.line().into_bytes();
        let len = data.len();
        data.extend_from_slice(b"Subject: hi\r\n\r\nbody\r\n");
        let (read, used) = Items::read(&data).expect("read");
        assert_eq!(read, items);
        assert_eq!(used, len);
        assert!(data[used..].starts_with(b"Subject: hi"));
    }

    #[test]
    fn an_empty_route_and_defaults() {
        let (read, _) =
            Items::read(b"x-mailhop-transfer: store=5; id=1; hops=0; route=\r\n").expect("read");
        assert_eq!(read.route, Vec::new());
        assert_eq!(read.priority, "normal");
    }

    #[test]
    fn bad_lines_are_refused() {
        for bad in [
            &b"Subject: no items\r\n\r\n"[..],
            b"X-Mailhop-Transfer: hops=1\r\n",
            b"X-Mailhop-Transfer: id=1; hops=1\r\n",
            b"X-Mailhop-Transfer: store=1; id=x; hops=1\r\n",
            b"X-Mailhop-Transfer: store=1; id=1; hops=1; route=A@x\r\n",
            b"X-Mailhop-Transfer: store=1; id=1; hops=1; route=A%G1@1\r\n",
            b"X-Mailhop-Transfer: v=2; store=1; id=1; hops=1\r\n",
            b"X-Mailhop-Transfer: store=1; id=1; hops=1",
            b"",
        ] {
            assert!(
                Items::read(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
