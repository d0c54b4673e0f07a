//! Transfer to the next server of the domain (the console's `NRPC`): where
//! that server listens, the routing items that go with the message, and the
//! outcome when it cannot even be tried. The protocol itself is
//! `transfer`'s; the queue, the retry and the settlement are `outbound`'s.

use std::sync::Arc;

use store::QueuedMessage;
use transfer::{Batch, Items, NativeTarget, RecipientResult, TransferReport};

use crate::snapshot::Snapshot;
use crate::work::RouterShared;

/// Where `next` listens for the native protocol and how to prove who we
/// are to it; a reason a user will read if it cannot be reached at all.
pub(crate) fn target(
    shared: &RouterShared,
    snap: &Snapshot,
    next: &str,
) -> Result<NativeTarget, String> {
    let name: directory::NotesName = next
        .parse()
        .map_err(|_| format!("{next} is not a server name"))?;
    let Some(doc) = snap.dir.server(&name) else {
        return Err(format!(
            "Server {next} is not in the directory.  Check Server and Connection documents in the Domino Directory."
        ));
    };
    let Some(addr) = doc.listen.native else {
        return Err(format!(
            "Server {next} has no native port (listen.native in its Server document)"
        ));
    };
    let Some(tls) = shared.native_tls.load_full() else {
        return Err(format!(
            "Server {} has no server ID of the domain: it cannot authenticate to {next}",
            snap.server.name
        ));
    };
    let name = certify::server_name(&doc.name.to_string()).map_err(|e| e.to_string())?;
    Ok(NativeTarget {
        server: doc.name.to_string(),
        addr,
        name,
        tls: Arc::clone(&tls),
    })
}

/// The message for the next server: its routing items line (this server
/// appended to `RouteServers` at `now`, the hop count one more), then the
/// message as stored here.
pub(crate) fn batch(
    shared: &RouterShared,
    snap: &Snapshot,
    msg: &QueuedMessage,
    recipients: Vec<String>,
    data: Vec<u8>,
    now: i64,
) -> Batch {
    let mut route: Vec<(String, i64)> = msg
        .route
        .iter()
        .map(|h| (h.server.clone(), h.time))
        .collect();
    route.push((snap.server.name.to_string(), now));
    let items = Items {
        store: shared.store.id(),
        message: msg.id,
        hops: msg.hop_count.saturating_add(1),
        priority: msg.priority.as_str().to_owned(),
        route,
    };
    let line = items.line();
    let mut wire = Vec::with_capacity(line.len() + data.len());
    wire.extend_from_slice(line.as_bytes());
    wire.extend_from_slice(&data);
    drop(data);
    let size = wire.len() as u64;
    Batch {
        from: msg.from.clone(),
        recipients,
        body_8bit: wire.iter().any(|b| *b >= 0x80),
        data: Arc::new(wire),
        size,
    }
}

/// Every recipient waits: the next server could not even be tried.
pub(crate) fn not_sent(recipients: &[String], reason: String) -> TransferReport {
    TransferReport {
        results: recipients
            .iter()
            .map(|r| {
                let reason = reason.clone();
                (r.clone(), RecipientResult::Transient { reason })
            })
            .collect(),
        attempts: Vec::new(),
        waiting_for_dns: false,
        last_error: Some(reason),
    }
}
