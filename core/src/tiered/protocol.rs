//! The typed read protocol: [`Read`] hands the host one [`Next`] step at a
//! time; each step that needs an answer is a handle the host consumes with
//! that answer. Work that needs no answer ([`Effect`]: stores, deletes,
//! wake-ups) is drained from [`Read::poll_effect`], already in a safe order
//! (a value's chunks before its manifest).
//!
//! Modelled on rustls' unbuffered API and quinn-proto: the borrow checker
//! does the bookkeeping. A handle borrows the read, so the host cannot ask
//! for the next step before answering; `answer` takes the handle by value,
//! so it cannot answer twice; and each handle only offers its own answer,
//! so it cannot answer the wrong step:
//!
//! ```compile_fail
//! # use stratacache::tiered::*;
//! # let mut cache: TieredCache<String> =
//! #     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
//! let mut read = cache.read::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
//! if let Next::Fetch(fetch) = read.next(&mut cache) {
//!     fetch.answer(&mut cache, vec![Fetched::NotFound]);
//!     fetch.answer(&mut cache, vec![Fetched::NotFound]); // answered twice: `fetch` was moved
//! }
//! ```
//!
//! ```compile_fail
//! # use stratacache::tiered::*;
//! # let mut cache: TieredCache<String> =
//! #     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
//! let mut read = cache.read::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
//! if let Next::Fetch(fetch) = read.next(&mut cache) {
//!     let _ = read.next(&mut cache); // the fetch is not answered: `read` is still borrowed
//!     fetch.answer(&mut cache, vec![Fetched::NotFound]);
//! }
//! ```
//!
//! ```compile_fail
//! # use stratacache::tiered::*;
//! # let mut cache: TieredCache<String> =
//! #     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
//! let mut read = cache.read::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
//! if let Next::Fetch(fetch) = read.next(&mut cache) {
//!     fetch.answer(&mut cache, 3, vec![]); // a load's answer to a fetch: no such method
//! }
//! ```
//!
//! A handle dropped without an answer (the `#[must_use]` warning ignored)
//! ends the read: its claims are released and [`Read::finish`] returns
//! [`ReadError::Unanswered`].

use std::collections::VecDeque;
#[cfg(not(all(target_family = "wasm", not(target_feature = "atomics"))))]
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(not(all(target_family = "wasm", not(target_feature = "atomics"))))]
use std::sync::{Arc, Mutex};

use crate::request::RequestCache;
use crate::stampede::{LeadToken, WaitId};

use super::{
    DecodeItem, HostValue, LeaseItem, Loaded, RawRead, ReadResult, Step, StoreItem, TierFailure,
    TieredCache,
};

/// One key's outcome in a tier's batch answer.
///
/// ```
/// use stratacache::tiered::Fetched;
/// let answer: Vec<Fetched<String>> = vec![
///     Fetched::Found(b"envelope".to_vec()),
///     Fetched::NotFound,
///     Fetched::Failed("server 10.0.0.3:11211 down".to_string()),
/// ];
/// assert!(answer[2].is_failed());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched<E = String> {
    /// The tier holds these bytes under the key.
    Found(Vec<u8>),
    /// The tier does not hold the key.
    NotFound,
    /// The tier could not answer for this key (the server holding it is
    /// down); the key goes on to the next tier or the loader.
    Failed(E),
    /// The tier holds these bytes, already checked by the host
    /// (see [`super::Prechecker`]).
    #[cfg(feature = "precheck")]
    Prechecked(super::Prechecked),
}

impl<E> Fetched<E> {
    /// True for [`Fetched::Failed`].
    ///
    /// ```
    /// use stratacache::tiered::Fetched;
    /// assert!(!Fetched::<()>::NotFound.is_failed());
    /// ```
    pub fn is_failed(&self) -> bool {
        matches!(self, Fetched::Failed(_))
    }

