//! Inbound SMTP statistics (`SMTP.Sessions.Inbound.*`, `SMTP.Messages.*`,
//! and a counter per [`Refusal`] kind, of `show stat`).
//!
//! Owns the counters and their Domino names; it knows nothing of sessions
//! beyond the events the session code reports.

use std::mem;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Refusal;

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
    timed_out: AtomicU64,
    logins_ok: AtomicU64,
    /// Message bytes held by sessions receiving DATA right now.
    inflight_bytes: AtomicU64,
    /// One counter per [`Refusal`] kind.
    refused: RefusalCounters,
}

/// A counter for each kind of refusal.
#[derive(Debug)]
struct RefusalCounters([AtomicU64; Refusal::COUNT]);

impl Default for RefusalCounters {
    fn default() -> Self {
        RefusalCounters(std::array::from_fn(|_| AtomicU64::new(0)))
    }
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
            ("SMTP.Messages.InFlight.Bytes", get(&self.inflight_bytes)),
            ("SMTP.Sessions.Inbound.TimedOut", get(&self.timed_out)),
            ("SMTP.Logins.Successful", get(&self.logins_ok)),
        ];
        stats.extend(
            Refusal::ALL
                .iter()
                .map(|&kind| (kind.counter_name(), self.refusals(kind))),
        );
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

    /// Counts one refusal of this kind.
    pub fn refused(&self, why: Refusal) {
        self.refused.0[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// How many refusals of this kind there were.
    pub fn refusals(&self, why: Refusal) -> u64 {
        self.refused.0[why.index()].load(Ordering::Relaxed)
    }

    pub(crate) fn timed_out(&self) {
        self.timed_out.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn login_succeeded(&self) {
        self.logins_ok.fetch_add(1, Ordering::Relaxed);
    }

    /// Message bytes being received right now by all sessions.
    pub fn inflight_bytes(&self) -> u64 {
        self.inflight_bytes.load(Ordering::Relaxed)
    }

    /// Would `bytes` more fit in a budget of `limit` in-flight bytes now?
    pub(crate) fn inflight_fits(&self, bytes: u64, limit: u64) -> bool {
        self.inflight_bytes().saturating_add(bytes) <= limit
    }

    /// Takes `bytes` of a budget of `limit` in-flight bytes, if they fit.
    fn try_reserve(&self, bytes: u64, limit: u64) -> bool {
        self.inflight_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|&total| total <= limit)
            })
            .is_ok()
    }

    fn release(&self, bytes: u64) {
        self.inflight_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// The in-flight bytes of one message being received; released when dropped
/// (the message was handed on, refused, or the client went away).
pub(crate) struct InFlight<'a> {
    stats: &'a SmtpStats,
    limit: u64,
    held: u64,
}

impl<'a> InFlight<'a> {
    pub(crate) fn new(stats: &'a SmtpStats, limit: u64) -> InFlight<'a> {
        InFlight {
            stats,
            limit,
            held: 0,
        }
    }

    /// Grows the reservation to `total` bytes; false (and nothing more
    /// held) if the budget has no room.
    pub(crate) fn cover(&mut self, total: u64) -> bool {
        if total <= self.held {
            return true;
        }
        if self.stats.try_reserve(total - self.held, self.limit) {
            self.held = total;
            true
        } else {
            false
        }
    }

    /// Gives back everything held.
    pub(crate) fn release_all(&mut self) {
        self.stats.release(mem::take(&mut self.held));
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.release_all();
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

    #[test]
    fn every_refusal_kind_has_its_counter() {
        let stats = SmtpStats::new();
        stats.refused(Refusal::RelayDenied);
        stats.refused(Refusal::RelayDenied);
        stats.refused(Refusal::Busy);
        for &kind in Refusal::ALL {
            let want = match kind {
                Refusal::RelayDenied => 2,
                Refusal::Busy => 1,
                _ => 0,
            };
            assert_eq!(value(&stats, kind.counter_name()), want, "{kind:?}");
        }
        assert_eq!(value(&stats, "SMTP.Recipients.Refused.RelayDenied"), 2);
        assert_eq!(value(&stats, "SMTP.Sessions.Inbound.Refused.Busy"), 1);
    }

    #[test]
    fn inflight_budget_is_shared_and_given_back() {
        let stats = SmtpStats::new();
        let mut first = InFlight::new(&stats, 100);
        assert!(first.cover(60));
        assert!(first.cover(40), "shrinking needs nothing");
        let mut second = InFlight::new(&stats, 100);
        assert!(second.cover(40));
        assert!(!second.cover(41), "60 + 41 > 100");
        assert_eq!(stats.inflight_bytes(), 100);
        assert!(!stats.inflight_fits(1, 100));
        drop(first);
        assert_eq!(value(&stats, "SMTP.Messages.InFlight.Bytes"), 40);
        assert!(second.cover(100));
        second.release_all();
        assert_eq!(stats.inflight_bytes(), 0);
        drop(second);
        assert_eq!(stats.inflight_bytes(), 0);
    }
}
