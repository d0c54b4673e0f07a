//! Relay host levels: failover, load balancing, names, hosts files.

use std::time::Duration;

use transfer::{Destination, RecipientResult, Resolution, Transferer};

use crate::sink::{Sink, SinkConfig};
use crate::{Logs, batch, closed_port, config, ip, relay, relay_name};
use testkit::{Dns, Rr};

fn delivered_by(result: &RecipientResult) -> &str {
    match result {
        RecipientResult::Delivered { host, .. } => host,
        other => panic!("not delivered: {other:?}"),
    }
}

#[tokio::test]
async fn closed_port_fails_over_to_the_next_level() {
    let (logs, _guard) = Logs::capture();
    let good = Sink::start(SinkConfig::default()).await;
    let closed = closed_port();
    let transferer = Transferer::new(config()).unwrap();
    let report = transferer
        .send(&relay(&[&[closed], &[good.addr]]), &batch(&["a@x.test"]))
        .await;
    assert_eq!(delivered_by(&report.results[0].1), "[127.0.0.1]");
    assert_eq!(report.attempts.len(), 2);
    assert_eq!(report.attempts[0].addr, Some(closed));
    assert_eq!(
        report.attempts[0].outcome,
        "Server not responding (connection refused)"
    );
    assert_eq!(report.attempts[1].outcome, "250 2.0.0 Ok: queued");
    assert_eq!(good.stats.messages().len(), 1);
    let text = logs.text();
    assert!(
        text.contains(
            "Router: No messages transferred to [127.0.0.1] (host 127.0.0.1) via SMTP: Server not responding"
        ),
        "{text}"
    );
    assert!(text.contains(&format!(
        "SMTPClient: Attempting to Connect: Host [127.0.0.1], Port {}",
        good.port()
    )));
    assert!(
        text.contains("Router: Transferring mail to domain x.test (host [127.0.0.1]) via SMTP")
    );
}

#[tokio::test]
async fn greeting_421_fails_over() {
    let busy = Sink::start(SinkConfig {
        greeting: Some("421 4.3.2 Too busy, try later".into()),
        ..SinkConfig::default()
    })
    .await;
    let good = Sink::start(SinkConfig::default()).await;
    let transferer = Transferer::new(config()).unwrap();
    let report = transferer
        .send(&relay(&[&[busy.addr], &[good.addr]]), &batch(&["a@x.test"]))
        .await;
    assert!(matches!(
        report.results[0].1,
        RecipientResult::Delivered { .. }
    ));
    assert_eq!(
        report.last_error.as_deref(),
        Some("SMTP Protocol Returned a Transient Error 421 4.3.2 Too busy, try later")
    );
    assert_eq!(good.stats.messages().len(), 1);
}

#[tokio::test]
async fn a_silent_server_times_out_and_fails_over() {
    let silent = Sink::start(SinkConfig {
        greeting: None,
        ..SinkConfig::default()
    })
    .await;
    let good = Sink::start(SinkConfig::default()).await;
    let mut cfg = config();
    cfg.greeting_timeout = Duration::from_millis(300);
    let transferer = Transferer::new(cfg).unwrap();
    let report = transferer
        .send(
            &relay(&[&[silent.addr], &[good.addr]]),
            &batch(&["a@x.test"]),
        )
        .await;
    assert!(matches!(
        report.results[0].1,
        RecipientResult::Delivered { .. }
    ));
    assert_eq!(
        report.attempts[0].outcome,
        "Server not responding (no reply to the greeting in time)"
    );
}

#[tokio::test]
async fn a_hang_at_data_times_out_and_fails_over() {
    let stuck = Sink::start(SinkConfig {
        hang_on: Some("DATA".into()),
        ..SinkConfig::default()
    })
    .await;
    let good = Sink::start(SinkConfig::default()).await;
    let mut cfg = config();
    cfg.command_timeout = Duration::from_millis(300);
    let transferer = Transferer::new(cfg).unwrap();
    let report = transferer
        .send(
            &relay(&[&[stuck.addr], &[good.addr]]),
            &batch(&["a@x.test"]),
        )
        .await;
    assert!(matches!(
        report.results[0].1,
        RecipientResult::Delivered { .. }
    ));
    assert_eq!(
        report.attempts[0].outcome,
        "Server not responding (no reply to DATA in time)"
    );
}

