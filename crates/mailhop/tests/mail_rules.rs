//! Server mail rules at the SMTP listener, end to end: a real mailhop
//! process, raw SMTP, the console, and the mail files counted.

mod common;

use common::*;

const RULES: &str = r#"
[[configuration.rule]]
when = { subject_contains = "lottery", sender = "@prizes.example" }
match = "any"
unless = { sender = "friend@prizes.example" }
action = "reject"

[[configuration.rule]]
when = { header = "X-Spam-Flag: yes", recipient_count_over = 1 }
action = "hold"

[[configuration.rule]]
when = { attachment_name = "*.exe" }
action = "hold"

[[configuration.rule]]
action = "stop"

[[configuration.rule]]
action = "reject"
"#;

fn with_rules() -> TestServer {
    TestServer::start(Setup::config(RULES))
}

/// A message with extra header lines and a body.
fn raw(from: &str, to: &str, subject: &str, extra: &str, body: &str) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!("{extra}\n")
    };
    format!("From: {from}\nTo: {to}\nSubject: {subject}\n{extra}\n{body}\n")
}

#[test]
fn reject_is_a_550_at_the_end_of_data_and_nothing_is_stored() {
    let server = with_rules();
    let mut c = server.client();
    let r = c.mail(
        "someone@example.org",
        &["jane.doe@acme.com"],
        &raw(
            "someone@example.org",
            "jane.doe@acme.com",
            "You won the LOTTERY",
            "",
            "hi",
        ),
    );
    assert!(r.starts_with("550 5.7.1"), "{r}");
    assert!(r.contains("Message rejected for policy reasons"), "{r}");
    // `match = "any"`: the sender alone matches too ...
    let r = c.mail(
        "bot@prizes.example",
        &["jane.doe@acme.com"],
        &raw("bot@prizes.example", "jane.doe@acme.com", "hello", "", "hi"),
    );
    assert!(r.starts_with("550 5.7.1"), "{r}");
    // ... unless it is the exception.
    c.send_ok(
        "friend@prizes.example",
        &["jane.doe@acme.com"],
        "lottery results",
    );
    // The `stop` rule keeps the last rule (reject everything) from acting.
    c.send_ok("someone@example.org", &["jane.doe@acme.com"], "ordinary");
    c.cmd("QUIT");
    let jane = server.wait_mail("mail/jdoe", 2);
    let mut subjects: Vec<&str> = jane
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    subjects.sort_unstable();
    assert_eq!(subjects, ["lottery results", "ordinary"]);
    let log = server.log();
    assert!(log.contains("matched server mail rule 1 (line "), "{log}");
    assert_eq!(server.stat("SMTP.Messages.Refused.Rule"), 2);
}

#[test]
fn hold_puts_the_message_in_held_mail_naming_the_rule_until_released() {
    let server = with_rules();
    let mut c = server.client();
    // One recipient: the header alone does not match (both conditions must hold).
    let one = raw(
        "a@example.org",
        "jane.doe@acme.com",
        "spam to one",
        "X-Spam-Flag: YES",
        "x",
    );
    let r = c.mail("a@example.org", &["jane.doe@acme.com"], &one);
    assert!(r.starts_with("250"), "{r}");
    let two = raw(
        "a@example.org",
        "jane.doe@acme.com",
        "spam to two",
        "X-Spam-Flag: YES",
        "x",
    );
    let r = c.mail(
        "a@example.org",
        &["jane.doe@acme.com", "admin@acme.com"],
        &two,
    );
    assert!(r.starts_with("250"), "{r}");
    let exe = raw(
        "b@example.org",
        "jane.doe@acme.com",
        "tool",
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=zz",
        "--zz\nContent-Type: text/plain\n\nsee attached\n--zz\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"setup.EXE\"\n\nTVqQ\n--zz--",
    );
    let r = c.mail("b@example.org", &["jane.doe@acme.com"], &exe);
    assert!(r.starts_with("250"), "{r}");
    c.cmd("QUIT");

    server.wait_mail("mail/jdoe", 1);
    wait_for(|| server.stat("Mail.Hold") == 2, "two held messages");
    let held = server.console("show mailbox held");
    assert!(held.contains("Held by server mail rule 2 (line "), "{held}");
    assert!(held.contains("Held by server mail rule 3 (line "), "{held}");
    let jane = server.mailfile("mail/jdoe");
    assert_eq!(jane.len(), 1, "only the unheld one: {jane:?}");
    assert!(server.mailfile("mail/admin").is_empty());

    // A restart leaves held mail held.
    let mut server = server;
    server.kill();
    server.spawn();
    assert_eq!(server.stat("Mail.Hold"), 2);

    let out = server.console("tell router release held");
    assert!(!out.is_empty(), "{out}");
    let jane = server.wait_mail("mail/jdoe", 3);
    assert_eq!(jane.len(), 3, "{jane:?}");
    let admin = server.wait_mail("mail/admin", 1);
    assert_eq!(admin.len(), 1, "{admin:?}");
    wait_for(|| server.stat("Mail.Hold") == 0, "nothing held");
}

