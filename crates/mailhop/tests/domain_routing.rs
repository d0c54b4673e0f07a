//! Routing across the servers of one domain (SPEC §3 step 6): named
//! networks, least-cost paths over native connection documents, a failed
//! hop's raised cost, no route, and a routing loop stopped by the hop count.
//! Real `mailhop serve` processes over real sockets.

mod common;

use common::domain::Domain;
use common::{RawSmtp, message};

/// A and B1/B2 share LAN1, B1/B2 and C share LAN2; a costly direct
/// connection A → C; E is on no network and has no connection.
const FIVE: &str = r#"
[domain]
name = "Acme"

[global_domain]
primary_internet_domain = "acme.com"

[[server]]
name = "A/Acme"
hostname = "a.acme.com"
smtp_auth = "off"
networks = ["LAN1"]
data = "data/a"
[server.listen]
smtp = "127.0.0.1:{PORT:a-smtp}"
native = "127.0.0.1:{PORT:a-native}"
[server.debug]
DebugRouter = 2

[[server]]
name = "B1/Acme"
hostname = "b1.acme.com"
networks = ["LAN1", "LAN2"]
data = "data/b1"
[server.listen]
native = "127.0.0.1:{PORT:b1-native}"

[[server]]
name = "B2/Acme"
hostname = "b2.acme.com"
networks = ["LAN1", "LAN2"]
data = "data/b2"
[server.listen]
native = "127.0.0.1:{PORT:b2-native}"

[[server]]
name = "C/Acme"
hostname = "c.acme.com"
networks = ["LAN2"]
data = "data/c"
[server.listen]
native = "127.0.0.1:{PORT:c-native}"

[[server]]
name = "E/Acme"
hostname = "e.acme.com"
data = "data/e"
[server.listen]
native = "127.0.0.1:{PORT:e-native}"

[[connection]]
type = "native"
source = "A/Acme"
destination = "C/Acme"
cost = 5
route_at_once_if = 1

[[configuration]]
server = "*"
{CONFIG}

[[person]]
full_name = "CN=Carol/O=Acme"
short_name = "carol"
internet_address = "carol@acme.com"
mail_server = "C/Acme"
mail_file = "mail/carol"

[[person]]
full_name = "CN=Eve/O=Acme"
short_name = "eve"
internet_address = "eve@acme.com"
mail_server = "E/Acme"
mail_file = "mail/eve"

[[person]]
full_name = "CN=John Smith/O=Acme"
short_name = "jsmith"
internet_address = "john.smith@acme.com"
mail_server = "A/Acme"
mail_file = "mail/jsmith"
"#;

fn send(domain: &Domain, to: &str, subject: &str) {
    let mut c = RawSmtp::connect(domain.addr("a-smtp"));
    c.cmd("EHLO client.test");
    let r = c.mail(
        "john.smith@acme.com",
        &[to],
        &message("john.smith@acme.com", to, subject),
    );
    assert!(r.starts_with("250"), "{r}");
    c.cmd("QUIT");
}

/// A report's text with quoted-printable soft line breaks taken out.
fn unfold(text: &str) -> String {
    text.replace("=\r\n", "").replace("=\n", "")
}

