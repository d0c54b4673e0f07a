//! The router's delivery workers and the mail box loader: messages in,
//! settlements out, hand-offs to the outbound queues after they commit.
//!
//! A message is in at most one routing pass at a time (`routing` set); a
//! message submitted again meanwhile is re-read from the mail box after the
//! pass. The settlement is conditional anyway (the store applies an outcome
//! only to a row still open), so a message routed twice — `route *`, a
//! restart, a message both in the channel and re-read — is delivered once.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use routing::{Action, Route};
use store::{
    MessageId, MessageState, QueuedMessage, RecipientStatus, SettleOutcome, Settlement, Store,
    StoreError,
};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::events::{RouterStats, Verbosity};
use crate::outbound::{Handoff, Outbound};
use crate::plan::{Plan, Planner};
use crate::snapshot::Snapshot;

/// Messages taken from the channel per batch (one store transaction).
const BATCH: usize = 256;
/// Messages read from the mail box per page at start and on `route *`.
const PAGE: usize = 256;

/// What the router shares with the server's other tasks.
pub struct RouterShared {
    pub snapshot: ArcSwap<Snapshot>,
    pub store: Store,
    pub stats: RouterStats,
    /// `Log_MailRouting`.
    pub verbosity: Verbosity,
    /// `DebugRouterLookup`: each name lookup and its matches.
    pub lookup_debug: Verbosity,
    /// `SMTPClientDebug`: the outbound conversation.
    pub client_debug: Verbosity,
    /// `DebugRouter`: 1 routing filters and queues, 2 routing tables and the
    /// least-cost calculation, 3 both.
    pub router_debug: Verbosity,
    /// Costs raised by failed hops to other servers (reset by a successful
    /// transfer, or an hour after the last failure).
    pub raises: Mutex<routing::CostRaises>,
    /// This server's side of the native protocol's mutual TLS (its server
    /// ID); empty while it has none, and then nothing is sent natively.
    pub native_tls: arc_swap::ArcSwapOption<rustls::ClientConfig>,
}

/// Handle on a running router: hand it messages that are durable in the mail box.
#[derive(Clone)]
pub struct Router {
    tx: mpsc::Sender<QueuedMessage>,
    shared: Arc<RouterShared>,
    outbound: Arc<Outbound>,
    passes: Arc<Mutex<Passes>>,
}

/// Messages in a routing pass now, and those submitted again meanwhile.
#[derive(Default)]
struct Passes {
    routing: HashSet<MessageId>,
    again: HashSet<MessageId>,
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs a synchronous store read (or other blocking work) off the async
/// runtime's threads.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

impl Router {
    /// Start `workers` delivery workers and load the mail box: Pending
    /// recipients are routed, Waiting ones go back to their queues.
    pub fn start(shared: Arc<RouterShared>, workers: usize) -> Router {
        let (tx, rx) = mpsc::channel::<QueuedMessage>(8192);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let threads = usize::from(shared.snapshot.load().config.transfer_threads);
        let router = Router {
            tx,
            shared: shared.clone(),
            outbound: Arc::new(Outbound::new(threads)),
            passes: Arc::new(Mutex::new(Passes::default())),
        };
        shared.stats.transfer_max.store(threads as u64, Relaxed);
        router.log_table(&shared.snapshot.load());
        tokio::spawn(router.clone().dispatch());
        let workers = workers.max(1);
        shared.stats.delivery_max.store(workers as u64, Relaxed);
        for _ in 0..workers {
            let (rx, router) = (rx.clone(), router.clone());
            tokio::spawn(async move { router.worker(rx).await });
        }
        let loader = router.clone();
        tokio::spawn(async move { loader.requeue_pending().await });
        router
    }

    pub fn shared(&self) -> &Arc<RouterShared> {
        &self.shared
    }

    /// `DebugRouter` 2 or 3: the routing table, as built from the directory
    /// with the costs raised now.
    pub(crate) fn log_table(&self, snap: &crate::Snapshot) {
        if self.shared.router_debug.get() < 2 {
            return;
        }
        let raises = lock(&self.shared.raises).clone();
        for line in snap.table.describe(&raises, now_ms()) {
            info!(target: "router", "{line}");
        }
    }

    pub(crate) fn outbound(&self) -> &Arc<Outbound> {
        &self.outbound
    }

