//! Running console commands against one server (the `console` crate parses
//! and formats; this module fetches the data).

use std::sync::atomic::Ordering::Relaxed;

use console::{
    Command, MailBoxLine, QueueLine, QueueState, Queues, ReleaseWhich, ServerInfo, StatValue, Task,
    TaskLine, ThreadCounts,
};
use store::MessageState;

use crate::instance::{Instance, lock};

/// Run one command line; the text is what the administrator sees.
pub(crate) async fn run(inst: &std::sync::Arc<Instance>, line: &str) -> String {
    match console::parse(line) {
        Ok(cmd) => match execute(inst, cmd).await {
            Ok(text) => text,
            Err(e) => format!("Error: {e:#}\n"),
        },
        Err(e) => format!("{e}\n"),
    }
}

async fn execute(inst: &std::sync::Arc<Instance>, cmd: Command) -> anyhow::Result<String> {
    Ok(match cmd {
        Command::Help => HELP.to_owned(),
        Command::ShowServer => console::format_server(&server_info(inst)?),
        Command::ShowTasks => console::format_tasks(&tasks(inst)),
        Command::ShowStat(filter) => console::format_stats(&stats(inst)?, filter.as_deref()),
        Command::ShowQueues => console::format_queues(&queues(inst)?),
        Command::DeliveryStats => {
            let s = &inst.router.shared().stats;
            let secs = inst.started.elapsed().as_secs_f64().max(1.0);
            let delivered = s.delivered.load(Relaxed);
            format!(
                "Router: Delivered {delivered} messages ({} KB), {:.1} messages/s since start; Transferred {}; Failures {}\n",
                s.delivered_bytes.load(Relaxed) / 1024,
                delivered as f64 / secs,
                s.transferred.load(Relaxed),
                s.total_failures.load(Relaxed)
            )
        }
        Command::UpdateConfig => {
            if crate::reload_directory(&inst.directory_path, std::slice::from_ref(inst)).await {
                "Router: Configuration updated: routing tables rebuilt\n".to_owned()
            } else {
                "Router: The directory has errors; the previous configuration stays in use (see the log)\n"
                    .to_owned()
            }
        }
        Command::Release { which, id } => release(inst, which, id).await?,
        Command::Delete(id) => {
            if inst.router.delete(id).await? {
                format!("Router: Message {id} deleted from the mail box\n")
            } else {
                format!("Router: No message {id} in the mail box\n")
            }
        }
        Command::Route(dest) => {
            let queues = inst.router.route_now(Some(&dest));
            if dest == "*" || dest.eq_ignore_ascii_case("LocalDelivery") {
                inst.router.requeue_pending().await;
            }
            format!("Router: Routing pending mail for {dest} now ({queues} queues)\n")
        }
        Command::Trace(target) => trace(inst, &target).await,
        Command::SetConfig { name, value } => {
            let key = name.to_ascii_lowercase();
            if let Some(var) = inst.debug_var(&key) {
                let level: u8 = value
                    .parse()
                    .ok()
                    .filter(|l| key != "log_mailrouting" || [10, 20, 30, 40].contains(l))
                    .ok_or_else(|| anyhow::anyhow!("{name}: not a valid level"))?;
                var.set(level);
            }
            lock(&inst.config_vars).insert(key, value.clone());
            format!("{name}={value}\n")
        }
        Command::ShowConfig(name) => {
            let key = name.to_ascii_lowercase();
            let value = lock(&inst.config_vars).get(&key).cloned().or_else(|| {
                let d = inst.snapshot().server.debug;
                if let Some(var) = inst.debug_var(&key) {
                    return Some(var.get().to_string());
                }
                Some(
                    match key.as_str() {
                        "debugrouter" => d.debug_router,
                        "smtpdebug" => d.smtp_debug,
                        "smtpdebugio" => d.smtp_debug_io,
                        "smtpsaveimporterrors" => d.smtp_save_import_errors,
                        _ => return None,
                    }
                    .to_string(),
                )
            });
            match value {
                Some(v) => format!("{name}={v}\n"),
                None => format!("{name} is not set\n"),
            }
        }
        Command::Load(Task::Router) | Command::Quit(Task::Router) => {
            "Router: the router runs while the server runs\n".to_owned()
        }
        Command::Load(t) => match inst.load_task(t).await? {
            0 => format!(
                "{t} Server: already running, or no {} address in [server.listen]\n",
                t.to_string().to_ascii_lowercase()
            ),
            n => format!("{t} Server: Started ({n} listeners)\n"),
        },
        Command::Quit(t) => format!(
            "{t} Server: Shutdown ({} listeners stopped)\n",
            inst.stop_task(t).await
        ),
        Command::Track {
            from,
            to,
            subject,
            id,
        } => track(inst, from, to, subject, id)?,
        Command::ShowMailBox(which) => {
            let state = match which.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("all") => None,
                Some("held") => Some(MessageState::Held),
                Some("dead") => Some(MessageState::Dead),
                Some("pending") => Some(MessageState::Pending),
                Some(other) => anyhow::bail!("show mailbox [held|dead|pending]: not '{other}'"),
            };
            let rows: Vec<MailBoxLine> = inst
                .store
                .list(state)?
                .into_iter()
                .map(|m| MailBoxLine {
                    id: m.id,
                    state: format!("{:?}", m.state),
                    from: m.from,
                    recipients: m.recipients,
                    subject: m.subject.unwrap_or_default(),
                    size: m.size,
                    reason: m.reason,
                })
                .collect();
            console::format_mailbox(&rows)
        }
    })
}

