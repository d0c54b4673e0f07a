//! Housekeeping of one server's store: every mail file of the directory
//! exists from the start, the routing event log is pruned to
//! `event_retention`, and the recipients handed over by other servers are
//! forgotten after a week.

use std::sync::{Arc, Weak};
use std::time::Duration;

use router::Snapshot;
use store::Store;
use tracing::{info, warn};

use crate::instance::Instance;

/// Events deleted per write: small enough not to hold up the writer.
const PRUNE_BATCH: u32 = 5_000;
/// How often the event log is pruned at most (a shorter retention prunes
/// as often as it lasts).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The mail files of the persons and mail-in databases whose server is
/// this one, in directory order, each once.
fn mail_files(snap: &Snapshot) -> Vec<String> {
    let this = &snap.server.name;
    let persons = (snap.dir.persons.iter())
        .filter(|p| p.mail_server == *this)
        .map(|p| p.mail_file.trim());
    let mail_ins = (snap.dir.mail_ins.iter())
        .filter(|m| m.server == *this)
        .map(|m| m.mail_file.trim());
    let mut seen = std::collections::HashSet::new();
    persons
        .chain(mail_ins)
        .filter(|f| !f.is_empty() && seen.insert(f.to_ascii_lowercase()))
        .map(str::to_owned)
        .collect()
}

/// Creates (with their default folders) the mail files of this server's
/// persons and mail-in databases that do not exist yet.
pub(crate) async fn ensure_mail_files(store: &Store, snap: &Snapshot) {
    let mut created = 0usize;
    for mail_file in mail_files(snap) {
        if store.folders(&mail_file).is_ok_and(|f| !f.is_empty()) {
            continue;
        }
        match store.ensure_mailfile(&mail_file).await {
            Ok(_) => created += 1,
            Err(e) => warn!("Router: mail file {mail_file} not created: {e}"),
        }
    }
    if created > 0 {
        info!("Router: created {created} mail files");
    }
}

/// Deletes every routing event older than the retention, in batches.
pub(crate) async fn prune_events(store: &Store, retention: Duration) -> usize {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let before = chrono::Utc::now()
        .timestamp_millis()
        .saturating_sub(retention_ms);
    let mut total = 0;
    loop {
        match store.prune_events(before, PRUNE_BATCH).await {
            Ok(n) => {
                total += n;
                if n < PRUNE_BATCH as usize {
                    return total;
                }
                // Let other writers in between batches.
                tokio::task::yield_now().await;
            }
            Err(e) => {
                warn!("Router: routing events not pruned: {e}");
                return total;
            }
        }
    }
}

/// Prunes the event log now and then every `min(event_retention, 1h)`,
/// until the server is gone.
pub(crate) fn start_event_pruning(inst: &Arc<Instance>) {
    let weak: Weak<Instance> = Arc::downgrade(inst);
    tokio::spawn(async move {
        loop {
            let Some(inst) = weak.upgrade() else { return };
            let retention = inst.snapshot().config.event_retention;
            let store = inst.store.clone();
            drop(inst);
            let n = prune_events(&store, retention).await;
            if n > 0 {
                info!(
                    "Router: deleted {n} routing events older than {}",
                    directory::format_duration(retention)
                );
            }
            // Recipient rows handed over by other servers are remembered a week.
            if let Err(e) = store
                .prune_transfers_in(chrono::Utc::now().timestamp_millis())
                .await
            {
                warn!("Router: handed-over recipients not pruned: {e}");
            }
            drop(store);
            let period = retention.clamp(Duration::from_secs(1), PRUNE_EVERY);
            tokio::time::sleep(period).await;
        }
    });
}
