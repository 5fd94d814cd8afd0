//! The tiered read-through over the in-memory test host: batching, chunking,
//! back-fill, failures and cool-down, signing, stampede control, refresh.

mod support;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use stratacache::chunk::MEMCACHED_VALUE_LIMIT;
use stratacache::envelope::{Codec, Keyring};
use stratacache::stampede::LeasePolicy;
use stratacache::tiered::{
    Loaded, ReadOptions, Source, Step, TierConfig, TieredCache, TieredConfig,
};
use stratacache::{Expiry, Lookup, RequestCache};
use support::{tiers, Host};

const MIB: usize = 1024 * 1024;

fn memcached_and_storage() -> TieredConfig {
    TieredConfig::new(vec![
        TierConfig::memcached("memcached"),
        TierConfig::storage("s3"),
    ])
}

fn host(config: TieredConfig) -> Host {
    let limits: Vec<usize> = config.tiers.iter().map(|t| t.item_limit + 4096).collect();
    Host::new(TieredCache::new(config).unwrap(), tiers(&limits))
}

fn keys(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("course_meta|v1|course-v1:edX+C{i}+2024"))
        .collect()
}

fn refs(keys: &[String]) -> Vec<&str> {
    keys.iter().map(String::as_str).collect()
}

fn hit(value: &str) -> Lookup<String> {
    Lookup::Hit(value.to_string())
}

#[test]
fn cold_read_loads_once_in_one_batch_and_writes_every_tier() {
    let h = host(memcached_and_storage());
    let ks = keys(100);
    let results = h.get(&refs(&ks), ReadOptions::load());
    assert_eq!(h.load_count(), 100);
    assert_eq!(h.steps_of("load"), 1, "100 cold keys are one loader batch");
    assert_eq!(h.steps_of("fetch:0"), 1);
    assert_eq!(h.steps_of("fetch:1"), 1);
    for (key, result) in ks.iter().zip(&results) {
        assert_eq!(result.lookup, hit(&Host::value_of(key)));
        assert_eq!(result.source, Some(Source::Loader));
    }
    assert_eq!(h.tiers[0].lock().unwrap().items.len(), 100);
    assert_eq!(h.tiers[1].lock().unwrap().items.len(), 100);
}

#[test]
fn a_read_of_100_remote_keys_is_exactly_one_fetch_per_tier() {
    let writer = host(memcached_and_storage());
    let ks = keys(100);
    writer.get(&refs(&ks), ReadOptions::load());
    // Another process: empty local tier, same remote tiers.
    let reader = writer.other_process(TieredCache::new(memcached_and_storage()).unwrap());
    let results = reader.get(&refs(&ks), ReadOptions::load());
    assert_eq!(
        reader.steps_of("fetch"),
        1,
        "steps: {:?}",
        reader.steps.lock().unwrap()
    );
    assert_eq!(reader.steps_of("fetch:0:100"), 1);
    assert_eq!(reader.load_count(), 0);
    assert!(results.iter().all(|r| r.source == Some(Source::Tier(0))));
    // Half in memcached, half only in storage: one fetch each, then a
    // back-fill of memcached.
    {
        let mut memcached = writer.tiers[0].lock().unwrap();
        for key in &ks[50..] {
            memcached.items.remove(key);
        }
    }
    let third = writer.other_process(TieredCache::new(memcached_and_storage()).unwrap());
    let results = third.get(&refs(&ks), ReadOptions::load());
    assert_eq!(third.steps_of("fetch:0:100"), 1);
    assert_eq!(third.steps_of("fetch:1:50"), 1);
    assert_eq!(
        third.steps_of("store:0:50"),
        1,
        "storage hits are back-filled into memcached"
    );
    assert_eq!(third.load_count(), 0);
    assert!(results[50..]
        .iter()
        .all(|r| r.source == Some(Source::Tier(1))));
    assert_eq!(writer.tiers[0].lock().unwrap().items.len(), 100);
}

#[test]
fn local_hits_need_no_step_but_done() {
    let h = host(memcached_and_storage());
    let ks = keys(100);
    h.get(&refs(&ks), ReadOptions::load());
    h.steps.lock().unwrap().clear();
    let results = h.get(&refs(&ks), ReadOptions::load());
    assert_eq!(*h.steps.lock().unwrap(), ["done"]);
    assert!(results.iter().all(|r| r.source == Some(Source::Local)));
}

