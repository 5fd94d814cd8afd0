//! Writes off the request path for a tokio service: the reference driver
//! offers a read's writes to [`Writer::offer`] (its host says
//! [`Host::writes_behind`](stratacache::tiered::driver::Host::writes_behind)), and a spawned tokio task issues them in
//! order through a bounded queue: loaded values are sealed (signed,
//! compressed, chunked) there too, so a cold read returns once its loader
//! has. A store that does not fit is dropped and counted (the value is in
//! this process's local tier; another process loads it or finds it in a
//! lower tier); a lease release that does not fit is given back to the
//! driver, which issues it at once. [`Writer::close`] drains the queue.
//! `set_all_tiers` stays synchronous: issue its steps with `driver::write`.
//!
//! ```ignore
//! let writer = Writer::spawn(runtime.handle(), tiers.clone(), 1024);
//! // in the host: fn writes_behind(&self) -> bool { true }
//! //              fn write_behind(&mut self, w: WriteBehind) -> Result<(), WriteBehind> { self.writer.offer(w) }
//! let stats = runtime.block_on(writer.close()); // at shutdown: every queued write issued
//! ```

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use stratacache::tiered::driver::WriteBehind;
use stratacache::tiered::{Effect, StoreItem};
use tokio::sync::mpsc::{self, error::TrySendError};

/// The remote tiers as the writer task reaches them (its own handles:
/// cloned into the task, called off the async workers).
pub trait Tiers: Clone + Send + 'static {
    /// Stores entries in `tier`, in order.
    fn set_many(&self, tier: usize, entries: Vec<StoreItem>) -> Result<(), String>;
    /// Deletes keys from `tier`.
    fn delete_many(&self, tier: usize, keys: Vec<String>) -> Result<(), String>;
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    /// Each write's tier and whether it landed, in order, since the host
    /// last asked (it reports them with `TieredCache::tier_failed` or
    /// `tier_succeeded`: the writer does not hold the cache).
    outcomes: Mutex<Vec<(usize, bool)>>,
}

/// The writer's counters, in writes offered (a sealed value is one write).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Accepted into the queue.
    pub queued: u64,
    /// Issued, every store or delete of it succeeded.
    pub written: u64,
    /// Not accepted: the queue was full or closed.
    pub dropped: u64,
    /// Issued, and a tier refused it.
    pub failed: u64,
}

/// A bounded queue of a service's writes and the tokio task that issues
/// them (see the module docs).
pub struct Writer {
    tx: Option<mpsc::Sender<WriteBehind>>,
    task: Option<tokio::task::JoinHandle<()>>,
    counters: Arc<Counters>,
}

fn issue<T: Tiers>(tiers: &T, write: WriteBehind, counters: &Counters) {
    let mut ok = true;
    for effect in write.into_effects() {
        let (tier, result) = match effect {
            Effect::Store { tier, entries } => (tier, tiers.set_many(tier, entries)),
            Effect::Delete { tier, keys } => (tier, tiers.delete_many(tier, keys)),
            Effect::Notify { .. } => continue,
        };
        ok &= result.is_ok();
        counters
            .outcomes
            .lock()
            .unwrap()
            .push((tier, result.is_ok()));
    }
    let counter = if ok {
        &counters.written
    } else {
        &counters.failed
    };
    counter.fetch_add(1, Relaxed);
}

impl Writer {
    /// Spawns the writer task on `runtime`, with room for `bound` writes.
    pub fn spawn<T: Tiers>(runtime: &tokio::runtime::Handle, tiers: T, bound: usize) -> Writer {
        let (tx, mut rx) = mpsc::channel::<WriteBehind>(bound.max(1));
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        let task = runtime.spawn(async move {
            while let Some(write) = rx.recv().await {
                let (tiers, counters) = (tiers.clone(), shared.clone());
                // Sealing and blocking clients: off the async workers, one
                // write at a time (in order).
                let done =
                    tokio::task::spawn_blocking(move || issue(&tiers, write, &counters)).await;
                if done.is_err() {
                    shared.failed.fetch_add(1, Relaxed);
                }
            }
        });
        Writer {
            tx: Some(tx),
            task: Some(task),
            counters,
        }
    }

