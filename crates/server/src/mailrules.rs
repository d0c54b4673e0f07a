//! Server mail rules at the SMTP listener: the rules of the configuration
//! are evaluated on each message before it is accepted, so `reject` is a
//! `550` at the end of DATA and `hold` puts the message in the mail box
//! Held, named by its rule in `show mailbox`.
//!
//! Owns reading the message for the rules (on a blocking thread when the
//! body must be parsed) and turning matches into a reply or a Held reason.
//! `copy-to` adds a recipient row (its parent the rule) to the message;
//! `journal` stores a copy for `journal_to`, in the same transaction, with
//! the original envelope in header lines on top; `drop` and
//! `drop-and-report` take the original recipients off (the latter with a
//! Delivery Failure Report to the sender, stored with the rest); `move-to`
//! puts the mail-in database or person that owns the named mail file in
//! their place. Every match is a routing event naming the rule, written in
//! the transaction that stores the message. The conditions are
//! `routing::rules`'.

use directory::{Config, RuleAction};
use report::{FailedRecipient, ReportInput};
use routing::rules::{Facts, Matched, evaluate, needs_content};
use smtp::{Envelope, Reply};
use store::RoutingEvent;

/// What happens to the original recipients of a message: the first
/// `hold`, `drop`, `drop-and-report` or `move-to` among the matched rules
/// decides it (`copy-to` and `journal` act besides).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Routed to its recipients.
    #[default]
    Route,
    /// Put in the mail box Held, for this reason.
    Hold(String),
    /// Not delivered to its recipients (`drop`); with `report`, its sender
    /// gets a Delivery Failure Report naming the rule (`drop-and-report`).
    Drop { rule: String, report: bool },
    /// Delivered to this recipient (a mail-in database or a person, found
    /// by its mail file) instead of its own (`move-to`).
    MoveTo { rule: String, recipient: String },
}

/// What the rules decided about one message.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Decision {
    pub disposition: Disposition,
    /// Recipients to add (`copy-to`), each with the rule that adds it.
    pub copies: Vec<(String, String)>,
    /// A `journal` rule matched: this one.
    pub journal: Option<String>,
    /// Every rule that matched, with its action, for the routing events.
    pub matched: Vec<Matched>,
}

/// Evaluates the rules on a message received by SMTP. `Err` is the reply
/// that refuses it (`reject`).
pub(crate) async fn at_accept(
    directory: &directory::Directory,
    config: &Config,
    env: &Envelope,
    message: &[u8],
    subject: &str,
    peer: std::net::IpAddr,
) -> Result<Decision, Reply> {
    let rules = &config.rules;
    if rules.is_empty() {
        return Ok(Decision::default());
    }
    let with_body = needs_content(rules);
    let content = if with_body && message.len() > 64 * 1024 {
        let copy = message.to_vec();
        tokio::task::spawn_blocking(move || headers::content(&copy, true))
            .await
            .unwrap_or_default()
    } else {
        headers::content(message, with_body)
    };
    let facts = Facts {
        sender: &env.from,
        recipients: &env.recipients,
        subject,
        size: u64::try_from(message.len()).unwrap_or(u64::MAX),
        headers: &content.headers,
        body: &content.body,
        attachments: &content.attachments,
    };
    let matched = evaluate(rules, &facts);
    for m in &matched {
        tracing::info!(
            "Router: message from <{}> ({} from {peer}) matched {}: {}",
            env.from.escape_debug(),
            subject.escape_debug(),
            m.name(),
            m.action
        );
    }
    decide(matched, |target| directory.move_target(target))
}

