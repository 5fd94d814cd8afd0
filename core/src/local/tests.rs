use super::*;

const T0: u64 = 1_700_000_000_000;

fn cache(max_entries: usize, max_weight: u64) -> LocalCache<String, u32> {
    LocalCache::new(max_entries, max_weight)
        .unwrap()
        .with_eviction(Eviction::Lru)
}

fn key(n: u32) -> String {
    format!("course-v1:edX+DemoX+Demo_Course+type@sequential+block@{n}")
}

#[test]
fn bad_bounds_are_errors_that_say_what_to_do() {
    assert_eq!(
        LocalCache::<String, u8>::new(0, 1).unwrap_err(),
        LocalCacheError::ZeroMaxEntries
    );
    assert_eq!(
        LocalCache::<String, u8>::new(1, 0).unwrap_err(),
        LocalCacheError::ZeroMaxWeight
    );
    let too_many = MAX_ENTRIES_LIMIT + 1;
    assert_eq!(
        LocalCache::<String, u8>::new(too_many, 1).unwrap_err(),
        LocalCacheError::TooManyEntries { given: too_many }
    );
    let err = cache(1, 1).with_default_ttl(Some(0)).unwrap_err();
    assert_eq!(err, LocalCacheError::ZeroDefaultTtl);
    assert!(err.to_string().contains("None for no expiry"));
    assert!(LocalCacheError::ZeroMaxEntries
        .to_string()
        .contains("at least one"));
}

#[test]
fn get_set_peek_and_stored_empty_values() {
    let mut c: LocalCache<String, Option<u8>> = LocalCache::new(10, 100)
        .unwrap()
        .with_eviction(Eviction::Lru);
    assert_eq!(c.get("a", T0), Lookup::Miss);
    assert_eq!(
        c.set("a".into(), None, 1, Expiry::Never, T0),
        SetOutcome::Stored
    );
    assert_eq!(c.get("a", T0), Lookup::Hit(&None));
    assert_eq!(c.peek("a", T0), Lookup::Hit(&None));
    assert!(c.contains("a", T0));
    assert!(!c.contains("b", T0));
    let stats = c.stats();
    assert_eq!((stats.hits, stats.misses, stats.inserts), (1, 1, 1));
}

#[test]
fn lru_order_and_eviction_by_count() {
    let mut c = cache(3, u64::MAX);
    for n in 0..3 {
        c.set(key(n), n, 1, Expiry::Never, T0);
    }
    assert_eq!(c.get(&key(0), T0), Lookup::Hit(&0)); // 0 becomes newest
    c.set(key(3), 3, 1, Expiry::Never, T0); // evicts 1
    assert_eq!(c.peek(&key(1), T0), Lookup::Miss);
    let order: Vec<_> = c.keys_by_recency().cloned().collect();
    assert_eq!(order, [key(3), key(0), key(2)]);
    assert_eq!(c.stats().evictions, 1);
    // peek does not refresh recency
    assert_eq!(c.peek(&key(2), T0), Lookup::Hit(&2));
    c.set(key(4), 4, 1, Expiry::Never, T0);
    assert_eq!(c.peek(&key(2), T0), Lookup::Miss);
}

#[test]
fn eviction_by_weight_and_weight_accounting() {
    let mut c = cache(100, 10);
    c.set(key(0), 0, 4, Expiry::Never, T0);
    c.set(key(1), 1, 4, Expiry::Never, T0);
    assert_eq!(c.weight(), 8);
    c.set(key(2), 2, 4, Expiry::Never, T0); // 12 > 10: evicts key 0
    assert_eq!(c.weight(), 8);
    assert_eq!(c.peek(&key(0), T0), Lookup::Miss);
    // Growing an existing entry evicts others, never itself.
    c.set(key(2), 22, 9, Expiry::Never, T0);
    assert_eq!(c.weight(), 9);
    assert_eq!(c.len(), 1);
    assert_eq!(c.get(&key(2), T0), Lookup::Hit(&22));
    assert_eq!(c.stats().updates, 1);
    c.delete(&key(2));
    assert_eq!(c.weight(), 0);
}