const HELP: &str = "Commands: show server | show tasks | show stat [mail|smtp|router|PATTERN] | show mailbox [held|dead|pending]\n\
 tell router show queues | tell router delivery stats | tell router update config\n\
 tell router release dead|held [ID] | tell router delete ID | route SERVER|* | trace ADDRESS\n\
 set config NAME=VALUE | show config NAME | load smtp | tell smtp quit | track [--from A] [--to B] [--subject S] [--id MSGID]\n";

fn server_info(inst: &Instance) -> anyhow::Result<ServerInfo> {
    let snap = inst.snapshot();
    // An unhealthy store may still be readable; the counts are shown if so.
    let counts = inst.store.counts().unwrap_or_default();
    let mut ports: Vec<(String, String)> = lock(&inst.tasks)
        .iter()
        .map(|t| {
            (
                format!("{} ({})", t.label, t.listener.key()),
                t.addr.to_string(),
            )
        })
        .collect();
    ports.sort();
    Ok(ServerInfo {
        server: snap.server.name.canonical(),
        domain: snap.dir.domain.name.clone(),
        hostname: snap.server.hostname.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_s: inst.started.elapsed().as_secs(),
        pending: counts.pending,
        dead: counts.dead,
        held: counts.held,
        mailboxes: u32::from(snap.config.mailboxes),
        tracking: true,
        journalling: !snap.config.journal_to.trim().is_empty()
            && snap
                .config
                .rules
                .iter()
                .any(|r| r.action == directory::RuleAction::Journal),
        ports,
        data: inst.data.display().to_string(),
        store_problem: inst.store.health().err(),
        server_id: inst.server_id.clone(),
    })
}

fn tasks(inst: &Instance) -> Vec<TaskLine> {
    let s = &inst.router.shared().stats;
    let mut out: Vec<TaskLine> = lock(&inst.tasks)
        .iter()
        .map(|t| TaskLine {
            task: t.label.to_owned(),
            description: format!("Listen for connect requests on TCP Port {}", t.addr.port()),
        })
        .collect();
    let busy = s.delivery_active.load(Relaxed);
    out.push(TaskLine {
        task: "Router".into(),
        description: "Router: Main: Idle".into(),
    });
    out.push(TaskLine {
        task: "Router".into(),
        description: if busy > 0 {
            format!("Router: Delivery: Delivering mail ({busy} threads)")
        } else {
            "Router: Delivery: Searching for mail to deliver".into()
        },
    });
    out.push(TaskLine {
        task: "Router".into(),
        description: "Router: Mailbox 1: Idle".into(),
    });
    out
}

