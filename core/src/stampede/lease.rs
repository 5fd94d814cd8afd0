//! Cross-process leases: one process holds a short lock key in a remote
//! tier and loads; the others wait a bounded time or serve stale.

use crate::key::{KeyBuilder, Part};
use crate::namespace::Namespace;

/// The version of the lease key format (the `v1` in the key).
pub const LEASE_KEY_VERSION: u64 = 1;

/// The key of the lease (lock) that guards the load of `main_key` across
/// processes: `tiercache.lease|v1|<main key>`, a valid memcached key, in a
/// namespace no user key can use.
///
/// ```
/// use stratacache::stampede::lease_key;
///
/// let key = lease_key("grades|v1|#42");
/// assert!(key.starts_with("tiercache.lease|v1|grades"));
/// assert_ne!(key, lease_key("grades|v1|#43"));
/// ```
pub fn lease_key(main_key: &str) -> String {
    KeyBuilder::new(Namespace::internal("lease"), LEASE_KEY_VERSION).build(&[Part::Str(main_key)])
}

/// How a process uses a lease to load a cold key that other processes may be
/// loading at the same time.
///
/// The protocol, run by the host after the main key missed (or was stale) in
/// a remote tier, in a loop:
///
/// 1. `add(lease_key(key), random_token, ttl)` in that tier (memcached `add`,
///    Redis `SET NX PX`): it succeeds for exactly one process.
/// 2. Ask [`LeasePolicy::decide`] (or [`LeaseWait::decide`]) what to do:
///    - [`LeaseDecision::Load`]: load, write the value, then delete the lease
///      (best effort: it expires anyway).
///    - [`LeaseDecision::LoadWithoutLease`]: load and write the value; do not
///      touch the lease, which is not ours.
///    - [`LeaseDecision::ServeStale`]: return the stale value at hand;
///      another process is refreshing it.
///    - [`LeaseDecision::WaitAndRetry`]: sleep `after_ms`, re-read the main
///      key (it is a hit once the holder wrote it: done), else go to 1.
///
/// In-process [`SingleFlight`] comes first, so only one reader per process
/// runs this protocol for a key.
///
/// ```
/// use stratacache::stampede::{LeaseDecision, LeaseOutcome, LeasePolicy};
///
/// let policy = LeasePolicy { ttl_ms: 5_000, max_wait_ms: 300, poll_interval_ms: 100 };
/// assert_eq!(policy.decide(LeaseOutcome::Acquired, false, 0), LeaseDecision::Load);
/// assert_eq!(
///     policy.decide(LeaseOutcome::Held, false, 250),
///     LeaseDecision::WaitAndRetry { after_ms: 50 }
/// );
/// assert_eq!(policy.decide(LeaseOutcome::Held, true, 0), LeaseDecision::ServeStale);
/// assert_eq!(policy.decide(LeaseOutcome::Held, false, 300), LeaseDecision::LoadWithoutLease);
/// assert_eq!(policy.decide(LeaseOutcome::TierError, false, 0), LeaseDecision::LoadWithoutLease);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeasePolicy {
    /// Lifetime of the lease key. It bounds how long a crashed holder blocks
    /// the others, so it should be a few times the usual load time, not
    /// more. `0` is treated as 1 ms by [`ttl_secs`](LeasePolicy::ttl_secs)
    /// (a memcached TTL of 0 would mean "never expires").
    pub ttl_ms: u64,
    /// How long a reader without a stale value waits for the holder before
    /// it loads anyway. Bounds the latency a stampede guard can add to a page.
    pub max_wait_ms: u64,
    /// Pause between re-reads of the main key while waiting (each costs one
    /// remote get). `0` is treated as 1 ms.
    pub poll_interval_ms: u64,
}

impl Default for LeasePolicy {
    /// 10 s lease, at most 2 s of waiting, a re-read every 100 ms (at most 20
    /// extra gets per waiting process).
    fn default() -> Self {
        LeasePolicy {
            ttl_ms: 10_000,
            max_wait_ms: 2_000,
            poll_interval_ms: 100,
        }
    }
}

/// What the host's `add` of the lease key returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseOutcome {
    /// The key was added: this process holds the lease.
    Acquired,
    /// The key exists: another process holds the lease and is loading.
    Held,
    /// The tier failed (timeout, connection refused, no `add` support).
    TierError,
}

/// What to do next with a cold key; see [`LeasePolicy`] for the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseDecision {
    /// We hold the lease: load, store, then delete the lease.
    Load,
    /// Another process is loading and a stale value is at hand: serve it.
    ServeStale,
    /// Another process is loading: sleep this long, re-read the main key,
    /// and try the lease again if it still misses.
    WaitAndRetry {
        /// Milliseconds to sleep (at least 1).
        after_ms: u64,
    },
    /// Load without holding the lease: the tier could not coordinate, or we
    /// waited `max_wait_ms` in vain. Do not delete the lease afterwards.
    LoadWithoutLease,
}