#[test]
fn value_heavier_than_the_cache_is_rejected_and_replaces_nothing() {
    let mut c = cache(10, 10);
    c.set(key(0), 0, 5, Expiry::Never, T0);
    c.set(key(1), 1, 5, Expiry::Never, T0);
    let outcome = c.set(key(0), 99, 11, Expiry::Never, T0);
    assert_eq!(
        outcome,
        SetOutcome::RejectedTooHeavy {
            weight: 11,
            max_weight: 10
        }
    );
    // The stale previous value must not survive a refused update.
    assert_eq!(c.get(&key(0), T0), Lookup::Miss);
    assert_eq!(c.get(&key(1), T0), Lookup::Hit(&1));
    assert_eq!(c.stats().rejected, 1);
    assert_eq!(c.weight(), 5);
    // Exactly the limit is fine.
    assert_eq!(c.set(key(2), 2, 10, Expiry::Never, T0), SetOutcome::Stored);
    assert_eq!(c.len(), 1);
}

#[test]
fn ttl_expiry_default_ttl_and_never() {
    let mut c = cache(10, 100).with_default_ttl(Some(1_000)).unwrap();
    c.set(key(0), 0, 1, Expiry::Default, T0);
    c.set(key(1), 1, 1, Expiry::AfterMs(5_000), T0);
    c.set(key(2), 2, 1, Expiry::Never, T0);
    assert_eq!(c.get(&key(0), T0 + 999), Lookup::Hit(&0));
    assert_eq!(c.get(&key(0), T0 + 1_000), Lookup::Miss);
    assert_eq!(
        c.ttl_remaining(&key(1), T0 + 1_000),
        Lookup::Hit(Some(4_000))
    );
    assert_eq!(c.ttl_remaining(&key(2), T0), Lookup::Hit(None));
    assert_eq!(c.ttl_remaining(&key(0), T0), Lookup::Miss);
    assert_eq!(c.peek(&key(1), T0 + 5_000), Lookup::Miss);
    assert_eq!(c.get(&key(2), u64::MAX - 1), Lookup::Hit(&2));
    let stats = c.stats();
    assert_eq!(stats.expirations, 1);
    assert_eq!(c.default_ttl(), Some(1_000));
}

#[test]
fn zero_or_negative_ttl_stores_nothing_and_removes_the_old_value() {
    let mut c = cache(10, 100);
    c.set(key(0), 0, 1, Expiry::Never, T0);
    assert_eq!(
        c.set(key(0), 1, 1, Expiry::AfterMs(0), T0),
        SetOutcome::ExpiredImmediately
    );
    assert_eq!(c.get(&key(0), T0), Lookup::Miss);
    assert_eq!(Expiry::from_millis_signed(-5), Expiry::AfterMs(0));
    assert_eq!(Expiry::from_millis_signed(0), Expiry::AfterMs(0));
    assert_eq!(Expiry::from_millis_signed(7), Expiry::AfterMs(7));
    assert_eq!(
        c.set(key(1), 1, 1, Expiry::from_millis_signed(-1), T0),
        SetOutcome::ExpiredImmediately
    );
    assert!(c.is_empty());
}

#[test]
fn expired_entries_are_reclaimed_without_being_read() {
    let mut c = cache(100_000, u64::MAX);
    for n in 0..10_000 {
        c.set(key(n), n, 1, Expiry::AfterMs(60_000), T0);
    }
    assert_eq!(c.len(), 10_000);
    // Writes of other keys, long after, reclaim the dead ones on the way.
    c.set("later".into(), 0, 1, Expiry::Never, T0 + 120_000);
    assert_eq!(c.len(), 1);
    assert_eq!(c.stats().expirations, 10_000);
}