#[test]
fn plain_get_of_missing_keys_is_a_miss_without_loading() {
    let h = host(memcached_and_storage());
    let results = h.get(&["nothing|v1"], ReadOptions::get());
    assert_eq!(results[0].lookup, Lookup::Miss);
    assert_eq!(h.load_count(), 0);
    assert_eq!(h.cache.lock().unwrap().read_stats().misses, 1);
}

#[test]
fn request_tier_answers_first_and_is_filled_by_finish() {
    let h = host(memcached_and_storage());
    let mut request = RequestCache::new();
    let first = h
        .read(&["k|v1"], ReadOptions::load(), Some(&mut request))
        .unwrap();
    assert_eq!(first[0].source, Some(Source::Loader));
    h.cache.lock().unwrap().clear_local();
    h.steps.lock().unwrap().clear();
    let second = h
        .read(&["k|v1"], ReadOptions::load(), Some(&mut request))
        .unwrap();
    assert_eq!(second[0].source, Some(Source::Request));
    assert_eq!(*h.steps.lock().unwrap(), ["done"]);
    assert_eq!(h.cache.lock().unwrap().read_stats().request_hits, 1);
}

#[test]
fn force_miss_skips_local_and_remote_tiers_and_rewrites_them() {
    let h = host(memcached_and_storage());
    h.get(&["k|v1"], ReadOptions::load());
    let results = h.get(&["k|v1"], ReadOptions::refresh());
    assert_eq!(results[0].source, Some(Source::Loader));
    assert_eq!(h.load_count(), 2);
    assert_eq!(
        h.steps_of("fetch"),
        2,
        "only the first read fetched (one per tier)"
    );
    assert_eq!(h.steps_of("store"), 4);
}

