//! `LocalCache` against a plain reference model over random operation
//! sequences: same hits and misses, same counters, both bounds always held,
//! never an expired value.

use proptest::prelude::*;
use stratacache::local::EXPIRY_GRANULARITY_MS;
use stratacache::{Eviction, Expiry, LocalCache, LocalStats, Lookup};

#[derive(Debug, Clone)]
enum Op {
    Get(u8),
    Peek(u8),
    Set(u8, u32, u64, Expiry),
    Delete(u8),
    Touch(u8, Expiry),
    Purge,
    /// Moves the clock; negative steps model a host clock going backwards.
    Advance(i64),
}

#[derive(Debug, Clone)]
struct Entry {
    key: u8,
    value: u32,
    weight: u64,
    expires_at: u64,
}

/// The reference: a recency-ordered list (front = newest) with the documented
/// reclaim rule: each write moves time forward and drops the entries whose
/// expiry tick lies before the current tick.
struct Model {
    entries: Vec<Entry>,
    max_entries: usize,
    max_weight: u64,
    default_ttl: Option<u64>,
    cursor: u64,
    stats: LocalStats,
}

fn tick(ms: u64) -> u64 {
    ms / EXPIRY_GRANULARITY_MS
}

impl Model {
    fn weight(&self) -> u64 {
        self.entries.iter().map(|e| e.weight).sum()
    }
    fn pos(&self, key: u8) -> Option<usize> {
        self.entries.iter().position(|e| e.key == key)
    }
    fn expire_at(&mut self, i: usize) {
        self.entries.remove(i);
        self.stats.expirations += 1;
    }
    fn advance(&mut self, now: u64) {
        if now <= self.cursor || tick(now) == tick(self.cursor) {
            self.cursor = self.cursor.max(now);
            return;
        }
        self.cursor = now;
        while let Some(i) = self
            .entries
            .iter()
            .position(|e| tick(e.expires_at) < tick(now))
        {
            self.expire_at(i);
        }
    }
    fn expires(&self, expiry: Expiry, now: u64) -> Option<u64> {
        match expiry {
            Expiry::Never => Some(u64::MAX),
            Expiry::Default => Some(self.default_ttl.map_or(u64::MAX, |t| now.saturating_add(t))),
            Expiry::AfterMs(0) => None,
            Expiry::AfterMs(t) => Some(now.saturating_add(t)),
        }
    }
    fn find_live(&mut self, key: u8, now: u64) -> Option<usize> {
        let i = self.pos(key)?;
        if self.entries[i].expires_at > now {
            return Some(i);
        }
        self.expire_at(i);
        None
    }
    fn get(&mut self, key: u8, now: u64) -> Lookup<u32> {
        match self.find_live(key, now) {
            Some(i) => {
                self.stats.hits += 1;
                let e = self.entries.remove(i);
                let v = e.value;
                self.entries.insert(0, e);
                Lookup::Hit(v)
            }
            None => {
                self.stats.misses += 1;
                Lookup::Miss
            }
        }
    }
    fn peek(&self, key: u8, now: u64) -> Lookup<u32> {
        self.pos(key)
            .map(|i| &self.entries[i])
            .filter(|e| e.expires_at > now)
            .map(|e| e.value)
            .into()
    }
    fn evict_oldest(&mut self, now: u64) {
        let last = self.entries.len() - 1;
        if self.entries[last].expires_at <= now {
            self.expire_at(last);
        } else {
            self.entries.pop();
            self.stats.evictions += 1;
        }
    }
    fn set(&mut self, key: u8, value: u32, weight: u64, expiry: Expiry, now: u64) {
        self.advance(now);
        let existing = self.pos(key);
        let Some(expires_at) = self.expires(expiry, now) else {
            if let Some(i) = existing {
                self.entries.remove(i);
            }
            return;
        };
        if weight > self.max_weight {
            if let Some(i) = existing {
                self.entries.remove(i);
            }
            self.stats.rejected += 1;
            return;
        }
        let entry = Entry {
            key,
            value,
            weight,
            expires_at,
        };
        match existing {
            Some(i) => {
                self.entries.remove(i);
                self.entries.insert(0, entry);
                self.stats.updates += 1;
                while self.weight() > self.max_weight {
                    self.evict_oldest(now);
                }
            }
            None => {
                while self.entries.len() >= self.max_entries
                    || self.weight() + weight > self.max_weight
                {
                    self.evict_oldest(now);
                }
                self.entries.insert(0, entry);
                self.stats.inserts += 1;
            }
        }
    }
    fn touch(&mut self, key: u8, expiry: Expiry, now: u64) -> bool {
        self.advance(now);
        let Some(i) = self.find_live(key, now) else {
            return false;
        };
        match self.expires(expiry, now) {
            Some(at) => self.entries[i].expires_at = at,
            None => {
                self.entries.remove(i);
            }
        }
        true
    }
    fn purge(&mut self, now: u64) -> usize {
        let before = self.stats.expirations;
        self.advance(now);
        while let Some(i) = self.entries.iter().position(|e| e.expires_at <= now) {
            self.expire_at(i);
        }
        (self.stats.expirations - before) as usize
    }
}

