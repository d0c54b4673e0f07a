//! Server mail rules at the SMTP listener: the rules of the configuration
//! are evaluated on each message before it is accepted, so `reject` is a
//! `550` at the end of DATA and `hold` puts the message in the mail box
//! Held, named by its rule in `show mailbox`.
//!
//! Owns reading the message for the rules (on a blocking thread when the
//! body must be parsed) and turning matches into a reply or a Held reason.
//! `copy-to` adds a recipient row (its parent the rule) to the message;
//! `journal` stores a copy for `journal_to`, in the same transaction, with
//! the original envelope in header lines on top. The conditions are
//! `routing::rules`'. `drop`, `drop-and-report` and `move-to` are not
//! carried out yet: `mailhop check` and `serve` say so.

use directory::{Config, RuleAction};
use routing::rules::{Facts, Matched, evaluate, needs_content};
use smtp::{Envelope, Reply};

/// What the rules decided about one message.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Decision {
    /// Put the message in the mail box Held, for this reason.
    pub held: Option<String>,
    /// Recipients to add (`copy-to`), each with the rule that adds it.
    pub copies: Vec<(String, String)>,
    /// A `journal` rule matched: this one.
    pub journal: Option<String>,
}

/// Evaluates the rules on a message received by SMTP. `Err` is the reply
/// that refuses it (`reject`).
pub(crate) async fn at_accept(
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
    decide(&matched)
}

/// The reply or the Held reason the matched rules ask for: a `reject`
/// anywhere refuses the message; otherwise the first `hold` holds it.
pub(crate) fn decide(matched: &[Matched]) -> Result<Decision, Reply> {
    if matched.iter().any(|m| m.action == RuleAction::Reject) {
        return Err(
            Reply::new(550, (5, 7, 1), "Message rejected for policy reasons")
                .counted(smtp::Refusal::RuleRejected),
        );
    }
    Ok(Decision {
        held: matched
            .iter()
            .find(|m| m.action == RuleAction::Hold)
            .map(|m| format!("Held by {}", m.name())),
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
    })
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
    fn reject_wins_then_the_first_hold_names_its_rule() {
        assert_eq!(decide(&[]), Ok(Decision::default()));
        let r = decide(&[m(RuleAction::Hold, 1), m(RuleAction::Reject, 2)]).unwrap_err();
        assert_eq!(r.code, 550);
        assert_eq!(r.enhanced, Some((5, 7, 1)));
        assert_eq!(r.text, "Message rejected for policy reasons");
        let d = decide(&[
            m(RuleAction::Journal, 1),
            m(RuleAction::Hold, 2),
            m(RuleAction::CopyTo("audit@acme.com".into()), 3),
            m(RuleAction::Hold, 4),
        ])
        .expect("not refused");
        assert_eq!(
            d.held.as_deref(),
            Some("Held by server mail rule 2 (line 20)")
        );
        assert_eq!(
            d.copies,
            [(
                "audit@acme.com".to_owned(),
                "server mail rule 3 (line 30)".to_owned()
            )]
        );
        assert_eq!(d.journal.as_deref(), Some("server mail rule 1 (line 10)"));
    }
}