#[test]
fn values_over_the_item_limit_are_chunked_and_read_back() {
    let config = TieredConfig::new(vec![TierConfig::memcached("memcached")]);
    let h = host(config.clone());
    let big_key = "outline|v1|course-v1:edX+Big+2024";
    // 3 MiB of incompressible text: chunked in memcached (1 MiB items).
    let big: String = (0..3 * MIB / 16)
        .map(|i| format!("{:016x}", (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .collect();
    let steps = h
        .cache
        .lock()
        .unwrap()
        .set_all_tiers(
            big_key,
            Loaded::new(big.clone(), Codec::Raw, big.clone().into_bytes()),
            Expiry::Default,
            h.now(),
            7,
            None,
        )
        .unwrap();
    h.run_writes(steps);
    let stored = h.tiers[0].lock().unwrap().items.len();
    assert!(
        stored >= 4,
        "a manifest and at least 3 chunks, got {stored} items"
    );
    assert!(h.tiers[0]
        .lock()
        .unwrap()
        .items
        .values()
        .all(|v| v.len() <= MEMCACHED_VALUE_LIMIT));
    let reader = h.other_process(TieredCache::new(config.clone()).unwrap());
    let results = reader.get(&[big_key], ReadOptions::load());
    assert_eq!(results[0].lookup, hit(&big));
    assert_eq!(
        reader.steps_of("fetch:0"),
        2,
        "one fetch for the key, one for its chunks"
    );
    assert_eq!(reader.load_count(), 0);
    assert_eq!(
        reader.cache.lock().unwrap().tier_stats()[0].chunked_reads,
        1
    );

    // One chunk evicted: a miss (counted) and a reload, never wrong data.
    {
        let mut memcached = h.tiers[0].lock().unwrap();
        let chunk = memcached
            .items
            .keys()
            .find(|k| k.starts_with("tiercache.chunk"))
            .unwrap()
            .clone();
        memcached.items.remove(&chunk);
    }
    let third = h.other_process(TieredCache::new(config.clone()).unwrap());
    let results = third.get(&[big_key], ReadOptions::load());
    assert_eq!(results[0].lookup, hit(&Host::value_of(big_key)));
    assert_eq!(third.load_count(), 1);
    assert_eq!(third.cache.lock().unwrap().tier_stats()[0].chunk_misses, 1);

    // A chunk replaced by another version's chunk bytes: still never wrong data.
    {
        let mut memcached = h.tiers[0].lock().unwrap();
        let chunk = memcached
            .items
            .keys()
            .find(|k| k.starts_with("tiercache.chunk"))
            .unwrap()
            .clone();
        memcached.items.insert(chunk, vec![b'x'; 100]);
    }
}

#[test]
fn a_failing_tier_degrades_to_the_next_tier_and_cools_down() {
    let h = host(memcached_and_storage());
    let ks = keys(3);
    h.get(&refs(&ks), ReadOptions::load());
    h.tiers[0].lock().unwrap().down = true;
    for round in 0..3 {
        let reader = h.other_process(TieredCache::new(memcached_and_storage()).unwrap());
        let _ = round;
        let results = reader.get(&refs(&ks), ReadOptions::load());
        assert!(
            results.iter().all(|r| r.source == Some(Source::Tier(1))),
            "served from storage"
        );
    }
    // One shared process: after 3 failures memcached is skipped, not hammered.
    let p = h.other_process(TieredCache::new(memcached_and_storage()).unwrap());
    for _ in 0..6 {
        p.cache.lock().unwrap().clear_local();
        let results = p.get(&refs(&ks), ReadOptions::load());
        assert!(results.iter().all(|r| r.lookup.is_found()));
    }
    let stats = p.cache.lock().unwrap().tier_stats()[0];
    assert_eq!(stats.errors, 3, "three failed fetches trip the breaker");
    assert!(stats.skipped_cooling_down >= 3);
    assert!(p.cache.lock().unwrap().is_cooling_down(0, p.now()));
    // After the cool-down, one probe; memcached is back, so it is used again.
    h.tiers[0].lock().unwrap().down = false;
    p.advance(5_001);
    p.cache.lock().unwrap().clear_local();
    p.steps.lock().unwrap().clear();
    let results = p.get(&refs(&ks), ReadOptions::load());
    assert!(results.iter().all(|r| r.source == Some(Source::Tier(0))));
    assert!(!p.cache.lock().unwrap().is_cooling_down(0, p.now()));
}

#[test]
fn strict_mode_turns_a_tier_failure_into_an_error() {
    let mut config = memcached_and_storage();
    config.strict = true;
    let h = host(config);
    h.tiers[0].lock().unwrap().down = true;
    let err = h.read(&["k|v1"], ReadOptions::load(), None).unwrap_err();
    assert_eq!(err.tier_name, "memcached");
    assert!(err.to_string().contains("strict"));
    assert_eq!(h.load_count(), 0);
}

#[test]
fn everything_down_still_serves_from_the_loader() {
    let h = host(memcached_and_storage());
    h.tiers[0].lock().unwrap().down = true;
    h.tiers[1].lock().unwrap().down = true;
    let results = h.get(&["k|v1"], ReadOptions::load());
    assert_eq!(results[0].lookup, hit(&Host::value_of("k|v1")));
    let stats = h.cache.lock().unwrap().tier_stats().to_vec();
    assert_eq!(
        stats[0].errors + stats[1].errors,
        4,
        "two fetches and two stores failed"
    );
}

#[test]
fn signing_rejects_tampered_and_unsigned_values_before_decoding() {
    let keyring = Keyring::new("k1", b"0123456789abcdef0123456789abcdef").unwrap();
    let mut config = memcached_and_storage();
    config.keyring = Some(keyring.clone());
    let h = host(config.clone());
    h.get(&["k|v1", "u|v1"], ReadOptions::load());
    {
        let mut memcached = h.tiers[0].lock().unwrap();
        let value = memcached.items.get_mut("k|v1").unwrap();
        let last = value.len() - 40;
        value[last] ^= 1; // flip a payload bit
                          // An unsigned envelope, as an attacker with memcached access writes it.
        let forged = stratacache::envelope::encode(
            &stratacache::envelope::EnvelopeHeader::new(Codec::Raw, 0),
            b"forged",
            &stratacache::envelope::EncodeOptions::new(),
        );
        memcached.items.insert("u|v1".into(), forged);
    }
    h.tiers[1].lock().unwrap().items.clear();
    let reader = h.other_process(TieredCache::new(config).unwrap());
    let results = reader.get(&["k|v1", "u|v1"], ReadOptions::load());
    assert_eq!(results[0].lookup, hit(&Host::value_of("k|v1")));
    assert_eq!(results[1].lookup, hit(&Host::value_of("u|v1")));
    assert_eq!(
        reader.steps_of("decode"),
        0,
        "nothing reached the deserializer"
    );
    assert_eq!(reader.cache.lock().unwrap().tier_stats()[0].rejected, 2);
    assert_eq!(reader.load_count(), 2);
}

#[test]
fn sixty_four_threads_reading_one_cold_key_load_it_once() {
    let mut h = host(memcached_and_storage());
    h.load_delay = Duration::from_millis(30);
    let barrier = Arc::new(Barrier::new(64));
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let h = h.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                h.get(&["hot|v1|course-v1:edX+DemoX"], ReadOptions::load())
            })
        })
        .collect();
    for t in threads {
        let results = t.join().unwrap();
        assert_eq!(
            results[0].lookup,
            hit(&Host::value_of("hot|v1|course-v1:edX+DemoX"))
        );
    }
    assert_eq!(
        h.load_count(),
        1,
        "exactly one load for 64 concurrent readers"
    );
}

