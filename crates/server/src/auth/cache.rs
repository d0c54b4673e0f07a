//! Recently verified Internet passwords, so that a mail client that logs in
//! every few minutes does not cost an argon2 verification each time (what
//! Dovecot's auth cache does). Only a keyed MAC of (stored hash, password)
//! is kept, under a key made at start and never stored; a changed hash in
//! the directory no longer matches; entries expire after `TTL`.
//!
//! Owns the cache only; it never decides whether a login is right.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::instance::lock;

pub(crate) struct AuthCache {
    key: aws_lc_rs::hmac::Key,
    seen: Mutex<HashMap<Vec<u8>, Instant>>,
}

impl Default for AuthCache {
    fn default() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = aws_lc_rs::hmac::Key::generate(aws_lc_rs::hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[0; 32]));
        AuthCache {
            key,
            seen: Mutex::new(HashMap::new()),
        }
    }
}

impl AuthCache {
    const TTL: Duration = Duration::from_secs(600);
    const MAX: usize = 50_000;

    fn tag(&self, hash: &str, password: &str) -> Vec<u8> {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.key);
        ctx.update(hash.as_bytes());
        ctx.update(&[0]);
        ctx.update(password.as_bytes());
        ctx.sign().as_ref().to_vec()
    }

    pub(crate) fn verified(&self, hash: &str, password: &str) -> bool {
        let tag = self.tag(hash, password);
        lock(&self.seen)
            .get(&tag)
            .is_some_and(|at| at.elapsed() < Self::TTL)
    }

    pub(crate) fn remember(&self, hash: &str, password: &str) {
        let tag = self.tag(hash, password);
        let mut seen = lock(&self.seen);
        if seen.len() >= Self::MAX {
            seen.retain(|_, at| at.elapsed() < Self::TTL);
            if seen.len() >= Self::MAX {
                seen.clear();
            }
        }
        seen.insert(tag, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_remembers_only_the_exact_pair() {
        let c = AuthCache::default();
        assert!(!c.verified("$argon2id$h1", "pw"));
        c.remember("$argon2id$h1", "pw");
        assert!(c.verified("$argon2id$h1", "pw"));
        assert!(!c.verified("$argon2id$h1", "pw2"), "another password");
        assert!(
            !c.verified("$argon2id$h2", "pw"),
            "the hash changed in the directory"
        );
    }
}
