//! [`LocalSlots`]: the core's [`SlotPolicy`] (the rules of `LocalCache`,
//! addressed by slot number) for a JS cache whose keys and values never
//! cross the boundary.
//!
//! The JS `LocalCache` keeps `Map<string, slot>` and a value array indexed by
//! slot. This side holds the policy and decides everything it decides: which
//! entry to evict (LRU by count and weight), when an entry expires, when an
//! expired one is reclaimed, and which slot a new entry gets. JS reads the
//! results from a small header in wasm memory (no extra call, no
//! allocation): see [`Out`]. Nothing is hashed here: a buffered read is a
//! relink by slot index.

use stratacache::local::SlotPolicy;
use wasm_bindgen::prelude::*;

use crate::js::{self, expiry};

/// How many buffered reads one `applyReads` call takes at most.
pub const READ_BUFFER: usize = 256;

/// How many slots one plan of new entries holds at most (`planInserts`).
pub const PLAN: usize = 256;

/// The slot JS records for a read whose key it did not find (a miss): the
/// core counts a read of a slot it does not hold as a miss.
#[cfg(test)]
const NO_SLOT: u32 = u32::MAX;

/// What a call tells JS besides its return value, at a fixed address
/// (`outPtr`). JS reads it through views of the whole wasm memory.
#[repr(C)]
struct Out {
    /// Expiry (ms since the epoch) of the entry the last `set` or `touch`
    /// left in place: `Infinity` if never; `-Infinity` if it is gone.
    expiry: f64,
    /// Where the slots removed by the last call are (a `u32` array), and
    /// how many. JS drops their keys and values.
    removed_ptr: u32,
    removed_len: u32,
    /// `stats()`: hits, misses, inserts, updates, evictions, expirations,
    /// rejected, entries, weight.
    stats: [f64; 9],
    /// Buffered reads, copied here by JS before `applyReads`.
    reads: [u32; READ_BUFFER],
    /// The slots the next new entries get (`planInserts`), in order.
    plan: [u32; PLAN],
}

/// The policy half of the JS `LocalCache`.
#[wasm_bindgen]
pub struct LocalSlots {
    policy: SlotPolicy,
    out: Box<Out>,
    /// Reused by every call (its capacity stays), so reporting removed slots
    /// allocates nothing in the common case.
    removed: Vec<u32>,
    /// The last plan (as in `out.plan`), reused.
    plan: Vec<u32>,
}

#[wasm_bindgen]
impl LocalSlots {
    /// A policy for at most `max_entries` entries weighing at most
    /// `max_weight` (`Infinity`: no weight bound), with a default TTL of
    /// `ttl_ms` (`Infinity` or NaN: none).
    #[wasm_bindgen(constructor)]
    pub fn new(max_entries: f64, max_weight: f64, ttl_ms: f64) -> Result<LocalSlots, JsValue> {
        if !((1.0..=1e9).contains(&max_entries) && max_entries.fract() == 0.0) {
            return Err(js::range_error(
                "maxEntries must be a whole number of entries from 1 to 1e9",
            ));
        }
        // maxBytes < 1 and ttlMs <= 0 are refused by `js/local.js` (the
        // core refuses them too: 0 bytes, a TTL of 0).
        let default_ttl = if ttl_ms.is_nan() || ttl_ms == f64::INFINITY {
            None
        } else {
            Some(js::to_u64(ttl_ms.ceil()))
        };
        // The bounds and TTL were checked above, so the core accepts them.
        let policy = SlotPolicy::new(max_entries as usize, js::to_u64(max_weight))
            .and_then(|p| p.with_default_ttl(default_ttl))
            .map_err(|_| js::range_error("invalid LocalCache bounds"))?;
        let mut slots = LocalSlots {
            policy,
            out: Box::new(Out {
                expiry: f64::INFINITY,
                removed_ptr: 0,
                removed_len: 0,
                stats: [0.0; 9],
                reads: [0; READ_BUFFER],
                plan: [0; PLAN],
            }),
            removed: Vec::with_capacity(READ_BUFFER),
            plan: Vec::with_capacity(PLAN),
        };
        slots.report();
        Ok(slots)
    }

    /// Address of the [`Out`] header in wasm memory (8-byte aligned):
    /// `expiry` at +0 (f64), `removed_ptr` at +8 and `removed_len` at +12
    /// (u32), `stats` at +16 (9 f64s), `reads` at +88 (u32s), `plan` at
    /// +1112 (u32s).
    #[wasm_bindgen(js_name = outPtr)]
    pub fn out_ptr(&self) -> usize {
        &*self.out as *const Out as usize
    }

