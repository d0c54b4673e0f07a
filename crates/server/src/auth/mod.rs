//! Internet password logins (SPEC §7) for SMTP AUTH, POP3 and IMAP: which
//! names a user may log in with (`internet_auth`), the one argon2 check
//! every login costs, throttling, and the log and counters of failures.
//!
//! Every login that gets past the throttle costs exactly one argon2 check
//! with the parameters of the directory's hashes: an unknown name, an
//! ambiguous one and a person without a password are checked against a
//! dummy hash, so the time of an answer does not tell which names exist.
//! Each failed login is logged once, with its reason (never told to the
//! client); a lockout is logged once when it starts.
//!
//! Owns the decision whether a login is right. The protocols are the
//! listeners', argon2 and its threads `verify`'s, the failure records
//! `throttle`'s, the cache of recent successes `cache`'s.

mod cache;
mod throttle;
mod verify;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use argon2::PasswordHasher;
use directory::{Directory, EntryRef, InternetAuth, Person, ServerDoc};
use logsafe::shown;
use tracing::{debug, warn};

use crate::instance::{Instance, lock};
use cache::AuthCache;
use throttle::{FAILURE_LIMIT, LOCKOUT, Throttle, WINDOW};
use verify::{Argon2, Pool};

/// Make an argon2id hash of `password` (what `mailhop passwd` prints).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
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

/// Who logged in.
pub(crate) struct LoggedIn {
    /// The person's full name.
    pub identity: String,
    pub mail_file: String,
}

/// Check a login on `inst`; the person on success. `protocol` names the
/// listener in the log (`SMTP`, `POP3`, `IMAP`); `own_mail_only`: the
/// person's mail file must be on this server (POP3, IMAP).
pub(crate) async fn authenticate(
    inst: &Instance,
    client: IpAddr,
    user: &str,
    password: &str,
    protocol: &str,
    own_mail_only: bool,
) -> Option<LoggedIn> {
    let snap = inst.snapshot();
    let login = Login {
        client,
        user,
        password,
        protocol,
        own_mail_only,
    };
    inst.auth.check(&snap.dir, &snap.server, login).await
}

/// One login to check.
pub(crate) struct Login<'a> {
    pub client: IpAddr,
    pub user: &'a str,
    pub password: &'a str,
    pub protocol: &'a str,
    pub own_mail_only: bool,
}

/// The logins of one server: throttle, cache, counters, and the process's
/// argon2 threads.
pub(crate) struct Authenticator {
    throttle: Throttle,
    cache: AuthCache,
    argon2: Arc<dyn Argon2>,
    /// The dummy hash for the directory in use: like most of its hashes.
    dummy: Mutex<Option<(Weak<Directory>, Arc<str>)>>,
    password_checks: AtomicU64,
    lockouts: AtomicU64,
    throttled: AtomicU64,
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator::with_argon2(Pool::shared())
    }
}

/// What checking one login found.
struct Plan<'d> {
    /// The person, if the login may succeed with the right password.
    person: Option<&'d Person>,
    /// The stored hash to check against; `None`: the dummy.
    hash: Option<&'d str>,
    /// Why the login fails whatever the password (for the log).
    failure: Option<String>,
    /// Whom the throttle counts the try against: the person's full name
    /// when the name designates one, else the name as given.
    throttle_name: String,
}

fn plan<'d>(dir: &'d Directory, server: &ServerDoc, login: &Login<'_>) -> Plan<'d> {
    let persons = persons_for_login(dir, server.internet_auth, login.user);
    let throttle_name = match persons.as_slice() {
        [p] => p.full_name.canonical(),
        _ => login.user.to_owned(),
    };
    let (person, hash, failure) = match persons.as_slice() {
        [] => (None, None, Some("no person has that name".to_owned())),
        [p] => match &p.internet_password {
            None => (
                None,
                None,
                Some("the person has no Internet password".to_owned()),
            ),
            Some(hash) if login.own_mail_only && p.mail_server != server.name => (
                None,
                Some(hash.as_str()),
                Some(format!(
                    "the mail file of {} is on server {}, not this one",
                    p.full_name, p.mail_server
                )),
            ),
            Some(hash) => (Some(*p), Some(hash.as_str()), None),
        },
        many => (
            None,
            None,
            Some(format!(
                "the name is ambiguous ({} persons match)",
                many.len()
            )),
        ),
    };
    Plan {
        person,
        hash,
        failure,
        throttle_name,
    }
}

impl Authenticator {
    pub(crate) fn with_argon2(argon2: Arc<dyn Argon2>) -> Authenticator {
        Authenticator {
            throttle: Throttle::default(),
            cache: AuthCache::default(),
            argon2,
            dummy: Mutex::new(None),
            password_checks: AtomicU64::new(0),
            lockouts: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
        }
    }

