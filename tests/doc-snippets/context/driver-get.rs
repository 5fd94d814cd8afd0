// `driver::get` over a host whose one remote tier is a HashMap standing in
// for memcached, and whose loader builds "hello".
use std::collections::HashMap;

use stratacache::envelope::Codec;
use stratacache::tiered::driver::{self, Host};
use stratacache::tiered::{
    DecodeItem, Fetched, HostValue, Loaded, ReadOptions, StoreItem, TierConfig, TieredCache,
    TieredConfig,
};
use stratacache::{Lookup, RequestCache};

struct App {
    cache: TieredCache<String>,
    memcached: HashMap<String, Vec<u8>>,
}

impl Host<String> for App {
    type Error = String;
    fn cache<R>(&mut self, f: impl FnOnce(&mut TieredCache<String>) -> R) -> R {
        f(&mut self.cache)
    }
    async fn get_many(&mut self, _tier: usize, keys: &[String]) -> Result<Vec<Fetched<String>>, String> {
        Ok(keys.iter().map(|k| self.memcached.get(k).cloned().into()).collect())
    }
    async fn set_many(&mut self, _tier: usize, entries: Vec<StoreItem>) -> Result<(), String> {
        for e in entries {
            self.memcached.insert(e.key, e.value);
        }
        Ok(())
    }
    fn decode(&mut self, item: DecodeItem) -> Result<HostValue<String>, String> {
        String::from_utf8(item.payload).map(|v| HostValue::new(v, 1)).map_err(|e| e.to_string())
    }
    async fn load(&mut self, keys: &[String]) -> Vec<Result<Loaded<String>, String>> {
        keys.iter().map(|_| Ok(Loaded::new("hello".to_string(), Codec::Raw, b"hello".to_vec()))).collect()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("memcached")]))?;
    let mut host = App { cache, memcached: HashMap::new() };
    let keys = vec!["greeting|v1".to_string()];
    let mut request = RequestCache::new();
// SNIPPET
    assert_eq!(results[0].lookup, Lookup::Hit("hello".to_string()));
    assert_eq!(host.memcached.len(), 1); // written through to the remote tier
    Ok(())
}
