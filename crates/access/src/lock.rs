//! The POP3 maildrop lock (RFC 1939 §8): one POP3 session per mail file at a
//! time, released when the session ends however it ends. Owns an in-process
//! map only; IMAP sessions do not take it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Mail files held by POP3 sessions, keyed case-insensitively.
#[derive(Clone, Default)]
pub(crate) struct Locks {
    held: Arc<Mutex<HashSet<String>>>,
}

/// A held lock; dropping it releases the mail file.
pub(crate) struct LockGuard {
    locks: Locks,
    key: String,
}

impl Locks {
    /// Takes the lock of `mail_file`, or `None` if another session holds it.
    pub(crate) fn try_lock(&self, mail_file: &str) -> Option<LockGuard> {
        let key = mail_file.to_lowercase();
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.insert(key.clone()).then(|| LockGuard {
            locks: self.clone(),
            key,
        })
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let mut held = self.locks.held.lock().unwrap_or_else(|p| p.into_inner());
        held.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_waits_for_release() {
        let locks = Locks::default();
        let first = locks.try_lock("mail/jdoe");
        assert!(first.is_some());
        assert!(locks.try_lock("MAIL/JDOE").is_none());
        assert!(locks.try_lock("mail/other").is_some());
        drop(first);
        assert!(locks.try_lock("mail/jdoe").is_some());
    }
}
