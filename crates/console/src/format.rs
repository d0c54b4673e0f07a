//! What commands answer with: data first, Domino's text second.

use std::fmt::Write as _;

use serde::Serialize;

/// A statistic's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StatValue {
    Int(i64),
    Text(String),
}

impl std::fmt::Display for StatValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatValue::Int(n) => write!(f, "{n}"),
            StatValue::Text(s) => f.write_str(s),
        }
    }
}

/// `show stat [FILTER]`: `FILTER` is a facility (`mail`, `smtp`, `router`, ...)
/// or a pattern with `*`; matching is case-insensitive on the name's start.
pub fn stat_matches(name: &str, filter: Option<&str>) -> bool {
    let Some(filter) = filter else { return true };
    let name = name.to_ascii_lowercase();
    let filter = filter.to_ascii_lowercase();
    if filter.contains('*') {
        return glob(&name, &filter);
    }
    name == filter || name.starts_with(&format!("{filter}."))
}

fn glob(name: &str, pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

/// `show stat` text: `  Name = value` lines sorted by name, then `  N statistics found`.
pub fn format_stats(stats: &[(String, StatValue)], filter: Option<&str>) -> String {
    let mut rows: Vec<&(String, StatValue)> = stats
        .iter()
        .filter(|(n, _)| stat_matches(n, filter))
        .collect();
    rows.sort_by_key(|a| a.0.to_ascii_lowercase());
    let mut out = String::new();
    for (name, value) in &rows {
        let _ = writeln!(out, "  {name} = {value}");
    }
    let _ = writeln!(out, "  {} statistics found", rows.len());
    out
}

/// The state of a per-destination queue (SPEC §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum QueueState {
    Ready,
    Wait,
    /// Transfer or delivery in progress; the count of threads on it.
    Busy(u32),
    /// Waiting to retry; the attempt count.
    Retry(u32),
}

impl std::fmt::Display for QueueState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueState::Ready => f.write_str("Ready"),
            QueueState::Wait => f.write_str("Wait"),
            QueueState::Busy(n) => write!(f, "Busy({n})"),
            QueueState::Retry(n) => write!(f, "Retry({n})"),
        }
    }
}

/// One line of `tell router show queues`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueLine {
    pub msgs: u64,
    pub state: QueueState,
    /// `NRPC` or `SMTP`.
    pub via: String,
    pub destination: String,
    pub last_error: Option<String>,
    /// Unix milliseconds.
    pub next_retry: Option<i64>,
}

/// Thread counters printed under the queues.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ThreadCounts {
    pub max: u32,
    pub total: u32,
    pub inactive: u32,
    pub max_concurrent: u32,
}

/// `tell router show queues`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Queues {
    pub queues: Vec<QueueLine>,
    pub transfer: ThreadCounts,
    pub delivery: ThreadCounts,
}

/// Domino's console date: `1/04/2009 09:53:09 AM`, local time.
pub fn console_time(unix_ms: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_millis_opt(unix_ms) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.format("%-m/%d/%Y %I:%M:%S %p").to_string()
        }
        chrono::LocalResult::None => unix_ms.to_string(),
    }
}

pub fn format_queues(q: &Queues) -> String {
    let mut out = String::from("Msgs State     Via  Destination\n");
    for line in &q.queues {
        let _ = write!(
            out,
            "{:<4} {:<9} {:<4} {}",
            line.msgs,
            line.state.to_string(),
            line.via,
            line.destination
        );
        let (why, next) = match line.state {
            QueueState::Wait => ("Waiting for", "Next route"),
            _ => ("Last error", "Next retry"),
        };
        if let Some(err) = &line.last_error {
            let _ = write!(out, " {why}: {err}");
        }
        if let Some(at) = line.next_retry {
            let _ = write!(out, " {next}: {}", console_time(at));
        }
        out.push('\n');
    }
    let t = &q.transfer;
    let _ = writeln!(
        out,
        "Transfer Threads: Max = {}; Total = {}; Inactive = {}; Max Concurrent = {}",
        t.max, t.total, t.inactive, t.max_concurrent
    );
    let d = &q.delivery;
    let _ = writeln!(
        out,
        "Delivery Threads: Max = {}; Total = {}; Inactive = {}",
        d.max, d.total, d.inactive
    );
    out
}

