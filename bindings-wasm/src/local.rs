//! [`LocalSlots`]: the core's `LocalCache`, keyed by slot numbers, for a JS
//! cache whose keys and values never cross the boundary.
//!
//! The JS `LocalCache` keeps `Map<string, slot>` and a value array indexed by
//! slot. This side holds one core entry per slot and decides everything the
//! policy decides: which entry to evict (LRU by count and weight), when an
//! entry expires, and when an expired one is reclaimed. JS learns what left
//! through a small output buffer in wasm memory that it reads through a
//! `Float64Array` view (no call needed): `out[0]` is the expiry of the last
//! slot set, `out[1..=n]` the slots removed by the last call, where `n` is
//! the call's return value.

use std::hash::{BuildHasher, Hasher};

use tiercache::local::{Expiry, LocalCache, RemovalCause, SetOutcome};
use tiercache::Lookup;
use wasm_bindgen::prelude::*;

use crate::js;

/// How many removed slots one call reports at most; more are reported by
/// further calls of [`LocalSlots::drain`].
pub const OUT_SLOTS: usize = 256;

/// Returned by `set` when the value was not stored (too heavy, or a zero TTL).
const NOT_STORED: i32 = -1;

/// Hashes slot numbers with one multiplication (Fibonacci hashing): slots
/// are small dense integers chosen by us, not by an attacker, so a
/// DoS-resistant string hash would only cost time on every read applied.
#[derive(Clone, Copy, Default)]
pub struct SlotHash;

/// The hasher of [`SlotHash`].
#[derive(Default)]
pub struct SlotHasher(u64);

impl Hasher for SlotHasher {
    fn finish(&self) -> u64 {
        // Odd multiplier: a bijection on the low bits (the table position)
        // that also spreads the slot into the high bits (the tag byte).
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }
}

impl BuildHasher for SlotHash {
    type Hasher = SlotHasher;
    fn build_hasher(&self) -> SlotHasher {
        SlotHasher(0)
    }
}

/// The policy half of the JS `LocalCache`.
#[wasm_bindgen]
pub struct LocalSlots {
    cache: LocalCache<u32, u32, SlotHash>,
    /// Entries may expire (a default TTL, or an entry set with one).
    timed: bool,
    out: Box<[f64]>,
    /// Removed slots not yet reported.
    pending: Vec<u32>,
    touched: bool,
}

