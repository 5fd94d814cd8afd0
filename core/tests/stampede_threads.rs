//! Real threads reading cold keys through `SingleFlight`, with a `Mutex` and
//! a `Condvar` as the host's waiting primitive: the way the Python binding
//! drives it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use stratacache::stampede::{AbandonPolicy, Claim, LeadToken, SingleFlight, WaitId};

/// What a woken waiter was told.
enum Outcome {
    /// The value is stored: re-read it.
    Ready,
    /// The leader's loader failed with this error.
    Failed(String),
    /// The leader failed; the waiter loads next with this token.
    Promoted(LeadToken),
}

#[derive(Default)]
struct State {
    flights: SingleFlight<String>,
    store: HashMap<String, String>,
    outcomes: HashMap<WaitId, Outcome>,
    /// Waiters released with a loader's error.
    released_with_error: usize,
}

/// The test host: a "local tier" (`store`), single-flight bookkeeping, and
/// one condition variable on which every waiter sleeps.
struct Host {
    state: Mutex<State>,
    woken: Condvar,
    policy: AbandonPolicy,
}

type Loader = dyn Fn(&[String]) -> Result<Vec<String>, String> + Send + Sync;

impl Host {
    fn new(policy: AbandonPolicy) -> Self {
        Host {
            state: Mutex::new(State::default()),
            woken: Condvar::new(),
            policy,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Reads one key through the store, loading it under single-flight on a
    /// miss.
    fn read(&self, key: &str, loader: &Loader) -> Result<String, String> {
        let mut state = self.lock();
        if let Some(value) = state.store.get(key) {
            return Ok(value.clone());
        }
        match state.flights.claim(key.to_owned()) {
            Claim::Lead(token) => {
                drop(state);
                self.lead(key, token, loader)
            }
            Claim::Wait(id) => self.wait_for(state, key, id, loader),
        }
    }

    fn wait_for(
        &self,
        mut state: MutexGuard<'_, State>,
        key: &str,
        id: WaitId,
        loader: &Loader,
    ) -> Result<String, String> {
        loop {
            if let Some(outcome) = state.outcomes.remove(&id) {
                return match outcome {
                    Outcome::Ready => Ok(state.store[key].clone()),
                    Outcome::Failed(err) => Err(err),
                    Outcome::Promoted(token) => {
                        drop(state);
                        self.lead(key, token, loader)
                    }
                };
            }
            state = self.woken.wait(state).unwrap();
        }
    }

    fn lead(&self, key: &str, token: LeadToken, loader: &Loader) -> Result<String, String> {
        let result = loader(&[key.to_owned()]).map(|mut values| values.remove(0));
        let mut state = self.lock();
        match result {
            Ok(value) => {
                state.store.insert(key.to_owned(), value.clone());
                for id in state.flights.finish(token).unwrap() {
                    state.outcomes.insert(id, Outcome::Ready);
                }
                self.woken.notify_all();
                Ok(value)
            }
            Err(err) => {
                let abandoned = state.flights.abandon(token, self.policy).unwrap();
                state.released_with_error += abandoned.release.len();
                for id in abandoned.release {
                    state.outcomes.insert(id, Outcome::Failed(err.clone()));
                }
                let promoted = abandoned.new_leader.is_some();
                if let Some((id, next)) = abandoned.new_leader {
                    state.outcomes.insert(id, Outcome::Promoted(next));
                }
                self.woken.notify_all();
                if promoted {
                    // Retry as a reader: the promoted waiter now loads, and
                    // this thread waits for it like everyone else.
                    match state.flights.claim(key.to_owned()) {
                        Claim::Wait(id) => self.wait_for(state, key, id, loader),
                        Claim::Lead(_) => unreachable!("the promoted waiter leads"),
                    }
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Reads a batch of keys: one `claim_many`, one loader call for all the
    /// keys this thread leads, then waits for the rest.
    fn read_many(&self, keys: &[String], loader: &Loader) -> HashMap<String, String> {
        let mut out = HashMap::new();
        let mut state = self.lock();
        let cold: Vec<String> = keys
            .iter()
            .filter(|k| match state.store.get(*k) {
                Some(v) => {
                    out.insert((*k).clone(), v.clone());
                    false
                }
                None => true,
            })
            .cloned()
            .collect();
        let batch = state.flights.claim_many(cold);
        drop(state);

        if !batch.lead.is_empty() {
            let lead_keys: Vec<String> = batch.lead.iter().map(|(k, _)| k.clone()).collect();
            let values = loader(&lead_keys).expect("this loader does not fail");
            let mut state = self.lock();
            for ((key, token), value) in batch.lead.into_iter().zip(values) {
                state.store.insert(key.clone(), value.clone());
                for id in state.flights.finish(token).unwrap() {
                    state.outcomes.insert(id, Outcome::Ready);
                }
                out.insert(key, value);
            }
            self.woken.notify_all();
        }

        let mut state = self.lock();
        for (key, id) in batch.wait {
            loop {
                if let Some(outcome) = state.outcomes.remove(&id) {
                    assert!(matches!(outcome, Outcome::Ready));
                    out.insert(key.clone(), state.store[&key].clone());
                    break;
                }
                state = self.woken.wait(state).unwrap();
            }
        }
        out
    }

    /// Blocks until `n` readers wait for `key`, so that a test's loader
    /// cannot finish before every thread has joined the flight.
    fn until_waiting(&self, key: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let key = key.to_owned();
        while self.lock().flights.waiters(&key) < n {
            assert!(Instant::now() < deadline, "readers never joined the flight");
            thread::sleep(Duration::from_millis(1));
        }
    }
}

const READERS: usize = 64;

/// Runs `READERS` threads that read `key` at the same moment.
fn stampede(host: &Arc<Host>, key: &str, loader: Arc<Loader>) -> Vec<Result<String, String>> {
    let barrier = Arc::new(Barrier::new(READERS));
    let handles: Vec<_> = (0..READERS)
        .map(|_| {
            let (host, barrier, loader) = (host.clone(), barrier.clone(), loader.clone());
            let key = key.to_owned();
            thread::spawn(move || {
                barrier.wait();
                host.read(&key, &*loader)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn sixty_four_readers_one_load() {
    let host = Arc::new(Host::new(AbandonPolicy::ReleaseAll));
    let loads = Arc::new(AtomicUsize::new(0));
    let loader: Arc<Loader> = {
        let (host, loads) = (host.clone(), loads.clone());
        Arc::new(move |keys: &[String]| {
            loads.fetch_add(1, Ordering::SeqCst);
            host.until_waiting(&keys[0], READERS - 1);
            thread::sleep(Duration::from_millis(20));
            Ok(vec![format!("value of {}", keys[0])])
        })
    };
    let results = stampede(&host, "course:1", loader);
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(results.len(), READERS);
    for r in &results {
        assert_eq!(r.as_deref(), Ok("value of course:1"));
    }
    let state = host.lock();
    let stats = state.flights.stats();
    assert_eq!(stats.flights_started, 1);
    assert_eq!(stats.waiters_joined, READERS as u64 - 1);
    assert!(state.flights.is_empty());
    assert!(state.outcomes.is_empty(), "every outcome was taken");
}

/// A loader that fails on its first call and succeeds afterwards.
fn flaky_loader(host: &Arc<Host>, loads: &Arc<AtomicUsize>) -> Arc<Loader> {
    let (host, loads) = (host.clone(), loads.clone());
    Arc::new(move |keys: &[String]| {
        let call = loads.fetch_add(1, Ordering::SeqCst);
        if call == 0 {
            host.until_waiting(&keys[0], READERS - 1);
            thread::sleep(Duration::from_millis(20));
            Err("database timeout".to_owned())
        } else {
            thread::sleep(Duration::from_millis(20));
            Ok(vec![format!("value of {}", keys[0])])
        }
    })
}

#[test]
fn failed_load_promotes_the_next_reader() {
    let host = Arc::new(Host::new(AbandonPolicy::PromoteNext));
    let loads = Arc::new(AtomicUsize::new(0));
    let results = stampede(&host, "course:2", flaky_loader(&host, &loads));
    assert_eq!(loads.load(Ordering::SeqCst), 2);
    for r in &results {
        assert_eq!(r.as_deref(), Ok("value of course:2"));
    }
    let state = host.lock();
    let stats = state.flights.stats();
    assert_eq!(
        (stats.flights_started, stats.abandoned, stats.promoted),
        (1, 1, 1)
    );
    assert_eq!(stats.finished, 1);
    assert!(state.flights.is_empty());
}

#[test]
fn failed_load_releases_everyone_with_the_error() {
    let host = Arc::new(Host::new(AbandonPolicy::ReleaseAll));
    let loads = Arc::new(AtomicUsize::new(0));
    let results = stampede(&host, "course:3", flaky_loader(&host, &loads));
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let errors = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e == "database timeout"))
        .count();
    assert_eq!(errors, READERS, "the leader and its 63 waiters all fail");
    let state = host.lock();
    assert_eq!(state.released_with_error, READERS - 1);
    assert_eq!(state.flights.stats().abandoned, 1);
    assert!(state.flights.is_empty());
    assert!(state.store.is_empty());
}

#[test]
fn many_keys_many_threads_each_key_loaded_once() {
    const THREADS: usize = 16;
    const KEYS: usize = 300;
    const BATCH: usize = 25;
    let host = Arc::new(Host::new(AbandonPolicy::ReleaseAll));
    let loads: Arc<Vec<AtomicUsize>> = Arc::new((0..KEYS).map(|_| AtomicUsize::new(0)).collect());
    let loader: Arc<Loader> = {
        let loads = loads.clone();
        Arc::new(move |keys: &[String]| {
            for key in keys {
                let i: usize = key.trim_start_matches("k").parse().unwrap();
                loads[i].fetch_add(1, Ordering::SeqCst);
            }
            thread::sleep(Duration::from_millis(2));
            Ok(keys.iter().map(|k| format!("v{k}")).collect())
        })
    };
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (host, loader, barrier) = (host.clone(), loader.clone(), barrier.clone());
            thread::spawn(move || {
                // Each thread walks the keys in its own order.
                let stride = [1, 7, 11, 13, 17, 19, 23, 29][t % 8];
                let order: Vec<String> = (0..KEYS)
                    .map(|i| format!("k{}", (i * stride + t * 31) % KEYS))
                    .collect();
                barrier.wait();
                let mut seen = HashMap::new();
                for (n, chunk) in order.chunks(BATCH).enumerate() {
                    if (t + n) % 2 == 0 {
                        seen.extend(host.read_many(chunk, &*loader));
                    } else {
                        for key in chunk {
                            seen.insert(key.clone(), host.read(key, &*loader).unwrap());
                        }
                    }
                }
                seen
            })
        })
        .collect();
    for handle in handles {
        let seen = handle.join().unwrap();
        assert_eq!(seen.len(), KEYS);
        for (key, value) in seen {
            assert_eq!(value, format!("v{key}"));
        }
    }
    for (i, count) in loads.iter().enumerate() {
        assert_eq!(count.load(Ordering::SeqCst), 1, "key k{i}");
    }
    let state = host.lock();
    assert!(state.flights.is_empty());
    assert_eq!(state.flights.stats().flights_started, KEYS as u64);
    assert!(state.outcomes.is_empty());
}