    pub(super) fn found(self) -> Option<Vec<u8>> {
        match self {
            Fetched::Found(bytes) => Some(bytes),
            #[cfg(feature = "precheck")]
            Fetched::Prechecked(p) => Some(p.into_bytes()),
            _ => None,
        }
    }

    pub(super) fn into_error(self) -> Option<E> {
        match self {
            Fetched::Failed(error) => Some(error),
            _ => None,
        }
    }
}

impl<E> From<Option<Vec<u8>>> for Fetched<E> {
    /// `Some(bytes)` is found, `None` not found.
    ///
    /// ```
    /// use stratacache::tiered::Fetched;
    /// assert_eq!(Fetched::<()>::from(None), Fetched::NotFound);
    /// ```
    fn from(value: Option<Vec<u8>>) -> Self {
        match value {
            Some(bytes) => Fetched::Found(bytes),
            None => Fetched::NotFound,
        }
    }
}

/// An answer a [`RawRead`] (the FFI form) refused: the host answered a step
/// it was not asked, or with the wrong number of values. The read is left
/// as it was; answer the step it is waiting for.
///
/// ```
/// use stratacache::tiered::{AnswerError, TierConfig, TieredCache, TieredConfig, ReadOptions};
/// let mut cache: TieredCache<String> =
///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
/// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
/// let _fetch = read.next(&mut cache); // a fetch of "k" from tier 0
/// let err = read.loaded(&mut cache, vec![], 0).unwrap_err();
/// assert_eq!(err, AnswerError::WrongStep { expected: "fetch", answered: "load" });
/// assert!(err.to_string().contains("answered a load"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The read waits for another answer (or for none: call `next`).
    #[error("the read waits for the answer to its {expected} step, but the host answered a {answered} step")]
    WrongStep {
        /// The step the read waits for ("none": ask `next`).
        expected: &'static str,
        /// The step the host answered.
        answered: &'static str,
    },
    /// The fetch was answered for another tier.
    #[error("the read asked tier {asked}, but the host answered for tier {answered}")]
    WrongTier {
        /// The tier asked.
        asked: usize,
        /// The tier answered for.
        answered: usize,
    },
    /// One value per key (or item), in order, is expected.
    #[error("the {step} step asked for {expected} values, but the host gave {got}")]
    WrongCount {
        /// The step.
        step: &'static str,
        /// Values asked for.
        expected: usize,
        /// Values given.
        got: usize,
    },
}

impl AnswerError {
    pub(super) fn wrong_step(expected: &'static str, answered: &'static str) -> Self {
        AnswerError::WrongStep { expected, answered }
    }
}

/// A claim a dropped read leaves behind.
#[derive(Debug, Clone, Copy)]
pub(super) enum Abandon {
    Lead(LeadToken),
    Wait(WaitId),
}

/// Where dropped reads leave their claims for the cache to release on its
/// next call (a read holds no reference to the cache, whose lock the host
/// takes only per call).
#[derive(Debug, Clone, Default)]
pub(super) struct Reaper(Queue);

#[cfg(not(all(target_family = "wasm", not(target_feature = "atomics"))))]
type Queue = Arc<Claims>;
// WebAssembly without threads: no lock (std's single-threaded `Mutex` links
// an `assert_eq!` and its `Debug` formatting, 0.5 KB of the module).
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
type Queue = std::rc::Rc<std::cell::RefCell<Vec<Abandon>>>;

/// The claims of dropped reads, and whether there are any: every read
/// start looks, and almost always finds none, so it looks without the lock.
#[cfg(not(all(target_family = "wasm", not(target_feature = "atomics"))))]
#[derive(Debug, Default)]
pub(super) struct Claims {
    any: AtomicBool,
    queue: Mutex<Vec<Abandon>>,
}

impl Reaper {
    #[cfg(not(all(target_family = "wasm", not(target_feature = "atomics"))))]
    pub(super) fn push(&self, claims: Vec<Abandon>) {
        // A poisoned lock still holds valid data (plain ids).
        let mut queue = self.0.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.extend(claims);
        self.0.any.store(true, Ordering::Release);
    }