#[test]
fn a_failed_load_releases_waiters_who_retry_and_reports_the_error() {
    let mut h = host(TieredConfig::new(vec![TierConfig::memcached("memcached")]));
    h.load_delay = Duration::from_millis(20);
    h.failing_keys.lock().unwrap().insert("bad|v1".into());
    let results = h.get(&["bad|v1", "good|v1"], ReadOptions::load());
    assert_eq!(results[0].lookup, Lookup::Miss);
    assert_eq!(
        results[0].error.as_deref(),
        Some("loader failed for bad|v1")
    );
    assert_eq!(results[1].lookup, hit(&Host::value_of("good|v1")));
    assert_eq!(h.cache.lock().unwrap().read_stats().load_errors, 1);
    // Concurrent readers of a failing key: nobody hangs, each gets the error.
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let h = h.clone();
            std::thread::spawn(move || h.get(&["bad|v1"], ReadOptions::load()))
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap()[0].error.is_some());
    }
    assert_eq!(h.cache.lock().unwrap().flight_stats().finished, 1);
}

#[test]
fn stale_values_are_served_while_one_reader_refreshes() {
    let mut config = TieredConfig::new(vec![TierConfig::memcached("memcached")]);
    config.default_ttl_ms = Some(10_000);
    config.stale_ms = 60_000;
    config.ttl_jitter = 0.0;
    config.xfetch_beta = 0.0;
    let h = host(config);
    h.get(&["k|v1"], ReadOptions::load());
    h.advance(20_000); // past the TTL, within the stale window
    let first = h.get(&["k|v1"], ReadOptions::load());
    let second = h.get(&["k|v1"], ReadOptions::load());
    assert_eq!(first[0].lookup, hit(&Host::value_of("k|v1")));
    assert!(first[0].refresh, "the first reader refreshes");
    assert!(!second[0].refresh, "only one refresh at a time");
    assert_eq!(h.load_count(), 1);
    // The refresh: a force-miss read writes every tier; after it, fresh.
    h.get(&["k|v1"], ReadOptions::refresh());
    let later = h.get(&["k|v1"], ReadOptions::load());
    assert!(!later[0].refresh);
    // Past the hard expiry (TTL + stale window), it is gone everywhere.
    h.advance(80_000);
    let reader =
        h.other_process(TieredCache::new(h.cache.lock().unwrap().config().clone()).unwrap());
    let results = reader.get(&["k|v1"], ReadOptions::load());
    assert_eq!(results[0].source, Some(Source::Loader));
    assert_eq!(reader.cache.lock().unwrap().tier_stats()[0].expired, 1);
}

#[test]
fn xfetch_hands_out_early_refreshes_near_expiry_only() {
    let mut config = TieredConfig::new(vec![TierConfig::memcached("memcached")]);
    config.default_ttl_ms = Some(100_000);
    config.ttl_jitter = 0.0;
    config.xfetch_beta = 1.0;
    config.local = None; // every read sees the envelope's expiry
    let h = host(config.clone());
    h.get(&["k|v1"], ReadOptions::load()); // cost 50 ms (the test loader)
    let early_refreshes = |at: u64| {
        let mut count = 0;
        for _ in 0..200 {
            let p = h.other_process(TieredCache::new(config.clone()).unwrap());
            *p.now.lock().unwrap() = at;
            count += usize::from(p.get(&["k|v1"], ReadOptions::get())[0].refresh);
        }
        count
    };
    let start = h.now();
    assert_eq!(
        early_refreshes(start + 10_000),
        0,
        "90 s before expiry: never"
    );
    // P(refresh) = exp(-gap / cost): 10 ms left of a 50 ms recompute → 0.82,
    // 40 ms left → 0.45.
    let close = early_refreshes(start + 100_000 - 10);
    let closer_than_far = early_refreshes(start + 100_000 - 40);
    assert!(
        (140..=190).contains(&close),
        "10 ms before expiry: ~164/200 expected, got {close}"
    );
    assert!(
        (60..=120).contains(&closer_than_far),
        "40 ms before expiry: ~90/200 expected, got {closer_than_far}"
    );
}

