//! Direct delivery by MX: preferences, fallback, implicit MX, null MX,
//! NXDOMAIN, DNS down; `plan` for trace.

use std::net::SocketAddr;

use transfer::{Destination, PlanError, RecipientResult, Target, Transferer};

use crate::sink::{Sink, SinkConfig};
use crate::{batch, closed_port, config, ip};
use testkit::{Dns, Rr};

/// A port free on both 127.0.0.1 and 127.0.0.2 (MX hosts share the port).
async fn shared_port() -> u16 {
    loop {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        if std::net::TcpListener::bind(("127.0.0.2", port)).is_ok() {
            return port;
        }
    }
}

async fn sink_at(addr: &str, port: u16) -> Sink {
    Sink::start(SinkConfig {
        ip: ip(addr),
        port,
        ..SinkConfig::default()
    })
    .await
}

async fn zone() -> Dns {
    Dns::start(vec![
        Rr::Mx("pref.test.", 20, "mx2.pref.test."),
        Rr::Mx("pref.test.", 10, "mx1.pref.test."),
        Rr::A("mx1.pref.test.", "127.0.0.1".parse().unwrap()),
        Rr::A("mx2.pref.test.", "127.0.0.2".parse().unwrap()),
        Rr::A("implicit.test.", "127.0.0.1".parse().unwrap()),
        Rr::Mx("nullmx.test.", 0, "."),
        Rr::Mx("dangling.test.", 10, "nowhere.dangling.test."),
        Rr::A("other.dangling.test.", "127.0.0.1".parse().unwrap()),
    ])
    .await
}

fn transferer(dns: &Dns, port: u16) -> Transferer {
    let mut cfg = config();
    cfg.dns_servers = vec![dns.addr];
    cfg.outbound_port = port;
    Transferer::new(cfg).unwrap()
}

#[tokio::test]
async fn the_most_preferred_exchanger_gets_the_message() {
    let port = shared_port().await;
    let first = sink_at("127.0.0.1", port).await;
    let second = sink_at("127.0.0.2", port).await;
    let dns = zone().await;
    let report = transferer(&dns, port)
        .send(
            &Destination::Mx("pref.test".into()),
            &batch(&["a@pref.test"]),
        )
        .await;
    assert_eq!(
        report.results[0].1,
        RecipientResult::Delivered {
            host: "mx1.pref.test".into(),
            reply: "250 2.0.0 Ok: queued".into()
        }
    );
    assert_eq!(
        (first.stats.messages().len(), second.stats.messages().len()),
        (1, 0)
    );
}

#[tokio::test]
async fn an_unreachable_exchanger_falls_back_to_the_next() {
    let port = shared_port().await;
    let second = sink_at("127.0.0.2", port).await;
    let dns = zone().await;
    let report = transferer(&dns, port)
        .send(
            &Destination::Mx("pref.test".into()),
            &batch(&["a@pref.test"]),
        )
        .await;
    assert!(
        matches!(&report.results[0].1, RecipientResult::Delivered { host, .. } if host == "mx2.pref.test")
    );
    assert_eq!(report.attempts[0].host, "mx1.pref.test");
    assert_eq!(second.stats.messages().len(), 1);
}

#[tokio::test]
async fn plan_lists_levels_by_preference() {
    let port = shared_port().await;
    let dns = zone().await;
    let plan = transferer(&dns, port)
        .plan(&Destination::Mx("pref.test".into()))
        .await
        .unwrap();
    let at = |host: &str, addr: &str| Target {
        host: host.into(),
        addr: SocketAddr::new(ip(addr), port),
    };
    assert_eq!(
        plan,
        vec![
            vec![at("mx1.pref.test", "127.0.0.1")],
            vec![at("mx2.pref.test", "127.0.0.2")]
        ]
    );
}

#[tokio::test]
async fn a_domain_without_mx_is_its_own_exchanger() {
    let sink = Sink::start(SinkConfig::default()).await;
    let dns = zone().await;
    let report = transferer(&dns, sink.port())
        .send(
            &Destination::Mx("implicit.test".into()),
            &batch(&["a@implicit.test"]),
        )
        .await;
    assert!(
        matches!(&report.results[0].1, RecipientResult::Delivered { host, .. } if host == "implicit.test")
    );
}

#[tokio::test]
async fn null_mx_nxdomain_and_dangling_mx_have_no_route() {
    let dns = zone().await;
    let transferer = transferer(&dns, closed_port().port());
    for domain in ["nullmx.test", "nothere.test", "dangling.test"] {
        let report = transferer
            .send(
                &Destination::Mx(domain.into()),
                &batch(&["a@x.test", "b@x.test"]),
            )
            .await;
        let expected = format!("No route found to domain {domain}.  Check DNS configuration.");
        assert!(!report.waiting_for_dns);
        for (_, result) in &report.results {
            assert_eq!(
                result,
                &RecipientResult::Permanent {
                    reply: expected.clone(),
                    status: "5.1.2".into(),
                }
            );
        }
        assert_eq!(
            transferer.plan(&Destination::Mx(domain.into())).await,
            Err(PlanError::NoRoute(domain.into()))
        );
    }
}

#[tokio::test]
async fn dns_down_requeues_and_waits_for_dns() {
    let mut cfg = config();
    cfg.dns_servers = vec![closed_port()];
    cfg.connect_timeout = std::time::Duration::from_millis(200);
    let transferer = Transferer::new(cfg).unwrap();
    let report = transferer
        .send(
            &Destination::Mx("pref.test".into()),
            &batch(&["a@pref.test"]),
        )
        .await;
    assert!(report.waiting_for_dns);
    assert_eq!(
        report.results[0].1,
        RecipientResult::Transient {
            reason: "DNS is unavailable, message will be requeued.".into()
        }
    );
    assert_eq!(
        transferer.plan(&Destination::Mx("pref.test".into())).await,
        Err(PlanError::DnsUnavailable)
    );
    // A relay name that cannot be resolved for the same reason waits too.
    let report = transferer
        .send(
            &crate::relay_name("relay.test", None),
            &batch(&["a@x.test"]),
        )
        .await;
    assert!(report.waiting_for_dns);
}
