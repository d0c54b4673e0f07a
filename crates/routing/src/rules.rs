//! Server mail rules (SPEC §2 `[[configuration.rule]]`, Domino's "Rules"
//! tab of the Configuration document): which rules match a message and what
//! they ask for, in order. Every matching rule acts until one says `stop`.
//!
//! Owns the meaning of the conditions (`when`, `match = "all" | "any"`,
//! `unless`) and the order of the actions. Pure: the caller reads the
//! message ([`Facts`]) and carries the actions out.

use directory::{Rule, RuleAction, RuleCondition, RuleMatch};

/// What the rules look at in one message.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    /// The envelope sender (`""` for `<>`).
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub subject: &'a str,
    pub size: u64,
    /// The header fields, decoded (name, value), in order.
    pub headers: &'a [(String, String)],
    /// The text of the body's text parts, decoded.
    pub body: &'a str,
    /// The file names of the attachments.
    pub attachments: &'a [String],
}

/// A rule that matched: its place (1 = the first rule of the document), its
/// line in the directory file and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub number: usize,
    pub line: usize,
    pub action: RuleAction,
}

impl Matched {
    /// How the routing events and `show mailbox` name the rule.
    pub fn name(&self) -> String {
        format!("server mail rule {} (line {})", self.number, self.line)
    }
}

/// The rules that act on a message, in order; the last is a `stop` when a
/// rule stopped the others.
pub fn evaluate(rules: &[Rule], facts: &Facts<'_>) -> Vec<Matched> {
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        if !rule_matches(rule, facts) {
            continue;
        }
        out.push(Matched {
            number: i + 1,
            line: rule.line,
            action: rule.action.clone(),
        });
        if rule.action == RuleAction::Stop {
            break;
        }
    }
    out
}

/// Do the conditions of `rule` hold, and none of its exceptions?
pub fn rule_matches(rule: &Rule, facts: &Facts<'_>) -> bool {
    condition_holds(&rule.when, rule.combine, facts)
        && !rule
            .unless
            .as_ref()
            .is_some_and(|u| !u.is_empty() && condition_holds(u, rule.combine, facts))
}

/// Does the rule need the body's text, or the attachments' names (which
/// cost a full parse of the message)?
pub fn needs_content(rules: &[Rule]) -> bool {
    rules.iter().any(|r| {
        std::iter::once(&r.when)
            .chain(r.unless.as_ref())
            .any(|c| c.body_contains.is_some() || c.attachment_name.is_some())
    })
}

fn condition_holds(c: &RuleCondition, combine: RuleMatch, facts: &Facts<'_>) -> bool {
    let tests: [Option<bool>; 8] = [
        c.subject_contains
            .as_deref()
            .map(|t| contains(facts.subject, t)),
        c.sender.as_deref().map(|t| contains(facts.sender, t)),
        c.recipient
            .as_deref()
            .map(|t| facts.recipients.iter().any(|r| contains(r, t))),
        c.size_over.map(|s| facts.size > s.0),
        c.header
            .as_deref()
            .map(|h| header_matches(facts.headers, h)),
        c.body_contains.as_deref().map(|t| contains(facts.body, t)),
        c.attachment_name
            .as_deref()
            .map(|p| facts.attachments.iter().any(|a| wildcard(p, a))),
        c.recipient_count_over
            .map(|n| facts.recipients.len() > usize::try_from(n).unwrap_or(usize::MAX)),
    ];
    let mut given = tests.iter().flatten().peekable();
    if given.peek().is_none() {
        // No condition: "All documents".
        return true;
    }
    match combine {
        RuleMatch::All => given.all(|t| *t),
        RuleMatch::Any => given.any(|t| *t),
    }
}

/// Case-insensitive substring (Unicode lower case).
fn contains(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// `"Name"`: a header of that name; `"Name: text"`: one whose value
/// contains the text.
fn header_matches(headers: &[(String, String)], condition: &str) -> bool {
    let (name, text) = match condition.split_once(':') {
        Some((n, t)) => (n.trim(), Some(t.trim())),
        None => (condition.trim(), None),
    };
    headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case(name) && text.is_none_or(|t| t.is_empty() || contains(v, t))
    })
}

