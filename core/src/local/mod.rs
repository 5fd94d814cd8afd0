//! [`LocalCache`]: a bounded in-process cache with per-entry expiry and a
//! scan-resistant, frequency-aware eviction policy that adapts between
//! recency and frequency (adaptive W-TinyLFU); exact LRU is an option
//! ([`Eviction::Lru`]).
//!
//! Entries live in a slab and are linked by index into intrusive lists: the
//! policy's recency lists and a timer-wheel bucket (for expiry). A hash table
//! of slab indices finds them. Every operation is O(1) (amortized: an insert
//! may move several window entries, compare a heavy candidate with up to 16
//! victims, or promote or give a second chance to up to 8 flagged entries); expired entries are reclaimed by the timer wheel as time moves
//! on, without waiting for a read (Django's `LocMemCache` keeps dead keys
//! until they are read).
//!
//! # Why this policy
//!
//! A local hit costs tens of nanoseconds; a miss costs a remote round trip or
//! a loader. LRU loses on the access patterns of web apps: a scan of every
//! course (warm-up commands, admin pages) flushes the hot keys; a loop a bit
//! longer than the cache hits nothing; a few very hot keys compete with
//! one-off reads. Frequency-only admission (TinyLFU without a window, as in
//! moka) fixes those but loses badly on recency-skewed traffic, where a key
//! is read a few times close together and never again. So, as Caffeine does:
//!
//! - new entries enter a small LRU **window** (1% of both bounds at first);
//! - an entry leaving the window is a **candidate** for the **main** space: a
//!   count-min **sketch** of 4-bit counters (halved every ten increments per
//!   entry, so old popularity fades) compares how often the candidate and the
//!   main space's next victim were seen; the less frequent one is evicted
//!   (the candidate's count less one: the insert that made it a candidate
//!   is why it is compared at all, not evidence of its rate; counting it
//!   let every candidate on a loop outscore the victims not yet read since
//!   the sketch's last halving, and the main space churned). That one is
//!   not deducted while the recent **ghosts** (below) lean to recency:
//!   more rejected candidates than evicted victims came back soon (a
//!   count bounded at ±16, moved by each ghost that returns within
//!   reach). Then a key read a second time soon after its first is
//!   admitted over a victim read as often long ago: cloudPhysicsIO at 20%
//!   gained 1.8 points, web07 0.4, orm-busy 0.4, the Zipf traces 0.3 to
//!   0.6; on a loop rejected candidates return only after the whole loop,
//!   beyond the ghosts' reach, so the deduction stays (a fixed choice
//!   either way lost: always deducting, those 1.8 points; never, 4.3
//!   points on LIRS's loop). A
//!   candidate heavier than the victim must outscore all the victims it would
//!   displace together (up to 16), so one large, rarely read value cannot
//!   push out many small, hot ones (sizes are honoured, as in moka);
//! - the main space has two segments, **probation** (evicted first) and
//!   **protected** (60% of it: entries read again while on probation;
//!   Caffeine's 80% left probation too short on loops, where a held
//!   entry's sampled count is noisy and the noisiest lost their places
//!   after a halving: 0.6 points more lost on LIRS's loop). They
//!   are CLOCK queues, not LRU lists: a read of a main-space entry only sets
//!   a flag in its node (no relinking, no other node touched, so a hit costs
//!   about what an LRU hit costs); a flagged entry found at probation's
//!   oldest end when a victim is chosen is promoted then (S3-FIFO's lazy
//!   promotion), and one at protected's oldest end gets a second chance
//!   instead of being demoted (at most 8 per insert, so it stays O(1));
//! - every read is counted in the sketch, in expectation: a read of an
//!   entry already flagged is a sample, one in 8 (by a mix of the key's hash
//!   and the hit count, not in step with any loop), counted 8 times. Reads
//!   left uncounted would make held entries look colder than the keys
//!   outside the cache; counting each one would load the sketch's cache line
//!   on every hit (it doubled the get time);
//! - the window's share moves two ways. **Ghosts** (ARC's idea): the cache
//!   remembers, in a direct-mapped table of fingerprints (8 bytes a slot,
//!   as many slots as the sketch has entries), the hashes of candidates the
//!   admission rejected and of main-space victims, with how many
//!   removals of their kind came before. Candidates leave the window, and
//!   victims the main space, roughly in order, so a ghost with `d` removals
//!   of its kind after it would still be held by that segment made `d`
//!   entries larger. A miss on a ghost within an eighth of the cache's
//!   entries of removals was a mistake the window's size could have
//!   avoided: a rejected candidate grows the window by one entry (recency
//!   would have won), an evicted victim shrinks it by one (frequency would
//!   have won). Both kinds are judged over the same reach, so neither wins
//!   by being removed more often (measured in reads, the rejected
//!   candidates, ten times as many as victims on Zipf traffic, grew the
//!   window to 90% of the cache: LRU's hit ratio). Older ghosts say
//!   nothing (a cache that much larger may have missed them too: a loop). Ghosts react from the first mistakes, where the
//!   **hill climber** needs many samples: it moves the window's share every
//!   ten reads per entry held, counted from the cache's first eviction
//!   (while it fills, the hit ratio rises whatever the window's size, and
//!   climbing on it moved the window by full steps on noise): if the hit ratio of the last sample rose, it
//!   keeps going the same way, otherwise it turns back, with steps of 6.25%
//!   decaying by 2% a sample (Caffeine's constants, not tuned to our
//!   traces). On recency-skewed traffic (Corda's trace: most keys read twice
//!   close together) the climber alone never got enough samples in a
//!   136K-request trace, and the default lost 23 points to LRU; with ghosts
//!   it is within 0.05 of LRU. A large window behaves like LRU (recency), a
//!   small one like TinyLFU (frequency);
//! - the sketch is sized for at least 1,024 entries (8 KB), so a small cache
//!   on a loop much longer than itself compares counts, not collisions; a
//!   cache bound by weight doubles it (and the ghosts) as it fills, copying
//!   the table so no count is lost.
//!
//! S3-FIFO (quick_cache) and SIEVE are simpler and scan-resistant too, but do
//! not adapt to recency-skewed traffic and give no frequency comparison for
//! weighted admission; ARC and LIRS keep ghost entries with their keys (here
//! a ghost is 8 bytes and may be overwritten: it only steers the window).
//! The measurements are in `docs/reports/benchmarks.md`
//! (`bash scripts/bench-hit-ratio.sh`), with what was tried and left out:
//! among others a doorkeeper, conservative update of the sketch, other
//! sketch sizes and ageing periods, larger or smaller ghost steps, a
//! ghost reach relative to the window, smaller climber steps (public
//! traces better, Zipf worse), no climber, no ghosts. A window of the best
//! fixed size for each trace and size would lift the public mean gap only
//! to about +0.4 points: the rest of issue 14's +1 is where Belady is far
//! ahead of every peer, and no idea measured so far reaches it.
//!
//! Nothing here is random or reads a clock: the sketch, the ghosts and the
//! read sampling use the cache's own key hashes (the host's hasher: give
//! [`LocalCache::with_hasher`] a fixed seed for reproducible runs, as the
//! hit-ratio simulator does). Where Caffeine admits a warm candidate over
//! a victim at least as frequent at random (one time in 128, so an
//! attacker who keeps an unread victim's count high by sketch collisions
//! cannot pin the main space), the victim here gives way once it has
//! rejected as many warm candidates in a row as the sketch is sized for
//! (at least 1,024): a pin lasts a bounded time, and a loop, where held
//! keys and candidates tie, no longer loses a held key to one warm
//! candidate in 128 (0.45 points on LIRS's loop at every size).
//!
//! Everything a `get` touches of an entry (key, value, expiry, recency links,
//! segment) and the links an eviction rewrites fit in one 64-byte [`Node`]
//! for `String` keys and 16-byte values; the rest sits in a parallel array
//! of small [`Cold`] records.

