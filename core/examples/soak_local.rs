//! LocalCache soak (issue 7, "Soak and memory"), Rust host.
//!
//! Runs the op stream shared with tests/reliability/soak/soak_local.py and
//! soak_local.mjs (xorshift32, three draws per op) on a
//! `LocalCache<String, Vec<u8>>` with 50,000 entries and 32 MiB at most, and
//! prints one JSON object with the resident set size (VmRSS in
//! /proc/self/status) sampled every `--sample` ops:
//!
//! * 45% get a hot key (4,096 keys), set it on a miss (TTL 60 s)
//! * 35% set a fresh key never read again (TTL 1-10 s)
//! * 10% overwrite a hot key (TTL 60 s)
//! *  5% get a key that was never set
//! *  5% delete a hot key
//!
//! Each sample also has the live heap (bytes allocated and not freed, from a
//! counting global allocator), which tells a leak from allocator slack.
//!
//! Values are fresh buffers of 16 B - 16 KiB, weighed at their length. Time
//! is the `now` the core takes, moved by the op index (10 ops per ms).
//!
//! Usage: cargo run --release -p stratacache --example soak_local -- [--ops N] [--sample N] [--progress]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use stratacache::{Expiry, LocalCache, Lookup};

const HOT: usize = 4096;
const MAX_ENTRIES: usize = 50_000;
const MAX_BYTES: u64 = 32 << 20;
const HOT_TTL_MS: u64 = 60_000;
const OPS_PER_MS: u64 = 10;
const START_MS: u64 = 1_700_000_000_000;
const SEED: u32 = 2_463_534_242;

/// The system allocator, counting the bytes allocated and not yet freed, so
/// the report tells live heap (a leak grows it) from RSS (which also holds
/// memory the allocator keeps for reuse).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only a counter is
// updated on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc_zeroed(layout);
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = System.realloc(ptr, layout, new_size);
        if !new.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_heap() -> u64 {
    LIVE.load(Ordering::Relaxed) as u64
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS in /proc/self/status")
}

fn xorshift(x: &mut u32) -> u32 {
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    *x
}

fn arg(args: &[String], name: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.replace('_', "").parse().expect("a whole number"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ops = arg(&args, "--ops").unwrap_or(10_000_000);
    let sample = arg(&args, "--sample").unwrap_or((ops / 200).max(1));
    let progress = args.iter().any(|a| a == "--progress");

    let blob: Vec<u8> = (0..32usize << 10)
        .map(|i| ((i * 131 + 7) & 0xff) as u8)
        .collect();
    let hot_keys: Vec<String> = (0..HOT).map(|n| format!("hot:{n}")).collect();
    let mut cache: LocalCache<String, Vec<u8>> =
        LocalCache::new(MAX_ENTRIES, MAX_BYTES).expect("valid bounds");
    let baseline = rss_bytes();

    let mut x = SEED;
    let (mut hits, mut misses, mut digest) = (0u64, 0u64, 0u32);
    let mut samples: Vec<[u64; 4]> = vec![[0, rss_bytes(), 0, live_heap()]];
    let mut next_sample = sample;
    let report_every = (ops / 20).max(1);
    let t0 = Instant::now();
    for i in 0..ops {
        let now = START_MS + i / OPS_PER_MS;
        let r = xorshift(&mut x) % 100;
        let y = xorshift(&mut x);
        let z = xorshift(&mut x);
        let span = 16u32 << ((y >> 12) % 10);
        let length = (span + z % span) as usize;
        digest = digest
            .wrapping_mul(31)
            .wrapping_add(r * 65536 + length as u32);
        let hot = &hot_keys[(y & 4095) as usize];
        if r < 45 {
            if let Lookup::Hit(_) = cache.get(hot.as_str(), now) {
                hits += 1;
            } else {
                misses += 1;
                let weight = length as u64;
                let value = blob[..length].to_vec();
                cache.set(hot.clone(), value, weight, Expiry::AfterMs(HOT_TTL_MS), now);
            }
        } else if r < 80 {
            let ttl = u64::from(1 + (y >> 16) % 10) * 1000;
            let value = blob[..length].to_vec();
            cache.set(
                format!("fresh:{i}"),
                value,
                length as u64,
                Expiry::AfterMs(ttl),
                now,
            );
        } else if r < 90 {
            let value = blob[..length].to_vec();
            cache.set(
                hot.clone(),
                value,
                length as u64,
                Expiry::AfterMs(HOT_TTL_MS),
                now,
            );
        } else if r < 95 {
            assert!(
                !cache.get(format!("absent:{i}").as_str(), now).is_found(),
                "a key that was never set was found"
            );
            misses += 1;
        } else {
            cache.delete(hot.as_str());
        }
        if i + 1 == next_sample {
            samples.push([i + 1, rss_bytes(), cache.len() as u64, live_heap()]);
            next_sample += sample;
            if progress && (i + 1) % report_every < sample {
                let s = samples[samples.len() - 1];
                eprintln!(
                    "  [rust stratacache] {:>11} ops  rss {:7.1} MiB  entries {:>7}",
                    s[0],
                    s[1] as f64 / f64::from(1 << 20),
                    s[2]
                );
            }
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    if samples[samples.len() - 1][0] != ops {
        samples.push([ops, rss_bytes(), cache.len() as u64, live_heap()]);
    }
    let warm_at = ops / 5;
    let warm = *samples
        .iter()
        .find(|s| s[0] >= warm_at)
        .expect("a sample after warm-up");
    let after_max = samples
        .iter()
        .filter(|s| s[0] >= warm_at)
        .map(|s| s[1])
        .max()
        .unwrap_or(warm[1]);
    let last = samples[samples.len() - 1];
    let report = serde_json::json!({
        "host": "rust",
        "contender": "stratacache",
        "ops": ops,
        "seconds": seconds,
        "ops_per_s": ops as f64 / seconds,
        "max_entries": MAX_ENTRIES,
        "max_bytes": MAX_BYTES,
        "baseline_rss": baseline,
        "warm_ops": warm[0],
        "warm_rss": warm[1],
        "peak_rss": samples.iter().map(|s| s[1]).max(),
        "peak_rss_after_warm": after_max,
        "final_rss": last[1],
        "growth_after_warm": last[1] as i64 - warm[1] as i64,
        "peak_growth_after_warm": after_max as i64 - warm[1] as i64,
        "final_entries": last[2],
        "final_weight": cache.weight(),
        "final_live_heap": last[3],
        "peak_live_heap": samples.iter().map(|s| s[3]).max(),
        "warm_live_heap": warm[3],
        "hits": hits,
        "misses": misses,
        "digest": digest,
        "samples": samples,
    });
    println!("{report}");
}
