//! [`SlotPolicy`]: the rules of [`LocalCache`](super::LocalCache) for a
//! host that keeps keys and values itself and names entries by slot number.

use super::policy::{Cold, Entries, Links, Meta, Policy, NEVER};
use super::{Expiry, LocalCacheError, LocalStats};

/// The policy of a [`LocalCache`](super::LocalCache) (LRU by count and by
/// weight, per-entry expiry reclaimed by a timer wheel, the same counters),
/// run by the same code, for entries the host names by slot number.
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
/// use tiercache::local::SlotPolicy;
/// use tiercache::Expiry;
///
/// let mut policy = SlotPolicy::new(2, u64::MAX)?;
/// let mut removed = Vec::new();
/// let a = policy.set(None, 0, Expiry::Never, 0, &mut removed).unwrap();
/// let b = policy.set(None, 0, Expiry::Never, 0, &mut removed).unwrap();
/// assert!(policy.read(a, 0, &mut removed)); // a is now the most recent
/// let c = policy.set(None, 0, Expiry::Never, 0, &mut removed).unwrap();
/// assert_eq!(removed, [b]); // b was evicted...
/// assert_eq!(c, b); // ...and its slot holds the new entry
/// # Ok::<(), tiercache::LocalCacheError>(())
/// ```
pub struct SlotPolicy {
    metas: Store,
    /// `cold[i]` belongs to `metas[i]` (stale where `metas[i]` is vacant).
    cold: Vec<Cold>,
    policy: Policy,
}

/// The policy's view of the slots.
struct Slots<'a> {
    metas: &'a mut Store,
    cold: &'a mut [Cold],
}

impl Links for Slots<'_> {
    #[inline(always)]
    fn meta(&self, idx: u32) -> &Meta {
        self.metas.at(idx as usize)
    }
}

impl Entries for Slots<'_> {
    #[inline(always)]
    fn meta_mut(&mut self, idx: u32) -> &mut Meta {
        self.metas.at_mut(idx as usize)
    }
    #[inline(always)]
    fn cold(&self, idx: u32) -> &Cold {
        &self.cold[idx as usize]
    }
    #[inline(always)]
    fn cold_mut(&mut self, idx: u32) -> &mut Cold {
        &mut self.cold[idx as usize]
    }
}

struct View<'a>(&'a Store);

impl Links for View<'_> {
    fn meta(&self, idx: u32) -> &Meta {
        self.0.at(idx as usize)
    }
}

/// The slots: a flat vector (slots are dense, below `max_entries`) with the
/// free ones on a stack, reused last freed first as `LocalCache`'s slab
/// reuses its indices, so both hand out the same slots. A vacant slot is a
/// `None` (the non-zero expiry is its niche: no extra space, one compare).
struct Store {
    metas: Vec<Option<Meta>>,
    free: Vec<u32>,
}

impl Store {
    fn with_capacity(capacity: usize) -> Self {
        Store {
            metas: Vec::with_capacity(capacity),
            free: Vec::new(),
        }
    }

    #[inline(always)]
    fn contains(&self, idx: usize) -> bool {
        matches!(self.metas.get(idx), Some(Some(_)))
    }

    #[inline(always)]
    fn get(&self, idx: usize) -> Option<&Meta> {
        self.metas.get(idx)?.as_ref()
    }

    /// The entry at a held slot (the policy only names held slots).
    #[inline(always)]
    fn at(&self, idx: usize) -> &Meta {
        match &self.metas[idx] {
            Some(meta) => meta,
            None => vacant(),
        }
    }

    #[inline(always)]
    fn at_mut(&mut self, idx: usize) -> &mut Meta {
        match &mut self.metas[idx] {
            Some(meta) => meta,
            None => vacant(),
        }
    }

    /// Fills a free slot (the last freed) or a new one; returns it.
    #[inline(always)]
    fn insert(&mut self, meta: Meta) -> usize {
        match self.free.pop() {
            Some(idx) => {
                self.metas[idx as usize] = Some(meta);
                idx as usize
            }
            None => {
                self.metas.push(Some(meta));
                self.metas.len() - 1
            }
        }
    }

    /// Frees a held slot.
    #[inline(always)]
    fn remove(&mut self, idx: usize) {
        if self.metas[idx].take().is_none() {
            vacant();
        }
        self.free.push(idx as u32);
    }

    /// Slots held.
    fn len(&self) -> usize {
        self.metas.len() - self.free.len()
    }

    fn clear(&mut self) {
        self.metas.clear();
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
            metas: Store::with_capacity(capacity),
            cold: Vec::with_capacity(capacity),
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
        self.metas.contains(slot as usize)
    }

    /// A read of `slot` at `now`, as [`LocalCache::get`](super::LocalCache::get)
    /// counts and orders it: true (a hit; the slot becomes the most recently
    /// used) if it holds a live entry. An expired entry is removed (its slot
    /// pushed to `removed`) and, like a slot that holds nothing (a host can
    /// pass `u32::MAX` for a key it did not find), counts as a miss.
    #[inline]
    pub fn read(&mut self, slot: u32, now: u64, removed: &mut Vec<u32>) -> bool {
        if !self.metas.contains(slot as usize) {
            self.policy.stats.misses += 1;
            return false;
        }
        let (policy, mut slots) = self.parts();
        if policy.read(&mut slots, slot, now) {
            return true;
        }
        self.metas.remove(slot as usize);
        removed.push(slot);
        false
    }

