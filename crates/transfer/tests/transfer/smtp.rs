//! The SMTP conversation: per-recipient replies, pipelining, SIZE, STARTTLS,
//! HELO fallback, content, connection reuse, and hostile servers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use transfer::{ConnectionCache, RecipientResult, TlsMode, TlsState, Transferer};

use crate::sink::{Sink, SinkConfig, tls_config};
use crate::{Logs, batch, config, relay};

fn rcpt_replies(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(rcpt, reply)| (rcpt.to_string(), reply.to_string()))
        .collect()
}

#[tokio::test]
async fn one_rejected_recipient_of_three_fails_alone() {
    let sink = Sink::start(SinkConfig {
        rcpt_replies: rcpt_replies(&[(
            "bob@x.test",
            "550 5.1.1 <bob@x.test>: Recipient address rejected",
        )]),
        ..SinkConfig::default()
    })
    .await;
    let transferer = Transferer::new(config()).unwrap();
    let report = transferer
        .send(
            &relay(&[&[sink.addr]]),
            &batch(&["amy@x.test", "bob@x.test", "cat@x.test"]),
        )
        .await;
    let delivered = RecipientResult::Delivered {
        host: "[127.0.0.1]".into(),
        reply: "250 2.0.0 Ok: queued".into(),
    };
    assert_eq!(
        report.results,
        vec![
            ("amy@x.test".into(), delivered.clone()),
            (
                "bob@x.test".into(),
                RecipientResult::Permanent {
                    reply: "SMTP Protocol Returned a Permanent Error 550 5.1.1 <bob@x.test>: Recipient address rejected".into(),
                    status: "5.1.1".into(),
                }
            ),
            ("cat@x.test".into(), delivered),
        ]
    );
    assert_eq!(sink.stats.messages()[0].rcpts, ["amy@x.test", "cat@x.test"]);
    assert_eq!(report.last_error, None);
}

#[tokio::test]
async fn a_busy_mailbox_is_transient_for_that_recipient() {
    let sink = Sink::start(SinkConfig {
        rcpt_replies: rcpt_replies(&[("bob@x.test", "450 4.2.1 Mailbox busy")]),
        ..SinkConfig::default()
    })
    .await;
    let transferer = Transferer::new(config()).unwrap();
    let report = transferer
        .send(
            &relay(&[&[sink.addr]]),
            &batch(&["amy@x.test", "bob@x.test"]),
        )
        .await;
    assert!(matches!(
        report.results[0].1,
        RecipientResult::Delivered { .. }
    ));
    assert_eq!(
        report.results[1].1,
        RecipientResult::Transient {
            reason: "SMTP Protocol Returned a Transient Error 450 4.2.1 Mailbox busy".into()
        }
    );
}

/// No recipient accepted: no content is sent. A pipelining server sees the
/// DATA of the group and refuses it; others never see a DATA.
#[tokio::test]
async fn no_accepted_recipient_means_no_content() {
    for capabilities in [SinkConfig::default().capabilities, vec![]] {
        let pipelining = !capabilities.is_empty();
        let sink = Sink::start(SinkConfig {
            capabilities,
            rcpt_replies: rcpt_replies(&[
                ("amy@x.test", "550 5.1.1 unknown"),
                ("bob@x.test", "451 4.7.1 greylisted"),
            ]),
            ..SinkConfig::default()
        })
        .await;
        let transferer = Transferer::new(config()).unwrap();
        let report = transferer
            .send(
                &relay(&[&[sink.addr]]),
                &batch(&["amy@x.test", "bob@x.test"]),
            )
            .await;
        assert!(matches!(
            report.results[0].1,
            RecipientResult::Permanent { .. }
        ));
        assert!(matches!(
            report.results[1].1,
            RecipientResult::Transient { .. }
        ));
        assert_eq!(sink.stats.messages().len(), 0);
        assert_eq!(sink.stats.saw("DATA"), usize::from(pipelining));
    }
}