#[test]
fn purge_expired_removes_exactly_the_expired_entries() {
    let mut c = cache(1_000, u64::MAX);
    for n in 0..500u32 {
        c.set(key(n), n, 1, Expiry::AfterMs(u64::from(n) * 37 + 1), T0);
    }
    for step in [0u64, 10, 500, 1_023, 1_024, 5_000, 18_500, 18_501] {
        let now = T0 + step;
        c.purge_expired(now);
        let live = (0..500u64).filter(|n| n * 37 + 1 > step).count();
        assert_eq!(c.len(), live, "at +{step} ms");
    }
}

#[test]
fn long_ttls_cascade_through_the_wheel_levels() {
    let mut c = cache(100, u64::MAX);
    let ttls = [
        3_000u64,
        200_000,
        10_000_000,
        500_000_000,
        40_000_000_000,
        1 << 45,
    ];
    for (n, ttl) in ttls.iter().enumerate() {
        c.set(key(n as u32), n as u32, 1, Expiry::AfterMs(*ttl), T0);
    }
    let mut now = T0;
    for (n, ttl) in ttls.iter().enumerate() {
        now = now.max(T0 + ttl - 1);
        assert_eq!(c.purge_expired(now), 0, "entry {n} purged early");
        assert!(c.contains(&key(n as u32), now));
        assert_eq!(
            c.purge_expired(T0 + ttl),
            1,
            "entry {n} not purged at expiry"
        );
        now = T0 + ttl;
    }
    assert!(c.is_empty());
}

#[test]
fn clock_going_backwards_does_not_lose_entries() {
    let mut c = cache(10, u64::MAX);
    c.set(key(0), 0, 1, Expiry::AfterMs(10_000), T0 + 5_000);
    c.set(key(1), 1, 1, Expiry::AfterMs(10_000), T0);
    assert_eq!(c.get(&key(0), T0 + 14_999), Lookup::Hit(&0));
    assert_eq!(c.get(&key(1), T0 + 9_999), Lookup::Hit(&1));
    c.purge_expired(T0 + 15_000);
    assert!(c.is_empty());
}

#[test]
fn touch_changes_expiry() {
    let mut c = cache(10, 100);
    c.set(key(0), 0, 1, Expiry::AfterMs(1_000), T0);
    assert!(c.touch(&key(0), Expiry::AfterMs(10_000), T0 + 500));
    assert_eq!(c.get(&key(0), T0 + 5_000), Lookup::Hit(&0));
    assert!(c.touch(&key(0), Expiry::AfterMs(0), T0 + 5_000));
    assert_eq!(c.get(&key(0), T0 + 5_000), Lookup::Miss);
    assert!(!c.touch(&key(1), Expiry::Never, T0));
}

#[test]
fn get_many_set_many_delete_and_clear() {
    let mut c = cache(10, 100);
    let stored = c.set_many((0..3).map(|n| (key(n), n, 1)), Expiry::Never, T0);
    assert_eq!(stored, 3);
    let keys = [key(2), key(9), key(0)];
    let got = c.get_many(keys.iter().map(String::as_str), T0);
    assert_eq!(got, [Lookup::Hit(&2), Lookup::Miss, Lookup::Hit(&0)]);
    assert_eq!(c.delete(&key(1)), Lookup::Hit(1));
    assert_eq!(c.delete(&key(1)), Lookup::Miss);
    c.clear();
    assert!(c.is_empty());
    assert_eq!(c.weight(), 0);
    assert_eq!(c.get(&key(0), T0), Lookup::Miss);
    // usable after clear
    c.set(key(5), 5, 1, Expiry::AfterMs(10), T0);
    assert_eq!(c.purge_expired(T0 + 10), 1);
}