    #[cfg(not(all(target_family = "wasm", not(target_feature = "atomics"))))]
    pub(super) fn take(&self) -> Vec<Abandon> {
        if !self.0.any.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut queue = self.0.queue.lock().unwrap_or_else(|e| e.into_inner());
        self.0.any.store(false, Ordering::Release);
        std::mem::take(&mut queue)
    }

    #[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
    pub(super) fn push(&self, claims: Vec<Abandon>) {
        self.0.borrow_mut().extend(claims);
    }

    #[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
    pub(super) fn take(&self) -> Vec<Abandon> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}

/// Work for the host that needs no answer, drained with
/// [`Read::poll_effect`] in the order given (a value's chunks before its
/// manifest). Failures are reported with [`TieredCache::tier_failed`].
///
/// ```
/// use stratacache::tiered::Effect;
/// fn run(effect: Effect) {
///     match effect {
///         Effect::Store { tier, entries } => { /* set_many on tier */ }
///         Effect::Delete { tier, keys } => { /* delete_many on tier */ }
///         Effect::Notify { waiters } => { /* wake those readers */ }
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Write these entries to `tier` (best effort).
    Store {
        /// The tier.
        tier: usize,
        /// The entries, chunks before their manifest.
        entries: Vec<StoreItem>,
    },
    /// Delete these keys from `tier` (best effort).
    Delete {
        /// The tier.
        tier: usize,
        /// The keys.
        keys: Vec<String>,
    },
    /// Wake these waiters of other reads in this process.
    Notify {
        /// The waiters.
        waiters: Vec<WaitId>,
    },
}

impl Effect {
    /// The write steps of [`TieredCache::set_all_tiers`] and
    /// [`TieredCache::delete_all_tiers`] as effects.
    ///
    /// ```
    /// use stratacache::tiered::{Effect, Step};
    /// let effect = Effect::from_step(Step::Delete { tier: 0, keys: vec!["k".into()] });
    /// assert_eq!(effect, Some(Effect::Delete { tier: 0, keys: vec!["k".into()] }));
    /// ```
    pub fn from_step(step: Step) -> Option<Effect> {
        match step {
            Step::Store { tier, entries } => Some(Effect::Store { tier, entries }),
            Step::Delete { tier, keys } => Some(Effect::Delete { tier, keys }),
            Step::Notify { waiters } => Some(Effect::Notify { waiters }),
            _ => None,
        }
    }
}

/// Why a [`Read`] ended without results: the one failure channel.
///
/// ```
/// use stratacache::tiered::ReadError;
/// let error: ReadError<std::io::Error> = ReadError::Unanswered { step: "fetch" };
/// assert!(error.to_string().contains("fetch"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E> {
    /// A tier failed in strict mode.
    #[error(transparent)]
    Tier(TierFailure<E>),
    /// The host dropped a step's handle without answering it.
    #[error("the host dropped the read's {step} step without answering it")]
    Unanswered {
        /// The step.
        step: &'static str,
    },
}

