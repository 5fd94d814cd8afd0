//! A Rust service using the `stratacache` crate directly: versioned keys, a
//! request cache, a bounded local cache with expiry, and the tiered
//! read-through driven by a small host over a real memcached (through the
//! `stratacache-net` client) and an in-memory stand-in for S3. Run it with
//! `bash scripts/servers.sh start memcached && eval "$(bash scripts/servers.sh env)"`
//! then `cargo run -p rust_service` (memcached servers from
//! `STRATACACHE_MEMCACHED`, default `127.0.0.1:11211`).
//!
//! Writes off the request path: `write_behind::Writer` is a bounded queue and
//! a spawned tokio task behind the reference driver (the host answers
//! `writes_behind() == true` and forwards `write_behind` to it); a cold read
//! returns once loaded, its value sealed and written by the task, counted,
//! and drained by `Writer::close` at shutdown (part 6 below).

mod metrics_export;
mod write_behind;

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use stratacache::envelope::Codec;
use stratacache::key::{KeyBuilder, Part};
use stratacache::tiered::{driver, DecodeItem, Fetched, HostValue, Loaded, StoreItem};
use stratacache::{
    Expiry, Keyring, LocalCache, Lookup, Namespace, ReadOptions, RequestCache, Source, TierConfig,
    TieredCache, TieredConfig,
};
use stratacache_net::memcached;

/// A stand-in for the slow modulestore read each cache spares.
struct Modulestore {
    reads: Cell<u32>,
}

