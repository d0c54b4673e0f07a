//! The one writer thread and its group commit. Owns the write connection and
//! the transaction boundaries; knows nothing of what a request does.
//!
//! The thread takes the first waiting request, drains every other request
//! already queued (up to `MAX_BATCH`), runs them all in ONE transaction — each
//! inside its own SAVEPOINT so a failing request rolls back alone — commits
//! (the one fsync the whole batch shares) and only then answers every caller
//! and publishes the mail-file changes of the batch.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use rusqlite::Connection;
use tokio::sync::{broadcast, oneshot};

use crate::checkpoint;
use crate::error::{Res, StoreError};
use crate::health::{DEAD, Health};
use crate::types::MailFileChange;
use crate::worker::Worker;

/// Requests of one group commit at most.
const MAX_BATCH: usize = 512;

/// What a request may touch while it runs: the connection inside the batch's
/// transaction, and the list of mail-file changes to publish after commit.
pub(crate) struct Tx<'c> {
    pub conn: &'c Connection,
    pub changes: Vec<MailFileChange>,
}

/// A request waiting for its group commit.
pub(crate) trait Job: Send {
    /// Runs the request; true if it succeeded (and its savepoint is kept).
    fn run(&mut self, tx: &mut Tx<'_>) -> bool;
    /// Answers the caller once the batch is committed (`None`) or failed as a whole.
    fn finish(self: Box<Self>, batch_error: Option<&StoreError>);
}

/// A closure and the channel its answer goes back on.
struct Request<T, F> {
    op: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Request<T, F>
where
    T: Send,
    F: FnOnce(&mut Tx<'_>) -> Res<T> + Send,
{
    fn run(&mut self, tx: &mut Tx<'_>) -> bool {
        let result = match self.op.take() {
            Some(op) => op(tx).map_err(StoreError::from),
            None => Err(StoreError::Closed),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, batch_error: Option<&StoreError>) {
        let answer = match (self.result, batch_error) {
            (Some(Err(own)), _) => Err(own),
            (_, Some(batch)) => Err(batch.clone()),
            (Some(Ok(value)), None) => Ok(value),
            (None, None) => Err(StoreError::Closed),
        };
        // The caller may have gone away; the outcome is durable either way.
        let _ = self.reply.send(answer);
    }
}

/// The handle the `Store` keeps. Dropping it lets the thread commit the
/// requests already queued, so the file is closed when the last `Store` clone
/// is gone; the checkpointer stops after it.
pub(crate) struct Writer {
    thread: Worker<Box<dyn Job>>,
    _checkpointer: Worker<()>,
}

impl Writer {
    pub(crate) fn spawn(
        conn: Connection,
        path: &Path,
        changes: broadcast::Sender<MailFileChange>,
        health: Arc<Health>,
    ) -> Result<Writer, StoreError> {
        let checkpointer = checkpoint::spawn(path)?;
        let thread = Worker::spawn("store-writer", path, move |receiver| {
            run(&conn, &receiver, &changes, &health);
        })?;
        Ok(Writer {
            thread,
            _checkpointer: checkpointer,
        })
    }

    /// Queues `op` for the next group commit and waits until it is durable.
    pub(crate) async fn submit<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Res<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.thread.send(Box::new(Request {
            op: Some(op),
            result: None,
            reply,
        }))?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn run(
    conn: &Connection,
    receiver: &Receiver<Box<dyn Job>>,
    changes: &broadcast::Sender<MailFileChange>,
    health: &Health,
) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            commit_batch(conn, &mut batch)
        }));
        let (result, published) = match ran {
            Ok(done) => done,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_owned());
                health.fail(format!("{DEAD} (panic: {what})"));
                // Dropping the batch answers every caller with `Closed`; the
                // thread ends, so every later write fails the same way.
                return;
            }
        };
        match &result {
            Err(e) => health.fail(format!("a commit of {} requests failed: {e}", batch.len())),
            Ok(()) if !health.is_dead() => health.ok(),
            Ok(()) => {}
        }
        for change in published {
            // No receiver is not an error: nobody is watching that mail file.
            let _ = changes.send(change);
        }
        let error = result.err();
        for job in batch {
            job.finish(error.as_ref());
        }
    }
}