    /// `route DEST` / `route *`: outbound queues retry now; returns how many.
    pub fn route_now(&self, dest: Option<&str>) -> usize {
        self.outbound.route_now(dest)
    }

    /// The outbound queues for `tell router show queues`.
    pub fn outbound_queues(&self) -> Vec<console::QueueLine> {
        self.outbound
            .queue_lines(self.shared.snapshot.load().config.low_priority_window)
    }

    /// (messages waiting in outbound queues, of which waiting for DNS).
    pub fn outbound_waiting(&self) -> (u64, u64) {
        self.outbound.waiting()
    }

    /// A new directory snapshot may change the number of transfer threads;
    /// with `DebugRouter` 2 or 3 its routing table is logged.
    pub fn reconfigure(&self) {
        let snap = self.shared.snapshot.load();
        self.log_table(&snap);
        let n = usize::from(snap.config.transfer_threads).max(1);
        self.outbound.set_threads(n);
        self.shared.stats.transfer_max.store(n as u64, Relaxed);
    }

    /// Route a message that is durable in the mail box (its Pending
    /// recipients; Waiting ones are the outbound queues' business).
    pub async fn submit(&self, msg: QueuedMessage) {
        if !msg
            .recipients
            .iter()
            .any(|r| r.status == RecipientStatus::Pending)
        {
            return;
        }
        {
            let mut passes = lock(&self.passes);
            if !passes.routing.insert(msg.id) {
                // On its way already: read again once that pass is recorded.
                passes.again.insert(msg.id);
                return;
            }
        }
        if self.tx.send(msg).await.is_err() {
            // Only at shutdown; the message stays pending in the mail box.
            warn!(target: "router", "Router: shutting down, message left in the mail box");
        }
    }

