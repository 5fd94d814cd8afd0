//! The sans-I/O read-through: request tier → local tier → remote tiers
//! (memcached, Redis, Workers KV, then a storage tier such as S3) → loader.
//!
//! [`TieredCache`] holds what a process shares (configuration, the local
//! tier, single-flight bookkeeping, tier health, counters). A [`Read`] is a
//! state machine the host drives: [`Read::next`] hands out one step at a
//! time as a handle the host answers (fetch these keys from tier N in one
//! batch, decode these payloads, load these keys), and
//! [`Read::poll_effect`] hands out the work that needs no answer (stores,
//! deletes, wake-ups). The core never waits, so Python drives it
//! synchronously, JS with `await`, and Rust with the reference
//! [`driver`]:
//!
//! ```
//! use stratacache::tiered::driver::{self, Host};
//! use stratacache::tiered::{DecodeItem, Fetched, HostValue, Loaded, ReadOptions, StoreItem, TierConfig, TieredCache, TieredConfig};
//! use stratacache::envelope::Codec;
//! use std::collections::HashMap;
//!
//! struct App { cache: TieredCache<String>, memcached: HashMap<String, Vec<u8>> }
//!
//! impl Host<String> for App {
//!     type Error = String;
//!     fn cache<R>(&mut self, f: impl FnOnce(&mut TieredCache<String>) -> R) -> R { f(&mut self.cache) }
//!     async fn get_many(&mut self, _tier: usize, keys: &[String]) -> Result<Vec<Fetched<String>>, String> {
//!         Ok(keys.iter().map(|k| self.memcached.get(k).cloned().into()).collect())
//!     }
//!     async fn set_many(&mut self, _tier: usize, entries: Vec<StoreItem>) -> Result<(), String> {
//!         for e in entries { self.memcached.insert(e.key, e.value); }
//!         Ok(())
//!     }
//!     fn decode(&mut self, item: DecodeItem) -> Result<HostValue<String>, String> {
//!         String::from_utf8(item.payload).map(|v| HostValue::new(v, 1)).map_err(|e| e.to_string())
//!     }
//!     async fn load(&mut self, keys: &[String]) -> Vec<Result<Loaded<String>, String>> {
//!         keys.iter().map(|_| Ok(Loaded::new("hello".to_string(), Codec::Raw, b"hello".to_vec()))).collect()
//!     }
//! }
//!
//! let cache = TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("memcached")])).unwrap();
//! let mut app = App { cache, memcached: HashMap::new() };
//! let results = driver::block_on(driver::get(&mut app, vec!["greeting|v1".into()], ReadOptions::load(), None)).unwrap();
//! assert_eq!(results[0].lookup.as_ref().cloned(), stratacache::Lookup::Hit("hello".to_string()));
//! assert_eq!(app.memcached.len(), 1); // written through to the remote tier
//! ```

mod config;
pub mod driver;
#[cfg(feature = "precheck")]
mod precheck;
mod protocol;
mod read;
mod shared;
mod spec;
mod steps;
mod writes;

pub use config::{
    ConfigError, CooldownPolicy, LocalTierConfig, ReadOptions, TierConfig, TieredConfig, MAX_TIERS,
    REDIS_VALUE_LIMIT, STORAGE_VALUE_LIMIT,
};
#[cfg(feature = "precheck")]
pub use precheck::{Prechecked, Prechecker};
pub use protocol::{
    AnswerError, DecodeStep, Effect, FetchStep, Fetched, LeaseStep, LoadStep, Next, Read,
    ReadError, SleepStep, WaitStep,
};
pub use read::{RawRead, ReadResult, Source};
pub use shared::TieredCache;
pub use spec::{CooldownSpec, LeaseSpec, LocalSpec, Secret, TierSpec, TieredSpec};
pub use steps::{
    DecodeItem, HostValue, InvalidKey, LeaseItem, Loaded, LoaderError, LoaderOutput, Step,
    StoreItem, TierFailure,
};
#[cfg(feature = "write-behind")]
pub use writes::SealJob;

use shared::{mix, unit_random, LocalEntry};
use steps::check_key;
