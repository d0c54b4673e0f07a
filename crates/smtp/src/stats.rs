//! Inbound SMTP statistics (`SMTP.Sessions.Inbound.*` of `show stat`).
//!
//! Owns the counters and their Domino names; it knows nothing of sessions
//! beyond the events the session code reports.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by every session of one listener (or of one server).
#[derive(Debug, Default)]
pub struct SmtpStats {
    active: AtomicU64,
    active_ssl: AtomicU64,
    total: AtomicU64,
    total_ssl: AtomicU64,
    peak: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    messages_accepted: AtomicU64,
    messages_rejected: AtomicU64,
}

impl SmtpStats {
    pub fn new() -> SmtpStats {
        SmtpStats::default()
    }

    /// The counters under their `show stat` names, sorted by name.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut stats = vec![
            ("SMTP.Sessions.Inbound.Active", get(&self.active)),
            ("SMTP.Sessions.Inbound.Active.SSL", get(&self.active_ssl)),
            (
                "SMTP.Sessions.Inbound.BytesReceived",
                get(&self.bytes_received),
            ),
            ("SMTP.Sessions.Inbound.BytesSent", get(&self.bytes_sent)),
            ("SMTP.Sessions.Inbound.Peak", get(&self.peak)),
            ("SMTP.Sessions.Inbound.Total", get(&self.total)),
            ("SMTP.Sessions.Inbound.Total.SSL", get(&self.total_ssl)),
            ("SMTP.Messages.Accepted", get(&self.messages_accepted)),
            ("SMTP.Messages.Rejected", get(&self.messages_rejected)),
        ];
        stats.sort_unstable_by_key(|&(name, _)| name);
        stats
    }

    /// Counts a new session; it stays active until the guard is dropped.
    pub(crate) fn session_started(&self) -> ActiveSession<'_> {
        self.total.fetch_add(1, Ordering::Relaxed);
        let now = self.active.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        ActiveSession {
            stats: self,
            ssl: false,
        }
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn sent(&self, bytes: usize) {
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn message_accepted(&self) {
        self.messages_accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn message_rejected(&self) {
        self.messages_rejected.fetch_add(1, Ordering::Relaxed);
    }
}

/// One active session; dropping it takes the session off the active gauges.
pub(crate) struct ActiveSession<'a> {
    stats: &'a SmtpStats,
    ssl: bool,
}

impl ActiveSession<'_> {
    /// The session is now encrypted.
    pub(crate) fn tls_started(&mut self) {
        if !self.ssl {
            self.ssl = true;
            self.stats.total_ssl.fetch_add(1, Ordering::Relaxed);
            self.stats.active_ssl.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for ActiveSession<'_> {
    fn drop(&mut self) {
        self.stats.active.fetch_sub(1, Ordering::Relaxed);
        if self.ssl {
            self.stats.active_ssl.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(stats: &SmtpStats, name: &str) -> u64 {
        stats
            .snapshot()
            .into_iter()
            .find(|&(n, _)| n == name)
            .map_or(u64::MAX, |(_, v)| v)
    }

    #[test]
    fn sessions_count_active_total_and_peak() {
        let stats = SmtpStats::new();
        {
            let mut first = stats.session_started();
            let _second = stats.session_started();
            first.tls_started();
            first.tls_started();
            assert_eq!(value(&stats, "SMTP.Sessions.Inbound.Active"), 2);
            assert_eq!(value(&stats, "SMTP.Sessions.Inbound.Active.SSL"), 1);
        }
        let _third = stats.session_started();
        assert_eq!(value(&stats, "SMTP.Sessions.Inbound.Active"), 1);
        assert_eq!(value(&stats, "SMTP.Sessions.Inbound.Active.SSL"), 0);
        assert_eq!(value(&stats, "SMTP.Sessions.Inbound.Total"), 3);
        assert_eq!(value(&stats, "SMTP.Sessions.Inbound.Total.SSL"), 1);
        assert_eq!(value(&stats, "SMTP.Sessions.Inbound.Peak"), 2);
    }

    #[test]
    fn snapshot_is_sorted_by_name() {
        let names: Vec<_> = SmtpStats::new()
            .snapshot()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert!(names.contains(&"SMTP.Sessions.Inbound.BytesReceived"));
    }
}
