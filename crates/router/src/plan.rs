//! One routing pass over one message: what happens to each of its Pending
//! recipients, written as a [`Settlement`] (outcomes, derived rows,
//! deliveries, reports, events) plus the hand-offs to outbound queues that
//! are trusted only once the settlement committed. Reads the directory
//! snapshot and the store (quota, the original for a report); writes nothing.

use std::collections::HashMap;

use report::{FailedRecipient, ReportInput};
use routing::{Action, Failure, Route};
use store::{
    Delivery, Flags, Incoming, MessageKind, MessageState, QueuedMessage, RecipientStatus,
    RecipientUpdate, Settlement, Store,
};
use tracing::{info, warn};

use crate::events::{Verbosity, event};
use crate::outbound::Handoff;
use crate::snapshot::Snapshot;
use crate::work::RouterShared;
use crate::work::describe;

const QUOTA_REASON: &str =
    "Router: Recipient's mail file size exceeds the maximum size allowed for mail delivery.";
const HOP_REASON: &str = "Maximum hop count exceeded.  Message probably in a routing loop.";

/// What the router will do with one message, once its settlement commits.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub settlement: Settlement,
    /// Given to the outbound queues for the recipients whose `Queued` outcome applied.
    pub handoffs: Vec<Handoff>,
    /// Local deliveries, for counters and the log once they are recorded: (recipient, owner).
    pub local: Vec<(String, String)>,
    /// Reports written (counted once recorded).
    pub reports: u64,
    /// Failed recipients (counted once recorded).
    pub failed: Vec<String>,
    /// The message, for counters and log lines: its label, size, arrival, hops.
    pub label: String,
    pub size: u64,
    pub received_at: i64,
    pub hop_count: u32,
    pub priority: store::Priority,
}

/// What planning needs besides the message: the store for reads, the
/// counters and debug levels.
pub(crate) struct Planner<'a> {
    pub snap: &'a Snapshot,
    pub store: &'a Store,
    pub verbosity: &'a Verbosity,
    pub lookup_debug: &'a Verbosity,
    pub now: i64,
    /// Mail file usage read in this batch (quota), plus what the batch adds.
    pub usage: HashMap<String, u64>,
    /// The costs raised by failed hops, as they stood when the batch began.
    pub raises: routing::CostRaises,
    /// `DebugRouter`.
    pub router_debug: u8,
}

impl<'a> Planner<'a> {
    pub(crate) fn new(shared: &'a RouterShared, snap: &'a Snapshot) -> Planner<'a> {
        Planner {
            snap,
            store: &shared.store,
            verbosity: &shared.verbosity,
            lookup_debug: &shared.lookup_debug,
            now: crate::work::now_ms(),
            usage: HashMap::new(),
            raises: crate::work::lock(&shared.raises).clone(),
            router_debug: shared.router_debug.get(),
        }
    }
}

