//! The pool of read-only connections. Readers never wait for the writer: in
//! WAL mode each read sees the last committed state.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::Connection;

use crate::error::{Res, StoreError};
use crate::schema;

/// Idle connections kept for reuse; more are opened on demand under load.
const MAX_IDLE: usize = 8;

pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(crate) fn new(path: PathBuf, first: Connection) -> Readers {
        Readers {
            path,
            idle: Mutex::new(vec![first]),
        }
    }

    /// Runs `f` on a read connection inside one read transaction, so every
    /// query of `f` sees the same committed state.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Res<T>) -> Result<T, StoreError> {
        let conn = match self.idle.lock().map(|mut idle| idle.pop()) {
            Ok(Some(conn)) => conn,
            // A poisoned pool only means another reader panicked: open a fresh connection.
            Ok(None) | Err(_) => schema::open_reader(&self.path)?,
        };
        let result = conn
            .unchecked_transaction()
            .map_err(Into::into)
            .and_then(|tx| f(&tx));
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(conn);
        }
        result.map_err(StoreError::from)
    }
}