impl Modulestore {
    fn course_title(&self, course_id: &str) -> Option<String> {
        self.reads.set(self.reads.get() + 1);
        // Some courses have no title: `None` is a real value worth caching.
        (!course_id.ends_with("Untitled")).then(|| format!("Title of {course_id}"))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Modulestore {
        reads: Cell::new(0),
    };
    let courses = [
        "course-v1:edX+DemoX+Demo_Course",
        "course-v1:MITx+6.002x+2024",
        "course-v1:edX+Draft+Untitled",
    ];

    println!("1. Versioned keys: publishing bumps the version; nothing is deleted.");
    let outline_v3 = KeyBuilder::new(Namespace::new("course_outline")?, 3);
    let outline_v4 = KeyBuilder::new(Namespace::new("course_outline")?, 4);
    println!("   v3 key: {}", outline_v3.build(&[Part::from(courses[0])]));
    println!("   v4 key: {}", outline_v4.build(&[Part::from(courses[0])]));
    println!(
        "   odd parts stay apart: {}  vs  {}",
        outline_v3.build(&[Part::from("a|b")]),
        outline_v3.build(&[Part::from("a"), Part::from("b")])
    );
    let long = "x".repeat(500);
    let long_key = outline_v3.build(&[Part::from(long.as_str())]);
    println!(
        "   a 500-byte part gives a {}-byte key ending in a digest: ...{}",
        long_key.len(),
        &long_key[long_key.len() - 40..]
    );

    println!("\n2. Request cache: one per request, namespaced, a stored None is a hit.");
    let titles = Namespace::new("course_titles")?;
    let mut request = RequestCache::new();
    for round in 1..=3 {
        for course in courses {
            if let Lookup::Miss = request.get(&titles, course) {
                request.set(&titles, course, store.course_title(course));
            }
        }
        println!(
            "   pass {round} over 3 courses: {} modulestore reads so far",
            store.reads.get()
        );
    }
    request.clear_all();
    println!(
        "   request ended: request cache cleared ({} entries)",
        request.total_len()
    );

    println!("\n3. Local cache: bounded by entries and bytes, entries expire.");
    let mut local: LocalCache<String, String> =
        LocalCache::new(2, 1 << 20)?.with_default_ttl(Some(60_000))?;
    let t0 = 1_700_000_000_000u64; // the host passes the time in, in ms
    for course in courses {
        let key = outline_v3.build(&[Part::from(course)]);
        let title = store.course_title(course).unwrap_or_default();
        let weight = title.len() as u64;
        local.set(key, title, weight, Expiry::Default, t0);
    }
    let stats = local.stats();
    println!(
        "   3 sets into a 2-entry cache: {} entries, {} evicted",
        stats.entries, stats.evictions
    );
    let last = outline_v3.build(&[Part::from(courses[2])]);
    println!(
        "   read at +30 s: {:?}",
        local.get(&last, t0 + 30_000).is_found()
    );
    println!(
        "   read at +60 s: {:?} (expired)",
        local.get(&last, t0 + 60_000).is_found()
    );
    local.set(
        "other".into(),
        String::new(),
        0,
        Expiry::Never,
        t0 + 120_000,
    );
    let stats = local.stats();
    println!(
        "   after a write at +120 s: {} entries; expired entries reclaimed without a read: {}",
        stats.entries, stats.expirations
    );
    let too_big = "x".repeat(2 << 20);
    let outcome = local.set("huge".into(), too_big, 2 << 20, Expiry::Never, t0 + 120_000);
    println!("   a 2 MiB value into a 1 MiB cache: {outcome:?}");
    println!("   stats: {:?}", local.stats());

    tiered()?;
    Ok(())
}

/// The remote tiers of the example: a real memcached fleet (keys under a
/// prefix of this run's own) and a map standing in for S3, with a count of
/// the batches asked of each.
struct Servers {
    memcached: Arc<memcached::Client>,
    s3: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    fetches: [u32; 2],
    /// Chunk entries written to memcached (memcached cannot list its keys).
    chunks_stored: usize,
}

impl Servers {
    fn connect() -> Result<Self, Box<dyn std::error::Error>> {
        let list =
            std::env::var("STRATACACHE_MEMCACHED").unwrap_or_else(|_| "127.0.0.1:11211".into());
        let names: Vec<&str> = list.split(',').filter(|s| !s.is_empty()).collect();
        let mut config = memcached::Config::new(&names)?;
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        config.key_prefix = format!("rust_service:{}:{}:", std::process::id(), stamp.as_nanos());
        config.timeout = std::time::Duration::from_secs(2);
        let client = memcached::Client::new(config)?;
        client.stats(None)?.into_iter().try_for_each(|(name, stats)| {
            stats.map(drop).map_err(|e| format!("memcached {name} is not reachable ({e}): start it with `bash scripts/servers.sh start memcached` and export STRATACACHE_MEMCACHED"))
        })?;
        Ok(Servers {
            memcached: Arc::new(client),
            s3: Arc::default(),
            fetches: [0; 2],
            chunks_stored: 0,
        })
    }

    /// One batch of `tier`: per key found, not found, or failed (its
    /// memcached server is down: the key falls through to S3 alone).
    fn get_many(&mut self, tier: usize, keys: &[String]) -> Vec<Fetched> {
        self.fetches[tier] += 1; // one round trip per batch, however many keys
        if tier > 0 {
            let s3 = self.s3.lock().unwrap();
            return keys.iter().map(|k| s3.get(k).cloned().into()).collect();
        }
        match self.memcached.get_many(keys) {
            Ok(outcome) => {
                let mut fetched: Vec<Fetched> =
                    outcome.values.into_iter().map(Fetched::from).collect();
                for i in outcome.failed {
                    fetched[i] = Fetched::Failed("its memcached server is down".into());
                }
                fetched
            }
            Err(e) => keys
                .iter()
                .map(|_| Fetched::Failed(e.to_string()))
                .collect(),
        }
    }

    fn set_many(&mut self, tier: usize, entries: Vec<stratacache::tiered::StoreItem>) {
        if tier == 0 {
            self.chunks_stored += entries
                .iter()
                .filter(|e| e.key.starts_with("tiercache.chunk|"))
                .count();
            let items: Vec<(&str, &[u8], Option<u64>)> = entries
                .iter()
                .map(|e| (e.key.as_str(), e.value.as_slice(), e.ttl_ms))
                .collect();
            let _ = self.memcached.set_many(&items); // a failed write is a later miss
        } else {
            let mut s3 = self.s3.lock().unwrap();
            for entry in entries {
                s3.insert(entry.key, entry.value);
            }
        }
    }

