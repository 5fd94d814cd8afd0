//! Hit-ratio simulator: replays public cache traces through stratacache's
//! `LocalCache` (its default policy and exact LRU), `quick_cache` (S3-FIFO
//! like), `moka` (TinyLFU), the `lru` crate and Belady's optimum (for
//! entry-bounded traces), at 5%, 20% and 50% of each trace's distinct keys
//! (of its distinct bytes for the sized traces), and prints the hit ratios,
//! then the worst and mean gap of stratacache to the best of LRU,
//! quick_cache and moka. Then the same for seeded synthetic traces made
//! here (Zipf 0.6 to 1.0, a shifting hot set, three loops, scans in Zipf,
//! a recency-skewed trace like Corda's, Zipf with sizes): a second table,
//! not part of the targets, to catch a change that helps the public traces
//! and hurts other patterns.
//!
//! Each request is a `get`; a miss is followed by an insert, as a
//! read-through cache does.
//!
//! ```text
//! cargo run --release -p stratacache-hit-ratio -- /work/shared/traces [--csv out.csv] [--only name] [--peers earlier.csv] [--seed n]
//! ```
//!
//! `--seed` gives stratacache's hasher another seed than the default: its
//! sketch, ghosts and sampling follow the key hashes, so a policy change
//! should hold under a few seeds, not only the default one.
//!
//! `--peers` takes the peers' figures (LRU, quick_cache, moka, Belady) from
//! an earlier run's CSV instead of simulating them again (they do not
//! change when stratacache's policy does). The cache's hasher has a fixed
//! seed, so every run gives the same figures. With `--peers`, setting
//! `HIT_RATIO_DEBUG` also prints stratacache's counters after each run
//! (window size, admissions rejected).

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use stratacache::{Eviction, Expiry, LocalCache};

/// One request: a key and its size (1 for entry-bounded traces).
type Trace = Vec<(u64, u32)>;

struct TraceSpec {
    name: &'static str,
    /// Under the traces directory; empty for a synthetic trace.
    path: &'static str,
    sized: bool,
    read: fn(&Path) -> std::io::Result<Trace>,
}

impl TraceSpec {
    fn synthetic(&self) -> bool {
        self.path.is_empty()
    }
}

const TRACES: &[TraceSpec] = &[
    TraceSpec {
        name: "lirs loop",
        path: "lirs/loop.trace.gz",
        sized: false,
        read: read_lirs,
    },
    TraceSpec {
        name: "lirs 2_pools",
        path: "lirs/2_pools.trace.gz",
        sized: false,
        read: read_lirs,
    },
    TraceSpec {
        name: "lirs multi3",
        path: "lirs/multi3.trace.gz",
        sized: false,
        read: read_lirs,
    },
    TraceSpec {
        name: "lirs sprite",
        path: "lirs/sprite.trace.gz",
        sized: false,
        read: read_lirs,
    },
    TraceSpec {
        name: "lirs scan",
        path: "lirs/scan.trace.gz",
        sized: false,
        read: read_lirs,
    },
    TraceSpec {
        name: "cache2k web07",
        path: "cache2k/web07.trace.xz",
        sized: false,
        read: read_cache2k,
    },
    TraceSpec {
        name: "cache2k orm-busy",
        path: "cache2k/orm-busy.trace.xz",
        sized: false,
        read: read_cache2k,
    },
    TraceSpec {
        name: "corda vault",
        path: "corda/trace_vaultservice.gz",
        sized: false,
        read: read_corda,
    },
    TraceSpec {
        name: "adaptsize cdn (bytes)",
        path: "adapt_size/request.trace.xz",
        sized: true,
        read: read_adapt_size,
    },
    TraceSpec {
        name: "cloudPhysicsIO (bytes)",
        path: "libcachesim/cloudPhysicsIO.oracleGeneral.bin",
        sized: true,
        read: read_oracle_general,
    },
    // Synthetic traces, generated here with a fixed seed: a second table,
    // not part of the targets, to see whether a change that helps the
    // public traces hurts other common patterns.
    TraceSpec {
        name: "zipf 0.6",
        path: "",
        sized: false,
        read: |_| Ok(synth::zipf_trace(0.6)),
    },
    TraceSpec {
        name: "zipf 0.8",
        path: "",
        sized: false,
        read: |_| Ok(synth::zipf_trace(0.8)),
    },
    TraceSpec {
        name: "zipf 1.0",
        path: "",
        sized: false,
        read: |_| Ok(synth::zipf_trace(1.0)),
    },
    TraceSpec {
        name: "shifting hot set",
        path: "",
        sized: false,
        read: |_| Ok(synth::shifting()),
    },
    TraceSpec {
        name: "three loops",
        path: "",
        sized: false,
        read: |_| Ok(synth::loops()),
    },
    TraceSpec {
        name: "zipf + scans",
        path: "",
        sized: false,
        read: |_| Ok(synth::scans()),
    },
    TraceSpec {
        name: "recency-skewed",
        path: "",
        sized: false,
        read: |_| Ok(synth::recency()),
    },
    TraceSpec {
        name: "zipf 0.8 sized",
        path: "",
        sized: true,
        read: |_| Ok(synth::zipf_sized()),
    },
];

