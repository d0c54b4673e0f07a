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

/// The idle connections to one target, and whether a sweeper task watches them.
#[derive(Default)]
struct TargetIdle {
    sessions: Vec<Idle>,
    sweeping: bool,
}

struct Inner {
    idle: Mutex<HashMap<Target, TargetIdle>>,
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
            idle.get_mut(target)?.sessions.pop()?
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
        let (extra, start_sweeper) = {
            let mut idle = self.inner.idle.lock();
            let t = idle.entry(target.clone()).or_default();
            if t.sessions.len() < self.inner.per_target && !self.inner.max_idle.is_zero() {
                t.sessions.push(Idle {
                    session,
                    since: Instant::now(),
                });
                // One sweeper per target, however many connections come and go.
                (None, !std::mem::replace(&mut t.sweeping, true))
            } else {
                (Some(session), false)
            }
        };
        if let Some(extra) = extra {
            tokio::spawn(extra.quit());
        }
        if start_sweeper {
            tokio::spawn(sweep(Arc::downgrade(&self.inner), target));
        }
    }
}

/// Closes the connections to `target` once they have been idle too long;
/// ends when none is left (the pool may be gone meanwhile: nothing to do).
async fn sweep(pool: Weak<Inner>, target: Target) {
    loop {
        let wait = {
            let Some(inner) = pool.upgrade() else { return };
            let mut idle = inner.idle.lock();
            let Some(t) = idle.get_mut(&target) else {
                return;
            };
            let Some(oldest) = t.sessions.iter().map(|e| e.since).min() else {
                idle.remove(&target);
                return;
            };
            (oldest + inner.max_idle).saturating_duration_since(Instant::now())
        };
        tokio::time::sleep(wait).await;
        let Some(inner) = pool.upgrade() else { return };
        let stale: Vec<Session> = {
            let mut idle = inner.idle.lock();
            let Some(t) = idle.get_mut(&target) else {
                return;
            };
            let (old, fresh): (Vec<Idle>, Vec<Idle>) = std::mem::take(&mut t.sessions)
                .into_iter()
                .partition(|entry| entry.since.elapsed() >= inner.max_idle);
            t.sessions = fresh;
            old.into_iter().map(|entry| entry.session).collect()
        };
        for session in stale {
            session.quit().await;
        }
    }
}
