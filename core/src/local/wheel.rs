//! A hierarchical timer wheel over slab indices, so expired entries are
//! reclaimed in O(1) amortized time per entry without anyone reading them
//! (the approach of Varghese & Lauck, as used by moka and the Linux kernel).
//!
//! Level `l` has 64 buckets, each `2^SHIFTS[l]` ms wide. An entry sits at the
//! lowest level whose span around the wheel's cursor contains its expiry.
//! When the cursor enters a higher-level bucket, its entries cascade down;
//! when a level-0 bucket's whole millisecond range has passed, its entries
//! have expired and are handed back to the cache to be removed.

/// No node (end of a list).
pub(super) const NONE: u32 = u32::MAX;
const LEVELS: usize = 5;
const SLOTS: usize = 64;
const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// Bucket widths: about 1 s, 65 s, 70 min, 3 days, 199 days (then 35 years).
const SHIFTS: [u32; LEVELS + 1] = [10, 16, 22, 28, 34, 40];
/// Width of a level-0 bucket: an expired entry is reclaimed by the next
/// call that moves the wheel at most this long after its expiry.
pub(super) const TICK_MS: u64 = 1 << SHIFTS[0];
const DETACHED: u16 = u16::MAX;

/// A node's place in a bucket's doubly linked list.
#[derive(Debug, Clone, Copy)]
pub(super) struct Link {
    pub(super) prev: u32,
    pub(super) next: u32,
    /// The bucket, or `DETACHED` when the node is in none.
    pub(super) bucket: u16,
}

impl Link {
    pub(super) const DETACHED: Link = Link {
        prev: NONE,
        next: NONE,
        bucket: DETACHED,
    };
}

/// What the wheel needs to know of the entry at an index. A node's
/// neighbours only ever have their `prev` or `next` rewritten, so a cache
/// can keep those two apart from the rest of the link.
pub(super) trait Timed {
    fn expires_at(&self, idx: u32) -> u64;
    fn link(&self, idx: u32) -> Link;
    fn set_link(&mut self, idx: u32, link: Link);
    fn set_prev(&mut self, idx: u32, prev: u32);
    fn set_next(&mut self, idx: u32, next: u32);
}

pub(super) struct TimerWheel {
    heads: [u32; LEVELS * SLOTS],
    cursor: u64,
}

/// The tick (level-0 bucket number) of a time.
pub(super) fn tick(ms: u64) -> u64 {
    ms >> SHIFTS[0]
}

impl TimerWheel {
    pub(super) fn new() -> Self {
        TimerWheel {
            heads: [NONE; LEVELS * SLOTS],
            cursor: 0,
        }
    }

    fn bucket_for(&self, expires_at: u64) -> usize {
        let cursor = self.cursor;
        // An expiry at or before the cursor (clock went backwards) goes to the
        // current bucket, which `due` scans.
        let at = expires_at.max(cursor);
        for level in 0..LEVELS - 1 {
            if at >> SHIFTS[level + 1] == cursor >> SHIFTS[level + 1] {
                return level * SLOTS + ((at >> SHIFTS[level]) & SLOT_MASK) as usize;
            }
        }
        // Beyond the top level's span: park it in the furthest bucket; it is
        // rescheduled when the cursor gets there.
        let top = LEVELS - 1;
        let slot = (at >> SHIFTS[top]).min((cursor >> SHIFTS[top]) + SLOT_MASK);
        top * SLOTS + (slot & SLOT_MASK) as usize
    }

    /// True when no entry is scheduled (nothing can expire).
    pub(super) fn is_empty(&self) -> bool {
        self.heads.iter().all(|&head| head == NONE)
    }

    /// Links node `idx`, which expires at `expires_at`, into its bucket.
    pub(super) fn schedule(&mut self, nodes: &mut impl Timed, idx: u32, expires_at: u64) {
        let bucket = self.bucket_for(expires_at);
        let head = self.heads[bucket];
        let link = Link {
            prev: NONE,
            next: head,
            bucket: bucket as u16,
        };
        nodes.set_link(idx, link);
        if head != NONE {
            nodes.set_prev(head, idx);
        }
        self.heads[bucket] = idx;
    }

    /// Unlinks node `idx` if it is scheduled.
    #[inline]
    pub(super) fn cancel(&mut self, nodes: &mut impl Timed, idx: u32) {
        let link = nodes.link(idx);
        if link.bucket == DETACHED {
            return;
        }
        if link.prev == NONE {
            self.heads[link.bucket as usize] = link.next;
        } else {
            nodes.set_next(link.prev, link.next);
        }
        if link.next != NONE {
            nodes.set_prev(link.next, link.prev);
        }
        nodes.set_link(idx, Link::DETACHED);
    }

    /// Moves the cursor to `now` if that stays within the current tick, where
    /// nothing comes due; false if [`advance`](Self::advance) has work to do.
    #[inline]
    pub(super) fn advance_within_tick(&mut self, now: u64) -> bool {
        let within = tick(now) == tick(self.cursor);
        if within {
            self.cursor = self.cursor.max(now);
        }
        within
    }

    /// Moves the cursor to `now`. Nodes whose expiry tick is before `now`'s
    /// tick are unlinked and pushed to `expired`; the others met on the way
    /// are rescheduled closer to their expiry. Time going backwards is ignored.
    pub(super) fn advance(&mut self, nodes: &mut impl Timed, now: u64, expired: &mut Vec<u32>) {
        if self.advance_within_tick(now) || now < self.cursor {
            return;
        }
        let old = self.cursor;
        self.cursor = now;
        for (level, shift) in SHIFTS.into_iter().enumerate().take(LEVELS) {
            let (from, to) = (old >> shift, now >> shift);
            if from == to {
                break;
            }
            // Level 0 handles buckets whose whole range has passed; higher
            // levels cascade a bucket as soon as the cursor enters it.
            let first = if level == 0 { from } else { from + 1 };
            for slot in first..first + (to - from).min(SLOTS as u64) {
                let bucket = level * SLOTS + (slot & SLOT_MASK) as usize;
                let mut idx = std::mem::replace(&mut self.heads[bucket], NONE);
                while idx != NONE {
                    let next = nodes.link(idx).next;
                    nodes.set_link(idx, Link::DETACHED);
                    let expires_at = nodes.expires_at(idx);
                    if tick(expires_at) < tick(now) {
                        expired.push(idx);
                    } else {
                        self.schedule(nodes, idx, expires_at);
                    }
                    idx = next;
                }
            }
        }
    }

    /// Pushes to `out` the nodes of the current tick that expire at or
    /// before `now` (`advance` leaves the current tick alone).
    pub(super) fn due(&self, nodes: &impl Timed, now: u64, out: &mut Vec<u32>) {
        let mut idx = self.heads[(tick(self.cursor) & SLOT_MASK) as usize];
        while idx != NONE {
            if nodes.expires_at(idx) <= now {
                out.push(idx);
            }
            idx = nodes.link(idx).next;
        }
    }
}
