//! The rules of a local cache, addressed by slot index: the eviction policy
//! (adaptive W-TinyLFU or exact LRU, see [`Eviction`]), the timer wheel, the
//! two bounds and the counters, with no keys or values (only their hashes,
//! for the frequency sketch). [`LocalCache`](super::LocalCache) is built on it (its slab index
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

use super::sketch::Sketch;
use super::wheel::{Link, Timed, TimerWheel, NONE};
use super::{Eviction, Expiry, LocalCacheError, LocalStats, RemovalCause, MAX_ENTRIES_LIMIT};

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
    /// False for hosts that only ever run exact LRU (they keep no segment
    /// or hash): the adaptive code is then compiled out of their calls.
    const ADAPTIVE: bool;
    /// The segment (list) an entry is in: [`WINDOW`], [`PROBATION`] or
    /// [`PROTECTED`].
    fn segment(&self, idx: u32) -> u8;
    fn set_segment(&mut self, idx: u32, segment: u8);
    /// The key hash of an entry (for the frequency sketch).
    fn hash(&self, idx: u32) -> u64;
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

/// The admission window: new entries land here (LRU). In
/// [`Eviction::Lru`] every entry is here.
pub(super) const WINDOW: u8 = 0;
/// The main space's probation segment: entries admitted from the window
/// and not read since, evicted first.
pub(super) const PROBATION: u8 = 1;
/// The main space's protected segment: entries read while on probation.
pub(super) const PROTECTED: u8 = 2;
/// Flag on a main-space entry read since it last moved. The main space's
/// segments are CLOCK queues, not LRU lists: a read only sets this flag (one
/// byte, no relinking, no other node touched), and the entry moves when it
/// reaches its segment's oldest end with the flag set: from probation to
/// protected (its promotion, done lazily as S3-FIFO does), from protected's
/// oldest end to its newest (a second chance) instead of being demoted.
const REFERENCED: u8 = 4;
/// One read in this many of a flagged entry is counted in the sketch
/// (times this many).
const FLAGGED_SAMPLE: u64 = 8;
/// Most flagged entries one eviction or demotion moves on, so it stays O(1).
const MAX_SECOND_CHANCES: usize = 8;

/// One recency list (newest to oldest) and what it holds.
#[derive(Clone, Copy, Debug)]
struct List {
    newest: u32,
    oldest: u32,
    len: usize,
    weight: u64,
}

impl List {
    const EMPTY: List = List {
        newest: NONE,
        oldest: NONE,
        len: 0,
        weight: 0,
    };
}

/// The hill climber's constants (Caffeine's): a step is 6.25% of the
/// cache, it decays by 2% a sample unless the hit ratio moves by 5 points
/// or more (a new workload: restart with a full step).
const STEP: f64 = 0.0625;
const STEP_DECAY: f64 = 0.98;
const RESTART_THRESHOLD: f64 = 0.05;
/// The share of the main space the protected segment may fill. Caffeine's
/// 80% left probation too short on loops (with reads counted by sample,
/// a held entry's count is noisy, and after a halving the noisiest lost
/// their places to candidates: 0.6 points more lost on LIRS's loop at 50%
/// than with 60%); 50% to 80% were measured, and 60% was best on both the
/// public and the synthetic traces (the Zipf ones move by less than 0.4).
const PROTECTED_SHARE: f64 = 0.6;
/// The window's initial share of the cache.
const INITIAL_WINDOW: f64 = 0.01;
/// Reads per hill-climbing sample, per entry held (at least 128 entries;
/// Caffeine's ten).
const SAMPLE_PER_ENTRY: u64 = 10;
/// Candidates at least this frequent are admitted over a victim that has
/// rejected as many candidates in a row as the sketch is sized for, so an
/// attacker who keeps an unread victim's count high (by sketch collisions)
/// cannot pin the main space for long. Caffeine admits such candidates at
/// random, one in 128 every time: on a loop, where held keys and
/// candidates are equally frequent, that let one warm candidate in 128
/// evict a key about to be read (0.45 points lost on LIRS's loop at every
/// size); a run of rejections by one unread victim is what a pin looks
/// like, and a loop's victims are read and move on long before.
const ADMIT_HASHDOS_THRESHOLD: u8 = 6;

