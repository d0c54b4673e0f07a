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
