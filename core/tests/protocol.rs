//! The typed read protocol: per-key tier outcomes, dropped reads and
//! handles, and the FFI form's answer errors.

mod support;

use stratacache::envelope::Codec;
use stratacache::tiered::{
    AnswerError, Fetched, Loaded, Next, ReadError, ReadOptions, Source, Step, TierConfig,
    TieredCache, TieredConfig,
};
use support::{tiers, Host};

fn memcached_only() -> TieredConfig {
    TieredConfig::new(vec![TierConfig::memcached("memcached")])
}

#[test]
fn a_partly_failed_batch_keeps_the_healthy_keys() {
    let config = TieredConfig::new(vec![
        TierConfig::memcached("memcached"),
        TierConfig::storage("s3"),
    ]);
    let writer = Host::new(
        TieredCache::new(config.clone()).unwrap(),
        tiers(&[1 << 20, 1 << 30]),
    );
    let keys: Vec<String> = (0..8).map(|n| format!("k|v1|{n}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    writer.get(&refs, ReadOptions::load());
    // One memcached node of four is down: it holds keys 1 and 5.
    writer.tiers[0]
        .lock()
        .unwrap()
        .failing_keys
        .extend(["k|v1|1".to_string(), "k|v1|5".to_string()]);
    let reader = writer.other_process(TieredCache::new(config).unwrap());
    let results = reader.get(&refs, ReadOptions::load());
    for (n, result) in results.iter().enumerate() {
        assert_eq!(result.lookup.clone().hit(), Some(Host::value_of(&keys[n])));
        let expected = if n == 1 || n == 5 {
            Source::Tier(1) // went on to the next tier
        } else {
            Source::Tier(0) // kept from the partly failed batch
        };
        assert_eq!(result.source, Some(expected), "key {n}");
    }
    assert_eq!(reader.steps_of("fetch:0:8"), 1);
    assert_eq!(reader.steps_of("fetch:1:2"), 1, "only the failed keys");
    assert_eq!(reader.load_count(), 0);
    let cache = reader.cache.lock().unwrap();
    assert_eq!(
        cache.tier_stats()[0].errors,
        1,
        "the partial failure is counted"
    );
    assert!(
        !cache.is_cooling_down(0, reader.now()),
        "the tier stays in use"
    );
}

#[test]
fn a_batch_where_every_key_failed_is_a_tier_failure() {
    let mut cache: TieredCache<String> = TieredCache::new(memcached_only()).unwrap();
    for _ in 0..3 {
        let mut read = cache
            .read::<String>(vec!["k|v1".into()], ReadOptions::get(), 0, 1, None)
            .unwrap();
        let Next::Fetch(fetch) = read.next(&mut cache) else {
            panic!("expected a fetch")
        };
        fetch.answer(&mut cache, vec![Fetched::Failed("down".into())]);
        assert!(matches!(read.next(&mut cache), Next::Done));
        assert!(read.finish(&mut cache, None).unwrap()[0].lookup.is_miss());
    }
    assert!(cache.is_cooling_down(0, 1), "three failed batches trip it");
}

/// Reads `key` with a loader until its load step; returns the read.
fn read_until_load(
    cache: &mut TieredCache<String>,
    key: &str,
) -> stratacache::tiered::Read<String, String> {
    let mut read = cache
        .read::<String>(vec![key.into()], ReadOptions::load(), 0, 1, None)
        .unwrap();
    let Next::Fetch(fetch) = read.next(cache) else {
        panic!("expected a fetch")
    };
    fetch.answer(cache, vec![Fetched::NotFound]);
    read
}

#[test]
fn a_dropped_read_releases_its_claims() {
    let mut cache: TieredCache<String> = TieredCache::new(memcached_only()).unwrap();
    let mut leader = read_until_load(&mut cache, "cold|v1");
    assert!(matches!(leader.next(&mut cache), Next::Load(_)));
    // (the `Next::Load` handle was dropped above: that alone ends the read)
    let mut waiter = read_until_load(&mut cache, "cold|v1");
    let Next::Wait(wait) = waiter.next(&mut cache) else {
        panic!("a second reader of a key in flight waits")
    };
    let waits = wait.waits().to_vec();
    drop(leader); // the host returned early with `?`
                  // The next call into the cache wakes the waiter; it claims the key
                  // itself and loads it.
    assert_eq!(cache.poll_wakeups(), waits);
    wait.woke(&mut cache);
    let Next::Load(load) = waiter.next(&mut cache) else {
        panic!("the waiter loads the key itself")
    };
    let value = "v".to_string();
    load.answer(
        &mut cache,
        vec![Ok(Loaded::new(value.clone(), Codec::Raw, b"v".to_vec()))],
        1,
    );
    while !matches!(waiter.next(&mut cache), Next::Done) {}
    let results = waiter.finish(&mut cache, None).unwrap();
    assert_eq!(results[0].lookup.clone().hit(), Some(value));
    assert!(format!("{cache:?}").contains("in_flight: 0"), "{cache:?}");
}

#[test]
fn a_read_dropped_mid_flight_lets_the_next_reader_lead() {
    let mut cache: TieredCache<String> = TieredCache::new(memcached_only()).unwrap();
    let mut first = read_until_load(&mut cache, "cold|v1");
    let Next::Load(load) = first.next(&mut cache) else {
        panic!("expected a load")
    };
    drop(load);
    drop(first);
    let mut second = read_until_load(&mut cache, "cold|v1");
    assert!(
        matches!(second.next(&mut cache), Next::Load(_)),
        "the key is free: the second reader leads instead of waiting"
    );
}

#[test]
fn a_handle_dropped_unanswered_ends_the_read_with_an_error() {
    let mut cache: TieredCache<String> = TieredCache::new(memcached_only()).unwrap();
    let mut read = cache
        .read::<String>(vec!["k|v1".into()], ReadOptions::load(), 0, 1, None)
        .unwrap();
    let Next::Fetch(fetch) = read.next(&mut cache) else {
        panic!("expected a fetch")
    };
    drop(fetch);
    assert!(matches!(read.next(&mut cache), Next::Done));
    let error = read.finish(&mut cache, None).unwrap_err();
    assert!(matches!(error, ReadError::Unanswered { step: "fetch" }));
    assert_eq!(cache.tier_stats()[0].errors, 0, "not blamed on the tier");
}

#[test]
fn the_ffi_form_refuses_wrong_answers_and_keeps_waiting() {
    let mut cache: TieredCache<String> = TieredCache::new(memcached_only()).unwrap();
    let mut read = cache
        .read_raw::<String>(vec!["k|v1".into()], ReadOptions::load(), 0, 1, None)
        .unwrap();
    assert!(matches!(read.next(&mut cache), Step::Fetch { tier: 0, .. }));
    assert_eq!(
        read.loaded(&mut cache, vec![], 0),
        Err(AnswerError::WrongStep {
            expected: "fetch",
            answered: "load"
        })
    );
    assert_eq!(
        read.fetched(&mut cache, 1, vec![None]),
        Err(AnswerError::WrongTier {
            asked: 0,
            answered: 1
        })
    );
    assert_eq!(
        read.fetched(&mut cache, 0, vec![None, None]),
        Err(AnswerError::WrongCount {
            step: "fetch",
            expected: 1,
            got: 2
        })
    );
    read.fetched(&mut cache, 0, vec![None]).unwrap();
    assert_eq!(
        read.fetched(&mut cache, 0, vec![None]),
        Err(AnswerError::WrongStep {
            expected: "none",
            answered: "fetch"
        }),
        "a second answer"
    );
    assert!(matches!(read.next(&mut cache), Step::Load { .. }));
    read.loaded(&mut cache, vec![Err("boom".to_string())], 1)
        .unwrap();
    while read.next(&mut cache) != Step::Done {}
    let results = read.finish(&mut cache, None).unwrap();
    assert_eq!(results[0].error.as_deref(), Some("boom"));
}

#[test]
fn host_errors_keep_their_type() {
    #[derive(Debug, PartialEq)]
    struct MyError(u32);
    let mut cache: TieredCache<String> = TieredCache::new(memcached_only()).unwrap();
    let mut read = read_typed::<MyError>(&mut cache);
    let Next::Load(load) = read.next(&mut cache) else {
        panic!("expected a load")
    };
    load.answer(&mut cache, vec![Err(MyError(7))], 1);
    while !matches!(read.next(&mut cache), Next::Done) {}
    let results = read.finish(&mut cache, None).unwrap();
    assert_eq!(results[0].error, Some(MyError(7)));
}

fn read_typed<E>(cache: &mut TieredCache<String>) -> stratacache::tiered::Read<String, E> {
    let mut read = cache
        .read::<E>(vec!["k|v1".into()], ReadOptions::load(), 0, 1, None)
        .unwrap();
    let Next::Fetch(fetch) = read.next(cache) else {
        panic!("expected a fetch")
    };
    fetch.answer(cache, vec![Fetched::NotFound]);
    read
}

/// Two reads on one cache, finished by `finish` or by `finish_each`: a
/// load (one key loaded, one failed), then a read with a request-tier hit
/// (put there by the first read's finish) and a miss.
fn two_reads(each: bool) -> Vec<String> {
    use stratacache::RequestCache;
    let mut cache: TieredCache<String> = TieredCache::new(memcached_only()).unwrap();
    let mut request = RequestCache::new();
    let mut shown = Vec::new();
    for (keys, options) in [
        (["a|v1", "b|v1"], ReadOptions::load()),
        (["a|v1", "c|v1"], ReadOptions::get()),
    ] {
        let keys = keys.map(str::to_owned).to_vec();
        let mut read = cache
            .read_raw::<String>(keys, options, 0, 1, Some(&request))
            .unwrap();
        loop {
            match read.next(&mut cache) {
                Step::Done => break,
                Step::Fetch { tier, keys } => read
                    .fetched(&mut cache, tier, vec![None; keys.len()])
                    .unwrap(),
                Step::Load { keys } => {
                    assert_eq!(keys.len(), 2);
                    let loaded = vec![
                        Ok(Loaded::new("A".to_owned(), Codec::Raw, b"A".to_vec())),
                        Err("boom".to_owned()),
                    ];
                    read.loaded(&mut cache, loaded, 1).unwrap()
                }
                _ => {}
            }
        }
        let results = if each {
            let mut results = Vec::new();
            read.finish_each(&mut cache, Some(&mut request), |r| results.push(r))
                .unwrap();
            results
        } else {
            read.finish(&mut cache, Some(&mut request)).unwrap()
        };
        shown.extend(results.iter().map(|r| format!("{r:?}")));
    }
    shown.push(format!("{:?}", cache.read_stats()));
    shown
}

#[test]
fn finish_each_hands_out_what_finish_returns() {
    let shown = two_reads(true);
    assert_eq!(shown, two_reads(false));
    // The results this compares: a load, a failed load, a request-tier hit, a miss.
    assert!(
        shown[0].contains("Hit(\"A\")") && shown[0].contains("Loader"),
        "{shown:?}"
    );
    assert!(shown[1].contains("boom"), "{shown:?}");
    assert!(shown[2].contains("Request"), "{shown:?}");
    assert!(shown[3].contains("Miss"), "{shown:?}");
}
