//! Outbound SMTP: per-destination queues (SPEC §5) and the transfer threads
//! that drain them through `transfer`.
//!
//! A queue is named by its destination (a foreign SMTP domain's virtual
//! domain, or the recipient's Internet domain) and holds mail box rows by
//! id — (message, recipients) — never bodies: a destination down for a day
//! costs a few bytes per message here. A recipient is in a queue only after
//! its `Waiting` row committed, so a restart rebuilds every queue from the
//! rows alone ([`Handoff::from_rows`]). The body is read from the store when
//! a transfer starts, and dropped when it ends.
//!
//! Queue states are a type ([`QueueState`]): Ready, Wait (a schedule or
//! threshold), Retry (attempts, last error, next retry growing from
//! `initial_retry` to `retry_cap`); a queue with transfers running shows
//! Busy. A recipient still failing after `expire_after` gets a Delivery
//! Failure Report. A transfer whose outcome is uncertain (the message was
//! sent, no final reply came) is a Retry of the same host's queue, never a
//! failover that would make a second copy. A settlement that fails after a
//! transfer is retried until it is recorded.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::Duration;

use arc_swap::ArcSwap;
use console::QueueLine;
use routing::{Failure, SmtpVia, Via};
use store::{MessageId, Priority, QueuedMessage, RecipientStatus, RecipientUpdate, Settlement};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tracing::{error, info, warn};
use transfer::{Batch, Destination, RecipientResult, Transferer};

use crate::events::event;
use crate::plan::{Plan, Planner, message_label};
use crate::snapshot::Snapshot;
use crate::work::{Router, blocking, lock, now_ms};

/// Recipients of one message for one destination, each a committed Waiting row.
#[derive(Debug, Clone)]
pub(crate) struct Handoff {
    pub queue: String,
    pub via: Via,
    pub message: MessageId,
    pub recipients: Vec<String>,
    pub size: u64,
    /// Do not try before (a retry time recorded before a restart).
    pub not_before: Option<i64>,
    pub attempts: u32,
    pub priority: Priority,
}

impl Handoff {
    /// The hand-offs a message's Waiting rows stand for: one per queue.
    pub(crate) fn from_rows(msg: &QueuedMessage) -> Vec<Handoff> {
        let mut out: Vec<Handoff> = Vec::new();
        for r in msg
            .recipients
            .iter()
            .filter(|r| r.status == RecipientStatus::Waiting)
        {
            let (Some(queue), Some(via)) =
                (r.queue.clone(), r.via.as_deref().and_then(Via::decode))
            else {
                warn!(target: "router", "Router: message {} recipient {} waits without a queue; it stays in the mail box", msg.id, r.address);
                continue;
            };
            match out.iter_mut().find(|h| h.queue == queue) {
                Some(h) => {
                    h.recipients.push(r.address.clone());
                    h.attempts = h.attempts.max(r.attempts);
                    h.not_before = h.not_before.max(r.next_attempt);
                }
                None => out.push(Handoff {
                    queue,
                    via,
                    message: msg.id,
                    recipients: vec![r.address.clone()],
                    size: msg.size,
                    not_before: r.next_attempt,
                    attempts: r.attempts,
                    priority: msg.priority,
                }),
            }
        }
        out
    }
}

/// A message waiting in a queue: its id and the recipients for this destination.
#[derive(Debug, Clone)]
struct Entry {
    message: MessageId,
    recipients: Vec<String>,
    size: u64,
    priority: Priority,
}

/// Where a queue stands when no transfer of it runs (SPEC §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QueueState {
    Ready,
    /// Held back by its connection document's schedule until `until`, or
    /// until `route_at_once_if` messages wait, or until `route` says so.
    /// High-priority mail never waits.
    Wait {
        until: Option<i64>,
        reason: String,
    },
    /// The last transfer failed; the next one starts at `next_retry`.
    Retry {
        attempts: u32,
        last_error: String,
        next_retry: i64,
        waiting_for_dns: bool,
    },
}

