//! JS values held by number. The core's local and request tiers store a
//! [`Slot`]: the index of a cell of the JS array `slots` (`js/runtime.js`)
//! that holds the value. A local hit crosses back as a `u32` in the read's
//! bytes, not as a handle per value through the glue. Slots are counted
//! here; a slot whose count drops to 0 is reported to JS by the next
//! [`file_slots`] (JS clears its cell, so the value can be collected) and
//! reused after.

use std::cell::RefCell;
use std::mem::ManuallyDrop;

use wasm_bindgen::prelude::*;

/// One reference to the JS value in cell `.0` of `slots`.
pub struct Slot(u32);

struct Table {
    /// References per slot.
    counts: Vec<u32>,
    /// Slots JS has cleared: reused first.
    free: Vec<u32>,
    /// Slots at count 0 that JS has not cleared yet.
    freed: Vec<u32>,
    /// Slots of the last `file_slots`, for the next call that stores values.
    fresh: Vec<Slot>,
    /// What the last `file_slots` tells JS.
    out: Vec<u32>,
}

// `ManuallyDrop` (the table lives as long as the module) and `try_borrow_mut`
// (never refused: no slot is dropped while the table is borrowed) leave no
// panic path, whose messages would cost wasm bytes.
thread_local! {
    static TABLE: RefCell<ManuallyDrop<Table>> = const {
        RefCell::new(ManuallyDrop::new(Table { counts: Vec::new(), free: Vec::new(), freed: Vec::new(), fresh: Vec::new(), out: Vec::new() }))
    };
}

fn with_table<R: Default>(f: impl FnOnce(&mut Table) -> R) -> R {
    TABLE.with(|t| {
        t.try_borrow_mut()
            .map(|mut t| f(&mut t))
            .unwrap_or_default()
    })
}

impl Slot {
    /// A slot outside the table (its clones and drops count nothing): for
    /// tests of the layouts that carry slot numbers.
    #[cfg(test)]
    pub fn for_test(id: u32) -> Slot {
        Slot(id)
    }

    /// The cell of `slots` that holds the value.
    #[inline(always)]
    pub fn id(&self) -> u32 {
        self.0
    }
}

// One copy each in the module (they run wherever the core copies or drops
// a value), not one per caller.
impl Clone for Slot {
    #[inline(never)]
    fn clone(&self) -> Slot {
        with_table(|t| {
            if let Some(count) = t.counts.get_mut(self.0 as usize) {
                *count += 1;
            }
        });
        Slot(self.0)
    }
}

impl Drop for Slot {
    #[inline(never)]
    fn drop(&mut self) {
        with_table(|t| {
            if let Some(count) = t.counts.get_mut(self.0 as usize) {
                *count -= 1;
                if *count == 0 {
                    t.freed.push(self.0);
                }
            }
        });
    }
}

/// Takes `n` slots for values JS is about to store: the address of a
/// `u32` array (valid until the next call into wasm) of `k`, the `k`
/// slots freed since the last call (JS clears them first), and the `n`
/// new slots, in order (JS files its values there). The next call that
/// stores values (`answer`, `setAllTiers`, a request cache's set) takes
/// them; slots filed and not taken are freed by the next call of this.
#[wasm_bindgen(js_name = fileSlots)]
pub fn file_slots(n: u32) -> usize {
    drop(take_fresh());
    with_table(|t| {
        t.out.clear();
        t.out.push(t.freed.len() as u32);
        t.out.append(&mut t.freed.clone());
        t.free.append(&mut t.freed);
        for _ in 0..n {
            let id = t.free.pop().unwrap_or(t.counts.len() as u32);
            if id as usize == t.counts.len() {
                t.counts.push(0);
            }
            t.counts[id as usize] = 1;
            t.out.push(id);
            t.fresh.push(Slot(id));
        }
        t.out.as_ptr() as usize
    })
}

/// The slots of the last [`file_slots`], in order.
pub fn take_fresh() -> Vec<Slot> {
    with_table(|t| std::mem::take(&mut t.fresh))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out() -> Vec<u32> {
        with_table(|t| t.out.clone())
    }

    #[test]
    fn slots_are_counted_reported_when_freed_and_reused() {
        file_slots(2);
        assert_eq!(out(), [0, 0, 1]);
        let mut fresh = take_fresh();
        let b = fresh.pop().unwrap();
        let a = fresh.pop().unwrap();
        let a2 = a.clone();
        drop(a);
        drop(b);
        // Slot 1 is free; slot 0 still has a reference.
        file_slots(1);
        assert_eq!(out(), [1, 1, 1]);
        // Filed and not taken: freed by the next call, and reported.
        file_slots(0);
        assert_eq!(out(), [1, 1]);
        drop(a2);
        file_slots(0);
        assert_eq!(out(), [1, 0]);
    }
}