/// The reply or the disposition the matched rules ask for: a `reject`
/// anywhere refuses the message; otherwise the first rule that disposes of
/// it (hold, drop, drop-and-report, move-to) does. A `move-to` whose target
/// the directory no longer names holds the message instead: nothing is lost.
pub(crate) fn decide(
    matched: Vec<Matched>,
    move_target: impl Fn(&str) -> Option<String>,
) -> Result<Decision, Reply> {
    if matched.iter().any(|m| m.action == RuleAction::Reject) {
        return Err(
            Reply::new(550, (5, 7, 1), "Message rejected for policy reasons")
                .counted(smtp::Refusal::RuleRejected),
        );
    }
    let disposition = matched
        .iter()
        .find_map(|m| match &m.action {
            RuleAction::Hold => Some(Disposition::Hold(format!("Held by {}", m.name()))),
            RuleAction::Drop | RuleAction::DropAndReport => Some(Disposition::Drop {
                rule: m.name(),
                report: m.action == RuleAction::DropAndReport,
            }),
            RuleAction::MoveTo(target) => Some(match move_target(target) {
                Some(recipient) => Disposition::MoveTo {
                    rule: m.name(),
                    recipient,
                },
                None => Disposition::Hold(format!(
                    "Held by {}: move-to {} names no mail-in database or person",
                    m.name(),
                    logsafe::shown(target)
                )),
            }),
            _ => None,
        })
        .unwrap_or_default();
    Ok(Decision {
        disposition,
        copies: matched
            .iter()
            .filter_map(|m| match &m.action {
                RuleAction::CopyTo(address) => Some((address.clone(), m.name())),
                _ => None,
            })
            .collect(),
        journal: matched
            .iter()
            .find(|m| m.action == RuleAction::Journal)
            .map(Matched::name),
        matched,
    })
}

/// A message the rules acted on, as its routing events and report name it.
pub(crate) struct Ruled<'a> {
    /// This server, as the router's events name it.
    pub server: String,
    /// This server's host name, the report's `Postmaster@HOST`.
    pub hostname: &'a str,
    pub from: &'a str,
    /// The original recipients.
    pub recipients: &'a [String],
    /// The Message-ID; without one, the store names the events by the id
    /// of the message it stores (see `Store::accept_all`).
    pub message_id: Option<&'a str>,
    pub hop: u32,
    pub size: u64,
    pub received_at: i64,
}

impl Ruled<'_> {
    fn event(&self, recipient: &str, outcome: &str, detail: String) -> RoutingEvent {
        RoutingEvent {
            time: self.received_at,
            message_id: self.message_id.unwrap_or_default().to_owned(),
            sender: self.from.to_owned(),
            recipient: recipient.to_owned(),
            server: self.server.clone(),
            outcome: outcome.to_owned(),
            detail,
            hop: self.hop,
            size: self.size,
        }
    }

    /// One `rule` event per matched rule and original recipient, naming the
    /// rule and its action.
    pub(crate) fn match_events(&self, matched: &[Matched]) -> Vec<RoutingEvent> {
        matched
            .iter()
            .flat_map(|m| {
                self.recipients.iter().map(move |r| {
                    self.event(r, "rule", format!("matched {}: {}", m.name(), m.action))
                })
            })
            .collect()
    }

    /// The original recipients not delivered by `rule`: `failed` when the
    /// sender gets a report, `dropped` when not.
    pub(crate) fn dropped_events(&self, rule: &str, report: bool) -> Vec<RoutingEvent> {
        let outcome = if report { "failed" } else { "dropped" };
        self.recipients
            .iter()
            .map(|r| self.event(r, outcome, not_delivered(rule)))
            .collect()
    }

    /// The original recipients whose copy `rule` moved to `to`.
    pub(crate) fn moved_events(&self, rule: &str, to: &str) -> Vec<RoutingEvent> {
        self.recipients
            .iter()
            .map(|r| self.event(r, "moved", format!("moved to {to} by {rule}")))
            .collect()
    }

    /// The Delivery Failure Report of `drop-and-report`: every original
    /// recipient, refused by `rule`. None for a message from the null
    /// sender (a report is never reported).
    pub(crate) fn report(&self, rule: &str, message: &[u8]) -> Option<report::Report> {
        if self.from.is_empty() {
            return None;
        }
        let failures: Vec<FailedRecipient> = self
            .recipients
            .iter()
            .map(|r| FailedRecipient {
                address: r.clone(),
                reason: not_delivered(rule),
                status: "5.7.1".to_owned(),
                remote_mta: None,
            })
            .collect();
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let unique = format!("rule.{}.{}.{seq}", self.received_at, std::process::id());
        Some(report::delivery_failure(&ReportInput {
            reporting_host: self.hostname,
            original_from: self.from,
            original: message,
            route_servers: std::slice::from_ref(&self.server),
            arrival: self.received_at,
            failures: &failures,
            unique: &unique,
        }))
    }
}

