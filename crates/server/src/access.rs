//! POP3 and IMAP tasks: the `access` crate speaks the protocols; this module
//! answers its questions (configuration, Internet password logins).

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use access::{AccessConfig, AccessHandler, Login, Protocol};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::info;

use crate::instance::Instance;

struct Handler {
    inst: Weak<Instance>,
    implicit_tls: bool,
}

#[async_trait::async_trait]
impl AccessHandler for Handler {
    fn config(&self, protocol: Protocol) -> Arc<AccessConfig> {
        let Some(inst) = self.inst.upgrade() else {
            return Arc::new(AccessConfig::new("localhost", protocol));
        };
        let snap = inst.snapshot();
        let mut c = AccessConfig::new(snap.server.hostname.clone(), protocol);
        c.max_sessions = snap.config.access_max_sessions as usize;
        c.max_sessions_per_host = snap.config.access_max_sessions_per_host as usize;
        c.tls = inst.tls.load().as_ref().clone();
        c.implicit_tls = self.implicit_tls;
        c.require_tls_for_login = snap.server.require_tls_for_auth;
        Arc::new(c)
    }

    async fn login(
        &self,
        peer: SocketAddr,
        protocol: Protocol,
        user: &str,
        password: &str,
    ) -> Option<Login> {
        let inst = self.inst.upgrade()?;
        crate::auth::authenticate(&inst, peer.ip(), user, password, protocol.name(), true)
            .await
            .map(|l| Login {
                identity: l.identity,
                mail_file: l.mail_file,
            })
    }
}

/// Bind and serve POP3 or IMAP; the sender stops the task.
pub(crate) async fn start(
    inst: Arc<Instance>,
    protocol: Protocol,
    implicit_tls: bool,
    addr: SocketAddr,
) -> anyhow::Result<(crate::instance::Stop, SocketAddr)> {
    let name = protocol.name();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("{name} Server: cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let (tx, rx) = oneshot::channel();
    let handler: Arc<dyn AccessHandler> = Arc::new(Handler {
        inst: Arc::downgrade(&inst),
        implicit_tls,
    });
    let (store, stats) = (inst.store.clone(), inst.access_stats.clone());
    let stop = async {
        let _ = rx.await;
    };
    let running = tokio::spawn(async move {
        let _ = match protocol {
            Protocol::Pop3 => access::pop3::serve(listener, store, handler, stats, stop).await,
            Protocol::Imap => access::imap::serve(listener, store, handler, stats, stop).await,
        };
    });
    info!(
        "{name} Server: Listening for connect requests on TCP Port {}",
        bound.port()
    );
    Ok(((tx, running), bound))
}
