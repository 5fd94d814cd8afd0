//! A test host for the tiered read machine: in-memory remote tiers that
//! enforce item limits, inject failures and count round trips, a counting
//! loader, and a driver loop like the Python and JS bindings run.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use stratacache::envelope::Codec;
use stratacache::stampede::WaitId;
use stratacache::tiered::driver::{self, DriveError};
use stratacache::tiered::{
    DecodeItem, Fetched, HostValue, LeaseItem, Loaded, ReadError, ReadOptions, ReadResult, Step,
    StoreItem, TieredCache,
};
use stratacache::RequestCache;

/// One remote tier: a map with an item limit, like memcached's.
#[derive(Debug, Default)]
pub struct MemTier {
    pub items: HashMap<String, Vec<u8>>,
    pub item_limit: usize,
    /// Fail every operation (the server is down).
    pub down: bool,
    /// Keys on a server that is down: a batch answers them as failed and
    /// the others as usual (one memcached node of several is down).
    pub failing_keys: HashSet<String>,
    pub gets: u64,
    pub sets: u64,
    pub adds: u64,
    pub deletes: u64,
}

impl MemTier {
    pub fn new(item_limit: usize) -> Self {
        MemTier {
            item_limit,
            ..MemTier::default()
        }
    }

    fn get_many(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, String> {
        if self.down {
            return Err("connection refused".into());
        }
        self.gets += 1;
        Ok(keys.iter().map(|k| self.items.get(k).cloned()).collect())
    }

    fn set_many(&mut self, entries: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        if self.down {
            return Err("connection refused".into());
        }
        self.sets += 1;
        for (key, value) in entries {
            // memcached refuses (and, for an existing key, drops) oversize items
            if value.len() > self.item_limit {
                self.items.remove(&key);
            } else {
                self.items.insert(key, value);
            }
        }
        Ok(())
    }

    fn add_many(&mut self, entries: Vec<(String, Vec<u8>)>) -> Result<Vec<bool>, String> {
        if self.down {
            return Err("connection refused".into());
        }
        self.adds += 1;
        Ok(entries
            .into_iter()
            .map(|(k, v)| match self.items.entry(k) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(v);
                    true
                }
            })
            .collect())
    }

    fn delete_many(&mut self, keys: &[String]) -> Result<(), String> {
        if self.down {
            return Err("connection refused".into());
        }
        self.deletes += 1;
        for key in keys {
            self.items.remove(key);
        }
        Ok(())
    }
}

pub type Tiers = Arc<Vec<Mutex<MemTier>>>;

pub fn tiers(limits: &[usize]) -> Tiers {
    Arc::new(
        limits
            .iter()
            .map(|&l| Mutex::new(MemTier::new(l)))
            .collect(),
    )
}

/// Where `Notify` steps wake `Wait` steps of other threads.
#[derive(Default)]
pub struct Waiters {
    ready: Mutex<HashSet<WaitId>>,
    changed: Condvar,
}

impl Waiters {
    fn notify(&self, ids: Vec<WaitId>) {
        self.ready.lock().unwrap().extend(ids);
        self.changed.notify_all();
    }

    fn wait(&self, ids: &[WaitId]) {
        let mut ready = self.ready.lock().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !ids.iter().all(|id| ready.contains(id)) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(
                !left.is_zero(),
                "waited 10 s for another reader: a lost wake-up"
            );
            ready = self.changed.wait_timeout(ready, left).unwrap().0;
        }
        for id in ids {
            ready.remove(id);
        }
    }
}

/// Everything a driver needs; shareable across threads.
#[derive(Clone)]
pub struct Host {
    pub cache: Arc<Mutex<TieredCache<String>>>,
    pub tiers: Tiers,
    pub waiters: Arc<Waiters>,
    pub loads: Arc<Mutex<Vec<String>>>,
    pub steps: Arc<Mutex<Vec<String>>>,
    /// Keys whose loader raises.
    pub failing_keys: Arc<Mutex<HashSet<String>>>,
    pub load_delay: Duration,
    pub now: Arc<Mutex<u64>>,
}

impl Host {
    pub fn new(cache: TieredCache<String>, tiers: Tiers) -> Self {
        Host {
            cache: Arc::new(Mutex::new(cache)),
            tiers,
            waiters: Arc::default(),
            loads: Arc::default(),
            steps: Arc::default(),
            failing_keys: Arc::default(),
            load_delay: Duration::ZERO,
            now: Arc::new(Mutex::new(1_700_000_000_000)),
        }
    }

    /// Another process: its own cache (local tier, flights) over the same
    /// remote tiers.
    pub fn other_process(&self, cache: TieredCache<String>) -> Self {
        Host {
            cache: Arc::new(Mutex::new(cache)),
            waiters: Arc::default(),
            loads: Arc::default(),
            steps: Arc::default(),
            ..self.clone()
        }
    }

    pub fn now(&self) -> u64 {
        *self.now.lock().unwrap()
    }

    pub fn advance(&self, ms: u64) {
        *self.now.lock().unwrap() += ms;
    }

    /// The value the loader gives for `key`.
    pub fn value_of(key: &str) -> String {
        let value = format!("value of {key}");
        if key.contains("big") {
            // Big enough to be chunked in a tier with a small item limit.
            value.repeat(6_000 / value.len() + 1)
        } else {
            value
        }
    }

    pub fn load_count(&self) -> usize {
        self.loads.lock().unwrap().len()
    }