/// One row of `show tasks`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskLine {
    pub task: String,
    pub description: String,
}

pub fn format_tasks(tasks: &[TaskLine]) -> String {
    let mut out = format!("{:<22} {}\n", "Task", "Description");
    for t in tasks {
        let _ = writeln!(out, "{:<22} {}", t.task, t.description);
    }
    out
}

/// `show server`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerInfo {
    pub server: String,
    pub domain: String,
    pub hostname: String,
    pub version: String,
    pub uptime_s: u64,
    pub pending: u64,
    pub dead: u64,
    pub held: u64,
    pub mailboxes: u32,
    pub tracking: bool,
    /// A server mail rule journals (`journal` with `journal_to` set).
    pub journalling: bool,
    pub ports: Vec<(String, String)>,
    pub data: String,
    /// Why the store cannot be trusted (the server refuses new mail), if so.
    pub store_problem: Option<String>,
    /// The server's ID for the native protocol and its certifier, or why it has none.
    pub server_id: String,
}

pub fn format_server(s: &ServerInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "mailhop {}", s.version);
    let _ = writeln!(out, "Server name:            {} - {}", s.server, s.hostname);
    let _ = writeln!(out, "Domain name:            {}", s.domain);
    let (d, h, m, sec) = (
        s.uptime_s / 86_400,
        s.uptime_s / 3600 % 24,
        s.uptime_s / 60 % 60,
        s.uptime_s % 60,
    );
    let _ = writeln!(
        out,
        "Server up time:         {d} days {h:02}:{m:02}:{sec:02}"
    );
    let _ = writeln!(out, "Data directory:         {}", s.data);
    let _ = writeln!(out, "Server ID:              {}", s.server_id);
    match &s.store_problem {
        None => {
            let _ = writeln!(out, "Mail store:             OK");
        }
        Some(why) => {
            let _ = writeln!(
                out,
                "Mail store:             FAILED - new mail is refused (421): {why}"
            );
        }
    }
    let _ = writeln!(
        out,
        "Pending mail: {:<5}     Dead mail: {:<5}",
        s.pending, s.dead
    );
    let _ = writeln!(out, "Held mail:    {}", s.held);
    let _ = writeln!(out, "Number of Mailboxes:    {}", s.mailboxes);
    let _ = writeln!(
        out,
        "Mail Tracking:          {}",
        if s.tracking { "Enabled" } else { "Not Enabled" }
    );
    let _ = writeln!(
        out,
        "Mail Journalling:       {}",
        if s.journalling {
            "Enabled"
        } else {
            "Not Enabled"
        }
    );
    for (task, addr) in &s.ports {
        let _ = writeln!(out, "Listening:              {task} {addr}");
    }
    out
}

/// One entry of `show mailbox`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MailBoxLine {
    pub id: i64,
    pub state: String,
    pub from: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub size: u64,
    pub reason: Option<String>,
}

