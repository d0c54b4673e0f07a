//! The pool of read-only connections. Readers never wait for the writer: in
//! WAL mode each read sees the last committed state. At most
//! `MAX_OPEN` connections exist at a time (each has its own page cache, so
//! memory stays bounded whatever the load); a read beyond that waits for a
//! connection to come back.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex};

use rusqlite::Connection;

use crate::error::{Res, StoreError};
use crate::schema;

/// Read connections open at most at a time.
const MAX_OPEN: usize = 6;

struct Pool {
    idle: Vec<Connection>,
    /// Connections in existence (idle or in use).
    open: usize,
}

pub(crate) struct Readers {
    path: PathBuf,
    pool: Mutex<Pool>,
    returned: Condvar,
}

impl Readers {
    pub(crate) fn new(path: PathBuf, first: Connection) -> Readers {
        Readers {
            path,
            pool: Mutex::new(Pool {
                idle: vec![first],
                open: 1,
            }),
            returned: Condvar::new(),
        }
    }

    /// An idle connection, a new one while fewer than `MAX_OPEN` exist, or
    /// the next one given back.
    fn take(&self) -> Result<Connection, StoreError> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(conn);
            }
            if pool.open < MAX_OPEN {
                pool.open += 1;
                drop(pool);
                return schema::open_reader(&self.path).inspect_err(|_| {
                    self.pool.lock().unwrap_or_else(|e| e.into_inner()).open -= 1;
                    self.returned.notify_one();
                });
            }
            pool = self.returned.wait(pool).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Runs `f` on a read connection inside one read transaction, so every
    /// query of `f` sees the same committed state.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Res<T>) -> Result<T, StoreError> {
        let conn = self.take()?;
        let result = conn
            .unchecked_transaction()
            .map_err(Into::into)
            .and_then(|tx| f(&tx));
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .idle
            .push(conn);
        self.returned.notify_one();
        result.map_err(StoreError::from)
    }
}