    /// Queues `write` (a host's `write_behind` calls this). `Err`
    /// gives a lease release back when the queue is full: the driver issues
    /// it now. A store that does not fit is dropped and counted.
    pub fn offer(&self, write: WriteBehind) -> Result<(), WriteBehind> {
        let Some(tx) = &self.tx else {
            return Err(write);
        };
        match tx.try_send(write) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(write) | TrySendError::Closed(write)) => {
                if matches!(write, WriteBehind::Effect(Effect::Delete { .. })) {
                    return Err(write);
                }
                self.counters.dropped.fetch_add(1, Relaxed);
                Ok(())
            }
        }
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            queued: c.queued.load(Relaxed),
            written: c.written.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            failed: c.failed.load(Relaxed),
        }
    }

    /// Each background write's tier and whether it landed, in order, since
    /// the last call: report a failure with `TieredCache::tier_failed` (its
    /// cool-down and counters), a success with `tier_succeeded` (it ends a
    /// cool-down).
    pub fn take_tier_outcomes(&self) -> Vec<(usize, bool)> {
        std::mem::take(&mut *self.counters.outcomes.lock().unwrap())
    }

    /// Closes the queue and waits until every queued write was issued.
    pub async fn close(mut self) -> Stats {
        drop(self.tx.take());
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.stats()
    }
}