    /// [`read`](SlotPolicy::read)s each slot in turn, all at `now`.
    pub fn read_many(&mut self, slots: &[u32], now: u64, removed: &mut Vec<u32>) {
        for &slot in slots {
            self.read(slot, now, removed);
        }
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
    #[inline]
    pub fn set(
        &mut self,
        slot: Option<u32>,
        weight: u64,
        expiry: Expiry,
        now: u64,
        removed: &mut Vec<u32>,
    ) -> Option<u32> {
        self.advance(now, removed);
        let existing = slot.filter(|&s| self.metas.contains(s as usize));
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
                let (old, _) = policy.unlink_oldest(&mut slots, now);
                slots.metas.remove(old as usize);
                removed.push(old);
            }
            return Some(idx);
        }
        // One out, one in: the last slot vacated is refilled in place.
        let mut vacated = None;
        while self.policy.must_make_room(weight) {
            if let Some(idx) = vacated.take() {
                self.metas.remove(idx as usize);
            }
            let (policy, mut slots) = self.parts();
            let (idx, _) = policy.unlink_oldest(&mut slots, now);
            removed.push(idx);
            vacated = Some(idx);
        }
        let meta = Meta::new(expires_at);
        let idx = match vacated {
            Some(idx) => {
                *self.metas.at_mut(idx as usize) = meta;
                idx
            }
            None => {
                let idx = self.metas.insert(meta);
                if idx == self.cold.len() {
                    self.cold.push(Cold::NEW);
                }
                idx as u32
            }
        };
        let (policy, mut slots) = self.parts();
        policy.link_new(&mut slots, idx, weight);
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
        let mut free = self.metas.free.iter().rev();
        let mut next_new = self.metas.metas.len() as u32;
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
            slot = Policy::newer(&View(&self.metas), oldest);
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
        while left > 0 && (self.policy.may_expire() || self.metas.len() < self.policy.max_entries())
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
        if left > self.metas.len() {
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
        if !self.metas.contains(slot as usize) {
            return false;
        }
        let live = self.metas.at(slot as usize).expires_at.get() > now;
        let (policy, mut slots) = self.parts();
        match policy.expires_at(expiry, now) {
            Some(at) if live => {
                policy.reschedule(&mut slots, slot, at);
                return true;
            }
            _ if live => policy.unlink(&mut slots, slot),
            _ => policy.expire(&mut slots, slot),
        }
        self.metas.remove(slot as usize);
        removed.push(slot);
        live
    }

    /// Removes the entry at `slot` (the host's delete); false if it held none.
    pub fn remove(&mut self, slot: u32) -> bool {
        if !self.metas.contains(slot as usize) {
            return false;
        }
        let (policy, mut slots) = self.parts();
        policy.unlink(&mut slots, slot);
        self.metas.remove(slot as usize);
        true
    }

    /// Removes every entry expired at `now`, pushing their slots to
    /// `removed`; returns how many.
    pub fn purge_expired(&mut self, now: u64, removed: &mut Vec<u32>) -> usize {
        let from = removed.len();
        let (policy, mut slots) = self.parts();
        policy.purge_expired(&mut slots, now, removed);
        for &idx in &removed[from..] {
            self.metas.remove(idx as usize);
        }
        removed.len() - from
    }

    /// Removes every entry (the host drops all its keys). Counters are kept.
    pub fn clear(&mut self) {
        self.policy.clear();
        self.metas.clear();
        self.cold.clear();
    }

    /// When the entry at `slot` expires (ms): `Some(None)` if never, `None`
    /// if `slot` holds nothing.
    #[inline]
    pub fn expires_at(&self, slot: u32) -> Option<Option<u64>> {
        let at = self.metas.get(slot as usize)?.expires_at;
        Some((at != NEVER).then_some(at.get()))
    }

    /// Entries held (expired ones not yet reclaimed included).
    pub fn len(&self) -> usize {
        self.metas.len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.metas.len() == 0
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
        self.policy.by_recency(View(&self.metas))
    }

    fn parts(&mut self) -> (&mut Policy, Slots<'_>) {
        let slots = Slots {
            metas: &mut self.metas,
            cold: &mut self.cold,
        };
        (&mut self.policy, slots)
    }

    /// Moves time to `now`, removing what expired on the way.
    #[inline(always)]
    fn advance(&mut self, now: u64, removed: &mut Vec<u32>) {
        let from = removed.len();
        let (policy, mut slots) = self.parts();
        policy.advance(&mut slots, now, removed);
        for &idx in &removed[from..] {
            self.metas.remove(idx as usize);
        }
    }
}

impl std::fmt::Debug for SlotPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotPolicy")
            .field("entries", &self.metas.len())
            .field("max_entries", &self.policy.max_entries())
            .field("weight", &self.policy.weight())
            .field("max_weight", &self.policy.max_weight())
            .field("default_ttl_ms", &self.policy.default_ttl())
            .finish()
    }
}
