//! A count-min sketch of 4-bit counters: how often a key hash was seen
//! lately, in a few bytes per entry (Caffeine's `FrequencySketch` layout).
//!
//! Each key's four counters sit in one 64-byte block of eight words, so an
//! increment or a lookup loads one cache line. Counters saturate at 15, and
//! after `10 × capacity` increments every counter is halved, so the sketch
//! forgets what was popular long ago (TinyLFU's "reset").

/// Each word holds 16 counters of 4 bits.
const ONE_MASK: u64 = 0x1111_1111_1111_1111;
const RESET_MASK: u64 = 0x7777_7777_7777_7777;
/// The fewest entries a sketch is sized for (8 KB): a small cache still
/// remembers counts over 10,240 sightings, with few collisions, so a key
/// read once per loop much longer than the cache is not forgotten between
/// two reads (with moka's floor of 128, a 100-entry cache on a loop of
/// 2,000 keys compared mostly noise, and hit 0.1% where 4.8% is possible).
const MIN_CAPACITY: usize = 1024;

/// Eight words, aligned so a key's four counters share one cache line.
#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct Block([u64; 8]);

pub(super) struct Sketch {
    table: Vec<Block>,
    /// `table.len() - 1`: blocks are selected by the low hash bits.
    block_mask: u32,
    /// Increments since the last halving.
    size: u64,
    sample_size: u64,
    /// Entries the table is sized for.
    capacity: usize,
}

impl Sketch {
    /// A sketch for about `capacity` distinct hot keys.
    pub(super) fn new(capacity: usize) -> Self {
        let mut sketch = Sketch {
            table: Vec::new(),
            block_mask: 0,
            size: 0,
            sample_size: 0,
            capacity: 0,
        };
        sketch.resize(capacity);
        sketch
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Resizes for `capacity` keys (forgetting every count).
    pub(super) fn resize(&mut self, capacity: usize) {
        let capacity = capacity.clamp(MIN_CAPACITY, 1 << 26);
        let words = capacity.next_power_of_two();
        self.table = vec![Block::default(); words / 8];
        self.block_mask = (words / 8 - 1) as u32;
        self.size = 0;
        self.sample_size = 10 * capacity as u64;
        self.capacity = capacity;
    }

    /// Doubles the table, keeping every count: a key's block index gains
    /// one high bit and its counters keep their places in the block, so
    /// both halves start as copies of the old table.
    pub(super) fn double(&mut self) {
        let capacity = (2 * self.capacity).min(1 << 26);
        if capacity == self.capacity {
            return;
        }
        let old = self.table.len();
        self.table.extend_from_within(..);
        debug_assert_eq!(self.table.len(), 2 * old);
        self.block_mask = (self.table.len() - 1) as u32;
        self.sample_size = 10 * capacity as u64;
        self.capacity = capacity;
    }

    /// The block of `hash`, and its four counters: (word in the block, bit
    /// shift in the word).
    #[inline(always)]
    fn slots(&self, hash: u64) -> (usize, [(usize, u32); 4]) {
        let block = (hash as u32 & self.block_mask) as usize;
        let counter_hash = (hash >> 32) as u32;
        let mut out = [(0, 0); 4];
        for (i, slot) in out.iter_mut().enumerate() {
            let h = counter_hash >> (i << 3);
            let index = (h >> 1) & 15;
            let offset = (h & 1) as usize;
            *slot = (offset + (i << 1), index << 2);
        }
        (block, out)
    }

    /// The estimated count of `hash` (0 to 15).
    #[inline]
    pub(super) fn frequency(&self, hash: u64) -> u8 {
        let (block, slots) = self.slots(hash);
        let words = &self.table[block].0;
        slots
            .iter()
            .map(|&(word, shift)| ((words[word & 7] >> shift) & 15) as u8)
            .min()
            .unwrap_or(0)
    }

    /// Counts one more sighting of `hash`.
    #[inline]
    pub(super) fn increment(&mut self, hash: u64) {
        self.increment_by(hash, 1);
    }

    /// Counts `n` (1 to 15) more sightings of `hash` at once: a sampled
    /// read stands for the `n` it represents.
    #[inline]
    pub(super) fn increment_by(&mut self, hash: u64, n: u64) {
        let mut added = false;
        let (block, slots) = self.slots(hash);
        let words = &mut self.table[block].0;
        for (word, shift) in slots {
            let w = &mut words[word & 7];
            let count = (*w >> shift) & 15;
            if count != 15 {
                *w += (n.min(15 - count)) << shift;
                added = true;
            }
        }
        if added {
            self.size += n;
            if self.size >= self.sample_size {
                self.halve();
            }
        }
    }

    /// Halves every counter (the sketch's ageing).
    fn halve(&mut self) {
        let mut odd = 0u64;
        for w in self.table.iter_mut().flat_map(|b| b.0.iter_mut()) {
            odd += u64::from((*w & ONE_MASK).count_ones());
            *w = (*w >> 1) & RESET_MASK;
        }
        self.size = (self.size - (odd >> 2)) - (self.size >> 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_keeps_every_count() {
        let mut s = Sketch::new(8);
        let keys: Vec<u64> = (1..200u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        for (i, &k) in keys.iter().enumerate() {
            for _ in 0..i % 5 {
                s.increment(k);
            }
        }
        let before: Vec<u8> = keys.iter().map(|&k| s.frequency(k)).collect();
        s.double();
        assert_eq!(s.capacity(), 2 * MIN_CAPACITY);
        let after: Vec<u8> = keys.iter().map(|&k| s.frequency(k)).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn counts_saturate_and_halve() {
        let mut s = Sketch::new(64);
        let h = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20 {
            s.increment(h);
        }
        assert_eq!(s.frequency(h), 15);
        assert_eq!(s.frequency(0x1234_5678_9abc_def1), 0);
        s.halve();
        assert_eq!(s.frequency(h), 7);
    }

    #[test]
    fn ageing_runs_after_ten_increments_per_entry() {
        let mut s = Sketch::new(8);
        let sample = 10 * MIN_CAPACITY as u64;
        for i in 0..sample - 1 {
            s.increment(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        assert!(s.size > 0);
        s.increment(0xdead_beef_dead_beef);
        assert!(s.size < sample, "halved at the sample size");
    }
}
