//! Failed-login throttling (SPEC §7: failed logins are throttled): per
//! client address and per user, each try reserved and recorded in one step
//! under one lock, and a temporary lockout after too many failures.
//!
//! A try is counted as a failure from the moment it starts; only its
//! success takes it back. So tries sent in parallel cannot pass the limit
//! while their passwords are being checked: beyond [`FAILURE_LIMIT`] tries
//! failed or undecided, the next is refused before its password is looked
//! at. A success clears only the failures of its own (address, user) pair,
//! never what the address did as other users or what the user's name
//! suffered from other addresses.
//!
//! Owns the records only: it never sees a password, the directory or the
//! log (its caller says what happened).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::instance::lock;

/// Failed logins within [`WINDOW`] that lock a client address, or a user,
/// out for [`LOCKOUT`].
pub(crate) const FAILURE_LIMIT: usize = 10;
/// How long a failed login counts.
pub(crate) const WINDOW: Duration = Duration::from_secs(5 * 60);
/// How long a lockout lasts.
pub(crate) const LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// How long an address that logged in as a user stays exempt from that
/// user's lockout (a locked-out name must not lock out its owner's
/// mail client).
const TRUSTED_FOR: Duration = Duration::from_secs(24 * 60 * 60);
/// The most records (addresses and users) and trusted pairs kept; beyond
/// it the idle ones go first, then the oldest that are not locked out.
const MAX_RECORDS: usize = 100_000;

/// A client address as the throttle counts it: IPv4 as it is, IPv6 by its
/// /64 (one site's addresses are one client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Client(IpAddr);

impl Client {
    pub(crate) fn of(ip: IpAddr) -> Client {
        match ip.to_canonical() {
            IpAddr::V6(v6) => Client(IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & (u128::MAX << 64),
            ))),
            v4 => Client(v4),
        }
    }
}

/// A user as the throttle counts it: a keyed hash of the name in lower case
/// (the person's full name when the login name designates one person), so
/// a long name costs no more memory than a short one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct User(u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Client(Client),
    User(User),
}

/// One try: when it started or failed, which try it is, and the other
/// half of its (address, user) pair; `pending` until its outcome is known.
#[derive(Debug)]
struct Try {
    at: Instant,
    id: u64,
    pair: Key,
    pending: bool,
}

#[derive(Debug, Default)]
struct Record {
    tries: VecDeque<Try>,
    locked_until: Option<Instant>,
}

impl Record {
    /// Forgets failures older than the window and a lockout that is over.
    fn expire(&mut self, now: Instant) {
        self.tries
            .retain(|t| t.pending || now.saturating_duration_since(t.at) < WINDOW);
        if self.locked_until.is_some_and(|until| until <= now) {
            self.locked_until = None;
        }
    }

    fn locked(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }

    fn failures(&self) -> usize {
        self.tries.iter().filter(|t| !t.pending).count()
    }

    fn idle(&self, now: Instant) -> bool {
        self.tries.is_empty() && !self.locked(now)
    }

    fn last_seen(&self) -> Option<Instant> {
        self.tries.iter().map(|t| t.at).max()
    }
}

#[derive(Debug, Default)]
struct State {
    records: HashMap<Key, Record>,
    /// (address, user) pairs that logged in, and when.
    trusted: HashMap<(Client, User), Instant>,
    next_id: u64,
}