#[test]
fn leases_let_one_process_load_while_another_waits_for_its_write() {
    let mut config = TieredConfig::new(vec![TierConfig {
        leases: true,
        ..TierConfig::memcached("memcached")
    }]);
    config.lease = Some(LeasePolicy {
        ttl_ms: 5_000,
        max_wait_ms: 2_000,
        poll_interval_ms: 10,
    });
    let mut a = host(config.clone());
    a.load_delay = Duration::from_millis(100);
    let b = a.other_process(TieredCache::new(config).unwrap());
    let a_thread = {
        let a = a.clone();
        std::thread::spawn(move || a.get(&["cold|v1"], ReadOptions::load()))
    };
    std::thread::sleep(Duration::from_millis(30)); // a holds the lease now
    let b_results = b.get(&["cold|v1"], ReadOptions::load());
    let a_results = a_thread.join().unwrap();
    assert_eq!(a_results[0].source, Some(Source::Loader));
    assert_eq!(
        b_results[0].source,
        Some(Source::Tier(0)),
        "b waited and read a's value"
    );
    assert_eq!(a.load_count() + b.load_count(), 1);
    assert!(b.steps_of("sleep") >= 1);
    assert!(b.cache.lock().unwrap().tier_stats()[0].lock_waits >= 1);
    // a released its lease.
    assert!(!a.tiers[0]
        .lock()
        .unwrap()
        .items
        .keys()
        .any(|k| k.starts_with("tiercache.lease")));
}

#[test]
fn hot_key_replicas_spread_reads_and_all_replicas_are_written() {
    let config = TieredConfig::new(vec![TierConfig {
        replicas: 4,
        ..TierConfig::memcached("memcached")
    }]);
    let h = host(config.clone());
    h.get(&["hot|v1"], ReadOptions::load());
    assert_eq!(h.tiers[0].lock().unwrap().items.len(), 4);
    for _ in 0..20 {
        let p = h.other_process(TieredCache::new(config.clone()).unwrap());
        assert_eq!(
            p.get(&["hot|v1"], ReadOptions::load())[0].source,
            Some(Source::Tier(0))
        );
    }
    let steps = h
        .cache
        .lock()
        .unwrap()
        .delete_all_tiers("hot|v1", h.now(), None)
        .unwrap();
    h.run_writes(steps);
    assert!(h.tiers[0].lock().unwrap().items.is_empty());
}

#[test]
fn set_and_delete_all_tiers() {
    let h = host(memcached_and_storage());
    let mut request = RequestCache::new();
    let steps = h
        .cache
        .lock()
        .unwrap()
        .set_all_tiers(
            "k|v1",
            Loaded::new("v".to_string(), Codec::Raw, b"v".to_vec()),
            Expiry::Default,
            h.now(),
            1,
            Some(&mut request),
        )
        .unwrap();
    assert_eq!(steps.len(), 2, "memcached and storage");
    h.run_writes(steps);
    assert_eq!(
        h.cache.lock().unwrap().peek_local("k|v1", h.now()),
        Lookup::Hit(&"v".to_string())
    );
    let results = h
        .read(&["k|v1"], ReadOptions::get(), Some(&mut request))
        .unwrap();
    assert_eq!(results[0].source, Some(Source::Request));
    let steps = h
        .cache
        .lock()
        .unwrap()
        .delete_all_tiers("k|v1", h.now(), Some(&mut request))
        .unwrap();
    h.run_writes(steps);
    let results = h
        .read(&["k|v1"], ReadOptions::get(), Some(&mut request))
        .unwrap();
    assert_eq!(results[0].lookup, Lookup::Miss);
    // A zero TTL deletes, as Django's timeout=0 does.
    let steps = h
        .cache
        .lock()
        .unwrap()
        .set_all_tiers(
            "k|v1",
            Loaded::new("v".to_string(), Codec::Raw, b"v".to_vec()),
            Expiry::AfterMs(0),
            h.now(),
            1,
            None,
        )
        .unwrap();
    assert!(steps
        .iter()
        .all(|s| matches!(s, stratacache::tiered::Step::Delete { .. })));
}