impl Planner<'_> {
    /// Decide everything that happens to the Pending recipients of `msg`.
    pub(crate) fn route(&mut self, msg: &QueuedMessage) -> Plan {
        let snap = self.snap;
        let now = self.now;
        let server = snap.server.name.to_string();
        let msg_id = message_label(msg);
        let size = msg.size;
        let mut plan = Plan::for_message(msg);
        let pending: Vec<String> = msg
            .recipients
            .iter()
            .filter(|r| r.status == RecipientStatus::Pending)
            .map(|r| r.address.clone())
            .collect();
        // Rows already derived in an earlier pass keep the parent they have.
        let known_parent = parents_of(msg, &[]);
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
                failures.push((r.clone(), Failure::new("5.4.6", HOP_REASON)));
            }
            self.fail(msg, &msg_id, failures, &mut plan);
            return plan;
        }
        let ctx = snap.routing_with(&self.raises, now);
        let steps = routing::resolve_all(ctx, &pending);
        if self.lookup_debug.get() > 0 {
            for step in &steps {
                info!(target: "router", "DebugRLookup: Lookup for {}: {}", step.address, describe(&step.action));
            }
        }
        let s = &mut plan.settlement;
        for step in steps {
            let addr = step.address;
            if let Some(parent) = &step.parent {
                s.derived.push((addr.clone(), parent.clone()));
            }
            let parent = step
                .parent
                .or_else(|| known_parent.get(&addr.to_ascii_lowercase()).cloned());
            let from_parent = |what: &str| match &parent {
                Some(p) => format!("{what} (from {p})"),
                None => what.to_owned(),
            };
            match step.action {
                Action::Expanded { members } => {
                    s.events
                        .push(ev(&addr, "expanded", &from_parent(&members.join(", "))));
                    s.outcomes
                        .push((addr, final_status(RecipientStatus::Expanded, None)));
                }
                Action::Forwarded { to } => {
                    s.events.push(ev(&addr, "forwarded", &from_parent(&to)));
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
                    if let Some(quota) = quota {
                        let store = self.store;
                        let used = self
                            .usage
                            .entry(mail_file.to_ascii_lowercase())
                            .or_insert_with(|| store.mailfile_usage(&mail_file).unwrap_or(0));
                        if *used + size > quota {
                            failures.push((addr, Failure::new("5.2.2", QUOTA_REASON)));
                            continue;
                        }
                        *used += size;
                    }
                    s.deliveries.push(Delivery {
                        recipient: addr.clone(),
                        mail_file: mail_file.clone(),
                        folder: "Inbox".into(),
                        internal_date: now,
                        route_servers: (msg.route.iter().map(|h| h.server.clone()))
                            .chain([server.clone()])
                            .collect(),
                        route_times: (msg.route.iter().map(|h| h.time)).chain([now]).collect(),
                        flags: Flags::default(),
                    });
                    s.events
                        .push(ev(&addr, "delivered", &from_parent(&mail_file)));
                    s.outcomes
                        .push((addr.clone(), final_status(RecipientStatus::Delivered, None)));
                    plan.local.push((addr, owner));
                }
                Action::Route(Route::Server {
                    destination,
                    next_hop,
                }) => {
                    if self.router_debug >= 2
                        && let Ok(to) = destination.parse::<directory::NotesName>()
                        && let Some(path) = ctx.path_to(&to)
                    {
                        for line in path.describe() {
                            info!(target: "router", "{line}");
                        }
                    }
                    if self.router_debug == 1 || self.router_debug == 3 {
                        info!(target: "router", "Router: {addr} queued for {next_hop} (NRPC), mail server {destination}");
                    }
                    let detail = if destination.eq_ignore_ascii_case(&next_hop) {
                        format!("NRPC queue {next_hop}")
                    } else {
                        format!("NRPC queue {next_hop} (for {destination})")
                    };
                    s.events.push(ev(&addr, "queued", &from_parent(&detail)));
                    let via = routing::Via::Native(next_hop.clone());
                    s.outcomes.push((
                        addr.clone(),
                        RecipientUpdate::Queued {
                            queue: next_hop.clone(),
                            via: via.encode(),
                        },
                    ));
                    add_handoff(&mut plan.handoffs, msg, next_hop, via, addr);
                }
                Action::Route(Route::Smtp { queue, via }) => {
                    if let Some(f) = routing::outbound_refusal(&snap.config, &msg.from, &addr) {
                        failures.push((addr, f));
                        continue;
                    }
                    s.events.push(ev(
                        &addr,
                        "queued",
                        &from_parent(&format!("SMTP queue {queue}")),
                    ));
                    s.outcomes.push((
                        addr.clone(),
                        RecipientUpdate::Queued {
                            queue: queue.clone(),
                            via: via.encode(),
                        },
                    ));
                    add_handoff(
                        &mut plan.handoffs,
                        msg,
                        queue,
                        routing::Via::Smtp(via),
                        addr,
                    );
                }
                Action::Route(Route::Fail(f)) => failures.push((addr, f)),
            }
        }
        if !failures.is_empty() {
            self.fail(msg, &msg_id, failures, &mut plan);
        }
        plan
    }

    /// Failed recipients: a report to the sender, or Held, or Dead.
    pub(crate) fn fail(
        &self,
        msg: &QueuedMessage,
        msg_id: &str,
        failures: Vec<(String, Failure)>,
        plan: &mut Plan,
    ) {
        let snap = self.snap;
        let now = self.now;
        let server = snap.server.name.to_string();
        let first = failures[0].1.reason.clone();
        let is_report = msg.kind == MessageKind::Report || msg.from.is_empty();
        let (outcome, state) = if is_report {
            ("dead", Some(MessageState::Dead))
        } else if snap.config.hold_undeliverable {
            ("held", Some(MessageState::Held))
        } else {
            ("failed", None)
        };
        let parents = parents_of(msg, &plan.settlement.derived);
        let s = &mut plan.settlement;
        for (addr, f) in &failures {
            if self.verbosity.shows(20) {
                warn!(target: "router", "Router: Message {msg_id} NOT delivered to {addr} from {}: {}",
                    if msg.from.is_empty() { "<>" } else { &msg.from }, f.reason);
            }
            let detail = match parents.get(&addr.to_ascii_lowercase()) {
                Some(p) => format!("{} (from {p})", f.reason),
                None => f.reason.clone(),
            };
            s.events.push(event(
                now,
                msg_id,
                &msg.from,
                addr,
                &server,
                outcome,
                &detail,
                msg.hop_count,
                msg.size,
            ));
            let update = match state {
                // Held and Dead mail keeps its recipients open for a later release.
                Some(_) => RecipientUpdate::Pending {
                    reason: f.reason.clone(),
                    queue: None,
                },
                None => final_status(RecipientStatus::Failed, Some(f.reason.clone())),
            };
            s.outcomes.push((addr.clone(), update));
            plan.failed.push(addr.clone());
        }
        if let Some(state) = state {
            s.state = Some((state, Some(first)));
            return;
        }
        let failed: Vec<FailedRecipient> = failures
            .iter()
            .map(|(addr, f)| FailedRecipient {
                address: addr.clone(),
                reason: match parents.get(&addr.to_ascii_lowercase()) {
                    Some(p) => format!("{} (member of or forwarded by {p})", f.reason),
                    None => f.reason.clone(),
                },
                status: f.status.to_owned(),
                remote_mta: None,
            })
            .collect();
        // The original is read only now, for the report: bodies do not ride with the message.
        let original = match self.store.message_data(msg.id) {
            Ok(Some(data)) => data,
            Ok(None) => return, // deleted meanwhile: nothing to report about
            Err(e) => {
                warn!(target: "router", "Router: cannot read message {msg_id} for its report: {e}");
                Vec::new()
            }
        };
        let route_servers: Vec<String> = (msg.route.iter().map(|h| h.server.clone()))
            .chain([server.clone()])
            .collect();
        let unique = format!("{}.{}", msg.id, now);
        let r = report::delivery_failure(&ReportInput {
            reporting_host: &snap.server.hostname,
            original_from: &msg.from,
            original: &original,
            route_servers: &route_servers,
            arrival: msg.received_at,
            failures: &failed,
            unique: &unique,
        });
        plan.reports += 1;
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
            ..Incoming::default()
        });
    }
}