    /// Reads the mail box page by page (start-up, `route *`): Pending
    /// recipients are routed, Waiting recipients rejoin their queues. No
    /// body is read, and a page is handed on before the next is read.
    pub async fn requeue_pending(&self) {
        let mut after = 0;
        let mut total = 0usize;
        loop {
            let store = self.shared.store.clone();
            let page = blocking(move || store.pending_page(after, PAGE)).await;
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    error!(target: "router", "Router: cannot read the mail box: {e}");
                    return;
                }
            };
            let Some(last) = page.last() else { break };
            after = last.id;
            total += page.len();
            for msg in page {
                let snap = self.shared.snapshot.load();
                for h in Handoff::from_rows(&msg) {
                    self.outbound.enqueue(h, &snap);
                }
                self.submit(msg).await;
            }
        }
        if total > 0 && self.shared.verbosity.shows(30) {
            info!(target: "router", "Router: {total} pending messages in the mail box");
        }
    }

    /// `tell router release dead|held ID`: back to Pending, routed again now.
    pub async fn release(&self, id: MessageId) -> Result<bool, StoreError> {
        if !self
            .shared
            .store
            .set_state(id, MessageState::Pending, None)
            .await?
        {
            return Ok(false);
        }
        let store = self.shared.store.clone();
        if let Some(m) = blocking(move || store.message(id)).await? {
            self.submit(m).await;
        }
        Ok(true)
    }

    /// `tell router delete ID`: out of the mail box and out of every queue at
    /// once; a deleted message is never sent afterwards.
    pub async fn delete(&self, id: MessageId) -> Result<bool, StoreError> {
        let deleted = self.shared.store.delete(id).await?;
        self.outbound.forget(id);
        Ok(deleted)
    }

    async fn worker(&self, rx: Arc<tokio::sync::Mutex<mpsc::Receiver<QueuedMessage>>>) {
        loop {
            let mut batch = Vec::new();
            {
                let mut rx = rx.lock().await;
                match rx.recv().await {
                    Some(m) => batch.push(m),
                    None => return,
                }
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
            }
            self.shared.stats.delivery_active.fetch_add(1, Relaxed);
            let ids: Vec<MessageId> = batch.iter().map(|m| m.id).collect();
            self.run_batch(batch).await;
            self.shared.stats.delivery_active.fetch_sub(1, Relaxed);
            self.pass_done(&ids).await;
        }
    }

    /// The pass of these messages is over: those submitted meanwhile are read again.
    async fn pass_done(&self, ids: &[MessageId]) {
        let again: Vec<MessageId> = {
            let mut passes = lock(&self.passes);
            ids.iter()
                .filter(|id| {
                    passes.routing.remove(id);
                    passes.again.remove(id)
                })
                .copied()
                .collect()
        };
        for id in again {
            let store = self.shared.store.clone();
            if let Ok(Some(m)) = blocking(move || store.message(id)).await
                && m.state == MessageState::Pending
            {
                self.submit(m).await;
            }
        }
    }

    async fn run_batch(&self, batch: Vec<QueuedMessage>) {
        let shared = self.shared.clone();
        // Routing reads the store (quota, originals for reports): off the runtime's threads.
        let plans: Vec<Plan> = blocking(move || {
            let snap = shared.snapshot.load_full();
            let mut planner = Planner::new(&shared, &snap);
            batch.iter().map(|m| planner.route(m)).collect()
        })
        .await;
        let settlements: Vec<Settlement> = plans.iter().map(|p| p.settlement.clone()).collect();
        match self.shared.store.settle(settlements).await {
            Ok(outcomes) => {
                for (plan, outcome) in plans.into_iter().zip(outcomes) {
                    self.after_settle(plan, outcome);
                }
            }
            Err(e) => {
                // Nothing left the server yet: the pass is simply done again later.
                error!(target: "router", "Router: cannot record routing results ({e}); {} messages stay in the mail box and are routed again", plans.len());
                let router = self.clone();
                let ids: Vec<MessageId> = plans.iter().map(|p| p.settlement.message).collect();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    for id in ids {
                        let store = router.shared.store.clone();
                        if let Ok(Some(m)) = blocking(move || store.message(id)).await
                            && m.state == MessageState::Pending
                        {
                            router.submit(m).await;
                        }
                    }
                });
            }
        }
    }

    /// What a recorded plan sets going: counters and log lines for what was
    /// applied, hand-offs for recipients whose `Queued` row committed, and
    /// the reports to route.
    pub(crate) fn after_settle(&self, plan: Plan, outcome: SettleOutcome) {
        let stats = &self.shared.stats;
        let skipped: HashSet<String> = outcome
            .skipped
            .iter()
            .map(|a| a.to_ascii_lowercase())
            .collect();
        let applied = |a: &str| !skipped.contains(&a.to_ascii_lowercase());
        if !outcome.gone {
            let size = plan.size;
            for (rcpt, owner) in plan.local.iter().filter(|(r, _)| applied(r)) {
                let deliver_ms = u64::try_from(now_ms() - plan.received_at).unwrap_or(0);
                stats.delivered(size, deliver_ms, plan.hop_count);
                if self.shared.verbosity.shows(40) {
                    info!(target: "router",
                        "Router: Message {} delivered to {owner} ({rcpt}) Size: {}K Hop Count: {}",
                        plan.label, size.div_ceil(1024), plan.hop_count);
                }
            }
            for _ in plan.failed.iter().filter(|r| applied(r)) {
                stats.failed();
            }
            if !outcome.new_messages.is_empty() {
                for _ in 0..plan.reports {
                    stats.report_sent();
                }
            }
            let snap = self.shared.snapshot.load();
            for mut h in plan.handoffs {
                h.recipients.retain(|r| applied(r));
                if !h.recipients.is_empty() {
                    self.outbound.enqueue(h, &snap);
                }
            }
        }
        for m in outcome.new_messages {
            let router = self.clone();
            // Reports go back through the router; never block a worker on its own queue.
            tokio::spawn(async move { router.submit(m).await });
        }
    }
}

/// One lookup result in words, for `DebugRouterLookup` and `trace`.
pub fn describe(action: &Action) -> String {
    match action {
        Action::Expanded { members } => format!("group, expands to {}", members.join(", ")),
        Action::Forwarded { to } => format!("forwarded to {to}"),
        Action::Duplicate { of } => format!("same mail file as {of}"),
        Action::Route(Route::Local {
            mail_file, owner, ..
        }) => {
            format!("found {owner}, delivered locally into mail file {mail_file}")
        }
        Action::Route(Route::Server {
            destination,
            next_hop,
        }) => {
            format!("mail server {destination}, next hop {next_hop} via NRPC")
        }
        Action::Route(Route::Smtp { queue, via }) => match via {
            routing::SmtpVia::Relay(r) => format!("SMTP to {queue} through relay host {r}"),
            routing::SmtpVia::Mx(d) => format!("SMTP to {queue} through the MX records of {d}"),
        },
        Action::Route(Route::Fail(f)) => f.reason.clone(),
    }
}