fn stats(inst: &Instance) -> anyhow::Result<Vec<(String, StatValue)>> {
    let snap = inst.snapshot();
    let counts = inst.store.counts()?;
    let (waiting, waiting_dns) = inst.router.outbound_waiting();
    let int = |n: u64| StatValue::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let mut out = inst.router.shared().stats.snapshot();
    out.extend([
        ("Mail.Dead".to_owned(), int(counts.dead)),
        ("Mail.Hold".to_owned(), int(counts.held)),
        ("Mail.TotalPending".to_owned(), int(counts.total)),
        ("Mail.Waiting".to_owned(), int(waiting)),
        ("Mail.WaitingForDNS".to_owned(), int(waiting_dns)),
        (
            "Mail.WaitingRecipients".to_owned(),
            int(counts.waiting_recipients),
        ),
        (
            "Mail.Domain".to_owned(),
            StatValue::Text(snap.dir.domain.name.clone()),
        ),
        (
            "Server.Name".to_owned(),
            StatValue::Text(snap.server.name.canonical()),
        ),
        (
            "Server.Time.Uptime".to_owned(),
            int(inst.started.elapsed().as_secs()),
        ),
    ]);
    out.extend(
        inst.smtp_stats
            .snapshot()
            .into_iter()
            .map(|(n, v)| (n.to_owned(), int(v))),
    );
    out.extend(
        inst.control_stats
            .snapshot()
            .into_iter()
            .map(|(n, v)| (n, int(v))),
    );
    out.extend(
        inst.sender_auth
            .stats()
            .into_iter()
            .map(|(n, v)| (n, int(v))),
    );
    out.extend(
        inst.auth
            .stats()
            .into_iter()
            .map(|(n, v)| (n.to_owned(), int(v))),
    );
    for p in [access::Protocol::Pop3, access::Protocol::Imap] {
        out.extend(
            inst.access_stats
                .snapshot(p)
                .into_iter()
                .map(|(n, v)| (n, int(v))),
        );
    }
    Ok(out)
}

fn queues(inst: &Instance) -> anyhow::Result<Queues> {
    let shared = inst.router.shared();
    let snap = inst.snapshot();
    // The mail box's view of its queues (e.g. recipients waiting for another
    // server); an outbound queue's own line replaces the mail box's view of it.
    let outbound = inst.router.outbound_queues();
    let recorded: Vec<store::QueueSummary> = inst
        .store
        .queues()?
        .into_iter()
        .filter(|q| {
            !outbound.iter().any(|l| {
                l.destination.eq_ignore_ascii_case(&q.queue)
                    || l.destination.starts_with(&format!("{} (", q.queue))
            })
        })
        .collect();
    let mut lines = Vec::new();
    let busy = shared.stats.delivery_active.load(Relaxed);
    if busy > 0 {
        lines.push(QueueLine {
            msgs: busy,
            state: QueueState::Busy(u32::try_from(busy).unwrap_or(u32::MAX)),
            via: "NRPC".into(),
            destination: "[$LocalDelivery]".into(),
            last_error: None,
            next_retry: None,
        });
    }
    for q in recorded {
        let is_server = snap.dir.server_by_str(&q.queue).is_some();
        lines.push(QueueLine {
            msgs: q.messages,
            state: match q.next_attempt {
                Some(_) => QueueState::Retry(q.attempts),
                None => QueueState::Wait,
            },
            via: if is_server { "NRPC" } else { "SMTP" }.into(),
            destination: q.queue,
            last_error: q.last_error,
            next_retry: q.next_attempt,
        });
    }
    lines.extend(outbound);
    let d = u32::from(snap.config.delivery_threads);
    let t = u32::from(snap.config.transfer_threads);
    let t_active = u32::try_from(shared.stats.transfer_active.load(Relaxed)).unwrap_or(0);
    Ok(Queues {
        queues: lines,
        transfer: ThreadCounts {
            max: t,
            total: t,
            inactive: t.saturating_sub(t_active),
            max_concurrent: u32::from(snap.config.max_concurrent_transfers),
        },
        delivery: ThreadCounts {
            max: d,
            total: d,
            inactive: d.saturating_sub(u32::try_from(busy).unwrap_or(0)),
            max_concurrent: 0,
        },
    })
}

async fn release(inst: &Instance, which: ReleaseWhich, id: Option<i64>) -> anyhow::Result<String> {
    let state = match which {
        ReleaseWhich::Dead => MessageState::Dead,
        ReleaseWhich::Held => MessageState::Held,
    };
    let word = match which {
        ReleaseWhich::Dead => "dead",
        ReleaseWhich::Held => "held",
    };
    let candidates: Vec<i64> = inst
        .store
        .list(Some(state))?
        .into_iter()
        .map(|m| m.id)
        .filter(|m| id.is_none_or(|id| id == *m))
        .collect();
    if candidates.is_empty() {
        return Ok(match id {
            Some(id) => format!("Router: No {word} message {id} in the mail box\n"),
            None => format!("Router: No {word} messages in the mail box\n"),
        });
    }
    let mut released = 0;
    for m in &candidates {
        if inst.router.release(*m).await? {
            released += 1;
        }
    }
    Ok(format!("Router: Released {released} {word} messages\n"))
}