    /// Makes the dummy hash for `dir` now, so that the first unknown name
    /// after a start or a reload costs no more than any other.
    pub(crate) async fn prepare(&self, dir: &Arc<Directory>) {
        self.dummy(dir).await;
    }

    /// `Auth.*` of `show stat`.
    pub(crate) fn stats(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("Auth.PasswordChecks", get(&self.password_checks)),
            ("Auth.Lockouts", get(&self.lockouts)),
            ("Auth.Refused.Throttled", get(&self.throttled)),
        ]
    }

    /// Checks a login against `dir` as `server` sees it; the person on
    /// success.
    pub(crate) async fn check(
        &self,
        dir: &Arc<Directory>,
        server: &ServerDoc,
        login: Login<'_>,
    ) -> Option<LoggedIn> {
        let Login {
            client,
            user,
            protocol,
            ..
        } = login;
        let plan = plan(dir, server, &login);
        let ticket = match self.throttle.begin(
            client,
            self.throttle.user(&plan.throttle_name),
            Instant::now(),
        ) {
            Ok(ticket) => ticket,
            Err(why) => {
                // Answered as a wrong password; the lockout was logged when
                // it started, so each try is not.
                self.throttled.fetch_add(1, Ordering::Relaxed);
                debug!(
                    "{protocol} Server: Login as {} from {client} refused: {}",
                    shown(user),
                    why.reason()
                );
                return None;
            }
        };
        let right = match plan.hash {
            Some(hash) if plan.failure.is_none() && self.cache.verified(hash, login.password) => {
                true
            }
            Some(hash) => self.verify(hash, login.password).await,
            None => {
                let dummy = self.dummy(dir).await;
                self.verify(&dummy, login.password).await
            }
        };
        match (plan.person, plan.failure, right) {
            (Some(person), None, true) => {
                if let Some(hash) = plan.hash {
                    self.cache.remember(hash, login.password);
                }
                ticket.succeeded(Instant::now());
                Some(LoggedIn {
                    identity: person.full_name.to_string(),
                    mail_file: person.mail_file.clone(),
                })
            }
            (_, failure, _) => {
                let reason = failure.unwrap_or_else(|| "wrong password".to_owned());
                warn!(
                    "{protocol} Server: Authentication failed for user {} from {client}: {reason}",
                    shown(user)
                );
                let locked = ticket.failed(Instant::now());
                if locked.address {
                    self.locked_out(protocol, &format!("address {client}"));
                }
                if locked.user {
                    self.locked_out(protocol, &format!("user {}", shown(user)));
                }
                None
            }
        }
    }

    fn locked_out(&self, protocol: &str, who: &str) {
        self.lockouts.fetch_add(1, Ordering::Relaxed);
        warn!(
            "{protocol} Server: {who} is locked out for {} minutes after {FAILURE_LIMIT} failed logins within {} minutes; its logins are refused as wrong until then",
            LOCKOUT.as_secs() / 60,
            WINDOW.as_secs() / 60
        );
    }

    async fn verify(&self, hash: &str, password: &str) -> bool {
        self.password_checks.fetch_add(1, Ordering::Relaxed);
        self.argon2.verify(hash, password).await
    }

    /// The dummy hash for `dir`: made once per directory, with the
    /// parameters most of its hashes have.
    async fn dummy(&self, dir: &Arc<Directory>) -> Arc<str> {
        if let Some((of, hash)) = lock(&self.dummy).as_ref()
            && of.upgrade().is_some_and(|d| Arc::ptr_eq(&d, dir))
        {
            return hash.clone();
        }
        let like = typical_hash(dir).unwrap_or_default();
        let hash: Arc<str> = self.argon2.dummy_like(&like).await.into();
        *lock(&self.dummy) = Some((Arc::downgrade(dir), hash.clone()));
        hash
    }
}

/// A hash of the directory whose algorithm, version and parameters most of
/// its hashes share (the first such, in directory order).
fn typical_hash(dir: &Directory) -> Option<String> {
    let hashes = dir
        .persons
        .iter()
        .filter_map(|p| p.internet_password.as_deref());
    let settings = |h: &str| h.rsplitn(3, '$').nth(2).unwrap_or_default().to_owned();
    let mut counts: Vec<(String, usize, &str)> = Vec::new();
    for hash in hashes {
        let key = settings(hash);
        match counts.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, n, _)) => *n += 1,
            None => counts.push((key, 1, hash)),
        }
    }
    let most = counts.iter().map(|(_, n, _)| *n).max()?;
    counts
        .into_iter()
        .find(|(_, n, _)| *n == most)
        .map(|(_, _, hash)| hash.to_owned())
}

#[cfg(test)]
mod tests;