#[derive(Debug)]
struct DestQueue {
    via: Via,
    entries: VecDeque<Entry>,
    /// Every message of the queue, waiting or in transfer: a message is in
    /// a queue once, and never in two transfers at a time.
    members: HashSet<MessageId>,
    /// Messages being transferred now.
    in_flight: HashSet<MessageId>,
    /// Messages handed to the queue again while in transfer: queued again after it.
    again: HashSet<MessageId>,
    state: QueueState,
    /// The connection document's schedule, when the queue has one.
    gate: Option<crate::schedule::Gate>,
    /// Waiting entries of high and of low priority (the rest are normal).
    high: usize,
    low: usize,
    /// `route` was said: low-priority mail goes too, until the queue empties.
    forced: bool,
    /// Transfers of this queue holding a connection now (the per-queue
    /// limit); a transfer recording its outcome no longer counts.
    sending: u32,
}

impl DestQueue {
    fn new(via: Via) -> DestQueue {
        DestQueue {
            via,
            entries: VecDeque::new(),
            members: HashSet::new(),
            in_flight: HashSet::new(),
            again: HashSet::new(),
            state: QueueState::Ready,
            gate: None,
            high: 0,
            low: 0,
            forced: false,
            sending: 0,
        }
    }

    fn push_back(&mut self, e: Entry) {
        self.count(e.priority, true);
        self.entries.push_back(e);
    }

    fn push_front(&mut self, e: Entry) {
        self.count(e.priority, true);
        self.entries.push_front(e);
    }

    fn count(&mut self, p: Priority, add: bool) {
        let n = match p {
            Priority::High => &mut self.high,
            Priority::Low => &mut self.low,
            Priority::Normal => return,
        };
        if add {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
        }
    }

    /// The next entry a transfer may start with: high priority always;
    /// normal when the queue is due; low when it is due and the
    /// low-priority window is open (or `route` was said). In order, never
    /// a message already in transfer.
    fn take_next(&mut self, due: bool, low_window: bool) -> Option<Entry> {
        let low_ok = due && (low_window || self.forced);
        let allowed = |e: &Entry| match e.priority {
            Priority::High => true,
            Priority::Normal => due,
            Priority::Low => low_ok,
        };
        let idx = if due && (low_ok || self.low == 0) {
            // Everything waiting may go: the front, unless it is in transfer.
            let front = self.entries.front()?;
            if self.in_flight.contains(&front.message) {
                return None;
            }
            0
        } else if !due && self.high == 0 {
            return None;
        } else {
            self.entries
                .iter()
                .position(|e| allowed(e) && !self.in_flight.contains(&e.message))?
        };
        let e = self.entries.remove(idx)?;
        self.count(e.priority, false);
        Some(e)
    }

    fn remove_message(&mut self, id: MessageId) {
        if self.members.remove(&id) {
            let (mut high, mut low) = (0, 0);
            self.entries.retain(|e| {
                let keep = e.message != id;
                if !keep {
                    match e.priority {
                        Priority::High => high += 1,
                        Priority::Low => low += 1,
                        Priority::Normal => {}
                    }
                }
                keep
            });
            self.high = self.high.saturating_sub(high);
            self.low = self.low.saturating_sub(low);
        }
    }

    /// A message joined the queue: a queue with a schedule that was idle
    /// waits for its next scheduled time, and one holding
    /// `route_at_once_if` messages goes at once.
    fn apply_gate(&mut self, now: i64) {
        let Some(gate) = &self.gate else {
            if matches!(self.state, QueueState::Wait { .. }) {
                self.state = QueueState::Ready;
            }
            return;
        };
        let waiting = self.members.len();
        if waiting >= gate.threshold as usize {
            if matches!(self.state, QueueState::Wait { .. }) {
                self.state = QueueState::Ready;
            }
            return;
        }
        let idle = self.in_flight.is_empty() && waiting == 1;
        if self.state == QueueState::Ready && idle {
            let local = chrono::Local::now();
            let until =
                crate::schedule::next_slot(&gate.schedule, local).map(|t| t.timestamp_millis());
            if until.is_none_or(|t| t > now + 1000) {
                self.state = QueueState::Wait {
                    until,
                    reason: crate::schedule::describe(gate, waiting),
                };
            }
        } else if let QueueState::Wait { until, .. } = self.state {
            self.state = QueueState::Wait {
                until,
                reason: crate::schedule::describe(gate, waiting),
            };
        }
    }