fn not_delivered(rule: &str) -> String {
    format!("Message not delivered: refused by {rule}")
}

/// The journal copy of a message: the original envelope (sender, every
/// recipient, the rule) in header lines above the message as received.
pub(crate) fn journal_copy(
    env_from: &str,
    recipients: &[String],
    rule: &str,
    message: &[u8],
) -> Vec<u8> {
    let clean = |s: &str| -> String { s.chars().filter(|c| !c.is_control()).collect() };
    let mut out = format!(
        "X-Mailhop-Journal-From: <{}>\r\nX-Mailhop-Journal-To: {}\r\nX-Mailhop-Journal-Rule: {}\r\n",
        clean(env_from),
        recipients
            .iter()
            .map(|r| format!("<{}>", clean(r)))
            .collect::<Vec<_>>()
            .join(", "),
        clean(rule)
    )
    .into_bytes();
    out.extend_from_slice(message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(action: RuleAction, number: usize) -> Matched {
        Matched {
            number,
            line: number * 10,
            action,
        }
    }

    #[test]
    fn reject_wins_then_the_first_disposing_rule_decides() {
        let none = |_: &str| -> Option<String> { None };
        assert_eq!(decide(Vec::new(), none), Ok(Decision::default()));
        let r = decide(vec![m(RuleAction::Hold, 1), m(RuleAction::Reject, 2)], none).unwrap_err();
        assert_eq!(r.code, 550);
        assert_eq!(r.enhanced, Some((5, 7, 1)));
        assert_eq!(r.text, "Message rejected for policy reasons");
        let d = decide(
            vec![
                m(RuleAction::Journal, 1),
                m(RuleAction::Hold, 2),
                m(RuleAction::CopyTo("audit@acme.com".into()), 3),
                m(RuleAction::Drop, 4),
            ],
            none,
        )
        .expect("not refused");
        assert_eq!(
            d.disposition,
            Disposition::Hold("Held by server mail rule 2 (line 20)".into())
        );
        assert_eq!(
            d.copies,
            [(
                "audit@acme.com".to_owned(),
                "server mail rule 3 (line 30)".to_owned()
            )]
        );
        assert_eq!(d.journal.as_deref(), Some("server mail rule 1 (line 10)"));
        assert_eq!(d.matched.len(), 4);
    }

    #[test]
    fn drop_report_and_move_to() {
        let none = |_: &str| -> Option<String> { None };
        let d = decide(
            vec![m(RuleAction::DropAndReport, 1), m(RuleAction::Hold, 2)],
            none,
        )
        .expect("not refused");
        assert_eq!(
            d.disposition,
            Disposition::Drop {
                rule: "server mail rule 1 (line 10)".into(),
                report: true
            }
        );
        let d = decide(vec![m(RuleAction::Drop, 3)], none).expect("not refused");
        assert_eq!(
            d.disposition,
            Disposition::Drop {
                rule: "server mail rule 3 (line 30)".into(),
                report: false
            }
        );
        let found = |t: &str| (t == "mail/quarantine").then(|| "Quarantine".to_owned());
        let d = decide(
            vec![m(RuleAction::MoveTo("mail/quarantine".into()), 1)],
            found,
        )
        .expect("not refused");
        assert_eq!(
            d.disposition,
            Disposition::MoveTo {
                rule: "server mail rule 1 (line 10)".into(),
                recipient: "Quarantine".into()
            }
        );
        // A target the directory no longer names: held, not lost.
        let d =
            decide(vec![m(RuleAction::MoveTo("mail/gone".into()), 1)], found).expect("not refused");
        assert!(
            matches!(&d.disposition, Disposition::Hold(r) if r.contains("names no mail-in")),
            "{:?}",
            d.disposition
        );
    }
}
