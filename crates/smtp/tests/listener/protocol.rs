//! The conversation: replies, sequence, limits, pipelining.

use std::time::Duration;

use smtp::{AuthPolicy, ListenerConfig, ListenerKind};

use crate::common::{Server, config, eventually};

#[tokio::test]
async fn greeting_ehlo_and_simple_commands() {
    let server = Server::start(config()).await;
    let mut c = server.connect().await;
    assert_eq!(c.reply().await, "220 mail.acme.test ESMTP mailhop ready");
    let ehlo = c
        .expect(
            "EHLO client.test",
            "250-mail.acme.test Hello client.test [127.0.0.1]",
        )
        .await;
    for cap in [
        "PIPELINING",
        "SIZE 26214400",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "AUTH PLAIN LOGIN",
        "SMTPUTF8",
    ] {
        assert!(
            ehlo.lines().any(|l| l[4..] == *cap),
            "{cap} missing from {ehlo}"
        );
    }
    assert!(!ehlo.contains("STARTTLS"), "no TLS configured: {ehlo}");
    c.expect("NOOP", "250 2.0.0").await;
    assert_eq!(
        c.cmd("VRFY alice").await,
        "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"
    );
    c.expect("EXPN staff", "502").await;
    c.expect("HELP", "214").await;
    c.expect("RSET", "250 2.0.0").await;
    c.expect("HELO again.test", "250 mail.acme.test Hello again.test")
        .await;
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye");
    assert!(c.closed().await);
}

#[tokio::test]
async fn a_message_is_stored_with_a_received_header() {
    let server = Server::start(config()).await;
    let mut c = server.connect().await;
    c.reply().await;
    c.expect("EHLO client.test", "250").await;
    c.expect(
        "MAIL FROM:<bob@example.com> BODY=8BITMIME SIZE=100",
        "250 2.1.0",
    )
    .await;
    c.expect("RCPT TO:<alice@acme.test>", "250 2.1.5").await;
    c.expect("RCPT TO:<unknown@acme.test>", "550 5.1.1 User unknown")
        .await;
    c.expect("RCPT TO:<alice@acme.test>", "250 2.1.5").await;
    c.expect("RCPT TO:<Postmaster>", "250 2.1.5").await;
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>")
        .await;
    c.send("Message-ID: <m1@example.com>\r\nSubject: hi\r\n\r\n..dot\r\nsecond\r\nline\r\n.\r\n")
        .await;
    assert_eq!(c.reply().await, "250 2.0.0 Ok: queued as Q0001");
    c.expect("QUIT", "221").await;

    let got = server.handler.received();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.env.from, "bob@example.com");
    assert_eq!(m.env.recipients, ["alice@acme.test", "postmaster"]);
    assert!(m.env.body_8bit);
    assert_eq!(m.env.size_hint, Some(100));
    assert_eq!(m.session.helo.as_deref(), Some("client.test"));
    assert_eq!(
        m.body(),
        b"Message-ID: <m1@example.com>\r\nSubject: hi\r\n\r\n.dot\r\nsecond\r\nline\r\n"
    );
    let received = m.received_header();
    assert!(received.starts_with("Received: from client.test ([127.0.0.1])\r\n\tby mail.acme.test (mailhop) with ESMTP id "), "{received}");
    assert!(eventually(|| server.stat("SMTP.Messages.Accepted") == 1).await);
}

#[tokio::test]
async fn null_sender_and_handler_refusals() {
    let server = Server::start(config()).await;
    let mut c = server.connect().await;
    c.reply().await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<blocked@spam.test>", "550 5.7.1 Sender refused")
        .await;
    c.expect("MAIL FROM:<>", "250").await;
    c.expect("RCPT TO:<fail@acme.test>", "250").await;
    c.expect("DATA", "354").await;
    c.send("Subject: bounce\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(c.reply().await, "451 4.3.0 Mail box unavailable");
    // The transaction is over either way: a new one can start.
    c.expect("MAIL FROM:<>", "250").await;
    c.expect("RCPT TO:<alice@acme.test>", "250").await;
    c.expect("DATA", "354").await;
    c.send("Subject: bounce\r\n\r\nx\r\n.\r\n").await;
    let reply = c.reply().await;
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    let got = server.handler.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].env.from, "");
    assert!(eventually(|| server.stat("SMTP.Messages.Rejected") == 1).await);
}