/// One read in progress: the typed, hard-to-misuse protocol. Start it with
/// [`TieredCache::read`], drive it with [`next`](Read::next) and
/// [`poll_effect`](Read::poll_effect), end it with [`finish`](Read::finish).
/// `E` is the host's own error type (loader and tier errors).
///
/// The reference driver ([`super::driver`]) does all this; a host writing
/// its own loop looks like this:
///
/// ```
/// use stratacache::tiered::{Effect, Fetched, HostValue, Loaded, Next, ReadOptions, TierConfig, TieredCache, TieredConfig};
/// use stratacache::envelope::Codec;
/// use std::collections::HashMap;
///
/// let mut memcached: HashMap<String, Vec<u8>> = HashMap::new();
/// let mut cache: TieredCache<String> =
///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("memcached")])).unwrap();
/// let mut read = cache
///     .read::<std::io::Error>(vec!["greeting|v1".into()], ReadOptions::load(), 1_000, 42, None)
///     .unwrap();
/// let mut done = false;
/// while !done {
///     match read.next(&mut cache) {
///         Next::Fetch(fetch) => {
///             let found = fetch.keys().iter().map(|k| memcached.get(k).cloned().into()).collect();
///             fetch.answer(&mut cache, found);
///         }
///         Next::Decode(decode) => {
///             let values = decode.items().iter().map(|item| {
///                 Ok(HostValue::new(String::from_utf8_lossy(&item.payload).into_owned(), 1))
///             }).collect();
///             decode.answer(&mut cache, values);
///         }
///         Next::Load(load) => {
///             let values = load.keys().iter()
///                 .map(|_| Ok(Loaded::new("hello".to_string(), Codec::Raw, b"hello".to_vec())))
///                 .collect();
///             load.answer(&mut cache, values, 3);
///         }
///         Next::Done => done = true,
///         _ => unreachable!("no leases or waits without a lease policy or a second reader"),
///     }
///     // Effects after each step, and after the last.
///     while let Some(effect) = read.poll_effect() {
///         if let Effect::Store { entries, .. } = effect {
///             for e in entries { memcached.insert(e.key, e.value); }
///         }
///     }
/// }
/// let results = read.finish(&mut cache, None).unwrap();
/// assert_eq!(results[0].lookup.as_ref().cloned(), stratacache::Lookup::Hit("hello".to_string()));
/// assert_eq!(memcached.len(), 1); // written through
/// ```
#[must_use = "drive the read with `next` until `Next::Done`, then `finish` it"]
pub struct Read<V, E = String> {
    raw: RawRead<V, E>,
    effects: VecDeque<Effect>,
    /// The step whose handle was dropped unanswered.
    unanswered: Option<&'static str>,
}

