//! The login decision with a counting argon2 in place of the real one.

use std::path::Path;
use std::sync::atomic::AtomicUsize;

use super::*;

const DIRECTORY: &str = r#"
[domain]
name = "Acme"

[global_domain]
primary_internet_domain = "acme.com"

[[server]]
name = "Mail/Acme"
hostname = "mail.acme.com"

[[server]]
name = "Other/Acme"
hostname = "other.acme.com"

[[person]]
full_name = "Jane Doe/Acme"
short_name = "jdoe"
internet_address = "jane@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/jdoe"
internet_password = "$argon2id$v=19$m=19456,t=2,p=1$SANE$JANE"

[[person]]
full_name = "No Password/Acme"
internet_address = "nopw@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/nopw"

[[person]]
full_name = "John Smith/Sales/Acme"
internet_address = "john.s@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/jsmith1"
internet_password = "$argon2id$v=19$m=19456,t=2,p=1$SANE$SMITH1"

[[person]]
full_name = "John Smith/Acme"
internet_address = "john.smith@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/jsmith2"
internet_password = "$argon2id$v=19$m=19456,t=2,p=1$SANE$SMITH2"

[[person]]
full_name = "Far Away/Acme"
internet_address = "far@acme.com"
mail_server = "Other/Acme"
mail_file = "mail/far"
internet_password = "$argon2id$v=19$m=19456,t=2,p=1$SANE$FAR"
"#;

const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$DUMMY$DUMMY";

/// An argon2 that remembers every hash it checked; `right` is the only
/// password that matches a real (non-dummy) hash. Each check yields a few
/// times, so checks started together are all in flight at once.
#[derive(Default)]
struct Counting {
    checked: Mutex<Vec<String>>,
    dummies_made: AtomicUsize,
}

#[async_trait::async_trait]
impl Argon2 for Counting {
    async fn verify(&self, hash: &str, password: &str) -> bool {
        lock(&self.checked).push(hash.to_owned());
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        hash != DUMMY && password == "right"
    }

    async fn dummy_like(&self, like: &str) -> String {
        self.dummies_made.fetch_add(1, Ordering::SeqCst);
        assert!(
            like.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{like}"
        );
        DUMMY.to_owned()
    }
}

struct Fixture {
    dir: Arc<Directory>,
    argon2: Arc<Counting>,
    auth: Authenticator,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = Arc::new(directory::parse_str(DIRECTORY, Path::new("d.toml")).unwrap());
        let argon2 = Arc::new(Counting::default());
        let auth = Authenticator::with_argon2(argon2.clone());
        Fixture { dir, argon2, auth }
    }

    async fn login(&self, from: &str, user: &str, password: &str) -> Option<String> {
        let server = self.dir.server_by_str("Mail/Acme").unwrap();
        let login = Login {
            client: from.parse().unwrap(),
            user,
            password,
            protocol: "IMAP",
            own_mail_only: true,
        };
        self.auth
            .check(&self.dir, server, login)
            .await
            .map(|l| l.mail_file)
    }

    /// The hashes checked since the last call.
    fn checked(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.argon2.checked))
    }

    fn stat(&self, name: &str) -> u64 {
        self.auth
            .stats()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .unwrap()
    }
}

#[tokio::test]
async fn every_login_costs_one_check_and_names_without_a_hash_check_the_dummy() {
    let f = Fixture::new();
    let cases = [
        ("nobody@acme.com", "right", DUMMY),
        ("no such name", "x", DUMMY),
        ("nopw@acme.com", "right", DUMMY),
        ("John Smith", "right", DUMMY),
        (
            "far@acme.com",
            "right",
            "$argon2id$v=19$m=19456,t=2,p=1$SANE$FAR",
        ),
        (
            "jane@acme.com",
            "wrong",
            "$argon2id$v=19$m=19456,t=2,p=1$SANE$JANE",
        ),
    ];
    for (i, (user, password, hash)) in cases.into_iter().enumerate() {
        // One address per case, so the throttle never steps in.
        let from = format!("192.0.2.{}", i + 1);
        assert_eq!(f.login(&from, user, password).await, None, "{user}");
        assert_eq!(f.checked(), vec![hash.to_owned()], "{user}: one check");
    }
    assert_eq!(
        f.argon2.dummies_made.load(Ordering::SeqCst),
        1,
        "made once per directory"
    );
    assert_eq!(f.stat("Auth.PasswordChecks"), 6);
}

#[tokio::test]
async fn the_right_password_logs_in_and_is_then_cached() {
    let f = Fixture::new();
    assert_eq!(
        f.login("192.0.2.1", "Jane Doe", "right").await.as_deref(),
        Some("mail/jdoe")
    );
    assert_eq!(f.checked().len(), 1);
    assert_eq!(
        f.login("192.0.2.1", "jane@acme.com", "right")
            .await
            .as_deref(),
        Some("mail/jdoe")
    );
    assert!(f.checked().is_empty(), "the cache answered");
}

#[tokio::test]
async fn parallel_wrong_logins_are_checked_only_up_to_the_limit() {
    let f = Fixture::new();
    let tries = (0..200).map(|_| f.login("192.0.2.50", "jane@acme.com", "wrong"));
    let answers = futures_join_all(tries).await;
    assert_eq!(answers.len(), 200);
    assert!(answers.iter().all(Option::is_none));
    assert_eq!(f.checked().len(), FAILURE_LIMIT);
    assert_eq!(f.stat("Auth.Refused.Throttled"), 200 - FAILURE_LIMIT as u64);
    // The address and the user, once each.
    assert_eq!(f.stat("Auth.Lockouts"), 2);
    // Locked out: even the right password is answered as wrong, unchecked.
    assert_eq!(f.login("192.0.2.50", "jane@acme.com", "right").await, None);
    assert!(f.checked().is_empty());
}

#[tokio::test]
async fn the_names_of_one_person_share_one_throttle_record() {
    let f = Fixture::new();
    let names = ["jane@acme.com", "Jane Doe", "JANE@ACME.COM"];
    for i in 0..FAILURE_LIMIT {
        let from = format!("198.51.100.{}", i + 1);
        assert_eq!(f.login(&from, names[i % names.len()], "wrong").await, None);
    }
    assert_eq!(f.stat("Auth.Lockouts"), 1, "the user, by all names");
    f.checked();
    assert_eq!(f.login("198.51.100.99", "Jane Doe", "right").await, None);
    assert!(f.checked().is_empty());
}

/// Polls every future in one task, so they interleave at each yield.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pending: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, f) in pending.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

#[test]
fn hash_then_verify() {
    let h = hash_password("s3cret").unwrap();
    assert!(h.starts_with("$argon2id$"));
    assert!(verify::verify(&h, "s3cret"));
    assert!(!verify::verify(&h, "other"));
    assert!(!verify::verify("not a hash", "s3cret"));
}