fn servers(m: &serde_json::Value) -> Vec<String> {
    m["route_servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Across networks through a bridge, in preference to a costly direct
/// connection: A → B1 → C (cost 2) rather than A → C (cost 5); B1 before
/// B2 by name. DebugRouter 2 logs the table and the calculation.
#[test]
fn the_least_cost_path_crosses_the_bridge() {
    let domain = Domain::new(&FIVE.replace("{CONFIG}", ""));
    domain.start(&[], &["A/Acme", "C/Acme"]);
    crosses_the_bridge(&domain);
}

/// The same with every server in its own process.
#[test]
fn the_least_cost_path_crosses_the_bridge_between_processes() {
    let domain = Domain::new(&FIVE.replace("{CONFIG}", ""));
    for s in ["A/Acme", "B1/Acme", "B2/Acme", "C/Acme", "E/Acme"] {
        domain.start(&[s], &[s]);
    }
    crosses_the_bridge(&domain);
}

fn crosses_the_bridge(domain: &Domain) {
    send(domain, "carol@acme.com", "over the bridge");
    let carol = domain.wait_mail("C/Acme", "mail/carol", 1);
    assert_eq!(carol.len(), 1);
    assert_eq!(servers(&carol[0]), ["A/Acme", "B1/Acme", "C/Acme"]);
    common::wait_for(
        || domain.stat("B1/Acme", "Mail.Transferred.NRPC") == 1,
        "B1's transfer recorded",
    );
    assert_eq!(domain.stat("B2/Acme", "Mail.Transferred.NRPC"), 0);
    let log = domain.log();
    assert!(
        log.contains(
            "Router: Least cost route to C/Acme: A/Acme -> B1/Acme -> C/Acme, cost 2, 2 hops"
        ),
        "{log}"
    );
    assert!(
        log.contains("Router: Routing table: A/Acme -> C/Acme cost 5"),
        "{log}"
    );
}

/// The direct connection wins once it is the cheapest.
#[test]
fn a_cheap_direct_connection_wins() {
    let domain = Domain::new(&FIVE.replace("{CONFIG}", "").replace("cost = 5", "cost = 1"));
    domain.start(&[], &["A/Acme", "C/Acme"]);
    send(&domain, "carol@acme.com", "direct");
    let carol = domain.wait_mail("C/Acme", "mail/carol", 1);
    assert_eq!(servers(&carol[0]), ["A/Acme", "C/Acme"]);
}

/// A disabled connection is never used: with the direct one disabled the
/// mail crosses the bridge even though the direct one would be cheaper.
#[test]
fn a_disabled_connection_is_not_used() {
    let domain = Domain::new(
        &FIVE
            .replace("{CONFIG}", "")
            .replace("cost = 5", "cost = 1\nenabled = false"),
    );
    domain.start(&[], &["A/Acme", "C/Acme"]);
    send(&domain, "carol@acme.com", "around");
    let carol = domain.wait_mail("C/Acme", "mail/carol", 1);
    assert_eq!(servers(&carol[0]), ["A/Acme", "B1/Acme", "C/Acme"]);
}

/// B1 is down: the failed hop raises the cost of A → B1, the message is
/// routed again and crosses through B2, once.
#[test]
fn a_failed_hop_raises_its_cost_and_the_alternative_is_taken() {
    let domain = Domain::new(&FIVE.replace("{CONFIG}", ""));
    domain.start(&["A/Acme", "B2/Acme", "C/Acme"], &["A/Acme", "C/Acme"]);
    send(&domain, "carol@acme.com", "rerouted");
    let carol = domain.wait_mail("C/Acme", "mail/carol", 1);
    assert_eq!(carol.len(), 1, "{carol:#?}\n{}", domain.log());
    assert_eq!(servers(&carol[0]), ["A/Acme", "B2/Acme", "C/Acme"]);
    common::wait_for(
        || domain.stat("A/Acme", "Mail.TotalPending") == 0,
        "A's mail box empty",
    );
    assert_eq!(domain.mailfile("C/Acme", "mail/carol").len(), 1);
    let log = domain.log();
    assert!(
        log.contains("Router: cost of the route from A/Acme to B1/Acme raised to +1"),
        "{log}"
    );
    // B1's queue does not keep the message that moved.
    let queues = domain.console("A/Acme", "tell router show queues");
    assert!(
        !queues.contains("B1/Acme") || queues.contains("0    "),
        "{queues}"
    );
}

/// No path to E: refused at RCPT (no backscatter); with recipients not
/// verified at RCPT, John gets a report in Domino's words.
#[test]
fn no_route_to_a_server_is_refused_or_reported() {
    let domain = Domain::new(&FIVE.replace("{CONFIG}", ""));
    domain.start(&["A/Acme"], &["A/Acme"]);
    let mut c = RawSmtp::connect(domain.addr("a-smtp"));
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<john.smith@acme.com>");
    let r = c.cmd("RCPT TO:<eve@acme.com>");
    assert!(
        r.starts_with("550 5.4.4 No route found to server E/Acme from server A/Acme."),
        "{r}"
    );
    drop(domain);

    let domain = Domain::new(&FIVE.replace("{CONFIG}", "verify_local_recipients = false"));
    domain.start(&["A/Acme"], &["A/Acme"]);
    send(&domain, "eve@acme.com", "nowhere");
    let john = domain.wait_mail("A/Acme", "mail/jsmith", 1);
    assert_eq!(john.len(), 1);
    let id = john[0]["id"].as_u64().unwrap();
    let text = unfold(&domain.mailfile_show("A/Acme", "mail/jsmith", id));
    assert!(
        text.contains("No route found to server E/Acme from server A/Acme.  Check Server and Connection documents in the Domino Directory."),
        "{text}"
    );
}

/// Two servers whose directories disagree about where Jane's mail file is
/// hand her message back and forth until the hop count passes
/// `max_hop_count`; the sender gets a report, and nobody a copy.
#[test]
fn a_routing_loop_is_stopped_by_the_hop_count() {
    const LOOP: &str = r#"
[domain]
name = "Acme"

[global_domain]
primary_internet_domain = "acme.com"

[[server]]
name = "A/Acme"
hostname = "a.acme.com"
smtp_auth = "off"
networks = ["LAN"]
data = "data/a"
[server.listen]
smtp = "127.0.0.1:{PORT:a-smtp}"
native = "127.0.0.1:{PORT:a-native}"

[[server]]
name = "B/Acme"
hostname = "b.acme.com"
networks = ["LAN"]
data = "data/b"
[server.listen]
native = "127.0.0.1:{PORT:b-native}"

[[configuration]]
server = "*"
max_hop_count = 6

[[person]]
full_name = "CN=Jane Doe/O=Acme"
short_name = "jdoe"
internet_address = "jane.doe@acme.com"
mail_server = "{JANE}"
mail_file = "mail/jdoe"

[[person]]
full_name = "CN=John Smith/O=Acme"
short_name = "jsmith"
internet_address = "john.smith@acme.com"
mail_server = "A/Acme"
mail_file = "mail/jsmith"
"#;
    // A's directory says Jane is on B; B's (a stale copy) says she is on A.
    let domain = Domain::new(&LOOP.replace("{JANE}", "B/Acme"));
    let a_text = std::fs::read_to_string(&domain.directory).unwrap();
    let b_file = domain.tmp.path().join("directory-b.toml");
    std::fs::write(
        &b_file,
        a_text.replace("mail_server = \"B/Acme\"", "mail_server = \"A/Acme\""),
    )
    .unwrap();
    domain.start(&["A/Acme"], &["A/Acme"]);
    let b = std::process::Command::new(common::BIN)
        .arg("serve")
        .arg("--directory")
        .arg(&b_file)
        .args(["--server", "B/Acme"])
        .env("MAILHOP_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(domain.tmp.path().join("b.log")).unwrap())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _b = Kill(b);
    common::wait_for(
        || domain.try_console("B/Acme", "show server").is_ok(),
        "B's console",
    );
    send(&domain, "jane.doe@acme.com", "in circles");
    let john = domain.wait_mail("A/Acme", "mail/jsmith", 1);
    assert_eq!(
        john.len(),
        1,
        "{}\n{}",
        domain.log(),
        std::fs::read_to_string(domain.tmp.path().join("b.log")).unwrap_or_default()
    );
    let id = john[0]["id"].as_u64().unwrap();
    let text = unfold(&domain.mailfile_show("A/Acme", "mail/jsmith", id));
    assert!(
        text.contains("Maximum hop count exceeded.  Message probably in a routing loop."),
        "{text}"
    );
    for s in ["A/Acme", "B/Acme"] {
        assert!(domain.mailfile(s, "mail/jdoe").is_empty());
    }
    assert!(
        text.contains("Routing path: A/Acme, B/Acme, A/Acme"),
        "{text}"
    );
}

/// `trace SERVER` and `trace ADDRESS` say the path step by step in
/// Domino's words and try the connection to the next hop (mutual TLS).
#[test]
fn trace_shows_the_path_and_tries_the_next_hop() {
    let domain = Domain::new(&FIVE.replace("{CONFIG}", ""));
    domain.start(&["A/Acme", "B1/Acme"], &["A/Acme", "B1/Acme"]);
    let t = domain.console("A/Acme", "trace C/Acme");
    for want in [
        "Determining path to server C/Acme",
        "Available Ports: TCPIP",
        "Router: Least cost route to C/Acme: A/Acme -> B1/Acme -> C/Acme, cost 2, 2 hops",
        "B1/Acme is on the same Notes named network (LAN1)",
        &format!(
            "Using address '{}' for B1/Acme on TCPIP",
            domain.addr("b1-native")
        ),
        "Connecting to B1/Acme over TCPIP",
        "Connected to server B1/Acme",
    ] {
        assert!(t.contains(want), "{want:?} not in:\n{t}");
    }
    // C is not running: the direct connection's next hop cannot be reached.
    let t = domain.console("A/Acme", "trace carol@acme.com");
    assert!(
        t.contains("mail server C/Acme, next hop B1/Acme via NRPC"),
        "{t}"
    );
    assert!(t.contains("Connected to server B1/Acme"), "{t}");
    let t = domain.console("A/Acme", "trace E/Acme");
    assert!(t.contains("No path found to E/Acme"), "{t}");
}
