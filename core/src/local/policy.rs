//! The rules of a local cache, addressed by slot index: the recency list,
//! the timer wheel, the two bounds and the counters, with no keys, values or
//! hashing. [`LocalCache`](super::LocalCache) is built on it (its slab index
//! is the slot), and so is [`SlotPolicy`](super::SlotPolicy), for hosts that
//! keep keys and values themselves; both follow the same code.
//!
//! The per-entry state lives in the host's own storage, reached through
//! [`Entries`], so each host lays it out for its own hot path:
//! `LocalCache` keeps an entry's expiry and recency links in its node, next
//! to the key and value (a `get` touches one cache line per entry), and
//! `SlotPolicy` keeps the recency links of all slots in one dense array of
//! 8-byte [`Recency`] records (a batch of reads relinks nothing else).

use std::num::NonZeroU64;

use super::wheel::{Link, Timed, TimerWheel, NONE};
use super::{Expiry, LocalCacheError, LocalStats, RemovalCause, MAX_ENTRIES_LIMIT};

/// Expiry time of an entry that never expires.
pub(super) const NEVER: NonZeroU64 = NonZeroU64::MAX;

/// An entry's place in the recency list: what a read relinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Recency {
    /// Towards the most recently used entry (`NONE`: this is it).
    pub(super) newer: u32,
    /// Towards the least recently used entry (`NONE`: this is it).
    pub(super) older: u32,
}

impl Recency {
    /// In no list yet.
    pub(super) const UNLINKED: Recency = Recency {
        newer: NONE,
        older: NONE,
    };
}

/// The rest of an entry's policy state: what a `get` never needs (the
/// timer-wheel links and the weight).
#[derive(Clone, Copy, Debug)]
pub(super) struct Cold {
    weight: u64,
    /// Timer-wheel bucket list.
    timer_prev: u32,
    timer_next: u32,
    timer_bucket: u16,
}

impl Cold {
    pub(super) const NEW: Cold = Cold {
        weight: 0,
        timer_prev: NONE,
        timer_next: NONE,
        timer_bucket: Link::DETACHED.bucket,
    };
}

/// Where the host keeps each slot's [`Recency`], for reading. Only slots
/// the policy has linked (and not yet unlinked) are ever asked for.
pub(super) trait Links {
    fn recency(&self, idx: u32) -> &Recency;
}

/// Where the host keeps each slot's [`Recency`], expiry and [`Cold`].
pub(super) trait Entries: Links {
    fn recency_mut(&mut self, idx: u32) -> &mut Recency;
    /// When the entry expires ([`NEVER`]: never). Written by the host
    /// before [`Policy::link_new`], by the policy afterwards.
    fn expiry(&self, idx: u32) -> NonZeroU64;
    fn set_expiry(&mut self, idx: u32, expires_at: NonZeroU64);
    fn cold(&self, idx: u32) -> &Cold;
    fn cold_mut(&mut self, idx: u32) -> &mut Cold;
}

impl<E: Entries> Timed for E {
    #[inline]
    fn expires_at(&self, idx: u32) -> u64 {
        self.expiry(idx).get()
    }
    #[inline]
    fn link(&self, idx: u32) -> Link {
        let cold = self.cold(idx);
        Link {
            prev: cold.timer_prev,
            next: cold.timer_next,
            bucket: cold.timer_bucket,
        }
    }
    #[inline]
    fn set_link(&mut self, idx: u32, link: Link) {
        let cold = self.cold_mut(idx);
        cold.timer_prev = link.prev;
        cold.timer_next = link.next;
        cold.timer_bucket = link.bucket;
    }
    #[inline]
    fn set_prev(&mut self, idx: u32, prev: u32) {
        self.cold_mut(idx).timer_prev = prev;
    }
    #[inline]
    fn set_next(&mut self, idx: u32, next: u32) {
        self.cold_mut(idx).timer_next = next;
    }
}

/// The policy state of one cache. Every method that changes an entry's
/// membership says so: `link_new` adds it, `unlink*`, `expire` and `advance`
/// take it out, and the host then frees the slot and disposes of the value.
pub(super) struct Policy {
    newest: u32,
    oldest: u32,
    wheel: TimerWheel,
    /// Entries linked now.
    len: usize,
    /// Linked entries that expire (not [`NEVER`]): those in the wheel.
    timed: usize,
    max_entries: usize,
    max_weight: u64,
    weight: u64,
    default_ttl: Option<u64>,
    pub(super) stats: LocalStats,
}

