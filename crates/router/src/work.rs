//! The router's delivery workers: batches of messages in, settlements out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use report::{FailedRecipient, ReportInput};
use routing::{Action, Failure, Route};
use store::{
    Delivery, Flags, Incoming, MessageKind, MessageState, QueuedMessage, RecipientStatus,
    RecipientUpdate, Settlement, Store,
};
use tokio::sync::{Mutex, mpsc};
use tracing::{error, info, warn};

use crate::events::{RouterStats, Verbosity, event};
use crate::outbound::{Handoff, Outbound};
use crate::snapshot::Snapshot;

/// Messages taken from the channel per batch (one store transaction).
const BATCH: usize = 256;
const QUOTA_REASON: &str =
    "Router: Recipient's mail file size exceeds the maximum size allowed for mail delivery.";
const HOP_REASON: &str = "Maximum hop count exceeded.  Message probably in a routing loop.";

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
}

/// Handle on a running router: hand it messages that are durable in the mail box.
#[derive(Clone)]
pub struct Router {
    tx: mpsc::Sender<QueuedMessage>,
    shared: Arc<RouterShared>,
    outbound: Arc<Outbound>,
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Router {
    /// Start `workers` delivery workers and queue every pending message of the mail box.
    pub fn start(shared: Arc<RouterShared>, workers: usize) -> Router {
        let (tx, rx) = mpsc::channel::<QueuedMessage>(8192);
        let rx = Arc::new(Mutex::new(rx));
        let threads = usize::from(shared.snapshot.load().config.transfer_threads);
        let router = Router {
            tx,
            shared: shared.clone(),
            outbound: Arc::new(Outbound::new(threads)),
        };
        shared
            .stats
            .transfer_max
            .store(threads as u64, std::sync::atomic::Ordering::Relaxed);
        tokio::spawn(router.clone().dispatch());
        let workers = workers.max(1);
        shared
            .stats
            .delivery_max
            .store(workers as u64, std::sync::atomic::Ordering::Relaxed);
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

    pub(crate) fn outbound(&self) -> &Arc<Outbound> {
        &self.outbound
    }

    /// `route DEST` / `route *`: outbound queues retry now; returns how many.
    pub fn route_now(&self, dest: Option<&str>) -> usize {
        self.outbound.route_now(dest)
    }

    /// The outbound queues for `tell router show queues`.
    pub fn outbound_queues(&self) -> Vec<console::QueueLine> {
        self.outbound.queue_lines()
    }

    /// (messages waiting in outbound queues, of which waiting for DNS).
    pub fn outbound_waiting(&self) -> (u64, u64) {
        self.outbound.waiting()
    }

    /// A new directory snapshot may change the number of transfer threads.
    pub fn reconfigure(&self) {
        let snap = self.shared.snapshot.load();
        self.outbound
            .set_threads(usize::from(snap.config.transfer_threads));
    }

    /// Route a message that is durable in the mail box.
    pub async fn submit(&self, msg: QueuedMessage) {
        if self.tx.send(msg).await.is_err() {
            // Only at shutdown; the message stays pending in the mail box.
            warn!(target: "router", "Router: shutting down, message left in the mail box");
        }
    }

    /// Queue every pending message of the mail box (start-up, `route *`).
    pub async fn requeue_pending(&self) {
        match self.shared.store.pending() {
            Ok(msgs) => {
                if !msgs.is_empty() && self.shared.verbosity.shows(30) {
                    info!(target: "router", "Router: {} pending messages in the mail box", msgs.len());
                }
                for m in msgs {
                    self.submit(m).await;
                }
            }
            Err(e) => error!(target: "router", "Router: cannot read the mail box: {e}"),
        }
    }

    /// `tell router release dead|held ID`: back to Pending, routed again now.
    pub async fn release(&self, id: store::MessageId) -> Result<bool, store::StoreError> {
        if !self
            .shared
            .store
            .set_state(id, MessageState::Pending, None)
            .await?
        {
            return Ok(false);
        }
        if let Some(m) = self.shared.store.message(id)? {
            self.submit(m).await;
        }
        Ok(true)
    }

    async fn worker(&self, rx: Arc<Mutex<mpsc::Receiver<QueuedMessage>>>) {
        use std::sync::atomic::Ordering::Relaxed;
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
            self.run_batch(batch).await;
            self.shared.stats.delivery_active.fetch_sub(1, Relaxed);
        }
    }

    async fn run_batch(&self, batch: Vec<QueuedMessage>) {
        let snap = self.shared.snapshot.load_full();
        let now = now_ms();
        let mut usage = HashMap::new();
        let ids: Vec<store::MessageId> = batch.iter().map(|m| m.id).collect();
        let mut handoffs = Vec::new();
        let settlements: Vec<Settlement> = batch
            .iter()
            .map(|m| self.route_message(&snap, m, now, &mut usage, &mut handoffs))
            .collect();
        // A message whose recipients all wait in outbound queues has nothing to record.
        let settlements: Vec<Settlement> =
            settlements.into_iter().filter(|s| !is_empty(s)).collect();
        let settled = if settlements.is_empty() {
            Ok(Vec::new())
        } else {
            self.shared.store.settle(settlements).await
        };
        match settled {
            Ok(outcomes) => {
                for h in handoffs {
                    self.outbound.enqueue(h);
                }
                for o in outcomes {
                    for m in o.new_messages {
                        let router = self.clone();
                        // Reports go back through the router; never block this worker on its own queue.
                        tokio::spawn(async move { router.submit(m).await });
                    }
                }
            }
            Err(e) => {
                error!(target: "router", "Router: cannot record routing results ({e}); {} messages stay in the mail box and are retried", ids.len());
                let router = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    for id in ids {
                        if let Ok(Some(m)) = router.shared.store.message(id)
                            && m.state == MessageState::Pending
                        {
                            router.submit(m).await;
                        }
                    }
                });
            }
        }
    }

    /// Decide and prepare everything that happens to one message in this pass.
    fn route_message(
        &self,
        snap: &Snapshot,
        msg: &QueuedMessage,
        now: i64,
        usage: &mut HashMap<String, u64>,
        handoffs: &mut Vec<Handoff>,
    ) -> Settlement {
        let shared = &self.shared;
        let server = snap.server.name.to_string();
        let msg_id = msg
            .message_id
            .clone()
            .unwrap_or_else(|| format!("{}", msg.id));
        let size = msg.size;
        let mut s = Settlement {
            message: msg.id,
            outcomes: Vec::new(),
            deliveries: Vec::new(),
            new_messages: Vec::new(),
            events: Vec::new(),
            state: None,
        };
        let pending: Vec<String> = msg
            .recipients
            .iter()
            .filter(|r| r.status == RecipientStatus::Pending)
            .map(|r| r.address.clone())
            .collect();
        let mut failures: Vec<(String, Failure)> = Vec::new();
        let ev = |rcpt: &str, outcome: &str, detail: &str| {
            event(
                now,
                &msg_id,
                &msg.from,
                rcpt,
                &server,
                outcome,
                detail,
                msg.hop_count,
                size,
            )
        };

        if msg.hop_count > snap.config.max_hop_count {
            for r in &pending {
                failures.push((
                    r.clone(),
                    Failure {
                        reason: HOP_REASON.into(),
                        status: "5.4.6",
                    },
                ));
            }
        } else {
            let steps = routing::resolve_all(snap.routing(), &pending);
            if shared.lookup_debug.get() > 0 {
                for step in &steps {
                    info!(target: "router", "DebugRLookup: Lookup for {}: {}", step.address, describe(&step.action));
                }
            }
            for step in steps {
                let addr = step.address;
                match step.action {
                    Action::Expanded { members } => {
                        s.events.push(ev(&addr, "expanded", &members.join(", ")));
                        s.outcomes
                            .push((addr, final_status(RecipientStatus::Expanded, None)));
                    }
                    Action::Forwarded { to } => {
                        s.events.push(ev(&addr, "forwarded", &to));
                        s.outcomes.push((
                            addr,
                            final_status(
                                RecipientStatus::Forwarded,
                                Some(format!("forwarded to {to}")),
                            ),
                        ));
                    }
                    Action::Duplicate { of } => {
                        s.outcomes.push((
                            addr,
                            final_status(
                                RecipientStatus::Delivered,
                                Some(format!("same mail file as {of}")),
                            ),
                        ));
                    }
                    Action::Route(Route::Local {
                        mail_file,
                        owner,
                        quota,
                    }) => {
                        let used = usage.entry(mail_file.clone()).or_insert_with(|| {
                            shared.store.mailfile_usage(&mail_file).unwrap_or(0)
                        });
                        if quota.is_some_and(|q| *used + size > q) {
                            failures.push((
                                addr,
                                Failure {
                                    reason: QUOTA_REASON.into(),
                                    status: "5.2.2",
                                },
                            ));
                            continue;
                        }
                        *used += size;
                        s.deliveries.push(Delivery {
                            recipient: addr.clone(),
                            mail_file: mail_file.clone(),
                            folder: "Inbox".into(),
                            internal_date: now,
                            route_servers: vec![server.clone()],
                            route_times: vec![now],
                            flags: Flags::default(),
                        });
                        let deliver_ms = u64::try_from(now - msg.received_at).unwrap_or(0);
                        shared.stats.delivered(size, deliver_ms, msg.hop_count);
                        if shared.verbosity.shows(40) {
                            info!(target: "router",
                                "Router: Message {msg_id} delivered to {owner} from {} Size: {}K Time: {} Hop Count: {}",
                                if msg.from.is_empty() { "<>" } else { &msg.from },
                                size.div_ceil(1024),
                                chrono::Local::now().format("%I:%M:%S %p"),
                                msg.hop_count);
                        }
                        s.events.push(ev(&addr, "delivered", &mail_file));
                        s.outcomes
                            .push((addr, final_status(RecipientStatus::Delivered, None)));
                    }
                    Action::Route(Route::Server {
                        destination,
                        next_hop,
                    }) => {
                        let reason = format!(
                            "Waiting for transfer to server {next_hop} (for {destination}): transfer between servers is not enabled on this server"
                        );
                        s.events.push(ev(&addr, "waiting", &reason));
                        s.outcomes.push((
                            addr,
                            RecipientUpdate::Waiting {
                                reason,
                                queue: Some(next_hop),
                            },
                        ));
                    }
                    Action::Route(Route::Smtp { queue, via }) => {
                        if let Some(f) = routing::outbound_refusal(&snap.config, &msg.from, &addr) {
                            failures.push((addr, f));
                            continue;
                        }
                        let (not_before, attempts) = msg
                            .recipients
                            .iter()
                            .find(|r| r.address.eq_ignore_ascii_case(&addr))
                            .map(|r| (r.next_attempt, r.attempts))
                            .unwrap_or((None, 0));
                        match handoffs
                            .iter_mut()
                            .find(|h| h.message == msg.id && h.queue == queue)
                        {
                            Some(h) => h.recipients.push(addr.clone()),
                            None => handoffs.push(Handoff {
                                queue: queue.clone(),
                                via,
                                message: msg.id,
                                recipients: vec![addr.clone()],
                                copy: Some(Arc::new(msg.clone())),
                                not_before,
                                attempts,
                            }),
                        }
                        // Nothing to record yet: the outbound queue holds it, and a
                        // restart routes the still-pending recipient again.
                    }
                    Action::Route(Route::Fail(f)) => failures.push((addr, f)),
                }
            }
        }

        if !failures.is_empty() {
            self.settle_failures(snap, msg, &msg_id, now, failures, &mut s);
        }
        s
    }

    /// Failed recipients: a report to the sender, or Held, or Dead.
    pub(crate) fn settle_failures(
        &self,
        snap: &Snapshot,
        msg: &QueuedMessage,
        msg_id: &str,
        now: i64,
        failures: Vec<(String, Failure)>,
        s: &mut Settlement,
    ) {
        let shared = &self.shared;
        let server = snap.server.name.to_string();
        let size = msg.size;
        let first = failures[0].1.reason.clone();
        let is_report = msg.kind == MessageKind::Report || msg.from.is_empty();
        let (outcome, state) = if is_report {
            ("dead", Some(MessageState::Dead))
        } else if snap.config.hold_undeliverable {
            ("held", Some(MessageState::Held))
        } else {
            ("failed", None)
        };
        for (addr, f) in &failures {
            shared.stats.failed();
            if shared.verbosity.shows(20) {
                warn!(target: "router", "Router: Message {msg_id} NOT delivered to {addr} from {}: {}",
                    if msg.from.is_empty() { "<>" } else { &msg.from }, f.reason);
            }
            s.events.push(event(
                now,
                msg_id,
                &msg.from,
                addr,
                &server,
                outcome,
                &f.reason,
                msg.hop_count,
                size,
            ));
            let update = match state {
                // Held and Dead mail keeps its recipients for a later release.
                Some(_) => RecipientUpdate::Waiting {
                    reason: f.reason.clone(),
                    queue: None,
                },
                None => final_status(RecipientStatus::Failed, Some(f.reason.clone())),
            };
            s.outcomes.push((addr.clone(), update));
        }
        if let Some(state) = state {
            s.state = Some((state, Some(first)));
            return;
        }
        let failed: Vec<FailedRecipient> = failures
            .iter()
            .map(|(addr, f)| FailedRecipient {
                address: addr.clone(),
                reason: f.reason.clone(),
                status: f.status.to_owned(),
                remote_mta: None,
            })
            .collect();
        let route_servers = [server.clone()];
        let unique = format!("{}.{}", msg.id, now);
        let original = match shared.store.message_data(msg.id) {
            Ok(Some(data)) => data,
            Ok(None) => Vec::new(),
            Err(e) => {
                warn!(target: "router", "Router: cannot read message {msg_id} for its failure report: {e}");
                Vec::new()
            }
        };
        let r = report::delivery_failure(&ReportInput {
            reporting_host: &snap.server.hostname,
            original_from: &msg.from,
            original: &original,
            route_servers: &route_servers,
            arrival: msg.received_at,
            failures: &failed,
            unique: &unique,
        });
        shared.stats.report_sent();
        s.new_messages.push(Incoming {
            from: String::new(),
            recipients: vec![r.to],
            data: r.data,
            received_at: now,
            kind: MessageKind::Report,
            hop_count: 0,
            origin: format!("report about {}", msg.id),
            message_id: Some(r.message_id),
            subject: Some(r.subject),
        });
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

fn is_empty(s: &Settlement) -> bool {
    s.outcomes.is_empty()
        && s.deliveries.is_empty()
        && s.new_messages.is_empty()
        && s.events.is_empty()
        && s.state.is_none()
}

fn final_status(status: RecipientStatus, reason: Option<String>) -> RecipientUpdate {
    RecipientUpdate::Final { status, reason }
}