mod policy;
mod sketch;
mod slots;
mod wheel;

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::num::NonZeroU64;

use hashbrown::{DefaultHashBuilder, HashTable};
use slab::Slab;

use crate::lookup::Lookup;
use policy::{Cold, Entries, Links, Policy, Recency, NEVER, WINDOW};
pub use slots::SlotPolicy;

/// How late, at most, the timer wheel reclaims an expired entry on its own.
pub const EXPIRY_GRANULARITY_MS: u64 = wheel::TICK_MS;

/// The largest `max_entries`: slab indices are `u32`, and one value is kept
/// to mean "no entry".
pub const MAX_ENTRIES_LIMIT: usize = (u32::MAX - 1) as usize;

/// How long an entry may be served.
///
/// An expiry of zero milliseconds stores nothing and removes any entry the key
/// had, as Django's `cache.set(key, value, timeout=0)` does; bindings map a
/// negative host timeout to zero with [`Expiry::from_millis_signed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Expiry {
    /// The cache's default TTL (see [`LocalCache::with_default_ttl`]).
    #[default]
    Default,
    /// Kept until evicted, deleted or cleared.
    Never,
    /// Expires this many milliseconds after `now`.
    AfterMs(u64),
}

impl Expiry {
    /// A TTL from a signed host value: zero or negative means "expire at once".
    pub fn from_millis_signed(ms: i64) -> Self {
        Expiry::AfterMs(u64::try_from(ms).unwrap_or(0))
    }
}