#[test]
fn bad_keys_and_bad_configs_are_clear_errors() {
    let mut cache: TieredCache<String> = TieredCache::new(memcached_and_storage()).unwrap();
    for bad in [
        "",
        "has space",
        "tab\there",
        "é",
        &"x".repeat(251),
        &"y".repeat(10_000),
    ] {
        let err = cache
            .read::<String>(vec![bad.to_string()], ReadOptions::load(), 0, 0, None)
            .unwrap_err();
        assert!(err.to_string().contains("safe_key"), "{err}");
        assert!(err.shown.chars().count() <= 80);
    }
    let mut config = memcached_and_storage();
    config.tiers[0].item_limit = 10;
    assert!(TieredCache::<String>::new(config)
        .unwrap_err()
        .to_string()
        .contains("minimum"));
    let mut config = memcached_and_storage();
    config.lease = Some(LeasePolicy::default());
    assert!(TieredCache::<String>::new(config)
        .unwrap_err()
        .to_string()
        .contains("leases"));
    let mut config = memcached_and_storage();
    config.ttl_jitter = 1.5;
    assert!(TieredCache::<String>::new(config).is_err());
    let mut config = memcached_and_storage();
    config.tiers[1].replicas = 0;
    assert!(TieredCache::<String>::new(config).is_err());
    let mut config = memcached_and_storage();
    config.local = Some(stratacache::tiered::LocalTierConfig {
        max_entries: 0,
        ..Default::default()
    });
    assert!(TieredCache::<String>::new(config).is_err());
}

#[test]
fn corrupt_and_foreign_bytes_in_a_tier_are_misses() {
    let h = host(memcached_and_storage());
    {
        let mut memcached = h.tiers[0].lock().unwrap();
        memcached
            .items
            .insert("a|v1".into(), b"pickled by someone else".to_vec());
        memcached
            .items
            .insert("b|v1".into(), vec![0x89, b'T', b'C', 1]); // truncated
        memcached
            .items
            .insert("c|v1".into(), vec![0x89, b'T', b'C', 99, 0, 0]); // future version
    }
    let results = h.get(&["a|v1", "b|v1", "c|v1"], ReadOptions::load());
    assert!(results.iter().all(|r| r.source == Some(Source::Loader)));
    assert_eq!(h.cache.lock().unwrap().tier_stats()[0].rejected, 3);
}

#[test]
fn content_addressed_publish_keeps_unchanged_entries_valid() {
    use stratacache::content::ContentManifest;
    use stratacache::Namespace;
    let h = host(memcached_and_storage());
    let ns = Namespace::new("content").unwrap();
    let mut v1 = ContentManifest::new();
    for i in 0..100 {
        v1.insert(format!("item/{i}"), format!("content {i}").as_bytes());
    }
    let mut v2 = v1.clone();
    v2.insert("item/7", b"content 7, edited");
    let item_keys = |m: &ContentManifest| -> Vec<String> {
        m.ids().map(|id| m.key_for(&ns, id).unwrap()).collect()
    };
    let v1_keys = item_keys(&v1);
    h.get(&refs(&v1_keys), ReadOptions::load());
    assert_eq!(h.load_count(), 100);
    // Another process switches to v2: only the edited item is loaded.
    let reader = h.other_process(TieredCache::new(memcached_and_storage()).unwrap());
    let results = reader.get(&refs(&item_keys(&v2)), ReadOptions::load());
    assert_eq!(reader.load_count(), 1);
    assert_eq!(
        results
            .iter()
            .filter(|r| r.source == Some(Source::Tier(0)))
            .count(),
        99
    );
}