/// A server that takes a pipelined DATA although it refused every
/// recipient gets an empty content, and the connection stays usable.
#[tokio::test]
async fn a_data_taken_without_recipients_is_ended_empty() {
    let sink = Sink::start(SinkConfig {
        rcpt_replies: rcpt_replies(&[("amy@x.test", "550 5.1.1 unknown")]),
        data_without_recipients: true,
        ..SinkConfig::default()
    })
    .await;
    let transferer = Transferer::new(config()).unwrap();
    let refused = transferer
        .send(&relay(&[&[sink.addr]]), &batch(&["amy@x.test"]))
        .await;
    assert!(matches!(
        refused.results[0].1,
        RecipientResult::Permanent { .. }
    ));
    let next = transferer
        .send(&relay(&[&[sink.addr]]), &batch(&["bob@x.test"]))
        .await;
    assert!(matches!(
        next.results[0].1,
        RecipientResult::Delivered { .. }
    ));
    let messages = sink.stats.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].rcpts, vec!["bob@x.test".to_string()]);
    assert_eq!(sink.stats.connections(), 1);
}

#[tokio::test]
async fn sender_rejected_and_data_rejected_are_permanent() {
    let bad_sender = Sink::start(SinkConfig {
        mail_reply: "553 5.7.1 Sender not allowed".into(),
        ..SinkConfig::default()
    })
    .await;
    let bad_content = Sink::start(SinkConfig {
        final_reply: "554 5.6.0 Message rejected: spam".into(),
        ..SinkConfig::default()
    })
    .await;
    let transferer = Transferer::new(config()).unwrap();
    let report = transferer
        .send(
            &relay(&[&[bad_sender.addr]]),
            &batch(&["a@x.test", "b@x.test"]),
        )
        .await;
    for (_, result) in &report.results {
        assert_eq!(
            result,
            &RecipientResult::Permanent {
                reply: "SMTP Protocol Returned a Permanent Error 553 5.7.1 Sender not allowed"
                    .into(),
                status: "5.7.1".into(),
            }
        );
    }
    let report = transferer
        .send(&relay(&[&[bad_content.addr]]), &batch(&["a@x.test"]))
        .await;
    assert_eq!(
        report.results[0].1,
        RecipientResult::Permanent {
            reply: "SMTP Protocol Returned a Permanent Error 554 5.6.0 Message rejected: spam"
                .into(),
            status: "5.6.0".into(),
        }
    );
}

#[tokio::test]
async fn pipelining_sends_mail_and_recipients_together() {
    let with = Sink::start(SinkConfig::default()).await;
    let without = Sink::start(SinkConfig {
        capabilities: vec![],
        ..SinkConfig::default()
    })
    .await;
    let transferer = Transferer::new(config()).unwrap();
    for sink in [&with, &without] {
        let report = transferer
            .send(
                &relay(&[&[sink.addr]]),
                &batch(&["a@x.test", "b@x.test", "c@x.test"]),
            )
            .await;
        assert!(
            report
                .results
                .iter()
                .all(|(_, r)| matches!(r, RecipientResult::Delivered { .. }))
        );
    }
    assert!(
        with.stats
            .pipelined
            .load(std::sync::atomic::Ordering::SeqCst)
    );
    assert!(
        !without
            .stats
            .pipelined
            .load(std::sync::atomic::Ordering::SeqCst)
    );
}

#[tokio::test]
async fn size_and_body_parameters() {
    let sink = Sink::start(SinkConfig {
        capabilities: vec!["SIZE 100".into(), "8BITMIME".into()],
        ..SinkConfig::default()
    })
    .await;
    let transferer = Transferer::new(config()).unwrap();
    let mut small = batch(&["a@x.test"]);
    small.body_8bit = true;
    let report = transferer.send(&relay(&[&[sink.addr]]), &small).await;
    assert!(matches!(
        report.results[0].1,
        RecipientResult::Delivered { .. }
    ));
    let mail = sink
        .stats
        .commands
        .lock()
        .iter()
        .find(|c| c.starts_with("MAIL"))
        .cloned()
        .unwrap();
    assert_eq!(
        mail,
        format!(
            "MAIL FROM:<sender@acme.test> SIZE={} BODY=8BITMIME",
            small.size
        )
    );

    let mut big = batch(&["a@x.test", "b@x.test"]);
    big.size = 5000;
    let report = transferer.send(&relay(&[&[sink.addr]]), &big).await;
    for (_, result) in &report.results {
        assert_eq!(
            result,
            &RecipientResult::Permanent {
                reply: "Message size 5000 bytes exceeds the maximum message size 100 bytes of host [127.0.0.1]".into(),
                status: "5.3.4".into(),
            }
        );
    }
    assert_eq!(sink.stats.saw("MAIL"), 1);
}