impl Policy {
    pub(super) fn new(max_entries: usize, max_weight: u64) -> Result<Self, LocalCacheError> {
        if max_entries == 0 {
            return Err(LocalCacheError::ZeroMaxEntries);
        }
        if max_entries > MAX_ENTRIES_LIMIT {
            return Err(LocalCacheError::TooManyEntries { given: max_entries });
        }
        if max_weight == 0 {
            return Err(LocalCacheError::ZeroMaxWeight);
        }
        Ok(Policy {
            newest: NONE,
            oldest: NONE,
            wheel: TimerWheel::new(),
            len: 0,
            timed: 0,
            max_entries,
            max_weight,
            weight: 0,
            default_ttl: None,
            stats: LocalStats::default(),
        })
    }

    pub(super) fn set_default_ttl(&mut self, ttl_ms: Option<u64>) -> Result<(), LocalCacheError> {
        if ttl_ms == Some(0) {
            return Err(LocalCacheError::ZeroDefaultTtl);
        }
        self.default_ttl = ttl_ms;
        Ok(())
    }

    pub(super) fn default_ttl(&self) -> Option<u64> {
        self.default_ttl
    }
    pub(super) fn max_entries(&self) -> usize {
        self.max_entries
    }
    pub(super) fn max_weight(&self) -> u64 {
        self.max_weight
    }
    pub(super) fn weight(&self) -> u64 {
        self.weight
    }

    pub(super) fn stats(&self) -> LocalStats {
        LocalStats {
            entries: self.len,
            weight: self.weight,
            ..self.stats
        }
    }

    /// When an entry stored at `now` with `expiry` expires; `None`: at once.
    pub(super) fn expires_at(&self, expiry: Expiry, now: u64) -> Option<NonZeroU64> {
        let ttl = match (expiry, self.default_ttl) {
            (Expiry::Never, _) | (Expiry::Default, None) => return Some(NEVER),
            (Expiry::Default, Some(ttl)) | (Expiry::AfterMs(ttl), _) => ttl,
        };
        // A zero TTL expires at once; any other gives a time of at least 1.
        if ttl == 0 {
            None
        } else {
            NonZeroU64::new(now.saturating_add(ttl))
        }
    }

    /// A read of a linked entry at `now`: counts a hit and marks it most
    /// recently used if it is live; otherwise unlinks it as expired (and
    /// counts a miss), and the host frees it.
    #[inline(always)]
    pub(super) fn read(&mut self, e: &mut impl Entries, idx: u32, now: u64) -> bool {
        if e.expiry(idx).get() > now {
            self.stats.hits += 1;
            self.mark_used(e, idx);
            true
        } else {
            self.stats.misses += 1;
            self.expire(e, idx);
            false
        }
    }

    /// True if every linked entry is live at `now` (none has a TTL, and
    /// `now` is before [`NEVER`]; a default TTL only concerns entries not
    /// made yet): then a read of a linked entry is a hit,
    /// and a host may apply a batch of them as [`mark_used`](Policy::mark_used)
    /// each, counted once with [`count_reads`](Policy::count_reads) — what
    /// [`read`](Policy::read) would do one by one.
    #[inline]
    pub(super) fn all_live(&self, now: u64) -> bool {
        debug_assert_eq!(self.timed == 0, self.wheel.is_empty());
        self.timed == 0 && now < NEVER.get()
    }

    /// Counts `hits` and `misses` of reads applied without [`read`](Policy::read).
    #[inline]
    pub(super) fn count_reads(&mut self, hits: u64, misses: u64) {
        self.stats.hits += hits;
        self.stats.misses += misses;
    }

    /// Moves the wheel to `now`; entries whose expiry tick has passed are
    /// unlinked (counted as expired) and pushed to `expired`.
    #[inline]
    pub(super) fn advance(&mut self, e: &mut impl Entries, now: u64, expired: &mut Vec<u32>) {
        // Checked inline: most calls stay within the wheel's current tick.
        if self.wheel.advance_within_tick(now) {
            return;
        }
        self.advance_slow(e, now, expired);
    }

