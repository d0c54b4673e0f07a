//! Internet password authentication (SPEC §7): which names a user may log in
//! with (`internet_auth`), argon2 verification, and throttling of failures.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::{PasswordHash, PasswordHasher, PasswordVerifier};
use directory::{Directory, EntryRef, InternetAuth, Person};
use tracing::warn;

use crate::instance::{Instance, lock};

/// Make an argon2id hash of `password` (what `mailhop passwd` prints).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

fn verify(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The persons a login name designates under the server's `internet_auth`.
pub(crate) fn persons_for_login<'d>(
    dir: &'d Directory,
    mode: InternetAuth,
    user: &str,
) -> Vec<&'d Person> {
    let mut found: Vec<usize> = Vec::new();
    let mut add = |refs: Vec<EntryRef>| {
        for r in refs {
            if let EntryRef::Person(i) = r
                && !found.contains(&i)
            {
                found.push(i);
            }
        }
    };
    if user.contains('@') {
        add(dir.by_internet_address(user));
    }
    let named: Vec<EntryRef> = dir.by_name(user);
    let user_l = user.to_ascii_lowercase();
    match mode {
        InternetAuth::FewerNames => add(named
            .into_iter()
            .filter(|r| match r {
                EntryRef::Person(i) => {
                    dir.persons[*i].full_name.common_name().to_ascii_lowercase() == user_l
                }
                _ => false,
            })
            .collect()),
        InternetAuth::MoreNames => {
            add(named);
            add(dir
                .persons
                .iter()
                .enumerate()
                .filter(|(_, p)| p.last_name.eq_ignore_ascii_case(user))
                .map(|(i, _)| EntryRef::Person(i))
                .collect());
        }
    }
    found.into_iter().map(|i| &dir.persons[i]).collect()
}

/// Recently verified Internet passwords, so that a mail client that logs in
/// every few minutes does not cost an argon2 verification each time (what
/// Dovecot's auth cache does). Only a keyed MAC of (stored hash, password) is
/// kept, under a key made at start and never stored; a changed hash in the
/// directory no longer matches; entries expire after `TTL`.
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

    fn verified(&self, hash: &str, password: &str) -> bool {
        let tag = self.tag(hash, password);
        lock(&self.seen)
            .get(&tag)
            .is_some_and(|at| at.elapsed() < Self::TTL)
    }

    fn remember(&self, hash: &str, password: &str) {
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

/// Failed logins per client address and per user name, with a growing delay.
#[derive(Default)]
pub(crate) struct Throttle(Mutex<HashMap<String, (u32, Instant)>>);

impl Throttle {
    const WINDOW: Duration = Duration::from_secs(300);

    fn delay(&self, keys: &[String]) -> Duration {
        let map = lock(&self.0);
        let worst = keys
            .iter()
            .filter_map(|k| map.get(k))
            .filter(|(_, at)| at.elapsed() < Self::WINDOW)
            .map(|(n, _)| *n)
            .max()
            .unwrap_or(0);
        // 0, 0, 0, then 1 s, 2 s, 4 s ... capped at 16 s.
        match worst {
            0..=2 => Duration::ZERO,
            n => Duration::from_secs(1 << (n - 3).min(4)),
        }
    }

    fn failed(&self, keys: &[String]) {
        let mut map = lock(&self.0);
        if map.len() > 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < Self::WINDOW);
        }
        for k in keys {
            let e = map.entry(k.clone()).or_insert((0, Instant::now()));
            if e.1.elapsed() >= Self::WINDOW {
                e.0 = 0;
            }
            e.0 += 1;
            e.1 = Instant::now();
        }
    }

    fn succeeded(&self, keys: &[String]) {
        let mut map = lock(&self.0);
        for k in keys {
            map.remove(k);
        }
    }
}

/// Who logged in.
pub(crate) struct LoggedIn {
    /// The person's full name.
    pub identity: String,
    pub mail_file: String,
}

/// Check a login; the person on success.
/// The reason of a failure is logged for the administrator, never told to the client.
/// `own_mail_only`: the person's mail file must be on this server (POP3, IMAP).
pub(crate) async fn authenticate(
    inst: &Instance,
    client: IpAddr,
    user: &str,
    password: &str,
    protocol: &str,
    own_mail_only: bool,
) -> Option<LoggedIn> {
    let keys = [
        format!("ip:{client}"),
        format!("user:{}", user.to_ascii_lowercase()),
    ];
    let delay = inst.auth_failures.delay(&keys);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let snap = inst.snapshot();
    let persons = persons_for_login(&snap.dir, snap.server.internet_auth, user);
    let failure = match persons.as_slice() {
        [] => Some("no person has that name".to_owned()),
        [p] if own_mail_only && p.mail_server != snap.server.name => Some(format!(
            "the mail file of {} is on server {}, not this one",
            p.full_name, p.mail_server
        )),
        [p] => match &p.internet_password {
            None => Some("the person has no Internet password".to_owned()),
            Some(hash) if inst.auth_cache.verified(hash, password) => None,
            Some(hash) => {
                let (h, pw) = (hash.clone(), password.to_owned());
                let ok = tokio::task::spawn_blocking(move || verify(&h, &pw))
                    .await
                    .unwrap_or(false);
                if ok {
                    inst.auth_cache.remember(hash, password);
                }
                (!ok).then(|| "wrong password".to_owned())
            }
        },
        many => Some(format!(
            "the name is ambiguous ({} persons match)",
            many.len()
        )),
    };
    match failure {
        None => {
            inst.auth_failures.succeeded(&keys);
            persons.first().map(|p| LoggedIn {
                identity: p.full_name.to_string(),
                mail_file: p.mail_file.clone(),
            })
        }
        Some(reason) => {
            warn!(
                "{protocol} Server: Authentication failed for user {user} from {client}: {reason}"
            );
            inst.auth_failures.failed(&keys);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&h, "s3cret"));
        assert!(!verify(&h, "other"));
        assert!(!verify("not a hash", "s3cret"));
    }

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

    #[test]
    fn throttle_grows_after_three_failures() {
        let t = Throttle::default();
        let k = ["ip:127.0.0.1".to_owned()];
        for _ in 0..3 {
            assert_eq!(t.delay(&k), Duration::ZERO);
            t.failed(&k);
        }
        assert_eq!(t.delay(&k), Duration::from_secs(1));
        t.succeeded(&k);
        assert_eq!(t.delay(&k), Duration::ZERO);
    }
}