/// What only the adaptive policy keeps.
struct Adaptive {
    sketch: Sketch,
    /// The window's share of both bounds, moved by the hill climber.
    window_share: f64,
    step: f64,
    previous_hit_ratio: f64,
    sample_hits: u64,
    sample_misses: u64,
    /// Reads per hill-climbing sample.
    sample_size: u64,
    window_max: (usize, u64),
    protected_max: (usize, u64),
    /// Entries moved from the window to probation for the insert under
    /// way: the newest of probation, admitted or evicted by frequency.
    candidates: usize,
    /// Ghosts of recent removals, direct-mapped by key hash (a new ghost
    /// overwrites whatever shares its slot): fingerprint (high 32 bits),
    /// [`GHOST_REJECTED`], and how many removals of its kind came before it
    /// (low 31 bits, from `removed`). 0: empty.
    ghosts: Vec<u64>,
    /// Removals so far of victims (0) and of rejected candidates (1): the
    /// ghosts' clocks.
    removed: [u64; 2],
    /// Which kind of recent ghost came back more often lately (+1 for a
    /// rejected candidate, −1 for a victim, within ±[`LEAN_LIMIT`]): above
    /// zero, recency is winning and a candidate seen once more than the
    /// victim is admitted; otherwise it must be seen twice more (see
    /// [`Policy::admit`]).
    lean: i32,
    /// The main-space victim that rejected the last candidates, and how
    /// many in a row it rejected (see [`ADMIT_HASHDOS_THRESHOLD`]); reset
    /// when a candidate wins. A victim deleted by the host, whose slot a
    /// later victim reuses, may pass on its count: at worst one warm
    /// candidate is admitted early.
    streak_victim: u32,
    streak: u64,
}

/// How far [`Adaptive::lean`] may go either way: how many ghosts of the
/// other kind it takes to turn the admission's tie-break back.
const LEAN_LIMIT: i32 = 16;

/// A ghost of a candidate the admission rejected (else of a main-space victim).
const GHOST_REJECTED: u64 = 1 << 31;
const GHOST_STAMP: u64 = GHOST_REJECTED - 1;

impl Adaptive {
    fn ghost_slot(&self, hash: u64) -> usize {
        // Bits the sketch's block index does not use.
        (hash.rotate_right(40) as usize) & (self.ghosts.len() - 1)
    }

    /// Remembers that the entry with `hash` was removed: `rejected` by the
    /// admission (it lost to a main-space entry) or as a main-space victim,
    /// stamped with how many removals of its kind came before.
    fn remember(&mut self, hash: u64, rejected: bool) {
        let slot = self.ghost_slot(hash);
        let kind = if rejected { GHOST_REJECTED } else { 0 };
        let count = &mut self.removed[usize::from(rejected)];
        self.ghosts[slot] = (hash & !0xffff_ffff) | kind | (*count & GHOST_STAMP) | 1;
        *count += 1;
    }

    /// A miss on `hash`: if it is the ghost of a recent removal, the
    /// removal was a mistake the window's size could have avoided, and
    /// the window moves by one entry (ARC's rule, in place of waiting for
    /// the hill climber's next sample). Candidates leave the window, and
    /// victims the main space, roughly in order, so a ghost with `d`
    /// removals of its kind after it would still be held by that segment
    /// made `d` entries larger: a rejected candidate says a larger window
    /// would have hit (recency wins: grow it), an evicted victim says a
    /// larger main space would have (frequency wins: shrink the window).
    /// Both kinds are judged over the same reach, an eighth of the cache,
    /// so neither side wins by being removed more often (on Zipf traffic
    /// rejected candidates outnumber victims tenfold, and counting their
    /// returns by reads grew the window to 90% of the cache, near LRU).
    /// Older ghosts say nothing: a cache that much larger may have missed
    /// them too (a loop).
    fn recall(&mut self, hash: u64, len: usize) -> bool {
        let slot = self.ghost_slot(hash);
        let ghost = self.ghosts[slot];
        if ghost == 0 || (ghost ^ hash) >> 32 != 0 {
            return false;
        }
        self.ghosts[slot] = 0;
        let rejected = ghost & GHOST_REJECTED != 0;
        let age = self.removed[usize::from(rejected)].wrapping_sub(ghost) & GHOST_STAMP;
        if age > (len / GHOST_REACH) as u64 {
            return false;
        }
        let step = 1.0 / len.max(1) as f64;
        self.window_share = if rejected {
            self.lean = (self.lean + 1).min(LEAN_LIMIT);
            (self.window_share + step).min(1.0)
        } else {
            self.lean = (self.lean - 1).max(-LEAN_LIMIT);
            (self.window_share - step).max(0.0)
        };
        true
    }
}