    #[inline(never)]
    fn advance_slow(&mut self, e: &mut impl Entries, now: u64, expired: &mut Vec<u32>) {
        let from = expired.len();
        self.wheel.advance(e, now, expired);
        for &idx in &expired[from..] {
            self.expire(e, idx);
        }
    }

    /// Unlinks every entry expired at `now` (pushed to `expired`).
    pub(super) fn purge_expired(&mut self, e: &mut impl Entries, now: u64, expired: &mut Vec<u32>) {
        self.advance(e, now, expired);
        let from = expired.len();
        self.wheel.due(&*e, now, expired);
        for &idx in &expired[from..] {
            self.expire(e, idx);
        }
    }

    /// Unlinks `idx` and counts it as expired.
    pub(super) fn expire(&mut self, e: &mut impl Entries, idx: u32) {
        self.unlink(e, idx);
        self.stats.expirations += 1;
    }

    /// True while a new entry of `weight` does not fit: the host unlinks the
    /// oldest with [`unlink_oldest`](Policy::unlink_oldest) until it does.
    #[inline]
    pub(super) fn must_make_room(&self, weight: u64) -> bool {
        self.len >= self.max_entries || self.weight + weight > self.max_weight
    }

    /// True while the entries weigh more than the bound (after an update).
    #[inline]
    pub(super) fn over_weight(&self) -> bool {
        self.weight > self.max_weight
    }

    /// True if a value of `weight` can never fit (counted as rejected).
    pub(super) fn reject_too_heavy(&mut self, weight: u64) -> bool {
        let too_heavy = weight > self.max_weight;
        if too_heavy {
            self.stats.rejected += 1;
        }
        too_heavy
    }

    /// Unlinks the least recently used entry to make room, counting it as
    /// evicted or (if it has expired) expired; the host frees its slot.
    #[inline]
    pub(super) fn unlink_oldest(&mut self, e: &mut impl Entries, now: u64) -> (u32, RemovalCause) {
        let idx = self.oldest;
        debug_assert_ne!(idx, NONE, "evicting from an empty cache");
        self.unlink(e, idx);
        if e.expiry(idx).get() <= now {
            self.stats.expirations += 1;
            (idx, RemovalCause::Expired)
        } else {
            self.stats.evictions += 1;
            (idx, RemovalCause::Evicted)
        }
    }

    /// Links a new entry at `idx` (its expiry written by the host) as the
    /// most recently used one.
    #[inline]
    pub(super) fn link_new(&mut self, e: &mut impl Entries, idx: u32, weight: u64) {
        *e.cold_mut(idx) = Cold {
            weight,
            ..Cold::NEW
        };
        self.link_newest(e, idx);
        let expires_at = e.expiry(idx);
        if expires_at != NEVER {
            self.wheel.schedule(e, idx, expires_at.get());
            self.timed += 1;
        }
        self.weight += weight;
        self.len += 1;
        self.stats.inserts += 1;
    }

    /// A new value for the entry at `idx`: new weight and expiry, marked
    /// used, counted as an update. The host then evicts while
    /// [`over_weight`](Policy::over_weight) (never `idx` itself: it is the
    /// newest, and alone it fits).
    pub(super) fn update(
        &mut self,
        e: &mut impl Entries,
        idx: u32,
        weight: u64,
        expires_at: NonZeroU64,
    ) {
        let cold = e.cold_mut(idx);
        self.weight = self.weight - cold.weight + weight;
        cold.weight = weight;
        self.reschedule(e, idx, expires_at);
        self.mark_used(e, idx);
        self.stats.updates += 1;
    }

    /// Gives a linked entry a new expiry.
    pub(super) fn reschedule(&mut self, e: &mut impl Entries, idx: u32, expires_at: NonZeroU64) {
        if e.expiry(idx) != NEVER {
            self.timed -= 1;
        }
        e.set_expiry(idx, expires_at);
        self.wheel.cancel(e, idx);
        if expires_at != NEVER {
            self.wheel.schedule(e, idx, expires_at.get());
            self.timed += 1;
        }
    }