const JOURNAL: &str = r#"journal_to = "Journal"

[[configuration.rule]]
when = { sender = "@example.org" }
action = "journal"

[[configuration.rule]]
when = { subject_contains = "contract" }
action = "copy-to:john.smith@acme.com"
"#;

const JOURNAL_DB: &str = r#"
[[mail_in]]
name = "Journal"
internet_address = "journal@acme.com"
server = "Mail/Acme"
mail_file = "mail/journal"
"#;

#[test]
fn journal_and_copy_to_make_one_more_copy_each() {
    let server = TestServer::start(Setup {
        config: JOURNAL,
        extra: JOURNAL_DB,
        ..Setup::default()
    });
    let mut c = server.client();
    // Jane is in To; the admin is a blind copy (envelope only).
    let r = c.mail(
        "a@example.org",
        &["jane.doe@acme.com", "admin@acme.com"],
        &raw(
            "a@example.org",
            "jane.doe@acme.com",
            "The contract",
            "",
            "signed",
        ),
    );
    assert!(r.starts_with("250"), "{r}");
    // Not from example.org, no contract: no copy at all.
    c.send_ok("b@other.example", &["jane.doe@acme.com"], "hello");
    // A copy-to recipient that was given already is one copy, not two.
    let r = c.mail(
        "c@other.example",
        &["john.smith@acme.com"],
        &raw(
            "c@other.example",
            "john.smith@acme.com",
            "contract draft",
            "",
            "x",
        ),
    );
    assert!(r.starts_with("250"), "{r}");
    c.cmd("QUIT");

    server.wait_mail("mail/jdoe", 2);
    server.wait_mail("mail/admin", 1);
    server.wait_mail("mail/jsmith", 2);
    server.wait_mail("mail/journal", 1);
    wait_for(
        || server.stat("Mail.TotalPending") == 0,
        "an empty mail box",
    );
    // Nothing is pending any more: every copy there is, counted.
    assert_eq!(server.mailfile("mail/jdoe").len(), 2);
    assert_eq!(server.mailfile("mail/admin").len(), 1);
    assert_eq!(server.mailfile("mail/jsmith").len(), 2);
    let journal_now = server.mailfile("mail/journal");
    assert_eq!(journal_now.len(), 1, "{journal_now:?}");
    let id = journal_now[0]["id"].as_u64().unwrap();
    let text = server.mailfile_show("mail/journal", id);
    assert!(
        text.contains("X-Mailhop-Journal-From: <a@example.org>"),
        "{text}"
    );
    assert!(
        text.contains("X-Mailhop-Journal-To: <jane.doe@acme.com>, <admin@acme.com>"),
        "the original envelope, blind copies included: {text}"
    );
    assert!(text.contains("X-Mailhop-Journal-Rule: server mail rule 1 (line "));
    assert!(text.contains("Subject: The contract"), "{text}");
    let show = server.console("show server");
    assert!(show.contains("Mail Journalling:       Enabled"), "{show}");
}

const DISPOSE: &str = r#"
[[configuration.rule]]
when = { subject_contains = "drop me" }
action = "drop"

[[configuration.rule]]
when = { subject_contains = "bounce me" }
action = "drop-and-report"