impl LeasePolicy {
    /// The lease TTL in whole seconds for tiers that take seconds
    /// (memcached): rounded up, at least 1, so the lease never becomes
    /// permanent.
    ///
    /// ```
    /// use stratacache::stampede::LeasePolicy;
    ///
    /// let policy = LeasePolicy { ttl_ms: 2_500, ..LeasePolicy::default() };
    /// assert_eq!(policy.ttl_secs(), 3);
    /// assert_eq!(LeasePolicy { ttl_ms: 0, ..policy }.ttl_secs(), 1);
    /// ```
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_ms.div_ceil(1000).max(1)
    }

    /// Decides what to do after the host's `add` of the lease key returned
    /// `outcome`, given whether a stale value of the key is at hand and how
    /// long this reader has waited so far (0 on the first attempt).
    ///
    /// The reasoning, case by case:
    /// - **Acquired** → [`Load`](LeaseDecision::Load), stale or not: we are
    ///   the one process that refreshes the key.
    /// - **TierError** → [`LoadWithoutLease`](LeaseDecision::LoadWithoutLease):
    ///   a lease is an optimisation, never a reason to fail a page. Without a
    ///   working tier there is nothing to wait on, and in-process
    ///   single-flight still limits the load to one per process.
    /// - **Held**, stale value at hand → [`ServeStale`](LeaseDecision::ServeStale)
    ///   at once: the holder is refreshing, and a stale answer now beats a
    ///   fresh one later.
    /// - **Held**, nothing at hand, waited less than `max_wait_ms` →
    ///   [`WaitAndRetry`](LeaseDecision::WaitAndRetry) after
    ///   `poll_interval_ms`, cut so the last retry lands exactly at
    ///   `max_wait_ms`.
    /// - **Held**, waited `max_wait_ms` or more →
    ///   [`LoadWithoutLease`](LeaseDecision::LoadWithoutLease): the holder is
    ///   slow or dead (its lease outlives it until `ttl_ms`); waiting longer
    ///   would only add latency.
    pub fn decide(&self, outcome: LeaseOutcome, has_stale: bool, waited_ms: u64) -> LeaseDecision {
        match outcome {
            LeaseOutcome::Acquired => LeaseDecision::Load,
            LeaseOutcome::TierError => LeaseDecision::LoadWithoutLease,
            LeaseOutcome::Held if has_stale => LeaseDecision::ServeStale,
            LeaseOutcome::Held if waited_ms >= self.max_wait_ms => LeaseDecision::LoadWithoutLease,
            LeaseOutcome::Held => {
                let left = self.max_wait_ms - waited_ms;
                LeaseDecision::WaitAndRetry {
                    after_ms: self.poll_interval_ms.clamp(1, left),
                }
            }
        }
    }
}

/// One reader's attempt to get a lease, remembering when it started so the
/// host only passes `now`.
///
/// ```
/// use stratacache::stampede::{LeaseDecision, LeaseOutcome, LeasePolicy, LeaseWait};
///
/// let policy = LeasePolicy { ttl_ms: 5_000, max_wait_ms: 200, poll_interval_ms: 100 };
/// let mut wait = LeaseWait::new(policy, 1_000);
/// assert_eq!(wait.decide(LeaseOutcome::Held, false, 1_000), LeaseDecision::WaitAndRetry { after_ms: 100 });
/// assert_eq!(wait.decide(LeaseOutcome::Held, false, 1_100), LeaseDecision::WaitAndRetry { after_ms: 100 });
/// assert_eq!(wait.decide(LeaseOutcome::Held, false, 1_200), LeaseDecision::LoadWithoutLease);
/// assert_eq!(wait.attempts(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseWait {
    policy: LeasePolicy,
    started_ms: u64,
    attempts: u32,
}

impl LeaseWait {
    /// Starts waiting at `now_ms`.
    pub fn new(policy: LeasePolicy, now_ms: u64) -> Self {
        LeaseWait {
            policy,
            started_ms: now_ms,
            attempts: 0,
        }
    }

    /// [`LeasePolicy::decide`] with the time waited since [`new`](LeaseWait::new)
    /// (0 if the host clock went backwards).
    pub fn decide(&mut self, outcome: LeaseOutcome, has_stale: bool, now_ms: u64) -> LeaseDecision {
        self.attempts = self.attempts.saturating_add(1);
        self.policy
            .decide(outcome, has_stale, self.waited_ms(now_ms))
    }

    /// Milliseconds since the wait started (0 if the clock went backwards).
    pub fn waited_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.started_ms)
    }

    /// How many times [`decide`](LeaseWait::decide) was called.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The policy.
    pub fn policy(&self) -> &LeasePolicy {
        &self.policy
    }
}