    /// The same tiers, for the write-behind task.
    fn for_writer(&self) -> ServiceTiers {
        ServiceTiers {
            memcached: self.memcached.clone(),
            s3: self.s3.clone(),
        }
    }
}

/// The tiers as the write-behind task reaches them.
#[derive(Clone)]
struct ServiceTiers {
    memcached: Arc<memcached::Client>,
    s3: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl write_behind::Tiers for ServiceTiers {
    fn set_many(&self, tier: usize, entries: Vec<StoreItem>) -> Result<(), String> {
        if tier > 0 {
            let mut s3 = self.s3.lock().unwrap();
            for entry in entries {
                s3.insert(entry.key, entry.value);
            }
            return Ok(());
        }
        let items: Vec<(&str, &[u8], Option<u64>)> = entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_slice(), e.ttl_ms))
            .collect();
        let outcome = self.memcached.set_many(&items).map_err(|e| e.to_string())?;
        match outcome.failed.len() {
            0 => Ok(()),
            n => Err(format!("{n} item(s) not stored")),
        }
    }

    fn delete_many(&self, tier: usize, keys: Vec<String>) -> Result<(), String> {
        if tier > 0 {
            let mut s3 = self.s3.lock().unwrap();
            keys.iter().for_each(|k| drop(s3.remove(k)));
            return Ok(());
        }
        self.memcached
            .delete_many(&keys)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// The host's side of a read: the reference driver asks it for the I/O
/// the core needs. Values are JSON text (the codec the Django example and
/// the edge worker use).
struct App<'a> {
    cache: &'a mut TieredCache<String>,
    servers: &'a mut Servers,
    loader: &'a dyn Fn(&str) -> String,
    now: u64,
    /// Writes off the request path (part 6), or awaited (`None`).
    writer: Option<&'a write_behind::Writer>,
}

impl driver::Host<String> for App<'_> {
    type Error = String;

    fn cache<R>(&mut self, f: impl FnOnce(&mut TieredCache<String>) -> R) -> R {
        f(self.cache)
    }

    fn now(&mut self) -> u64 {
        self.now
    }

    fn random(&mut self) -> u64 {
        self.now ^ 0x9e37
    }

    async fn get_many(&mut self, tier: usize, keys: &[String]) -> Result<Vec<Fetched>, String> {
        Ok(self.servers.get_many(tier, keys))
    }

    async fn set_many(&mut self, tier: usize, entries: Vec<StoreItem>) -> Result<(), String> {
        self.servers.set_many(tier, entries);
        Ok(())
    }

    fn decode(&mut self, item: DecodeItem) -> Result<HostValue<String>, String> {
        let weight = item.payload.len() as u64;
        String::from_utf8(item.payload)
            .map(|json| HostValue::new(json, weight))
            .map_err(|e| e.to_string())
    }

    async fn load(&mut self, keys: &[String]) -> Vec<Result<Loaded<String>, String>> {
        self.now += 40; // the loader's time: the recompute cost early refresh uses
        keys.iter()
            .map(|k| {
                let json = (self.loader)(k);
                Ok(Loaded::new(json.clone(), Codec::Json, json.into_bytes()))
            })
            .collect()
    }

    fn writes_behind(&self) -> bool {
        self.writer.is_some()
    }

    fn write_behind(&mut self, write: driver::WriteBehind) -> Result<(), driver::WriteBehind> {
        write_behind::offer(self.writer, write)
    }
}

/// Reads `keys` through every tier with the reference driver.
fn read(
    cache: &mut TieredCache<String>,
    servers: &mut Servers,
    keys: Vec<String>,
    request: &mut RequestCache<String>,
    loader: &dyn Fn(&str) -> String,
    now: u64,
) -> Result<Vec<stratacache::ReadResult<String>>, Box<dyn std::error::Error>> {
    let mut app = App {
        cache,
        servers,
        loader,
        now,
        writer: None,
    };
    let options = ReadOptions::load();
    Ok(driver::block_on(driver::get(
        &mut app,
        keys,
        options,
        Some(request),
    ))?)
}