    pub fn steps_of(&self, kind: &str) -> usize {
        self.steps
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.starts_with(kind))
            .count()
    }

    pub fn get(&self, keys: &[&str], options: ReadOptions) -> Vec<ReadResult<String>> {
        self.read(keys, options, None).expect("strict failure")
    }

    /// Drives one read to the end with the reference driver.
    pub fn read(
        &self,
        keys: &[&str],
        options: ReadOptions,
        request: Option<&mut RequestCache<String>>,
    ) -> Result<Vec<ReadResult<String>>, stratacache::tiered::TierFailure> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let mut driving = Driving {
            host: self,
            slept: 0,
        };
        let result = driver::block_on(driver::get(&mut driving, keys, options, request));
        self.steps.lock().unwrap().push("done".into());
        match result {
            Ok(results) => Ok(results),
            Err(DriveError::Read(ReadError::Tier(failure))) => Err(failure),
            Err(other) => panic!("{other}"),
        }
    }

    /// Runs write steps with the reference driver (`driver::write`): their
    /// failures and successes reach the tiers' health.
    pub fn drive_writes(&self, steps: Vec<Step>) {
        let mut driving = Driving {
            host: self,
            slept: 0,
        };
        driver::block_on(driver::write(&mut driving, steps));
    }

    /// Runs write steps (from set_all_tiers / delete_all_tiers).
    pub fn run_writes(&self, steps: Vec<Step>) {
        for step in steps {
            match step {
                Step::Store { tier, entries } => {
                    let entries = entries.into_iter().map(|e| (e.key, e.value)).collect();
                    let _ = self.tiers[tier].lock().unwrap().set_many(entries);
                }
                Step::Delete { tier, keys } => {
                    let _ = self.tiers[tier].lock().unwrap().delete_many(&keys);
                }
                other => panic!("not a write step: {other:?}"),
            }
        }
    }
}

/// The test host as the reference driver sees it.
struct Driving<'a> {
    host: &'a Host,
    /// Time this read slept or loaded (its clock runs ahead of the shared
    /// one).
    slept: u64,
}

impl Driving<'_> {
    fn record(&self, step: String) {
        self.host.steps.lock().unwrap().push(step);
    }
}

impl driver::Host<String> for Driving<'_> {
    type Error = String;

    fn cache<R>(&mut self, f: impl FnOnce(&mut TieredCache<String>) -> R) -> R {
        f(&mut self.host.cache.lock().unwrap())
    }

    fn now(&mut self) -> u64 {
        self.host.now() + self.slept
    }

    fn random(&mut self) -> u64 {
        rand_u64()
    }

    async fn get_many(&mut self, tier: usize, keys: &[String]) -> Result<Vec<Fetched>, String> {
        self.record(format!("fetch:{tier}:{}", keys.len()));
        let mut memcached = self.host.tiers[tier].lock().unwrap();
        let values = memcached.get_many(keys)?;
        Ok(keys
            .iter()
            .zip(values)
            .map(|(key, value)| match memcached.failing_keys.contains(key) {
                true => Fetched::Failed(format!("the server holding {key} is down")),
                false => value.into(),
            })
            .collect())
    }

    async fn set_many(&mut self, tier: usize, entries: Vec<StoreItem>) -> Result<(), String> {
        self.record(format!("store:{tier}:{}", entries.len()));
        let entries = entries.into_iter().map(|e| (e.key, e.value)).collect();
        self.host.tiers[tier].lock().unwrap().set_many(entries)
    }

    async fn delete_many(&mut self, tier: usize, keys: Vec<String>) -> Result<(), String> {
        self.record(format!("delete:{tier}:{}", keys.len()));
        self.host.tiers[tier].lock().unwrap().delete_many(&keys)
    }

    async fn add_many(&mut self, tier: usize, items: &[LeaseItem]) -> Result<Vec<bool>, String> {
        self.record(format!("lease:{tier}:{}", items.len()));
        let entries = items
            .iter()
            .map(|i| (i.key.clone(), i.token.clone()))
            .collect();
        self.host.tiers[tier].lock().unwrap().add_many(entries)
    }

    fn decode(&mut self, item: DecodeItem) -> Result<HostValue<String>, String> {
        self.record("decode".into());
        assert_eq!(item.codec, Codec::Raw);
        let weight = item.payload.len() as u64;
        String::from_utf8(item.payload)
            .map(|v| HostValue::new(v, weight))
            .map_err(|e| e.to_string())
    }

    async fn load(&mut self, keys: &[String]) -> Vec<Result<Loaded<String>, String>> {
        self.record(format!("load:{}", keys.len()));
        // The test loader "takes" 50 ms: the recompute cost XFetch sees.
        self.slept += 50;
        if !self.host.load_delay.is_zero() {
            std::thread::sleep(self.host.load_delay);
        }
        let failing = self.host.failing_keys.lock().unwrap().clone();
        keys.iter()
            .map(|key| {
                self.host.loads.lock().unwrap().push(key.clone());
                if failing.contains(key) {
                    Err(format!("loader failed for {key}"))
                } else {
                    let value = Host::value_of(key);
                    let payload = value.clone().into_bytes();
                    Ok(Loaded::new(value, Codec::Raw, payload))
                }
            })
            .collect()
    }

    async fn sleep(&mut self, ms: u64) {
        self.record(format!("sleep:{ms}"));
        std::thread::sleep(Duration::from_millis(ms.min(20)));
        self.slept += ms;
    }

    async fn wait(&mut self, waits: &[WaitId]) {
        self.record(format!("wait:{}", waits.len()));
        self.host.waiters.wait(waits);
    }

    fn notify(&mut self, waiters: Vec<WaitId>) {
        self.record(format!("notify:{}", waiters.len()));
        self.host.waiters.notify(waiters);
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}