/// Which entry a full [`LocalCache`] gives up for a new one.
///
/// ```
/// use stratacache::{Eviction, LocalCache};
///
/// let cache: LocalCache<String, u32> = LocalCache::new(100, u64::MAX)?.with_eviction(Eviction::Lru);
/// assert_eq!(cache.eviction(), Eviction::Lru);
/// # Ok::<(), stratacache::LocalCacheError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Eviction {
    /// Adaptive W-TinyLFU (the default): a small LRU admission window, a
    /// frequency sketch that decides which of a window leaver and the main
    /// space's oldest entry stays, a segmented main space, and a window size
    /// tuned by hill climbing on the hit ratio. See the [module docs](self).
    #[default]
    Adaptive,
    /// Exact least-recently-used eviction.
    Lru,
}

/// What [`LocalCache::set`] did with the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    /// The value is stored (possibly after evicting older entries).
    Stored,
    /// The value weighs more than the whole cache may hold; it is not stored,
    /// any previous value under the key is removed, and `rejected` is counted.
    RejectedTooHeavy {
        /// The value's weight.
        weight: u64,
        /// The cache's weight limit.
        max_weight: u64,
    },
    /// The expiry was zero: nothing is stored and any previous value under
    /// the key is removed.
    ExpiredImmediately,
}

/// Why a cache could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalCacheError {
    /// `max_entries` was zero.
    #[error("max_entries is 0: a local cache must hold at least one entry (to disable it, leave the local tier out)")]
    ZeroMaxEntries,
    /// `max_entries` exceeded [`MAX_ENTRIES_LIMIT`].
    #[error("max_entries is {given}; the limit is {MAX_ENTRIES_LIMIT}")]
    TooManyEntries {
        /// The refused value.
        given: usize,
    },
    /// `max_weight` was zero.
    #[error(
        "max_weight is 0: give the most bytes the cache may hold, or u64::MAX for no weight bound"
    )]
    ZeroMaxWeight,
    /// The default TTL was zero, which would store nothing.
    #[error("default TTL is 0 ms, which would expire every entry at once: use None for no expiry or a positive TTL")]
    ZeroDefaultTtl,
}

/// Counters and gauges of a [`LocalCache`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalStats {
    /// Reads that found a live entry.
    pub hits: u64,
    /// Reads that found nothing, or an expired entry.
    pub misses: u64,
    /// New keys stored.
    pub inserts: u64,
    /// Existing keys given a new value.
    pub updates: u64,
    /// Live entries removed to make room (count or weight bound).
    pub evictions: u64,
    /// Entries removed because they expired.
    pub expirations: u64,
    /// Values refused because they weigh more than the whole cache.
    pub rejected: u64,
    /// New entries the adaptive policy did not admit to its main space
    /// (they lost to a more frequently used entry and were evicted).
    pub admissions_rejected: u64,
    /// Entries in the admission window now (adaptive policy; 0 for LRU).
    /// The rest are in the main space.
    pub window_entries: usize,
    /// Weight of the admission window now.
    pub window_weight: u64,
    /// Entries held now (some may have expired and await reclaiming).
    pub entries: usize,
    /// Total weight held now.
    pub weight: u64,
}

