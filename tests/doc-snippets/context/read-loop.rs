// A host's own loop over `Read`: the `my_*` functions stand in for the
// host's tiers (one, empty), its deserializer and its loader.
use stratacache::envelope::Codec;
use stratacache::stampede::WaitId;
use stratacache::tiered::{
    DecodeItem, Effect, Fetched, HostValue, LeaseItem, Loaded, Next, ReadOptions, TierConfig,
    TieredCache, TieredConfig,
};
use stratacache::{Lookup, RequestCache};

#[derive(Debug)]
struct MyError;

impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("my error")
    }
}

impl std::error::Error for MyError {}

fn my_get_many(_tier: usize, keys: &[String]) -> Vec<Fetched<MyError>> {
    keys.iter().map(|_| Fetched::NotFound).collect()
}
fn deserialize(items: &[DecodeItem]) -> Vec<Result<HostValue<String>, MyError>> {
    items.iter().map(|i| String::from_utf8(i.payload.clone()).map(|v| HostValue::new(v, 1)).map_err(|_| MyError)).collect()
}
fn my_loader(keys: &[String]) -> Vec<Result<Loaded<String>, MyError>> {
    keys.iter().map(|k| Ok(Loaded::new(format!("loaded {k}"), Codec::Raw, k.clone().into_bytes()))).collect()
}
fn my_add_many(_tier: usize, items: &[LeaseItem]) -> Vec<bool> {
    vec![true; items.len()]
}
fn my_wait(_waits: &[WaitId]) {}
fn my_sleep(_ms: u64) {}
fn clock_ms() -> u64 {
    1_700_000_000_000
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cache: TieredCache<String> =
        TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("memcached")]))?;
    let keys = vec!["course_outline|v3|a".to_string(), "course_outline|v3|b".to_string()];
    let (now, random, load_ms) = (clock_ms(), 7, 12);
    let mut request = RequestCache::new();
    let mut stored = 0;
    let mut run = |effect: Effect| {
        if let Effect::Store { entries, .. } = effect {
            stored += entries.len();
        }
    };
// SNIPPET
    assert_eq!(results[1].lookup, Lookup::Hit("loaded course_outline|v3|b".to_string()));
    assert_eq!(stored, 2); // both loaded values written to the remote tier
    Ok(())
}
