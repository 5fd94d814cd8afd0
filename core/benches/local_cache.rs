//! `LocalCache` against `lru::LruCache` (raw LRU, no TTL),
//! `quick_cache::unsync::Cache` (which has no TTL) and `moka::sync::Cache`
//! (with `time_to_live`).
//!
//! Run with `cargo bench -p stratacache --bench local_cache`. Two operations:
//!
//! - **get hit**: every cache holds all 10,000 keys; keys are looked up by
//!   `&str` in a shuffled order. Ours has a TTL and gets a constant `now`
//!   (no clock read); moka reads its own clock on every call, which is
//!   inherent to it.
//! - **set with eviction**: every cache is full (5,000 entries) and each set
//!   stores a key it does not hold (a shuffled cycle over 10,000 keys), so
//!   ours and lru evict on every set. Values weigh 16..=240 (their length); ours is bounded
//!   by count and by weight (5,000 × the mean weight, so both bounds bite),
//!   lru by count only, quick_cache and moka by weight. The owned key and
//!   value are built outside the timed loop for every contender. Ours gets
//!   `now` from a counter (+1 ms per set), so its timer wheel moves.
//!
//! Criterion measures each contender on its own (batches of 1,000 ops). The
//! machine this runs on may be busy, so afterwards the contenders are also
//! timed interleaved: in each round all four take turns, in a random order,
//! and the ratios are the medians of the per-round ratios. Both are printed,
//! from this run, with PASS/MISS against the targets (get: at most 1.3× lru
//! and at least 2× faster than moka; set: at most 1.5× lru).

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{BatchSize, Criterion, Throughput};
use stratacache::{Expiry, LocalCache, Lookup};

const KEYS: usize = 10_000;
/// Entries a full cache holds in the set benchmark.
const SET_CAPACITY: usize = 5_000;
/// Operations per criterion iteration.
const BATCH: usize = 1_000;
const TTL_MS: u64 = 10 * 60 * 1_000;
/// A plausible wall-clock time in ms; `now` counts up from here, one per op.
const START_MS: u64 = 1_700_000_000_000;
/// Rounds of the interleaved measurement; each times, per contender, one
/// pass of `KEYS` gets and `SETS_TIMED` sets.
const ROUNDS: usize = 41;
/// Untimed passes over every key before a timed pass of gets: after another
/// contender's turn (moka's above all), one pass is not enough to bring a
/// cache's times back to those of criterion's long runs.
const WARM_UP_PASSES: usize = 4;
/// Sets timed per round, after `KEYS` untimed ones.
const SETS_TIMED: usize = KEYS / 2;

const GET_GROUP: &str = "local_cache_get_hit";
const SET_GROUP: &str = "local_cache_set_evict";
const CONTENDERS: [&str; 4] = ["stratacache", "lru", "quick_cache", "moka"];

type Value = Arc<str>;

/// Keys, values and access orders shared by every contender.
struct Data {
    keys: Vec<String>,
    values: Vec<Value>,
    /// A shuffled permutation of `0..KEYS`.
    order: Vec<usize>,
    /// 5,000 × the mean value weight.
    max_weight: u64,
}

