//! Outbound SMTP: per-destination queues (SPEC §5) and the transfer threads
//! that drain them through `transfer`.
//!
//! A queue is named by its destination (a foreign SMTP domain's virtual
//! domain, or the recipient's Internet domain) and holds mail box entries by
//! id, never message bodies: a destination that is down for a day costs a few
//! bytes per message here. States: Ready, Busy (transfers in progress), Retry
//! (attempt count, last error, next retry, growing from `initial_retry` to
//! `retry_cap`). A recipient still failing after `expire_after` gets a
//! Delivery Failure Report.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use console::{QueueLine, QueueState};
use routing::{Failure, SmtpVia};
use store::{MessageId, QueuedMessage, RecipientStatus, RecipientUpdate, Settlement};
use tokio::sync::{Notify, Semaphore};
use tracing::{info, warn};
use transfer::{Batch, Destination, RecipientResult, Transferer};

use crate::events::event;
use crate::snapshot::Snapshot;
use crate::work::{Router, now_ms};

/// Recipients of one message for one destination.
#[derive(Debug, Clone)]
pub(crate) struct Handoff {
    pub queue: String,
    pub via: SmtpVia,
    pub message: MessageId,
    pub recipients: Vec<String>,
    /// The message as routed, while it is cheap to keep (saves a read).
    pub copy: Option<Arc<QueuedMessage>>,
    /// Do not try before (a retry time recorded before a restart).
    pub not_before: Option<i64>,
    pub attempts: u32,
}

/// A message waiting in a queue: its id, the recipients for this destination,
/// and (for a short queue) the message itself.
type Entry = (MessageId, Vec<String>, Option<Arc<QueuedMessage>>);

/// Above this many waiting messages a queue keeps ids only.
const COPIES_UP_TO: usize = 2_000;

#[derive(Debug)]
struct DestQueue {
    via: SmtpVia,
    entries: VecDeque<Entry>,
    /// Messages being transferred now: never two transfers of one message at once.
    in_flight: Vec<MessageId>,
    busy: u32,
    attempts: u32,
    last_error: Option<String>,
    next_retry: Option<i64>,
    waiting_for_dns: bool,
}

/// The per-destination queues and the transfer threads.
pub(crate) struct Outbound {
    queues: Mutex<BTreeMap<String, DestQueue>>,
    wake: Notify,
    transferer: ArcSwap<Option<(TransferKey, Transferer)>>,
    threads: ArcSwap<Semaphore>,
}

