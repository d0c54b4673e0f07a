//! Mail for the Internet leaves by SMTP through relay hosts, with per-destination
//! queues, Retry, and time-out reports.

mod common;

use common::*;

fn relay_setup(relay: &str, extra_config: &str) -> String {
    format!(
        "smtp_outside_local_domain = true\nrelay_host = \"{relay}\"\n{extra_config}\n[configuration.inbound]\nrelay_exempt_hosts = [\"127.0.0.0/8\"]"
    )
}

#[test]
fn relays_through_the_relay_host_and_counts_transfers() {
    let sink = Sink::start();
    let config = relay_setup(&format!("[127.0.0.1]:{}", sink.port), "");
    let server = TestServer::start(Setup::config(&config));
    let mut c = server.client();
    let r = c.mail(
        "jane.doe@acme.com",
        &["friend@example.org", "jane.doe@acme.com"],
        &message("jane.doe@acme.com", "friend@example.org", "out and in"),
    );
    assert!(r.starts_with("250"), "{r}");
    wait_for(|| sink.messages().len() == 1, "the relayed message");
    let m = &sink.messages()[0];
    assert_eq!(m.from, "jane.doe@acme.com");
    assert_eq!(m.rcpts, ["friend@example.org"]);
    assert!(m.data.contains("Subject: out and in"));
    assert_eq!(server.wait_mail("mail/jdoe", 1).len(), 1, "the local copy");
    wait_for(
        || server.stat("Mail.Transferred") == 1,
        "Mail.Transferred = 1",
    );
    assert_eq!(server.stat("Mail.Delivered"), 1);
    assert_eq!(server.stat("Mail.TotalRouted"), 2);
}

#[test]
fn one_recipient_refused_of_three_gets_one_report() {
    let sink = Sink::start();
    let config = relay_setup(&format!("[127.0.0.1]:{}", sink.port), "");
    let server = TestServer::start(Setup::config(&config));
    let mut c = server.client();
    c.send_ok(
        "jane.doe@acme.com",
        &["a@example.org", "reject-me@example.org", "b@example.org"],
        "three",
    );
    wait_for(|| sink.messages().len() == 1, "the relayed message");
    assert_eq!(sink.messages()[0].rcpts, ["a@example.org", "b@example.org"]);
    let reports = server.wait_mail("mail/jdoe", 1);
    assert_eq!(reports.len(), 1);
    let subject = reports[0]["subject"].as_str().unwrap();
    assert!(subject.starts_with("DELIVERY FAILURE: "), "{subject}");
    assert!(subject.contains("550 5.1.1"), "{subject}");
    let body = server.mailfile_show("mail/jdoe", reports[0]["id"].as_u64().unwrap());
    assert!(body.contains("reject-me@example.org"));
    assert!(!body.contains("Final-Recipient: rfc822; a@example.org"));
}

#[test]
fn retry_while_down_then_route_star_delivers() {
    let port = free_port();
    let config = relay_setup(
        &format!("[127.0.0.1]:{port}"),
        "initial_retry = \"1h\"\nretry_cap = \"4h\"",
    );
    let server = TestServer::start(Setup::config(&config));
    let mut c = server.client();
    c.send_ok("jane.doe@acme.com", &["friend@example.org"], "patience");
    wait_for(
        || {
            server
                .console("tell router show queues")
                .contains("Retry(1)")
        },
        "Retry(1)",
    );
    let q = server.console("tell router show queues");
    let line = q.lines().find(|l| l.contains("Retry(1)")).unwrap();
    assert!(
        line.starts_with("1    Retry(1)  SMTP example.org (relay [127.0.0.1]:"),
        "{q}"
    );
    assert!(line.contains(" Last error: "), "{q}");
    assert!(line.contains(" Next retry: "), "{q}");
    assert!(
        q.ends_with("Inactive = 4\n") || q.contains("Delivery Threads: Max = 4"),
        "{q}"
    );
    assert_eq!(server.stat("Mail.Waiting"), 1);
    assert!(server.stat("Mail.TransferFailures") >= 1);

    let sink = Sink::start_on(port);
    let out = server.console("route *");
    assert!(out.contains("Routing pending mail"), "{out}");
    wait_for(|| sink.messages().len() == 1, "delivery after route *");
    wait_for(|| server.stat("Mail.Waiting") == 0, "the queue drained");
    assert!(!server.console("tell router show queues").contains("Retry"));
    assert!(server.mailfile("mail/jdoe").is_empty(), "no report");
}

