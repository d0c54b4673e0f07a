//! Every message event goes through here: counters for `show stat`, the
//! log line an administrator reads, and the routing event for the store.

use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering::Relaxed};

use console::StatValue;
use store::RoutingEvent;

/// `Log_MailRouting`, adjustable at run time with `set config`.
#[derive(Debug)]
pub struct Verbosity(AtomicU8);

impl Verbosity {
    pub fn new(level: u8) -> Verbosity {
        Verbosity(AtomicU8::new(level))
    }
    pub fn set(&self, level: u8) {
        self.0.store(level, Relaxed);
    }
    pub fn get(&self) -> u8 {
        self.0.load(Relaxed)
    }
    /// Whether messages of `level` (10 minimal .. 40 verbose) are logged.
    pub fn shows(&self, level: u8) -> bool {
        self.get() >= level
    }
}

const SIZE_BUCKETS: [(&str, u64); 7] = [
    ("Under_1KB", 1 << 10),
    ("1KB_to_10KB", 10 << 10),
    ("10KB_to_100KB", 100 << 10),
    ("100KB_to_1MB", 1 << 20),
    ("1MB_to_10MB", 10 << 20),
    ("10MB_to_100MB", 100 << 20),
    ("Over_100MB", u64::MAX),
];

/// The router's counters (reset when the router restarts; SPEC §10).
#[derive(Debug, Default)]
pub struct RouterStats {
    pub delivered: AtomicU64,
    pub delivered_bytes: AtomicU64,
    delivered_size: [AtomicU64; 7],
    deliver_ms_total: AtomicU64,
    deliver_ms_max: AtomicU64,
    deliver_ms_min: AtomicI64,
    hops_total: AtomicU64,
    hops_max: AtomicU64,
    pub transferred: AtomicU64,
    pub transferred_smtp: AtomicU64,
    pub transferred_bytes_smtp: AtomicU64,
    pub transfer_failures: AtomicU64,
    pub transfer_failures_smtp: AtomicU64,
    pub transferred_native: AtomicU64,
    pub transferred_bytes_native: AtomicU64,
    pub transfer_failures_native: AtomicU64,
    pub total_routed: AtomicU64,
    pub total_routed_smtp: AtomicU64,
    pub total_routed_native: AtomicU64,
    pub total_failures: AtomicU64,
    pub reports_failure: AtomicU64,
    pub delivery_active: AtomicU64,
    pub delivery_max: AtomicU64,
    pub transfer_active: AtomicU64,
    pub transfer_max: AtomicU64,
    pub transfer_concurrent_max: AtomicU64,
    pub transfer_concurrent_highest: AtomicU64,
}

impl RouterStats {
    pub fn new() -> RouterStats {
        let s = RouterStats::default();
        s.deliver_ms_min.store(-1, Relaxed);
        s
    }

    /// A message delivered into a mail file.
    pub fn delivered(&self, size: u64, deliver_ms: u64, hops: u32) {
        self.delivered.fetch_add(1, Relaxed);
        self.total_routed.fetch_add(1, Relaxed);
        self.delivered_bytes.fetch_add(size, Relaxed);
        if let Some(i) = SIZE_BUCKETS.iter().position(|(_, limit)| size < *limit) {
            self.delivered_size[i].fetch_add(1, Relaxed);
        }
        self.deliver_ms_total.fetch_add(deliver_ms, Relaxed);
        self.deliver_ms_max.fetch_max(deliver_ms, Relaxed);
        let ms = i64::try_from(deliver_ms).unwrap_or(i64::MAX);
        let _ = self
            .deliver_ms_min
            .fetch_update(Relaxed, Relaxed, |m| (m < 0 || ms < m).then_some(ms));
        self.hops_total.fetch_add(u64::from(hops), Relaxed);
        self.hops_max.fetch_max(u64::from(hops), Relaxed);
    }

    /// A message transferred to the next hop by SMTP.
    pub fn transferred_smtp(&self, size: u64) {
        self.transferred.fetch_add(1, Relaxed);
        self.transferred_smtp.fetch_add(1, Relaxed);
        self.transferred_bytes_smtp.fetch_add(size, Relaxed);
        self.total_routed.fetch_add(1, Relaxed);
        self.total_routed_smtp.fetch_add(1, Relaxed);
    }

    pub fn transfer_failed_smtp(&self) {
        self.transfer_failures.fetch_add(1, Relaxed);
        self.transfer_failures_smtp.fetch_add(1, Relaxed);
    }

    /// A message transferred to the next server of the domain (NRPC).
    pub fn transferred_native(&self, size: u64) {
        self.transferred.fetch_add(1, Relaxed);
        self.transferred_native.fetch_add(1, Relaxed);
        self.transferred_bytes_native.fetch_add(size, Relaxed);
        self.total_routed.fetch_add(1, Relaxed);
        self.total_routed_native.fetch_add(1, Relaxed);
    }

    pub fn transfer_failed_native(&self) {
        self.transfer_failures.fetch_add(1, Relaxed);
        self.transfer_failures_native.fetch_add(1, Relaxed);
    }

