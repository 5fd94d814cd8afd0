//! A Rust service using the `stratacache` crate directly: versioned keys, a
//! request cache, a bounded local cache with expiry, and the tiered
//! read-through driven by a small host over in-memory "memcached" and "S3"
//! tiers. Run it with `cargo run -p rust_service`.

use std::cell::Cell;
use std::collections::HashMap;

use stratacache::envelope::Codec;
use stratacache::key::{KeyBuilder, Part};
use stratacache::tiered::{HostValue, Loaded};
use stratacache::{
    Expiry, Keyring, LocalCache, Lookup, Namespace, ReadOptions, RequestCache, Source, Step,
    TierConfig, TieredCache, TieredConfig,
};

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

/// The remote tiers of the example: maps standing in for memcached and S3,
/// with a count of the batches asked of each.
#[derive(Default)]
struct Servers {
    memcached: HashMap<String, Vec<u8>>,
    s3: HashMap<String, Vec<u8>>,
    fetches: [u32; 2],
}

impl Servers {
    fn tier(&mut self, tier: usize) -> &mut HashMap<String, Vec<u8>> {
        if tier == 0 {
            &mut self.memcached
        } else {
            &mut self.s3
        }
    }
}

/// The host's side of a read: it does the I/O the core asks for. Values are
/// JSON text (the codec the Django example and the edge worker use).
fn read(
    cache: &mut TieredCache<String>,
    servers: &mut Servers,
    keys: Vec<String>,
    request: &mut RequestCache<String>,
    loader: &dyn Fn(&str) -> String,
    now: u64,
) -> Result<Vec<stratacache::ReadResult<String>>, Box<dyn std::error::Error>> {
    let mut read = cache.read(keys, ReadOptions::load(), now, now ^ 0x9e37, Some(request))?;
    loop {
        match read.next(cache) {
            Step::Fetch { tier, keys } => {
                servers.fetches[tier] += 1; // one round trip per batch, however many keys
                let found = keys
                    .iter()
                    .map(|k| servers.tier(tier).get(k).cloned())
                    .collect();
                read.fetched(cache, tier, found);
            }
            Step::Decode { items } => {
                let values = items
                    .into_iter()
                    .map(|item| {
                        let weight = item.payload.len() as u64;
                        String::from_utf8(item.payload)
                            .map(|json| HostValue::new(json, weight))
                            .map_err(|e| e.to_string())
                    })
                    .collect();
                read.decoded(cache, values);
            }
            Step::Load { keys } => {
                let loaded = keys
                    .iter()
                    .map(|k| {
                        let json = loader(k);
                        Ok(Loaded::new(json.clone(), Codec::Json, json.into_bytes()))
                    })
                    .collect();
                read.loaded(cache, loaded, 40);
            }
            Step::Store { tier, entries } => {
                for entry in entries {
                    servers.tier(tier).insert(entry.key, entry.value);
                }
            }
            Step::Done => break,
            // No leases, no other threads and no deletes in this example;
            // core/tests/support/mod.rs is a host that does them all.
            other => unreachable!("not used here: {other:?}"),
        }
    }
    Ok(read.finish(cache, Some(request))?)
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
    let mut servers = Servers::default();
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
    let chunks = servers
        .memcached
        .keys()
        .filter(|k| k.starts_with("tiercache.chunk|"))
        .count();
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
    if let Some(bytes) = servers.memcached.get_mut(&small) {
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
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
    Ok(())
}
