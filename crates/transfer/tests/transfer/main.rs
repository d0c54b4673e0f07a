//! End-to-end tests of the transfer crate against real SMTP sinks and a real
//! DNS server, all on loopback addresses.

mod mx;
mod relay;
mod sink;
mod smtp;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use transfer::{
    Batch, Destination, RelayHost, RelayHosts, RelayTarget, Resolution, TlsMode, TransferConfig,
};

/// Short timeouts, no TLS, and a DNS server that is not there (no test may
/// reach the system resolver).
pub fn config() -> TransferConfig {
    TransferConfig {
        helo_name: "mailhop.test".into(),
        outbound_port: 25,
        host_name_resolution: Resolution::Dns,
        dns_servers: vec![closed_port()],
        connect_timeout: Duration::from_secs(2),
        greeting_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(2),
        data_timeout: Duration::from_secs(5),
        client_debug: false,
        tls: TlsMode::Off,
    }
}

/// A loopback address nothing listens on.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

pub fn batch(recipients: &[&str]) -> Batch {
    let data = b"From: sender@acme.test\r\nSubject: hello\r\n\r\nHello there.\r\n".to_vec();
    Batch {
        from: "sender@acme.test".into(),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        size: data.len() as u64,
        data: Arc::new(data),
        body_8bit: false,
    }
}

/// Relay levels of address literals.
pub fn relay(levels: &[&[SocketAddr]]) -> Destination {
    Destination::Relay(RelayHosts {
        levels: levels
            .iter()
            .map(|level| {
                level
                    .iter()
                    .map(|addr| RelayHost {
                        host: RelayTarget::Ip(addr.ip()),
                        port: Some(addr.port()),
                    })
                    .collect()
            })
            .collect(),
    })
}

/// A relay level of one host name.
pub fn relay_name(name: &str, port: Option<u16>) -> Destination {
    Destination::Relay(RelayHosts {
        levels: vec![vec![RelayHost {
            host: RelayTarget::Name(name.into()),
            port,
        }]],
    })
}

pub fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

/// Log lines written while the guard lives (tests run on one thread).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        (logs.clone(), tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
