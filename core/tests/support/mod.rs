//! A test host for the tiered read machine: in-memory remote tiers that
//! enforce item limits, inject failures and count round trips, a counting
//! loader, and a driver loop like the Python and JS bindings run.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use stratacache::envelope::Codec;
use stratacache::stampede::WaitId;
use stratacache::tiered::{HostValue, Loaded, Read, ReadOptions, ReadResult, Step, TieredCache};
use stratacache::RequestCache;

/// One remote tier: a map with an item limit, like memcached's.
#[derive(Debug, Default)]
pub struct MemTier {
    pub items: HashMap<String, Vec<u8>>,
    pub item_limit: usize,
    /// Fail every operation (the server is down).
    pub down: bool,
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

    /// Drives one read to the end, as a binding does.
    pub fn read(
        &self,
        keys: &[&str],
        options: ReadOptions,
        request: Option<&mut RequestCache<String>>,
    ) -> Result<Vec<ReadResult<String>>, stratacache::tiered::TierFailure> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let random = rand_u64();
        let mut read: Read<String> = {
            let mut cache = self.cache.lock().unwrap();
            cache
                .read(keys, options, self.now(), random, request.as_deref())
                .expect("valid keys")
        };
        loop {
            let step = read.next(&mut self.cache.lock().unwrap());
            self.steps.lock().unwrap().push(step_name(&step));
            match step {
                Step::Fetch { tier, keys } => {
                    let result = self.tiers[tier].lock().unwrap().get_many(&keys);
                    let mut cache = self.cache.lock().unwrap();
                    match result {
                        Ok(values) => read.fetched(&mut cache, tier, values),
                        Err(e) => read.failed(&mut cache, tier, &e, self.now()),
                    }
                }
                Step::Decode { items } => {
                    let values = items
                        .into_iter()
                        .map(|item| {
                            assert_eq!(item.codec, Codec::Raw);
                            let weight = item.payload.len() as u64;
                            String::from_utf8(item.payload)
                                .map(|v| HostValue::new(v, weight))
                                .map_err(|e| e.to_string())
                        })
                        .collect();
                    read.decoded(&mut self.cache.lock().unwrap(), values);
                }
                Step::Lease { tier, items } => {
                    let entries = items.into_iter().map(|i| (i.key, i.token)).collect();
                    let result = self.tiers[tier].lock().unwrap().add_many(entries);
                    let mut cache = self.cache.lock().unwrap();
                    match result {
                        Ok(taken) => read.leased(&mut cache, taken),
                        Err(e) => read.failed(&mut cache, tier, &e, self.now()),
                    }
                }
                Step::Sleep { ms } => {
                    std::thread::sleep(Duration::from_millis(ms.min(20)));
                    self.advance(0);
                    read.slept(self.now() + ms);
                }
                Step::Load { keys } => {
                    if !self.load_delay.is_zero() {
                        std::thread::sleep(self.load_delay);
                    }
                    let failing = self.failing_keys.lock().unwrap().clone();
                    let values = keys
                        .iter()
                        .map(|key| {
                            self.loads.lock().unwrap().push(key.clone());
                            if failing.contains(key) {
                                Err(format!("loader failed for {key}"))
                            } else {
                                let value = Host::value_of(key);
                                let payload = value.clone().into_bytes();
                                Ok(Loaded::new(value, Codec::Raw, payload))
                            }
                        })
                        .collect();
                    read.loaded(&mut self.cache.lock().unwrap(), values, 50);
                }
                Step::Notify { waiters } => self.waiters.notify(waiters),
                Step::Wait { waits } => self.waiters.wait(&waits),
                Step::Store { tier, entries } => {
                    let entries = entries.into_iter().map(|e| (e.key, e.value)).collect();
                    if let Err(_e) = self.tiers[tier].lock().unwrap().set_many(entries) {
                        let now = self.now();
                        self.cache.lock().unwrap().tier_failed(tier, now);
                    }
                }
                Step::Delete { tier, keys } => {
                    let _ = self.tiers[tier].lock().unwrap().delete_many(&keys);
                }
                Step::Done => break,
            }
        }
        let mut cache = self.cache.lock().unwrap();
        read.finish(&mut cache, request)
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

pub fn step_name(step: &Step) -> String {
    match step {
        Step::Fetch { tier, keys } => format!("fetch:{tier}:{}", keys.len()),
        Step::Decode { items } => format!("decode:{}", items.len()),
        Step::Lease { tier, items } => format!("lease:{tier}:{}", items.len()),
        Step::Sleep { ms } => format!("sleep:{ms}"),
        Step::Load { keys } => format!("load:{}", keys.len()),
        Step::Notify { waiters } => format!("notify:{}", waiters.len()),
        Step::Wait { waits } => format!("wait:{}", waits.len()),
        Step::Store { tier, entries } => format!("store:{tier}:{}", entries.len()),
        Step::Delete { tier, keys } => format!("delete:{tier}:{}", keys.len()),
        Step::Done => "done".into(),
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}
