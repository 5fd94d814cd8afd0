//! A read of 100 keys that all hit the local tier, through the whole tiered
//! read path (`read`, `next` → Done, `finish`). Target: under 5 µs in total.
//! Run: `cargo bench -p tiercache --bench tiered`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use tiercache::envelope::Codec;
use tiercache::tiered::{Loaded, ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
use tiercache::Expiry;

const NOW: u64 = 1_700_000_000_000;

/// Values are reference-counted, as Python objects and JS handles are.
type Value = Arc<String>;

fn warm_cache(keys: &[String]) -> TieredCache<Value> {
    let mut config = TieredConfig::new(vec![
        TierConfig::memcached("memcached"),
        TierConfig::storage("s3"),
    ]);
    config.default_ttl_ms = Some(3_600_000);
    let mut cache = TieredCache::new(config).unwrap();
    for key in keys {
        let value = Arc::new(format!("metadata of {key}"));
        let payload = value.as_bytes().to_vec();
        let _ = cache
            .set_all_tiers(
                key,
                Loaded::new(value, Codec::Raw, payload),
                Expiry::Default,
                NOW,
                1,
                None,
            )
            .unwrap();
    }
    cache
}

fn read_all_local(cache: &mut TieredCache<Value>, keys: Vec<String>) -> usize {
    let mut read = cache
        .read(keys, ReadOptions::load(), NOW + 1, 7, None)
        .unwrap();
    assert_eq!(read.next(cache), Step::Done, "every key is a local hit");
    read.finish(cache, None).unwrap().len()
}

fn main() {
    let keys: Vec<String> = (0..100)
        .map(|n| {
            format!("course_meta|v1|course-v1:edX+DemoX+Demo_Course+type@sequential+block@{n}")
        })
        .collect();
    let mut cache = warm_cache(&keys);

    let mut criterion = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    criterion.bench_function("tiered/read_100_local_hits", |b| {
        b.iter_batched(
            || keys.clone(),
            |keys| read_all_local(&mut cache, keys),
            BatchSize::SmallInput,
        )
    });
    criterion.final_summary();

    // The figure for the note, measured again here so it is printed plainly.
    let rounds = 20_000;
    let batches: Vec<Vec<String>> = (0..rounds).map(|_| keys.clone()).collect();
    let start = Instant::now();
    let mut answered = 0;
    for batch in batches {
        answered += read_all_local(&mut cache, batch);
    }
    let per_read = start.elapsed() / rounds as u32;
    assert_eq!(answered, 100 * rounds);
    let verdict = if per_read < Duration::from_micros(5) {
        "PASS"
    } else {
        "MISS"
    };
    println!("\ntiered read of 100 local hits: {per_read:?} per read (target < 5 µs): {verdict}");
}