impl Data {
    fn new() -> Self {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let keys: Vec<String> = (0..KEYS)
            .map(|n| format!("course-v1:edX+DemoX+Demo_Course+type@sequential+block@{n}"))
            .collect();
        let values: Vec<Value> = (0..KEYS)
            .map(|n| {
                let len = 16 + (rng.next() % 225) as usize;
                let fill = char::from(b'a' + (n % 26) as u8);
                Arc::from(fill.to_string().repeat(len))
            })
            .collect();
        let mut order: Vec<usize> = (0..KEYS).collect();
        for i in (1..KEYS).rev() {
            order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        let total: u64 = values.iter().map(|v| v.len() as u64).sum();
        Data {
            max_weight: total * SET_CAPACITY as u64 / KEYS as u64,
            keys,
            values,
            order,
        }
    }

    /// The owned inputs of `n` sets, continuing the shuffled cycle at `*pos`.
    fn set_inputs(&self, pos: &mut usize, n: usize) -> Vec<(String, Value)> {
        (0..n)
            .map(|_| {
                let i = self.order[*pos % KEYS];
                *pos += 1;
                (self.keys[i].clone(), self.values[i].clone())
            })
            .collect()
    }
}

/// xorshift64: a small deterministic generator for the shuffle.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The two operations, for each contender; `now` is ignored by those that
/// keep their own clock or have no TTL.
trait Contender {
    fn get(&mut self, key: &str, now: u64) -> bool;
    fn set(&mut self, key: String, value: Value, now: u64);
}

struct Ours(LocalCache<String, Value>);
struct Lru(lru::LruCache<String, Value>);
struct Quick(quick_cache::unsync::Cache<String, Value, ByLen>);
struct Moka(moka::sync::Cache<String, Value>);

#[derive(Clone)]
struct ByLen;

impl quick_cache::Weighter<String, Value> for ByLen {
    fn weight(&self, _key: &String, value: &Value) -> u64 {
        value.len() as u64
    }
}

impl Contender for Ours {
    #[inline]
    fn get(&mut self, key: &str, now: u64) -> bool {
        matches!(black_box(self.0.get(key, now)), Lookup::Hit(_))
    }
    #[inline]
    fn set(&mut self, key: String, value: Value, now: u64) {
        let weight = value.len() as u64;
        black_box(self.0.set(key, value, weight, Expiry::Default, now));
    }
}

impl Contender for Lru {
    #[inline]
    fn get(&mut self, key: &str, _now: u64) -> bool {
        black_box(self.0.get(key)).is_some()
    }
    #[inline]
    fn set(&mut self, key: String, value: Value, _now: u64) {
        black_box(self.0.put(key, value));
    }
}

impl Contender for Quick {
    #[inline]
    fn get(&mut self, key: &str, _now: u64) -> bool {
        black_box(self.0.get(key)).is_some()
    }
    #[inline]
    fn set(&mut self, key: String, value: Value, _now: u64) {
        self.0.insert(key, value);
    }
}

impl Contender for Moka {
    #[inline]
    fn get(&mut self, key: &str, _now: u64) -> bool {
        black_box(self.0.get(key)).is_some()
    }
    #[inline]
    fn set(&mut self, key: String, value: Value, _now: u64) {
        self.0.insert(key, value);
    }
}

/// The four contenders for one benchmark, in the order of `CONTENDERS`.
struct Field {
    ours: Ours,
    lru: Lru,
    quick: Quick,
    moka: Moka,
}

impl Field {
    /// Caches holding every key, for the get benchmark.
    fn for_get(data: &Data) -> Self {
        let total: u64 = data.values.iter().map(|v| v.len() as u64).sum();
        let mut field = Field {
            ours: Ours(
                LocalCache::new(KEYS, total)
                    .and_then(|c| c.with_default_ttl(Some(TTL_MS)))
                    .expect("valid bounds"),
            ),
            lru: Lru(lru::LruCache::new(NonZeroUsize::new(KEYS).unwrap())),
            // Headroom so its admission policy keeps every key.
            quick: Quick(quick_cache::unsync::Cache::with_weighter(
                2 * KEYS,
                2 * total,
                ByLen,
            )),
            moka: Moka(
                moka::sync::Cache::builder()
                    .max_capacity(2 * KEYS as u64)
                    .time_to_live(Duration::from_millis(TTL_MS))
                    .build(),
            ),
        };
        for (key, value) in data.keys.iter().zip(&data.values) {
            field.ours.set(key.clone(), value.clone(), START_MS);
            field.lru.set(key.clone(), value.clone(), START_MS);
            field.quick.set(key.clone(), value.clone(), START_MS);
            field.moka.set(key.clone(), value.clone(), START_MS);
        }
        field.moka.0.run_pending_tasks();
        for key in &data.keys {
            assert!(field.ours.get(key, START_MS), "stratacache lost {key}");
            assert!(field.lru.get(key, START_MS), "lru lost {key}");
            assert!(field.quick.get(key, START_MS), "quick_cache lost {key}");
            assert!(field.moka.get(key, START_MS), "moka lost {key}");
        }
        field
    }