/// The next step of a [`Read`]: a handle to answer, or the end.
#[must_use = "answer the step through its handle"]
pub enum Next<'r, V, E> {
    /// Get keys from a remote tier in one batch.
    Fetch(FetchStep<'r, V, E>),
    /// Deserialize payloads.
    Decode(DecodeStep<'r, V, E>),
    /// Take cross-process leases with `add`.
    Lease(LeaseStep<'r, V, E>),
    /// Call the loader for keys no tier had.
    Load(LoadStep<'r, V, E>),
    /// Wait for other reads in this process to load keys.
    Wait(WaitStep<'r, V, E>),
    /// Another process holds leases: sleep, then answer with the time.
    Sleep(SleepStep<'r, V, E>),
    /// The read is complete: drain the last effects and call
    /// [`Read::finish`].
    Done,
}

impl<V: Clone, E> Read<V, E> {
    pub(super) fn new(raw: RawRead<V, E>) -> Self {
        Read {
            raw,
            effects: VecDeque::new(),
            unanswered: None,
        }
    }

    /// The next step needing an answer. Effects met on the way are queued
    /// for [`poll_effect`](Read::poll_effect): drain them before waiting on
    /// anything (a wake-up in them may be what another reader waits for).
    ///
    /// ```
    /// use stratacache::tiered::{Next, ReadOptions, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read::<String>(vec!["k".into()], ReadOptions::get(), 0, 7, None).unwrap();
    /// let Next::Fetch(fetch) = read.next(&mut cache) else { unreachable!() };
    /// assert_eq!((fetch.tier(), fetch.keys()), (0, &["k".to_string()][..]));
    /// # fetch.answer(&mut cache, vec![stratacache::tiered::Fetched::NotFound]);
    /// ```
    pub fn next(&mut self, cache: &mut TieredCache<V>) -> Next<'_, V, E> {
        if let Some(step) = self.unanswered {
            // A handle was dropped unanswered: end the read, free its claims.
            self.abandon(cache, step);
            return Next::Done;
        }
        if self.raw.is_awaiting() {
            // Only reachable after `mem::forget` of a handle.
            self.abandon(cache, "unknown");
            return Next::Done;
        }
        loop {
            return match self.raw.next(cache) {
                Step::Fetch { tier, keys } => Next::Fetch(FetchStep {
                    read: Some(self),
                    tier,
                    keys,
                }),
                Step::Decode { items } => Next::Decode(DecodeStep {
                    read: Some(self),
                    items,
                }),
                Step::Lease { tier, items } => Next::Lease(LeaseStep {
                    read: Some(self),
                    tier,
                    items,
                }),
                Step::Load { keys } => Next::Load(LoadStep {
                    read: Some(self),
                    keys,
                }),
                Step::Wait { waits } => Next::Wait(WaitStep {
                    read: Some(self),
                    waits,
                }),
                Step::Sleep { ms } => Next::Sleep(SleepStep {
                    read: Some(self),
                    ms,
                }),
                Step::Done => Next::Done,
                Step::Store { tier, entries } => {
                    self.effects.push_back(Effect::Store { tier, entries });
                    continue;
                }
                Step::Delete { tier, keys } => {
                    self.effects.push_back(Effect::Delete { tier, keys });
                    continue;
                }
                Step::Notify { waiters } => {
                    self.effects.push_back(Effect::Notify { waiters });
                    continue;
                }
            };
        }
    }

    fn abandon(&mut self, cache: &mut TieredCache<V>, step: &'static str) {
        self.unanswered = Some(step);
        let waiters = self.raw.abandon(cache);
        if !waiters.is_empty() {
            self.effects.push_back(Effect::Notify { waiters });
        }
    }

    #[cfg(feature = "write-behind")]
    /// Hands this read's loaded and back-filled values out unsealed, as
    /// [`SealJob`](super::SealJob)s (see [`RawRead::defer_sealing`]): for a
    /// host that writes off the request path. Take them with
    /// [`Read::take_seal_jobs`] before running the effects polled after them.
    ///
    /// ```
    /// use stratacache::tiered::{ReadOptions, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<u8> = TieredCache::new(TieredConfig::new(vec![])).unwrap();
    /// let mut read = cache.read::<String>(vec![], ReadOptions::get(), 5, 7, None).unwrap();
    /// read.defer_sealing();
    /// assert!(read.take_seal_jobs().is_empty());
    /// ```
    pub fn defer_sealing(&mut self) {
        self.raw.defer_sealing();
    }

    #[cfg(feature = "write-behind")]
    /// The unsealed writes planned since the last call (see
    /// [`Read::defer_sealing`]).
    ///
    /// ```
    /// use stratacache::tiered::{ReadOptions, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<u8> = TieredCache::new(TieredConfig::new(vec![])).unwrap();
    /// let mut read = cache.read::<String>(vec![], ReadOptions::get(), 5, 7, None).unwrap();
    /// assert!(read.take_seal_jobs().is_empty());
    /// ```
    pub fn take_seal_jobs(&mut self) -> Vec<super::SealJob> {
        self.raw.take_seal_jobs()
    }

    /// The next effect to run (stores, deletes, wake-ups), in order.
    ///
    /// ```
    /// use stratacache::tiered::{Effect, Next, ReadOptions, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![])).unwrap();
    /// let mut read = cache.read::<String>(vec!["k".into()], ReadOptions::get(), 0, 7, None).unwrap();
    /// assert!(matches!(read.next(&mut cache), Next::Done));
    /// assert_eq!(read.poll_effect(), None); // a plain get of a miss writes nothing
    /// ```
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// The read's time (ms), moved on by sleeps and late tier failures.
    ///
    /// ```
    /// use stratacache::tiered::{ReadOptions, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<u8> = TieredCache::new(TieredConfig::new(vec![])).unwrap();
    /// let read = cache.read::<String>(vec![], ReadOptions::get(), 5, 7, None).unwrap();
    /// assert_eq!(read.now(), 5);
    /// ```
    pub fn now(&self) -> u64 {
        self.raw.now()
    }

    /// The keys of this read, in order.
    ///
    /// ```
    /// use stratacache::tiered::{ReadOptions, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<u8> = TieredCache::new(TieredConfig::new(vec![])).unwrap();
    /// let read = cache.read::<String>(vec!["a".into()], ReadOptions::get(), 5, 7, None).unwrap();
    /// assert_eq!(read.keys(), ["a".to_string()]);
    /// ```
    pub fn keys(&self) -> &[String] {
        self.raw.keys()
    }

    /// The results, in key order with the tier that answered each hit,
    /// after [`Next::Done`]. Hits from other tiers are put in `request`.
    /// Drain [`poll_effect`](Read::poll_effect) first (or after: the
    /// effects stay queued until the read is dropped).
    ///
    /// ```
    /// use stratacache::tiered::{Next, ReadOptions, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<u8> = TieredCache::new(TieredConfig::new(vec![])).unwrap();
    /// let mut read = cache.read::<String>(vec!["a".into()], ReadOptions::get(), 5, 7, None).unwrap();
    /// assert!(matches!(read.next(&mut cache), Next::Done));
    /// let results = read.finish(&mut cache, None).unwrap();
    /// assert!(results[0].lookup.is_miss());
    /// ```
    pub fn finish(
        mut self,
        cache: &mut TieredCache<V>,
        request: Option<&mut RequestCache<V>>,
    ) -> Result<Vec<ReadResult<V, E>>, ReadError<E>> {
        if let Some(step) = self.unanswered {
            let _ = self.raw.abandon(cache);
            return Err(ReadError::Unanswered { step });
        }
        self.raw.finish(cache, request).map_err(ReadError::Tier)
    }
}

impl<V, E> std::fmt::Debug for Read<V, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Read")
            .field("raw", &self.raw)
            .field("effects", &self.effects.len())
            .finish()
    }
}

/// Marks the read as abandoned when a handle is dropped unanswered.
fn dropped<V, E>(read: Option<&mut Read<V, E>>, step: &'static str) {
    if let Some(read) = read {
        read.unanswered = Some(step);
    }
}

/// Get [`keys`](FetchStep::keys) from remote tier [`tier`](FetchStep::tier)
/// in one batch, then [`answer`](FetchStep::answer) (or
/// [`fail`](FetchStep::fail) if the whole tier failed).
#[must_use = "answer the step: a handle dropped unanswered ends the read"]
pub struct FetchStep<'r, V, E> {
    read: Option<&'r mut Read<V, E>>,
    tier: usize,
    keys: Vec<String>,
}

impl<V: Clone, E> FetchStep<'_, V, E> {
    /// The tier to ask (index in the configuration).
    ///
    /// See [`Read::next`] for an example.
    pub fn tier(&self) -> usize {
        self.tier
    }

    /// The keys to get, in order.
    ///
    /// See [`Read::next`] for an example.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The tier's answer: one [`Fetched`] per key, in order. Failed keys go
    /// to the next tier; the others are kept.
    ///
    /// # Panics
    /// If `values` does not have one entry per key.
    ///
    /// ```
    /// use stratacache::tiered::{Fetched, Next, ReadOptions, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read::<String>(vec!["a".into(), "b".into()], ReadOptions::get(), 0, 7, None).unwrap();
    /// let Next::Fetch(fetch) = read.next(&mut cache) else { unreachable!() };
    /// fetch.answer(&mut cache, vec![Fetched::NotFound, Fetched::Failed("node down".into())]);
    /// assert!(matches!(read.next(&mut cache), Next::Done));
    /// ```
    pub fn answer(mut self, cache: &mut TieredCache<V>, values: Vec<Fetched<E>>) {
        let read = self.read.take().expect("a handle answers once");
        if let Err(error) = read.raw.fetched_outcomes(cache, self.tier, values) {
            panic!("{error}");
        }
    }

    /// The whole batch failed, with the host's error: the read goes on
    /// without the tier (or, in strict mode, fails). `now` is when the
    /// failure was known (a timeout's end).
    ///
    /// ```
    /// use stratacache::tiered::{Next, ReadOptions, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read::<&str>(vec!["a".into()], ReadOptions::get(), 0, 7, None).unwrap();
    /// let Next::Fetch(fetch) = read.next(&mut cache) else { unreachable!() };
    /// fetch.fail(&mut cache, "connection refused", 50);
    /// assert!(matches!(read.next(&mut cache), Next::Done));
    /// assert_eq!(cache.tier_stats()[0].errors, 1);
    /// ```
    pub fn fail(mut self, cache: &mut TieredCache<V>, error: E, now: u64) {
        let read = self.read.take().expect("a handle answers once");
        read.raw.failed(cache, self.tier, error, now);
    }
}