    /// Whether a transfer may start now.
    fn due(&self, now: i64) -> bool {
        match &self.state {
            QueueState::Ready => true,
            QueueState::Retry { next_retry, .. } => *next_retry <= now,
            QueueState::Wait { until, .. } => until.is_some_and(|t| t <= now),
        }
    }

    fn busy(&self) -> u32 {
        u32::try_from(self.in_flight.len()).unwrap_or(u32::MAX)
    }
}

/// The transfer-thread limit: ONE semaphore, resized in place
/// (`add_permits` / `forget_permits`); permits that could not be forgotten
/// while held are owed and forgotten as their transfers end.
struct Threads {
    sem: Arc<Semaphore>,
    total: AtomicUsize,
    owed: AtomicUsize,
    active: AtomicUsize,
}

impl Threads {
    fn new(n: usize) -> Threads {
        let n = n.max(1);
        Threads {
            sem: Arc::new(Semaphore::new(n)),
            total: AtomicUsize::new(n),
            owed: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
        }
    }

    fn resize(&self, n: usize) {
        let n = n.max(1);
        let total = self.total.swap(n, SeqCst);
        if n > total {
            let mut grow = n - total;
            // Cancel what is still owed before adding permits.
            let _ = self.owed.fetch_update(SeqCst, SeqCst, |owed| {
                let paid = owed.min(grow);
                grow -= paid;
                Some(owed - paid)
            });
            self.sem.add_permits(grow);
        } else if n < total {
            let shrink = total - n;
            let forgotten = self.sem.forget_permits(shrink);
            self.owed.fetch_add(shrink - forgotten, SeqCst);
        }
    }

    fn available(&self) -> usize {
        self.sem.available_permits()
    }

    fn try_start(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.sem.clone().try_acquire_owned().ok()?;
        self.active.fetch_add(1, SeqCst);
        Some(permit)
    }

    fn finish(&self, permit: OwnedSemaphorePermit) {
        self.active.fetch_sub(1, SeqCst);
        let owed = self
            .owed
            .fetch_update(SeqCst, SeqCst, |owed| owed.checked_sub(1));
        if owed.is_ok() {
            permit.forget();
        }
    }
}

/// The per-destination queues and the transfer threads.
pub(crate) struct Outbound {
    queues: Mutex<BTreeMap<String, DestQueue>>,
    wake: Notify,
    transferer: ArcSwap<Option<(TransferKey, Transferer)>>,
    threads: Threads,
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

impl Outbound {
    pub fn new(threads: usize) -> Outbound {
        Outbound {
            queues: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
            transferer: ArcSwap::from_pointee(None),
            threads: Threads::new(threads),
        }
    }

