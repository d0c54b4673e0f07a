//! The server's log, as an administrator reads it: no colour codes off a
//! terminal, a log file rotated by size, JSON lines on request, the
//! libraries' chatter left out by default, and a Message-ID given to a
//! message that has none.

mod common;

use std::process::Command;

use common::*;

#[test]
fn json_lines_in_a_log_file_without_colour_codes_and_without_library_chatter() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(certs.path());
    let server_lines = format!("tls = {{ cert = \"{cert}\", key = \"{key}\" }}");
    let log_file = certs.path().join("logs/console.log");
    let log_arg = log_file.display().to_string();
    let server = TestServer::start(Setup {
        server: &server_lines,
        args: &["--log-file", &log_arg, "--log-format", "json"],
        // The default filter, and colours not forbidden: only the missing
        // terminal keeps them out.
        env: &[("MAILHOP_LOG", ""), ("NO_COLOR", "")],
        ..Setup::default()
    });
    // A TLS client without SNI (by address), and a wrong password.
    let script = format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", {port}) as s:
    s.starttls(context=ctx)
    s.ehlo("t")
    # One attempt: AUTH PLAIN of jane.doe@acme.com / wrong.
    code, _ = s.docmd("AUTH", "PLAIN AGphbmUuZG9lQGFjbWUuY29tAHdyb25n")
    assert code == 535, code
"#,
        port = server.submission.port()
    );
    let py = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    wait_for(
        || {
            std::fs::read_to_string(&log_file)
                .unwrap_or_default()
                .contains("Authentication failed")
        },
        "the failed login in the log file",
    );
    let text = std::fs::read_to_string(&log_file).unwrap();
    let stderr = server.log();
    assert!(!text.contains('\x1b'), "no escape codes in the file");
    assert!(!stderr.contains('\x1b'), "no escape codes off a terminal");
    let mut failed = 0;
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        let message = v["fields"]["message"].as_str().unwrap_or_default();
        if message.contains("Authentication failed for user jane.doe@acme.com") {
            failed += 1;
        }
    }
    assert_eq!(failed, 1, "each failed login once: {text}");
    assert!(
        !text.to_lowercase().contains("rustls") && !text.contains("SNI"),
        "{text}"
    );
    // Standard error has the same lines.
    assert_eq!(
        stderr
            .matches("Authentication failed for user jane.doe@acme.com")
            .count(),
        1,
        "{stderr}"
    );
}

#[test]
fn the_log_file_is_owner_only_and_rotated_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let log_file = dir.path().join("console.log");
    let log_arg = log_file.display().to_string();
    let server = TestServer::start(Setup {
        args: &[
            "--log-file",
            &log_arg,
            "--log-max-size",
            "8KB",
            "--log-keep",
            "2",
        ],
        ..Setup::default()
    });
    // Enough logged lines (each message is logged) to pass 8 KiB twice.
    let mut c = server.client();
    let mut sent = 0;
    while !dir.path().join("console.log.2").exists() && sent < 2_000 {
        c.send_ok(
            "a@example.org",
            &["jane.doe@acme.com"],
            &format!("m{sent} {}", "x".repeat(200)),
        );
        sent += 1;
    }
    assert!(dir.path().join("console.log.1").exists());
    assert!(dir.path().join("console.log.2").exists());
    assert!(!dir.path().join("console.log.3").exists());
    use std::os::unix::fs::PermissionsExt as _;
    for name in ["console.log", "console.log.1", "console.log.2"] {
        let meta = std::fs::metadata(dir.path().join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        assert!(meta.len() <= 8 * 1024, "{name}: {}", meta.len());
    }
}

#[test]
fn a_message_without_a_message_id_gets_one_that_track_finds() {
    let server = TestServer::start(Setup::default());
    let mut c = server.client();
    let r = c.mail(
        "a@example.org",
        &["jane.doe@acme.com"],
        "From: a@example.org\nTo: jane.doe@acme.com\nSubject: no id\n\nbody\n",
    );
    assert!(r.starts_with("250"), "{r}");
    c.cmd("QUIT");
    let jane = server.wait_mail("mail/jdoe", 1);
    assert_eq!(jane.len(), 1);
    let text = server.mailfile_show("mail/jdoe", jane[0]["id"].as_u64().unwrap());
    let ids: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Message-ID: <"))
        .collect();
    assert_eq!(ids.len(), 1, "one Message-ID: {text}");
    let id = ids[0].trim_end().trim_end_matches('>');
    assert!(id.ends_with("@mail.acme.com"), "{id}");
    wait_for(
        || {
            server
                .console(&format!("track --id {id}"))
                .contains("jane.doe@acme.com")
        },
        "the delivery event under the new Message-ID",
    );
    assert!(
        server.log().contains(&format!("Message-ID <{id}> added")),
        "{}",
        server.log()
    );
}