impl<V, E> Drop for FetchStep<'_, V, E> {
    fn drop(&mut self) {
        dropped(self.read.take(), "fetch");
    }
}

/// Deserialize [`items`](DecodeStep::items), then
/// [`answer`](DecodeStep::answer).
#[must_use = "answer the step: a handle dropped unanswered ends the read"]
pub struct DecodeStep<'r, V, E> {
    read: Option<&'r mut Read<V, E>>,
    items: Vec<DecodeItem>,
}

impl<V: Clone, E> DecodeStep<'_, V, E> {
    /// The payloads, verified and decompressed.
    ///
    /// See [`Read`] for an example.
    pub fn items(&self) -> &[DecodeItem] {
        &self.items
    }

    /// Takes the payloads out (to deserialize them without copying); the
    /// handle keeps their count.
    ///
    /// ```
    /// # use stratacache::tiered::DecodeStep;
    /// fn decode(mut step: DecodeStep<'_, String, String>) -> usize {
    ///     let items = step.take_items();
    ///     items.len()
    /// #   // (the step is dropped unanswered here only in this example)
    /// }
    /// ```
    pub fn take_items(&mut self) -> Vec<DecodeItem> {
        std::mem::take(&mut self.items)
    }

    /// One result per item, in order; an `Err` is counted and the key is a
    /// miss.
    ///
    /// # Panics
    /// If `values` does not have one entry per item.
    ///
    /// See [`Read`] for an example.
    pub fn answer(mut self, cache: &mut TieredCache<V>, values: Vec<Result<HostValue<V>, E>>) {
        let read = self.read.take().expect("a handle answers once");
        if let Err(error) = read.raw.decoded(cache, values) {
            panic!("{error}");
        }
    }
}