    /// Stores an entry of `weight` for the key JS holds under `held` (-1:
    /// none), expiring after `ttl_ms` (NaN: the default; `Infinity`: never;
    /// `<= 0`: at once), at `now`. Returns the entry's slot, or -1 if nothing
    /// was stored (too heavy, or a zero TTL). Writes the entry's expiry and
    /// the removed slots (`held` among them if it went) to the header: JS
    /// drops those first, then files the key under the returned slot.
    pub fn set(&mut self, held: i32, weight: f64, ttl_ms: f64, now: f64) -> i32 {
        self.removed.clear();
        let slot = self.policy.set(
            u32::try_from(held).ok(),
            js::to_u64(weight),
            expiry(ttl_ms),
            js::to_u64(now),
            &mut self.removed,
        );
        self.report();
        match slot {
            Some(slot) => {
                self.write_expiry(slot);
                slot as i32
            }
            None => -1,
        }
    }

    /// Makes the `made` new entries JS filed under the first slots of the
    /// last plan (see below), then writes a new plan to the header's `plan`
    /// and returns its length.
    ///
    /// The plan is the core's [`SlotPolicy::plan_inserts`]: the slots the
    /// next sets of new keys (weight 0, the default TTL) get, in order, if
    /// nothing else happens in between. JS files new keys under them at
    /// once, dropping the key a reused slot held (the entry that set
    /// evicts), and reports them here in one batch: one call per plan
    /// instead of one per set. Any other call ends the plan (JS reports the
    /// sets made so far to it first).
    #[wasm_bindgen(js_name = planInserts)]
    pub fn plan_inserts(&mut self, made: usize, now: f64) -> u32 {
        self.make_planned(made, js::to_u64(now));
        self.policy.plan_inserts(PLAN, &mut self.plan);
        self.out.plan[..self.plan.len()].copy_from_slice(&self.plan);
        self.removed.clear();
        self.report();
        self.plan.len() as u32
    }

    /// Makes the `made` planned entries (as `planInserts` does), then
    /// applies the first `n` buffered reads in the header's `reads`, each
    /// at `now`, in order: a live slot becomes the most recently used, an
    /// expired one is removed, `u32::MAX` (a key JS did not find) counts a
    /// miss. Returns how many slots the reads removed (listed in the header).
    #[wasm_bindgen(js_name = applyReads)]
    pub fn apply_reads(&mut self, made: usize, n: usize, now: f64) -> u32 {
        let now = js::to_u64(now);
        self.make_planned(made, now);
        self.removed.clear();
        self.policy.read_many(
            &self.out.reads[..n.min(READ_BUFFER)],
            now,
            &mut self.removed,
        );
        self.report()
    }

    /// Removes `slot` (JS's delete); true if it was held. Not reported.
    pub fn delete(&mut self, slot: u32) -> bool {
        self.policy.remove(slot)
    }

    /// Gives a live slot a new expiry (a zero TTL removes it); true if it
    /// was live. Writes its expiry and the removed slots (this one among
    /// them if it went) to the header.
    pub fn touch(&mut self, slot: u32, ttl_ms: f64, now: f64) -> bool {
        self.removed.clear();
        let live = self
            .policy
            .touch(slot, expiry(ttl_ms), js::to_u64(now), &mut self.removed);
        self.report();
        self.write_expiry(slot);
        live
    }

    /// Removes every entry expired at `now`; returns how many (listed in the
    /// header).
    #[wasm_bindgen(js_name = purgeExpired)]
    pub fn purge_expired(&mut self, now: f64) -> u32 {
        self.removed.clear();
        self.policy
            .purge_expired(js::to_u64(now), &mut self.removed);
        self.report()
    }

    /// Removes every entry (nothing is reported: JS drops all).
    pub fn clear(&mut self) {
        self.policy.clear();
        self.removed.clear();
        self.report();
    }

    /// Writes the counters to the header's `stats`.
    #[wasm_bindgen(js_name = writeStats)]
    pub fn write_stats(&mut self) {
        let s = self.policy.stats();
        self.out.stats = [
            s.hits as f64,
            s.misses as f64,
            s.inserts as f64,
            s.updates as f64,
            s.evictions as f64,
            s.expirations as f64,
            s.rejected as f64,
            s.entries as f64,
            s.weight as f64,
        ];
    }

    /// Slots from most to least recently used (tests and debugging; O(n)).
    #[wasm_bindgen(js_name = slotsByRecency)]
    pub fn slots_by_recency(&self) -> Vec<u32> {
        self.policy.slots_by_recency().collect()
    }
}

impl LocalSlots {
    /// Makes the first `made` entries of the last plan: the same sets, in
    /// order, so they take the planned slots and evict what the plan said
    /// (JS has dropped those keys already; callers clear `removed` after).
    fn make_planned(&mut self, made: usize, now: u64) {
        let made = made.min(self.plan.len());
        self.policy.set_new_many(made, now, &mut self.removed);
        self.plan.clear();
    }

    /// Points the header at the removed slots; returns how many.
    #[inline(always)]
    fn report(&mut self) -> u32 {
        self.out.removed_ptr = self.removed.as_ptr() as usize as u32;
        self.out.removed_len = self.removed.len() as u32;
        self.out.removed_len
    }

