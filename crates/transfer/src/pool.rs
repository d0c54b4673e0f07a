//! The connection cache: idle SMTP sessions per target (name and address),
//! handed out most
//! recent first, closed with QUIT once idle too long or beyond the cap.
//! Knows nothing of what the sessions carry.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::client::Session;
use crate::outcome::Target;

/// Idle time after which a cached connection is closed.
pub(crate) const DEFAULT_IDLE: Duration = Duration::from_secs(5);
/// Idle connections kept per target.
pub(crate) const DEFAULT_PER_TARGET: usize = 4;

struct Idle {
    session: Session,
    since: Instant,
}

struct Inner {
    idle: Mutex<HashMap<Target, Vec<Idle>>>,
    max_idle: Duration,
    per_target: usize,
}

/// Shared by every clone of a transferer.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    pub(crate) fn new(max_idle: Duration, per_target: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                idle: Mutex::new(HashMap::new()),
                max_idle,
                per_target,
            }),
        }
    }

    /// The most recently used idle connection to `target`, if one is fresh.
    pub(crate) fn take(&self, target: &Target) -> Option<Session> {
        let entry = {
            let mut idle = self.inner.idle.lock();
            let sessions = idle.get_mut(target)?;
            let entry = sessions.pop();
            if sessions.is_empty() {
                idle.remove(target);
            }
            entry?
        };
        if entry.since.elapsed() < self.inner.max_idle {
            Some(entry.session)
        } else {
            tokio::spawn(entry.session.quit());
            None
        }
    }

    /// Keeps a connection that finished a transaction cleanly. Must be called
    /// within a tokio runtime (the close after the idle time is a task).
    pub(crate) fn put(&self, session: Session) {
        let target = session.target().clone();
        let kept = {
            let mut idle = self.inner.idle.lock();
            let sessions = idle.entry(target.clone()).or_default();
            if sessions.len() < self.inner.per_target && !self.inner.max_idle.is_zero() {
                sessions.push(Idle {
                    session,
                    since: Instant::now(),
                });
                None
            } else {
                Some(session)
            }
        };
        match kept {
            Some(extra) => {
                tokio::spawn(extra.quit());
            }
            None => {
                tokio::spawn(close_stale(
                    Arc::downgrade(&self.inner),
                    target,
                    self.inner.max_idle,
                ));
            }
        }
    }
}

/// After `wait`, closes the connections to `target` that have been idle that
/// long (the pool may be gone by then: nothing to do).
async fn close_stale(pool: Weak<Inner>, target: Target, wait: Duration) {
    tokio::time::sleep(wait).await;
    let Some(inner) = pool.upgrade() else {
        return;
    };
    let stale: Vec<Session> = {
        let mut idle = inner.idle.lock();
        let Some(sessions) = idle.get_mut(&target) else {
            return;
        };
        let (old, fresh): (Vec<Idle>, Vec<Idle>) = std::mem::take(sessions)
            .into_iter()
            .partition(|entry| entry.since.elapsed() >= inner.max_idle);
        if fresh.is_empty() {
            idle.remove(&target);
        } else {
            *sessions = fresh;
        }
        old.into_iter().map(|entry| entry.session).collect()
    };
    for session in stale {
        session.quit().await;
    }
}
