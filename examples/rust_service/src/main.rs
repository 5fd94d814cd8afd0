//! A Rust service using the `tiercache` crate directly: versioned keys, a
//! request cache and a bounded local cache with expiry. Run it with
//! `bash scripts/demo.sh` (or `cargo run -p rust_service`).

use std::cell::Cell;

use tiercache::key::{KeyBuilder, Part};
use tiercache::{Expiry, LocalCache, Lookup, Namespace, RequestCache};

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
        "   3 sets into a 2-entry cache: {} entries, {} evicted (least recently used)",
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
    Ok(())
}