#[tokio::test]
async fn transient_mail_and_final_replies_fail_over() {
    let mail_4xx = Sink::start(SinkConfig {
        mail_reply: "451 4.3.0 Sender check unavailable".into(),
        ..SinkConfig::default()
    })
    .await;
    let final_4xx = Sink::start(SinkConfig {
        final_reply: "452 4.3.1 Insufficient system storage".into(),
        ..SinkConfig::default()
    })
    .await;
    let good = Sink::start(SinkConfig::default()).await;
    let transferer = Transferer::new(config()).unwrap();
    let report = transferer
        .send(
            &relay(&[&[mail_4xx.addr], &[final_4xx.addr], &[good.addr]]),
            &batch(&["a@x.test", "b@x.test"]),
        )
        .await;
    assert!(
        report
            .results
            .iter()
            .all(|(_, r)| matches!(r, RecipientResult::Delivered { .. }))
    );
    let outcomes: Vec<&str> = report.attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        [
            "SMTP Protocol Returned a Transient Error 451 4.3.0 Sender check unavailable",
            "SMTP Protocol Returned a Transient Error 452 4.3.1 Insufficient system storage",
            "250 2.0.0 Ok: queued",
        ]
    );
    assert_eq!(good.stats.messages()[0].rcpts, ["a@x.test", "b@x.test"]);
}

#[tokio::test]
async fn every_host_failing_leaves_every_recipient_transient() {
    let (logs, _guard) = Logs::capture();
    let busy = Sink::start(SinkConfig {
        greeting: Some("421 4.7.0 Go away".into()),
        ..SinkConfig::default()
    })
    .await;
    let closed = closed_port();
    let transferer = Transferer::new(config()).unwrap();
    let report = transferer
        .send(
            &relay(&[&[closed, busy.addr]]),
            &batch(&["a@x.test", "b@x.test"]),
        )
        .await;
    assert_eq!(report.attempts.len(), 2);
    let last = report.last_error.clone().unwrap();
    assert!(!report.waiting_for_dns);
    for (_, result) in &report.results {
        assert_eq!(
            result,
            &RecipientResult::Transient {
                reason: last.clone()
            }
        );
    }
    assert_eq!(
        logs.text()
            .matches("Router: No messages transferred to")
            .count(),
        2
    );
}

#[tokio::test]
async fn a_level_spreads_messages_over_its_hosts() {
    let one = Sink::start(SinkConfig::default()).await;
    let two = Sink::start(SinkConfig::default()).await;
    let transferer = Transferer::new(config()).unwrap();
    let dest = relay(&[&[one.addr, two.addr]]);
    for i in 0..200 {
        let report = transferer
            .send(&dest, &batch(&[&format!("r{i}@x.test")]))
            .await;
        assert!(matches!(
            report.results[0].1,
            RecipientResult::Delivered { .. }
        ));
    }
    let (a, b) = (one.stats.messages().len(), two.stats.messages().len());
    assert_eq!(a + b, 200);
    assert!((70..=130).contains(&a), "{a} / {b}");
    // Connections are reused: far fewer connections than messages.
    assert!(one.stats.connections() + two.stats.connections() < 20);
}

#[tokio::test]
async fn relay_names_resolve_by_mx_then_address() {
    let sink = Sink::start(SinkConfig::default()).await;
    let dns = Dns::start(vec![
        Rr::Mx("relay.test.", 10, "smarthost.relay.test."),
        Rr::A("smarthost.relay.test.", "127.0.0.1".parse().unwrap()),
        Rr::A("plain.test.", "127.0.0.1".parse().unwrap()),
    ])
    .await;
    let mut cfg = config();
    cfg.dns_servers = vec![dns.addr];
    let transferer = Transferer::new(cfg).unwrap();

    let report = transferer
        .send(
            &relay_name("relay.test", Some(sink.port())),
            &batch(&["a@x.test"]),
        )
        .await;
    assert_eq!(delivered_by(&report.results[0].1), "smarthost.relay.test");

    let report = transferer
        .send(
            &relay_name("plain.test", Some(sink.port())),
            &batch(&["a@x.test"]),
        )
        .await;
    assert_eq!(delivered_by(&report.results[0].1), "plain.test");

    let report = transferer
        .send(
            &relay_name("missing.test", Some(sink.port())),
            &batch(&["a@x.test"]),
        )
        .await;
    assert_eq!(
        report.results[0].1,
        RecipientResult::Transient {
            reason: "Unable to find an address for relay host missing.test".into()
        }
    );
    assert_eq!(report.attempts[0].addr, None);
    assert_eq!(sink.stats.messages().len(), 2);
}

