//! [`SlotPolicy`]: the rules of [`LocalCache`](super::LocalCache) for a
//! host that keeps keys and values itself and names entries by slot number.

use std::num::NonZeroU64;

use super::policy::{Cold, Entries, Links, Policy, Recency, NEVER};
use super::wheel::NONE;
use super::{Expiry, LocalCacheError, LocalStats, MAX_ENTRIES_LIMIT};

/// The policy of a [`LocalCache`](super::LocalCache) built with
/// [`Eviction::Lru`](super::Eviction::Lru) (LRU by count and by weight,
/// per-entry expiry reclaimed by a timer wheel, the same counters), run by
/// the same code, for entries the host names by slot number. (The adaptive
/// default needs each key's hash for its frequency sketch; slots carry none.)
///
/// The host keeps keys and values (say, a JS `Map` from key to slot and an
/// array of values) and tells the policy what happens by slot: reads, sets,
/// deletes. The policy hands out the slots and says which ones left: every
/// call that can remove entries pushes their slots to a `removed` vector the
/// host passes in (and reuses: no allocation per call). Nothing is hashed:
/// a read is a relink by index, so hosts that batch reads (as the
/// WebAssembly binding does) pay a few nanoseconds per read.
///
/// ```
/// use stratacache::local::SlotPolicy;
/// use stratacache::Expiry;
///
/// let mut policy = SlotPolicy::new(2, u64::MAX)?;
/// let mut removed = Vec::new();
/// let a = policy.set(None, 0, Expiry::Never, 0, &mut removed).unwrap();
/// let b = policy.set(None, 0, Expiry::Never, 0, &mut removed).unwrap();
/// assert!(policy.read(a, 0, &mut removed)); // a is now the most recent
/// let c = policy.set(None, 0, Expiry::Never, 0, &mut removed).unwrap();
/// assert_eq!(removed, [b]); // b was evicted...
/// assert_eq!(c, b); // ...and its slot holds the new entry
/// # Ok::<(), stratacache::LocalCacheError>(())
/// ```
pub struct SlotPolicy {
    store: Store,
    policy: Policy,
}

/// The policy's view of the slots.
struct Slots<'a>(&'a mut Store);

impl Links for Slots<'_> {
    #[inline(always)]
    fn recency(&self, idx: u32) -> &Recency {
        self.0.recency(idx)
    }
}

impl Entries for Slots<'_> {
    // Slots carry no key hash: a slot host runs exact LRU.
    const ADAPTIVE: bool = false;
    #[inline(always)]
    fn segment(&self, _idx: u32) -> u8 {
        0
    }
    #[inline(always)]
    fn set_segment(&mut self, _idx: u32, _segment: u8) {}
    #[inline(always)]
    fn hash(&self, _idx: u32) -> u64 {
        0
    }
    #[inline(always)]
    fn recency_mut(&mut self, idx: u32) -> &mut Recency {
        let links = &mut self.0.recency[idx as usize];
        debug_assert_ne!(links.newer, VACANT, "SlotPolicy: a vacant slot was used");
        links
    }
    #[inline(always)]
    fn expiry(&self, idx: u32) -> NonZeroU64 {
        self.0.expiry[idx as usize]
    }
    #[inline(always)]
    fn set_expiry(&mut self, idx: u32, expires_at: NonZeroU64) {
        self.0.expiry[idx as usize] = expires_at;
    }
    #[inline(always)]
    fn cold(&self, idx: u32) -> &Cold {
        &self.0.cold[idx as usize]
    }
    #[inline(always)]
    fn cold_mut(&mut self, idx: u32) -> &mut Cold {
        &mut self.0.cold[idx as usize]
    }
}

struct View<'a>(&'a Store);

impl Links for View<'_> {
    fn recency(&self, idx: u32) -> &Recency {
        self.0.recency(idx)
    }
}

/// Marks a free slot: its `newer` link (a held slot's is a slot number,
/// below [`MAX_ENTRIES_LIMIT`], or `NONE`).
const VACANT: u32 = MAX_ENTRIES_LIMIT as u32;

/// The slots, in parallel flat vectors (slots are dense, below
/// `max_entries`), with the free ones on a stack, reused last freed first
/// as `LocalCache`'s slab reuses its indices, so both hand out the same
/// slots. The recency links have a vector of their own (8 bytes a slot),
/// so a read relinks in it and loads nothing else; a free slot is marked
/// there too (its `newer` is [`VACANT`]), so telling a held slot costs no
/// extra load either.
struct Store {
    recency: Vec<Recency>,
    /// Stale where the slot is free, as is `cold`.
    expiry: Vec<NonZeroU64>,
    cold: Vec<Cold>,
    free: Vec<u32>,
}