#[tokio::test]
async fn wrong_sequence_gets_503() {
    let server = Server::start(config()).await;
    let mut c = server.connect().await;
    c.reply().await;
    c.expect("MAIL FROM:<a@b.test>", "503 5.5.1").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("RCPT TO:<alice@acme.test>", "503 5.5.1").await;
    c.expect("DATA", "503 5.5.1").await;
    c.expect("MAIL FROM:<a@b.test>", "250").await;
    c.expect("MAIL FROM:<a@b.test>", "503 5.5.1").await;
    c.expect("DATA", "554 5.5.1 No valid recipients").await;
    c.expect("RSET", "250").await;
    c.expect("RCPT TO:<alice@acme.test>", "503").await;
    c.expect("NOOP", "250").await;
}

#[tokio::test]
async fn pipelined_batch_is_answered_in_order() {
    let server = Server::start(config()).await;
    let mut c = server.connect().await;
    c.reply().await;
    c.expect("EHLO client.test", "250").await;
    c.send(
        "MAIL FROM:<bob@example.com>\r\nRCPT TO:<a@acme.test>\r\nRCPT TO:<unknown@acme.test>\r\nRCPT TO:<b@acme.test>\r\nDATA\r\n",
    )
    .await;
    for expected in ["250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354"] {
        let reply = c.reply().await;
        assert!(
            reply.starts_with(expected),
            "got {reply:?}, expected {expected}"
        );
    }
    // The message, its end and the next transaction in one write.
    c.send("Subject: one\r\n\r\nbody\r\n.\r\nRSET\r\nMAIL FROM:<>\r\nRCPT TO:<c@acme.test>\r\nNOOP\r\nQUIT\r\n").await;
    for expected in [
        "250 2.0.0 Ok: queued as Q0001",
        "250 2.0.0 Reset",
        "250 2.1.0",
        "250 2.1.5",
        "250 2.0.0 OK",
        "221",
    ] {
        let reply = c.reply().await;
        assert!(
            reply.starts_with(expected),
            "got {reply:?}, expected {expected}"
        );
    }
    assert!(c.closed().await);
    let got = server.handler.received();
    assert_eq!(got[0].env.recipients, ["a@acme.test", "b@acme.test"]);
    assert_eq!(got[0].body(), b"Subject: one\r\n\r\nbody\r\n");
}

