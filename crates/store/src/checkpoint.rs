//! Background WAL checkpoints on their own connection, so the writer thread
//! only ever appends to the WAL: copying pages into the database file (and
//! its fsync) seldom delays a group commit. Touches no rows.
//!
//! A PASSIVE checkpoint copies what it can without waiting for anyone. Under
//! a steady load that never reaches the end of the log (commits keep coming),
//! and a log is only started again from its beginning once it was copied to
//! its end: it would grow for as long as the load lasts, every commit
//! appending to a longer file. So when the log has grown past
//! `RESTART_PAGES`, the PASSIVE pass (which copies nearly all of it) is
//! followed by a RESTART checkpoint: it holds the next commit back for the
//! few pages left, waits (briefly) for readers of the old log, and the next
//! commit writes the log from its start, over blocks the file already has.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use rusqlite::Connection;

use crate::error::StoreError;
use crate::schema;
use crate::worker::Worker;

/// How often committed WAL pages are copied into the database file.
const INTERVAL: Duration = Duration::from_millis(250);
/// A log longer than this (pages) is started again after it is copied.
const RESTART_PAGES: i64 = 2048;
/// How long a RESTART checkpoint waits for readers (and holds commits back)
/// before it gives up until the next interval.
const RESTART_WAIT: Duration = Duration::from_millis(50);

/// Starts the checkpoint thread; dropping the handle stops it.
pub(crate) fn spawn(path: &Path) -> Result<Worker<()>, StoreError> {
    let conn = schema::open_read_write(path)?;
    conn.busy_timeout(RESTART_WAIT)
        .map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    Worker::spawn("store-checkpoint", path, move |stop| run(&conn, &stop))
}

fn run(conn: &Connection, stop: &Receiver<()>) {
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(INTERVAL) {
        match checkpoint(conn, "PASSIVE") {
            Ok(log) if log > RESTART_PAGES => {
                // Busy (a reader or the writer kept it from finishing) is no
                // error: the next interval tries again.
                if let Err(e) = checkpoint(conn, "RESTART") {
                    tracing::warn!("store: WAL checkpoint (RESTART) failed: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("store: WAL checkpoint failed: {e}"),
        }
    }
}

/// Runs one checkpoint; returns the log's length in pages.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        r.get::<_, i64>(1)
    })
}