/// `addr` joins the hand-off of `msg` to `queue` (one per queue).
fn add_handoff(
    handoffs: &mut Vec<Handoff>,
    msg: &QueuedMessage,
    queue: String,
    via: routing::Via,
    addr: String,
) {
    match handoffs.iter_mut().find(|h| h.queue == queue) {
        Some(h) => h.recipients.push(addr),
        None => handoffs.push(Handoff {
            queue,
            via,
            message: msg.id,
            recipients: vec![addr],
            size: msg.size,
            not_before: None,
            attempts: 0,
            priority: msg.priority,
        }),
    }
}

impl Plan {
    pub(crate) fn for_message(msg: &QueuedMessage) -> Plan {
        Plan {
            settlement: Settlement {
                message: msg.id,
                ..Settlement::default()
            },
            label: message_label(msg),
            size: msg.size,
            received_at: msg.received_at,
            hop_count: msg.hop_count,
            priority: msg.priority,
            ..Plan::default()
        }
    }
}

/// Where each derived recipient came from, by lower-case address: the rows'
/// parents, and those derived in this pass.
fn parents_of(msg: &QueuedMessage, derived: &[(String, String)]) -> HashMap<String, String> {
    msg.recipients
        .iter()
        .filter_map(|r| {
            r.parent
                .clone()
                .map(|p| (r.address.to_ascii_lowercase(), p))
        })
        .chain(
            derived
                .iter()
                .map(|(a, p)| (a.to_ascii_lowercase(), p.clone())),
        )
        .collect()
}

/// The Message-ID a log line names a message by, or its mail box id.
pub(crate) fn message_label(msg: &QueuedMessage) -> String {
    msg.message_id
        .clone()
        .unwrap_or_else(|| format!("{}", msg.id))
}

pub(crate) fn final_status(status: RecipientStatus, reason: Option<String>) -> RecipientUpdate {
    RecipientUpdate::Final { status, reason }
}