    /// A recipient that failed (a report follows, or the message is held or dead).
    pub fn failed(&self) {
        self.total_failures.fetch_add(1, Relaxed);
        self.total_routed.fetch_add(1, Relaxed);
    }

    pub fn report_sent(&self) {
        self.reports_failure.fetch_add(1, Relaxed);
    }

    /// The counters as `show stat` names them.
    pub fn snapshot(&self) -> Vec<(String, StatValue)> {
        let g = |a: &AtomicU64| StatValue::Int(i64::try_from(a.load(Relaxed)).unwrap_or(i64::MAX));
        let delivered = self.delivered.load(Relaxed);
        let avg = |total: u64| {
            StatValue::Int(
                i64::try_from(total.checked_div(delivered).unwrap_or(0)).unwrap_or(i64::MAX),
            )
        };
        let mut out: Vec<(String, StatValue)> = vec![
            ("Mail.Delivered".into(), g(&self.delivered)),
            (
                "Mail.TotalKBDelivered".into(),
                StatValue::Int(
                    i64::try_from(self.delivered_bytes.load(Relaxed) / 1024).unwrap_or(0),
                ),
            ),
            (
                "Mail.AverageDeliverTime".into(),
                avg(self.deliver_ms_total.load(Relaxed) / 1000),
            ),
            (
                "Mail.MaximumDeliverTime".into(),
                StatValue::Int(
                    i64::try_from(self.deliver_ms_max.load(Relaxed) / 1000).unwrap_or(0),
                ),
            ),
            (
                "Mail.MinimumDeliverTime".into(),
                StatValue::Int(self.deliver_ms_min.load(Relaxed).max(0) / 1000),
            ),
            (
                "Mail.AverageSizeDelivered".into(),
                avg(self.delivered_bytes.load(Relaxed)),
            ),
            (
                "Mail.AverageServerHops".into(),
                avg(self.hops_total.load(Relaxed)),
            ),
            ("Mail.MaximumServerHops".into(), g(&self.hops_max)),
            ("Mail.Transferred".into(), g(&self.transferred)),
            ("Mail.Transferred.SMTP".into(), g(&self.transferred_smtp)),
            (
                "Mail.TotalKBTransferred.SMTP".into(),
                StatValue::Int(
                    i64::try_from(self.transferred_bytes_smtp.load(Relaxed) / 1024).unwrap_or(0),
                ),
            ),
            ("Mail.Transferred.NRPC".into(), g(&self.transferred_native)),
            (
                "Mail.TotalKBTransferred.NRPC".into(),
                StatValue::Int(
                    i64::try_from(self.transferred_bytes_native.load(Relaxed) / 1024).unwrap_or(0),
                ),
            ),
            ("Mail.TransferFailures".into(), g(&self.transfer_failures)),
            (
                "Mail.TransferFailures.SMTP".into(),
                g(&self.transfer_failures_smtp),
            ),
            (
                "Mail.TransferFailures.NRPC".into(),
                g(&self.transfer_failures_native),
            ),
            ("Mail.TotalRouted".into(), g(&self.total_routed)),
            ("Mail.TotalRouted.SMTP".into(), g(&self.total_routed_smtp)),
            ("Mail.TotalRouted.NRPC".into(), g(&self.total_routed_native)),
            ("Mail.TotalFailures".into(), g(&self.total_failures)),
            ("Mail.Reports.Failure".into(), g(&self.reports_failure)),
            (
                "Mail.DeliveryThreads.Active".into(),
                g(&self.delivery_active),
            ),
            ("Mail.DeliveryThreads.Max".into(), g(&self.delivery_max)),
            ("Mail.DeliveryThreads.Total".into(), g(&self.delivery_max)),
            (
                "Mail.TransferThreads.Active".into(),
                g(&self.transfer_active),
            ),
            ("Mail.TransferThreads.Max".into(), g(&self.transfer_max)),
            ("Mail.TransferThreads.Total".into(), g(&self.transfer_max)),
            (
                "Mail.TransferThreads.Concurrent.Max".into(),
                g(&self.transfer_concurrent_max),
            ),
            (
                "Mail.TransferThreads.Concurrent.Highest".into(),
                g(&self.transfer_concurrent_highest),
            ),
        ];
        for (i, (name, _)) in SIZE_BUCKETS.iter().enumerate() {
            out.push((
                format!("Mail.DeliveredSize.{name}"),
                g(&self.delivered_size[i]),
            ));
        }
        out
    }
}

/// Build a routing event (SPEC §8).
#[allow(clippy::too_many_arguments)]
pub(crate) fn event(
    now: i64,
    message_id: &str,
    sender: &str,
    recipient: &str,
    server: &str,
    outcome: &str,
    detail: &str,
    hop: u32,
    size: u64,
) -> RoutingEvent {
    RoutingEvent {
        time: now,
        message_id: message_id.to_owned(),
        sender: sender.to_owned(),
        recipient: recipient.to_owned(),
        server: server.to_owned(),
        outcome: outcome.to_owned(),
        detail: detail.to_owned(),
        hop,
        size,
    }
}