/// Why a value left the cache (see [`LocalCache::with_removal_log`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalCause {
    /// A new value was set under its key.
    Replaced,
    /// Deleted by [`LocalCache::touch`] with a zero expiry. (`delete` hands
    /// the value back instead of logging it.)
    Deleted,
    /// Removed to make room.
    Evicted,
    /// Expired.
    Expired,
    /// Removed by [`LocalCache::clear`].
    Cleared,
    /// Its key was set to a value that was refused (too heavy) or expired at
    /// once.
    Superseded,
}

/// An entry: what a `get` reads and writes, and the list links.
///
/// Aligned to a cache line: with `String` keys and a 16-byte value (or any
/// smaller one) on a 64-bit target, the node fills exactly one line. A `get`
/// then loads one line for the entry and one for each recency neighbour, as a
/// list of boxed nodes (the `lru` crate) does, and an eviction rewrites links
/// in lines it loads anyway: the oldest entry's newer neighbour is usually
/// also its neighbour in the timer bucket.
#[repr(align(64))]
struct Node<K, V> {
    key: K,
    value: V,
    /// Expiry and links (its non-zero expiry holds the slab's tag).
    meta: Meta,
}

/// What a `get` reads and writes of an entry: its expiry and its recency
/// links (16 bytes).
#[derive(Clone, Copy, Debug)]
struct Meta {
    /// Never 0 (TTLs are positive). The zero niche holds the slab's
    /// vacant/occupied tag, so a slab entry is no bigger than its node.
    expires_at: NonZeroU64,
    recency: Recency,
    /// The policy segment the entry is in (window, probation, protected).
    segment: u8,
}

/// The rest of the entry at the same slab index: what a `get` never needs.
#[derive(Clone, Copy)]
struct ColdEntry {
    hash: u64,
    policy: Cold,
}

/// The policy's view of the entries: slab index = slot.
struct Nodes<'a, K, V> {
    nodes: &'a mut Slab<Node<K, V>>,
    cold: &'a mut [ColdEntry],
}

impl<K, V> Links for Nodes<'_, K, V> {
    #[inline(always)]
    fn recency(&self, idx: u32) -> &Recency {
        &self.nodes[idx as usize].meta.recency
    }
}

impl<K, V> Entries for Nodes<'_, K, V> {
    const ADAPTIVE: bool = cfg!(feature = "adaptive");
    #[inline(always)]
    fn segment(&self, idx: u32) -> u8 {
        self.nodes[idx as usize].meta.segment
    }
    #[inline(always)]
    fn set_segment(&mut self, idx: u32, segment: u8) {
        self.nodes[idx as usize].meta.segment = segment;
    }
    #[inline(always)]
    fn hash(&self, idx: u32) -> u64 {
        self.cold[idx as usize].hash
    }
    #[inline(always)]
    fn recency_mut(&mut self, idx: u32) -> &mut Recency {
        &mut self.nodes[idx as usize].meta.recency
    }
    #[inline(always)]
    fn expiry(&self, idx: u32) -> NonZeroU64 {
        self.nodes[idx as usize].meta.expires_at
    }
    #[inline(always)]
    fn set_expiry(&mut self, idx: u32, expires_at: NonZeroU64) {
        self.nodes[idx as usize].meta.expires_at = expires_at;
    }
    #[inline(always)]
    fn cold(&self, idx: u32) -> &Cold {
        &self.cold[idx as usize].policy
    }
    #[inline(always)]
    fn cold_mut(&mut self, idx: u32) -> &mut Cold {
        &mut self.cold[idx as usize].policy
    }
}