/// Seeded synthetic traces (no randomness from outside: every run gives
/// the same requests).
mod synth {
    use super::Trace;

    /// SplitMix64: a small, good-enough generator for traces.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Self {
            Rng(seed)
        }
        pub fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        /// Uniform in [0, 1).
        pub fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
        pub fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Ranks 0..n drawn with probability proportional to 1 / (rank+1)^s.
    pub struct Zipf(Vec<f64>);

    impl Zipf {
        pub fn new(n: usize, s: f64) -> Self {
            let mut cdf = Vec::with_capacity(n);
            let mut sum = 0.0;
            for r in 0..n {
                sum += 1.0 / ((r + 1) as f64).powf(s);
                cdf.push(sum);
            }
            for c in &mut cdf {
                *c /= sum;
            }
            Zipf(cdf)
        }
        pub fn sample(&self, rng: &mut Rng) -> u64 {
            let u = rng.unit();
            self.0.partition_point(|&c| c < u).min(self.0.len() - 1) as u64
        }
    }

    const REQUESTS: usize = 400_000;
    const KEYS: usize = 50_000;

    /// A key id for a rank, scattered (ids carry no order) and apart per
    /// `space` (distinct populations never share keys).
    fn key(space: u64, rank: u64) -> u64 {
        (space << 40 | rank).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    pub fn zipf_trace(s: f64) -> Trace {
        let mut rng = Rng::new(1 + (s * 100.0) as u64);
        let z = Zipf::new(KEYS, s);
        (0..REQUESTS)
            .map(|_| (key(0, z.sample(&mut rng)), 1))
            .collect()
    }

    /// Zipf 0.9 whose hot keys change: every 50,000 requests the ranks map
    /// to keys 5,000 further on (yesterday's hot keys go cold).
    pub fn shifting() -> Trace {
        let mut rng = Rng::new(2);
        let z = Zipf::new(KEYS, 0.9);
        (0..REQUESTS)
            .map(|i| {
                let shift = (i / 50_000) as u64 * 5_000;
                (key(1, z.sample(&mut rng) + shift), 1)
            })
            .collect()
    }

    /// Three loops interleaved (of 500, 3,000 and 12,000 keys): at each
    /// cache size some fit and some are longer than the cache.
    pub fn loops() -> Trace {
        let lens = [500u64, 3_000, 12_000];
        let mut pos = [0u64; 3];
        (0..REQUESTS)
            .map(|i| {
                let l = i % 3;
                pos[l] = (pos[l] + 1) % lens[l];
                (key(2 + l as u64, pos[l]), 1)
            })
            .collect()
    }

    /// Zipf 0.9 over 10,000 keys, and every 20,000 requests a scan of
    /// 5,000 keys read once and never again.
    pub fn scans() -> Trace {
        let mut rng = Rng::new(3);
        let z = Zipf::new(10_000, 0.9);
        let mut out = Vec::with_capacity(REQUESTS);
        let mut fresh = 0u64;
        while out.len() < REQUESTS {
            for _ in 0..20_000 {
                out.push((key(5, z.sample(&mut rng)), 1));
            }
            for _ in 0..5_000 {
                out.push((key(6, fresh), 1));
                fresh += 1;
            }
        }
        out.truncate(REQUESTS);
        out
    }

    /// Recency-skewed, like Corda's: half the requests are new keys, the
    /// other half re-read one of the last 64 new keys (read a few times
    /// close together, then never again).
    pub fn recency() -> Trace {
        let mut rng = Rng::new(4);
        let mut recent = [0u64; 64];
        let mut fresh = 0u64;
        (0..REQUESTS)
            .map(|_| {
                if fresh < 64 || rng.below(2) == 0 {
                    fresh += 1;
                    recent[(fresh % 64) as usize] = fresh;
                    (key(7, fresh), 1)
                } else {
                    (key(7, recent[rng.below(64) as usize]), 1)
                }
            })
            .collect()
    }

    /// Zipf 0.8 with sizes from 100 bytes to 100 KB (log-uniform, fixed
    /// per key, not correlated with popularity).
    pub fn zipf_sized() -> Trace {
        let mut rng = Rng::new(5);
        let z = Zipf::new(KEYS, 0.8);
        let sizes: Vec<u32> = (0..KEYS)
            .map(|_| (100.0 * 1000f64.powf(rng.unit())) as u32)
            .collect();
        (0..REQUESTS)
            .map(|_| {
                let r = z.sample(&mut rng);
                (key(8, r), sizes[r as usize])
            })
            .collect()
    }
}