#[test]
fn removal_log_reports_every_value_that_leaves() {
    let mut c: LocalCache<u32, u32> = LocalCache::new(2, 100)
        .unwrap()
        .with_eviction(Eviction::Lru)
        .with_removal_log();
    c.set(1, 10, 1, Expiry::Never, T0);
    c.set(1, 11, 1, Expiry::Never, T0);
    c.set(2, 20, 1, Expiry::AfterMs(5), T0);
    c.set(3, 30, 1, Expiry::Never, T0); // evicts 1 (oldest)
    c.get(&2, T0 + 5); // expired
    assert_eq!(c.delete(&3), Lookup::Hit(30)); // handed back, not logged
    c.set(4, 40, 1000, Expiry::Never, T0 + 5); // rejected, nothing to supersede
    c.set(5, 50, 1, Expiry::Never, T0 + 5);
    c.clear();
    let removed = c.take_removed();
    assert_eq!(
        removed,
        [
            (10, RemovalCause::Replaced),
            (11, RemovalCause::Evicted),
            (20, RemovalCause::Expired),
            (50, RemovalCause::Cleared),
        ]
    );
    assert!(c.take_removed().is_empty());
}

#[test]
fn debug_shows_size_and_bounds() {
    let c = cache(5, 50);
    assert_eq!(
        format!("{c:?}"),
        "LocalCache { entries: 0, max_entries: 5, weight: 0, max_weight: 50, default_ttl_ms: None }"
    );
}

#[test]
fn one_set_can_evict_several_entries_in_recency_order() {
    let mut c: LocalCache<u32, u32> = LocalCache::new(10, 10)
        .unwrap()
        .with_eviction(Eviction::Lru)
        .with_removal_log();
    c.set(1, 10, 4, Expiry::Never, T0);
    c.set(2, 20, 4, Expiry::AfterMs(5), T0);
    c.set(3, 30, 2, Expiry::Never, T0);
    c.get(&1, T0); // 2 is now the least recently used
                   // 2 has expired but not been reclaimed: making room counts it as expired.
    assert_eq!(c.set(4, 40, 9, Expiry::Never, T0 + 5), SetOutcome::Stored);
    assert_eq!(
        c.take_removed(),
        [
            (20, RemovalCause::Expired),
            (30, RemovalCause::Evicted),
            (10, RemovalCause::Evicted),
        ]
    );
    let stats = c.stats();
    assert_eq!((stats.evictions, stats.expirations), (2, 1));
    assert_eq!((stats.entries, stats.weight), (1, 9));
    assert_eq!(c.keys_by_recency().copied().collect::<Vec<_>>(), [4]);
    // The slots freed on the way are used again.
    for n in 5..8 {
        c.set(n, n * 10, 0, Expiry::AfterMs(1), T0 + 5);
    }
    assert_eq!(
        c.keys_by_recency().copied().collect::<Vec<_>>(),
        [7, 6, 5, 4]
    );
    assert_eq!(c.purge_expired(T0 + 6), 3);
    assert_eq!(c.get(&4, T0 + 6), Lookup::Hit(&40));
}

#[test]
fn a_node_fits_a_cache_line_and_the_slab_tag_fits_a_node() {
    use std::mem::size_of;
    #[cfg(target_pointer_width = "64")]
    assert_eq!(size_of::<Node<String, std::sync::Arc<str>>>(), 64);
    // Keys and values without a niche of their own: the expiry time's zero
    // niche keeps a slab entry (an enum like this one) the size of the node.
    #[allow(dead_code)]
    enum SlabEntry<T> {
        Vacant(usize),
        Occupied(T),
    }
    assert_eq!(
        size_of::<SlabEntry<Node<u32, u32>>>(),
        size_of::<Node<u32, u32>>()
    );
}