fn cache() -> Result<TieredCache<String>, Box<dyn std::error::Error>> {
    let mut config = TieredConfig::new(vec![
        TierConfig::memcached("memcached"),
        TierConfig::storage("s3"),
    ]);
    // The Django example's signing key: it and the edge worker read these envelopes too.
    config.keyring = Some(Keyring::new(
        "demo1",
        b"outline demo: secret shared with the edge worker",
    )?);
    Ok(TieredCache::new(config)?)
}

/// An outline of `sections` sections as JSON, with incompressible ids so that
/// a large one stays over memcached's 1 MiB item size after compression.
fn outline_json(course: &str, sections: usize) -> String {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let blocks: Vec<String> = (0..sections)
        .map(|i| {
            format!(
                r#"{{"id":"block@{:016x}{:016x}","title":"Section {i}"}}"#,
                next(),
                next()
            )
        })
        .collect();
    format!(
        r#"{{"course_id":"{course}","sections":[{}]}}"#,
        blocks.join(",")
    )
}

fn source(r: &stratacache::ReadResult<String>) -> &'static str {
    match r.source {
        Some(Source::Request) => "request tier",
        Some(Source::Local) => "local tier",
        Some(Source::Tier(0)) => "memcached",
        Some(Source::Tier(_)) => "S3",
        Some(Source::Loader) => "loader",
        Some(Source::Flight) => "another reader's load",
        None => "miss",
    }
}