fn open_gz(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(File::open(path)?).read_to_end(&mut out)?;
    Ok(out)
}

fn open_xz(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    lzma_rs::xz_decompress(&mut BufReader::new(File::open(path)?), &mut out)
        .map_err(|e| std::io::Error::other(format!("{}: {e:?}", path.display())))?;
    Ok(out)
}

fn read_lirs(path: &Path) -> std::io::Result<Trace> {
    let data = open_gz(path)?;
    Ok(data
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| line.trim().parse::<u64>().ok())
        .map(|k| (k, 1))
        .collect())
}

fn read_cache2k(path: &Path) -> std::io::Result<Trace> {
    let data = open_xz(path)?;
    Ok(data
        .chunks_exact(4)
        .map(|c| (i32::from_be_bytes(c.try_into().unwrap()) as u32 as u64, 1))
        .collect())
}

fn read_corda(path: &Path) -> std::io::Result<Trace> {
    let data = open_gz(path)?;
    Ok(data
        .chunks_exact(8)
        .map(|c| (i64::from_be_bytes(c.try_into().unwrap()) as u64, 1))
        .collect())
}

fn read_adapt_size(path: &Path) -> std::io::Result<Trace> {
    let data = open_xz(path)?;
    Ok(data
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let _time = f.next()?;
            let id = f.next()?.parse::<u64>().ok()?;
            let size = f.next()?.parse::<u64>().ok()?;
            Some((id, size.clamp(1, u32::MAX as u64) as u32))
        })
        .collect())
}

fn read_oracle_general(path: &Path) -> std::io::Result<Trace> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    Ok(data
        .chunks_exact(24)
        .map(|r| {
            let id = u64::from_le_bytes(r[4..12].try_into().unwrap());
            let size = u32::from_le_bytes(r[12..16].try_into().unwrap());
            (id, size.max(1))
        })
        .collect())
}

/// A cache under test: `access` is a get, followed by an insert on a miss;
/// true on a hit.
trait Sim {
    fn access(&mut self, key: u64, size: u32) -> bool;
}