/// `SlotPolicy`, driven by a host map from key to slot, against
/// `LocalCache` over a random workload: the same hits, counters, recency and
/// removals, since both run the same policy code.
#[test]
fn slot_policy_behaves_as_local_cache() {
    use std::collections::HashMap;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    for default_ttl in [None, Some(3_000)] {
        let mut cache: LocalCache<u32, u32> = LocalCache::new(40, 400)
            .unwrap()
            .with_eviction(Eviction::Lru)
            .with_default_ttl(default_ttl)
            .unwrap();
        let mut policy = SlotPolicy::new(40, 400)
            .unwrap()
            .with_default_ttl(default_ttl)
            .unwrap();
        let mut slot_of: HashMap<u32, u32> = HashMap::new();
        let mut key_of: HashMap<u32, u32> = HashMap::new();
        let mut removed = Vec::new();
        let mut now = T0;
        let drop_removed = |removed: &mut Vec<u32>,
                            slot_of: &mut HashMap<u32, u32>,
                            key_of: &mut HashMap<u32, u32>| {
            for slot in removed.drain(..) {
                let key = key_of.remove(&slot).expect("a removed slot held a key");
                slot_of.remove(&key);
            }
        };
        for step in 0..50_000 {
            let key = next(90) as u32;
            let expiry = match next(4) {
                0 => Expiry::Never,
                1 => Expiry::AfterMs(next(5_000)),
                _ => Expiry::Default,
            };
            match next(20) {
                0..=9 => {
                    let hit = cache.get(&key, now).is_found();
                    let slot = slot_of.get(&key).copied().unwrap_or(u32::MAX);
                    assert_eq!(policy.read(slot, now, &mut removed), hit, "step {step}");
                }
                10..=15 => {
                    let weight = next(30);
                    let stored = cache.set(key, key, weight, expiry, now) == SetOutcome::Stored;
                    let held = slot_of.get(&key).copied();
                    let slot = policy.set(held, weight, expiry, now, &mut removed);
                    drop_removed(&mut removed, &mut slot_of, &mut key_of);
                    assert_eq!(slot.is_some(), stored, "step {step}");
                    if let Some(slot) = slot {
                        slot_of.insert(key, slot);
                        key_of.insert(slot, key);
                    }
                }
                16 => {
                    let found = cache.delete(&key).is_found();
                    let slot = slot_of.remove(&key);
                    if let Some(slot) = slot {
                        key_of.remove(&slot);
                    }
                    assert_eq!(slot.is_some_and(|s| policy.remove(s)), found);
                }
                17 => {
                    let live = cache.touch(&key, expiry, now);
                    let slot = slot_of.get(&key).copied().unwrap_or(u32::MAX);
                    assert_eq!(policy.touch(slot, expiry, now, &mut removed), live);
                }
                18 => {
                    let n = cache.purge_expired(now);
                    assert_eq!(policy.purge_expired(now, &mut removed), n);
                }
                _ => now += next(1_500),
            }
            drop_removed(&mut removed, &mut slot_of, &mut key_of);
            assert_eq!(policy.stats(), cache.stats(), "step {step}");
            if step % 97 == 0 {
                let keys: Vec<u32> = cache.keys_by_recency().copied().collect();
                let via_slots: Vec<u32> = policy.slots_by_recency().map(|s| key_of[&s]).collect();
                assert_eq!(via_slots, keys, "step {step}");
                for (&key, &slot) in &slot_of {
                    let left = cache.ttl_remaining(&key, now);
                    let at = policy.expires_at(slot).expect("held");
                    match left {
                        Lookup::Hit(None) => assert_eq!(at, None),
                        Lookup::Hit(Some(ms)) => assert_eq!(at, Some(now + ms)),
                        Lookup::Miss => assert!(at.is_some_and(|at| at <= now)),
                    }
                }
            }
        }
        assert!(policy.stats().evictions > 100 && policy.stats().expirations > 100);
        policy.clear();
        assert!(policy.is_empty());
        assert_eq!(policy.weight(), 0);
    }
}