#[test]
fn a_signed_value_replayed_under_another_key_is_refused() {
    let keyring = Keyring::new("k1", b"0123456789abcdef0123456789abcdef").unwrap();
    let mut config = TieredConfig::new(vec![TierConfig {
        replicas: 3,
        item_limit: 2048,
        ..TierConfig::memcached("memcached")
    }]);
    config.keyring = Some(keyring);
    config.compress_at = None; // keep the big value big enough to chunk
    let h = host(config.clone());
    // Alice's grades, and a big value (chunked) under each of 3 replica keys.
    h.get(
        &["grades|v1|alice", "grades|v1|bob", "big|v1|outline"],
        ReadOptions::load(),
    );
    let reader = h.other_process(TieredCache::new(config.clone()).unwrap());
    let results = reader.get(&["grades|v1|alice", "big|v1|outline"], ReadOptions::load());
    assert!(
        results.iter().all(|r| r.source == Some(Source::Tier(0))),
        "replicas verify under their key"
    );
    assert!(reader.cache.lock().unwrap().tier_stats()[0].chunked_reads >= 1);
    // Someone with memcached access copies Alice's entries over Bob's.
    {
        let mut memcached = h.tiers[0].lock().unwrap();
        let alice: Vec<(String, Vec<u8>)> = memcached
            .items
            .iter()
            .filter(|(k, _)| k.contains("alice"))
            .map(|(k, v)| (k.replace("alice", "bob"), v.clone()))
            .collect();
        assert!(!alice.is_empty());
        memcached.items.extend(alice);
    }
    let reader = h.other_process(TieredCache::new(config).unwrap());
    let results = reader.get(&["grades|v1|bob"], ReadOptions::load());
    assert_eq!(results[0].lookup, hit(&Host::value_of("grades|v1|bob")));
    assert_eq!(results[0].source, Some(Source::Loader));
    assert_eq!(reader.cache.lock().unwrap().tier_stats()[0].rejected, 1);
}

#[test]
fn a_reader_that_missed_before_the_leader_finished_does_not_load_again() {
    use stratacache::tiered::{HostValue, Step};
    let mut cache: TieredCache<String> =
        TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("memcached")])).unwrap();
    let keys = || vec!["cold|v1".to_string()];
    // Both readers ask memcached and miss before either has loaded.
    let mut a = cache
        .read_raw::<String>(keys(), ReadOptions::load(), 1_000, 1, None)
        .unwrap();
    let mut b = cache
        .read_raw::<String>(keys(), ReadOptions::load(), 1_000, 2, None)
        .unwrap();
    assert!(matches!(a.next(&mut cache), Step::Fetch { .. }));
    assert!(matches!(b.next(&mut cache), Step::Fetch { .. }));
    a.fetched(&mut cache, 0, vec![None]).unwrap();
    b.fetched(&mut cache, 0, vec![None]).unwrap();
    // A claims, loads and finishes its flight before B claims.
    assert!(matches!(a.next(&mut cache), Step::Load { .. }));
    let value = "loaded once".to_string();
    a.loaded(
        &mut cache,
        vec![Ok(Loaded::new(
            value.clone(),
            Codec::Raw,
            value.clone().into_bytes(),
        ))],
        5,
    )
    .unwrap();
    while a.next(&mut cache) != Step::Done {}
    a.finish(&mut cache, None).unwrap();
    // B finds A's value in the local tier instead of loading it again.
    let mut loads = 0;
    loop {
        match b.next(&mut cache) {
            Step::Load { .. } => {
                loads += 1;
                b.loaded(&mut cache, vec![Err("second load".into())], 0)
                    .unwrap();
            }
            Step::Decode { items } => {
                let values = items
                    .iter()
                    .map(|i| {
                        Ok(HostValue::new(
                            String::from_utf8(i.payload.clone()).unwrap(),
                            1,
                        ))
                    })
                    .collect();
                b.decoded(&mut cache, values).unwrap();
            }
            Step::Done => break,
            _ => {}
        }
    }
    let results = b.finish(&mut cache, None).unwrap();
    assert_eq!(loads, 0, "the key was loaded once for both readers");
    assert_eq!(results[0].lookup, hit(&value));
    assert_eq!(results[0].source, Some(Source::Local));
}