impl State {
    /// Keeps room for a try's two records under [`MAX_RECORDS`]: idle ones
    /// go first, then the least recently seen that are not locked out (a
    /// lockout is never forgotten early).
    fn make_room(&mut self, now: Instant) {
        if self.records.len() + 2 > MAX_RECORDS {
            self.records.retain(|_, r| {
                r.expire(now);
                !r.idle(now)
            });
        }
        if self.records.len() + 2 > MAX_RECORDS {
            let mut open: Vec<(Instant, Key)> = self
                .records
                .iter()
                .filter(|(_, r)| !r.locked(now))
                .map(|(k, r)| (r.last_seen().unwrap_or(now), *k))
                .collect();
            open.sort_unstable_by_key(|(at, _)| *at);
            let excess = self.records.len() - MAX_RECORDS * 9 / 10;
            for (_, key) in open.into_iter().take(excess) {
                self.records.remove(&key);
            }
        }
        if self.trusted.len() >= MAX_RECORDS {
            self.trusted
                .retain(|_, at| now.saturating_duration_since(*at) < TRUSTED_FOR);
        }
        if self.trusted.len() >= MAX_RECORDS {
            let mut by_age: Vec<_> = self.trusted.iter().map(|(k, at)| (*at, *k)).collect();
            by_age.sort_unstable_by_key(|(at, _)| *at);
            for (_, k) in by_age.into_iter().take(MAX_RECORDS / 10) {
                self.trusted.remove(&k);
            }
        }
    }

    fn trusted(&self, client: Client, user: User, now: Instant) -> bool {
        self.trusted
            .get(&(client, user))
            .is_some_and(|at| now.saturating_duration_since(*at) < TRUSTED_FOR)
    }
}

/// Why a try was refused before its password was looked at. The client is
/// answered as for a wrong password either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The client's address is locked out.
    AddressLocked,
    /// The user is locked out (and this address never logged in as them).
    UserLocked,
    /// [`FAILURE_LIMIT`] tries of the address or the user have failed or
    /// are still being checked.
    TooManyTries,
}

impl Refused {
    /// The reason the log gives.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refused::AddressLocked => "the address is locked out after too many failed logins",
            Refused::UserLocked => "the user is locked out after too many failed logins",
            Refused::TooManyTries => "too many failed logins at once",
        }
    }
}

/// What a failure locked out, newly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Locked {
    pub(crate) address: bool,
    pub(crate) user: bool,
}

/// Failed logins per client address and per user.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    state: Mutex<State>,
    keys: RandomState,
}

impl Throttle {
    /// The user key of a name (case does not matter).
    pub(crate) fn user(&self, name: &str) -> User {
        User(self.keys.hash_one(name.to_lowercase()))
    }

    /// Reserves a try of `user` from `ip`, counted as a failure until it is
    /// settled; refused if the address or the user is locked out, or if
    /// [`FAILURE_LIMIT`] of their tries have failed or are undecided.
    pub(crate) fn begin(
        &self,
        ip: IpAddr,
        user: User,
        now: Instant,
    ) -> Result<Ticket<'_>, Refused> {
        let client = Client::of(ip);
        let (ck, uk) = (Key::Client(client), Key::User(user));
        let mut state = lock(&self.state);
        state.make_room(now);
        let trusted = state.trusted(client, user, now);
        if let Some(r) = state.records.get_mut(&ck) {
            r.expire(now);
            if r.locked(now) {
                return Err(Refused::AddressLocked);
            }
            if r.tries.len() >= FAILURE_LIMIT {
                return Err(Refused::TooManyTries);
            }
        }
        if let Some(r) = state.records.get_mut(&uk) {
            r.expire(now);
            if !trusted && r.locked(now) {
                return Err(Refused::UserLocked);
            }
            if !trusted && r.tries.len() >= FAILURE_LIMIT {
                return Err(Refused::TooManyTries);
            }
        }
        let id = state.next_id;
        state.next_id += 1;
        for (key, pair) in [(ck, uk), (uk, ck)] {
            state.records.entry(key).or_default().tries.push_back(Try {
                at: now,
                id,
                pair,
                pending: true,
            });
        }
        Ok(Ticket {
            throttle: self,
            id,
            client,
            user,
            settled: false,
        })
    }

    fn succeeded(&self, t: &Ticket<'_>, now: Instant) {
        let (ck, uk) = (Key::Client(t.client), Key::User(t.user));
        let mut state = lock(&self.state);
        // The pair's own failures (its typos) go; nothing else does.
        for (key, pair) in [(ck, uk), (uk, ck)] {
            let idle = state.records.get_mut(&key).is_some_and(|r| {
                r.tries.retain(|t| t.pair != pair);
                r.idle(now)
            });
            if idle {
                state.records.remove(&key);
            }
        }
        state.trusted.insert((t.client, t.user), now);
    }

    fn failed(&self, t: &Ticket<'_>, now: Instant) -> Locked {
        let mut state = lock(&self.state);
        let mut locked = Locked::default();
        for key in [Key::Client(t.client), Key::User(t.user)] {
            let Some(r) = state.records.get_mut(&key) else {
                continue;
            };
            if let Some(tried) = r.tries.iter_mut().find(|x| x.id == t.id) {
                tried.pending = false;
                tried.at = now;
            }
            r.expire(now);
            if !r.locked(now) && r.failures() >= FAILURE_LIMIT {
                // The lockout stands for the failures; they start over after it.
                r.locked_until = Some(now + LOCKOUT);
                r.tries.clear();
                match key {
                    Key::Client(_) => locked.address = true,
                    Key::User(_) => locked.user = true,
                }
            }
        }
        locked
    }
}

