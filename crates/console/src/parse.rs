//! The command line an administrator types, as a typed [`Command`].

use std::fmt;

/// Which kind of stored mail a `tell router release` acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseWhich {
    Dead,
    Held,
}

/// A server task that `load` / `tell TASK quit` start and stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Smtp,
    Pop3,
    Imap,
    Router,
}

impl Task {
    fn parse(word: &str) -> Option<Task> {
        match word.to_ascii_lowercase().as_str() {
            "smtp" => Some(Task::Smtp),
            "pop3" => Some(Task::Pop3),
            "imap" => Some(Task::Imap),
            "router" => Some(Task::Router),
            _ => None,
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Task::Smtp => "SMTP",
            Task::Pop3 => "POP3",
            Task::Imap => "IMAP",
            Task::Router => "Router",
        })
    }
}

/// A console command (SPEC §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    ShowServer,
    ShowTasks,
    /// `show stat [mail|smtp|router|PATTERN]`; `None` shows everything.
    ShowStat(Option<String>),
    ShowQueues,
    DeliveryStats,
    UpdateConfig,
    /// `tell router release dead|held [ID]`
    Release {
        which: ReleaseWhich,
        id: Option<i64>,
    },
    /// `tell router delete ID`
    Delete(i64),
    /// `route SERVER|*|LocalDelivery`
    Route(String),
    /// `trace SERVER|ADDRESS`
    Trace(String),
    SetConfig {
        name: String,
        value: String,
    },
    ShowConfig(String),
    Load(Task),
    Quit(Task),
    /// `track [--from A] [--to B] [--subject S] [--id MSGID]`
    Track {
        from: Option<String>,
        to: Option<String>,
        subject: Option<String>,
        id: Option<String>,
    },
    /// `show mailbox [held|dead|pending]`: the mail box entries.
    ShowMailBox(Option<String>),
    Help,
}

/// Why a command line was not understood; the text is shown to the administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

fn parse_id(word: Option<&str>) -> Result<i64, ParseError> {
    match word {
        Some(w) => w
            .parse()
            .map_err(|_| ParseError(format!("'{w}' is not a message number"))),
        None => err("a message number is required"),
    }
}

/// Parse one command line. Keywords are case-insensitive, as on Domino's console.
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let rest = |from: usize| words.get(from..).unwrap_or_default().join(" ");
    match l.as_slice() {
        [] => err("empty command"),
        ["help" | "?"] => Ok(Command::Help),
        ["show" | "sh", "server" | "serv"] => Ok(Command::ShowServer),
        ["show" | "sh", "tasks" | "task" | "ta"] => Ok(Command::ShowTasks),
        ["show" | "sh", "stat" | "stats" | "statistics"] => Ok(Command::ShowStat(None)),
        ["show" | "sh", "stat" | "stats" | "statistics", _] => {
            Ok(Command::ShowStat(Some(words[2].to_owned())))
        }
        ["show" | "sh", "config", _] => Ok(Command::ShowConfig(words[2].to_owned())),
        ["show" | "sh", "mailbox"] => Ok(Command::ShowMailBox(None)),
        ["show" | "sh", "mailbox", which] => Ok(Command::ShowMailBox(Some((*which).to_owned()))),
        ["tell", "router", "show", "queues" | "queue" | "q"] | ["tell", "router", "show"] => {
            Ok(Command::ShowQueues)
        }
        ["tell", "router", "delivery", "stats"] => Ok(Command::DeliveryStats),
        ["tell", "router", "update", "config"] => Ok(Command::UpdateConfig),
        ["tell", "router", "release", which, tail @ ..] => {
            let which = match *which {
                "dead" => ReleaseWhich::Dead,
                "held" => ReleaseWhich::Held,
                _ => return err("tell router release: say 'dead' or 'held'"),
            };
            let id = match tail {
                [] => None,
                [_] => Some(parse_id(words.get(4).copied())?),
                _ => return err("tell router release dead|held [ID]"),
            };
            Ok(Command::Release { which, id })
        }
        ["tell", "router", "delete", _] => Ok(Command::Delete(parse_id(words.get(3).copied())?)),
        ["tell", "router", "delete"] => err("tell router delete ID"),
        ["tell", task, "quit" | "exit"] => match Task::parse(task) {
            Some(t) => Ok(Command::Quit(t)),
            None => err(format!("unknown task '{}'", words[1])),
        },
        ["load", task] => match Task::parse(task) {
            Some(t) => Ok(Command::Load(t)),
            None => err(format!("unknown task '{}'", words[1])),
        },
        ["route", _, ..] => Ok(Command::Route(rest(1))),
        ["trace", _, ..] => Ok(Command::Trace(rest(1))),
        ["set", "config", ..] => {
            let assignment = rest(2);
            match assignment.split_once('=') {
                Some((n, v)) if !n.trim().is_empty() => Ok(Command::SetConfig {
                    name: n.trim().to_owned(),
                    value: v.trim().to_owned(),
                }),
                _ => err("set config NAME=VALUE"),
            }
        }
        ["track", ..] => parse_track(&words[1..]),
        _ => err(format!("Unknown command: {line}")),
    }
}

fn parse_track(args: &[&str]) -> Result<Command, ParseError> {
    let (mut from, mut to, mut subject, mut id) = (None, None, None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let slot = match *flag {
            "--from" => &mut from,
            "--to" => &mut to,
            "--subject" => &mut subject,
            "--id" => &mut id,
            other => return err(format!("track: unknown option '{other}'")),
        };
        match it.next() {
            Some(v) => *slot = Some((*v).to_owned()),
            None => return err(format!("track: {flag} needs a value")),
        }
    }
    Ok(Command::Track {
        from,
        to,
        subject,
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_domino_commands() {
        assert_eq!(
            parse("show stat mail"),
            Ok(Command::ShowStat(Some("mail".into())))
        );
        assert_eq!(parse("SH STAT"), Ok(Command::ShowStat(None)));
        assert_eq!(parse("tell router show queues"), Ok(Command::ShowQueues));
        assert_eq!(
            parse("tell router release dead 12"),
            Ok(Command::Release {
                which: ReleaseWhich::Dead,
                id: Some(12)
            })
        );
        assert_eq!(
            parse("tell router release held"),
            Ok(Command::Release {
                which: ReleaseWhich::Held,
                id: None
            })
        );
        assert_eq!(parse("tell router delete 7"), Ok(Command::Delete(7)));
        assert_eq!(parse("route *"), Ok(Command::Route("*".into())));
        assert_eq!(
            parse("set config Log_MailRouting=40"),
            Ok(Command::SetConfig {
                name: "Log_MailRouting".into(),
                value: "40".into()
            })
        );
        assert_eq!(parse("load pop3"), Ok(Command::Load(Task::Pop3)));
        assert_eq!(parse("tell imap quit"), Ok(Command::Quit(Task::Imap)));
        assert_eq!(
            parse("trace jane@acme.com"),
            Ok(Command::Trace("jane@acme.com".into()))
        );
    }

    #[test]
    fn refuses_bad_commands_with_reason() {
        assert!(parse("").is_err());
        assert!(
            parse("tell router delete x")
                .unwrap_err()
                .0
                .contains("not a message number")
        );
        assert!(parse("tell router release maybe").is_err());
        assert!(
            parse("frobnicate")
                .unwrap_err()
                .0
                .contains("Unknown command")
        );
        assert!(parse("load gopher").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = parse(&s);
        }
    }
}