/// A fixed seed: the policy's admission and sketch depend on key hashes,
/// and a random seed would move the figures between runs.
type Seeded = foldhash::fast::FixedState;
const SEED: u64 = 0x5712_a7ac_ac4e_5eed;

struct Ours(LocalCache<u64, (), Seeded>);

impl Sim for Ours {
    fn access(&mut self, key: u64, size: u32) -> bool {
        if self.0.get(&key, 0).is_found() {
            return true;
        }
        self.0.set(key, (), u64::from(size), Expiry::Never, 0);
        false
    }
}

/// The `lru` crate, with a byte bound kept by popping its oldest.
struct Lru {
    cache: lru::LruCache<u64, u32>,
    weight: u64,
    max_weight: u64,
}

impl Sim for Lru {
    fn access(&mut self, key: u64, size: u32) -> bool {
        if self.cache.get(&key).is_some() {
            return true;
        }
        if u64::from(size) > self.max_weight {
            return false;
        }
        if let Some((_, old)) = self.cache.push(key, size) {
            self.weight -= u64::from(old);
        }
        self.weight += u64::from(size);
        while self.weight > self.max_weight {
            let (_, old) = self.cache.pop_lru().expect("weight held by entries");
            self.weight -= u64::from(old);
        }
        false
    }
}

#[derive(Clone)]
struct SizeWeighter;

impl quick_cache::Weighter<u64, u32> for SizeWeighter {
    fn weight(&self, _key: &u64, size: &u32) -> u64 {
        u64::from(*size)
    }
}

struct Quick(quick_cache::unsync::Cache<u64, u32, SizeWeighter>);

impl Sim for Quick {
    fn access(&mut self, key: u64, size: u32) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.insert(key, size);
        false
    }
}

struct Moka(moka::sync::Cache<u64, u32>);

impl Sim for Moka {
    fn access(&mut self, key: u64, size: u32) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.insert(key, size);
        // So its bound holds at every step, as the others' do.
        self.0.run_pending_tasks();
        false
    }
}

fn run(sim: &mut dyn Sim, trace: &Trace) -> f64 {
    let hits = trace.iter().filter(|&&(k, s)| sim.access(k, s)).count();
    100.0 * hits as f64 / trace.len() as f64
}

/// Belady's optimum for an entry-bounded cache (evict the entry used
/// furthest in the future; bypass a key used later than all of them).
fn belady(trace: &Trace, capacity: usize) -> f64 {
    let mut next = vec![usize::MAX; trace.len()];
    let mut last: HashMap<u64, usize> = HashMap::new();
    for (i, &(k, _)) in trace.iter().enumerate().rev() {
        next[i] = last.insert(k, i).unwrap_or(usize::MAX);
    }
    let mut held: HashMap<u64, usize> = HashMap::new();
    let mut by_next: BTreeSet<(usize, u64)> = BTreeSet::new();
    let mut hits = 0usize;
    for (i, &(k, _)) in trace.iter().enumerate() {
        if let Some(n) = held.get_mut(&k) {
            hits += 1;
            by_next.remove(&(*n, k));
            *n = next[i];
            by_next.insert((next[i], k));
            continue;
        }
        if held.len() >= capacity {
            let &(furthest, victim) = by_next.last().expect("full");
            if furthest <= next[i] {
                continue;
            }
            by_next.remove(&(furthest, victim));
            held.remove(&victim);
        }
        held.insert(k, next[i]);
        by_next.insert((next[i], k));
    }
    100.0 * hits as f64 / trace.len() as f64
}

#[derive(Clone)]
struct Row {
    trace: &'static str,
    size_pct: u32,
    capacity: u64,
    lru: f64,
    ours: f64,
    quick: f64,
    moka: f64,
    belady: Option<f64>,
}