impl<V, E> Drop for DecodeStep<'_, V, E> {
    fn drop(&mut self) {
        dropped(self.read.take(), "decode");
    }
}

/// Try to take [`items`](LeaseStep::items) with `add` in
/// [`tier`](LeaseStep::tier), then [`answer`](LeaseStep::answer) or
/// [`fail`](LeaseStep::fail).
#[must_use = "answer the step: a handle dropped unanswered ends the read"]
pub struct LeaseStep<'r, V, E> {
    read: Option<&'r mut Read<V, E>>,
    tier: usize,
    items: Vec<LeaseItem>,
}

impl<V: Clone, E> LeaseStep<'_, V, E> {
    /// The tier holding leases.
    ///
    /// See [`super::driver`] for a driver that answers leases.
    pub fn tier(&self) -> usize {
        self.tier
    }

    /// The leases to `add`.
    ///
    /// See [`super::driver`] for a driver that answers leases.
    pub fn items(&self) -> &[LeaseItem] {
        &self.items
    }

    /// For each item, whether `add` took it.
    ///
    /// # Panics
    /// If `taken` does not have one entry per item.
    ///
    /// See [`super::driver`] for a driver that answers leases.
    pub fn answer(mut self, cache: &mut TieredCache<V>, taken: Vec<bool>) {
        let read = self.read.take().expect("a handle answers once");
        if let Err(error) = read.raw.leased(cache, taken) {
            panic!("{error}");
        }
    }

    /// The lease tier failed: the keys are loaded without leases.
    ///
    /// See [`super::driver`] for a driver that answers leases.
    pub fn fail(mut self, cache: &mut TieredCache<V>, error: E, now: u64) {
        let read = self.read.take().expect("a handle answers once");
        read.raw.failed(cache, self.tier, error, now);
    }
}

