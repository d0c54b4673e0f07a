//! Background WAL checkpoints on their own connection, so the writer thread
//! only ever appends to the WAL and syncs it: copying pages into the database
//! file (and its fsync) never delays a group commit. Touches no rows.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use rusqlite::Connection;

use crate::error::StoreError;
use crate::schema;
use crate::worker::Worker;

/// How often committed WAL pages are copied into the database file.
const INTERVAL: Duration = Duration::from_millis(250);

/// Starts the checkpoint thread; dropping the handle stops it.
pub(crate) fn spawn(path: &Path) -> Result<Worker<()>, StoreError> {
    let conn = schema::open_read_write(path)?;
    Worker::spawn("store-checkpoint", path, move |stop| run(&conn, &stop))
}

fn run(conn: &Connection, stop: &Receiver<()>) {
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(INTERVAL) {
        // PASSIVE: copies what it can without waiting for readers or the writer.
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!("store: WAL checkpoint failed: {e}");
        }
    }
}