/// A try in progress. Settle it with [`Ticket::succeeded`] or
/// [`Ticket::failed`]; one dropped unsettled (the session went away while
/// its password was checked) counts as failed.
#[derive(Debug)]
pub(crate) struct Ticket<'t> {
    throttle: &'t Throttle,
    id: u64,
    client: Client,
    user: User,
    settled: bool,
}

impl Ticket<'_> {
    pub(crate) fn succeeded(mut self, now: Instant) {
        self.settled = true;
        self.throttle.succeeded(&self, now);
    }

    /// Records the failure; what it locked out, newly.
    pub(crate) fn failed(mut self, now: Instant) -> Locked {
        self.settled = true;
        self.throttle.failed(&self, now)
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.throttle.failed(self, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// `n` failed logins of `user` from `from`, all settled at `now`.
    fn fail(t: &Throttle, from: &str, user: &str, n: usize, now: Instant) -> Locked {
        let mut locked = Locked::default();
        for _ in 0..n {
            let ticket = t.begin(ip(from), t.user(user), now).expect("admitted");
            let l = ticket.failed(now);
            locked.address |= l.address;
            locked.user |= l.user;
        }
        locked
    }

    #[test]
    fn the_tenth_failure_locks_the_address_out_for_a_while() {
        let t = Throttle::default();
        let now = Instant::now();
        // Failures as different users, so only the address reaches the limit.
        for i in 0..FAILURE_LIMIT - 1 {
            assert_eq!(
                fail(&t, "192.0.2.1", &format!("u{i}"), 1, now),
                Locked::default()
            );
        }
        let locked = fail(&t, "192.0.2.1", "last", 1, now);
        assert_eq!(
            locked,
            Locked {
                address: true,
                user: false
            }
        );
        let jane = t.user("jane");
        assert_eq!(
            t.begin(ip("192.0.2.1"), jane, now).err(),
            Some(Refused::AddressLocked)
        );
        assert!(
            t.begin(ip("192.0.2.2"), jane, now).is_ok(),
            "another address"
        );
        let later = now + LOCKOUT;
        t.begin(ip("192.0.2.1"), jane, later)
            .expect("the lockout is over")
            .succeeded(later);
    }

    #[test]
    fn the_tenth_failure_of_a_user_from_many_addresses_locks_the_user_out() {
        let t = Throttle::default();
        let now = Instant::now();
        // A login that worked before the attack: its address stays trusted.
        t.begin(ip("198.51.100.7"), t.user("Jane"), now)
            .unwrap()
            .succeeded(now);
        let mut locked = Locked::default();
        for i in 0..FAILURE_LIMIT {
            locked = fail(&t, &format!("192.0.2.{}", i + 1), "jane", 1, now);
        }
        assert_eq!(
            locked,
            Locked {
                address: false,
                user: true
            }
        );
        let jane = t.user("JANE");
        assert_eq!(
            t.begin(ip("192.0.2.200"), jane, now).err(),
            Some(Refused::UserLocked)
        );
        t.begin(ip("198.51.100.7"), jane, now)
            .expect("the owner's own address still gets in")
            .succeeded(now);
    }

    #[test]
    fn parallel_tries_cannot_pass_the_limit() {
        let t = Throttle::default();
        let now = Instant::now();
        let user = t.user("jane");
        let admitted: Vec<Ticket<'_>> = (0..200)
            .filter_map(|_| t.begin(ip("192.0.2.9"), user, now).ok())
            .collect();
        assert_eq!(admitted.len(), FAILURE_LIMIT, "undecided tries count");
        let mut locked = Locked::default();
        for ticket in admitted {
            let l = ticket.failed(now);
            locked.address |= l.address;
            locked.user |= l.user;
        }
        assert_eq!(
            locked,
            Locked {
                address: true,
                user: true
            }
        );
        assert_eq!(
            t.begin(ip("192.0.2.9"), user, now).err(),
            Some(Refused::AddressLocked)
        );
    }

    #[test]
    fn a_success_takes_back_only_its_own_failures() {
        let t = Throttle::default();
        let now = Instant::now();
        // Three typos of jane, and six failures as others, from one address.
        fail(&t, "192.0.2.5", "jane", 3, now);
        for i in 0..6 {
            fail(&t, "192.0.2.5", &format!("other{i}"), 1, now);
        }
        t.begin(ip("192.0.2.5"), t.user("jane"), now)
            .unwrap()
            .succeeded(now);
        // The six remain: three more failures lock the address, not four.
        assert_eq!(fail(&t, "192.0.2.5", "x1", 3, now), Locked::default());
        assert_eq!(
            fail(&t, "192.0.2.5", "x2", 1, now),
            Locked {
                address: true,
                user: false
            }
        );
    }

    #[test]
    fn a_success_keeps_the_users_failures_from_other_addresses() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..FAILURE_LIMIT - 1 {
            fail(&t, &format!("192.0.2.{}", i + 1), "jane", 1, now);
        }
        t.begin(ip("198.51.100.1"), t.user("jane"), now)
            .unwrap()
            .succeeded(now);
        let locked = fail(&t, "192.0.2.100", "jane", 1, now);
        assert!(locked.user, "nine failures from elsewhere were kept");
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let t = Throttle::default();
        let now = Instant::now();
        fail(&t, "192.0.2.7", "a", FAILURE_LIMIT - 1, now);
        let later = now + WINDOW;
        assert_eq!(fail(&t, "192.0.2.7", "b", 1, later), Locked::default());
    }

    #[test]
    fn a_dropped_ticket_counts_as_a_failure() {
        let t = Throttle::default();
        let now = Instant::now();
        fail(&t, "192.0.2.8", "a", FAILURE_LIMIT - 1, now);
        drop(t.begin(ip("192.0.2.8"), t.user("b"), now).unwrap());
        assert_eq!(
            t.begin(ip("192.0.2.8"), t.user("c"), Instant::now()).err(),
            Some(Refused::AddressLocked)
        );
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        assert_eq!(
            Client::of(ip("2001:db8:1:2:aaaa::1")),
            Client::of(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            Client::of(ip("2001:db8:1:2::1")),
            Client::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            Client::of(ip("::ffff:192.0.2.1")),
            Client::of(ip("192.0.2.1"))
        );
    }

    #[test]
    fn records_stay_bounded() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..(MAX_RECORDS as u32 + 50) {
            let from = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = t
                .begin(from, t.user(&i.to_string()), now)
                .map(|x| x.failed(now));
        }
        assert!(lock(&t.state).records.len() <= MAX_RECORDS);
    }
}