pub fn format_mailbox(rows: &[MailBoxLine]) -> String {
    let mut out = String::from("ID     State    Size     From -> Recipients\n");
    for r in rows {
        let _ = writeln!(
            out,
            "{:<6} {:<8} {:<8} {} -> {}",
            r.id,
            r.state,
            r.size,
            if r.from.is_empty() { "<>" } else { &r.from },
            r.recipients.join(", ")
        );
        if !r.subject.is_empty() {
            let _ = writeln!(out, "       Subject: {}", r.subject);
        }
        if let Some(reason) = &r.reason {
            let _ = writeln!(out, "       Reason: {reason}");
        }
    }
    let _ = writeln!(out, "{} messages", rows.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_sorted_filtered_counted() {
        let stats = vec![
            ("Mail.Delivered".to_owned(), StatValue::Int(3)),
            ("SMTP.Sessions.Inbound.Total".to_owned(), StatValue::Int(9)),
            ("Mail.Dead".to_owned(), StatValue::Int(1)),
            ("MailX.Other".to_owned(), StatValue::Int(1)),
        ];
        let text = format_stats(&stats, Some("mail"));
        assert_eq!(
            text,
            "  Mail.Dead = 1\n  Mail.Delivered = 3\n  2 statistics found\n"
        );
        assert!(format_stats(&stats, Some("smtp.*.total")).contains("= 9"));
        assert!(format_stats(&stats, None).ends_with("  4 statistics found\n"));
    }

    #[test]
    fn queues_as_domino_prints_them() {
        let q = Queues {
            queues: vec![
                QueueLine {
                    msgs: 57,
                    state: QueueState::Busy(18),
                    via: "NRPC".into(),
                    destination: "[$LocalDelivery]".into(),
                    last_error: None,
                    next_retry: None,
                },
                QueueLine {
                    msgs: 3,
                    state: QueueState::Wait,
                    via: "SMTP".into(),
                    destination: "theinternet (relay [10.0.0.1];[10.0.0.2])".into(),
                    last_error: None,
                    next_retry: None,
                },
            ],
            transfer: ThreadCounts {
                max: 18,
                total: 14,
                inactive: 0,
                max_concurrent: 9,
            },
            delivery: ThreadCounts {
                max: 18,
                total: 18,
                inactive: 0,
                max_concurrent: 0,
            },
        };
        assert_eq!(
            format_queues(&q),
            "Msgs State     Via  Destination\n\
             57   Busy(18)  NRPC [$LocalDelivery]\n\
             3    Wait      SMTP theinternet (relay [10.0.0.1];[10.0.0.2])\n\
             Transfer Threads: Max = 18; Total = 14; Inactive = 0; Max Concurrent = 9\n\
             Delivery Threads: Max = 18; Total = 18; Inactive = 0\n"
        );
    }

    #[test]
    fn retry_line_has_last_error_and_next_retry() {
        let q = Queues {
            queues: vec![QueueLine {
                msgs: 24,
                state: QueueState::Retry(4),
                via: "NRPC".into(),
                destination: "CN=MesungUS/O=Sun (Push)".into(),
                last_error: Some("Server not responding".into()),
                next_retry: Some(1_231_059_189_000),
            }],
            ..Queues::default()
        };
        let text = format_queues(&q);
        let line = text.lines().nth(1).unwrap();
        assert!(line.starts_with("24   Retry(4)  NRPC CN=MesungUS/O=Sun (Push) Last error: Server not responding Next retry: "));
        assert!(line.ends_with(" AM") || line.ends_with(" PM"));
    }

    #[test]
    fn server_lines_use_domino_widths() {
        let s = ServerInfo {
            server: "Mail/Acme".into(),
            domain: "Acme".into(),
            hostname: "mail.acme.com".into(),
            version: "0.1.0".into(),
            uptime_s: 3723,
            pending: 2,
            dead: 1,
            held: 0,
            mailboxes: 1,
            tracking: false,
            journalling: false,
            ports: vec![("SMTP".into(), "127.0.0.1:2525".into())],
            data: "d".into(),
            store_problem: None,
            server_id: "Mail/Acme (certified by CN=Acme certifier)".into(),
        };
        let text = format_server(&s);
        assert!(text.contains("Pending mail: 2         Dead mail: 1    \n"));
        assert!(text.contains("Number of Mailboxes:    1\n"));
        assert!(text.contains("Mail Tracking:          Not Enabled\n"));
        assert!(text.contains("Mail Journalling:       Not Enabled\n"));
        assert!(text.contains("0 days 01:02:03"));
        assert!(text.contains("Server ID:              Mail/Acme (certified by"));
    }
}