impl Store {
    fn with_capacity(capacity: usize) -> Self {
        Store {
            recency: Vec::with_capacity(capacity),
            expiry: Vec::with_capacity(capacity),
            cold: Vec::with_capacity(capacity),
            free: Vec::new(),
        }
    }

    #[inline(always)]
    fn contains(&self, idx: usize) -> bool {
        matches!(self.recency.get(idx), Some(links) if links.newer != VACANT)
    }

    /// The links of a held slot (the policy only names held slots).
    #[inline(always)]
    fn recency(&self, idx: u32) -> &Recency {
        let links = &self.recency[idx as usize];
        debug_assert_ne!(links.newer, VACANT, "SlotPolicy: a vacant slot was used");
        links
    }

    /// When the entry at `idx` expires, if the slot is held.
    #[inline(always)]
    fn expiry(&self, idx: usize) -> Option<NonZeroU64> {
        self.contains(idx).then(|| self.expiry[idx])
    }

    /// Fills a free slot (the last freed) or a new one, for an entry
    /// expiring at `expires_at`, in no list yet; returns it.
    #[inline(always)]
    fn insert(&mut self, expires_at: NonZeroU64) -> u32 {
        match self.free.pop() {
            Some(idx) => {
                self.refill(idx, expires_at);
                idx
            }
            None => {
                self.recency.push(Recency::UNLINKED);
                self.expiry.push(expires_at);
                self.cold.push(Cold::NEW);
                (self.recency.len() - 1) as u32
            }
        }
    }

    /// A new entry in slot `idx` (free, or just unlinked by the policy).
    #[inline(always)]
    fn refill(&mut self, idx: u32, expires_at: NonZeroU64) {
        self.recency[idx as usize] = Recency::UNLINKED;
        self.expiry[idx as usize] = expires_at;
    }

    /// Frees a held slot.
    #[inline(always)]
    fn remove(&mut self, idx: u32) {
        let links = &mut self.recency[idx as usize];
        if links.newer == VACANT {
            vacant();
        }
        links.newer = VACANT;
        self.free.push(idx);
    }

    /// Slots held.
    fn len(&self) -> usize {
        self.recency.len() - self.free.len()
    }

    fn clear(&mut self) {
        self.recency.clear();
        self.expiry.clear();
        self.cold.clear();
        self.free.clear();
    }
}

/// Takes `slot` out of `removed[from..]`: the set that evicted its entry
/// gave the slot to a new one the host has filed already.
fn forget_reused(removed: &mut Vec<u32>, from: usize, slot: u32) {
    if let Some(i) = removed[from..].iter().position(|&s| s == slot) {
        removed.remove(from + i);
    }
}

#[cold]
#[inline(never)]
fn vacant() -> ! {
    panic!("SlotPolicy: a vacant slot was used")
}

impl SlotPolicy {
    /// A policy for at most `max_entries` entries weighing at most
    /// `max_weight` in total, with no default TTL. Slots are numbered from 0
    /// and stay below `max_entries`.
    pub fn new(max_entries: usize, max_weight: u64) -> Result<Self, LocalCacheError> {
        let policy = Policy::new(max_entries, max_weight)?;
        let capacity = max_entries.min(1 << 12);
        Ok(SlotPolicy {
            store: Store::with_capacity(capacity),
            policy,
        })
    }

    /// Sets the TTL used by [`Expiry::Default`] (`None`: never expire).
    pub fn with_default_ttl(mut self, ttl_ms: Option<u64>) -> Result<Self, LocalCacheError> {
        self.policy.set_default_ttl(ttl_ms)?;
        Ok(self)
    }

    /// True if `slot` holds an entry (expired or not).
    pub fn holds(&self, slot: u32) -> bool {
        self.store.contains(slot as usize)
    }

    /// A read of `slot` at `now`, as [`LocalCache::get`](super::LocalCache::get)
    /// counts and orders it: true (a hit; the slot becomes the most recently
    /// used) if it holds a live entry. An expired entry is removed (its slot
    /// pushed to `removed`) and, like a slot that holds nothing (a host can
    /// pass `u32::MAX` for a key it did not find), counts as a miss.
    // Not `#[inline]`: one copy for every caller (the wasm module's size).
    pub fn read(&mut self, slot: u32, now: u64, removed: &mut Vec<u32>) -> bool {
        if !self.store.contains(slot as usize) {
            self.policy.count_miss();
            return false;
        }
        let (policy, mut slots) = self.parts();
        if policy.read(&mut slots, slot, now, 0) {
            return true;
        }
        self.store.remove(slot);
        removed.push(slot);
        false
    }