/// A tier that answers a write is alive: the write ends its cool-down as a
/// successful read would (pymemcache's `HashClient` takes any successful
/// call as the server's recovery), and a failed write counts toward one.
#[test]
fn a_successful_write_ends_a_cool_down_and_a_failed_one_counts() {
    let h = host(memcached_and_storage());
    let set = |key: &str| {
        h.cache
            .lock()
            .unwrap()
            .set_all_tiers(
                key,
                Loaded::new("v".to_string(), Codec::Raw, b"v".to_vec()),
                Expiry::Default,
                h.now(),
                1,
                None,
            )
            .unwrap()
    };
    h.tiers[0].lock().unwrap().down = true;
    for i in 0..3 {
        h.drive_writes(set(&format!("w|v1|{i}")));
    }
    assert_eq!(h.cache.lock().unwrap().tier_stats()[0].errors, 3);
    assert!(h.cache.lock().unwrap().is_cooling_down(0, h.now()));
    // While it cools down, writes skip it (no store step for tier 0)...
    assert!(set("w|v1|skipped")
        .iter()
        .all(|s| !matches!(s, Step::Store { tier: 0, .. })));
    // ...until the probe is due; memcached is back and the probe is a write.
    h.tiers[0].lock().unwrap().down = false;
    h.advance(5_001);
    let probe = set("w|v1|probe");
    assert!(probe
        .iter()
        .any(|s| matches!(s, Step::Store { tier: 0, .. })));
    h.drive_writes(probe);
    assert!(
        !h.cache.lock().unwrap().is_cooling_down(0, h.now()),
        "the write that reached memcached ended the cool-down"
    );
    // The next read uses memcached at once (it finds the probe's value).
    h.cache.lock().unwrap().clear_local();
    let results = h.get(&["w|v1|probe"], ReadOptions::get());
    assert_eq!(results[0].source, Some(Source::Tier(0)));
    // And the failures in a row start again from zero.
    h.tiers[0].lock().unwrap().down = true;
    for i in 0..2 {
        h.drive_writes(set(&format!("w|v1|again{i}")));
    }
    assert!(!h.cache.lock().unwrap().is_cooling_down(0, h.now()));
}

/// Drives reads by hand against a tier that hangs: each fetch fails only
/// when its timeout ends, `timeout_ms` after the read started.
#[test]
fn a_hung_tier_cools_down_from_when_its_failures_are_known() {
    let mut config = memcached_and_storage();
    config.cooldown.failures_to_trip = 3;
    config.cooldown.cooldown_ms = 500;
    let timeout_ms = 3_000;
    let mut cache: TieredCache<String> = TieredCache::new(config).unwrap();
    // Returns true if the read started at `start` asked memcached (tier 0);
    // a fetch of it fails at `start + timeout_ms`.
    let read_at = |cache: &mut TieredCache<String>, start: u64, key: &str| -> bool {
        let mut read = cache
            .read_raw::<String>(vec![key.to_owned()], ReadOptions::default(), start, 7, None)
            .unwrap();
        loop {
            match read.next(cache) {
                Step::Fetch { tier: 0, .. } => {
                    read.failed(cache, 0, "timed out".into(), start + timeout_ms);
                    return true;
                }
                Step::Fetch { tier, keys } => {
                    read.fetched(cache, tier, vec![None; keys.len()]).unwrap()
                }
                Step::Done => return false,
                _ => return false,
            }
        }
    };
    // Three reads time out (the last one known at t = 3,000 + 200).
    for (i, start) in [0, 100, 200].into_iter().enumerate() {
        assert!(read_at(&mut cache, start, &format!("k|v1|{i}")));
    }
    assert!(cache.is_cooling_down(0, 3_200));
    // Skipped for the cool-down from when the third failure was known...
    assert!(!read_at(&mut cache, 3_300, "k|v1|a"));
    assert!(!read_at(&mut cache, 3_650, "k|v1|b"));
    // ...then one probe; while it hangs, others skip the tier.
    assert!(read_at(&mut cache, 3_700, "k|v1|probe"));
    assert!(!read_at(&mut cache, 3_800, "k|v1|c"));
    assert_eq!(cache.tier_stats()[0].errors, 4);
    // The probe failed at 6,700: the next one is due 500 ms later, not
    // before (a late failure never moves the cool-down back).
    assert!(cache.is_cooling_down(0, 7_100));
    cache.tier_failed(0, 1_000);
    assert!(
        cache.is_cooling_down(0, 7_100),
        "an old failure does not end it"
    );
    assert!(!cache.is_cooling_down(0, 7_200));
}
