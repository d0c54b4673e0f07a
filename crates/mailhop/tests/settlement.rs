//! A `250` is a promise for every copy: group members and forward targets
//! that leave by SMTP are rows of the mail box like any recipient, every
//! copy arrives exactly once (counted, not collected into sets), a restart
//! rebuilds the queues from the rows, one process owns a data folder, and a
//! failing store refuses new mail with 421 and says why.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::*;

/// Groups with local, SMTP-bound and nested members, and two forwarders.
const EXTRA: &str = r#"
[[group]]
name = "World"
internet_address = "world@acme.com"
members = ["Jane Doe/Acme", "partner@example.org", "Nested"]

[[group]]
name = "Nested"
members = ["john.smith@acme.com", "friend@example.org", "reject-nested@example.org"]

[[person]]
full_name = "CN=Fwd Out/O=Acme"
last_name = "Out"
short_name = "fwdout"
internet_address = "fwd.out@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/fwdout"
forward_to = "outside@example.org"

[[person]]
full_name = "CN=Fwd In/O=Acme"
last_name = "In"
short_name = "fwdin"
internet_address = "fwd.in@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/fwdin"
forward_to = "mary.smith@acme.com"
"#;

fn relay_config(port: u16) -> String {
    format!(
        "smtp_outside_local_domain = true\nrelay_host = \"[127.0.0.1]:{port}\"\ninitial_retry = \"1h\"\n[configuration.inbound]\nrelay_exempt_hosts = [\"127.0.0.0/8\"]"
    )
}

/// How many times each recipient got a copy at the sink.
fn copies_per_recipient(sink: &Sink) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for m in sink.messages() {
        for r in m.rcpts {
            *n.entry(r).or_insert(0) += 1;
        }
    }
    n
}

fn mailbox_empty(server: &TestServer) -> bool {
    server.console("show mailbox").ends_with("\n0 messages\n")
}

fn count_subject(server: &TestServer, mail_file: &str, subject: &str) -> usize {
    server
        .mailfile(mail_file)
        .iter()
        .filter(|m| m["subject"].as_str() == Some(subject))
        .count()
}

#[test]
fn group_members_and_forward_targets_get_every_copy_exactly_once() {
    let sink = Sink::start();
    let config = relay_config(sink.port);
    let server = TestServer::start(Setup {
        config: &config,
        extra: EXTRA,
        ..Setup::default()
    });
    let mut c = server.client();
    c.send_ok(
        "admin@acme.com",
        &["world@acme.com", "fwd.out@acme.com", "fwd.in@acme.com"],
        "for everyone",
    );
    // The three Internet copies, each once.
    wait_for(
        || copies_per_recipient(&sink).len() == 3,
        "the three SMTP-bound copies",
    );
    // Local copies: Jane (member), John (nested member), Mary (forwarded to).
    for mail_file in ["mail/jdoe", "mail/jsmith", "mail/msmith"] {
        wait_for(
            || count_subject(&server, mail_file, "for everyone") == 1,
            mail_file,
        );
    }
    // The refused nested member: one report to the sender, naming it.
    wait_for(
        || server.mailfile("mail/admin").len() == 1,
        "the report about the refused member",
    );
    let report = &server.mailfile("mail/admin")[0];
    let body = server.mailfile_show("mail/admin", report["id"].as_u64().unwrap());
    assert!(body.contains("reject-nested@example.org"), "{body}");
    assert!(
        body.contains("Nested"),
        "the report says where the member came from: {body}"
    );
    // Let anything that would be a duplicate arrive, then count.
    wait_for(|| mailbox_empty(&server), "an empty mail box");
    let copies = copies_per_recipient(&sink);
    assert_eq!(copies.get("partner@example.org"), Some(&1), "{copies:?}");
    assert_eq!(copies.get("friend@example.org"), Some(&1), "{copies:?}");
    assert_eq!(copies.get("outside@example.org"), Some(&1), "{copies:?}");
    assert_eq!(copies.values().sum::<usize>(), 3, "{copies:?}");
    for mail_file in ["mail/jdoe", "mail/jsmith", "mail/msmith"] {
        assert_eq!(
            count_subject(&server, mail_file, "for everyone"),
            1,
            "{mail_file}"
        );
    }
    assert_eq!(count_subject(&server, "mail/fwdout", "for everyone"), 0);
    assert_eq!(count_subject(&server, "mail/fwdin", "for everyone"), 0);
    // The routing events name the parent.
    let events = server.console("track --to friend@example.org");
    assert!(events.contains("Nested"), "{events}");
    let events = server.console("track --to outside@example.org");
    assert!(
        events.contains("Fwd Out") || events.contains("fwd.out@acme.com"),
        "{events}"
    );
}

