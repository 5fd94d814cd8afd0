//! Single-flight: inside one process, the first reader of a cold key loads
//! it and the others wait for its result.

use std::collections::VecDeque;
use std::hash::Hash;

use hashbrown::hash_map::Entry;
use hashbrown::HashMap;
use slab::Slab;

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