#[test]
fn message_that_cannot_leave_in_time_gets_an_expiration_report() {
    let port = free_port(); // nobody listens there
    let config = relay_setup(
        &format!("[127.0.0.1]:{port}"),
        "expire_after = \"2s\"\ninitial_retry = \"1s\"\nretry_cap = \"1s\"",
    );
    let server = TestServer::start(Setup::config(&config));
    let mut c = server.client();
    c.send_ok("jane.doe@acme.com", &["friend@example.org"], "too late");
    let mail = server.wait_mail("mail/jdoe", 1);
    assert_eq!(mail.len(), 1, "the expiration report");
    let subject = mail[0]["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("DELIVERY FAILURE: Message expired"),
        "{subject}"
    );
}

#[test]
fn outbound_controls_refuse_with_a_reason() {
    let sink = Sink::start();
    let config = relay_setup(
        &format!("[127.0.0.1]:{}", sink.port),
        "[configuration.outbound]\ndeny_to = [\"@blocked.example\"]",
    );
    // deny_to lives in [configuration.outbound]; the relay exemption is set after it.
    let server = TestServer::start(Setup::config(&config));
    let mut c = server.client();
    c.send_ok("jane.doe@acme.com", &["x@blocked.example"], "blocked");
    let mail = server.wait_mail("mail/jdoe", 1);
    assert!(
        mail[0]["subject"]
            .as_str()
            .unwrap()
            .contains("does not have access to route messages")
    );
    assert!(sink.messages().is_empty());
}

/// No relay host: the recipient's domain is looked up in DNS (a real DNS
/// server on a loopback port, named by `dns_servers`), MX by preference; the
/// preferred exchanger is down, so the next one gets the message.
#[test]
fn mx_lookup_by_preference_with_fallback() {
    use std::net::Ipv4Addr;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dns = rt.block_on(testkit::Dns::start(vec![
        testkit::Rr::Mx("example.test.", 10, "mx1.example.test."),
        testkit::Rr::Mx("example.test.", 20, "mx2.example.test."),
        // mx1 is an address where nothing listens; mx2 is the sink.
        testkit::Rr::A("mx1.example.test.", Ipv4Addr::new(127, 0, 0, 2)),
        testkit::Rr::A("mx2.example.test.", Ipv4Addr::new(127, 0, 0, 1)),
    ]));
    let sink = Sink::start();
    let config = format!(
        "smtp_outside_local_domain = true\ndns_servers = [\"{}\"]\noutbound_smtp_port = {}\n[configuration.inbound]\nrelay_exempt_hosts = [\"127.0.0.0/8\"]",
        dns.addr, sink.port
    );
    let server = TestServer::start(Setup::config(&config));
    let trace = server.console("trace someone@example.test");
    assert!(trace.contains("MX records of example.test"), "{trace}");
    assert!(
        trace.contains(&format!(
            "Using address '127.0.0.2:{}' for mx1.example.test on TCPIP",
            sink.port
        )),
        "{trace}"
    );
    assert!(
        trace.contains("Unable to connect to mx1.example.test on TCPIP"),
        "{trace}"
    );
    assert!(
        trace.contains("Connected to server mx2.example.test"),
        "{trace}"
    );
    assert!(sink.messages().is_empty(), "trace sends nothing");
    assert_eq!(
        server.console("set config DebugRouterLookup=1"),
        "DebugRouterLookup=1\n"
    );
    let mut c = server.client();
    c.send_ok("jane.doe@acme.com", &["someone@example.test"], "by mx");
    wait_for(|| sink.messages().len() == 1, "delivery to the second MX");
    assert_eq!(sink.messages()[0].rcpts, ["someone@example.test"]);
    assert!(
        server.log().contains("127.0.0.2"),
        "the first MX was tried:\n{}",
        server.log()
    );
    // A domain that does not exist gets a report, not a retry.
    c.send_ok("jane.doe@acme.com", &["x@nowhere.test"], "nowhere");
    let mail = server.wait_mail("mail/jdoe", 1);
    assert!(
        mail[0]["subject"]
            .as_str()
            .unwrap()
            .contains("No route found to domain nowhere.test"),
        "{mail:?}"
    );
    drop(rt);
}