    /// Full caches, for the set-with-eviction benchmark. `pos` is where the
    /// shuffled cycle of sets continues.
    fn for_set(data: &Data, pos: &mut usize) -> Self {
        let mut field = Field {
            ours: Ours(
                LocalCache::new(SET_CAPACITY, data.max_weight)
                    .and_then(|c| c.with_default_ttl(Some(TTL_MS)))
                    .expect("valid bounds"),
            ),
            lru: Lru(lru::LruCache::new(NonZeroUsize::new(SET_CAPACITY).unwrap())),
            quick: Quick(quick_cache::unsync::Cache::with_weighter(
                SET_CAPACITY,
                data.max_weight,
                ByLen,
            )),
            moka: Moka(
                moka::sync::Cache::builder()
                    .max_capacity(data.max_weight)
                    .weigher(|_key: &String, value: &Value| value.len() as u32)
                    .time_to_live(Duration::from_millis(TTL_MS))
                    .build(),
            ),
        };
        // One full cycle: every cache is full and holds the most recent half.
        for (key, value) in data.set_inputs(pos, KEYS) {
            field.ours.set(key.clone(), value.clone(), START_MS);
            field.lru.set(key.clone(), value.clone(), START_MS);
            field.quick.set(key.clone(), value.clone(), START_MS);
            field.moka.set(key, value, START_MS);
        }
        field.moka.0.run_pending_tasks();
        field
    }
}

fn bench_get(c: &mut Criterion, data: &Data) {
    let mut field = Field::for_get(data);
    let mut group = c.benchmark_group(GET_GROUP);
    group.throughput(Throughput::Elements(BATCH as u64));
    fn run<C: Contender>(
        group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        id: &str,
        cache: &mut C,
        data: &Data,
    ) {
        let mut pos = 0;
        group.bench_function(id, |b| {
            b.iter(|| {
                let mut hits = 0;
                for _ in 0..BATCH {
                    hits += cache.get(&data.keys[data.order[pos]], START_MS) as usize;
                    pos = (pos + 1) % KEYS;
                }
                hits
            })
        });
    }
    run(&mut group, CONTENDERS[0], &mut field.ours, data);
    run(&mut group, CONTENDERS[1], &mut field.lru, data);
    run(&mut group, CONTENDERS[2], &mut field.quick, data);
    run(&mut group, CONTENDERS[3], &mut field.moka, data);
    group.finish();
}

fn bench_set(c: &mut Criterion, data: &Data) {
    let mut pos = 0;
    let mut field = Field::for_set(data, &mut pos);
    let mut group = c.benchmark_group(SET_GROUP);
    group.throughput(Throughput::Elements(BATCH as u64));
    fn run<C: Contender>(
        group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        id: &str,
        cache: &mut C,
        data: &Data,
        start: usize,
    ) {
        let mut pos = start;
        let mut now = START_MS;
        group.bench_function(id, |b| {
            b.iter_batched(
                || data.set_inputs(&mut pos, BATCH),
                |inputs| {
                    for (key, value) in inputs {
                        now += 1;
                        cache.set(key, value, now);
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    run(&mut group, CONTENDERS[0], &mut field.ours, data, pos);
    run(&mut group, CONTENDERS[1], &mut field.lru, data, pos);
    run(&mut group, CONTENDERS[2], &mut field.quick, data, pos);
    run(&mut group, CONTENDERS[3], &mut field.moka, data, pos);
    group.finish();
}

/// Times one pass of gets over every key (in the shuffled order), after
/// untimed passes that bring the cache back into the CPU caches (as in
/// criterion's runs); ns/op.
fn time_gets<C: Contender>(cache: &mut C, data: &Data) -> f64 {
    for _ in 0..WARM_UP_PASSES {
        for &i in &data.order {
            black_box(cache.get(&data.keys[i], START_MS));
        }
    }
    let start = Instant::now();
    let mut hits = 0;
    for &i in &data.order {
        hits += cache.get(&data.keys[i], START_MS) as usize;
    }
    let elapsed = start.elapsed();
    assert_eq!(hits, KEYS, "a get missed");
    elapsed.as_nanos() as f64 / KEYS as f64
}

/// Times the last `SETS_TIMED` of the given sets, after the others have run
/// untimed to bring the cache back into the CPU caches; ns/op.
fn time_sets<C: Contender>(cache: &mut C, mut inputs: Vec<(String, Value)>, now: &mut u64) -> f64 {
    let timed = inputs.split_off(inputs.len() - SETS_TIMED);
    for (key, value) in inputs {
        *now += 1;
        cache.set(key, value, *now);
    }
    let n = timed.len();
    let start = Instant::now();
    for (key, value) in timed {
        *now += 1;
        cache.set(key, value, *now);
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// Per contender (order of `CONTENDERS`), ns/op of each interleaved round.
type Rounds = [Vec<f64>; 4];

/// The interleaved measurement.
struct Interleaved {
    gets: Rounds,
    sets: Rounds,
    bounds: Bounds,
}

/// Which bound made our cache evict, over one untimed cycle of sets.
#[derive(Default)]
struct Bounds {
    /// Evictions by sets that found the cache at its entry bound.
    at_entry_bound: u64,
    /// Evictions by sets that found it below (only the weight bound bit).
    by_weight_only: u64,
    min_entries: usize,
    max_weight: u64,
}

impl Bounds {
    fn measure(
        cache: &mut LocalCache<String, Value>,
        data: &Data,
        pos: &mut usize,
        now: &mut u64,
    ) -> Self {
        let mut bounds = Bounds {
            min_entries: usize::MAX,
            ..Bounds::default()
        };
        for (key, value) in data.set_inputs(pos, KEYS) {
            let (full, evictions) = (cache.len() == SET_CAPACITY, cache.stats().evictions);
            *now += 1;
            let weight = value.len() as u64;
            cache.set(key, value, weight, Expiry::Default, *now);
            let evicted = cache.stats().evictions - evictions;
            if full {
                bounds.at_entry_bound += evicted;
            } else {
                bounds.by_weight_only += evicted;
            }
            bounds.min_entries = bounds.min_entries.min(cache.len());
            bounds.max_weight = bounds.max_weight.max(cache.weight());
        }
        bounds
    }
}

/// Gets and sets timed round by round, the contenders taking turns (in a
/// random order), so that load from other processes hits all of them alike.
fn interleaved(data: &Data) -> Interleaved {
    let mut get = Field::for_get(data);
    let mut gets: Rounds = Default::default();
    let mut pos = 0;
    let mut set = Field::for_set(data, &mut pos);
    let mut sets: Rounds = Default::default();
    let mut nows = [START_MS; 4];
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    for _ in 0..ROUNDS {
        // A fresh random order each round: what a contender leaves behind
        // (CPU caches, allocator state) falls on each of the others alike.
        let mut turns = [0, 1, 2, 3];
        for i in (1..4).rev() {
            turns.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        for who in turns {
            gets[who].push(match who {
                0 => time_gets(&mut get.ours, data),
                1 => time_gets(&mut get.lru, data),
                2 => time_gets(&mut get.quick, data),
                _ => time_gets(&mut get.moka, data),
            });
        }
        let start = pos;
        for who in turns {
            // Every contender gets the same keys, built before the clock starts.
            pos = start;
            let inputs = data.set_inputs(&mut pos, KEYS + SETS_TIMED);
            let now = &mut nows[who];
            sets[who].push(match who {
                0 => time_sets(&mut set.ours, inputs, now),
                1 => time_sets(&mut set.lru, inputs, now),
                2 => time_sets(&mut set.quick, inputs, now),
                _ => time_sets(&mut set.moka, inputs, now),
            });
        }
    }
    let bounds = Bounds::measure(&mut set.ours.0, data, &mut pos, &mut nows[0]);
    Interleaved { gets, sets, bounds }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Median of the per-round ratios `a / b`.
fn median_ratio(a: &[f64], b: &[f64]) -> f64 {
    median(a.iter().zip(b).map(|(a, b)| a / b).collect())
}

/// Where criterion writes its results (the same search criterion does).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("criterion");
    }
    let from_cargo = std::env::var_os("CARGO").and_then(|cargo| {
        let out = std::process::Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .output()
            .ok()?;
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(PathBuf::from(meta["target_directory"].as_str()?))
    });
    from_cargo
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("criterion")
}

fn estimates_path(dir: &Path, group: &str, id: &str) -> PathBuf {
    dir.join(group).join(id).join("new").join("estimates.json")
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

/// When each contender's estimates were last written, before this run
/// (`[operation][contender]`).
type Stamps = [[Option<SystemTime>; 4]; 2];

fn stamps(dir: &Path) -> Stamps {
    [GET_GROUP, SET_GROUP]
        .map(|group| CONTENDERS.map(|id| modified(&estimates_path(dir, group, id))))
}

/// Criterion's median for `group/id` in ns/op, if this run wrote it (the
/// file is new or has changed since `before`).
fn criterion_ns_per_op(
    dir: &Path,
    group: &str,
    id: &str,
    before: Option<SystemTime>,
) -> Option<f64> {
    let path = estimates_path(dir, group, id);
    if Some(modified(&path)?) == before {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    Some(json["median"]["point_estimate"].as_f64()? / BATCH as f64)
}

fn fmt_opt(x: Option<f64>, width: usize, precision: usize) -> String {
    match x {
        Some(x) => format!("{x:>width$.precision$}"),
        None => format!("{:>width$}", "n/a"),
    }
}

fn verdict(ratio: Option<f64>, pass: impl Fn(f64) -> bool) -> String {
    match ratio {
        Some(r) => format!("{r:>6.2} {}", if pass(r) { "PASS" } else { "MISS" }),
        None => format!("{:>6} {}", "n/a", "    "),
    }
}

fn report(dir: &Path, before: &Stamps, run: &Interleaved, max_weight: u64) {
    let Interleaved { gets, sets, bounds } = run;
    println!();
    println!("local_cache, ns per op (all from this run):");
    println!(
        "  criterion:   median over samples of {BATCH}-op batches, one contender after another"
    );
    println!(
        "  interleaved: median over {ROUNDS} rounds in which the four take turns in random order;"
    );
    println!("               its ratios are medians of per-round ratios, which load from other");
    println!("               processes hits alike, so trust this column on a busy machine");
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!("  load average now: {}", load.join(" "));
    }
    println!();
    println!(
        "{:<10} {:<12} {:>11} {:>8}   {:>11} {:>8}",
        "operation", "contender", "criterion", "vs lru", "interleaved", "vs lru"
    );
    let mut crit = [[None; 4]; 2];
    for (op, (group, rounds)) in [(GET_GROUP, gets), (SET_GROUP, sets)]
        .into_iter()
        .enumerate()
    {
        for (who, name) in CONTENDERS.iter().enumerate() {
            crit[op][who] = criterion_ns_per_op(dir, group, name, before[op][who]);
        }
        for (who, name) in CONTENDERS.iter().enumerate() {
            let c = crit[op][who];
            let c_ratio = c.zip(crit[op][1]).map(|(a, b)| a / b);
            println!(
                "{:<10} {:<12} {} {}   {} {:>8.2}",
                if who == 0 {
                    ["get hit", "set evict"][op]
                } else {
                    ""
                },
                name,
                fmt_opt(c, 11, 1),
                fmt_opt(c_ratio, 8, 2),
                fmt_opt(Some(median(rounds[who].clone())), 11, 1),
                median_ratio(&rounds[who], &rounds[1]),
            );
        }
    }
    let ratio = |op: usize, a: usize, b: usize| crit[op][a].zip(crit[op][b]).map(|(a, b)| a / b);
    println!();
    println!("{:<34} {:>11} {:>16}", "target", "criterion", "interleaved");
    println!(
        "{:<34} {:>11} {:>16}",
        "get hit: stratacache / lru <= 1.3",
        verdict(ratio(0, 0, 1), |r| r <= 1.3),
        verdict(Some(median_ratio(&gets[0], &gets[1])), |r| r <= 1.3)
    );
    println!(
        "{:<34} {:>11} {:>16}",
        "get hit: moka / stratacache >= 2",
        verdict(ratio(0, 3, 0), |r| r >= 2.0),
        verdict(Some(median_ratio(&gets[3], &gets[0])), |r| r >= 2.0)
    );
    println!(
        "{:<34} {:>11} {:>16}",
        "set evict: stratacache / lru <= 1.5",
        verdict(ratio(1, 0, 1), |r| r <= 1.5),
        verdict(Some(median_ratio(&sets[0], &sets[1])), |r| r <= 1.5)
    );
    println!();
    println!(
        "both bounds bite: over one more cycle of {KEYS} sets, stratacache evicted {} entries at \
         its entry bound ({SET_CAPACITY}) and {} below it, for the weight bound ({max_weight}); \
         it held {}..={SET_CAPACITY} entries, at most {} weight",
        bounds.at_entry_bound, bounds.by_weight_only, bounds.min_entries, bounds.max_weight
    );
}

/// True when criterion will measure (`cargo bench`), not just run each
/// benchmark once (`cargo test --benches`) or list them.
fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    has("--bench")
        && !has("--test")
        && !has("--list")
        && !args.iter().any(|a| a.starts_with("--profile-time"))
}

fn main() {
    let measuring = measuring();
    let dir = criterion_dir();
    let before = stamps(&dir);
    let data = Data::new();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(40)
        .configure_from_args();
    bench_get(&mut c, &data);
    bench_set(&mut c, &data);
    c.final_summary();
    if measuring {
        let run = interleaved(&data);
        report(&dir, &before, &run, data.max_weight);
    }
}