/// A bounded cache with per-entry TTL, for values of one process, evicting
/// by the adaptive policy of the [module docs](self) (or exact LRU, see
/// [`with_eviction`](LocalCache::with_eviction)).
///
/// Bounded by entry count **and** by total weight (the caller weighs each
/// value, e.g. in bytes). Time is passed in as `now`, in milliseconds, so the
/// cache runs anywhere (including `wasm32-unknown-unknown`) and tests control
/// the clock. `get`, `peek`, `set` and `delete` are O(1).
///
/// Expired entries are never returned. They are reclaimed without a read:
/// every `set` moves the timer wheel to `now` and frees entries whose expiry
/// is more than [`EXPIRY_GRANULARITY_MS`] in the past; [`purge_expired`]
/// frees all of them at once.
///
/// The rules (bounds, expiry, counters) are those of [`SlotPolicy`], the
/// same code, applied to the entries a hash table finds by key; with
/// [`Eviction::Lru`] the eviction order is the same too (a `SlotPolicy`
/// knows no keys, so it runs exact LRU).
///
/// ```
/// use stratacache::{Expiry, LocalCache, Lookup};
///
/// let mut cache = LocalCache::new(1_000, 64 << 20)?.with_default_ttl(Some(60_000))?;
/// let now = 1_700_000_000_000;
/// cache.set("course-v1:edX+DemoX".to_string(), "outline", 7, Expiry::Default, now);
/// assert_eq!(cache.get("course-v1:edX+DemoX", now), Lookup::Hit(&"outline"));
/// assert_eq!(cache.get("course-v1:edX+DemoX", now + 60_000), Lookup::Miss);
/// # Ok::<(), stratacache::LocalCacheError>(())
/// ```
///
/// [`purge_expired`]: LocalCache::purge_expired
pub struct LocalCache<K, V, S = DefaultHashBuilder> {
    table: HashTable<u32>,
    nodes: Slab<Node<K, V>>,
    /// `cold[i]` belongs to `nodes[i]` (stale where `nodes[i]` is vacant).
    cold: Vec<ColdEntry>,
    hasher: S,
    policy: Policy,
    removal_log: Option<Vec<(V, RemovalCause)>>,
    scratch: Vec<u32>,
}

impl<K: Hash + Eq, V> LocalCache<K, V> {
    /// A cache of at most `max_entries` entries weighing at most `max_weight`
    /// in total, with no default TTL.
    pub fn new(max_entries: usize, max_weight: u64) -> Result<Self, LocalCacheError> {
        Self::with_hasher(max_entries, max_weight, DefaultHashBuilder::default())
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> LocalCache<K, V, S> {
    /// Like [`LocalCache::new`], hashing keys with `hasher`.
    pub fn with_hasher(
        max_entries: usize,
        max_weight: u64,
        hasher: S,
    ) -> Result<Self, LocalCacheError> {
        let mut policy = Policy::new(max_entries, max_weight)?;
        policy.set_eviction(Eviction::default());
        let capacity = max_entries.min(1 << 12);
        Ok(LocalCache {
            table: HashTable::with_capacity(capacity),
            nodes: Slab::with_capacity(capacity),
            cold: Vec::with_capacity(capacity),
            hasher,
            policy,
            removal_log: None,
            scratch: Vec::new(),
        })
    }

    /// Sets the TTL used by [`Expiry::Default`] (`None`: never expire).
    pub fn with_default_ttl(mut self, ttl_ms: Option<u64>) -> Result<Self, LocalCacheError> {
        self.policy.set_default_ttl(ttl_ms)?;
        Ok(self)
    }

    /// Chooses the eviction policy (default: [`Eviction::Adaptive`]). Call
    /// it on a new cache: entries held already are cleared. Built without
    /// the crate's `adaptive` feature (as the WebAssembly package is), every
    /// cache runs [`Eviction::Lru`].
    ///
    /// ```
    /// use stratacache::{Eviction, Expiry, LocalCache};
    ///
    /// let mut lru = LocalCache::new(2, u64::MAX)?.with_eviction(Eviction::Lru);
    /// for k in ["a", "b", "c"] {
    ///     lru.set(k, (), 0, Expiry::Never, 0);
    /// }
    /// assert!(!lru.contains("a", 0)); // the least recently used went
    /// # Ok::<(), stratacache::LocalCacheError>(())
    /// ```
    pub fn with_eviction(mut self, eviction: Eviction) -> Self {
        self.clear();
        self.policy.set_eviction(eviction);
        self
    }

    /// The eviction policy in use.
    pub fn eviction(&self) -> Eviction {
        self.policy.eviction()
    }

    /// Keeps every value that leaves the cache on its own (or is replaced),
    /// with the reason, until
    /// [`take_removed`](LocalCache::take_removed) is called.
    pub fn with_removal_log(mut self) -> Self {
        self.removal_log = Some(Vec::new());
        self
    }

    /// The value of `key` if it is stored and not expired at `now`; marks it
    /// used (and counts the read in the frequency sketch).
    pub fn get<Q>(&mut self, key: &Q, now: u64) -> Lookup<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.read(key, now) {
            Some(idx) => Lookup::Hit(&self.nodes[idx as usize].value),
            None => Lookup::Miss,
        }
    }

    /// The value of `key` if it is stored and not expired at `now`, without
    /// marking it used or counting a hit or miss.
    pub fn peek<Q>(&self, key: &Q, now: u64) -> Lookup<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.find(key) {
            Some(idx) if self.nodes[idx as usize].meta.expires_at.get() > now => {
                Lookup::Hit(&self.nodes[idx as usize].value)
            }
            _ => Lookup::Miss,
        }
    }

