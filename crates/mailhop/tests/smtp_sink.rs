//! Relaying to Debian's `smtp-sink` (from the postfix package): load balancing
//! over two hosts of one preference level, failover past a dead first level.

mod common;

use std::process::{Child, Command, Stdio};

use common::*;

const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

struct DebianSink {
    child: Child,
    out: std::path::PathBuf,
    port: u16,
}

impl DebianSink {
    fn start(dir: &std::path::Path) -> DebianSink {
        let port = free_port();
        let out = dir.join(format!("sink-{port}.count"));
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout == b"0\n")
            .unwrap_or(false);
        let mut cmd = Command::new(SMTP_SINK);
        cmd.arg("-c");
        if root {
            cmd.args(["-u", "nobody"]);
        }
        let child = cmd
            .arg(format!("127.0.0.1:{port}"))
            .arg("64")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "smtp-sink",
        );
        DebianSink { child, out, port }
    }

    /// The last `mesg=N` smtp-sink printed.
    fn count(&self) -> u64 {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.split(|c: char| c.is_whitespace() || c == ',')
            .filter_map(|w| w.strip_prefix("mesg="))
            .filter_map(|n| n.parse().ok())
            .next_back()
            .unwrap_or(0)
    }
}

impl Drop for DebianSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn load_balanced_and_failover_relay_to_smtp_sink() {
    if !std::path::Path::new(SMTP_SINK).exists() {
        eprintln!("skipped: {SMTP_SINK} is not installed (apt-get install postfix)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (DebianSink::start(tmp.path()), DebianSink::start(tmp.path()));
    let dead = free_port();
    // Level 1: a host where nothing listens; level 2: two load-balanced sinks.
    let relay = format!(
        "[127.0.0.1]:{dead};[127.0.0.1]:{},[127.0.0.1]:{}",
        a.port, b.port
    );
    let config = format!(
        "smtp_outside_local_domain = true\nrelay_host = \"{relay}\"\n[configuration.inbound]\nrelay_exempt_hosts = [\"127.0.0.0/8\"]"
    );
    let server = TestServer::start(Setup::config(&config));
    let mut c = server.client();
    for i in 0..100 {
        let r = c.mail(
            "jane.doe@acme.com",
            &["friend@example.org"],
            &message(
                "jane.doe@acme.com",
                "friend@example.org",
                &format!("lb {i}"),
            ),
        );
        assert!(r.starts_with("250"), "{r}");
    }
    wait_for(|| a.count() + b.count() >= 100, "100 messages at the sinks");
    let (na, nb) = (a.count(), b.count());
    assert_eq!(na + nb, 100, "each message once");
    assert!((25..=75).contains(&na), "a fair share each: {na} / {nb}");
    assert_eq!(server.stat("Mail.Transferred"), 100);
    assert!(
        server.log().contains(&format!("Port {dead}")),
        "the first level was tried"
    );
}