/// What the transfer client is built from; rebuilt when it changes.
#[derive(Debug, Clone, PartialEq)]
struct TransferKey {
    helo: String,
    per_target: usize,
    port: u16,
    hosts: bool,
    dns: Vec<std::net::SocketAddr>,
    debug: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Outbound {
    pub fn new(threads: usize) -> Outbound {
        Outbound {
            queues: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
            transferer: ArcSwap::from_pointee(None),
            threads: ArcSwap::from_pointee(Semaphore::new(threads.max(1))),
        }
    }

    /// The transfer client for this snapshot's configuration.
    fn transferer(&self, snap: &Snapshot, self_debug: u8) -> Result<Transferer, String> {
        let c = &snap.config;
        let key = TransferKey {
            helo: snap.server.hostname.clone(),
            per_target: usize::from(c.max_concurrent_transfers).max(1),
            port: c.outbound_smtp_port,
            hosts: c.host_name_resolution == directory::HostNameResolution::Hosts,
            dns: c.dns_servers.clone(),
            debug: self_debug > 0,
        };
        if let Some((k, t)) = self.transferer.load().as_ref()
            && *k == key
        {
            return Ok(t.clone());
        }
        let cfg = transfer::TransferConfig {
            helo_name: key.helo.clone(),
            outbound_port: key.port,
            host_name_resolution: if key.hosts {
                transfer::Resolution::Hosts("/etc/hosts".into())
            } else {
                transfer::Resolution::Dns
            },
            dns_servers: key.dns.clone(),
            client_debug: key.debug,
            ..transfer::TransferConfig::default()
        };
        let cache = transfer::ConnectionCache {
            per_target: key.per_target,
            ..transfer::ConnectionCache::default()
        };
        let t = Transferer::with_cache(cfg, cache).map_err(|e| e.to_string())?;
        self.transferer.store(Arc::new(Some((key, t.clone()))));
        Ok(t)
    }

    pub fn enqueue(&self, h: Handoff) {
        let now = now_ms();
        {
            let mut queues = lock(&self.queues);
            let q = queues.entry(h.queue.clone()).or_insert_with(|| DestQueue {
                via: h.via.clone(),
                entries: VecDeque::new(),
                in_flight: Vec::new(),
                busy: 0,
                attempts: 0,
                last_error: None,
                next_retry: None,
                waiting_for_dns: false,
            });
            q.via = h.via;
            if let Some(t) = h.not_before.filter(|t| *t > now)
                && q.next_retry.is_none_or(|n| n < t)
                && q.entries.is_empty()
                && q.busy == 0
            {
                q.next_retry = Some(t);
                q.attempts = q.attempts.max(h.attempts);
            }
            if !q.in_flight.contains(&h.message)
                && !q.entries.iter().any(|(id, _, _)| *id == h.message)
            {
                let copy = h.copy.filter(|_| q.entries.len() < COPIES_UP_TO);
                q.entries.push_back((h.message, h.recipients, copy));
            }
        }
        self.wake.notify_one();
    }

    /// `route DEST` / `route *`: retry now.
    pub fn route_now(&self, dest: Option<&str>) -> usize {
        let mut n = 0;
        for (name, q) in lock(&self.queues).iter_mut() {
            if dest.is_none_or(|d| d == "*" || d.eq_ignore_ascii_case(name)) {
                q.next_retry = None;
                n += 1;
            }
        }
        self.wake.notify_one();
        n
    }

    /// Lines of `tell router show queues`.
    pub fn queue_lines(&self) -> Vec<QueueLine> {
        lock(&self.queues)
            .iter()
            .filter(|(_, q)| q.busy > 0 || !q.entries.is_empty())
            .map(|(name, q)| QueueLine {
                msgs: (q.entries.len() + q.busy as usize) as u64,
                state: if q.busy > 0 {
                    QueueState::Busy(q.busy)
                } else if q.next_retry.is_some() {
                    QueueState::Retry(q.attempts)
                } else {
                    QueueState::Ready
                },
                via: "SMTP".into(),
                destination: match &q.via {
                    SmtpVia::Relay(r) => format!("{name} (relay {r})"),
                    SmtpVia::Mx(_) => format!("{name} (MX)"),
                },
                last_error: q.next_retry.and(q.last_error.clone()),
                next_retry: q.next_retry,
            })
            .collect()
    }

    /// Messages waiting in outbound queues, and those whose destination's DNS failed.
    pub fn waiting(&self) -> (u64, u64) {
        let queues = lock(&self.queues);
        let all = queues
            .values()
            .map(|q| q.entries.len() as u64 + u64::from(q.busy))
            .sum();
        let dns = queues
            .values()
            .filter(|q| q.waiting_for_dns)
            .map(|q| q.entries.len() as u64)
            .sum();
        (all, dns)
    }

    pub fn set_threads(&self, n: usize) {
        if self.threads.load().available_permits() != n {
            self.threads.store(Arc::new(Semaphore::new(n.max(1))));
        }
    }
}

impl Router {
    /// The dispatcher: start transfers from Ready queues, within the thread limits.
    pub(crate) async fn dispatch(self) {
        let out = self.outbound().clone();
        loop {
            let snap = self.shared().snapshot.load_full();
            let per_queue = u32::from(snap.config.max_concurrent_transfers).max(1);
            let now = now_ms();
            let mut started = Vec::new();
            let sem = out.threads.load_full();
            {
                let mut queues = lock(&out.queues);
                'queues: for (name, q) in queues.iter_mut() {
                    if q.next_retry.is_some_and(|t| t > now) {
                        continue;
                    }
                    q.next_retry = None;
                    while q.busy < per_queue {
                        let Some(entry) = q.entries.front() else {
                            break;
                        };
                        let Ok(permit) = sem.clone().try_acquire_owned() else {
                            break 'queues;
                        };
                        let (id, rcpts, copy) = entry.clone();
                        q.entries.pop_front();
                        q.in_flight.push(id);
                        q.busy += 1;
                        started.push((name.clone(), q.via.clone(), id, rcpts, copy, permit));
                    }
                }
            }
            let active = (sem_total(&snap) - sem.available_permits()) as u64;
            let stats = &self.shared().stats;
            stats.transfer_active.store(active, Relaxed);
            stats.transfer_concurrent_highest.fetch_max(active, Relaxed);
            for (queue, via, id, rcpts, copy, permit) in started {
                let router = self.clone();
                tokio::spawn(async move {
                    router.transfer_one(&queue, via, id, rcpts, copy).await;
                    drop(permit);
                    router.outbound().wake.notify_one();
                });
            }
            tokio::select! {
                _ = out.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn transfer_one(
        &self,
        queue: &str,
        via: SmtpVia,
        id: MessageId,
        rcpts: Vec<String>,
        copy: Option<Arc<QueuedMessage>>,
    ) {
        let out = self.outbound().clone();
        let done = |error: Option<(String, bool, i64)>| {
            let mut queues = lock(&out.queues);
            if let Some(q) = queues.get_mut(queue) {
                q.busy = q.busy.saturating_sub(1);
                q.in_flight.retain(|m| *m != id);
                match error {
                    None => {
                        q.attempts = 0;
                        q.last_error = None;
                        q.waiting_for_dns = false;
                    }
                    Some((e, dns, next)) => {
                        q.attempts += 1;
                        q.last_error = Some(e);
                        q.waiting_for_dns = dns;
                        q.next_retry = Some(next);
                    }
                }
            }
        };
        let stored = match copy {
            Some(m) => Ok(Some(m)),
            None => self.shared().store.message(id).map(|m| m.map(Arc::new)),
        };
        let msg = match stored {
            Ok(Some(m)) if m.state == store::MessageState::Pending => m,
            Ok(_) => return done(None),
            Err(e) => {
                warn!(target: "router", "Router: cannot read message {id} for transfer: {e}");
                let next = now_ms() + 60_000;
                return done(Some((e.to_string(), false, next)));
            }
        };
        // Only recipients still waiting for this queue (their outcome may be recorded already).
        let rcpts: Vec<String> = rcpts
            .into_iter()
            .filter(|r| {
                msg.recipients.iter().any(|q| {
                    q.address.eq_ignore_ascii_case(r) && q.status == RecipientStatus::Pending
                })
            })
            .collect();
        if rcpts.is_empty() {
            return done(None);
        }
        let snap = self.shared().snapshot.load_full();
        let transferer = match out.transferer(&snap, self.shared().client_debug.get()) {
            Ok(t) => t,
            Err(e) => {
                let next = now_ms() + 60_000;
                warn!(target: "router", "Router: SMTP client not available: {e}");
                return done(Some((e, false, next)));
            }
        };
        let dest = match &via {
            SmtpVia::Relay(r) => Destination::Relay(r.clone()),
            SmtpVia::Mx(d) => Destination::Mx(d.clone()),
        };
        if self.shared().verbosity.shows(30) {
            info!(target: "router", "Router: Transferring mail to domain {queue} (host {}) via SMTP",
                match &via { SmtpVia::Relay(r) => r.to_string(), SmtpVia::Mx(d) => format!("MX of {d}") });
        }
        let data = match self.shared().store.message_data(id) {
            Ok(Some(data)) => data,
            Ok(None) => return done(None),
            Err(e) => {
                warn!(target: "router", "Router: cannot read message {id} for transfer: {e}");
                let next = now_ms() + 60_000;
                return done(Some((e.to_string(), false, next)));
            }
        };
        let size = msg.size;
        let batch = Batch {
            from: msg.from.clone(),
            recipients: rcpts.clone(),
            body_8bit: data.iter().any(|b| *b >= 0x80),
            data: Arc::new(data),
            size,
        };
        self.shared().stats.transfer_active.fetch_add(0, Relaxed);
        let report = transferer.send(&dest, &batch).await;

        let now = now_ms();
        let server = snap.server.name.to_string();
        let msg_id = msg.message_id.clone().unwrap_or_else(|| msg.id.to_string());
        let mut s = Settlement {
            message: id,
            ..Settlement::default()
        };
        let mut failures = Vec::new();
        let mut transient: Option<String> = None;
        let mut transferred = false;
        let attempts = msg
            .recipients
            .iter()
            .filter(|r| rcpts.iter().any(|x| x.eq_ignore_ascii_case(&r.address)))
            .map(|r| r.attempts)
            .max()
            .unwrap_or(0)
            + 1;
        let delay = retry_delay(&snap.config, attempts);
        let expired = now - msg.received_at
            > i64::try_from(snap.config.expire_after.as_millis()).unwrap_or(i64::MAX);
        for (rcpt, result) in report.results {
            match result {
                RecipientResult::Delivered { host, reply } => {
                    transferred = true;
                    s.events.push(event(
                        now,
                        &msg_id,
                        &msg.from,
                        &rcpt,
                        &server,
                        "transferred",
                        &format!("{host}: {reply}"),
                        msg.hop_count,
                        size,
                    ));
                    s.outcomes.push((
                        rcpt,
                        RecipientUpdate::Final {
                            status: RecipientStatus::Transferred,
                            reason: Some(host),
                        },
                    ));
                }
                RecipientResult::Permanent { reply } => {
                    self.shared().stats.transfer_failed_smtp();
                    let status = enhanced_status(&reply);
                    failures.push((
                        rcpt,
                        Failure {
                            reason: reply,
                            status,
                        },
                    ));
                }
                RecipientResult::Transient { reason } => {
                    self.shared().stats.transfer_failed_smtp();
                    if expired {
                        failures.push((rcpt, Failure {
                            reason: format!("Message expired: not delivered within {}.  Last error: {reason}", directory::format_duration(snap.config.expire_after)),
                            status: "4.4.7",
                        }));
                    } else {
                        s.events.push(event(
                            now,
                            &msg_id,
                            &msg.from,
                            &rcpt,
                            &server,
                            "retry",
                            &reason,
                            msg.hop_count,
                            size,
                        ));
                        s.outcomes.push((
                            rcpt,
                            RecipientUpdate::Retry {
                                error: reason.clone(),
                                next_attempt: now + delay,
                                queue: Some(queue.to_owned()),
                            },
                        ));
                        transient = Some(reason);
                    }
                }
            }
        }
        if transferred {
            self.shared().stats.transferred_smtp(size);
            if self.shared().verbosity.shows(40) {
                info!(target: "router", "Router: Transferred 1 messages to {queue} via SMTP");
            }
        }
        if !failures.is_empty() {
            self.settle_failures(&snap, &msg, &msg_id, now, failures, &mut s);
        }
        let retry_rcpts: Vec<String> = s
            .outcomes
            .iter()
            .filter(|(_, u)| matches!(u, RecipientUpdate::Retry { .. }))
            .map(|(a, _)| a.clone())
            .collect();
        match self.shared().store.settle(vec![s]).await {
            Ok(outcomes) => {
                for o in outcomes {
                    for m in o.new_messages {
                        let r = self.clone();
                        tokio::spawn(async move { r.submit(m).await });
                    }
                }
            }
            Err(e) => {
                warn!(target: "router", "Router: cannot record the transfer of message {id}: {e}")
            }
        }
        match transient {
            Some(err) => {
                if self.shared().verbosity.shows(20) {
                    warn!(target: "router", "Router: No messages transferred to {queue} via SMTP: {err}");
                }
                // The message waits in its queue for the retry.
                {
                    let mut queues = lock(&out.queues);
                    if let Some(q) = queues.get_mut(queue) {
                        // Waiting for a retry: keep the id, not the message.
                        q.entries.push_front((id, retry_rcpts, None));
                    }
                }
                done(Some((err, report.waiting_for_dns, now + delay)));
            }
            None => done(None),
        }
    }
}

impl Router {
    /// The SMTP part of `trace`: the hosts the router would try, in order,
    /// each probed with a TCP connection (nothing is sent).
    pub async fn trace_smtp(&self, via: &SmtpVia) -> Vec<String> {
        let snap = self.shared().snapshot.load_full();
        let mut out = vec!["Enabling name service requests and probes...".to_owned()];
        let t = match self
            .outbound()
            .transferer(&snap, self.shared().client_debug.get())
        {
            Ok(t) => t,
            Err(e) => {
                out.push(format!("SMTP client not available: {e}"));
                return out;
            }
        };
        let (dest, shown) = match via {
            SmtpVia::Relay(r) => (Destination::Relay(r.clone()), format!("relay host {r}")),
            SmtpVia::Mx(d) => (Destination::Mx(d.clone()), format!("domain {d}")),
        };
        let levels = match t.plan(&dest).await {
            Ok(levels) => levels,
            Err(e) => {
                out.push(format!("No path found to {shown}: {e}"));
                return out;
            }
        };
        for (i, level) in levels.iter().enumerate() {
            let kind = if level.len() > 1 {
                ", load balanced"
            } else {
                ""
            };
            out.push(format!("Preference level {}{kind}:", i + 1));
            for target in level {
                out.push(format!(
                    "Using address '{}' for {} on TCPIP",
                    target.addr, target.host
                ));
                out.push(format!("Connecting to {} over TCPIP", target.host));
                let probe = tokio::time::timeout(
                    Duration::from_secs(5),
                    tokio::net::TcpStream::connect(target.addr),
                )
                .await;
                out.push(match probe {
                    Ok(Ok(_)) => format!("Connected to server {}", target.host),
                    Ok(Err(e)) => format!("Unable to connect to {} on TCPIP ({e})", target.host),
                    Err(_) => format!("Server {} is not responding", target.host),
                });
            }
        }
        out
    }
}

fn sem_total(snap: &Snapshot) -> usize {
    usize::from(snap.config.transfer_threads).max(1)
}

/// `initial_retry` doubled per failed attempt, capped at `retry_cap` (milliseconds).
pub(crate) fn retry_delay(config: &directory::Config, attempts: u32) -> i64 {
    let base = config.initial_retry.as_millis();
    let cap = config.retry_cap.as_millis().max(base);
    let delay = base.saturating_mul(1u128 << attempts.saturating_sub(1).min(20));
    i64::try_from(delay.min(cap)).unwrap_or(i64::MAX)
}

/// The RFC 3463 status in an SMTP reply (`550 5.1.1 ...`), or `5.0.0`.
fn enhanced_status(reply: &str) -> &'static str {
    const KNOWN: [&str; 12] = [
        "5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.2.1", "5.2.2", "5.2.3", "5.3.4", "5.4.4", "5.7.1",
        "5.7.0", "5.4.7",
    ];
    KNOWN
        .iter()
        .find(|k| reply.split_whitespace().any(|w| w == **k))
        .copied()
        .unwrap_or("5.0.0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_grows_to_the_cap() {
        let c = directory::Config {
            initial_retry: Duration::from_secs(60),
            retry_cap: Duration::from_secs(300),
            ..directory::Config::default()
        };
        assert_eq!(retry_delay(&c, 1), 60_000);
        assert_eq!(retry_delay(&c, 2), 120_000);
        assert_eq!(retry_delay(&c, 3), 240_000);
        assert_eq!(retry_delay(&c, 4), 300_000);
        assert_eq!(retry_delay(&c, 40), 300_000);
    }

    #[test]
    fn status_from_reply() {
        assert_eq!(
            enhanced_status("SMTP Protocol Returned a Permanent Error 550 5.1.1 no such user"),
            "5.1.1"
        );
        assert_eq!(enhanced_status("550 no"), "5.0.0");
    }
}