/// How far back a ghost counts: removals of its kind, as a fraction
/// (1/this) of the cache's entries.
const GHOST_REACH: usize = 8;

/// The policy state of one cache. Every method that changes an entry's
/// membership says so: `link_new` adds it, `unlink*`, `expire` and `advance`
/// take it out, and the host then frees the slot and disposes of the value.
pub(super) struct Policy {
    lists: [List; 3],
    wheel: TimerWheel,
    /// Entries linked now.
    len: usize,
    /// Linked entries that expire (not [`NEVER`]): those in the wheel.
    timed: usize,
    max_entries: usize,
    max_weight: u64,
    weight: u64,
    default_ttl: Option<u64>,
    /// `None`: exact LRU.
    adaptive: Option<Box<Adaptive>>,
    pub(super) stats: LocalStats,
}

/// `share` of `max`, rounded down.
fn share_of(max: u64, share: f64) -> u64 {
    (max as f64 * share) as u64
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
            lists: [List::EMPTY; 3],
            wheel: TimerWheel::new(),
            len: 0,
            timed: 0,
            max_entries,
            max_weight,
            weight: 0,
            default_ttl: None,
            adaptive: None,
            stats: LocalStats::default(),
        })
    }

    /// Chooses the eviction policy; only while no entry is linked.
    pub(super) fn set_eviction(&mut self, eviction: Eviction) {
        debug_assert_eq!(self.len, 0, "the eviction policy is chosen while empty");
        self.adaptive = match eviction {
            _ if !cfg!(feature = "adaptive") => None,
            Eviction::Lru => None,
            Eviction::Adaptive => {
                let capacity = self.max_entries.min(256);
                let mut adaptive = Adaptive {
                    sketch: Sketch::new(capacity),
                    window_share: INITIAL_WINDOW,
                    step: -STEP,
                    previous_hit_ratio: 0.0,
                    sample_hits: 0,
                    sample_misses: 0,
                    sample_size: SAMPLE_PER_ENTRY * capacity.max(128) as u64,
                    window_max: (0, 0),
                    protected_max: (0, 0),
                    candidates: 0,
                    ghosts: vec![0; capacity.max(128).next_power_of_two()],
                    removed: [0; 2],
                    lean: 0,
                    streak_victim: NONE,
                    streak: 0,
                };
                Self::size_segments(&mut adaptive, self.max_entries, self.max_weight);
                Some(Box::new(adaptive))
            }
        };
    }

    pub(super) fn eviction(&self) -> Eviction {
        if self.adaptive.is_some() {
            Eviction::Adaptive
        } else {
            Eviction::Lru
        }
    }

    fn size_segments(a: &mut Adaptive, max_entries: usize, max_weight: u64) {
        let window = (
            share_of(max_entries as u64, a.window_share) as usize,
            share_of(max_weight, a.window_share),
        );
        a.window_max = window;
        a.protected_max = (
            share_of((max_entries - window.0) as u64, PROTECTED_SHARE) as usize,
            share_of(max_weight - window.1, PROTECTED_SHARE),
        );
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
        let window = if self.adaptive.is_some() {
            self.lists[WINDOW as usize]
        } else {
            List::EMPTY
        };
        LocalStats {
            entries: self.len,
            weight: self.weight,
            window_entries: window.len,
            window_weight: window.weight,
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

    /// A read of a linked entry at `now`: counts a hit and marks it used if
    /// it is live; otherwise unlinks it as expired (and counts a miss), and
    /// the host frees it. `hash` is the key's hash (for the sketch).
    #[inline(always)]
    pub(super) fn read<E: Entries>(&mut self, e: &mut E, idx: u32, now: u64, hash: u64) -> bool {
        if e.expiry(idx).get() > now {
            self.stats.hits += 1;
            if E::ADAPTIVE {
                if let Some(a) = &mut self.adaptive {
                    a.sample_hits += 1;
                    // A main-space entry read again before it moved counts
                    // as a sample (the sketch's block is a cache line the
                    // hit would otherwise always load): one such read in
                    // `FLAGGED_SAMPLE`, picked by mixing the key's hash with
                    // the hit count (deterministic, and not in step with a
                    // loop's period), counts `FLAGGED_SAMPLE` times. Every
                    // read must count, in expectation: a held entry whose
                    // reads went uncounted would look colder than the keys
                    // outside the cache, and lose its place to them.
                    if e.segment(idx) & REFERENCED == 0 {
                        a.sketch.increment(hash);
                    } else if (hash ^ self.stats.hits).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 61
                        == 0
                    {
                        a.sketch.increment_by(hash, FLAGGED_SAMPLE);
                    }
                }
            }
            self.mark_used(e, idx);
            true
        } else {
            self.count_miss();
            self.expire(e, idx);
            false
        }
    }

    /// Counts a read that found nothing.
    #[inline(always)]
    pub(super) fn count_miss(&mut self) {
        self.stats.misses += 1;
        if let Some(a) = &mut self.adaptive {
            a.sample_misses += 1;
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

    /// True while a new entry of `weight` does not fit: the host unlinks
    /// victims with [`unlink_victim`](Policy::unlink_victim) until it does
    /// (after [`prepare_insert`](Policy::prepare_insert)).
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

    /// Before a new entry of `weight` is made: the hill climber may move the
    /// window's size, and the window's oldest entries move to probation until
    /// the new one fits in the window; they are this insert's candidates for
    /// the main space.
    #[inline]
    pub(super) fn prepare_insert<E: Entries>(&mut self, e: &mut E, weight: u64) {
        if !E::ADAPTIVE {
            return;
        }
        let Some(a) = &mut self.adaptive else {
            return;
        };
        a.candidates = 0;
        if self.stats.evictions == 0 {
            // Not full yet: the hit ratio rises as the cache fills, whatever
            // the window's size, so no sample counts until the first
            // eviction (Caffeine starts its climber when the cache is half
            // full). Climbing during the fill moved the window by full
            // steps on noise: 0.7 to 1.3 points lost on cloudPhysicsIO.
            a.sample_hits = 0;
            a.sample_misses = 0;
            a.sample_size = SAMPLE_PER_ENTRY * self.len.max(128) as u64;
        } else if a.sample_hits + a.sample_misses >= a.sample_size {
            self.climb();
        }
        // Before the window's entries move to probation: they are its newest.
        self.demote_overflow(e);
        let Some(a) = &self.adaptive else {
            return;
        };
        let (max_n, max_w) = a.window_max;
        let mut moved = 0;
        loop {
            let window = self.lists[WINDOW as usize];
            if window.len == 0 || (window.len < max_n && window.weight + weight <= max_w) {
                break;
            }
            let idx = window.oldest;
            self.move_to(e, idx, WINDOW, PROBATION);
            moved += 1;
        }
        if let Some(a) = &mut self.adaptive {
            a.candidates = moved;
        }
    }

    /// One hill-climbing step (Caffeine's simple climber): if the hit ratio
    /// of the last sample rose, the window keeps moving the same way,
    /// otherwise it turns back; steps shrink as the ratio settles.
    #[cold]
    fn climb(&mut self) {
        let (max_entries, max_weight, len) = (self.max_entries, self.max_weight, self.len);
        let Some(a) = &mut self.adaptive else {
            return;
        };
        let requests = a.sample_hits + a.sample_misses;
        let hit_ratio = a.sample_hits as f64 / requests as f64;
        let change = hit_ratio - a.previous_hit_ratio;
        let amount = if change >= 0.0 { a.step } else { -a.step };
        a.step = if change.abs() >= RESTART_THRESHOLD {
            STEP.copysign(amount)
        } else {
            amount * STEP_DECAY
        };
        a.previous_hit_ratio = hit_ratio;
        a.window_share = (a.window_share + amount).clamp(0.0, 1.0);
        a.sample_hits = 0;
        a.sample_misses = 0;
        a.sample_size = SAMPLE_PER_ENTRY * max_entries.min(len).max(128) as u64;
        Self::size_segments(a, max_entries, max_weight);
    }

    /// Unlinks the entry to evict next to make room, counting it as evicted
    /// or (if it has expired) expired; the host frees its slot. `keep` (or
    /// [`NONE`]) is an entry that must stay: the one just updated.
    ///
    /// LRU: the least recently used entry. Adaptive: while this insert has
    /// candidates, the newest candidate against the oldest entry of the main
    /// space (probation, then protected): the one the sketch has seen less
    /// often goes. Without candidates: the oldest of probation, protected,
    /// then the window. Probation's oldest entries flagged as read are
    /// first promoted to protected (up to [`MAX_SECOND_CHANCES`]).
    #[inline]
    pub(super) fn unlink_victim<E: Entries>(
        &mut self,
        e: &mut E,
        now: u64,
        keep: u32,
    ) -> (u32, RemovalCause) {
        let idx = if E::ADAPTIVE && self.adaptive.is_some() {
            self.choose_victim(e, now, keep)
        } else {
            self.lists[WINDOW as usize].oldest
        };
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

    /// The oldest entry of `segment` other than `keep` (the next oldest
    /// when `keep` is the oldest), or [`NONE`].
    fn oldest_except(&self, e: &impl Links, segment: u8, keep: u32) -> u32 {
        let oldest = self.lists[segment as usize].oldest;
        if oldest == keep && oldest != NONE {
            e.recency(oldest).newer
        } else {
            oldest
        }
    }

    fn choose_victim<E: Entries>(&mut self, e: &mut E, now: u64, keep: u32) -> u32 {
        let candidates = self.adaptive.as_ref().map_or(0, |a| a.candidates);
        // Probation's oldest entries read since they came: promoted now
        // (protected's overflow moves back before the next insert).
        for _ in 0..MAX_SECOND_CHANCES {
            let probation = self.lists[PROBATION as usize];
            if probation.len <= candidates || e.segment(probation.oldest) & REFERENCED == 0 {
                break;
            }
            self.move_to(e, probation.oldest, PROBATION, PROTECTED);
        }
        let probation = self.lists[PROBATION as usize];
        let mut victim = if probation.len > candidates {
            self.oldest_except(e, PROBATION, keep)
        } else {
            NONE
        };
        if victim != NONE && victim == probation.newest && candidates > 0 {
            // `keep` was the oldest, and the next one is a candidate.
            victim = NONE;
        }
        for segment in [PROTECTED, WINDOW] {
            if victim == NONE {
                victim = self.oldest_except(e, segment, keep);
            }
        }
        if candidates == 0 {
            return victim;
        }
        let candidate = probation.newest;
        let expired = e.expiry(candidate).get() <= now;
        if victim == NONE || expired || !self.admit(e, candidate, victim, now) {
            let rejected = victim != NONE && !expired;
            if let Some(a) = &mut self.adaptive {
                a.candidates -= 1;
                if rejected {
                    a.remember(e.hash(candidate), true);
                    if a.streak_victim == victim {
                        a.streak += 1;
                    } else {
                        a.streak_victim = victim;
                        a.streak = 1;
                    }
                }
            }
            if rejected {
                self.stats.admissions_rejected += 1;
            }
            return candidate;
        }
        if let Some(a) = &mut self.adaptive {
            // The candidate won: the run of rejections ends with its victim.
            a.streak = 0;
        }
        if self.segment(e, victim) != WINDOW && e.expiry(victim).get() > now {
            if let Some(a) = &mut self.adaptive {
                a.remember(e.hash(victim), false);
            }
        }
        victim
    }

    /// Most victims a candidate's frequency is compared against.
    const MAX_VICTIMS: usize = 16;

    /// True if `candidate` should take `victim`'s place in the main space.
    /// A candidate heavier than the victim would displace it and the next
    /// ones (towards the newest) until its weight is freed: it must be
    /// seen more often than all of them together (as moka admits).
    fn admit<E: Entries>(&self, e: &E, candidate: u32, victim: u32, now: u64) -> bool {
        if e.expiry(victim).get() <= now {
            return true;
        }
        let Some(a) = &self.adaptive else {
            return false;
        };
        let candidate_hash = e.hash(candidate);
        // Less the insert that made it a candidate, unless recent ghosts
        // say recency is winning (`lean` above zero). That one read is why
        // it is compared at all, so it says little of its rate (the
        // inspection paradox): with it, on a loop, every candidate
        // outscored the victims not yet read since the sketch's last
        // halving, and the main space churned (4.4 points lost on LIRS's
        // loop at 50%). Without it always, traffic where a key's second
        // read comes soon after its first (block I/O, web pages) lost
        // those keys to older, once-frequent victims: 1.8 points on
        // cloudPhysicsIO at 20%, 0.5 on web07. On a loop, rejected
        // candidates come back only after the whole loop, beyond the
        // ghosts' reach, so the lean stays at zero there.
        let discount = u32::from(a.lean <= 0);
        let candidate_freq = u32::from(a.sketch.frequency(candidate_hash)).saturating_sub(discount);
        let candidate_weight = e.cold(candidate).weight;
        let mut victims_freq = u32::from(a.sketch.frequency(e.hash(victim)));
        let mut victims_weight = e.cold(victim).weight;
        let mut next = victim;
        for _ in 1..Self::MAX_VICTIMS {
            if victims_weight >= candidate_weight || victims_freq >= candidate_freq {
                break;
            }
            next = e.recency(next).newer;
            if next == NONE || next == candidate {
                break;
            }
            victims_freq += u32::from(a.sketch.frequency(e.hash(next)));
            victims_weight += e.cold(next).weight;
        }
        if candidate_freq > victims_freq {
            return true;
        }
        if candidate_freq < u32::from(ADMIT_HASHDOS_THRESHOLD) || next != victim {
            return false;
        }
        // A pinned victim gives way (deterministic: no random number).
        a.streak_victim == victim && a.streak >= a.sketch.capacity() as u64
    }

    /// Links a new entry at `idx` (its expiry written by the host) as the
    /// newest of the window (LRU: of the one list).
    #[inline]
    pub(super) fn link_new<E: Entries>(&mut self, e: &mut E, idx: u32, weight: u64, hash: u64) {
        *e.cold_mut(idx) = Cold {
            weight,
            ..Cold::NEW
        };
        if E::ADAPTIVE {
            e.set_segment(idx, WINDOW);
            if let Some(a) = &mut self.adaptive {
                a.candidates = 0;
                a.sketch.increment(hash);
                if a.recall(hash, self.len) {
                    Self::size_segments(a, self.max_entries, self.max_weight);
                }
                if self.len >= a.sketch.capacity() && a.sketch.capacity() < self.max_entries {
                    // A cache bound by weight grows its sketch (and its
                    // ghosts) as it fills, keeping what they know.
                    a.sketch.double();
                    if a.ghosts.len() < a.sketch.capacity() {
                        a.ghosts.extend_from_within(..);
                    }
                }
            }
        }
        self.link_newest(e, idx, WINDOW);
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
    /// [`over_weight`](Policy::over_weight), keeping `idx` (alone it fits).
    pub(super) fn update<E: Entries>(
        &mut self,
        e: &mut E,
        idx: u32,
        weight: u64,
        expires_at: NonZeroU64,
    ) {
        let segment = self.segment(e, idx);
        let cold = e.cold_mut(idx);
        let old = cold.weight;
        cold.weight = weight;
        self.weight = self.weight - old + weight;
        let list = &mut self.lists[segment as usize];
        list.weight = list.weight - old + weight;
        self.reschedule(e, idx, expires_at);
        if E::ADAPTIVE {
            if let Some(a) = &mut self.adaptive {
                a.sketch.increment(e.hash(idx));
            }
        }
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

    #[inline(always)]
    fn segment<E: Entries>(&self, e: &E, idx: u32) -> u8 {
        if E::ADAPTIVE && self.adaptive.is_some() {
            e.segment(idx) & !REFERENCED
        } else {
            WINDOW
        }
    }

    /// Unlinks entry `idx` from the lists and the weight.
    #[inline]
    pub(super) fn unlink<E: Entries>(&mut self, e: &mut E, idx: u32) {
        let segment = self.segment(e, idx);
        let weight = e.cold(idx).weight;
        self.list_unlink(e, idx, segment, weight);
        if e.expiry(idx) != NEVER {
            self.timed -= 1;
        }
        self.wheel.cancel(e, idx);
        self.weight -= weight;
        self.len -= 1;
    }

    #[inline(always)]
    fn list_unlink(&mut self, e: &mut impl Entries, idx: u32, segment: u8, weight: u64) {
        let Recency { newer, older } = *e.recency(idx);
        let list = &mut self.lists[segment as usize];
        if newer == NONE {
            list.newest = older;
        } else {
            e.recency_mut(newer).older = older;
        }
        if older == NONE {
            list.oldest = newer;
        } else {
            e.recency_mut(older).newer = newer;
        }
        list.len -= 1;
        list.weight -= weight;
    }

    /// Moves a linked entry to the newest end of another segment.
    fn move_to(&mut self, e: &mut impl Entries, idx: u32, from: u8, to: u8) {
        let weight = e.cold(idx).weight;
        self.list_unlink(e, idx, from, weight);
        e.set_segment(idx, to);
        self.lists[to as usize].len += 1;
        self.lists[to as usize].weight += weight;
        self.push_newest(e, idx, to);
    }

    /// Forgets every entry (the host frees them all). Counters and the
    /// frequency sketch are kept.
    pub(super) fn clear(&mut self) {
        self.wheel = TimerWheel::new();
        self.lists = [List::EMPTY; 3];
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

    /// The least recently used entry, if any (LRU only).
    pub(super) fn oldest(&self) -> Option<u32> {
        let oldest = self.lists[WINDOW as usize].oldest;
        (oldest != NONE).then_some(oldest)
    }

    /// The entry used just after `idx` (towards the newest), if any.
    pub(super) fn newer<L: Links>(e: &L, idx: u32) -> Option<u32> {
        let newer = e.recency(idx).newer;
        (newer != NONE).then_some(newer)
    }

    /// What `n` sets of new entries of weight 0 that never expire do in a
    /// full LRU cache where no entry expires, at once: each would evict the
    /// least recently used entry and link the new one, in its slot, as the
    /// most recently used. So the `n` oldest entries, in order, move to the
    /// newest end (one splice), weigh 0, and count as `n` evictions and `n`
    /// inserts. The host has already filed the new keys under those slots.
    /// `n` is at most the number of entries.
    pub(super) fn recycle_oldest<E: Entries>(&mut self, e: &mut E, n: usize) {
        debug_assert!(n <= self.len && !self.may_expire());
        debug_assert!(!E::ADAPTIVE || self.adaptive.is_none());
        if n == 0 {
            return;
        }
        let list = &mut self.lists[WINDOW as usize];
        let first = list.oldest;
        let mut last = first;
        for i in 0..n {
            if i > 0 {
                last = e.recency(last).newer;
            }
            let cold = e.cold_mut(last);
            self.weight -= cold.weight;
            list.weight -= cold.weight;
            cold.weight = 0;
        }
        if last != list.newest {
            let next_oldest = e.recency(last).newer;
            e.recency_mut(next_oldest).older = NONE;
            list.oldest = next_oldest;
            let newest = list.newest;
            e.recency_mut(newest).newer = first;
            e.recency_mut(first).older = newest;
            e.recency_mut(last).newer = NONE;
            list.newest = last;
        }
        self.stats.evictions += n as u64;
        self.stats.inserts += n as u64;
    }

    /// Slots from most to least recently used: LRU's one list; adaptive, the
    /// window, then protected, then probation (each newest first), so the
    /// last is the next victim when no candidate competes.
    pub(super) fn by_recency<L: Links>(&self, e: L) -> impl Iterator<Item = u32> {
        let heads = [
            self.lists[WINDOW as usize].newest,
            self.lists[PROTECTED as usize].newest,
            self.lists[PROBATION as usize].newest,
        ];
        heads.into_iter().flat_map(move |head| {
            let e = &e;
            std::iter::successors((head != NONE).then_some(head), move |&idx| {
                let older = e.recency(idx).older;
                (older != NONE).then_some(older)
            })
            .collect::<Vec<_>>()
        })
    }

    /// Marks entry `idx` used: the newest of the window (LRU: of the one
    /// list); in the main space, flagged [`REFERENCED`].
    #[inline(always)]
    pub(super) fn mark_used<E: Entries>(&mut self, e: &mut E, idx: u32) {
        let segment = if E::ADAPTIVE && self.adaptive.is_some() {
            e.segment(idx)
        } else {
            WINDOW
        };
        if segment != WINDOW {
            if segment & REFERENCED == 0 {
                e.set_segment(idx, segment | REFERENCED);
            }
            return;
        }
        // Unlink then link newest, fused for the hot path of `get` (each
        // node is looked up once, and the cases a non-newest entry cannot
        // be in are skipped).
        let list = &mut self.lists[segment as usize];
        let newest = list.newest;
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
            list.oldest = newer;
        } else {
            e.recency_mut(older).newer = newer;
        }
        e.recency_mut(newest).newer = idx;
        list.newest = idx;
    }

    /// Moves protected's oldest entries to probation while protected holds
    /// more than its share; a flagged one gets a second chance instead (at
    /// most [`MAX_SECOND_CHANCES`]).
    fn demote_overflow<E: Entries>(&mut self, e: &mut E) {
        let Some(a) = &self.adaptive else {
            return;
        };
        let (max_n, max_w) = a.protected_max;
        let mut chances = 0;
        loop {
            let protected = self.lists[PROTECTED as usize];
            if protected.len <= 1 || (protected.len <= max_n && protected.weight <= max_w) {
                break;
            }
            let oldest = protected.oldest;
            // `move_to` clears the flag.
            if e.segment(oldest) & REFERENCED != 0 && chances < MAX_SECOND_CHANCES {
                chances += 1;
                self.move_to(e, oldest, PROTECTED, PROTECTED);
            } else {
                self.move_to(e, oldest, PROTECTED, PROBATION);
            }
        }
    }

    #[inline]
    fn link_newest(&mut self, e: &mut impl Entries, idx: u32, segment: u8) {
        let weight = e.cold(idx).weight;
        let list = &mut self.lists[segment as usize];
        list.len += 1;
        list.weight += weight;
        self.push_newest(e, idx, segment);
    }

    /// Links `idx` at the newest end of a list (counts already updated).
    #[inline(always)]
    fn push_newest(&mut self, e: &mut impl Entries, idx: u32, segment: u8) {
        let list = &mut self.lists[segment as usize];
        let old_newest = list.newest;
        *e.recency_mut(idx) = Recency {
            newer: NONE,
            older: old_newest,
        };
        if old_newest == NONE {
            list.oldest = idx;
        } else {
            e.recency_mut(old_newest).newer = idx;
        }
        list.newest = idx;
    }
}

#[cfg(all(test, feature = "adaptive"))]
mod tests {
    use super::*;

    fn adaptive(max_entries: usize) -> Policy {
        let mut policy = Policy::new(max_entries, u64::MAX).unwrap();
        policy.set_eviction(Eviction::Adaptive);
        policy
    }

    fn hash(n: u64) -> u64 {
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
    }

    #[test]
    fn returning_ghosts_turn_the_admission_lean_and_it_is_bounded() {
        let mut policy = adaptive(1_000);
        let a = policy.adaptive.as_mut().unwrap();
        assert_eq!(a.lean, 0, "no ghost yet: candidates pay for their insert");
        // A rejected candidate back at once: recency is winning.
        a.remember(hash(1), true);
        assert!(a.recall(hash(1), 1_000));
        assert_eq!(a.lean, 1);
        // Two victims back at once: frequency is winning again.
        for n in [2, 3] {
            a.remember(hash(n), false);
            assert!(a.recall(hash(n), 1_000));
        }
        assert_eq!(a.lean, -1);
        for n in 10..100 {
            a.remember(hash(n), true);
            assert!(a.recall(hash(n), 1_000));
        }
        assert_eq!(
            a.lean, LEAN_LIMIT,
            "bounded, so a change of traffic turns it back soon"
        );
    }

    #[test]
    fn a_ghost_beyond_its_reach_moves_neither_the_lean_nor_the_window() {
        let mut policy = adaptive(1_000);
        let a = policy.adaptive.as_mut().unwrap();
        let share = a.window_share;
        a.remember(hash(1), true);
        // More rejections after it than an eighth of the cache (a loop).
        a.removed[1] += (1_000 / GHOST_REACH) as u64 + 1;
        assert!(!a.recall(hash(1), 1_000));
        assert_eq!(a.lean, 0);
        assert_eq!(a.window_share, share);
    }
}