async fn trace(inst: &Instance, target: &str) -> String {
    let snap = inst.snapshot();
    let mut out = String::new();
    if let Some(server) = snap.dir.server_by_str(target) {
        out.push_str(&format!("Determining path to server {}\n", server.name));
        out.push_str("Available Ports: TCPIP\n");
        out.push_str("Checking normal priority connection documents only...\n");
        let raises = inst
            .router
            .shared()
            .raises
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        let now = chrono::Utc::now().timestamp_millis();
        let ctx = snap.routing_with(&raises, now);
        match routing::route_to_server(ctx, &server.name) {
            routing::Route::Server { next_hop, .. } => {
                if let Some(path) = ctx.path_to(&server.name) {
                    for line in path.describe() {
                        out.push_str(&line);
                        out.push('\n');
                    }
                    match path.hops.first().map(|h| &h.kind) {
                        Some(routing::EdgeKind::Network(net)) => out.push_str(&format!(
                            "{next_hop} is on the same Notes named network ({net})\n"
                        )),
                        _ if next_hop.eq_ignore_ascii_case(&server.name.to_string()) => out
                            .push_str(&format!("connection document found for {}\n", server.name)),
                        _ => out.push_str(&format!(
                            "connection document found for {} via {next_hop}\n",
                            server.name
                        )),
                    }
                }
                for line in inst.router.trace_native(&next_hop).await {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            routing::Route::Local { .. } => out.push_str("This server\n"),
            routing::Route::Fail(f) => {
                out.push_str(&format!("No path found to {}\n{}\n", server.name, f.reason))
            }
            routing::Route::Smtp { .. } => {}
        }
        return out;
    }
    out.push_str(&format!("Determining path to {target}\n"));
    let mut smtp = Vec::new();
    let mut native = Vec::new();
    let raises = inst
        .router
        .shared()
        .raises
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    let ctx = snap.routing_with(&raises, chrono::Utc::now().timestamp_millis());
    for step in routing::resolve(ctx, target) {
        if let routing::Action::Route(routing::Route::Smtp { via, .. }) = &step.action {
            smtp.push(via.clone());
        }
        if let routing::Action::Route(routing::Route::Server {
            destination,
            next_hop,
        }) = &step.action
            && !native.contains(next_hop)
        {
            if let Ok(to) = destination.parse::<directory::NotesName>()
                && let Some(path) = ctx.path_to(&to)
            {
                for line in path.describe() {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            native.push(next_hop.clone());
        }
        let line = match &step.action {
            routing::Action::Route(routing::Route::Local { owner, .. }) => format!(
                "Address found in local Domino Directory names table for {owner}\n{}: {}",
                step.address,
                router::describe(&step.action)
            ),
            other => format!("{}: {}", step.address, router::describe(other)),
        };
        out.push_str(&line);
        out.push('\n');
    }
    for next in native {
        for line in inst.router.trace_native(&next).await {
            out.push_str(&line);
            out.push('\n');
        }
    }
    for via in smtp {
        for line in inst.router.trace_smtp(&via).await {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

fn track(
    inst: &Instance,
    from: Option<String>,
    to: Option<String>,
    subject: Option<String>,
    id: Option<String>,
) -> anyhow::Result<String> {
    let q = store::EventQuery {
        message_id: id,
        sender: from,
        recipient: to,
        limit: Some(200),
        ..Default::default()
    };
    let events = inst.store.events(&q)?;
    let mut out = String::new();
    if subject.is_some() {
        out.push_str(
            "track: routing events do not record subjects; matching on --from, --to and --id\n",
        );
    }
    for e in events {
        out.push_str(&format!(
            "{} {} {} -> {} {} {} {}\n",
            console::console_time(e.time),
            e.message_id,
            if e.sender.is_empty() { "<>" } else { &e.sender },
            e.recipient,
            e.outcome,
            e.server,
            e.detail
        ));
    }
    if out.is_empty() {
        out.push_str("No routing events match\n");
    }
    Ok(out)
}