/// Peers' rows of an earlier run's CSV, by trace and size.
fn read_peers(path: &Path) -> std::io::Result<HashMap<(String, u32), Row>> {
    let text = std::fs::read_to_string(path)?;
    let mut out = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let Some(spec) = TRACES.iter().find(|t| t.name == f[0]) else {
            continue;
        };
        let num = |i: usize| f[i].parse::<f64>().unwrap_or(0.0);
        let row = Row {
            trace: spec.name,
            size_pct: f[1].parse().unwrap_or(0),
            capacity: f[2].parse().unwrap_or(0),
            lru: num(3),
            ours: num(4),
            quick: num(5),
            moka: num(6),
            belady: f.get(7).and_then(|b| b.parse().ok()),
        };
        out.insert((f[0].to_string(), row.size_pct), row);
    }
    Ok(out)
}

fn print_row(row: &Row) {
    println!(
        "{:>4}% {:>12} {:>8.2} {:>12.2} {:>12.2} {:>8.2} {:>8} {:>+8.2}",
        row.size_pct,
        row.capacity,
        row.lru,
        row.ours,
        row.quick,
        row.moka,
        row.belady.map_or("-".to_string(), |b| format!("{b:.2}")),
        row.ours - row.best_peer()
    );
}

impl Row {
    fn best_peer(&self) -> f64 {
        self.lru.max(self.quick).max(self.moka)
    }
}

