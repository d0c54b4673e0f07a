//! Whether the store's writer can be trusted. Set by the writer thread when
//! it dies (a panic) or a commit fails, cleared by the next commit that
//! succeeds; read by everyone who must refuse work or say why.

use std::sync::Mutex;

#[derive(Debug, Default)]
pub(crate) struct Health {
    problem: Mutex<Option<String>>,
    /// Fault injection for tests of the unhealthy path.
    inject_accept_panic: bool,
}

impl Health {
    /// `MAILHOP_STORE_FAULT=writer-panic` makes the writer thread panic on
    /// the first message accepted: the one way to see, from outside, what
    /// the server does when its store fails.
    pub(crate) fn from_env() -> Health {
        Health {
            problem: Mutex::new(None),
            inject_accept_panic: std::env::var("MAILHOP_STORE_FAULT").as_deref()
                == Ok("writer-panic"),
        }
    }

    pub(crate) fn fault_on_accept(&self) -> bool {
        self.inject_accept_panic
    }

    pub(crate) fn get(&self) -> Result<(), String> {
        match &*self.problem.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }

    pub(crate) fn fail(&self, reason: String) {
        tracing::error!("store: {reason}; the server refuses new mail until it is fixed");
        *self.problem.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
    }

    pub(crate) fn ok(&self) {
        let mut problem = self.problem.lock().unwrap_or_else(|e| e.into_inner());
        if problem.take().is_some() {
            tracing::info!("store: commits succeed again");
        }
    }

    /// Dead writers stay dead: only a failed commit is cleared by a good one.
    pub(crate) fn is_dead(&self) -> bool {
        self.problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            .is_some_and(|r| r.starts_with(DEAD))
    }
}

pub(crate) const DEAD: &str = "the store's writer stopped";
