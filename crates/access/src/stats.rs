//! Session and login counters of POP3 and IMAP (SPEC §10, the SMTP.Sessions.*
//! pattern). Owns only atomics; sessions update them through guards.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::Protocol;

/// Counters of one protocol.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    active: AtomicU64,
    total: AtomicU64,
    peak: AtomicU64,
    active_ssl: AtomicU64,
    total_ssl: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    logins_ok: AtomicU64,
    logins_failed: AtomicU64,
}

impl Counters {
    pub(crate) fn received(&self, n: usize) {
        self.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn sent(&self, n: usize) {
        self.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn login(&self, ok: bool) {
        let counter = if ok {
            &self.logins_ok
        } else {
            &self.logins_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a session until the guard drops.
    pub(crate) fn session(&self) -> SessionGuard<'_> {
        let now = self.active.fetch_add(1, Ordering::Relaxed) + 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        self.peak.fetch_max(now, Ordering::Relaxed);
        SessionGuard {
            counters: self,
            ssl: false,
        }
    }
}

/// An active session; counts it as SSL once [`SessionGuard::tls`] is called.
pub(crate) struct SessionGuard<'a> {
    counters: &'a Counters,
    ssl: bool,
}

impl SessionGuard<'_> {
    pub(crate) fn tls(&mut self) {
        if !self.ssl {
            self.ssl = true;
            self.counters.active_ssl.fetch_add(1, Ordering::Relaxed);
            self.counters.total_ssl.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        self.counters.active.fetch_sub(1, Ordering::Relaxed);
        if self.ssl {
            self.counters.active_ssl.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// POP3 and IMAP statistics of one server.
#[derive(Debug, Default)]
pub struct AccessStats {
    pop3: Counters,
    imap: Counters,
}

impl AccessStats {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn of(&self, protocol: Protocol) -> &Counters {
        match protocol {
            Protocol::Pop3 => &self.pop3,
            Protocol::Imap => &self.imap,
        }
    }

    /// `POP3.Sessions.Inbound.Active`, ... `POP3.Logins.Failed` (or `IMAP.*`), with values.
    pub fn snapshot(&self, protocol: Protocol) -> Vec<(String, u64)> {
        let c = self.of(protocol);
        let p = protocol.name();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            (format!("{p}.Sessions.Inbound.Active"), get(&c.active)),
            (format!("{p}.Sessions.Inbound.Total"), get(&c.total)),
            (format!("{p}.Sessions.Inbound.Peak"), get(&c.peak)),
            (
                format!("{p}.Sessions.Inbound.Active.SSL"),
                get(&c.active_ssl),
            ),
            (format!("{p}.Sessions.Inbound.Total.SSL"), get(&c.total_ssl)),
            (
                format!("{p}.Sessions.Inbound.BytesReceived"),
                get(&c.bytes_received),
            ),
            (
                format!("{p}.Sessions.Inbound.BytesSent"),
                get(&c.bytes_sent),
            ),
            (format!("{p}.Logins.Successful"), get(&c.logins_ok)),
            (format!("{p}.Logins.Failed"), get(&c.logins_failed)),
        ]
    }
}