/// `*` any run of characters, `?` one character; case ignored.
fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    // Iterative matching with one backtrack point (no recursion, linear-ish).
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(lines: &str) -> Vec<Rule> {
        let text = format!(
            r#"
[domain]
name = "Acme"
[global_domain]
primary_internet_domain = "acme.com"
[[server]]
name = "Mail/Acme"
hostname = "mail.acme.com"
[[configuration]]
server = "*"
{lines}
"#
        );
        let dir = directory::parse_str(&text, std::path::Path::new("d.toml"))
            .unwrap_or_else(|e| panic!("test directory: {e}"));
        let server = dir.servers[0].name.clone();
        dir.config_for(&server).rules.clone()
    }

    struct Message {
        sender: &'static str,
        recipients: Vec<String>,
        subject: &'static str,
        size: u64,
        headers: Vec<(String, String)>,
        body: &'static str,
        attachments: Vec<String>,
    }

    impl Message {
        fn plain() -> Message {
            Message {
                sender: "friend@example.org",
                recipients: vec!["jane@acme.com".into()],
                subject: "Lunch on Friday",
                size: 2_000,
                headers: vec![
                    ("From".into(), "Friend <friend@example.org>".into()),
                    ("X-Spam-Flag".into(), "YES".into()),
                ],
                body: "Shall we meet at noon?",
                attachments: vec!["menu.PDF".into()],
            }
        }

        fn facts(&self) -> Facts<'_> {
            Facts {
                sender: self.sender,
                recipients: &self.recipients,
                subject: self.subject,
                size: self.size,
                headers: &self.headers,
                body: self.body,
                attachments: &self.attachments,
            }
        }
    }

    fn numbers(lines: &str, m: &Message) -> Vec<usize> {
        evaluate(&rules(lines), &m.facts())
            .into_iter()
            .map(|r| r.number)
            .collect()
    }

    #[test]
    fn each_condition_alone() {
        let m = Message::plain();
        // Each row: the `when`, does it match the plain message?
        let rows: &[(&str, bool)] = &[
            ("{}", true),
            (r#"{ subject_contains = "LUNCH" }"#, true),
            (r#"{ subject_contains = "dinner" }"#, false),
            (r#"{ sender = "@example.org" }"#, true),
            (r#"{ sender = "@example.com" }"#, false),
            (r#"{ recipient = "jane@" }"#, true),
            (r#"{ recipient = "john@" }"#, false),
            (r#"{ size_over = "1KB" }"#, true),
            (r#"{ size_over = "10KB" }"#, false),
            (r#"{ header = "x-spam-flag" }"#, true),
            (r#"{ header = "X-Spam-Flag: yes" }"#, true),
            (r#"{ header = "X-Spam-Flag: no" }"#, false),
            (r#"{ header = "X-Virus" }"#, false),
            (r#"{ body_contains = "NOON" }"#, true),
            (r#"{ body_contains = "midnight" }"#, false),
            (r#"{ attachment_name = "*.pdf" }"#, true),
            (r#"{ attachment_name = "*.exe" }"#, false),
            (r#"{ attachment_name = "m?nu.*" }"#, true),
            (r#"{ recipient_count_over = 0 }"#, true),
            (r#"{ recipient_count_over = 1 }"#, false),
        ];
        for (when, matches) in rows {
            let lines = format!("[[configuration.rule]]\nwhen = {when}\naction = \"hold\"");
            assert_eq!(!numbers(&lines, &m).is_empty(), *matches, "{when}");
        }
    }

    #[test]
    fn all_any_and_unless() {
        let m = Message::plain();
        let both = r#"{ subject_contains = "lunch", sender = "@example.com" }"#;
        let all = format!("[[configuration.rule]]\nwhen = {both}\naction = \"hold\"");
        assert!(numbers(&all, &m).is_empty(), "all: one condition fails");
        let any =
            format!("[[configuration.rule]]\nwhen = {both}\nmatch = \"any\"\naction = \"hold\"");
        assert_eq!(numbers(&any, &m), vec![1], "any: one condition holds");
        let unless = r#"[[configuration.rule]]
when = { subject_contains = "lunch" }
unless = { sender = "@example.org" }
action = "hold""#;
        assert!(numbers(unless, &m).is_empty(), "the exception applies");
        let unless_other = r#"[[configuration.rule]]
when = { subject_contains = "lunch" }
unless = { sender = "@boss.example" }
action = "hold""#;
        assert_eq!(numbers(unless_other, &m), vec![1]);
    }

    #[test]
    fn every_matching_rule_acts_until_one_stops() {
        let m = Message::plain();
        let lines = r#"journal_to = "Journal"

[[configuration.rule]]
when = { subject_contains = "lunch" }
action = "journal"

[[configuration.rule]]
when = { subject_contains = "dinner" }
action = "hold"

[[configuration.rule]]
when = { header = "X-Spam-Flag: yes" }
action = "copy-to:spam@acme.com"

[[configuration.rule]]
action = "stop"

[[configuration.rule]]
action = "drop""#;
        let got = evaluate(&rules(lines), &m.facts());
        let actions: Vec<String> = got.iter().map(|r| r.action.to_string()).collect();
        assert_eq!(actions, ["journal", "copy-to:spam@acme.com", "stop"]);
        assert_eq!(got[1].number, 3);
        assert!(
            got[1].name().starts_with("server mail rule 3 (line "),
            "{}",
            got[1].name()
        );
    }

    #[test]
    fn content_is_read_only_for_content_conditions() {
        assert!(!needs_content(&rules(
            "[[configuration.rule]]\nwhen = { header = \"X-Spam-Flag\" }\naction = \"hold\""
        )));
        assert!(needs_content(&rules(
            "[[configuration.rule]]\nwhen = { subject_contains = \"x\" }\nunless = { body_contains = \"y\" }\naction = \"hold\""
        )));
    }

    #[test]
    fn wildcards() {
        for (p, n, m) in [
            ("*", "", true),
            ("*.exe", "a.exe", true),
            ("*.exe", "a.exe.txt", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("??.txt", "ab.txt", true),
            ("??.txt", "abc.txt", false),
            ("*report*", "Quarterly REPORT.xlsx", true),
        ] {
            assert_eq!(wildcard(p, n), m, "{p} / {n}");
        }
    }

    proptest::proptest! {
        #[test]
        fn wildcard_star_matches_everything_and_literals_match_themselves(s in "\\PC{0,30}") {
            proptest::prop_assert!(wildcard("*", &s));
            let literal: String = s.chars().filter(|c| *c != '*' && *c != '?').collect();
            proptest::prop_assert!(wildcard(&literal, &literal));
        }
    }
}