/// A JS TTL: `undefined`/NaN → the default, `Infinity` → never, `<= 0` → now.
fn expiry(ttl_ms: f64) -> Expiry {
    if ttl_ms.is_nan() {
        Expiry::Default
    } else if ttl_ms == f64::INFINITY {
        Expiry::Never
    } else {
        Expiry::AfterMs(js::to_u64(ttl_ms.ceil()))
    }
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
        if max_weight.is_nan() || max_weight < 1.0 {
            return Err(js::range_error(
                "maxBytes must be the most bytes the cache may hold (at least 1); leave it out for no byte bound",
            ));
        }
        let default_ttl = if ttl_ms.is_nan() || ttl_ms == f64::INFINITY {
            None
        } else if ttl_ms <= 0.0 {
            return Err(js::range_error(
                "ttlMs must be a positive TTL in milliseconds; leave it out for entries that do not expire",
            ));
        } else {
            Some(js::to_u64(ttl_ms.ceil()))
        };
        let cache = LocalCache::with_hasher(max_entries as usize, js::to_u64(max_weight), SlotHash)
            .and_then(|c| c.with_default_ttl(default_ttl))
            .map_err(|e| js::range_error(&e.to_string()))?
            .with_removal_log();
        Ok(LocalSlots {
            timed: default_ttl.is_some(),
            cache,
            out: vec![0.0; OUT_SLOTS + 1].into_boxed_slice(),
            pending: Vec::new(),
            touched: false,
        })
    }

    /// Address of the output buffer in wasm memory (`OUT_SLOTS + 1` f64s).
    #[wasm_bindgen(js_name = outPtr)]
    pub fn out_ptr(&self) -> usize {
        self.out.as_ptr() as usize
    }

    /// Length of the output buffer, in f64s.
    #[wasm_bindgen(js_name = outLen)]
    pub fn out_len(&self) -> usize {
        self.out.len()
    }

    /// Stores slot `slot` with `weight`, expiring after `ttl_ms` (NaN: the
    /// default; `Infinity`: never; `<= 0`: at once), at time `now`. Writes
    /// the entry's expiry (ms since the epoch; `Infinity`: never) to
    /// `out[0]` and returns how many removed slots it wrote to `out[1..]`;
    /// if the value was not stored (too heavy, or a zero TTL: its slot is
    /// free again), returns -1 - that count.
    pub fn set(&mut self, slot: u32, weight: f64, ttl_ms: f64, now: f64) -> i32 {
        let now_ms = js::to_u64(now);
        let expiry = expiry(ttl_ms);
        if let Expiry::AfterMs(_) = expiry {
            self.timed = true;
        }
        let outcome = self
            .cache
            .set(slot, slot, js::to_u64(weight), expiry, now_ms);
        let stored = outcome == SetOutcome::Stored;
        if stored {
            // The expiry the core gave the entry (never, unless a TTL is in play).
            self.out[0] = match (self.timed, expiry) {
                (false, _) | (_, Expiry::Never) => f64::INFINITY,
                _ => match self.cache.ttl_remaining(&slot, now_ms) {
                    Lookup::Hit(Some(left)) => (now_ms + left) as f64,
                    _ => f64::INFINITY,
                },
            };
        }
        self.collect();
        if stored {
            self.report()
        } else {
            // A refused value removed any older entry of the slot (logged as
            // superseded); the caller frees the slot itself.
            self.pending.retain(|&s| s != slot);
            NOT_STORED - self.report()
        }
    }

    /// Applies buffered reads: each slot is read at `now`, in order, which
    /// marks it most recently used (or, if it has expired, reclaims it).
    /// Returns how many removed slots were written to `out[1..]`.
    #[wasm_bindgen(js_name = applyReads)]
    pub fn apply_reads(&mut self, slots: &[u32], now: f64) -> i32 {
        let now = js::to_u64(now);
        for slot in slots {
            let _ = self.cache.get(slot, now);
        }
        self.collect();
        self.report()
    }

    /// Removes `slot`; true if it was held. The slot is not reported (the
    /// caller frees it).
    pub fn delete(&mut self, slot: u32) -> bool {
        self.cache.delete(&slot).is_found()
    }

    /// Gives a live slot a new expiry (a zero TTL removes it). Writes the
    /// new expiry to `out[0]` (`-Infinity`: the slot is gone, and the caller
    /// frees it) and returns how many other removed slots it wrote to
    /// `out[1..]`. [`touched`](LocalSlots::touched) tells whether the slot
    /// was live.
    pub fn touch(&mut self, slot: u32, ttl_ms: f64, now: f64) -> i32 {
        let now_ms = js::to_u64(now);
        self.touched = self.cache.touch(&slot, expiry(ttl_ms), now_ms);
        let at = match self.cache.ttl_remaining(&slot, now_ms) {
            Lookup::Hit(Some(left)) => (now_ms + left) as f64,
            Lookup::Hit(None) => f64::INFINITY,
            Lookup::Miss => f64::NEG_INFINITY,
        };
        self.collect();
        if at == f64::NEG_INFINITY {
            // Expired or deleted: the caller frees the slot itself.
            let _ = self.cache.delete(&slot);
            self.pending.retain(|&s| s != slot);
        }
        self.out[0] = at;
        self.report()
    }

    /// Whether the slot of the last `touch` was live.
    #[wasm_bindgen(getter)]
    pub fn touched(&self) -> bool {
        self.touched
    }

    /// Reclaims every entry expired at `now`; returns how many removed slots
    /// were written to `out[1..]` (call `drain` while it returns more).
    #[wasm_bindgen(js_name = purgeExpired)]
    pub fn purge_expired(&mut self, now: f64) -> i32 {
        self.cache.purge_expired(js::to_u64(now));
        self.collect();
        self.report()
    }

    /// Reports further removed slots, if a call removed more than fit.
    pub fn drain(&mut self) -> i32 {
        self.report()
    }

    /// Removes every entry (nothing is reported: the caller drops all).
    pub fn clear(&mut self) {
        self.cache.clear();
        let _ = self.cache.take_removed();
        self.pending.clear();
    }

    /// Entries held (expired ones not yet reclaimed included).
    #[wasm_bindgen(getter)]
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// True when no entry is held.
    #[wasm_bindgen(js_name = isEmpty)]
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Counters: `[hits, misses, inserts, updates, evictions, expirations,
    /// rejected, entries, weight]`.
    pub fn stats(&self) -> Vec<f64> {
        let s = self.cache.stats();
        vec![
            s.hits as f64,
            s.misses as f64,
            s.inserts as f64,
            s.updates as f64,
            s.evictions as f64,
            s.expirations as f64,
            s.rejected as f64,
            s.entries as f64,
            s.weight as f64,
        ]
    }

    /// Slots from most to least recently used (tests and debugging; O(n)).
    #[wasm_bindgen(js_name = slotsByRecency)]
    pub fn slots_by_recency(&self) -> Vec<u32> {
        self.cache.keys_by_recency().copied().collect()
    }
}