    /// [`read`](SlotPolicy::read)s each slot in turn, all at `now`.
    ///
    /// While no entry may expire, the batch takes a shorter path with the
    /// same outcome: each held slot is marked used (no expiry to compare),
    /// and the hits and misses are counted once.
    pub fn read_many(&mut self, slots: &[u32], now: u64, removed: &mut Vec<u32>) {
        if !self.policy.all_live(now) {
            for &slot in slots {
                self.read(slot, now, removed);
            }
            return;
        }
        let (policy, mut store) = self.parts();
        let mut hits = 0;
        for &slot in slots {
            if store.0.contains(slot as usize) {
                policy.mark_used(&mut store, slot);
                hits += 1;
            }
        }
        policy.count_reads(hits, slots.len() as u64 - hits);
    }

    /// Stores an entry of `weight` expiring after `expiry`, at `now`, as
    /// [`LocalCache::set`](super::LocalCache::set) does: `slot` is the slot
    /// the host holds the key under, if any, and the entry there gets the
    /// new weight and expiry; otherwise (or if that entry has just been
    /// reclaimed) a new entry is made, evicting least recently used ones
    /// until both bounds hold. Returns the entry's slot, or `None` if nothing
    /// was stored (heavier than the whole cache, or a zero TTL); then the
    /// entry at `slot`, if any, is removed.
    ///
    /// Every slot that left is pushed to `removed`, `slot` itself included
    /// when it went; the returned slot may be one of them (reused for the
    /// new entry), so the host drops what `removed` names first, then files
    /// the key under the returned slot.
    // Not `#[inline]`: one copy of the eviction code for every caller (the
    // WebAssembly module's size).
    pub fn set(
        &mut self,
        slot: Option<u32>,
        weight: u64,
        expiry: Expiry,
        now: u64,
        removed: &mut Vec<u32>,
    ) -> Option<u32> {
        self.advance(now, removed);
        let existing = slot.filter(|&s| self.store.contains(s as usize));
        let expires_at = match self.policy.expires_at(expiry, now) {
            Some(at) if !self.policy.reject_too_heavy(weight) => at,
            _ => {
                if let Some(idx) = existing {
                    self.remove(idx);
                    removed.push(idx);
                }
                return None;
            }
        };
        if let Some(idx) = existing {
            let (policy, mut slots) = self.parts();
            policy.update(&mut slots, idx, weight, expires_at);
            while policy.over_weight() {
                let (old, _) = policy.unlink_victim(&mut slots, now, NONE);
                slots.0.remove(old);
                removed.push(old);
            }
            return Some(idx);
        }
        // One out, one in: the last slot vacated is refilled in place.
        let mut vacated = None;
        while self.policy.must_make_room(weight) {
            if let Some(idx) = vacated.take() {
                self.store.remove(idx);
            }
            let (policy, mut slots) = self.parts();
            let (idx, _) = policy.unlink_victim(&mut slots, now, NONE);
            removed.push(idx);
            vacated = Some(idx);
        }
        let idx = match vacated {
            Some(idx) => {
                self.store.refill(idx, expires_at);
                idx
            }
            None => self.store.insert(expires_at),
        };
        let (policy, mut slots) = self.parts();
        policy.link_new(&mut slots, idx, weight, 0);
        Some(idx)
    }

    /// The slots the next new entries would get, in order, if they are made
    /// one after another with nothing else in between, each by
    /// `set(None, 0, Expiry::Default, ..)`: weight 0, the default TTL.
    /// Writes at most `max` of them to `plan` (cleared first), and none
    /// whose entry would evict an entry of the plan itself.
    ///
    /// A host uses the plan to file new keys under their slots at once and
    /// report the sets later, in one batch of `set` calls (which give the
    /// same slots, evicting the same entries: the slot of an evicted entry
    /// is the new entry's). The plan is empty while some entry may expire
    /// (one has a TTL, or the default TTL is set): then what a set removes
    /// depends on when it happens.
    pub fn plan_inserts(&self, max: usize, plan: &mut Vec<u32>) {
        plan.clear();
        if self.policy.may_expire() {
            return;
        }
        // While there is room: free slots (last freed first), then new ones.
        let held = self.policy.len();
        let room = self.policy.max_entries().saturating_sub(held).min(max);
        let mut free = self.store.free.iter().rev();
        let mut next_new = self.store.recency.len() as u32;
        for _ in 0..room {
            plan.push(match free.next() {
                Some(&slot) => slot,
                None => {
                    next_new += 1;
                    next_new - 1
                }
            });
        }
        // Then the entries there now, oldest first: each set evicts one.
        let mut slot = self.policy.oldest();
        for _ in 0..(max - room).min(held) {
            let Some(oldest) = slot else { break };
            plan.push(oldest);
            slot = Policy::newer(&View(&self.store), oldest);
        }
    }