fn expiry() -> impl Strategy<Value = Expiry> {
    prop_oneof![
        2 => Just(Expiry::Default),
        1 => Just(Expiry::Never),
        1 => Just(Expiry::AfterMs(0)),
        6 => (1u64..4_000).prop_map(Expiry::AfterMs),
        2 => (4_000u64..50_000_000_000).prop_map(Expiry::AfterMs),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..12;
    prop_oneof![
        6 => key.clone().prop_map(Op::Get),
        2 => key.clone().prop_map(Op::Peek),
        8 => (key.clone(), any::<u32>(), 0u64..12, expiry()).prop_map(|(k, v, w, e)| Op::Set(k, v, w, e)),
        2 => key.clone().prop_map(Op::Delete),
        1 => (key, expiry()).prop_map(|(k, e)| Op::Touch(k, e)),
        1 => Just(Op::Purge),
        6 => prop_oneof![
            8 => 0i64..3_000,
            2 => -300i64..0,
            1 => 3_000i64..100_000_000_000,
        ].prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn local_cache_agrees_with_the_model(
        max_entries in 1usize..8,
        max_weight in 1u64..30,
        default_ttl in prop_oneof![Just(None), (1u64..5_000).prop_map(Some)],
        start in 0u64..2_000_000_000_000,
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let mut cache: LocalCache<u8, u32> = LocalCache::new(max_entries, max_weight)
            .unwrap()
            .with_eviction(Eviction::Lru)
            .with_default_ttl(default_ttl)
            .unwrap();
        let mut model = Model {
            entries: Vec::new(),
            max_entries,
            max_weight,
            default_ttl,
            cursor: 0,
            stats: LocalStats::default(),
        };
        let mut now = start;
        for op in ops {
            match op {
                Op::Get(k) => {
                    let got = cache.get(&k, now).cloned();
                    prop_assert_eq!(got, model.get(k, now), "get {} at {}", k, now);
                }
                Op::Peek(k) => prop_assert_eq!(cache.peek(&k, now).cloned(), model.peek(k, now)),
                Op::Set(k, v, w, e) => {
                    cache.set(k, v, w, e, now);
                    model.set(k, v, w, e, now);
                }
                Op::Delete(k) => {
                    let expected = model.pos(k).map(|i| model.entries.remove(i).value);
                    prop_assert_eq!(cache.delete(&k), Lookup::from(expected));
                }
                Op::Touch(k, e) => prop_assert_eq!(cache.touch(&k, e, now), model.touch(k, e, now)),
                Op::Purge => prop_assert_eq!(cache.purge_expired(now), model.purge(now)),
                Op::Advance(step) => now = now.saturating_add_signed(step),
            }
            prop_assert!(cache.len() <= max_entries);
            prop_assert!(cache.weight() <= max_weight);
            prop_assert_eq!(cache.len(), model.entries.len());
            prop_assert_eq!(cache.weight(), model.weight());
            let stats = cache.stats();
            prop_assert_eq!(
                LocalStats { entries: 0, weight: 0, ..stats },
                model.stats
            );
            let order: Vec<u8> = cache.keys_by_recency().copied().collect();
            let expected: Vec<u8> = model.entries.iter().map(|e| e.key).collect();
            prop_assert_eq!(order, expected);
        }
    }
}