#[tokio::test]
async fn relay_without_port_uses_the_outbound_port() {
    let sink = Sink::start(SinkConfig::default()).await;
    let mut cfg = config();
    cfg.outbound_port = sink.port();
    let transferer = Transferer::new(cfg).unwrap();
    let dest = Destination::Relay(transfer::RelayHosts {
        levels: vec![vec![transfer::RelayHost {
            host: transfer::RelayTarget::Ip(ip("127.0.0.1")),
            port: None,
        }]],
    });
    let plan = transferer.plan(&dest).await.unwrap();
    assert_eq!(plan[0][0].addr, sink.addr);
    let report = transferer.send(&dest, &batch(&["a@x.test"])).await;
    assert!(matches!(
        report.results[0].1,
        RecipientResult::Delivered { .. }
    ));
}

#[tokio::test]
async fn hosts_file_resolution_asks_no_dns() {
    let sink = Sink::start(SinkConfig::default()).await;
    let path = std::env::temp_dir().join(format!("mailhop-transfer-hosts-{}", std::process::id()));
    std::fs::write(
        &path,
        "# test hosts\n127.0.0.1 relayhost.test hosts-domain.test\n",
    )
    .unwrap();
    let mut cfg = config();
    cfg.host_name_resolution = Resolution::Hosts(path.clone());
    cfg.outbound_port = sink.port();
    let transferer = Transferer::new(cfg).unwrap();

    let report = transferer
        .send(&relay_name("relayhost.test", None), &batch(&["a@x.test"]))
        .await;
    assert!(matches!(
        report.results[0].1,
        RecipientResult::Delivered { .. }
    ));
    let report = transferer
        .send(
            &Destination::Mx("hosts-domain.test".into()),
            &batch(&["a@hosts-domain.test"]),
        )
        .await;
    assert!(matches!(
        report.results[0].1,
        RecipientResult::Delivered { .. }
    ));
    let report = transferer
        .send(
            &Destination::Mx("elsewhere.test".into()),
            &batch(&["a@elsewhere.test"]),
        )
        .await;
    assert_eq!(
        report.results[0].1,
        RecipientResult::Permanent {
            reply: "No route found to domain elsewhere.test.  Check DNS configuration.".into(),
            status: "5.1.2".into(),
        }
    );
    std::fs::remove_file(&path).unwrap();

    let mut missing = config();
    missing.host_name_resolution = Resolution::Hosts(path);
    assert!(Transferer::new(missing).is_err());
}

#[tokio::test]
async fn quirky_relay_forms_from_the_directory_mean_the_obvious_thing() {
    let one = Sink::start(SinkConfig::default()).await;
    let two = Sink::start(SinkConfig::default()).await;
    let closed = closed_port().port();
    let (p1, p2) = (one.port(), two.port());
    let transferer = Transferer::new(config()).unwrap();

    // Failover: a dead first level, then the second.
    let failover: transfer::RelayHosts = format!("[127.0.0.1]:{closed};[127.0.0.1]:{p1}")
        .parse()
        .unwrap();
    let plan = transferer
        .plan(&Destination::Relay(failover.clone()))
        .await
        .unwrap();
    assert_eq!(plan.len(), 2);
    let report = transferer
        .send(&Destination::Relay(failover), &batch(&["a@x.test"]))
        .await;
    assert_eq!(report.attempts.len(), 2);
    assert_eq!(one.stats.messages().len(), 1);

    // Load balancing, written the two quirky ways.
    for text in [
        format!("[[127.0.0.1]:{p1},[127.0.0.1]:{p2}"),
        format!("127.0.0.1:{p1}, 127.0.0.1:{p2}"),
    ] {
        let hosts: transfer::RelayHosts = text.parse().unwrap();
        assert_eq!(hosts.levels.len(), 1, "{text}");
        assert_eq!(hosts.levels[0].len(), 2, "{text}");
        for i in 0..4 {
            let report = transferer
                .send(
                    &Destination::Relay(hosts.clone()),
                    &batch(&[&format!("r{i}@x.test")]),
                )
                .await;
            assert!(matches!(
                report.results[0].1,
                RecipientResult::Delivered { .. }
            ));
        }
    }
    assert_eq!(one.stats.messages().len(), 1 + 4);
    assert_eq!(two.stats.messages().len(), 4);
}