    /// Makes `n` new entries as `n` calls of `set(None, 0, Expiry::Default,
    /// now, ..)` do — the sets a [plan](SlotPolicy::plan_inserts) announced,
    /// which take the planned slots — but where they evict, in one splice
    /// of the recency list instead of `n` evictions and links. The slots
    /// those sets evict are not pushed to `removed`: each is a new entry's
    /// slot, filed by the host from the plan. Anything else removed on the
    /// way (expired entries, when sets are made without a plan) is.
    pub fn set_new_many(&mut self, n: usize, now: u64, removed: &mut Vec<u32>) {
        let mut left = n;
        while left > 0 && (self.policy.may_expire() || self.store.len() < self.policy.max_entries())
        {
            let from = removed.len();
            if let Some(slot) = self.set(None, 0, Expiry::Default, now, removed) {
                forget_reused(removed, from, slot);
            }
            left -= 1;
        }
        if left == 0 {
            return;
        }
        self.advance(now, removed);
        if left > self.store.len() {
            // More sets than entries: they evict each other, one by one.
            for _ in 0..left {
                let from = removed.len();
                if let Some(slot) = self.set(None, 0, Expiry::Default, now, removed) {
                    forget_reused(removed, from, slot);
                }
            }
            return;
        }
        let (policy, mut slots) = self.parts();
        policy.recycle_oldest(&mut slots, left);
    }

    /// Gives the live entry at `slot` a new expiry (a zero one removes it);
    /// false if `slot` holds nothing or an expired entry (which is removed).
    /// Removed slots, this one included, are pushed to `removed`.
    pub fn touch(&mut self, slot: u32, expiry: Expiry, now: u64, removed: &mut Vec<u32>) -> bool {
        self.advance(now, removed);
        let Some(expires_at) = self.store.expiry(slot as usize) else {
            return false;
        };
        let live = expires_at.get() > now;
        let (policy, mut slots) = self.parts();
        match policy.expires_at(expiry, now) {
            Some(at) if live => {
                policy.reschedule(&mut slots, slot, at);
                return true;
            }
            _ if live => policy.unlink(&mut slots, slot),
            _ => policy.expire(&mut slots, slot),
        }
        self.store.remove(slot);
        removed.push(slot);
        live
    }

    /// Removes the entry at `slot` (the host's delete); false if it held none.
    pub fn remove(&mut self, slot: u32) -> bool {
        if !self.store.contains(slot as usize) {
            return false;
        }
        let (policy, mut slots) = self.parts();
        policy.unlink(&mut slots, slot);
        self.store.remove(slot);
        true
    }

    /// Removes every entry expired at `now`, pushing their slots to
    /// `removed`; returns how many.
    pub fn purge_expired(&mut self, now: u64, removed: &mut Vec<u32>) -> usize {
        let from = removed.len();
        let (policy, mut slots) = self.parts();
        policy.purge_expired(&mut slots, now, removed);
        for &idx in &removed[from..] {
            self.store.remove(idx);
        }
        removed.len() - from
    }

    /// Removes every entry (the host drops all its keys). Counters are kept.
    pub fn clear(&mut self) {
        self.policy.clear();
        self.store.clear();
    }

    /// When the entry at `slot` expires (ms): `Some(None)` if never, `None`
    /// if `slot` holds nothing.
    #[inline]
    pub fn expires_at(&self, slot: u32) -> Option<Option<u64>> {
        let at = self.store.expiry(slot as usize)?;
        Some((at != NEVER).then_some(at.get()))
    }

    /// Entries held (expired ones not yet reclaimed included).
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.store.len() == 0
    }

    /// Total weight held.
    pub fn weight(&self) -> u64 {
        self.policy.weight()
    }

    /// Counters since creation and current gauges.
    pub fn stats(&self) -> LocalStats {
        self.policy.stats()
    }

    /// Slots from most to least recently used (for debugging and tests; O(n)).
    pub fn slots_by_recency(&self) -> impl Iterator<Item = u32> + '_ {
        self.policy.by_recency(View(&self.store))
    }

    fn parts(&mut self) -> (&mut Policy, Slots<'_>) {
        (&mut self.policy, Slots(&mut self.store))
    }

    /// Moves time to `now`, removing what expired on the way.
    #[inline(always)]
    fn advance(&mut self, now: u64, removed: &mut Vec<u32>) {
        let from = removed.len();
        let (policy, mut slots) = self.parts();
        policy.advance(&mut slots, now, removed);
        for &idx in &removed[from..] {
            self.store.remove(idx);
        }
    }
}

impl std::fmt::Debug for SlotPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotPolicy")
            .field("entries", &self.store.len())
            .field("max_entries", &self.policy.max_entries())
            .field("weight", &self.policy.weight())
            .field("max_weight", &self.policy.max_weight())
            .field("default_ttl_ms", &self.policy.default_ttl())
            .finish()
    }
}