#[test]
fn slot_policy_ignores_slots_it_does_not_hold() {
    let mut policy = SlotPolicy::new(4, 100).unwrap();
    let mut removed = Vec::new();
    assert!(!policy.read(7, T0, &mut removed));
    assert!(!policy.remove(7));
    assert!(!policy.touch(7, Expiry::Never, T0, &mut removed));
    assert_eq!(policy.expires_at(7), None);
    assert!(!policy.holds(7));
    // A slot that holds nothing is a new entry.
    let slot = policy.set(Some(7), 1, Expiry::Never, T0, &mut removed);
    assert_eq!(slot, Some(0));
    assert!(removed.is_empty());
    assert_eq!(policy.stats().misses, 1);
    // Refused: too heavy, and a zero TTL; the held entry goes.
    assert_eq!(
        policy.set(Some(0), 101, Expiry::Never, T0, &mut removed),
        None
    );
    assert_eq!(removed, [0]);
    assert_eq!(policy.stats().rejected, 1);
    assert!(policy.is_empty());
    assert!(format!("{policy:?}").starts_with("SlotPolicy { entries: 0"));
}

#[test]
fn what_a_read_relinks_is_packed() {
    #[allow(dead_code)]
    enum SlabEntry<T> {
        Vacant(usize),
        Occupied(T),
    }
    // LocalCache: expiry, links and segment in the node, the expiry's
    // niche the tag.
    assert_eq!(std::mem::size_of::<SlabEntry<Meta>>(), 24);
    // SlotPolicy: a read relinks in an array of 8-byte records.
    assert_eq!(std::mem::size_of::<policy::Recency>(), 8);
}

/// Hashes a `u64` key to a fixed mix of itself, except [`PINNER`], which
/// hashes as key 0 does: it shares all of key 0's sketch counters.
#[cfg(feature = "adaptive")]
#[derive(Clone, Default)]
struct Colliding;

#[cfg(feature = "adaptive")]
const PINNER: u64 = u64::MAX;

#[cfg(feature = "adaptive")]
struct CollidingHasher(u64);

#[cfg(feature = "adaptive")]
impl std::hash::Hasher for CollidingHasher {
    fn finish(&self) -> u64 {
        let k = if self.0 == PINNER { 0 } else { self.0 };
        (k ^ 0x5555).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("u64 keys only")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(feature = "adaptive")]
impl std::hash::BuildHasher for Colliding {
    type Hasher = CollidingHasher;
    fn build_hasher(&self) -> CollidingHasher {
        CollidingHasher(0)
    }
}

/// An attacker who can make a key collide with the main space's next
/// victim in the sketch keeps that victim's count high while it is never
/// read, so every candidate loses to it. The victim rejects warm
/// candidates for a while (no admission at random), then, once it has
/// rejected as many in a row as the sketch is sized for, a warm candidate
/// takes its place.
#[cfg(feature = "adaptive")]
#[test]
fn a_victim_pinned_by_sketch_collisions_gives_way_to_warm_candidates() {
    let mut c: LocalCache<u64, u64, Colliding> =
        LocalCache::with_hasher(100, u64::MAX, Colliding).unwrap();
    // Key 0 will be probation's oldest entry, and is never read again;
    // the attacker's key is held just behind it.
    c.set(0, 0, 1, Expiry::Never, T0);
    c.set(PINNER, 0, 1, Expiry::Never, T0);
    for k in 1..99 {
        c.set(k, k, 1, Expiry::Never, T0);
    }
    for _ in 0..20 {
        c.set(PINNER, 0, 1, Expiry::Never, T0);
    }
    let mut held_for = None;
    for n in 0..3_000u64 {
        // The attacker keeps key 0's count up; each candidate is read
        // 7 times while in the window (warm, but less than key 0).
        c.set(PINNER, 0, 1, Expiry::Never, T0);
        let candidate = 1_000 + n;
        c.set(candidate, n, 1, Expiry::Never, T0);
        for _ in 0..7 {
            assert!(c.get(&candidate, T0).hit().is_some());
        }
        if !c.contains(&0, T0) {
            held_for = Some(n);
            break;
        }
    }
    let held_for = held_for.expect("the pinned victim must give way");
    assert!(c.contains(&PINNER, T0));
    assert!(
        (512..=2_048).contains(&held_for),
        "pinned for a while (no random admission), then evicted: {held_for} candidates"
    );
}
