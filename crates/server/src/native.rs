//! The native port (`listen.native`): where the other servers of the domain
//! hand over mail (the console's `NRPC`). The `smtp` crate runs the
//! conversation over mutual TLS; this module answers for the server: only a
//! peer whose certificate of the domain's certifier names a server of the
//! directory may send, every recipient it names is taken (it routed them
//! already), and the message is durable in the mail box, each recipient row
//! remembered by the sender's message id, before the `250`. Policy for
//! mail from outside the domain (relaying, AUTH) is `listener`'s.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use smtp::{
    AuthPolicy, Envelope, ListenerConfig, ListenerKind, Reply, SessionHandler, SessionInfo,
};
use store::{Hop, Incoming, MessageKind, Priority, TransferOrigin};
use tracing::{info, warn};
use transfer::Items;

use crate::instance::Instance;
use crate::listener;

/// Room for the routing items line on top of the largest message allowed.
const ITEMS_ALLOWANCE: u64 = 64 * 1024;
/// Recipients of one hand-over: a message to a large group crosses in one.
const MAX_RECIPIENTS: usize = 100_000;

struct NativeHandler {
    inst: Weak<Instance>,
}

/// Binds `addr` and serves the native protocol until stopped.
pub(crate) async fn start(
    inst: Arc<Instance>,
    addr: SocketAddr,
) -> anyhow::Result<(crate::instance::Stop, SocketAddr)> {
    let handler: Arc<dyn SessionHandler> = Arc::new(NativeHandler {
        inst: Arc::downgrade(&inst),
    });
    listener::serve_on(&inst, addr, handler, "NRPC Server").await
}

impl NativeHandler {
    fn inst(&self) -> Result<Arc<Instance>, Reply> {
        self.inst.upgrade().ok_or_else(listener::unavailable)
    }
}

/// The peer's server name as its certificate gives it (the session refuses
/// a peer without one before anything else).
fn peer(s: &SessionInfo) -> Result<&str, Reply> {
    s.authenticated
        .as_deref()
        .ok_or_else(|| Reply::new(530, (5, 7, 0), "Authentication required"))
}

#[async_trait::async_trait]
impl SessionHandler for NativeHandler {
    fn config(&self) -> Arc<ListenerConfig> {
        let Some(inst) = self.inst.upgrade() else {
            return Arc::new(ListenerConfig::default());
        };
        let snap = inst.snapshot();
        let c = &snap.config;
        Arc::new(ListenerConfig {
            hostname: snap.server.hostname.clone(),
            kind: ListenerKind::Native,
            auth: AuthPolicy::Required,
            tls: inst.native_tls.as_ref().map(|t| Arc::clone(&t.server)),
            peer_identity: Some(certify::peer_server),
            max_message_size: c.max_message_size.0.saturating_add(ITEMS_ALLOWANCE),
            max_recipients: MAX_RECIPIENTS,
            idle_timeout: c.smtp_command_timeout,
            command_timeout: c.smtp_command_timeout,
            data_timeout: c.smtp_data_timeout,
            session_timeout: c.smtp_session_timeout,
            max_errors: c.smtp_hard_error_limit,
            max_sessions: c.smtp_max_sessions as usize,
            max_sessions_per_host: c.smtp_max_sessions_per_host as usize,
            inflight_message_bytes: c.smtp_inflight_message_bytes.0,
            debug: inst
                .config_override("smtpdebug")
                .unwrap_or(snap.server.debug.smtp_debug),
            debug_io: inst
                .config_override("smtpdebugio")
                .unwrap_or(snap.server.debug.smtp_debug_io),
            ..ListenerConfig::default()
        })
    }

    /// Only a server of this directory, and only while the store is sound.
    async fn mail_from(&self, s: &SessionInfo, _from: &str) -> Result<(), Reply> {
        let inst = self.inst()?;
        let name = peer(s)?;
        let snap = inst.snapshot();
        let known = name
            .parse::<directory::NotesName>()
            .ok()
            .and_then(|n| snap.dir.server(&n).map(|_| ()));
        if known.is_none() {
            warn!(
                "NRPC: {name} at {} is not a server of this directory; refused",
                s.peer
            );
            return Err(Reply::new(
                550,
                (5, 7, 1),
                format!(
                    "Server {name} is not in the directory of domain {}",
                    snap.dir.domain.name
                ),
            ));
        }
        inst.store
            .health()
            .map_err(|why| listener::store_failed(&inst, &why))
    }

    /// The sender routed every recipient already: any well-formed address is taken.
    async fn rcpt_to(&self, _s: &SessionInfo, _env: &Envelope, rcpt: &str) -> Result<(), Reply> {
        routing::Address::parse(rcpt).map(|_| ()).map_err(|e| {
            Reply::new(
                501,
                (5, 1, 3),
                format!("Bad recipient address syntax: {}", e.0),
            )
        })
    }

    async fn authenticate(&self, _s: &SessionInfo, _user: &str, _password: &str) -> Option<String> {
        None
    }

    async fn data(
        &self,
        s: &SessionInfo,
        env: Envelope,
        mut message: Vec<u8>,
    ) -> Result<String, Reply> {
        let inst = self.inst()?;
        let from_server = peer(s)?.to_owned();
        let start = env.received_len.min(message.len());
        let (items, len) = Items::read(&message[start..]).map_err(|e| {
            warn!(
                "NRPC: message from {from_server} at {} refused: {e}",
                s.peer
            );
            Reply::new(554, (5, 6, 0), format!("Transaction failed: {e}"))
        })?;
        // The items line goes; the message is stored as the sender had it,
        // under this server's Received header.
        message.drain(start..start + len);
        let fields = headers::fields(&message);
        let incoming = Incoming {
            from: env.from,
            recipients: env.recipients,
            hop_count: items.hops,
            message_id: fields.message_id.clone(),
            subject: fields.subject.clone(),
            received_at: chrono::Utc::now().timestamp_millis(),
            kind: MessageKind::Normal,
            origin: format!("nrpc {from_server} {} id={}", s.peer.ip(), items.message),
            route: items
                .route
                .into_iter()
                .map(|(server, time)| Hop { server, time })
                .collect(),
            priority: Priority::parse(&items.priority).unwrap_or_default(),
            data: message,
            // The rules of the server where it entered the domain applied.
            held: None,
            derived: Vec::new(),
        };
        let origin = TransferOrigin {
            server: format!("{from_server}#{}", items.store),
            message: items.message,
        };
        match inst.store.accept_transfer(incoming, fields, origin).await {
            Ok(Some(queued)) => {
                let id = queued.id.to_string();
                inst.router.submit(queued).await;
                Ok(id)
            }
            // Every recipient was handed over before (a resend after a
            // crash): the earlier copy stands, and the sender may settle.
            Ok(None) => {
                info!(
                    "NRPC: message {} from {from_server} was received before; not stored again",
                    items.message
                );
                Ok(format!("{}.again", items.message))
            }
            Err(e) => {
                tracing::error!("NRPC Server: message from {from_server} not stored: {e}");
                Err(listener::not_stored(&inst))
            }
        }
    }
}