    /// Unlinks entry `idx` from the lists and the weight.
    #[inline]
    pub(super) fn unlink(&mut self, e: &mut impl Entries, idx: u32) {
        let Recency { newer, older } = *e.recency(idx);
        if newer == NONE {
            self.newest = older;
        } else {
            e.recency_mut(newer).older = older;
        }
        if older == NONE {
            self.oldest = newer;
        } else {
            e.recency_mut(older).newer = newer;
        }
        if e.expiry(idx) != NEVER {
            self.timed -= 1;
        }
        self.wheel.cancel(e, idx);
        self.weight -= e.cold(idx).weight;
        self.len -= 1;
    }

    /// Forgets every entry (the host frees them all). Counters are kept.
    pub(super) fn clear(&mut self) {
        self.wheel = TimerWheel::new();
        self.newest = NONE;
        self.oldest = NONE;
        self.weight = 0;
        self.len = 0;
        self.timed = 0;
    }

    /// True if some entry may expire (one has a TTL, or new ones get one).
    pub(super) fn may_expire(&self) -> bool {
        debug_assert_eq!(self.timed == 0, self.wheel.is_empty());
        self.default_ttl.is_some() || self.timed != 0
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The least recently used entry, if any.
    pub(super) fn oldest(&self) -> Option<u32> {
        (self.oldest != NONE).then_some(self.oldest)
    }

    /// The entry used just after `idx` (towards the newest), if any.
    pub(super) fn newer<L: Links>(e: &L, idx: u32) -> Option<u32> {
        let newer = e.recency(idx).newer;
        (newer != NONE).then_some(newer)
    }

    /// What `n` sets of new entries of weight 0 that never expire do in a
    /// full cache where no entry expires, at once: each would evict the
    /// least recently used entry and link the new one, in its slot, as the
    /// most recently used. So the `n` oldest entries, in order, move to the
    /// newest end (one splice), weigh 0, and count as `n` evictions and `n`
    /// inserts. The host has already filed the new keys under those slots.
    /// `n` is at most the number of entries.
    pub(super) fn recycle_oldest(&mut self, e: &mut impl Entries, n: usize) {
        debug_assert!(n <= self.len && !self.may_expire());
        if n == 0 {
            return;
        }
        let first = self.oldest;
        let mut last = first;
        for i in 0..n {
            if i > 0 {
                last = e.recency(last).newer;
            }
            let cold = e.cold_mut(last);
            self.weight -= cold.weight;
            cold.weight = 0;
        }
        if last != self.newest {
            let next_oldest = e.recency(last).newer;
            e.recency_mut(next_oldest).older = NONE;
            self.oldest = next_oldest;
            let newest = self.newest;
            e.recency_mut(newest).newer = first;
            e.recency_mut(first).older = newest;
            e.recency_mut(last).newer = NONE;
            self.newest = last;
        }
        self.stats.evictions += n as u64;
        self.stats.inserts += n as u64;
    }

    /// Slots from most to least recently used.
    pub(super) fn by_recency<L: Links>(&self, e: L) -> impl Iterator<Item = u32> {
        std::iter::successors((self.newest != NONE).then_some(self.newest), move |&idx| {
            let older = e.recency(idx).older;
            (older != NONE).then_some(older)
        })
    }

    /// Moves entry `idx` to the front of the recency list: unlink then link
    /// newest, fused for the hot path of `get` (each node is looked up once,
    /// and the cases a non-newest entry cannot be in are skipped).
    #[inline(always)]
    pub(super) fn mark_used(&mut self, e: &mut impl Entries, idx: u32) {
        let newest = self.newest;
        if newest == idx {
            return;
        }
        let links = e.recency_mut(idx);
        let Recency { newer, older } = *links;
        *links = Recency {
            newer: NONE,
            older: newest,
        };
        // Not the newest: there is a newer entry, and `newest` is another one.
        e.recency_mut(newer).older = older;
        if older == NONE {
            self.oldest = newer;
        } else {
            e.recency_mut(older).newer = newer;
        }
        e.recency_mut(newest).newer = idx;
        self.newest = idx;
    }

    #[inline]
    fn link_newest(&mut self, e: &mut impl Entries, idx: u32) {
        let old_newest = self.newest;
        *e.recency_mut(idx) = Recency {
            newer: NONE,
            older: old_newest,
        };
        if old_newest == NONE {
            self.oldest = idx;
        } else {
            e.recency_mut(old_newest).newer = idx;
        }
        self.newest = idx;
    }
}