impl LocalSlots {
    /// Moves the core's removal log into `pending`. A replaced value keeps
    /// its slot (same key, new value), so it is not a removal here.
    fn collect(&mut self) {
        for (slot, cause) in self.cache.take_removed() {
            if cause != RemovalCause::Replaced {
                self.pending.push(slot);
            }
        }
    }

    /// Writes up to `OUT_SLOTS` pending slots to `out[1..]`.
    fn report(&mut self) -> i32 {
        let n = self.pending.len().min(OUT_SLOTS);
        for (i, slot) in self.pending.drain(..n).enumerate() {
            self.out[1 + i] = f64::from(slot);
        }
        n as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_read_slot_and_reports_it() {
        let mut slots =
            LocalSlots::new(2.0, f64::INFINITY, f64::NAN).unwrap_or_else(|_| unreachable!());
        assert_eq!(slots.set(0, 0.0, f64::NAN, 1.0), 0);
        assert_eq!(slots.out[0], f64::INFINITY);
        assert_eq!(slots.set(1, 0.0, f64::NAN, 1.0), 0);
        assert_eq!(slots.apply_reads(&[0], 2.0), 0);
        assert_eq!(slots.set(2, 0.0, f64::NAN, 3.0), 1);
        assert_eq!(slots.out[1], 1.0, "slot 1 was least recently used");
        assert_eq!(slots.slots_by_recency(), vec![2, 0]);
    }

    #[test]
    fn replacing_a_slot_does_not_report_it_and_expiry_is_written() {
        let mut slots =
            LocalSlots::new(10.0, f64::INFINITY, 1000.0).unwrap_or_else(|_| unreachable!());
        assert_eq!(slots.set(4, 0.0, f64::NAN, 100.0), 0);
        assert_eq!(slots.out[0], 1100.0);
        assert_eq!(slots.set(4, 0.0, 50.0, 200.0), 0);
        assert_eq!(slots.out[0], 250.0);
        assert_eq!(slots.set(4, 0.0, 0.0, 300.0), NOT_STORED);
        assert_eq!(slots.len(), 0);
    }

    #[test]
    fn expired_slots_are_reported_when_read_or_purged() {
        let mut slots =
            LocalSlots::new(10.0, f64::INFINITY, 10.0).unwrap_or_else(|_| unreachable!());
        slots.set(1, 0.0, f64::NAN, 0.0);
        slots.set(2, 0.0, f64::NAN, 0.0);
        assert_eq!(slots.apply_reads(&[1], 20.0), 1);
        assert_eq!(slots.out[1], 1.0);
        assert_eq!(slots.purge_expired(20.0), 1);
        assert_eq!(slots.out[1], 2.0);
    }

    #[test]
    fn too_heavy_values_are_not_stored() {
        let mut slots = LocalSlots::new(10.0, 100.0, f64::NAN).unwrap_or_else(|_| unreachable!());
        assert_eq!(slots.set(1, 101.0, f64::NAN, 0.0), NOT_STORED);
        assert_eq!(slots.set(2, 60.0, f64::NAN, 0.0), 0);
        assert_eq!(slots.set(3, 60.0, f64::NAN, 0.0), 1);
        assert_eq!(slots.out[1], 2.0);
    }
}