#[tokio::test]
async fn content_is_dot_stuffed_and_null_sender_kept() {
    let sink = Sink::start(SinkConfig::default()).await;
    let transferer = Transferer::new(config()).unwrap();
    let mut report_batch = batch(&["a@x.test"]);
    report_batch.from = String::new();
    let content = b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nend\r\n".to_vec();
    report_batch.size = content.len() as u64;
    report_batch.data = Arc::new(content.clone());
    let report = transferer
        .send(&relay(&[&[sink.addr]]), &report_batch)
        .await;
    assert!(matches!(
        report.results[0].1,
        RecipientResult::Delivered { .. }
    ));
    let received = &sink.stats.messages()[0];
    assert_eq!(received.mail_from, "");
    assert_eq!(received.data, content);
}

#[tokio::test]
async fn starttls_with_a_self_signed_certificate() {
    let sink = Sink::start(SinkConfig {
        tls: Some(tls_config()),
        ..SinkConfig::default()
    })
    .await;
    let mut cfg = config();
    cfg.tls = TlsMode::Opportunistic;
    let transferer = Transferer::new(cfg).unwrap();
    let report = transferer
        .send(&relay(&[&[sink.addr]]), &batch(&["a@x.test"]))
        .await;
    assert!(matches!(
        report.results[0].1,
        RecipientResult::Delivered { .. }
    ));
    assert_eq!(report.attempts[0].tls, TlsState::Unverified);
    assert_eq!(
        sink.stats
            .tls_sessions
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    assert_eq!(sink.stats.saw("EHLO"), 2);
    assert_eq!(sink.stats.messages().len(), 1);
}

#[tokio::test]
async fn tls_off_never_starts_tls() {
    let sink = Sink::start(SinkConfig {
        tls: Some(tls_config()),
        ..SinkConfig::default()
    })
    .await;
    let transferer = Transferer::new(config()).unwrap();
    let report = transferer
        .send(&relay(&[&[sink.addr]]), &batch(&["a@x.test"]))
        .await;
    assert_eq!(report.attempts[0].tls, TlsState::Plain);
    assert_eq!(sink.stats.saw("STARTTLS"), 0);
}

#[tokio::test]
async fn a_failed_handshake_is_retried_without_tls() {
    let sink = Sink::start(SinkConfig {
        broken_tls: true,
        ..SinkConfig::default()
    })
    .await;
    let mut cfg = config();
    cfg.tls = TlsMode::Opportunistic;
    let transferer = Transferer::new(cfg).unwrap();
    let report = transferer
        .send(&relay(&[&[sink.addr]]), &batch(&["a@x.test"]))
        .await;
    assert!(matches!(
        report.results[0].1,
        RecipientResult::Delivered { .. }
    ));
    assert_eq!(report.attempts[0].tls, TlsState::Plain);
    assert_eq!(sink.stats.connections(), 2);
    assert_eq!(sink.stats.saw("STARTTLS"), 1);
}

#[tokio::test]
async fn helo_when_ehlo_is_refused() {
    let sink = Sink::start(SinkConfig {
        ehlo_reply: Some("502 5.5.2 EHLO not supported".into()),
        ..SinkConfig::default()
    })
    .await;
    let transferer = Transferer::new(config()).unwrap();
    let report = transferer
        .send(&relay(&[&[sink.addr]]), &batch(&["a@x.test"]))
        .await;
    assert!(matches!(
        report.results[0].1,
        RecipientResult::Delivered { .. }
    ));
    assert_eq!(sink.stats.saw("HELO"), 1);
    assert!(
        !sink
            .stats
            .pipelined
            .load(std::sync::atomic::Ordering::SeqCst)
    );
}

#[tokio::test]
async fn connections_are_reused_with_rset_and_closed_when_idle() {
    let sink = Sink::start(SinkConfig::default()).await;
    let cache = ConnectionCache {
        idle: Duration::from_millis(300),
        per_target: 2,
    };
    let transferer = Transferer::with_cache(config(), cache).unwrap();
    for _ in 0..5 {
        let report = transferer
            .send(&relay(&[&[sink.addr]]), &batch(&["a@x.test"]))
            .await;
        assert!(matches!(
            report.results[0].1,
            RecipientResult::Delivered { .. }
        ));
    }
    assert_eq!(sink.stats.connections(), 1);
    assert_eq!(sink.stats.saw("RSET"), 4);
    assert_eq!(sink.stats.messages().len(), 5);
    // The RSET rides in the transaction's group: no round trip of its own.
    assert!(
        sink.stats
            .rset_grouped
            .load(std::sync::atomic::Ordering::SeqCst)
    );
    // Idle past the limit: the client says QUIT.
    for _ in 0..50 {
        if sink.stats.saw("QUIT") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sink.stats.saw("QUIT"), 1);
}

#[tokio::test]
async fn a_dead_cached_connection_is_replaced() {
    let sink = Sink::start(SinkConfig {
        close_after_message: true,
        ..SinkConfig::default()
    })
    .await;
    let transferer = Transferer::new(config()).unwrap();
    for _ in 0..3 {
        let report = transferer
            .send(&relay(&[&[sink.addr]]), &batch(&["a@x.test"]))
            .await;
        assert!(matches!(
            report.results[0].1,
            RecipientResult::Delivered { .. }
        ));
        assert_eq!(report.attempts.len(), 1);
    }
    assert_eq!(sink.stats.connections(), 3);
    assert_eq!(sink.stats.messages().len(), 3);
}

#[tokio::test]
async fn client_debug_logs_commands_and_replies() {
    let (logs, _guard) = Logs::capture();
    let sink = Sink::start(SinkConfig::default()).await;
    let mut cfg = config();
    cfg.client_debug = true;
    let transferer = Transferer::new(cfg).unwrap();
    transferer
        .send(&relay(&[&[sink.addr]]), &batch(&["a@x.test"]))
        .await;
    let text = logs.text();
    assert!(
        text.contains("SMTPClient: Sent: EHLO mailhop.test"),
        "{text}"
    );
    assert!(text.contains("SMTPClient: Sent: RCPT TO:<a@x.test>"));
    assert!(text.contains("SMTPClient: Received: 250 2.0.0 Ok: queued"));
    assert!(!text.contains("Hello there."), "content must not be logged");

    transferer.set_client_debug(false);
    let before = logs.text().matches("SMTPClient: Sent:").count();
    transferer
        .send(&relay(&[&[sink.addr]]), &batch(&["a@x.test"]))
        .await;
    assert_eq!(logs.text().matches("SMTPClient: Sent:").count(), before);
}

/// A server that writes `script` after accepting, then reads until closed.
async fn hostile(script: Vec<u8>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let script = script.clone();
            tokio::spawn(async move {
                let _ = tcp.write_all(&script).await;
                let mut buf = [0u8; 1024];
                while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

#[tokio::test]
async fn hostile_servers_fail_the_host_without_panicking() {
    let mut huge_line = b"220 ".to_vec();
    huge_line.extend(std::iter::repeat_n(b'x', 200_000));
    huge_line.extend_from_slice(b"\r\n");
    let mut endless = Vec::new();
    for _ in 0..1000 {
        endless.extend_from_slice(b"220-more\r\n");
    }
    let scripts: Vec<Vec<u8>> = vec![
        b"garbage without a code\r\n".to_vec(),
        b"\xff\xfe\x00\x01\r\n".to_vec(),
        b"220 hi\r\n".to_vec(), // then silence: EHLO times out
        endless,
        b"2".to_vec(), // then silence
        b"".to_vec(),
        b"220-multi\r\n220-line\r\n220 greeting\r\n250-x\r\n999 nonsense\r\n".to_vec(),
    ];
    let mut addrs = Vec::new();
    for script in scripts {
        addrs.push(hostile(script).await);
    }
    // A server that closes at once.
    let closing = TcpListener::bind("127.0.0.1:0").await.unwrap();
    addrs.push(closing.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = closing.accept().await {
            drop(tcp);
        }
    });
    let huge = hostile(huge_line).await;

    let mut cfg = config();
    cfg.greeting_timeout = Duration::from_millis(500);
    cfg.command_timeout = Duration::from_millis(500);
    let transferer = Transferer::new(cfg).unwrap();
    let levels: Vec<&[std::net::SocketAddr]> = addrs.iter().map(std::slice::from_ref).collect();
    let report = transferer
        .send(&relay(&levels), &batch(&["a@x.test"]))
        .await;
    assert_eq!(report.attempts.len(), addrs.len());
    assert!(matches!(
        report.results[0].1,
        RecipientResult::Transient { .. }
    ));

    // An over-long greeting line is cut, not fatal.
    let report = transferer
        .send(&relay(&[&[huge]]), &batch(&["a@x.test"]))
        .await;
    assert_eq!(report.attempts.len(), 1);
    assert!(matches!(
        report.results[0].1,
        RecipientResult::Transient { .. }
    ));
}