    /// The transfer client for this snapshot's configuration.
    fn transferer(&self, snap: &Snapshot, self_debug: u8) -> Result<Transferer, String> {
        let c = &snap.config;
        let key = TransferKey {
            helo: snap.server.hostname.clone(),
            // Idle connections kept per target: as many as may run to one
            // (a next server of the domain may take every transfer thread).
            per_target: usize::from(c.max_concurrent_transfers.max(c.transfer_threads)).max(1),
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

    /// Puts committed Waiting rows in their queue (once per message and
    /// queue); `snap` says which connection document governs the queue.
    pub fn enqueue(&self, h: Handoff, snap: &Snapshot) {
        let now = now_ms();
        let gate = crate::schedule::gate_for(snap, &h.via, &h.queue);
        {
            let mut queues = lock(&self.queues);
            let q = queues
                .entry(h.queue.clone())
                .or_insert_with(|| DestQueue::new(h.via.clone()));
            q.via = h.via;
            q.gate = gate;
            if let Some(t) = h.not_before.filter(|t| *t > now)
                && q.state == QueueState::Ready
                && q.members.is_empty()
            {
                q.state = QueueState::Retry {
                    attempts: h.attempts,
                    last_error: "waiting for the retry time recorded before the restart".into(),
                    next_retry: t,
                    waiting_for_dns: false,
                };
            }
            if q.members.insert(h.message) {
                q.push_back(Entry {
                    message: h.message,
                    recipients: h.recipients,
                    size: h.size,
                    priority: h.priority,
                });
                q.apply_gate(now);
            } else if q.in_flight.contains(&h.message) {
                q.again.insert(h.message);
            }
        }
        self.wake.notify_one();
    }

    /// `tell router delete`: the message leaves every queue now.
    pub fn forget(&self, id: MessageId) {
        for q in lock(&self.queues).values_mut() {
            q.remove_message(id);
        }
    }

    /// `route DEST` / `route *`: retry now.
    pub fn route_now(&self, dest: Option<&str>) -> usize {
        let mut n = 0;
        for (name, q) in lock(&self.queues).iter_mut() {
            if dest.is_none_or(|d| d == "*" || d.eq_ignore_ascii_case(name)) {
                q.state = QueueState::Ready;
                q.forced = true;
                n += 1;
            }
        }
        self.wake.notify_one();
        n
    }

    /// Lines of `tell router show queues`; `low_window` is the configured
    /// low-priority window (a queue holding only low-priority mail outside
    /// it shows Wait).
    pub fn queue_lines(&self, low_window: directory::TimeWindow) -> Vec<QueueLine> {
        let low_open = crate::schedule::in_window(low_window, &chrono::Local::now());
        lock(&self.queues)
            .iter()
            .filter(|(_, q)| !q.members.is_empty())
            .map(|(name, q)| {
                let only_low = !q.entries.is_empty() && q.low == q.entries.len();
                let (state, last_error, next_retry) = match (&q.state, q.busy()) {
                    (_, busy) if busy > 0 => (console::QueueState::Busy(busy), None, None),
                    (QueueState::Ready, _) if only_low && !low_open && !q.forced => (
                        console::QueueState::Wait,
                        Some(format!("the low-priority window {low_window}")),
                        None,
                    ),
                    (QueueState::Ready, _) => (console::QueueState::Ready, None, None),
                    (QueueState::Wait { until, reason }, _) => {
                        (console::QueueState::Wait, Some(reason.clone()), *until)
                    }
                    (
                        QueueState::Retry {
                            attempts,
                            last_error,
                            next_retry,
                            ..
                        },
                        _,
                    ) => (
                        console::QueueState::Retry(*attempts),
                        Some(last_error.clone()),
                        Some(*next_retry),
                    ),
                };
                QueueLine {
                    msgs: q.members.len() as u64,
                    state,
                    via: q.via.transport().into(),
                    destination: match &q.via {
                        Via::Smtp(SmtpVia::Relay(r)) => format!("{name} (relay {r})"),
                        Via::Smtp(SmtpVia::Mx(_)) => format!("{name} (MX)"),
                        Via::Native(server) => server.clone(),
                    },
                    last_error,
                    next_retry,
                }
            })
            .collect()
    }

    /// Messages waiting in outbound queues, and those whose destination's DNS failed.
    pub fn waiting(&self) -> (u64, u64) {
        let queues = lock(&self.queues);
        let all = queues.values().map(|q| q.members.len() as u64).sum();
        let dns = queues
            .values()
            .filter(|q| {
                matches!(
                    q.state,
                    QueueState::Retry {
                        waiting_for_dns: true,
                        ..
                    }
                )
            })
            .map(|q| q.members.len() as u64)
            .sum();
        (all, dns)
    }

    pub fn set_threads(&self, n: usize) {
        self.threads.resize(n);
        self.wake.notify_one();
    }

    /// A transfer of `id` ended: out of flight, out of the queue unless it
    /// waits again (`retry`), and the queue's state says how it went.
    fn finished(&self, queue: &str, id: MessageId, outcome: Finished) {
        let mut queues = lock(&self.queues);
        let Some(q) = queues.get_mut(queue) else {
            return;
        };
        q.in_flight.remove(&id);
        let requeued = q.again.remove(&id) && q.members.contains(&id);
        if requeued {
            // More rows joined during the transfer: one more pass over its rows.
            q.push_back(Entry {
                message: id,
                recipients: Vec::new(),
                size: 0,
                priority: Priority::Normal,
            });
            if !matches!(outcome, Finished::Retry { .. }) {
                return;
            }
        }
        match outcome {
            Finished::Done => {
                q.members.remove(&id);
                if matches!(q.state, QueueState::Retry { .. }) && q.in_flight.is_empty() {
                    q.state = QueueState::Ready;
                }
            }
            Finished::Succeeded => {
                q.members.remove(&id);
                if !matches!(q.state, QueueState::Wait { .. }) {
                    q.state = QueueState::Ready;
                }
            }
            Finished::Retry {
                recipients,
                size,
                priority,
                error,
                next_retry,
                waiting_for_dns,
            } => {
                if q.members.contains(&id) && !requeued {
                    if recipients.is_empty() {
                        // Every recipient moved to another queue.
                        q.members.remove(&id);
                    } else {
                        // Waiting for the retry: the id goes back to the front.
                        q.push_front(Entry {
                            message: id,
                            recipients,
                            size,
                            priority,
                        });
                    }
                }
                let attempts = match &q.state {
                    QueueState::Retry { attempts, .. } => attempts + 1,
                    _ => 1,
                };
                q.state = QueueState::Retry {
                    attempts,
                    last_error: error,
                    next_retry,
                    waiting_for_dns,
                };
            }
        }
    }
}

/// A transfer's thread and its place under its queue's limit: given back
/// as soon as the message went (or could not go), before the outcome is
/// recorded, so the next transfer need not wait for that write.
struct Slot {
    out: Arc<Outbound>,
    queue: String,
    permit: Option<OwnedSemaphorePermit>,
}

impl Slot {
    fn release(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        if let Some(q) = lock(&self.out.queues).get_mut(&self.queue) {
            q.sending = q.sending.saturating_sub(1);
        }
        self.out.threads.finish(permit);
        self.out.wake.notify_one();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
    }
}

/// How one transfer ended, for its queue.
enum Finished {
    /// Nothing (more) to send for it: recorded, deleted, held.
    Done,
    /// Sent: the queue is Ready again.
    Succeeded,
    /// Back in the queue until `next_retry`.
    Retry {
        recipients: Vec<String>,
        size: u64,
        priority: Priority,
        error: String,
        next_retry: i64,
        waiting_for_dns: bool,
    },
}

impl Router {
    /// The dispatcher: start transfers from due queues, within the thread limits.
    pub(crate) async fn dispatch(self) {
        let out = self.outbound().clone();
        loop {
            let snap = self.shared().snapshot.load_full();
            // "Maximum concurrent transfer threads" bounds what one SMTP
            // destination gets; the next server of the domain may take
            // every transfer thread.
            let per_smtp = u32::from(snap.config.max_concurrent_transfers).max(1);
            let per_native = u32::from(snap.config.transfer_threads).max(per_smtp);
            let now = now_ms();
            let mut started = Vec::new();
            let low_window =
                crate::schedule::in_window(snap.config.low_priority_window, &chrono::Local::now());
            {
                let mut queues = lock(&out.queues);
                'queues: for (name, q) in queues.iter_mut() {
                    if q.members.is_empty() {
                        q.forced = false;
                    }
                    let due = q.due(now);
                    if due && matches!(q.state, QueueState::Wait { .. }) {
                        // The scheduled time came.
                        q.state = QueueState::Ready;
                    }
                    let per_queue = match q.via {
                        Via::Native(_) => per_native,
                        Via::Smtp(_) => per_smtp,
                    };
                    while q.sending < per_queue {
                        if out.threads.available() == 0 {
                            break 'queues;
                        }
                        let Some(entry) = q.take_next(due, low_window) else {
                            break;
                        };
                        let Some(permit) = out.threads.try_start() else {
                            q.push_front(entry);
                            break 'queues;
                        };
                        q.in_flight.insert(entry.message);
                        q.sending += 1;
                        started.push((name.clone(), q.via.clone(), entry, permit));
                    }
                }
            }
            let active = out.threads.active.load(SeqCst) as u64;
            let stats = &self.shared().stats;
            stats.transfer_active.store(active, Relaxed);
            stats.transfer_concurrent_highest.fetch_max(active, Relaxed);
            for (queue, via, entry, permit) in started {
                let router = self.clone();
                tokio::spawn(async move {
                    let id = entry.message;
                    let mut slot = Slot {
                        out: router.outbound().clone(),
                        queue: queue.clone(),
                        permit: Some(permit),
                    };
                    let finished = router.transfer_one(&queue, via, entry, &mut slot).await;
                    slot.release();
                    let out = router.outbound();
                    out.finished(&queue, id, finished);
                    out.wake.notify_one();
                });
            }
            tokio::select! {
                _ = out.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn transfer_one(&self, queue: &str, via: Via, entry: Entry, slot: &mut Slot) -> Finished {
        let id = entry.message;
        let entry_priority = entry.priority;
        let store = self.shared().store.clone();
        // The rows and the body in one read, off the runtime's threads.
        let read = blocking(move || store.pending_with_data(id)).await;
        let (msg, data) = match read {
            Ok(Some(found)) => found,
            // Deleted, held or dead: nothing to send. Its rows say what happens next.
            Ok(None) => return Finished::Done,
            Err(e) => {
                warn!(target: "router", "Router: cannot read message {id} for transfer: {e}");
                return Finished::Retry {
                    recipients: entry.recipients,
                    size: entry.size,
                    priority: entry.priority,
                    error: e.to_string(),
                    next_retry: now_ms() + 60_000,
                    waiting_for_dns: false,
                };
            }
        };
        // The rows decide: every recipient of the message still Waiting for
        // this queue (an outcome may be recorded already; another may have
        // joined since the entry was made).
        let rcpts: Vec<String> = msg
            .recipients
            .iter()
            .filter(|q| q.status == RecipientStatus::Waiting && q.queue.as_deref() == Some(queue))
            .map(|q| q.address.clone())
            .collect();
        if rcpts.is_empty() {
            return Finished::Done;
        }
        let snap = self.shared().snapshot.load_full();
        let transferer = match self
            .outbound()
            .transferer(&snap, self.shared().client_debug.get())
        {
            Ok(t) => t,
            Err(e) => {
                warn!(target: "router", "Router: SMTP client not available: {e}");
                return Finished::Retry {
                    recipients: rcpts,
                    size: entry.size,
                    priority: entry.priority,
                    error: e,
                    next_retry: now_ms() + 60_000,
                    waiting_for_dns: false,
                };
            }
        };
        let size = data.len() as u64;
        let report = match &via {
            Via::Smtp(smtp) => {
                let dest = match smtp {
                    SmtpVia::Relay(r) => Destination::Relay(r.clone()),
                    SmtpVia::Mx(d) => Destination::Mx(d.clone()),
                };
                if self.shared().verbosity.shows(30) {
                    info!(target: "router", "Router: Transferring mail to domain {queue} (host {}) via SMTP",
                        match smtp { SmtpVia::Relay(r) => r.to_string(), SmtpVia::Mx(d) => format!("MX of {d}") });
                }
                // Signed once for this attempt: every host tried gets the same bytes.
                let data = crate::dkim::for_transfer(&snap, &msg, &rcpts, data).await;
                let size = data.len() as u64;
                let batch = Batch {
                    from: msg.from.clone(),
                    recipients: rcpts.clone(),
                    body_8bit: data.iter().any(|b| *b >= 0x80),
                    data: Arc::new(data),
                    size,
                };
                transferer.send(&dest, &batch).await
            }
            Via::Native(next) => match crate::native::target(self.shared(), &snap, next) {
                Ok(target) => {
                    if self.shared().verbosity.shows(30) {
                        info!(target: "router", "Router: Transferring mail to server {next} ({}) via NRPC", target.addr);
                    }
                    let batch = crate::native::batch(
                        self.shared(),
                        &snap,
                        &msg,
                        rcpts.clone(),
                        data,
                        now_ms(),
                    );
                    transferer.send_native(&target, &batch).await
                }
                Err(reason) => crate::native::not_sent(&rcpts, reason),
            },
        };
        // The message went (or could not): the next transfer may start
        // while this one's outcome is recorded.
        slot.release();

        let now = now_ms();
        let server = snap.server.name.to_string();
        let msg_id = message_label(&msg);
        let mut plan = Plan::for_message(&msg);
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
        let s = &mut plan.settlement;
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
                RecipientResult::Permanent { reply, status } => {
                    self.failed_transfer(&via);
                    failures.push((rcpt, Failure::new(status, reply)));
                }
                RecipientResult::Transient { reason } => {
                    self.failed_transfer(&via);
                    if expired {
                        failures.push((rcpt, Failure::new("4.4.7", format!("Message expired: not delivered within {}.  Last error: {reason}", directory::format_duration(snap.config.expire_after)))));
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
        if let Via::Native(next) = &via {
            self.note_hop(
                &snap,
                next,
                transferred,
                transient.is_some(),
                now,
                &mut plan,
            );
        }
        if !failures.is_empty() {
            let shared = self.shared().clone();
            let snap2 = snap.clone();
            let msg2 = msg.clone();
            let label = msg_id.clone();
            plan = blocking(move || {
                let planner = Planner {
                    now,
                    ..Planner::new(&shared, &snap2)
                };
                planner.fail(&msg2, &label, failures, &mut plan);
                plan
            })
            .await;
        }
        let retry_rcpts: Vec<String> = plan
            .settlement
            .outcomes
            .iter()
            .filter(|(_, u)| matches!(u, RecipientUpdate::Retry { .. }))
            .map(|(a, _)| a.clone())
            .collect();
        // What left the server must be recorded: retry until it is.
        let outcome = self.settle_until_recorded(plan.settlement.clone()).await;
        let applied_transfer = transferred
            && plan.settlement.outcomes.iter().any(|(a, u)| {
                matches!(
                    u,
                    RecipientUpdate::Final {
                        status: RecipientStatus::Transferred,
                        ..
                    }
                ) && !outcome.skipped.iter().any(|x| x.eq_ignore_ascii_case(a))
            });
        if applied_transfer {
            match &via {
                Via::Smtp(_) => self.shared().stats.transferred_smtp(size),
                Via::Native(_) => self.shared().stats.transferred_native(size),
            }
            if self.shared().verbosity.shows(40) {
                info!(target: "router", "Router: Transferred 1 messages to {queue} via {}", via.transport());
            }
        }
        self.after_settle(plan, outcome);
        match transient {
            Some(err) => {
                if self.shared().verbosity.shows(20) {
                    warn!(target: "router", "Router: No messages transferred to {queue} via {}: {err}", via.transport());
                }
                Finished::Retry {
                    recipients: retry_rcpts,
                    size,
                    priority: entry_priority,
                    error: err,
                    next_retry: now + delay,
                    waiting_for_dns: report.waiting_for_dns,
                }
            }
            None if transferred => Finished::Succeeded,
            None => Finished::Done,
        }
    }

    /// A hop to `next` succeeded (its raised cost is cleared) or failed
    /// (its cost goes up by one, as Domino does). After a failure, a
    /// recipient whose least-cost path now leaves by another server moves
    /// to that server's queue (recorded before it is queued there).
    fn note_hop(
        &self,
        snap: &Snapshot,
        next: &str,
        transferred: bool,
        failed: bool,
        now: i64,
        plan: &mut Plan,
    ) {
        let Ok(next_name) = next.parse::<directory::NotesName>() else {
            return;
        };
        let this = &snap.server.name;
        let raises = {
            let mut raises = lock(&self.shared().raises);
            if transferred {
                raises.clear(this, &next_name);
                return;
            }
            if !failed {
                return;
            }
            raises.raise(this, &next_name, now);
            raises.clone()
        };
        if self.shared().router_debug.get() >= 2 {
            info!(target: "router", "Router: cost of the route from {this} to {next} raised to +{} after a failed transfer", raises.extra(this, &next_name, now));
        }
        let ctx = snap.routing_with(&raises, now);
        for (addr, update) in plan.settlement.outcomes.iter_mut() {
            let RecipientUpdate::Retry { error, .. } = update else {
                continue;
            };
            let other =
                routing::resolve(ctx, addr)
                    .into_iter()
                    .find_map(|step| match step.action {
                        routing::Action::Route(routing::Route::Server { next_hop, .. })
                            if !next_hop.eq_ignore_ascii_case(next) =>
                        {
                            Some(next_hop)
                        }
                        _ => None,
                    });
            let Some(other) = other else { continue };
            if self.shared().verbosity.shows(30) {
                info!(target: "router", "Router: {addr} moves from the queue of {next} to {other}: the transfer to {next} failed ({error})");
            }
            let via = Via::Native(other.clone());
            *update = RecipientUpdate::Moved {
                queue: other.clone(),
                via: via.encode(),
                reason: format!("Rerouted: the transfer to {next} failed ({error})"),
            };
            match plan.handoffs.iter_mut().find(|h| h.queue == other) {
                Some(h) => h.recipients.push(addr.clone()),
                None => plan.handoffs.push(Handoff {
                    queue: other,
                    via,
                    message: plan.settlement.message,
                    recipients: vec![addr.clone()],
                    size: plan.size,
                    not_before: None,
                    attempts: 0,
                    priority: plan.priority,
                }),
            }
        }
    }

    fn failed_transfer(&self, via: &Via) {
        match via {
            Via::Smtp(_) => self.shared().stats.transfer_failed_smtp(),
            Via::Native(_) => self.shared().stats.transfer_failed_native(),
        }
    }

    /// Records a settlement of work already done outside (a transfer): a
    /// store error is retried, with growing pauses, until it is recorded.
    pub(crate) async fn settle_until_recorded(&self, s: Settlement) -> store::SettleOutcome {
        let mut pause = Duration::from_millis(200);
        loop {
            match self.shared().store.settle(vec![s.clone()]).await {
                Ok(mut outcomes) if !outcomes.is_empty() => return outcomes.remove(0),
                Ok(_) => {}
                Err(e) => {
                    error!(target: "router", "Router: cannot record the transfer of message {} ({e}); trying again in {} ms", s.message, pause.as_millis());
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(30));
        }
    }
}

impl Router {
    /// The native part of `trace SERVER`: the next hop's address and a
    /// connection to it (TLS with both server IDs, greeting, EHLO, QUIT).
    pub async fn trace_native(&self, next: &str) -> Vec<String> {
        let snap = self.shared().snapshot.load_full();
        let mut out = Vec::new();
        let target = match crate::native::target(self.shared(), &snap, next) {
            Ok(t) => t,
            Err(e) => {
                out.push(format!("Unable to connect to {next} on TCPIP ({e})"));
                return out;
            }
        };
        out.push(format!(
            "Using address '{}' for {next} on TCPIP",
            target.addr
        ));
        out.push(format!("Connecting to {next} over TCPIP"));
        let t = match self
            .outbound()
            .transferer(&snap, self.shared().client_debug.get())
        {
            Ok(t) => t,
            Err(e) => {
                out.push(format!("Unable to connect to {next} on TCPIP ({e})"));
                return out;
            }
        };
        out.push(match t.probe_native(&target).await {
            Ok(()) => format!("Connected to server {next}"),
            Err(e) => format!("Unable to connect to {next} on TCPIP ({e})"),
        });
        out
    }

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

/// `initial_retry` doubled per failed attempt, capped at `retry_cap` (milliseconds).
pub(crate) fn retry_delay(config: &directory::Config, attempts: u32) -> i64 {
    let base = config.initial_retry.as_millis();
    let cap = config.retry_cap.as_millis().max(base);
    let delay = base.saturating_mul(1u128 << attempts.saturating_sub(1).min(20));
    i64::try_from(delay.min(cap)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resizing while transfers hold permits never lets more run than the
    /// new limit, and the count of running transfers never underflows.
    #[test]
    fn the_thread_limit_resizes_in_place() {
        let t = Threads::new(4);
        let held: Vec<_> = (0..4).map(|_| t.try_start().expect("a permit")).collect();
        assert!(t.try_start().is_none());
        t.resize(2); // all four are held: two are owed
        assert_eq!(t.owed.load(SeqCst), 2);
        let mut held = held.into_iter();
        t.finish(held.next().unwrap());
        t.finish(held.next().unwrap());
        assert!(t.try_start().is_none(), "two still run: the limit is 2");
        t.finish(held.next().unwrap());
        let again = t.try_start().expect("one free now");
        assert!(t.try_start().is_none());
        t.resize(5);
        let more: Vec<_> = (0..3).map(|_| t.try_start().expect("grown")).collect();
        assert!(t.try_start().is_none());
        assert_eq!(t.active.load(SeqCst), 5);
        t.finish(again);
        for p in more {
            t.finish(p);
        }
        t.finish(held.next().unwrap());
        assert_eq!(t.active.load(SeqCst), 0);
        assert_eq!(t.sem.available_permits(), 5);
    }

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
}