#[test]
fn waiting_rows_survive_a_restart_and_are_sent_once() {
    // Nothing listens on the relay port yet: the copies wait in Retry.
    let port = free_port();
    let config = relay_config(port);
    let mut server = TestServer::start(Setup {
        config: &config,
        extra: EXTRA,
        ..Setup::default()
    });
    let mut c = server.client();
    c.send_ok(
        "admin@acme.com",
        &["world@acme.com", "fwd.out@acme.com"],
        "later",
    );
    wait_for(
        || server.console("tell router show queues").contains("Retry"),
        "the queue in Retry",
    );
    // show mailbox names where each waiting copy came from.
    let mailbox = server.console("show mailbox");
    assert!(
        mailbox.contains("friend@example.org (expanded from Nested)"),
        "{mailbox}"
    );
    assert!(
        mailbox.contains("outside@example.org (forwarded by fwd.out@acme.com)"),
        "{mailbox}"
    );
    // A restart rebuilds the queue from the rows alone.
    server.kill();
    server.spawn();
    wait_for(
        || {
            server
                .console("tell router show queues")
                .contains("example.org")
        },
        "the queue rebuilt after the restart",
    );
    let sink = Sink::start_on(port);
    for _ in 0..5 {
        server.console("route *");
    }
    wait_for(
        || copies_per_recipient(&sink).len() == 3,
        "the three SMTP-bound copies after the restart",
    );
    wait_for(|| mailbox_empty(&server), "an empty mail box");
    let copies = copies_per_recipient(&sink);
    assert_eq!(
        copies.values().sum::<usize>(),
        3,
        "each copy once: {copies:?}"
    );
    assert_eq!(count_subject(&server, "mail/jdoe", "later"), 1);
    assert_eq!(count_subject(&server, "mail/jsmith", "later"), 1);
}