    #[inline(always)]
    fn write_expiry(&mut self, slot: u32) {
        self.out.expiry = match self.policy.expires_at(slot) {
            Some(Some(at)) => at as f64,
            Some(None) => f64::INFINITY,
            None => f64::NEG_INFINITY,
        };
    }

    #[cfg(test)]
    fn removed(&self) -> &[u32] {
        &self.removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(max: f64, weight: f64, ttl: f64) -> LocalSlots {
        LocalSlots::new(max, weight, ttl).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn evicts_the_least_recently_read_slot_and_reuses_it() {
        let mut s = slots(2.0, f64::INFINITY, f64::NAN);
        assert_eq!(s.set(-1, 0.0, f64::NAN, 1.0), 0);
        assert_eq!(s.out.expiry, f64::INFINITY);
        assert_eq!(s.set(-1, 0.0, f64::NAN, 1.0), 1);
        s.out.reads[0] = 0;
        s.out.reads[1] = NO_SLOT;
        assert_eq!(s.apply_reads(0, 2, 2.0), 0);
        assert_eq!(
            s.set(-1, 0.0, f64::NAN, 3.0),
            1,
            "slot 1 was least recently used"
        );
        assert_eq!(s.removed(), [1]);
        assert_eq!(s.out.removed_len, 1);
        assert_eq!(s.slots_by_recency(), vec![1, 0]);
        s.write_stats();
        assert_eq!(&s.out.stats[..5], &[1.0, 1.0, 3.0, 0.0, 1.0]);
    }

    #[test]
    fn updates_keep_their_slot_and_expiry_is_written() {
        let mut s = slots(10.0, f64::INFINITY, 1000.0);
        assert_eq!(s.set(-1, 0.0, f64::NAN, 100.0), 0);
        assert_eq!(s.out.expiry, 1100.0);
        assert_eq!(s.set(0, 0.0, 50.0, 200.0), 0);
        assert_eq!(s.out.expiry, 250.0);
        assert_eq!(s.out.removed_len, 0);
        assert_eq!(s.set(0, 0.0, 0.0, 300.0), -1);
        assert_eq!(s.removed(), [0]);
        assert!(s.policy.is_empty());
    }

    #[test]
    fn expired_slots_are_reported_when_read_touched_or_purged() {
        let mut s = slots(10.0, f64::INFINITY, 10.0);
        s.set(-1, 0.0, f64::NAN, 0.0);
        s.set(-1, 0.0, f64::NAN, 0.0);
        s.set(-1, 0.0, f64::NAN, 0.0);
        s.out.reads[0] = 0;
        assert_eq!(s.apply_reads(0, 1, 20.0), 1);
        assert_eq!(s.removed(), [0]);
        assert!(!s.touch(1, 100.0, 20.0));
        assert_eq!(s.removed(), [1]);
        assert_eq!(s.out.expiry, f64::NEG_INFINITY);
        assert_eq!(s.purge_expired(20.0), 1);
        assert_eq!(s.removed(), [2]);
    }

    #[test]
    fn planned_sets_take_the_planned_slots_in_one_call() {
        let mut s = slots(3.0, f64::INFINITY, f64::NAN);
        assert_eq!(s.plan_inserts(0, 0.0), 3);
        assert_eq!(&s.out.plan[..3], &[0, 1, 2]);
        // JS filed three keys under 0, 1, 2, then one read of slot 0.
        s.out.reads[0] = 0;
        assert_eq!(s.apply_reads(3, 1, 1.0), 0);
        assert_eq!(s.slots_by_recency(), vec![0, 2, 1]);
        assert_eq!(s.plan_inserts(0, 1.0), 3);
        assert_eq!(&s.out.plan[..3], &[1, 2, 0], "least recently used first");
        assert_eq!(s.plan_inserts(2, 2.0), 3, "two made, a new plan");
        assert_eq!(s.out.removed_len, 0, "JS dropped the evicted keys itself");
        assert_eq!(s.slots_by_recency(), vec![2, 1, 0]);
        s.write_stats();
        assert_eq!(&s.out.stats[..5], &[1.0, 0.0, 5.0, 0.0, 2.0]);
        assert_eq!(s.set(-1, 0.0, 10.0, 3.0), 0);
        assert_eq!(
            s.plan_inserts(0, 3.0),
            0,
            "no plan once an entry may expire"
        );
    }

    #[test]
    fn too_heavy_values_are_not_stored() {
        let mut s = slots(10.0, 100.0, f64::NAN);
        assert_eq!(s.set(-1, 101.0, f64::NAN, 0.0), -1);
        assert_eq!(s.set(-1, 60.0, f64::NAN, 0.0), 0);
        assert_eq!(
            s.set(-1, 60.0, f64::NAN, 0.0),
            0,
            "slot 0 evicted and reused"
        );
        assert_eq!(s.removed(), [0]);
    }
}