/// A host's `write_behind` in one line: `driver::Host` implementations
/// forward to this (no writer: the driver issues the write now).
pub fn offer(writer: Option<&Writer>, write: WriteBehind) -> Result<(), WriteBehind> {
    match writer {
        Some(writer) => writer.offer(write),
        None => Err(write),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Barrier;

    use stratacache::envelope::Codec;
    use stratacache::tiered::driver::{self, Host};
    use stratacache::tiered::{
        DecodeItem, Fetched, HostValue, Loaded, ReadOptions, TierConfig, TieredCache, TieredConfig,
    };

    type Maps = [HashMap<String, Vec<u8>>; 2];

    /// Two in-memory tiers recording every write's key in order; an
    /// optional gate holds the writer task (a slow tier).
    #[derive(Clone, Default)]
    struct Memory {
        items: Arc<Mutex<Maps>>,
        log: Arc<Mutex<Vec<(usize, String)>>>,
        gate: Option<Arc<Barrier>>,
        fail: bool,
    }

    impl Tiers for Memory {
        fn set_many(&self, tier: usize, entries: Vec<StoreItem>) -> Result<(), String> {
            if let Some(gate) = &self.gate {
                gate.wait();
            }
            if self.fail {
                return Err("refused".into());
            }
            for e in entries {
                self.log.lock().unwrap().push((tier, e.key.clone()));
                self.items.lock().unwrap()[tier].insert(e.key, e.value);
            }
            Ok(())
        }
        fn delete_many(&self, tier: usize, keys: Vec<String>) -> Result<(), String> {
            for k in keys {
                self.log.lock().unwrap().push((tier, format!("delete {k}")));
                self.items.lock().unwrap()[tier].remove(&k);
            }
            Ok(())
        }
    }

    struct App<'a> {
        cache: TieredCache<String>,
        tiers: Memory,
        writer: Option<&'a Writer>,
        value: String,
    }

    impl Host<String> for App<'_> {
        type Error = String;
        fn cache<R>(&mut self, f: impl FnOnce(&mut TieredCache<String>) -> R) -> R {
            f(&mut self.cache)
        }
        async fn get_many(&mut self, tier: usize, keys: &[String]) -> Result<Vec<Fetched>, String> {
            let items = self.tiers.items.lock().unwrap();
            Ok(keys
                .iter()
                .map(|k| items[tier].get(k).cloned().into())
                .collect())
        }
        async fn set_many(&mut self, tier: usize, entries: Vec<StoreItem>) -> Result<(), String> {
            self.tiers.set_many(tier, entries)
        }
        fn decode(&mut self, item: DecodeItem) -> Result<HostValue<String>, String> {
            String::from_utf8(item.payload)
                .map(|v| HostValue::new(v, 1))
                .map_err(|e| e.to_string())
        }
        async fn load(&mut self, keys: &[String]) -> Vec<Result<Loaded<String>, String>> {
            let v = self.value.clone();
            keys.iter()
                .map(|_| Ok(Loaded::new(v.clone(), Codec::Raw, v.clone().into_bytes())))
                .collect()
        }
        fn writes_behind(&self) -> bool {
            self.writer.is_some()
        }
        fn write_behind(&mut self, write: WriteBehind) -> Result<(), WriteBehind> {
            offer(self.writer, write)
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap()
    }

    /// `writer.close()`, while another thread lets `calls` gated tier calls through.
    fn close_opening(
        rt: &tokio::runtime::Runtime,
        writer: Writer,
        gate: &Arc<Barrier>,
        calls: usize,
    ) -> Stats {
        let gate = gate.clone();
        let opener = std::thread::spawn(move || {
            (0..calls).for_each(|_| {
                gate.wait();
            })
        });
        let stats = rt.block_on(writer.close());
        opener.join().unwrap();
        stats
    }

    fn cache() -> TieredCache<String> {
        let mut memcached = TierConfig::memcached("memcached");
        memcached.item_limit = 4096; // chunked
        TieredCache::new(TieredConfig::new(vec![
            memcached,
            TierConfig::storage("s3"),
        ]))
        .unwrap()
    }

    fn big() -> String {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..4_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("{x:016x}")
            })
            .collect()
    }

    /// One read of `key` through `app`, loading on a miss.
    fn read_one(app: &mut App<'_>, key: &str) -> stratacache::ReadResult<String, String> {
        let mut got = driver::block_on(driver::get(
            app,
            vec![key.into()],
            ReadOptions::load(),
            None,
        ))
        .unwrap();
        got.remove(0)
    }

    #[test]
    fn a_cold_read_returns_before_its_writes_and_close_drains_them() {
        let rt = runtime();
        let gate = Arc::new(Barrier::new(2));
        let tiers = Memory {
            gate: Some(gate.clone()),
            ..Memory::default()
        };
        let writer = Writer::spawn(rt.handle(), tiers.clone(), 16);
        let mut app = App {
            cache: cache(),
            tiers: tiers.clone(),
            writer: Some(&writer),
            value: big(),
        };
        let got = read_one(&mut app, "k|v1");
        assert_eq!(
            got.lookup.as_ref().cloned(),
            stratacache::Lookup::Hit(big())
        );
        // The read is done; its one sealed value waits for the (gated) tier.
        assert!(tiers.log.lock().unwrap().is_empty());
        assert_eq!(writer.stats().queued, 1);
        // The writer issues memcached's stores, then S3's (two gated calls).
        let stats = close_opening(&rt, writer, &gate, 2);
        assert_eq!(
            stats,
            Stats {
                queued: 1,
                written: 1,
                dropped: 0,
                failed: 0
            }
        );
        let log = tiers.log.lock().unwrap().clone();
        let memcached: Vec<&String> = log
            .iter()
            .filter(|(t, _)| *t == 0)
            .map(|(_, k)| k)
            .collect();
        assert!(memcached.len() > 2, "chunked: {memcached:?}");
        assert_eq!(
            memcached.last().unwrap().as_str(),
            "k|v1",
            "chunks before their manifest"
        );
        assert!(log.iter().any(|(t, k)| *t == 1 && k == "k|v1"));
        // Another process reads it from memcached.
        let mut other = App {
            cache: cache(),
            tiers: tiers.clone(),
            writer: None,
            value: "not loaded".into(),
        };
        let got = read_one(&mut other, "k|v1");
        assert_eq!(
            got.lookup.as_ref().cloned(),
            stratacache::Lookup::Hit(big())
        );
        assert_eq!(got.source, Some(stratacache::Source::Tier(0)));
    }

    #[test]
    fn a_full_queue_drops_stores_and_gives_deletes_back() {
        let rt = runtime();
        let gate = Arc::new(Barrier::new(2));
        let tiers = Memory {
            gate: Some(gate.clone()),
            ..Memory::default()
        };
        let writer = Writer::spawn(rt.handle(), tiers, 1);
        let store = |k: &str| {
            WriteBehind::Effect(Effect::Store {
                tier: 0,
                entries: vec![StoreItem {
                    key: k.into(),
                    value: b"v".to_vec(),
                    ttl_ms: None,
                }],
            })
        };
        assert!(writer.offer(store("a")).is_ok()); // taken by the task, held at the gate
        while writer.stats().queued < 1 {
            std::thread::yield_now();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(writer.offer(store("b")).is_ok()); // fills the queue (bound 1)
        assert!(writer.offer(store("c")).is_ok()); // dropped, counted
        let release = WriteBehind::Effect(Effect::Delete {
            tier: 0,
            keys: vec!["lease".into()],
        });
        assert!(matches!(
            writer.offer(release),
            Err(WriteBehind::Effect(Effect::Delete { .. }))
        ));
        let stats = close_opening(&rt, writer, &gate, 2);
        assert_eq!(
            stats,
            Stats {
                queued: 2,
                written: 2,
                dropped: 1,
                failed: 0
            }
        );
    }

    /// Reads "k" (loaded as "v") over `tiers` with a writer behind it, and
    /// waits until `settled` holds for the writer's counters.
    fn read_behind(
        rt: &tokio::runtime::Runtime,
        tiers: Memory,
        settled: impl Fn(Stats) -> bool,
    ) -> (Writer, TieredCache<String>) {
        let writer = Writer::spawn(rt.handle(), tiers.clone(), 8);
        let mut app = App {
            cache: cache(),
            tiers,
            writer: Some(&writer),
            value: "v".into(),
        };
        read_one(&mut app, "k");
        rt.block_on(async {
            while !settled(writer.stats()) {
                tokio::task::yield_now().await;
            }
        });
        let cache = app.cache;
        (writer, cache)
    }

    #[test]
    fn landed_writes_are_reported_and_end_a_cool_down() {
        let rt = runtime();
        let (writer, mut cache) = read_behind(&rt, Memory::default(), |s| s.written > 0);
        let mut outcomes = writer.take_tier_outcomes();
        outcomes.dedup();
        assert_eq!(outcomes, vec![(0, true), (1, true)]);
        (0..3).for_each(|_| cache.tier_failed(0, 1));
        assert!(cache.is_cooling_down(0, 2));
        for (tier, _) in outcomes {
            cache.tier_succeeded(tier);
        }
        assert!(!cache.is_cooling_down(0, 2));
        rt.block_on(writer.close());
    }

    #[test]
    fn failed_writes_are_counted_and_reported_per_tier() {
        let rt = runtime();
        let tiers = Memory {
            fail: true,
            ..Memory::default()
        };
        let (writer, mut cache) = read_behind(&rt, tiers, |s| s.failed > 0);
        assert_eq!(writer.stats().failed, 1);
        let mut outcomes = writer.take_tier_outcomes();
        outcomes.sort_unstable();
        assert_eq!(outcomes, vec![(0, false), (1, false)]);
        for (tier, _) in outcomes {
            cache.tier_failed(tier, 1);
        }
        assert!(cache.tier_stats()[0].errors >= 1);
        rt.block_on(writer.close());
    }
}