#[test]
fn a_deleted_message_is_never_sent() {
    let port = free_port();
    let config = relay_config(port);
    let server = TestServer::start(Setup::config(&config));
    let mut c = server.client();
    c.send_ok("admin@acme.com", &["gone@example.org"], "to delete");
    wait_for(
        || server.console("tell router show queues").contains("Retry"),
        "the queue in Retry",
    );
    let mailbox = server.console("show mailbox");
    let id = mailbox
        .lines()
        .find(|l| l.contains("gone@example.org"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the message in show mailbox")
        .to_owned();
    let out = server.console(&format!("tell router delete {id}"));
    assert!(out.contains("deleted"), "{out}");
    let sink = Sink::start_on(port);
    server.console("route *");
    // A later message to the same queue is sent; the deleted one never is.
    c.send_ok("admin@acme.com", &["kept@example.org"], "kept");
    wait_for(|| !sink.messages().is_empty(), "the later message");
    let rcpts: Vec<String> = sink.messages().into_iter().flat_map(|m| m.rcpts).collect();
    assert_eq!(rcpts, ["kept@example.org"]);
}

#[test]
fn a_second_serve_on_the_same_data_folder_exits_and_the_first_runs_on() {
    let server = TestServer::start(Setup::default());
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--directory")
        .arg(&server.directory)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another mailhop process"), "{err}");
    // The first server is unharmed: console, SMTP and delivery all work.
    assert!(
        server
            .console("show server")
            .contains("Mail store:             OK")
    );
    server
        .client()
        .send_ok("a@example.org", &["jane.doe@acme.com"], "still here");
    assert_eq!(server.wait_mail("mail/jdoe", 1).len(), 1);
}

#[test]
fn a_failing_store_refuses_mail_with_421_and_show_server_says_why() {
    let server = TestServer::start(Setup {
        env: &[("MAILHOP_STORE_FAULT", "writer-panic")],
        ..Setup::default()
    });
    let mut c = server.client();
    let r = c.mail(
        "a@example.org",
        &["jane.doe@acme.com"],
        &message("a@example.org", "jane.doe@acme.com", "doomed"),
    );
    assert!(r.starts_with("421 4.3.0"), "{r}");
    let info = server.console("show server");
    assert!(info.contains("Mail store:             FAILED"), "{info}");
    assert!(info.contains("writer stopped"), "{info}");
    // New sessions are refused at MAIL FROM, and the log said it at once.
    let mut c = server.client();
    let r = c.cmd("MAIL FROM:<a@example.org>");
    assert!(r.starts_with("421"), "{r}");
    assert!(
        server.log().contains("the server refuses new mail"),
        "{}",
        server.log()
    );
}

/// 2,000 messages to local users while `route *` fires 20 times, then a
/// SIGKILL and a restart: every acknowledged message is in each of its
/// recipients' mail files exactly once.
#[test]
fn exactly_once_under_route_star_and_sigkill() {
    let mut server = TestServer::start(Setup::default());
    let rcpts = ["jane.doe@acme.com", "john.smith@acme.com", "sales@acme.com"];
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for t in 0..4 {
        let (acked, stop, addr) = (acked.clone(), stop.clone(), server.smtp);
        clients.push(std::thread::spawn(move || {
            let Ok(mut c) = std::panic::catch_unwind(|| RawSmtp::connect(addr)) else {
                return;
            };
            c.cmd("EHLO load.test");
            for n in 0..500 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let subject = format!("once-{t}-{n}");
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    c.mail(
                        "load@example.org",
                        &rcpts,
                        &message("load@example.org", "jane.doe@acme.com", &subject),
                    )
                }));
                match r {
                    Ok(reply) if reply.starts_with("250") => acked.lock().unwrap().push(subject),
                    _ => return,
                }
            }
        }));
    }
    // `route *` 20 times, spread over the load.
    let mut fired = 0;
    wait_for(
        || {
            let n = acked.lock().unwrap().len();
            if fired < 20 && n >= fired * 90 {
                server.console("route *");
                fired += 1;
            }
            fired == 20 && clients.iter().all(|c| c.is_finished())
        },
        "2,000 messages sent with route * fired 20 times",
    );
    // SIGKILL right after the last acknowledgement, with deliveries under way.
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(
        acked.len(),
        2000,
        "every message acknowledged before the kill"
    );
    server.spawn();
    // Jane is in Sales and in Inner: one copy for her all the same.
    for mail_file in ["mail/jdoe", "mail/jsmith", "mail/admin"] {
        let count = || -> HashMap<String, usize> {
            let mut n = HashMap::new();
            for m in server.mailfile(mail_file) {
                *n.entry(m["subject"].as_str().unwrap_or("").to_owned())
                    .or_insert(0) += 1;
            }
            n
        };
        wait_for(
            || {
                let n = count();
                acked.iter().all(|s| n.contains_key(s))
            },
            &format!("every acknowledged message in {mail_file}"),
        );
        let n = count();
        let twice: Vec<_> = n.iter().filter(|(_, c)| **c > 1).collect();
        assert!(
            twice.is_empty(),
            "{mail_file}: copies twice: {:?}",
            &twice[..twice.len().min(5)]
        );
        for s in &acked {
            assert_eq!(n.get(s), Some(&1), "{mail_file}: {s}");
        }
    }
}