#[tokio::test]
async fn size_limit_at_mail_and_during_data() {
    let server = Server::start(ListenerConfig {
        max_message_size: 1000,
        ..config()
    })
    .await;
    let mut c = server.connect().await;
    c.reply().await;
    let ehlo = c.expect("EHLO client.test", "250").await;
    assert!(ehlo.contains("SIZE 1000"), "{ehlo}");
    assert_eq!(
        c.cmd("MAIL FROM:<bob@example.com> SIZE=1001").await,
        "552 5.3.4 Message size exceeds fixed maximum message size"
    );
    c.expect("MAIL FROM:<bob@example.com> SIZE=500", "250")
        .await;
    c.expect("RCPT TO:<alice@acme.test>", "250").await;
    c.expect("DATA", "354").await;
    let line = "x".repeat(98);
    let mut body = String::new();
    for _ in 0..50 {
        body.push_str(&line);
        body.push_str("\r\n");
    }
    body.push_str(".\r\n");
    c.send(&body).await;
    assert_eq!(
        c.reply().await,
        "552 5.3.4 Message size exceeds fixed maximum message size"
    );
    c.expect("NOOP", "250").await;
    assert_eq!(
        server
            .handler
            .data_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn too_many_recipients_get_452() {
    let server = Server::start(ListenerConfig {
        max_recipients: 3,
        ..config()
    })
    .await;
    let mut c = server.connect().await;
    c.reply().await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<bob@example.com>", "250").await;
    for n in 0..3 {
        c.expect(&format!("RCPT TO:<u{n}@acme.test>"), "250").await;
    }
    c.expect("RCPT TO:<u3@acme.test>", "452 4.5.3").await;
    c.expect("DATA", "354").await;
    c.send("x\r\n.\r\n").await;
    c.reply().await;
    assert_eq!(server.handler.received()[0].env.recipients.len(), 3);
}

#[tokio::test]
async fn idle_timeout_closes_with_421() {
    let server = Server::start(ListenerConfig {
        idle_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    let mut c = server.connect().await;
    c.reply().await;
    c.expect("EHLO client.test", "250").await;
    let reply = c.reply().await;
    assert!(reply.starts_with("421 4.4.2 mail.acme.test"), "{reply}");
    assert!(c.closed().await);
    assert!(eventually(|| server.stat("SMTP.Sessions.Inbound.Active") == 0).await);
}

#[tokio::test]
async fn idle_timeout_applies_during_data() {
    let server = Server::start(ListenerConfig {
        idle_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    let mut c = server.connect().await;
    c.reply().await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<>", "250").await;
    c.expect("RCPT TO:<a@acme.test>", "250").await;
    c.expect("DATA", "354").await;
    c.send("Subject: slow\r\n").await;
    let reply = c.reply().await;
    assert!(reply.starts_with("421 4.4.2"), "{reply}");
    assert_eq!(
        server
            .handler
            .data_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn submission_requires_auth() {
    let server = Server::start(ListenerConfig {
        kind: ListenerKind::Submission,
        auth: AuthPolicy::Off,
        ..config()
    })
    .await;
    let mut c = server.connect().await;
    c.reply().await;
    let ehlo = c.expect("EHLO client.test", "250").await;
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    c.expect(
        "MAIL FROM:<alice@acme.test>",
        "530 5.7.0 Authentication required",
    )
    .await;
    c.expect(
        &format!("AUTH PLAIN {}", crate::common::plain("alice", "secret")),
        "235 2.7.0",
    )
    .await;
    c.expect("MAIL FROM:<alice@acme.test>", "250").await;
}

#[tokio::test]
async fn auth_off_is_not_offered() {
    let server = Server::start(ListenerConfig {
        auth: AuthPolicy::Off,
        ..config()
    })
    .await;
    let mut c = server.connect().await;
    c.reply().await;
    let ehlo = c.expect("EHLO client.test", "250").await;
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    c.expect("AUTH PLAIN AGFsaWNlAHNlY3JldA==", "502").await;
    c.expect("MAIL FROM:<a@b.test>", "250").await;
}

#[tokio::test]
async fn statistics_count_sessions_and_bytes() {
    let server = Server::start(config()).await;
    for _ in 0..2 {
        let mut c = server.connect().await;
        c.reply().await;
        c.expect("QUIT", "221").await;
        assert!(c.closed().await);
    }
    assert!(eventually(|| server.stat("SMTP.Sessions.Inbound.Active") == 0).await);
    assert_eq!(server.stat("SMTP.Sessions.Inbound.Total"), 2);
    assert!(server.stat("SMTP.Sessions.Inbound.Peak") >= 1);
    assert_eq!(server.stat("SMTP.Sessions.Inbound.BytesReceived"), 12);
    let per_session = "220 mail.acme.test ESMTP mailhop ready\r\n221 2.0.0 Bye\r\n".len() as u64;
    assert_eq!(
        server.stat("SMTP.Sessions.Inbound.BytesSent"),
        2 * per_session
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_store_every_message() {
    const SESSIONS: usize = 20;
    const MESSAGES: usize = 100;
    let server = Server::start(config()).await;
    let body = format!(
        "Subject: load\r\n\r\n{}",
        "0123456789abcdef\r\n".repeat(100)
    );
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for s in 0..SESSIONS {
        let mut c = server.connect().await;
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            c.reply().await;
            c.expect("EHLO load.test", "250").await;
            for m in 0..MESSAGES {
                c.send(format!(
                    "MAIL FROM:<s{s}@load.test>\r\nRCPT TO:<m{m}@acme.test>\r\nDATA\r\n"
                ))
                .await;
                for code in ["250", "250", "354"] {
                    assert!(c.reply().await.starts_with(code));
                }
                c.send(format!("{body}.\r\n")).await;
                assert!(c.reply().await.starts_with("250 2.0.0 Ok: queued as"));
            }
            c.expect("QUIT", "221").await;
        }));
    }
    for task in tasks {
        task.await.expect("client task");
    }
    let elapsed = started.elapsed();
    let got = server.handler.received();
    assert_eq!(got.len(), SESSIONS * MESSAGES);
    assert!(got.iter().all(|m| m.body() == body.as_bytes()));
    eprintln!(
        "{} messages in {elapsed:?} ({:.0}/s, debug build)",
        got.len(),
        got.len() as f64 / elapsed.as_secs_f64()
    );
}