/// Prints the worst and mean gap of stratacache to the best peer.
fn summarize(label: &str, rows: &[Row]) {
    if rows.is_empty() {
        return;
    }
    let gaps: Vec<f64> = rows.iter().map(|r| r.ours - r.best_peer()).collect();
    let (worst_i, worst) = gaps
        .iter()
        .copied()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let at_or_above = gaps.iter().filter(|&&g| g >= 0.0).count();
    println!(
        "\nsummary, {label}, over {} trace x size points: stratacache minus the best of \
         LRU/quick_cache/moka: worst {:+.2} ({} at {}%), mean {:+.2}; at or above the best on {}, \
         within 1 point on {}",
        gaps.len(),
        worst,
        rows[worst_i].trace,
        rows[worst_i].size_pct,
        mean,
        at_or_above,
        gaps.iter().filter(|&&g| g >= -1.0).count(),
    );
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut dir = PathBuf::from("../shared/traces");
    let mut csv: Option<PathBuf> = None;
    let mut only: Option<String> = None;
    let mut peers: HashMap<(String, u32), Row> = HashMap::new();
    let mut seed = SEED;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--csv" => csv = args.next().map(PathBuf::from),
            "--only" => only = args.next(),
            "--peers" => peers = read_peers(&PathBuf::from(args.next().unwrap_or_default()))?,
            "--seed" => {
                let given = args.next().unwrap_or_default();
                seed = given.parse().map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("--seed takes an unsigned integer, not {given:?}"),
                    )
                })?;
            }
            _ => dir = PathBuf::from(arg),
        }
    }
    let mut rows = Vec::new();
    let mut printed_synthetic_title = false;
    println!("=== Public traces (in {}) ===", dir.display());
    for spec in TRACES {
        if only.as_deref().is_some_and(|o| !spec.name.contains(o)) {
            continue;
        }
        if spec.synthetic() && !printed_synthetic_title {
            printed_synthetic_title = true;
            println!(
                "\n=== Synthetic traces (seeded, generated here; not part of the targets) ==="
            );
        }
        let path = dir.join(spec.path);
        let trace = match (spec.read)(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("skipping {}: {e}", path.display());
                continue;
            }
        };
        let mut sizes: HashMap<u64, u32> = HashMap::new();
        for &(k, s) in &trace {
            sizes.entry(k).or_insert(s);
        }
        let distinct = sizes.len();
        let total: u64 = if spec.sized {
            sizes.values().map(|&s| u64::from(s)).sum()
        } else {
            distinct as u64
        };
        println!(
            "\n{} ({} requests, {} distinct keys{})",
            spec.name,
            trace.len(),
            distinct,
            if spec.sized {
                format!(", {total} distinct bytes")
            } else {
                String::new()
            }
        );
        println!(
            "{:>5} {:>12} {:>8} {:>12} {:>12} {:>8} {:>8} {:>8}",
            "size", "capacity", "LRU", "stratacache", "quick_cache", "moka", "Belady", "gap"
        );
        for pct in [5u32, 20, 50] {
            let capacity = (total * u64::from(pct) / 100).max(1);
            // Entry-bounded: the count bound; sized: the byte bound (the
            // count bound then never binds).
            let (max_entries, max_weight) = if spec.sized {
                (distinct + 1, capacity)
            } else {
                (capacity as usize, u64::MAX)
            };
            let mut ours = Ours(
                LocalCache::with_hasher(max_entries, max_weight, Seeded::with_seed(seed))
                    .expect("bounds"),
            );
            if let Some(peers) = peers.get(&(spec.name.to_string(), pct)) {
                let row = Row {
                    trace: spec.name,
                    size_pct: pct,
                    capacity,
                    ours: run(&mut ours, &trace),
                    ..peers.clone()
                };
                if std::env::var_os("HIT_RATIO_DEBUG").is_some() {
                    eprintln!("{:?}", ours.0.stats());
                }
                print_row(&row);
                rows.push(row);
                continue;
            }
            let mut lru = Lru {
                cache: lru::LruCache::unbounded(),
                weight: 0,
                max_weight: if spec.sized { capacity } else { u64::MAX },
            };
            if !spec.sized {
                lru.cache = lru::LruCache::new(std::num::NonZeroUsize::new(max_entries).unwrap());
            }
            let mut quick = Quick(quick_cache::unsync::Cache::with_weighter(
                max_entries.min(distinct),
                capacity,
                SizeWeighter,
            ));
            let mut moka = Moka(
                moka::sync::Cache::builder()
                    .max_capacity(capacity)
                    .weigher(|_k: &u64, v: &u32| *v)
                    .build(),
            );
            let lru_crate = run(&mut lru, &trace);
            let row = Row {
                trace: spec.name,
                size_pct: pct,
                capacity,
                lru: lru_crate,
                ours: run(&mut ours, &trace),
                quick: run(&mut quick, &trace),
                moka: run(&mut moka, &trace),
                belady: (!spec.sized).then(|| belady(&trace, max_entries)),
            };
            // Exact LRU in stratacache must agree with the `lru` crate.
            if !spec.sized {
                let mut exact = Ours(
                    LocalCache::with_hasher(max_entries, max_weight, Seeded::with_seed(seed))
                        .expect("bounds")
                        .with_eviction(Eviction::Lru),
                );
                let exact = run(&mut exact, &trace);
                assert!(
                    (exact - lru_crate).abs() < 1e-9,
                    "stratacache LRU {exact} vs lru crate {lru_crate}"
                );
            }
            print_row(&row);
            rows.push(row);
        }
    }
    if rows.is_empty() {
        eprintln!("no trace found under {}", dir.display());
        std::process::exit(1);
    }
    let (synthetic, public): (Vec<Row>, Vec<Row>) = rows
        .iter()
        .cloned()
        .partition(|r| TRACES.iter().any(|t| t.name == r.trace && t.synthetic()));
    summarize("public traces (the targets)", &public);
    summarize("synthetic traces (not targets)", &synthetic);
    if let Some(csv) = csv {
        let mut f = File::create(&csv)?;
        writeln!(
            f,
            "trace,size_pct,capacity,lru,stratacache,quick_cache,moka,belady"
        )?;
        for r in &rows {
            writeln!(
                f,
                "{},{},{},{:.4},{:.4},{:.4},{:.4},{}",
                r.trace,
                r.size_pct,
                r.capacity,
                r.lru,
                r.ours,
                r.quick,
                r.moka,
                r.belady.map_or(String::new(), |b| format!("{b:.4}"))
            )?;
        }
        eprintln!("wrote {}", csv.display());
    }
    Ok(())
}