    /// True if `key` holds a value that has not expired at `now` (no counters,
    /// no recency change).
    pub fn contains<Q>(&self, key: &Q, now: u64) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.peek(key, now).is_found()
    }

    /// Milliseconds `key` has left at `now`: `Hit(None)` if it never expires,
    /// `Miss` if it is not stored or has expired.
    pub fn ttl_remaining<Q>(&self, key: &Q, now: u64) -> Lookup<Option<u64>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self
            .find(key)
            .map(|idx| self.nodes[idx as usize].meta.expires_at)
        {
            Some(at) => remaining(at, now),
            None => Lookup::Miss,
        }
    }

    /// Reads several keys at once; results are in the order of `keys`.
    pub fn get_many<'q, Q>(
        &mut self,
        keys: impl IntoIterator<Item = &'q Q>,
        now: u64,
    ) -> Vec<Lookup<&V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized + 'q,
    {
        let found: Vec<Option<u32>> = keys.into_iter().map(|key| self.read(key, now)).collect();
        found
            .into_iter()
            .map(|idx| idx.map(|idx| &self.nodes[idx as usize].value).into())
            .collect()
    }

    /// Stores `value` under `key` with the caller's `weight`, evicting
    /// entries the policy chooses until both bounds hold (the new entry is
    /// kept; a recent one that loses admission to a more frequently read
    /// one may go instead of the oldest).
    pub fn set(&mut self, key: K, value: V, weight: u64, expiry: Expiry, now: u64) -> SetOutcome {
        self.advance(now);
        let hash = self.hasher.hash_one(&key);
        let existing = self.find_hashed(hash, &key);
        let expires_at = match self.policy.expires_at(expiry, now) {
            Some(at) => at,
            None => {
                self.remove_if_present(existing, RemovalCause::Superseded);
                return SetOutcome::ExpiredImmediately;
            }
        };
        if self.policy.reject_too_heavy(weight) {
            self.remove_if_present(existing, RemovalCause::Superseded);
            return SetOutcome::RejectedTooHeavy {
                weight,
                max_weight: self.policy.max_weight(),
            };
        }
        match existing {
            Some(idx) => self.replace(idx, value, weight, expires_at, now),
            None => self.insert_new(key, hash, value, weight, expires_at, now),
        }
        SetOutcome::Stored
    }

    /// Stores several entries `(key, value, weight)` with one expiry; returns
    /// how many were stored.
    pub fn set_many(
        &mut self,
        entries: impl IntoIterator<Item = (K, V, u64)>,
        expiry: Expiry,
        now: u64,
    ) -> usize {
        entries
            .into_iter()
            .map(|(key, value, weight)| self.set(key, value, weight, expiry, now))
            .filter(|outcome| *outcome == SetOutcome::Stored)
            .count()
    }

    /// Gives a live entry a new expiry (Django's `touch`); false if `key` is
    /// not stored or has expired. A zero expiry removes the entry.
    pub fn touch<Q>(&mut self, key: &Q, expiry: Expiry, now: u64) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.advance(now);
        let Some(idx) = self.find(key) else {
            return false;
        };
        if self.nodes[idx as usize].meta.expires_at.get() <= now {
            self.with_policy(|p, e| p.expire(e, idx));
            self.free(idx, RemovalCause::Expired);
            return false;
        }
        match self.policy.expires_at(expiry, now) {
            Some(at) => self.with_policy(|p, e| p.reschedule(e, idx, at)),
            None => {
                self.with_policy(|p, e| p.unlink(e, idx));
                self.free(idx, RemovalCause::Deleted);
            }
        }
        true
    }

    /// Removes `key`, returning its value (even if it had expired); a missing
    /// key is a [`Lookup::Miss`], not an error.
    pub fn delete<Q>(&mut self, key: &Q) -> Lookup<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find(key).map(|idx| self.remove(idx)).into()
    }

    /// Removes every entry. Counters are kept.
    pub fn clear(&mut self) {
        self.table.clear();
        self.policy.clear();
        self.cold.clear();
        let nodes = std::mem::take(&mut self.nodes);
        if let Some(log) = &mut self.removal_log {
            log.extend(
                nodes
                    .into_iter()
                    .map(|(_, node)| (node.value, RemovalCause::Cleared)),
            );
        }
    }

    /// Removes every entry that has expired at `now`; returns how many.
    pub fn purge_expired(&mut self, now: u64) -> usize {
        let mut expired = std::mem::take(&mut self.scratch);
        let mut entries = Nodes {
            nodes: &mut self.nodes,
            cold: &mut self.cold,
        };
        self.policy.purge_expired(&mut entries, now, &mut expired);
        let n = expired.len();
        for idx in expired.drain(..) {
            self.free(idx, RemovalCause::Expired);
        }
        self.scratch = expired;
        n
    }

    /// Values that left the cache since the last call, with why (empty unless
    /// built [`with_removal_log`](LocalCache::with_removal_log)).
    pub fn take_removed(&mut self) -> Vec<(V, RemovalCause)> {
        self.removal_log
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Number of entries held (expired ones not yet reclaimed included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Total weight held.
    pub fn weight(&self) -> u64 {
        self.policy.weight()
    }

    /// The entry-count bound.
    pub fn max_entries(&self) -> usize {
        self.policy.max_entries()
    }

    /// The weight bound.
    pub fn max_weight(&self) -> u64 {
        self.policy.max_weight()
    }

    /// The TTL of [`Expiry::Default`], if any.
    pub fn default_ttl(&self) -> Option<u64> {
        self.policy.default_ttl()
    }

    /// Counters since creation (or the last [`reset_stats`](LocalCache::reset_stats)) and current gauges.
    pub fn stats(&self) -> LocalStats {
        self.policy.stats()
    }

    /// Sets every counter back to zero.
    pub fn reset_stats(&mut self) {
        self.policy.stats = LocalStats::default();
    }

    /// Keys from most to least recently used (for debugging and tests; O(n)).
    /// With the adaptive policy: the window's, then protected's, then
    /// probation's, each newest first.
    pub fn keys_by_recency(&self) -> impl Iterator<Item = &K> {
        self.policy
            .by_recency(View(&self.nodes))
            .map(move |idx| &self.nodes[idx as usize].key)
    }

    // ---- internals -------------------------------------------------------

    /// Runs `f` on the policy and its view of the entries.
    #[inline(always)]
    fn with_policy<R>(&mut self, f: impl FnOnce(&mut Policy, &mut Nodes<'_, K, V>) -> R) -> R {
        let mut nodes = Nodes {
            nodes: &mut self.nodes,
            cold: &mut self.cold,
        };
        f(&mut self.policy, &mut nodes)
    }

    /// A counted read: the index of `key`'s live entry, marked used; an
    /// expired one found on the way is removed.
    #[inline(always)]
    fn read<Q>(&mut self, key: &Q, now: u64) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let Some(idx) = self.find_hashed(hash, key) else {
            self.policy.count_miss();
            return None;
        };
        if self.with_policy(|p, e| p.read(e, idx, now, hash)) {
            Some(idx)
        } else {
            self.free(idx, RemovalCause::Expired);
            None
        }
    }

    fn find<Q>(&self, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find_hashed(self.hasher.hash_one(key), key)
    }

    fn find_hashed<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let nodes = &self.nodes;
        self.table
            .find(hash, |&idx| nodes[idx as usize].key.borrow() == key)
            .copied()
    }

    #[inline]
    fn advance(&mut self, now: u64) {
        let mut expired = std::mem::take(&mut self.scratch);
        let mut entries = Nodes {
            nodes: &mut self.nodes,
            cold: &mut self.cold,
        };
        self.policy.advance(&mut entries, now, &mut expired);
        for idx in expired.drain(..) {
            self.free(idx, RemovalCause::Expired);
        }
        self.scratch = expired;
    }

    fn replace(&mut self, idx: u32, value: V, weight: u64, expires_at: NonZeroU64, now: u64) {
        let old = std::mem::replace(&mut self.nodes[idx as usize].value, value);
        self.with_policy(|p, e| p.update(e, idx, weight, expires_at));
        self.dispose(old, RemovalCause::Replaced);
        while self.policy.over_weight() {
            let (victim, cause) = self.with_policy(|p, e| p.unlink_victim(e, now, idx));
            self.free(victim, cause);
        }
    }

    fn insert_new(
        &mut self,
        key: K,
        hash: u64,
        value: V,
        weight: u64,
        expires_at: NonZeroU64,
        now: u64,
    ) {
        let node = Node {
            key,
            value,
            meta: Meta {
                expires_at,
                recency: Recency::UNLINKED,
                segment: WINDOW,
            },
        };
        // Make room. The slot of the last entry to go is refilled in place
        // (in a full cache: one out, one in), as the `lru` crate reuses its
        // node, instead of a slab removal and insertion.
        let mut vacated: Option<(u32, RemovalCause)> = None;
        self.with_policy(|p, e| p.prepare_insert(e, weight));
        while self.policy.must_make_room(weight) {
            if let Some((idx, cause)) = vacated.take() {
                self.free(idx, cause);
            }
            let (idx, cause) = self.with_policy(|p, e| p.unlink_victim(e, now, wheel::NONE));
            self.forget(idx);
            vacated = Some((idx, cause));
        }
        let idx = match vacated {
            Some((idx, cause)) => {
                let old = std::mem::replace(&mut self.nodes[idx as usize], node);
                self.dispose(old.value, cause);
                idx
            }
            None => self.nodes.insert(node) as u32,
        };
        let cold = ColdEntry {
            hash,
            policy: Cold::NEW,
        };
        // The slab refills a vacated index or appends one, so `cold` follows.
        match self.cold.get_mut(idx as usize) {
            Some(slot) => *slot = cold,
            None => self.cold.push(cold),
        }
        let cold = &self.cold;
        self.table
            .insert_unique(hash, idx, |&i| cold[i as usize].hash);
        self.with_policy(|p, e| p.link_new(e, idx, weight, hash));
    }

    fn remove_if_present(&mut self, idx: Option<u32>, cause: RemovalCause) {
        if let Some(idx) = idx {
            let value = self.remove(idx);
            self.dispose(value, cause);
        }
    }

    /// Removes entry `idx` from every structure and returns its value.
    fn remove(&mut self, idx: u32) -> V {
        self.with_policy(|p, e| p.unlink(e, idx));
        self.forget(idx);
        self.nodes.remove(idx as usize).value
    }

    /// Removes entry `idx`, which the policy has unlinked, and disposes of
    /// its value.
    fn free(&mut self, idx: u32, cause: RemovalCause) {
        self.forget(idx);
        let node = self.nodes.remove(idx as usize);
        self.dispose(node.value, cause);
    }

    /// Removes entry `idx` from the hash table; its slab slot stays.
    fn forget(&mut self, idx: u32) {
        let hash = self.cold[idx as usize].hash;
        if let Ok(entry) = self.table.find_entry(hash, |&i| i == idx) {
            entry.remove();
        }
    }

    fn dispose(&mut self, value: V, cause: RemovalCause) {
        if let Some(log) = &mut self.removal_log {
            log.push((value, cause));
        }
    }
}

/// A read-only view of the nodes for walking the recency list.
struct View<'a, K, V>(&'a Slab<Node<K, V>>);

impl<K, V> Links for View<'_, K, V> {
    fn recency(&self, idx: u32) -> &Recency {
        &self.0[idx as usize].meta.recency
    }
}

/// What an entry expiring at `at` has left at `now`.
fn remaining(at: NonZeroU64, now: u64) -> Lookup<Option<u64>> {
    if at == NEVER {
        Lookup::Hit(None)
    } else if at.get() > now {
        Lookup::Hit(Some(at.get() - now))
    } else {
        Lookup::Miss
    }
}

impl<K, V, S> fmt::Debug for LocalCache<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCache")
            .field("entries", &self.nodes.len())
            .field("max_entries", &self.policy.max_entries())
            .field("weight", &self.policy.weight())
            .field("max_weight", &self.policy.max_weight())
            .field("default_ttl_ms", &self.policy.default_ttl())
            .finish()
    }
}

#[cfg(test)]
mod tests;
