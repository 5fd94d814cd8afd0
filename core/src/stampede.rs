//! Stampede control: who loads a cold key, who waits, and when to refresh.
//!
//! A cache stampede (dog-piling) happens when many readers miss the same key
//! at once and all recompute it. This module holds the pure bookkeeping and
//! decisions that prevent it; the host owns all waiting and I/O.
//!
//! | piece | what it decides |
//! |---|---|
//! | [`SingleFlight`] | inside one process: the first reader of a cold key loads it, the others wait for its result |
//! | [`lease_key`], [`LeasePolicy`], [`LeaseWait`] | across processes: one process holds a short lock key in a remote tier and loads; the others wait a bounded time or serve stale |
//! | [`should_refresh_early`] | XFetch (Vattani et al., VLDB 2015): refresh a value shortly *before* it expires, with a probability that grows as expiry nears, so one reader refreshes it while the others still hit |
//! | [`Freshness`] | stale-while-revalidate: between the soft and the hard expiry a value is served while it is refreshed |
//! | [`jitter_ttl`] | spreads the expiries of entries written together, so they do not all expire in the same second |
//! | [`replica_keys`], [`pick_replica`] | a hot key written under R keys (landing on different memcached nodes) and read from one chosen at random |
//!
//! Nothing here reads a clock or draws a random number: every function takes
//! `now` in milliseconds and, where it needs chance, a random number from the
//! host. Random numbers are either an `f64` uniform in `[0, 1]` (Python's
//! `random.random()`, JS `Math.random()` and `rand`'s `gen::<f64>()` can be
//! passed as they are; see each function for the edges) or a `u64` uniform
//! over all values.
//!
//! Throughout, an expiry of `0` (or `None`) means "no such expiry", matching
//! the envelope's encoding.

use std::collections::VecDeque;
use std::hash::Hash;

use hashbrown::hash_map::Entry;
use hashbrown::HashMap;
use slab::Slab;

use crate::key::{KeyBuilder, Part};
use crate::namespace::Namespace;

// ---------------------------------------------------------------------------
// Single-flight
// ---------------------------------------------------------------------------

/// Proof that its holder leads (loads) one flight of one key.
///
/// Every token is a fresh number from a counter private to the
/// [`SingleFlight`] that issued it, so a token from an earlier flight of the
/// same key (one that was finished or abandoned) never matches the current
/// flight: [`SingleFlight::finish`] and [`SingleFlight::abandon`] reject it
/// with [`FlightError::StaleToken`]. Tokens are not secrets, only guards
/// against mix-ups; they mean nothing to another `SingleFlight`.
///
/// [`into_raw`](LeadToken::into_raw) and [`from_raw`](LeadToken::from_raw)
/// let a binding hand the token to the host as a plain integer. Raw values
/// start at 1 and grow by one per id issued, so they stay below 2^53 (a safe
/// JS number) for any realistic process lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeadToken(u64);

impl LeadToken {
    /// The token as a plain integer (never 0).
    pub fn into_raw(self) -> u64 {
        self.0
    }

    /// A token from [`into_raw`](LeadToken::into_raw)'s integer. A made-up
    /// number is harmless: it is rejected as stale unless it is the current
    /// token of a flight.
    pub fn from_raw(raw: u64) -> Self {
        LeadToken(raw)
    }
}

/// The ticket of a reader that waits for another reader's load.
///
/// The host keeps its waiting primitive (a condition variable slot, a
/// `threading.Event`, an `asyncio.Future`, a JS promise's resolver) under this
/// id; [`SingleFlight::finish`] and [`SingleFlight::abandon`] say which ids to
/// wake. Ids are unique within one [`SingleFlight`] (also against
/// [`LeadToken`]s) and increase in the order readers joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaitId(u64);

impl WaitId {
    /// The id as a plain integer (never 0).
    pub fn into_raw(self) -> u64 {
        self.0
    }

    /// An id from [`into_raw`](WaitId::into_raw)'s integer.
    pub fn from_raw(raw: u64) -> Self {
        WaitId(raw)
    }
}

/// The answer to [`SingleFlight::claim`].
#[must_use = "a Lead must be finished or abandoned, a Wait must be waited for or withdrawn"]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Claim {
    /// Nobody was loading the key: the caller loads it, then calls
    /// [`SingleFlight::finish`] (stored) or [`SingleFlight::abandon`]
    /// (loader failed). It must call one of them, also when it is cancelled,
    /// or the waiters wait until they give up.
    Lead(LeadToken),
    /// Another reader is loading the key: the caller waits until this id is
    /// released, then re-reads the key (or takes the error it was given).
    Wait(WaitId),
}

impl Claim {
    /// True for [`Claim::Lead`].
    pub fn is_lead(&self) -> bool {
        matches!(self, Claim::Lead(_))
    }
}

/// What [`SingleFlight::abandon`] does with the waiters of a failed load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AbandonPolicy {
    /// Release every waiter; the host hands each the leader's error (Go's
    /// `singleflight` behaviour). The default: when the backing store is down,
    /// 63 waiters fail fast instead of retrying one after another.
    #[default]
    ReleaseAll,
    /// Make the earliest waiter the new leader (it loads next); the others
    /// keep waiting for it. Suits transient loader errors.
    PromoteNext,
}

/// The waiters to wake after [`SingleFlight::abandon`].
#[must_use = "the released waiters and the new leader must be woken"]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Abandoned {
    /// Waiters to wake with the leader's error, in the order they joined
    /// (all of them under [`AbandonPolicy::ReleaseAll`], none under
    /// [`AbandonPolicy::PromoteNext`]).
    pub release: Vec<WaitId>,
    /// Under [`AbandonPolicy::PromoteNext`], the earliest waiter and its new
    /// token: the host wakes that waiter and tells it to load. If that
    /// waiter's task is gone (cancelled a moment ago), the host abandons the
    /// new token in turn. `None` if nobody was waiting.
    pub new_leader: Option<(WaitId, LeadToken)>,
}

/// The keys of [`SingleFlight::claim_many`], split by role, each list in the
/// order the keys were given.
#[must_use = "leads must be finished or abandoned, waits must be waited for or withdrawn"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimBatch<K> {
    /// Keys nobody was loading: the caller loads them (in one batch) and
    /// finishes or abandons each token.
    pub lead: Vec<(K, LeadToken)>,
    /// Keys another reader is loading: the caller waits for each id.
    pub wait: Vec<(K, WaitId)>,
}

/// Why a [`SingleFlight`] call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum FlightError {
    /// The token does not lead a current flight: its flight was already
    /// finished or abandoned (a second call, or a leader that was replaced),
    /// or another `SingleFlight` issued it. Nothing was changed.
    #[error("lead token {0:?} is stale: its flight was already finished or abandoned, or another SingleFlight issued it")]
    StaleToken(LeadToken),
}