fn tiered() -> Result<(), Box<dyn std::error::Error>> {
    println!("\n4. Tiered read-through: request -> local -> memcached -> S3 -> loader (the host does the I/O).");
    let outline = KeyBuilder::new(Namespace::new("course_outline")?, 1);
    let big = "course-v1:BigU+Everything+2025";
    // The key the Django example and the edge worker build for version 3 of the course.
    let key = outline.build(&[Part::from(big), Part::from(3i64)]);
    println!("   key: {key}");
    let loads = Cell::new(0u32);
    let loader = |k: &str| {
        loads.set(loads.get() + 1);
        outline_json(k, if k.contains("BigU") { 40_000 } else { 20 })
    };
    let mut servers = Servers::connect()?;
    let t0 = 1_700_000_000_000u64;

    let mut process_a = cache()?;
    let mut request = RequestCache::new();
    let r = read(
        &mut process_a,
        &mut servers,
        vec![key.clone()],
        &mut request,
        &loader,
        t0,
    )?;
    let len = match &r[0].lookup {
        Lookup::Hit(json) => json.len(),
        Lookup::Miss => 0,
    };
    let chunks = servers.chunks_stored;
    println!(
        "   process A, cold: {} ({} loads); {:.1} MiB of JSON stored in memcached as {} chunks + a manifest, and whole in S3",
        source(&r[0]),
        loads.get(),
        len as f64 / 1048576.0,
        chunks
    );
    let r = read(
        &mut process_a,
        &mut servers,
        vec![key.clone()],
        &mut request,
        &loader,
        t0 + 1,
    )?;
    println!("   process A, same request: {}", source(&r[0]));
    let mut request = RequestCache::new();
    let r = read(
        &mut process_a,
        &mut servers,
        vec![key.clone()],
        &mut request,
        &loader,
        t0 + 2,
    )?;
    println!("   process A, next request: {}", source(&r[0]));

    let mut process_b = cache()?;
    let before = servers.fetches;
    let mut request = RequestCache::new();
    let r = read(
        &mut process_b,
        &mut servers,
        vec![key.clone()],
        &mut request,
        &loader,
        t0 + 3,
    )?;
    println!(
        "   process B (cold local tier): {} after {} memcached round trips (manifest, then all chunks in one batch); loads still {}",
        source(&r[0]),
        servers.fetches[0] - before[0],
        loads.get()
    );

    let courses: Vec<String> = (0..100)
        .map(|i| {
            outline.build(&[
                Part::from(format!("course-v1:Org+C{i:03}+2025").as_str()),
                Part::from(1i64),
            ])
        })
        .collect();
    let before = (servers.fetches, loads.get());
    let mut request = RequestCache::new();
    read(
        &mut process_b,
        &mut servers,
        courses.clone(),
        &mut request,
        &loader,
        t0 + 4,
    )?;
    println!(
        "   100 cold keys: {} memcached + {} S3 round trips, {} loads",
        servers.fetches[0] - before.0[0],
        servers.fetches[1] - before.0[1],
        loads.get() - before.1
    );
    let mut process_c = cache()?;
    let before = servers.fetches;
    let mut request = RequestCache::new();
    let r = read(
        &mut process_c,
        &mut servers,
        courses,
        &mut request,
        &loader,
        t0 + 5,
    )?;
    println!(
        "   the same 100 keys in process C: {} memcached round trip, {} hits",
        servers.fetches[0] - before[0],
        r.iter().filter(|r| r.lookup.is_found()).count()
    );

    // Someone without the signing key rewrites an entry: it is refused, never decoded.
    let small = outline.build(&[Part::from("course-v1:Org+C000+2025"), Part::from(1i64)]);
    if let Some(mut bytes) = servers
        .memcached
        .get_many(&[&small])?
        .values
        .pop()
        .flatten()
    {
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        servers.memcached.set_many(&[(&small, &bytes[..], None)])?;
    }
    let mut process_d = cache()?;
    let mut request = RequestCache::new();
    let r = read(
        &mut process_d,
        &mut servers,
        vec![small],
        &mut request,
        &loader,
        t0 + 6,
    )?;
    println!(
        "   a tampered memcached entry: refused ({} rejected, never decoded), served from {} instead",
        process_d.tier_stats()[0].rejected,
        source(&r[0])
    );

    // Metrics: the counters through the `metrics` facade, for whatever
    // recorder the service installs (none here, so this is a no-op).
    metrics_export::export("default", &process_d, t0 + 6);
    println!("\n5. Metrics: exported through the `metrics` crate (see docs/observability.md)");

    write_behind_demo(&mut servers, &loader, t0 + 7)?;
    Ok(())
}

/// Part 6: a cold read whose writes (sealing the 2.8 MiB outline included)
/// go to a spawned tokio task; the queue is drained at shutdown.
fn write_behind_demo(
    servers: &mut Servers,
    loader: &dyn Fn(&str) -> String,
    now: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    println!("\n6. Writes off the request path: a bounded queue and a spawned tokio task.");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()?;
    let writer = write_behind::Writer::spawn(runtime.handle(), servers.for_writer(), 1024);
    let outline = KeyBuilder::new(Namespace::new("course_outline")?, 1);
    let key = outline.build(&[Part::from("course-v1:BigU+Behind+2025"), Part::from(1i64)]);
    let mut process_e = cache()?;
    let mut app = App {
        cache: &mut process_e,
        servers,
        loader,
        now,
        writer: Some(&writer),
    };
    let started = std::time::Instant::now();
    let r = driver::block_on(driver::get(
        &mut app,
        vec![key.clone()],
        ReadOptions::load(),
        None,
    ))?;
    let returned = started.elapsed();
    for (tier, landed) in writer.take_tier_outcomes() {
        if landed {
            process_e.tier_succeeded(tier);
        } else {
            process_e.tier_failed(tier, now);
        }
    }
    let stats = runtime.block_on(writer.close()); // shutdown: drains the queue
    let found = servers.memcached.get_many(&[&key])?.values[0].is_some();
    println!(
        "   cold read returned from the {} in {:.1} ms; then drained: {stats:?}; in memcached: {found}",
        source(&r[0]),
        returned.as_secs_f64() * 1000.0
    );
    Ok(())
}