/// Runs every job of the batch in one transaction and commits it. Returns the
/// batch's own error (if the transaction could not commit) and the changes to
/// publish (empty unless committed).
pub(crate) fn commit_batch(
    conn: &Connection,
    batch: &mut [Box<dyn Job>],
) -> (Result<(), StoreError>, Vec<MailFileChange>) {
    let mut published = Vec::new();
    let result = run_in_transaction(conn, batch, &mut published);
    if result.is_err() {
        published.clear();
        if !conn.is_autocommit() {
            // Whatever is left of the transaction must not linger; the error already says why.
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    (result.map_err(StoreError::from), published)
}

fn run_in_transaction(
    conn: &Connection,
    batch: &mut [Box<dyn Job>],
    published: &mut Vec<MailFileChange>,
) -> Res<()> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    for job in batch.iter_mut() {
        conn.prepare_cached("SAVEPOINT request")?.execute([])?;
        let mut tx = Tx {
            conn,
            changes: Vec::new(),
        };
        if job.run(&mut tx) {
            published.append(&mut tx.changes);
        } else {
            conn.prepare_cached("ROLLBACK TO request")?.execute([])?;
        }
        conn.prepare_cached("RELEASE request")?.execute([])?;
    }
    conn.prepare_cached("COMMIT")?.execute([])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<T: Send + 'static>(
        op: impl FnOnce(&mut Tx<'_>) -> Res<T> + Send + 'static,
    ) -> (Box<dyn Job>, oneshot::Receiver<Result<T, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Request {
            op: Some(op),
            result: None,
            reply,
        });
        (job, answer)
    }

    fn insert(value: i64) -> impl FnOnce(&mut Tx<'_>) -> Res<i64> + Send + 'static {
        move |tx| {
            tx.conn.execute("INSERT INTO t (v) VALUES (?1)", [value])?;
            Ok(value)
        }
    }

    #[test]
    fn a_failing_request_rolls_back_alone() {
        let conn = Connection::open_in_memory().expect("in-memory database");
        conn.execute_batch("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)")
            .expect("table");
        let (a, a_answer) = job(insert(1));
        // Inserts a row, then fails: its row must not survive.
        let (b, b_answer) = job(|tx| {
            tx.conn.execute("INSERT INTO t (v) VALUES (2)", [])?;
            tx.conn.execute("INSERT INTO t (v) VALUES (1)", [])?;
            Ok(())
        });
        let (c, c_answer) = job(insert(3));
        let mut batch = vec![a, b, c];
        let (result, _) = commit_batch(&conn, &mut batch);
        assert_eq!(result, Ok(()));
        for job in batch {
            job.finish(None);
        }
        assert_eq!(a_answer.blocking_recv().expect("answered"), Ok(1));
        assert!(matches!(
            b_answer.blocking_recv().expect("answered"),
            Err(StoreError::Database(_))
        ));
        assert_eq!(c_answer.blocking_recv().expect("answered"), Ok(3));
        let rows: Vec<i64> = conn
            .prepare("SELECT v FROM t ORDER BY v")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("rows");
        assert_eq!(rows, vec![1, 3]);
    }

    #[test]
    fn a_failed_commit_fails_every_request() {
        let conn = Connection::open_in_memory().expect("in-memory database");
        conn.execute_batch("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)")
            .expect("table");
        let (a, a_answer) = job(insert(1));
        // Leaves the transaction by itself: the batch's COMMIT then fails.
        let (b, _) = job(|tx| {
            tx.conn.execute_batch("RELEASE request; COMMIT")?;
            Ok(())
        });
        let mut batch = vec![a, b];
        let (result, _) = commit_batch(&conn, &mut batch);
        let error = result.expect_err("the batch cannot commit");
        for job in batch {
            job.finish(Some(&error));
        }
        assert!(a_answer.blocking_recv().expect("answered").is_err());
        assert!(conn.is_autocommit());
    }
}