/// Counters of a [`SingleFlight`] since it was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlightStats {
    /// Claims that found the key idle and became its leader.
    pub flights_started: u64,
    /// Claims that found the key loading and became waiters.
    pub waiters_joined: u64,
    /// Flights finished with a stored value.
    pub finished: u64,
    /// Calls of [`SingleFlight::abandon`] (failed loads), whatever the policy.
    pub abandoned: u64,
    /// Waiters made leader by [`AbandonPolicy::PromoteNext`].
    pub promoted: u64,
    /// Waiters that gave up through [`SingleFlight::withdraw`].
    pub withdrawn: u64,
    /// Stale tokens refused.
    pub stale_tokens: u64,
}

#[derive(Debug, Clone)]
struct Flight<K> {
    key: K,
    /// Raw value of the current leader's token.
    token: u64,
    /// Raw wait ids in join order, which is increasing order (ids only
    /// grow), so a binary search finds one.
    waiters: VecDeque<u64>,
}

/// In-process single-flight bookkeeping: for each key being loaded, who
/// loads it and who waits for it.
///
/// The first reader of a cold key [`claim`](SingleFlight::claim)s it and gets
/// a [`Claim::Lead`]; readers of the same key that come before it is done get
/// [`Claim::Wait`] ids. The leader then either
/// [`finish`](SingleFlight::finish)es (value stored: wake these waiters, they
/// re-read it) or [`abandon`](SingleFlight::abandon)s (loader raised: release
/// the waiters with the error, or promote one to load next). A waiter that
/// gives up calls [`withdraw`](SingleFlight::withdraw).
///
/// The structure never waits and never locks. The host keeps it behind its
/// own lock (a `Mutex` in a threaded host; nothing in a single-threaded JS
/// isolate) together with its waiting primitives, keyed by [`WaitId`]. The
/// host should store the loaded value (e.g. in its local tier) *before*
/// calling `finish`, so that a released waiter's re-read hits.
///
/// ```
/// use stratacache::stampede::{AbandonPolicy, Claim, SingleFlight};
///
/// let mut flights = SingleFlight::new();
/// let Claim::Lead(token) = flights.claim("course:1") else { unreachable!() };
/// let Claim::Wait(w1) = flights.claim("course:1") else { unreachable!() };
/// let Claim::Wait(w2) = flights.claim("course:1") else { unreachable!() };
///
/// // The leader stored the value: wake w1 and w2, they re-read the key.
/// assert_eq!(flights.finish(token), Ok(vec![w1, w2]));
/// // A stale token (a second finish) is refused.
/// assert!(flights.finish(token).is_err());
/// // The key is idle again: the next reader leads a new flight.
/// assert!(flights.claim("course:1").is_lead());
/// assert_eq!(flights.stats().flights_started, 2);
/// ```
#[derive(Debug)]
pub struct SingleFlight<K> {
    by_key: HashMap<K, usize>,
    flights: Slab<Flight<K>>,
    by_token: HashMap<u64, usize>,
    by_waiter: HashMap<u64, usize>,
    next_id: u64,
    stats: FlightStats,
}

