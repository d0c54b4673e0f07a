//! Argon2, bounded. Password checks run on a few threads of their own, at
//! most [`checkers`] at once; the others wait their turn. With the
//! parameters `mailhop passwd` uses a check takes 19 MiB, so the memory
//! argon2 holds stays at a few checks' worth whatever arrives before login
//! (unbounded, 200 wrong logins at once took 4 GB). The threads are the
//! process's, shared by every server it runs, and always the same few, so
//! the allocator reuses their memory rather than spreading it over arenas.
//!
//! Also makes the dummy hashes that a login without a real one (an unknown
//! name, a person without a password) is checked against, so that such a
//! login costs what a wrong password costs.
//!
//! Owns argon2 and its threads; which hash a login is checked against is
//! `auth`'s business.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, OnceLock, mpsc};

use argon2::{CustomizedPasswordHasher, PasswordHash, PasswordHasher, PasswordVerifier};

use crate::instance::lock;

/// What `auth` asks of argon2; tests put a counting fake in its place.
#[async_trait::async_trait]
pub(crate) trait Argon2: Send + Sync + 'static {
    /// Does `password` match the PHC string `hash`?
    async fn verify(&self, hash: &str, password: &str) -> bool;

    /// The hash of a random password with the algorithm, version and
    /// parameters of the PHC string `like` (or of `mailhop passwd` when
    /// `like` cannot be read): no password matches it.
    async fn dummy_like(&self, like: &str) -> String;
}

/// How many password checks run at once: the cores, between 2 and 4.
pub(crate) fn checkers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .clamp(2, 4)
}

type Job = Box<dyn FnOnce() + Send>;

/// The process's argon2 threads and the turns to use them.
pub(crate) struct Pool {
    turns: tokio::sync::Semaphore,
    jobs: mpsc::Sender<Job>,
    /// Threads started; with none, checks run on tokio's blocking threads.
    threads: usize,
}

impl Pool {
    /// The process's pool, started on first use.
    pub(crate) fn shared() -> Arc<Pool> {
        static POOL: OnceLock<Arc<Pool>> = OnceLock::new();
        POOL.get_or_init(|| Arc::new(Pool::start(checkers())))
            .clone()
    }

    fn start(size: usize) -> Pool {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let threads = (0..size)
            .filter(|i| {
                let queue = Arc::clone(&queue);
                std::thread::Builder::new()
                    .name(format!("argon2-{i}"))
                    .spawn(move || {
                        loop {
                            let next = lock(&queue).recv();
                            match next {
                                Ok(job) => job(),
                                Err(_) => return,
                            }
                        }
                    })
                    .map_err(|e| tracing::error!("Auth: no password check thread: {e}"))
                    .is_ok()
            })
            .count();
        Pool {
            turns: tokio::sync::Semaphore::new(size),
            jobs,
            threads,
        }
    }

    /// Runs `work` on an argon2 thread when a turn is free; `None` if it
    /// panicked.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let _turn = self.turns.acquire().await.ok()?;
        if self.threads == 0 {
            return tokio::task::spawn_blocking(work).await.ok();
        }
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(std::panic::catch_unwind(AssertUnwindSafe(work)).ok());
        });
        self.jobs.send(job).ok()?;
        result.await.ok().flatten()
    }
}

#[async_trait::async_trait]
impl Argon2 for Pool {
    async fn verify(&self, hash: &str, password: &str) -> bool {
        let (hash, password) = (hash.to_owned(), password.to_owned());
        self.run(move || verify(&hash, &password))
            .await
            .unwrap_or(false)
    }

    async fn dummy_like(&self, like: &str) -> String {
        let like = like.to_owned();
        self.run(move || dummy_like(&like))
            .await
            .unwrap_or_default()
    }
}

/// Does `password` match the PHC string `hash`? (argon2, slow on purpose)
pub(crate) fn verify(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The hash of a random password, like `like` in all but salt and output.
fn dummy_like(like: &str) -> String {
    let password: [u8; 32] = rand::random();
    let salt: [u8; 16] = rand::random();
    let made = PasswordHash::new(like).ok().and_then(|template| {
        let params = argon2::Params::try_from(&template).ok()?;
        argon2::Argon2::default()
            .hash_password_customized(
                &password,
                &salt,
                Some(template.algorithm.as_str()),
                template.version,
                params,
            )
            .ok()
    });
    match made {
        Some(hash) => hash.to_string(),
        None => argon2::Argon2::default()
            .hash_password_with_salt(&password, &salt)
            .map(|h| h.to_string())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dummy_has_the_parameters_of_its_model_and_matches_nothing() {
        let like = "$argon2id$v=19$m=8192,t=3,p=1$c2FsdHNhbHRzYWx0$\
                    AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let dummy = dummy_like(like);
        assert!(
            dummy.starts_with("$argon2id$v=19$m=8192,t=3,p=1$"),
            "{dummy}"
        );
        assert!(!verify(&dummy, ""));
        assert!(!verify(&dummy, "password"));
        let fallback = dummy_like("not a hash");
        let default = crate::auth::hash_password("x").unwrap();
        let params = |h: &str| h.rsplitn(3, '$').nth(2).unwrap_or_default().to_owned();
        assert_eq!(params(&fallback), params(&default));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_wait_for_a_turn_and_all_get_an_answer() {
        let pool = Arc::new(Pool::start(2));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut all = Vec::new();
        for _ in 0..20 {
            let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
            all.push(tokio::spawn(async move {
                pool.run(move || {
                    use std::sync::atomic::Ordering::SeqCst;
                    let now = running.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    running.fetch_sub(1, SeqCst);
                    true
                })
                .await
            }));
        }
        for task in all {
            assert_eq!(task.await.unwrap(), Some(true));
        }
        assert!(most.load(std::sync::atomic::Ordering::SeqCst) <= 2);
    }

    #[tokio::test]
    async fn a_panicking_check_is_a_failure_and_the_pool_goes_on() {
        let pool = Pool::start(1);
        assert_eq!(pool.run(|| -> bool { panic!("boom") }).await, None);
        assert_eq!(pool.run(|| 7).await, Some(7));
    }
}