impl<V, E> Drop for LeaseStep<'_, V, E> {
    fn drop(&mut self) {
        dropped(self.read.take(), "lease");
    }
}

/// Call the loader for [`keys`](LoadStep::keys) (one batch), then
/// [`answer`](LoadStep::answer).
#[must_use = "answer the step: a handle dropped unanswered ends the read"]
pub struct LoadStep<'r, V, E> {
    read: Option<&'r mut Read<V, E>>,
    keys: Vec<String>,
}

impl<V: Clone, E> LoadStep<'_, V, E> {
    /// The keys to load, in order.
    ///
    /// See [`Read`] for an example.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// One result per key, in order, and how long the loader took (ms; the
    /// recompute cost early refresh uses). An `Err` is the host's error for
    /// that key, returned in its [`ReadResult`].
    ///
    /// # Panics
    /// If `values` does not have one entry per key.
    ///
    /// See [`Read`] for an example.
    pub fn answer(
        mut self,
        cache: &mut TieredCache<V>,
        values: Vec<Result<Loaded<V>, E>>,
        load_ms: u64,
    ) {
        let read = self.read.take().expect("a handle answers once");
        if let Err(error) = read.raw.loaded(cache, values, load_ms) {
            panic!("{error}");
        }
    }
}

impl<V, E> Drop for LoadStep<'_, V, E> {
    fn drop(&mut self) {
        dropped(self.read.take(), "load");
    }
}

/// Wait until each of [`waits`](WaitStep::waits) is notified (another read
/// in this process is loading those keys), then [`woke`](WaitStep::woke).
#[must_use = "answer the step: a handle dropped unanswered ends the read"]
pub struct WaitStep<'r, V, E> {
    read: Option<&'r mut Read<V, E>>,
    waits: Vec<WaitId>,
}

impl<V: Clone, E> WaitStep<'_, V, E> {
    /// The waiter ids, as the leading read's [`Effect::Notify`] names them.
    ///
    /// See [`super::driver`] for a driver that waits.
    pub fn waits(&self) -> &[WaitId] {
        &self.waits
    }

    /// Every waiter was notified, or the host stopped waiting (a timeout).
    ///
    /// See [`super::driver`] for a driver that waits.
    pub fn woke(mut self, cache: &mut TieredCache<V>) {
        let read = self.read.take().expect("a handle answers once");
        if let Err(error) = read.raw.woke(cache) {
            panic!("{error}");
        }
    }
}

impl<V, E> Drop for WaitStep<'_, V, E> {
    fn drop(&mut self) {
        dropped(self.read.take(), "wait");
    }
}

/// Sleep [`ms`](SleepStep::ms), then [`slept`](SleepStep::slept).
#[must_use = "answer the step: a handle dropped unanswered ends the read"]
pub struct SleepStep<'r, V, E> {
    read: Option<&'r mut Read<V, E>>,
    ms: u64,
}

impl<V: Clone, E> SleepStep<'_, V, E> {
    /// How long to sleep.
    ///
    /// See [`super::driver`] for a driver that sleeps.
    pub fn ms(&self) -> u64 {
        self.ms
    }

    /// The time after sleeping; the keys waiting on leases are fetched again.
    ///
    /// See [`super::driver`] for a driver that sleeps.
    pub fn slept(mut self, now: u64) {
        let read = self.read.take().expect("a handle answers once");
        if let Err(error) = read.raw.slept(now) {
            panic!("{error}");
        }
    }
}

impl<V, E> Drop for SleepStep<'_, V, E> {
    fn drop(&mut self) {
        dropped(self.read.take(), "sleep");
    }
}