impl<K: Hash + Eq + Clone> Default for SingleFlight<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Clone> SingleFlight<K> {
    /// An empty `SingleFlight`.
    pub fn new() -> Self {
        SingleFlight {
            by_key: HashMap::new(),
            flights: Slab::new(),
            by_token: HashMap::new(),
            by_waiter: HashMap::new(),
            next_id: 1,
            stats: FlightStats::default(),
        }
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        // 2^64 ids cannot be issued in practice; skip 0 should it ever wrap.
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// Claims `key`: [`Claim::Lead`] if nobody is loading it, otherwise
    /// [`Claim::Wait`] behind the current leader.
    ///
    /// Call it after a miss, under the same host lock as the re-check of the
    /// cache, so that a reader arriving just after `finish` sees the stored
    /// value instead of starting a second flight.
    ///
    /// ```
    /// use stratacache::stampede::{Claim, SingleFlight};
    ///
    /// let mut flights = SingleFlight::new();
    /// assert!(matches!(flights.claim(7u32), Claim::Lead(_)));
    /// assert!(matches!(flights.claim(7u32), Claim::Wait(_)));
    /// assert!(matches!(flights.claim(8u32), Claim::Lead(_)));
    /// assert_eq!(flights.waiters(&7), 1);
    /// ```
    pub fn claim(&mut self, key: K) -> Claim {
        let id = self.fresh_id();
        match self.by_key.entry(key) {
            Entry::Occupied(entry) => {
                let slot = *entry.get();
                self.flights[slot].waiters.push_back(id);
                self.by_waiter.insert(id, slot);
                self.stats.waiters_joined += 1;
                Claim::Wait(WaitId(id))
            }
            Entry::Vacant(entry) => {
                let slot = self.flights.insert(Flight {
                    key: entry.key().clone(),
                    token: id,
                    waiters: VecDeque::new(),
                });
                entry.insert(slot);
                self.by_token.insert(id, slot);
                self.stats.flights_started += 1;
                Claim::Lead(LeadToken(id))
            }
        }
    }

    /// Claims a batch of keys at once (stratacache loads cold keys in batches).
    ///
    /// Each key is claimed as by [`claim`](SingleFlight::claim). A key given
    /// more than once counts once: its later copies are skipped, so a batch
    /// never waits for itself.
    ///
    /// ```
    /// use stratacache::stampede::{Claim, SingleFlight};
    ///
    /// let mut flights = SingleFlight::new();
    /// let Claim::Lead(_) = flights.claim("b") else { unreachable!() };
    ///
    /// let batch = flights.claim_many(["a", "b", "c", "a"]);
    /// let leads: Vec<_> = batch.lead.iter().map(|(k, _)| *k).collect();
    /// let waits: Vec<_> = batch.wait.iter().map(|(k, _)| *k).collect();
    /// assert_eq!(leads, ["a", "c"]);
    /// assert_eq!(waits, ["b"]);
    /// ```
    pub fn claim_many<I>(&mut self, keys: I) -> ClaimBatch<K>
    where
        I: IntoIterator<Item = K>,
    {
        // Ids issued in this batch are >= first: a flight led, or a wait
        // joined, with such an id was claimed by this very batch.
        let first = self.next_id;
        let mut batch = ClaimBatch {
            lead: Vec::new(),
            wait: Vec::new(),
        };
        for key in keys {
            if let Some(&slot) = self.by_key.get(&key) {
                let flight = &self.flights[slot];
                let led_here = flight.token >= first;
                let waits_here = flight.waiters.back().is_some_and(|&w| w >= first);
                if led_here || waits_here {
                    continue;
                }
            }
            match self.claim(key.clone()) {
                Claim::Lead(token) => batch.lead.push((key, token)),
                Claim::Wait(wait) => batch.wait.push((key, wait)),
            }
        }
        batch
    }

    /// Ends the flight of `token` after its leader stored the value, and
    /// returns the waiters to wake (in join order); they re-read the key.
    ///
    /// Fails with [`FlightError::StaleToken`], changing nothing, if `token`
    /// does not lead a current flight.
    ///
    /// ```
    /// use stratacache::stampede::{Claim, SingleFlight};
    ///
    /// let mut flights = SingleFlight::new();
    /// let Claim::Lead(token) = flights.claim("k") else { unreachable!() };
    /// assert_eq!(flights.finish(token), Ok(vec![]));
    /// assert!(!flights.is_in_flight(&"k"));
    /// ```
    pub fn finish(&mut self, token: LeadToken) -> Result<Vec<WaitId>, FlightError> {
        let slot = self.take_token(token)?;
        self.stats.finished += 1;
        Ok(self.end_flight(slot))
    }

    /// Ends the current leadership of `token` after its loader failed.
    ///
    /// Under [`AbandonPolicy::ReleaseAll`] the flight ends and every waiter
    /// is returned in [`Abandoned::release`], to be woken with the error.
    /// Under [`AbandonPolicy::PromoteNext`] the earliest waiter becomes the
    /// leader with a new token ([`Abandoned::new_leader`]) and the others keep
    /// waiting; with no waiters the flight simply ends. The old token is
    /// stale from now on either way.
    ///
    /// Also call this when a leader is cancelled before it could load.
    ///
    /// ```
    /// use stratacache::stampede::{AbandonPolicy, Claim, SingleFlight};
    ///
    /// let mut flights = SingleFlight::new();
    /// let Claim::Lead(first) = flights.claim("k") else { unreachable!() };
    /// let Claim::Wait(w1) = flights.claim("k") else { unreachable!() };
    /// let Claim::Wait(w2) = flights.claim("k") else { unreachable!() };
    ///
    /// // The loader raised: let w1 try next.
    /// let out = flights.abandon(first, AbandonPolicy::PromoteNext).unwrap();
    /// assert!(out.release.is_empty());
    /// let (promoted, second) = out.new_leader.unwrap();
    /// assert_eq!(promoted, w1);
    ///
    /// // It failed too: give up and release the rest with the error.
    /// let out = flights.abandon(second, AbandonPolicy::ReleaseAll).unwrap();
    /// assert_eq!(out.release, vec![w2]);
    /// assert_eq!(out.new_leader, None);
    /// ```
    pub fn abandon(
        &mut self,
        token: LeadToken,
        policy: AbandonPolicy,
    ) -> Result<Abandoned, FlightError> {
        let slot = self.take_token(token)?;
        self.stats.abandoned += 1;
        if policy == AbandonPolicy::PromoteNext {
            if let Some(next) = self.flights[slot].waiters.pop_front() {
                self.by_waiter.remove(&next);
                let id = self.fresh_id();
                self.flights[slot].token = id;
                self.by_token.insert(id, slot);
                self.stats.promoted += 1;
                return Ok(Abandoned {
                    release: Vec::new(),
                    new_leader: Some((WaitId(next), LeadToken(id))),
                });
            }
        }
        Ok(Abandoned {
            release: self.end_flight(slot),
            new_leader: None,
        })
    }

    /// Takes a waiter out of its flight (it timed out or its task was
    /// cancelled); it will not be returned by `finish` or `abandon`.
    ///
    /// Returns false if `wait` is not waiting: it was already released or
    /// promoted (the host should look at what it was given), withdrawn, or
    /// never issued. Withdrawing never ends a flight: the leader still loads.
    ///
    /// ```
    /// use stratacache::stampede::{Claim, SingleFlight};
    ///
    /// let mut flights = SingleFlight::new();
    /// let Claim::Lead(token) = flights.claim("k") else { unreachable!() };
    /// let Claim::Wait(w) = flights.claim("k") else { unreachable!() };
    /// assert!(flights.withdraw(w));
    /// assert!(!flights.withdraw(w));
    /// assert_eq!(flights.finish(token), Ok(vec![]));
    /// ```
    pub fn withdraw(&mut self, wait: WaitId) -> bool {
        match self.by_waiter.remove(&wait.0) {
            Some(slot) => {
                let waiters = &mut self.flights[slot].waiters;
                if let Ok(at) = waiters.binary_search(&wait.0) {
                    waiters.remove(at);
                }
                self.stats.withdrawn += 1;
                true
            }
            None => false,
        }
    }

    /// True if `token` leads a current flight.
    pub fn is_current(&self, token: LeadToken) -> bool {
        self.by_token.contains_key(&token.0)
    }

    /// The key `token` leads, if it is current.
    pub fn key_of(&self, token: LeadToken) -> Option<&K> {
        let slot = *self.by_token.get(&token.0)?;
        Some(&self.flights[slot].key)
    }

    /// The key `wait` waits for, if it is still waiting.
    pub fn key_of_waiter(&self, wait: WaitId) -> Option<&K> {
        let slot = *self.by_waiter.get(&wait.0)?;
        Some(&self.flights[slot].key)
    }

    /// True if somebody is loading `key`.
    pub fn is_in_flight(&self, key: &K) -> bool {
        self.by_key.contains_key(key)
    }

    /// How many readers wait for `key` (0 if it is not in flight).
    pub fn waiters(&self, key: &K) -> usize {
        self.by_key
            .get(key)
            .map_or(0, |&slot| self.flights[slot].waiters.len())
    }

    /// How many keys are in flight.
    pub fn len(&self) -> usize {
        self.flights.len()
    }

    /// True if no key is in flight.
    pub fn is_empty(&self) -> bool {
        self.flights.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> FlightStats {
        self.stats
    }

    fn take_token(&mut self, token: LeadToken) -> Result<usize, FlightError> {
        match self.by_token.remove(&token.0) {
            Some(slot) => Ok(slot),
            None => {
                self.stats.stale_tokens += 1;
                Err(FlightError::StaleToken(token))
            }
        }
    }

    /// Removes the flight in `slot` (whose token is already unregistered)
    /// and returns its waiters.
    fn end_flight(&mut self, slot: usize) -> Vec<WaitId> {
        let flight = self.flights.remove(slot);
        self.by_key.remove(&flight.key);
        flight
            .waiters
            .into_iter()
            .map(|w| {
                self.by_waiter.remove(&w);
                WaitId(w)
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Cross-process lease
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// XFetch early refresh
// ---------------------------------------------------------------------------

/// The β of XFetch that the paper finds optimal; larger values refresh
/// earlier.
pub const DEFAULT_BETA: f64 = 1.0;

/// The smallest random number used: 0 (which JS `Math.random()` and Python's
/// `random.random()` can return) is replaced by it, so `ln` stays finite.
const MIN_RANDOM: f64 = f64::MIN_POSITIVE;

/// XFetch (Vattani, Chierichetti, Lowenstein, "Optimal Probabilistic Cache
/// Stampede Prevention", VLDB 2015): true if this reader should recompute the
/// value now, before it expires.
///
/// Refreshes when `now - recompute_cost * beta * ln(random) >= expiry`. The
/// chance of that is `exp(-(expiry - now) / (recompute_cost * beta))`
/// ([`early_refresh_probability`]): negligible long before expiry, growing
/// as expiry nears, so usually one reader refreshes the value shortly before
/// it expires while every other reader still hits.
///
/// - `expiry_ms`: when the value expires (use the soft expiry if there is
///   one). `0` means it never expires: false.
/// - At or after expiry: true.
/// - `recompute_cost_ms` (Δ, the time the last load took; stored in the
///   envelope): 0 means never early.
/// - `beta`: 1.0 ([`DEFAULT_BETA`]) is the paper's choice; above 1 favours
///   earlier refreshes. `beta <= 0`, NaN or infinite: never early.
/// - `random`: uniform in (0, 1]. `0` is read as the smallest positive
///   `f64` (so `[0, 1)` generators can be passed as they are); values above
///   1, negative values and NaN are read as 1, which never refreshes early.
///
/// ```
/// use stratacache::stampede::should_refresh_early;
///
/// // Expires at 10_000; recomputing takes 100 ms.
/// assert!(!should_refresh_early(5_000, 10_000, 100, 1.0, 0.5)); // far from expiry
/// assert!(should_refresh_early(9_990, 10_000, 100, 1.0, 0.5)); // 10 ms left, ln(0.5) * 100 = -69 ms
/// assert!(should_refresh_early(10_000, 10_000, 100, 1.0, 1.0)); // expired
/// assert!(!should_refresh_early(9_999, 10_000, 0, 1.0, 0.01)); // no cost known
/// ```
pub fn should_refresh_early(
    now_ms: u64,
    expiry_ms: u64,
    recompute_cost_ms: u64,
    beta: f64,
    random: f64,
) -> bool {
    if expiry_ms == 0 {
        return false;
    }
    if now_ms >= expiry_ms {
        return true;
    }
    if recompute_cost_ms == 0 || !beta.is_finite() || beta <= 0.0 {
        return false;
    }
    // NaN is not in the range either.
    let random = if !(0.0..=1.0).contains(&random) {
        1.0
    } else {
        random.max(MIN_RANDOM)
    };
    let remaining = (expiry_ms - now_ms) as f64;
    let head_start = recompute_cost_ms as f64 * beta * -random.ln();
    head_start >= remaining
}

/// The probability that [`should_refresh_early`] returns true for a uniform
/// random number: `exp(-(expiry - now) / (recompute_cost * beta))`, 1 at or
/// after expiry, 0 where `should_refresh_early` is never early. Useful for
/// dashboards and for choosing `beta`.
///
/// ```
/// use stratacache::stampede::early_refresh_probability;
///
/// let p = early_refresh_probability(9_900, 10_000, 100, 1.0);
/// assert!((p - (-1.0f64).exp()).abs() < 1e-12);
/// assert_eq!(early_refresh_probability(10_000, 10_000, 100, 1.0), 1.0);
/// assert_eq!(early_refresh_probability(9_900, 10_000, 0, 1.0), 0.0);
/// ```
pub fn early_refresh_probability(
    now_ms: u64,
    expiry_ms: u64,
    recompute_cost_ms: u64,
    beta: f64,
) -> f64 {
    if expiry_ms == 0 {
        return 0.0;
    }
    if now_ms >= expiry_ms {
        return 1.0;
    }
    if recompute_cost_ms == 0 || !beta.is_finite() || beta <= 0.0 {
        return 0.0;
    }
    let remaining = (expiry_ms - now_ms) as f64;
    (-remaining / (recompute_cost_ms as f64 * beta)).exp()
}

// ---------------------------------------------------------------------------
// Freshness (stale-while-revalidate)
// ---------------------------------------------------------------------------

/// How usable a stored value is at a given time, from its soft and hard
/// expiry.
///
/// - before the soft expiry: [`Fresh`](Freshness::Fresh), serve it;
/// - from the soft expiry until the hard expiry:
///   [`Stale`](Freshness::Stale), serve it *and* refresh it in the
///   background (stale-while-revalidate);
/// - from the hard expiry on: [`Expired`](Freshness::Expired), a miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Freshness {
    /// Before the soft expiry.
    Fresh,
    /// Past the soft expiry, before the hard expiry.
    Stale,
    /// At or past the hard expiry.
    Expired,
}

impl Freshness {
    /// The freshness at `now_ms` of a value with these expiries
    /// (milliseconds, same clock as `now_ms`).
    ///
    /// `None` or `Some(0)` means "no such expiry": without a soft expiry a
    /// value is never stale, only fresh or expired; without a hard expiry a
    /// value past its soft expiry stays stale (servable) until it is
    /// refreshed. Expiry instants are exclusive: at `now == expiry` the value
    /// is already past it. A soft expiry after the hard one is irrelevant:
    /// the hard expiry wins.
    ///
    /// ```
    /// use stratacache::stampede::Freshness;
    ///
    /// let (soft, hard) = (Some(1_000), Some(2_000));
    /// assert_eq!(Freshness::at(999, soft, hard), Freshness::Fresh);
    /// assert_eq!(Freshness::at(1_000, soft, hard), Freshness::Stale);
    /// assert_eq!(Freshness::at(2_000, soft, hard), Freshness::Expired);
    /// assert_eq!(Freshness::at(u64::MAX, None, Some(0)), Freshness::Fresh);
    /// assert_eq!(Freshness::at(5_000, soft, None), Freshness::Stale);
    /// ```
    pub fn at(now_ms: u64, soft_expiry_ms: Option<u64>, hard_expiry_ms: Option<u64>) -> Freshness {
        let passed = |expiry: Option<u64>| matches!(expiry, Some(t) if t != 0 && now_ms >= t);
        if passed(hard_expiry_ms) {
            Freshness::Expired
        } else if passed(soft_expiry_ms) {
            Freshness::Stale
        } else {
            Freshness::Fresh
        }
    }

    /// True if the value may be served: [`Fresh`](Freshness::Fresh) or
    /// [`Stale`](Freshness::Stale).
    pub fn is_servable(self) -> bool {
        self != Freshness::Expired
    }

    /// True if the value should be reloaded: [`Stale`](Freshness::Stale)
    /// (in the background) or [`Expired`](Freshness::Expired).
    pub fn needs_refresh(self) -> bool {
        self != Freshness::Fresh
    }
}

// ---------------------------------------------------------------------------
// TTL jitter
// ---------------------------------------------------------------------------

/// Spreads a TTL by up to ±`fraction` of itself, so entries written together
/// do not all expire together (and stampede together).
///
/// `random` uniform in `[0, 1]` maps linearly onto
/// `[ttl * (1 - fraction), ttl * (1 + fraction)]`; 0.5 leaves the TTL
/// unchanged.
///
/// - `ttl_ms == 0` (no expiry) stays 0; a positive TTL never becomes 0 (at
///   least 1) and never overflows (at most `u64::MAX`).
/// - `fraction` is clamped to `[0, 1]`; NaN means no jitter.
/// - `random` is clamped to `[0, 1]`; NaN means 0.5 (no jitter).
///
/// ```
/// use stratacache::stampede::jitter_ttl;
///
/// assert_eq!(jitter_ttl(60_000, 0.1, 0.0), 54_000);
/// assert_eq!(jitter_ttl(60_000, 0.1, 0.5), 60_000);
/// assert_eq!(jitter_ttl(60_000, 0.1, 1.0), 66_000);
/// assert_eq!(jitter_ttl(0, 0.1, 0.0), 0);
/// assert_eq!(jitter_ttl(1, 1.0, 0.0), 1);
/// ```
pub fn jitter_ttl(ttl_ms: u64, fraction: f64, random: f64) -> u64 {
    if ttl_ms == 0 {
        return 0;
    }
    let fraction = if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    let random = if random.is_nan() {
        0.5
    } else {
        random.clamp(0.0, 1.0)
    };
    // |offset| <= ttl_ms <= u64::MAX, which fits an i128 (a float-to-int
    // `as` cast saturates); adding it to ttl_ms keeps the result exact when
    // there is no jitter.
    let offset = (ttl_ms as f64 * fraction * (2.0 * random - 1.0)).round() as i128;
    let jittered = ttl_ms as i128 + offset;
    jittered.clamp(1, u64::MAX as i128) as u64
}

// ---------------------------------------------------------------------------
// Hot-key replicas
// ---------------------------------------------------------------------------

/// The version of the replica key format (the `v1` in the key).
pub const REPLICA_KEY_VERSION: u64 = 1;

/// The key of replica `index` of `main_key`: replica 0 is `main_key` itself,
/// the others are `tiercache.replica|v1|<main key>|#<index>`, keys that hash
/// to different memcached nodes.
///
/// ```
/// use stratacache::stampede::replica_key;
///
/// assert_eq!(replica_key("hot", 0), "hot");
/// assert!(replica_key("hot", 2).starts_with("tiercache.replica|v1|hot|"));
/// assert_ne!(replica_key("hot", 2), replica_key("hot", 3));
/// ```
pub fn replica_key(main_key: &str, index: u8) -> String {
    if index == 0 {
        return main_key.to_owned();
    }
    KeyBuilder::new(Namespace::internal("replica"), REPLICA_KEY_VERSION)
        .build(&[Part::Str(main_key), Part::Int(i128::from(index))])
}

/// All `replicas` keys of `main_key`, replica 0 (the main key) first. Writes
/// (and deletes) of a hot key go to all of them. `replicas` counts the main
/// key; 0 is read as 1 (no replicas).
///
/// ```
/// use stratacache::stampede::{replica_key, replica_keys};
///
/// let keys = replica_keys("hot", 3);
/// assert_eq!(keys.len(), 3);
/// assert_eq!(keys[0], "hot");
/// assert_eq!(keys[1], replica_key("hot", 1));
/// assert_eq!(keys[2], replica_key("hot", 2));
/// assert_eq!(replica_keys("hot", 0), ["hot"]);
/// ```
pub fn replica_keys(main_key: &str, replicas: u8) -> Vec<String> {
    (0..replicas.max(1))
        .map(|i| replica_key(main_key, i))
        .collect()
}

/// The replica key a read of the hot key `main_key` should use, chosen by the
/// host's `random` (uniform over all `u64` values; its high bits pick the
/// replica). `replicas` is read as by [`replica_keys`].
///
/// ```
/// use stratacache::stampede::{pick_replica, replica_keys};
///
/// let keys = replica_keys("hot", 4);
/// assert_eq!(pick_replica("hot", 4, 0), keys[0]);
/// assert_eq!(pick_replica("hot", 4, u64::MAX), keys[3]);
/// assert!(keys.contains(&pick_replica("hot", 4, 0x9E37_79B9_7F4A_7C15)));
/// ```
pub fn pick_replica(main_key: &str, replicas: u8, random: u64) -> String {
    let n = u128::from(replicas.max(1));
    // Multiply-shift: maps the u64 range onto 0..n evenly, using the high bits.
    let index = ((u128::from(random) * n) >> 64) as u8;
    replica_key(main_key, index)
}

#[cfg(test)]
mod tests {
    use super::*;

    // --- single-flight -----------------------------------------------------

    fn lead<K: Hash + Eq + Clone>(flights: &mut SingleFlight<K>, key: K) -> LeadToken {
        match flights.claim(key) {
            Claim::Lead(token) => token,
            other => panic!("expected a lead, got {other:?}"),
        }
    }

    fn wait<K: Hash + Eq + Clone>(flights: &mut SingleFlight<K>, key: K) -> WaitId {
        match flights.claim(key) {
            Claim::Wait(id) => id,
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    #[test]
    fn first_claim_leads_later_claims_wait() {
        let mut f = SingleFlight::new();
        let t = lead(&mut f, "a");
        let w1 = wait(&mut f, "a");
        let w2 = wait(&mut f, "a");
        let u = lead(&mut f, "b");
        assert_ne!(t, u);
        assert!(w1 < w2);
        assert_eq!(f.len(), 2);
        assert_eq!(f.waiters(&"a"), 2);
        assert_eq!(f.waiters(&"b"), 0);
        assert_eq!(f.waiters(&"zzz"), 0);
        assert_eq!(f.key_of(t), Some(&"a"));
        assert_eq!(f.key_of_waiter(w2), Some(&"a"));
        assert_eq!(f.finish(t), Ok(vec![w1, w2]));
        assert_eq!(f.key_of_waiter(w2), None);
        assert_eq!(f.finish(u), Ok(vec![]));
        assert!(f.is_empty());
        let s = f.stats();
        assert_eq!((s.flights_started, s.waiters_joined, s.finished), (2, 2, 2));
    }

    #[test]
    fn stale_tokens_are_refused_and_change_nothing() {
        let mut f = SingleFlight::new();
        let old = lead(&mut f, "k");
        assert_eq!(f.finish(old), Ok(vec![]));
        let new = lead(&mut f, "k");
        let w = wait(&mut f, "k");
        assert_eq!(f.finish(old), Err(FlightError::StaleToken(old)));
        assert_eq!(
            f.abandon(old, AbandonPolicy::ReleaseAll),
            Err(FlightError::StaleToken(old))
        );
        assert!(!f.is_current(old));
        assert!(f.is_current(new));
        assert_eq!(f.key_of(old), None);
        assert_eq!(f.waiters(&"k"), 1);
        // Made-up tokens, including 0 and a wait id, are refused too.
        for raw in [0, u64::MAX, w.into_raw()] {
            assert!(f.finish(LeadToken::from_raw(raw)).is_err());
        }
        assert_eq!(f.stats().stale_tokens, 5);
        assert_eq!(f.finish(new), Ok(vec![w]));
        assert!(FlightError::StaleToken(old).to_string().contains("stale"));
    }

    #[test]
    fn raw_ids_round_trip_and_are_never_zero() {
        let mut f = SingleFlight::new();
        let t = lead(&mut f, 1u8);
        let w = wait(&mut f, 1u8);
        assert_ne!(t.into_raw(), 0);
        assert_ne!(w.into_raw(), 0);
        assert_ne!(t.into_raw(), w.into_raw());
        assert_eq!(WaitId::from_raw(w.into_raw()), w);
        assert_eq!(f.finish(LeadToken::from_raw(t.into_raw())), Ok(vec![w]));
    }

    #[test]
    fn abandon_release_all_releases_every_waiter() {
        let mut f = SingleFlight::new();
        let t = lead(&mut f, "k");
        let ws: Vec<_> = (0..3).map(|_| wait(&mut f, "k")).collect();
        let out = f.abandon(t, AbandonPolicy::ReleaseAll).unwrap();
        assert_eq!(out.release, ws);
        assert_eq!(out.new_leader, None);
        assert!(!f.is_in_flight(&"k"));
        assert!(!f.withdraw(ws[0]));
        assert_eq!(f.stats().abandoned, 1);
        assert_eq!(AbandonPolicy::default(), AbandonPolicy::ReleaseAll);
    }

    #[test]
    fn abandon_promote_next_hands_the_flight_to_the_earliest_waiter() {
        let mut f = SingleFlight::new();
        let t1 = lead(&mut f, "k");
        let w1 = wait(&mut f, "k");
        let w2 = wait(&mut f, "k");
        let out = f.abandon(t1, AbandonPolicy::PromoteNext).unwrap();
        assert!(out.release.is_empty());
        let (promoted, t2) = out.new_leader.unwrap();
        assert_eq!(promoted, w1);
        assert!(f.is_current(t2) && !f.is_current(t1));
        assert!(!f.withdraw(w1), "a promoted waiter is no longer waiting");
        assert_eq!(f.waiters(&"k"), 1);
        // A new reader still waits (no second leader).
        let w3 = wait(&mut f, "k");
        assert_eq!(f.finish(t1), Err(FlightError::StaleToken(t1)));
        assert_eq!(f.finish(t2), Ok(vec![w2, w3]));
        assert_eq!(f.stats().promoted, 1);
    }

    #[test]
    fn abandon_promote_next_without_waiters_ends_the_flight() {
        let mut f = SingleFlight::new();
        let t = lead(&mut f, "k");
        let w = wait(&mut f, "k");
        assert!(f.withdraw(w));
        assert_eq!(
            f.abandon(t, AbandonPolicy::PromoteNext),
            Ok(Abandoned::default())
        );
        assert!(f.is_empty());
        assert!(f.claim("k").is_lead());
    }

    #[test]
    fn withdraw_only_removes_that_waiter() {
        let mut f = SingleFlight::new();
        let t = lead(&mut f, "k");
        let w1 = wait(&mut f, "k");
        let w2 = wait(&mut f, "k");
        assert!(f.withdraw(w1));
        assert!(!f.withdraw(w1));
        assert!(!f.withdraw(WaitId::from_raw(999)));
        assert!(f.is_in_flight(&"k"), "the leader still loads");
        assert_eq!(f.finish(t), Ok(vec![w2]));
        assert_eq!(f.stats().withdrawn, 1);
    }

    #[test]
    fn claim_many_splits_and_deduplicates() {
        let mut f = SingleFlight::new();
        let tb = lead(&mut f, "b".to_string());
        let keys = ["a", "b", "a", "c", "b", "c"].map(String::from);
        let batch = f.claim_many(keys);
        let leads: Vec<&str> = batch.lead.iter().map(|(k, _)| k.as_str()).collect();
        let waits: Vec<&str> = batch.wait.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(leads, ["a", "c"]);
        assert_eq!(waits, ["b"]);
        assert_eq!(f.waiters(&"b".to_string()), 1);
        assert_eq!(f.waiters(&"a".to_string()), 0);
        // A second batch waits for everything the first one leads.
        let again = f.claim_many(["a", "c", "d"].map(String::from));
        assert_eq!(again.lead.len(), 1);
        assert_eq!(again.wait.len(), 2);
        assert_eq!(f.finish(tb).unwrap(), vec![batch.wait[0].1]);
        let empty = f.claim_many(Vec::<String>::new());
        assert!(empty.lead.is_empty() && empty.wait.is_empty());
    }

    // --- lease ---------------------------------------------------------------

    #[test]
    fn lease_key_is_internal_and_valid() {
        let key = lease_key("course_blocks|v3|abc");
        assert!(key.starts_with("tiercache.lease|v1|"));
        assert_ne!(lease_key("a"), lease_key("b"));
        assert!(crate::key::is_valid_memcached_key(&key));
        let long = lease_key(&"x".repeat(1_000));
        assert!(crate::key::is_valid_memcached_key(&long));
        assert!(long.len() <= crate::key::DEFAULT_MAX_KEY_LEN);
    }

    #[test]
    fn lease_decisions() {
        let p = LeasePolicy {
            ttl_ms: 1_000,
            max_wait_ms: 250,
            poll_interval_ms: 100,
        };
        use LeaseDecision::*;
        use LeaseOutcome::*;
        for stale in [false, true] {
            for waited in [0, 100, 250, 10_000] {
                assert_eq!(p.decide(Acquired, stale, waited), Load);
                assert_eq!(p.decide(TierError, stale, waited), LoadWithoutLease);
                if stale {
                    assert_eq!(p.decide(Held, true, waited), ServeStale);
                }
            }
        }
        assert_eq!(p.decide(Held, false, 0), WaitAndRetry { after_ms: 100 });
        assert_eq!(p.decide(Held, false, 200), WaitAndRetry { after_ms: 50 });
        assert_eq!(p.decide(Held, false, 249), WaitAndRetry { after_ms: 1 });
        assert_eq!(p.decide(Held, false, 250), LoadWithoutLease);
        assert_eq!(p.decide(Held, false, u64::MAX), LoadWithoutLease);
    }

    #[test]
    fn lease_edge_policies() {
        use LeaseDecision::*;
        use LeaseOutcome::*;
        let no_wait = LeasePolicy {
            ttl_ms: 0,
            max_wait_ms: 0,
            poll_interval_ms: 0,
        };
        assert_eq!(no_wait.decide(Held, false, 0), LoadWithoutLease);
        assert_eq!(no_wait.ttl_secs(), 1);
        let zero_poll = LeasePolicy {
            poll_interval_ms: 0,
            ..LeasePolicy::default()
        };
        assert_eq!(
            zero_poll.decide(Held, false, 0),
            WaitAndRetry { after_ms: 1 }
        );
        let d = LeasePolicy::default();
        assert_eq!(d.ttl_secs(), 10);
        assert!(d.max_wait_ms < d.ttl_ms && d.poll_interval_ms < d.max_wait_ms);
        assert_eq!(
            LeasePolicy {
                ttl_ms: u64::MAX,
                ..d
            }
            .ttl_secs(),
            u64::MAX / 1000 + 1
        );
    }

    #[test]
    fn lease_wait_tracks_time_and_attempts() {
        let p = LeasePolicy {
            ttl_ms: 1_000,
            max_wait_ms: 300,
            poll_interval_ms: 200,
        };
        let mut w = LeaseWait::new(p, 10_000);
        assert_eq!(w.policy(), &p);
        // A clock that goes backwards counts as no time waited.
        assert_eq!(w.waited_ms(9_000), 0);
        assert_eq!(
            w.decide(LeaseOutcome::Held, false, 9_000),
            LeaseDecision::WaitAndRetry { after_ms: 200 }
        );
        assert_eq!(
            w.decide(LeaseOutcome::Held, false, 10_200),
            LeaseDecision::WaitAndRetry { after_ms: 100 }
        );
        assert_eq!(
            w.decide(LeaseOutcome::Acquired, false, 10_300),
            LeaseDecision::Load
        );
        assert_eq!(w.attempts(), 3);
    }

    // --- XFetch ---------------------------------------------------------------

    #[test]
    fn xfetch_edges() {
        // At and after expiry: always.
        for r in [1.0, 0.5, 0.0, f64::NAN] {
            assert!(should_refresh_early(100, 100, 10, 1.0, r));
            assert!(should_refresh_early(u64::MAX, 100, 0, 0.0, r));
        }
        // No expiry: never.
        assert!(!should_refresh_early(u64::MAX, 0, 1_000, 1.0, 0.0));
        // No cost or no beta: never early.
        for beta in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(!should_refresh_early(99, 100, 10, beta, 1e-300));
        }
        assert!(!should_refresh_early(99, 100, 0, 1.0, 1e-300));
        // random == 1 never refreshes early; 0 is the smallest positive.
        assert!(!should_refresh_early(99, 100, 1_000_000, 1e9, 1.0));
        assert!(should_refresh_early(99, 100, 1, 1.0, 0.0)); // -ln(MIN_POSITIVE) ~ 708 >= 1
        assert!(!should_refresh_early(0, 1_000, 1, 1.0, 0.0)); // but not 1000 ms early
                                                               // Out-of-range random numbers are read as 1.
        for r in [f64::NAN, -0.5, 1.5, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(!should_refresh_early(99, 100, 1_000_000, 1e9, r));
        }
        // ln(0.5) * 100 = -69.3: 69 ms before expiry yes, 70 ms no.
        assert!(should_refresh_early(931, 1_000, 100, 1.0, 0.5));
        assert!(!should_refresh_early(930, 1_000, 100, 1.0, 0.5));
        // Huge values do not overflow.
        assert!(!should_refresh_early(0, u64::MAX, u64::MAX, 1.0, 0.999));
        // An enormous beta overflows to an infinite head start: refresh.
        assert!(should_refresh_early(0, u64::MAX, u64::MAX, f64::MAX, 0.999));
        assert!(should_refresh_early(0, u64::MAX, u64::MAX, 2.0, 0.1));
    }

    #[test]
    fn xfetch_probability_edges() {
        assert_eq!(early_refresh_probability(0, 0, 10, 1.0), 0.0);
        assert_eq!(early_refresh_probability(5, 5, 0, 0.0), 1.0);
        assert_eq!(early_refresh_probability(4, 5, 0, 1.0), 0.0);
        assert_eq!(early_refresh_probability(4, 5, 10, -1.0), 0.0);
        assert_eq!(early_refresh_probability(4, 5, 10, f64::NAN), 0.0);
        let p = early_refresh_probability(800, 1_000, 100, 2.0);
        assert!((p - (-1.0f64).exp()).abs() < 1e-12);
    }

    /// splitmix64: a small seeded generator, good enough for statistics.
    struct SplitMix(u64);

    impl SplitMix {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in (0, 1].
        fn next_unit(&mut self) -> f64 {
            ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn xfetch_frequency_matches_exp_law() {
        let mut rng = SplitMix(0x5EED_0001);
        let (expiry, delta) = (1_000_000u64, 200u64);
        let n = 200_000;
        for (beta, remaining) in [
            (1.0, 20),
            (1.0, 100),
            (1.0, 200),
            (1.0, 400),
            (2.0, 400),
            (0.5, 50),
        ] {
            let now = expiry - remaining;
            let hits = (0..n)
                .filter(|_| should_refresh_early(now, expiry, delta, beta, rng.next_unit()))
                .count();
            let observed = hits as f64 / n as f64;
            let expected = (-(remaining as f64) / (delta as f64 * beta)).exp();
            assert!((expected - early_refresh_probability(now, expiry, delta, beta)).abs() < 1e-12);
            let sigma = (expected * (1.0 - expected) / n as f64).sqrt();
            assert!(
                (observed - expected).abs() <= 5.0 * sigma + 1e-4,
                "beta {beta}, {remaining} ms left: observed {observed}, expected {expected}"
            );
        }
    }

    #[test]
    fn xfetch_with_zero_random_from_a_half_open_generator() {
        // A generator in [0, 1) (JS Math.random) is fine: 0 counts as tiny.
        let mut rng = SplitMix(7);
        let n = 100_000;
        let hits = (0..n)
            .filter(|_| {
                let r = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                should_refresh_early(900, 1_000, 100, 1.0, r)
            })
            .count();
        let observed = hits as f64 / n as f64;
        assert!((observed - (-1.0f64).exp()).abs() < 0.01);
    }

    mod xfetch_props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn probability_grows_towards_expiry(
                expiry in 1u64..1_000_000_000,
                cost in 1u64..100_000,
                beta in 0.01f64..10.0,
                a in 0u64..1_000_000_000,
                b in 0u64..1_000_000_000,
            ) {
                let (early, late) = (a.min(b), a.max(b));
                let p_early = early_refresh_probability(early, expiry, cost, beta);
                let p_late = early_refresh_probability(late, expiry, cost, beta);
                prop_assert!(p_early <= p_late);
                prop_assert!((0.0..=1.0).contains(&p_early));
            }

            #[test]
            fn decision_is_monotonic_in_time(
                expiry in 1u64..1_000_000_000,
                cost in 0u64..100_000,
                beta in -1.0f64..10.0,
                random in 0.0f64..=1.0,
                a in 0u64..2_000_000_000,
                b in 0u64..2_000_000_000,
            ) {
                // For a fixed random draw, once it says refresh, it says so
                // for every later time.
                let (early, late) = (a.min(b), a.max(b));
                if should_refresh_early(early, expiry, cost, beta, random) {
                    prop_assert!(should_refresh_early(late, expiry, cost, beta, random));
                }
            }

            #[test]
            fn decision_is_monotonic_in_random(
                expiry in 1u64..1_000_000_000,
                now in 0u64..1_000_000_000,
                cost in 0u64..100_000,
                beta in 0.01f64..10.0,
                a in 0.0f64..=1.0,
                b in 0.0f64..=1.0,
            ) {
                // Smaller random numbers refresh earlier.
                let (small, large) = (a.min(b), a.max(b));
                if should_refresh_early(now, expiry, cost, beta, large) {
                    prop_assert!(should_refresh_early(now, expiry, cost, beta, small));
                }
            }

            #[test]
            fn always_at_or_after_expiry(
                expiry in 1u64..u64::MAX,
                past in 0u64..1_000_000,
                cost in any::<u64>(),
                beta in any::<f64>(),
                random in any::<f64>(),
            ) {
                let now = expiry.saturating_add(past);
                prop_assert!(should_refresh_early(now, expiry, cost, beta, random));
            }

            #[test]
            fn never_early_without_recompute_cost(
                expiry in 1u64..u64::MAX,
                before in 1u64..u64::MAX,
                beta in any::<f64>(),
                random in any::<f64>(),
            ) {
                let now = expiry.saturating_sub(before);
                prop_assume!(now < expiry);
                prop_assert!(!should_refresh_early(now, expiry, 0, beta, random));
            }

            #[test]
            fn jitter_stays_in_bounds(
                ttl in any::<u64>(),
                fraction in any::<f64>(),
                random in any::<f64>(),
            ) {
                let out = jitter_ttl(ttl, fraction, random);
                if ttl == 0 {
                    prop_assert_eq!(out, 0);
                } else {
                    prop_assert!(out >= 1);
                    let f = if fraction.is_nan() { 0.0 } else { fraction.clamp(0.0, 1.0) };
                    let spread = ttl as f64 * f;
                    let diff = (out as f64 - ttl as f64).abs();
                    // f64 rounding: allow a relative error of 2^-50.
                    prop_assert!(diff <= spread + 1.0 + ttl as f64 * 1e-15);
                }
            }
        }
    }

    // --- freshness -------------------------------------------------------------

    #[test]
    fn freshness_between_soft_and_hard() {
        use Freshness::*;
        let at = |now| Freshness::at(now, Some(100), Some(200));
        assert_eq!(
            [at(0), at(99), at(100), at(199), at(200), at(u64::MAX)],
            [Fresh, Fresh, Stale, Stale, Expired, Expired]
        );
        assert!(Fresh.is_servable() && Stale.is_servable() && !Expired.is_servable());
        assert!(!Fresh.needs_refresh() && Stale.needs_refresh() && Expired.needs_refresh());
    }

    #[test]
    fn freshness_missing_expiries() {
        use Freshness::*;
        for none in [None, Some(0)] {
            assert_eq!(Freshness::at(u64::MAX, none, none), Fresh);
            assert_eq!(Freshness::at(99, none, Some(100)), Fresh);
            assert_eq!(Freshness::at(100, none, Some(100)), Expired);
            assert_eq!(Freshness::at(99, Some(100), none), Fresh);
            assert_eq!(Freshness::at(u64::MAX, Some(100), none), Stale);
        }
        // Soft after hard: the hard expiry wins.
        assert_eq!(Freshness::at(150, Some(300), Some(200)), Fresh);
        assert_eq!(Freshness::at(250, Some(300), Some(200)), Expired);
        assert_eq!(Freshness::at(0, Some(0), Some(0)), Fresh);
    }

    // --- jitter ---------------------------------------------------------------

    #[test]
    fn jitter_maps_random_linearly() {
        assert_eq!(jitter_ttl(1_000, 0.1, 0.0), 900);
        assert_eq!(jitter_ttl(1_000, 0.1, 0.25), 950);
        assert_eq!(jitter_ttl(1_000, 0.1, 0.5), 1_000);
        assert_eq!(jitter_ttl(1_000, 0.1, 0.75), 1_050);
        assert_eq!(jitter_ttl(1_000, 0.1, 1.0), 1_100);
    }

    #[test]
    fn jitter_bad_inputs() {
        assert_eq!(jitter_ttl(0, 0.5, 0.0), 0);
        // Never 0 for a positive TTL.
        assert_eq!(jitter_ttl(1, 1.0, 0.0), 1);
        assert_eq!(jitter_ttl(10, 5.0, 0.0), 1, "fraction is clamped to 1");
        assert_eq!(jitter_ttl(10, 5.0, 1.0), 20);
        // No overflow.
        assert_eq!(jitter_ttl(u64::MAX, 1.0, 1.0), u64::MAX);
        assert_eq!(jitter_ttl(u64::MAX - 1, 0.0, 1.0), u64::MAX - 1);
        assert_eq!(jitter_ttl(u64::MAX, 0.5, 0.5), u64::MAX);
        // NaN / negative / out-of-range inputs.
        assert_eq!(jitter_ttl(1_000, f64::NAN, 0.0), 1_000);
        assert_eq!(jitter_ttl(1_000, -0.3, 0.0), 1_000);
        assert_eq!(jitter_ttl(1_000, 0.1, f64::NAN), 1_000);
        assert_eq!(jitter_ttl(1_000, 0.1, -3.0), 900);
        assert_eq!(jitter_ttl(1_000, 0.1, 3.0), 1_100);
        assert_eq!(jitter_ttl(1_000, f64::INFINITY, 1.0), 2_000);
        // Exact for large TTLs without jitter.
        let big = (1u64 << 60) + 1;
        assert_eq!(jitter_ttl(big, 0.0, 0.9), big);
        assert_eq!(jitter_ttl(big, 0.1, 0.5), big);
    }

    // --- replicas ---------------------------------------------------------------

    #[test]
    fn replica_keys_are_distinct_and_valid() {
        let keys = replica_keys("course|v1|hot", 255);
        assert_eq!(keys.len(), 255);
        assert_eq!(keys[0], "course|v1|hot");
        let unique: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), 255);
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(*key, replica_key("course|v1|hot", i as u8));
            assert!(crate::key::is_valid_memcached_key(key), "{key}");
        }
        assert_eq!(replica_keys("x", 1), ["x"]);
        assert_eq!(replica_keys("x", 0), ["x"]);
        // Different main keys never share replica keys.
        assert_ne!(replica_key("a", 1), replica_key("b", 1));
        // Over-long main keys still give valid replica keys.
        let long = "k".repeat(240);
        assert!(crate::key::is_valid_memcached_key(&replica_key(&long, 9)));
        assert_ne!(replica_key(&long, 1), replica_key(&long, 2));
    }

    #[test]
    fn pick_replica_spreads_evenly() {
        assert_eq!(pick_replica("hot", 0, u64::MAX), "hot");
        assert_eq!(pick_replica("hot", 1, u64::MAX), "hot");
        let n = 5u8;
        let keys = replica_keys("hot", n);
        let mut counts = vec![0usize; n as usize];
        let mut rng = SplitMix(42);
        for _ in 0..50_000 {
            let key = pick_replica("hot", n, rng.next_u64());
            counts[keys.iter().position(|k| *k == key).unwrap()] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{c}");
        }
        // Evenly spaced u64s land in each replica in order.
        let step = u64::MAX / n as u64;
        for i in 0..n {
            assert_eq!(
                pick_replica("hot", n, step * i as u64 + 1),
                keys[i as usize]
            );
        }
    }
}