[[configuration.rule]]
when = { subject_contains = "quarantine" }
action = "move-to:mail/Quarantine.nsf"
"#;

const QUARANTINE_DB: &str = r#"
[[mail_in]]
name = "Quarantine"
server = "Mail/Acme"
mail_file = "mail/quarantine"
"#;

/// How many messages of `mail_file` have `subject` (copies counted, not collected).
fn count(server: &TestServer, mail_file: &str, subject: &str) -> usize {
    server
        .mailfile(mail_file)
        .iter()
        .filter(|m| m["subject"].as_str() == Some(subject))
        .count()
}

#[test]
fn drop_drop_and_report_and_move_to_dispose_of_the_original_recipients() {
    let server = TestServer::start(Setup {
        config: DISPOSE,
        extra: QUARANTINE_DB,
        ..Setup::default()
    });
    let mut c = server.client();
    let mail = |c: &mut RawSmtp, from: &str, to: &[&str], subject: &str| {
        let r = c.mail(from, to, &raw(from, to[0], subject, "", "text"));
        assert!(r.starts_with("250"), "{subject}: {r}");
    };
    mail(
        &mut c,
        "a@example.org",
        &["jane.doe@acme.com"],
        "please drop me",
    );
    mail(
        &mut c,
        "jane.doe@acme.com",
        &["john.smith@acme.com", "admin@acme.com"],
        "bounce me now",
    );
    mail(
        &mut c,
        "b@example.org",
        &["jane.doe@acme.com", "admin@acme.com"],
        "quarantine this",
    );
    mail(&mut c, "c@example.org", &["jane.doe@acme.com"], "plain");
    c.cmd("QUIT");

    server.wait_mail("mail/quarantine", 1);
    // Jane: the plain message and the one report about "bounce me now".
    server.wait_mail("mail/jdoe", 2);
    wait_for(
        || server.stat("Mail.TotalPending") == 0,
        "an empty mail box",
    );
    // Every copy there is, counted, once nothing is pending.
    assert_eq!(count(&server, "mail/jdoe", "plain"), 1);
    assert_eq!(count(&server, "mail/jdoe", "please drop me"), 0);
    assert_eq!(count(&server, "mail/jdoe", "quarantine this"), 0);
    assert_eq!(count(&server, "mail/quarantine", "quarantine this"), 1);
    assert_eq!(server.mailfile("mail/quarantine").len(), 1);
    assert!(server.mailfile("mail/jsmith").is_empty());
    assert!(server.mailfile("mail/admin").is_empty());
    let jane = server.mailfile("mail/jdoe");
    assert_eq!(jane.len(), 2, "{jane:?}");
    let report = jane
        .iter()
        .find(|m| m["subject"].as_str() != Some("plain"))
        .expect("the report");
    let text = server.mailfile_show("mail/jdoe", report["id"].as_u64().unwrap());
    assert!(text.contains("john.smith@acme.com"), "{text}");
    assert!(text.contains("admin@acme.com"), "{text}");
    assert!(
        text.contains("refused by server mail rule 2 (line "),
        "the report names the rule: {text}"
    );
    assert!(text.contains("Subject: bounce me now"), "{text}");

    // Every match is a routing event naming its rule.
    let dropped = server.console("track --from a@example.org");
    assert!(
        dropped.contains("server mail rule 1 (line ") && dropped.contains("dropped"),
        "{dropped}"
    );
    let bounced = server.console("track --to john.smith@acme.com");
    assert!(bounced.contains("server mail rule 2 (line "), "{bounced}");
    let moved = server.console("track --from b@example.org");
    assert!(
        moved.contains("moved to Quarantine by server mail rule 3 (line "),
        "{moved}"
    );
}

#[test]
fn move_to_a_mail_file_no_one_owns_is_refused_by_check() {
    let tmp = tempfile::tempdir().unwrap();
    let text = acme_text("[[configuration.rule]]\naction = \"move-to:mail/nowhere\"");
    let path = tmp.path().join("directory.toml");
    std::fs::write(&path, &text).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check", "--directory"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(
        format!("{stdout}{stderr}")
            .contains("move-to:\"mail/nowhere\" names no mail-in database or person"),
        "{stdout}{stderr}"
    );
}
