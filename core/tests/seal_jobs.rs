//! A read that defers sealing hands out `SealJob`s whose stores are exactly
//! the store steps a read that does not defer issues (same bytes, same
//! order: tiers in order, chunks before their manifest), for loaded values
//! and for back-fills.
#![cfg(feature = "write-behind")]

use stratacache::envelope::{Codec, Keyring};
use stratacache::tiered::{
    Effect, HostValue, Loaded, RawRead, ReadOptions, Step, StoreItem, TierConfig, TieredCache,
    TieredConfig,
};

fn config() -> TieredConfig {
    let mut memcached = TierConfig::memcached("memcached");
    memcached.item_limit = 4096; // chunked: 40 KB over 4 KB items
    let mut config = TieredConfig::new(vec![memcached, TierConfig::storage("s3")]);
    config.keyring = Some(Keyring::new("k1", b"0123456789abcdef0123456789abcdef").unwrap());
    config
}

fn value() -> String {
    // Hex of a xorshift stream: LZ4 cannot shrink it, so it is chunked.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..2_500)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{x:016x}")
        })
        .collect()
}

/// The stores `job` seals to, appended to `stores`.
fn sealed(job: stratacache::tiered::SealJob, stores: &mut Vec<(usize, Vec<StoreItem>)>) {
    for effect in job.seal() {
        if let Effect::Store { tier, entries } = effect {
            stores.push((tier, entries));
        }
    }
}

/// A loading read of `k|v1` at `now`, sealing later if `defer`.
fn start(
    cache: &mut TieredCache<String>,
    now: u64,
    seed: u64,
    defer: bool,
) -> RawRead<String, String> {
    let mut read = cache
        .read_raw(vec!["k|v1".into()], ReadOptions::load(), now, seed, None)
        .unwrap();
    if defer {
        read.defer_sealing();
    }
    read
}

/// Stores of a cold read that loads `value`, as steps or as sealed jobs.
fn load_stores(defer: bool) -> (Vec<(usize, Vec<StoreItem>)>, TieredCache<String>) {
    let mut cache: TieredCache<String> = TieredCache::new(config()).unwrap();
    let mut read = start(&mut cache, 1_000, 42, defer);
    let mut stores = Vec::new();
    loop {
        for job in read.take_seal_jobs() {
            assert_eq!(job.key(), "k|v1");
            assert!(job.size() >= 2 * 40_000, "{}", job.size());
            sealed(job, &mut stores);
        }
        match read.next(&mut cache) {
            Step::Fetch { tier, keys } => read
                .fetched(&mut cache, tier, vec![None; keys.len()])
                .unwrap(),
            Step::Load { .. } => {
                let v = value();
                let loaded = Loaded::new(v.clone(), Codec::Raw, v.into_bytes());
                read.loaded(&mut cache, vec![Ok(loaded)], 3).unwrap();
            }
            Step::Store { tier, entries } => stores.push((tier, entries)),
            Step::Done => break,
            Step::Notify { .. } | Step::Delete { .. } => {}
            other => panic!("unexpected step {other:?}"),
        }
    }
    let results = read.finish(&mut cache, None).unwrap();
    assert_eq!(
        results[0].lookup.as_ref().cloned(),
        stratacache::Lookup::Hit(value())
    );
    (stores, cache)
}

#[test]
fn deferred_loads_seal_to_the_same_stores() {
    let (now, _) = load_stores(false);
    let (later, cache) = load_stores(true);
    assert_eq!(now.len(), 2);
    assert!(now[0].1.len() > 2, "chunked in memcached");
    assert_eq!(now, later);
    // The local tier has the value without waiting for the job.
    assert!(!cache.peek_local("k|v1", 1_001).is_miss());
}

/// Stores of a read that finds the value in S3 only: the back-fill to memcached.
fn backfill_stores(defer: bool, s3: &[StoreItem]) -> Vec<(usize, Vec<StoreItem>)> {
    let mut cache: TieredCache<String> = TieredCache::new(config()).unwrap();
    let mut read = start(&mut cache, 2_000, 9, defer);
    let mut stores = Vec::new();
    loop {
        for job in read.take_seal_jobs() {
            sealed(job, &mut stores);
        }
        match read.next(&mut cache) {
            Step::Fetch { tier: 0, keys } => {
                read.fetched(&mut cache, 0, vec![None; keys.len()]).unwrap()
            }
            Step::Fetch { tier: 1, keys } => {
                let found = keys
                    .iter()
                    .map(|k| s3.iter().find(|e| &e.key == k).map(|e| e.value.clone()))
                    .collect();
                read.fetched(&mut cache, 1, found).unwrap();
            }
            Step::Decode { items } => {
                let out = items
                    .into_iter()
                    .map(|i| Ok(HostValue::new(String::from_utf8(i.payload).unwrap(), 1)))
                    .collect();
                read.decoded(&mut cache, out).unwrap();
            }
            Step::Store { tier, entries } => stores.push((tier, entries)),
            Step::Done => break,
            Step::Notify { .. } | Step::Delete { .. } => {}
            other => panic!("unexpected step {other:?}"),
        }
    }
    let results = read.finish(&mut cache, None).unwrap();
    assert_eq!(
        results[0].lookup.as_ref().cloned(),
        stratacache::Lookup::Hit(value())
    );
    stores
}

#[test]
fn deferred_backfills_chunk_to_the_same_stores() {
    let (loaded, _) = load_stores(false);
    let s3 = &loaded.iter().find(|(tier, _)| *tier == 1).unwrap().1;
    let now = backfill_stores(false, s3);
    let later = backfill_stores(true, s3);
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].0, 0, "back-filled to memcached only");
    let manifest = now[0].1.last().unwrap();
    assert_eq!(manifest.key, "k|v1", "chunks before their manifest");
    assert_eq!(now, later);
}

#[test]
fn without_deferring_there_are_no_jobs() {
    let mut cache: TieredCache<String> = TieredCache::new(config()).unwrap();
    let mut read = cache
        .read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None)
        .unwrap();
    assert!(matches!(read.next(&mut cache), Step::Fetch { .. }));
    read.fetched(&mut cache, 0, vec![None]).unwrap();
    assert!(matches!(read.next(&mut cache), Step::Fetch { tier: 1, .. }));
    read.fetched(&mut cache, 1, vec![None]).unwrap();
    assert!(matches!(read.next(&mut cache), Step::Load { .. }));
    read.loaded(
        &mut cache,
        vec![Ok(Loaded::new("v".into(), Codec::Raw, b"v".to_vec()))],
        1,
    )
    .unwrap();
    assert!(!read.has_seal_jobs());
    assert!(read.take_seal_jobs().is_empty());
    let steps: Vec<Step> = std::iter::from_fn(|| match read.next(&mut cache) {
        Step::Done => None,
        step => Some(step),
    })
    .collect();
    assert_eq!(
        steps
            .iter()
            .filter(|s| matches!(s, Step::Store { .. }))
            .count(),
        2
    );
    let _ = read.finish(&mut cache, None);
}
