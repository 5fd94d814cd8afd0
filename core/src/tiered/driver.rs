//! The reference driver: one loop that runs a [`Read`] against a [`Host`]
//! (the host's tiers, loader, deserializer, clock and wake-ups).
//!
//! The driver is `async` so one loop serves both kinds of host: an async
//! host (tokio) awaits [`get`]; a blocking host, whose methods finish
//! without waiting, runs it with [`block_on`]. The core's tests, benches
//! and the example service use it; the Python and JS bindings have their
//! own small loops over the same protocol. See the [module docs](super)
//! for a complete host.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::request::RequestCache;
use crate::stampede::WaitId;

#[cfg(feature = "write-behind")]
use super::SealJob;
use super::{
    DecodeItem, Effect, Fetched, HostValue, InvalidKey, LeaseItem, Loaded, Next, Read, ReadError,
    ReadOptions, ReadResult, Step, StoreItem, TieredCache,
};

#[cfg(feature = "write-behind")]
/// A write of a read that the driver offers a host writing off the request
/// path ([`Host::write_behind`]): a store or delete as the core planned it,
/// or a value not yet sealed.
#[derive(Debug)]
pub enum WriteBehind {
    /// A store or a delete (a lease release), ready to issue.
    Effect(Effect),
    /// A loaded or back-filled value: seal it, then issue its stores.
    Seal(Box<SealJob>),
}

#[cfg(feature = "write-behind")]
impl WriteBehind {
    /// The writes to issue, in order (a [`SealJob`] is sealed here: call it
    /// off the request path).
    ///
    /// ```
    /// use stratacache::tiered::{driver::WriteBehind, Effect};
    /// let w = WriteBehind::Effect(Effect::Delete { tier: 0, keys: vec!["k".into()] });
    /// assert_eq!(w.into_effects().len(), 1);
    /// ```
    pub fn into_effects(self) -> Vec<Effect> {
        match self {
            WriteBehind::Effect(effect) => vec![effect],
            WriteBehind::Seal(job) => job.seal(),
        }
    }
}

/// What the driver needs from the host. Methods with a default are only
/// needed with the feature they serve (leases, several readers in one
/// process).
///
/// See the [module docs](super) for a host over a `HashMap`.
#[allow(async_fn_in_trait)] // hosts that need `Send` futures drive `Read` themselves
pub trait Host<V: Clone> {
    /// The host's error type (loader and tier errors), returned as is.
    type Error;

    /// Runs `f` with the shared cache (behind the host's lock, taken only
    /// for the call).
    fn cache<R>(&mut self, f: impl FnOnce(&mut TieredCache<V>) -> R) -> R;

    /// The time in milliseconds (any epoch, monotonic enough for TTLs).
    fn now(&mut self) -> u64 {
        0
    }

    /// A fresh random number for each read (XFetch, jitter, replicas).
    fn random(&mut self) -> u64 {
        0x5EED
    }

    /// Gets `keys` from remote tier `tier` in one batch: one outcome per
    /// key, in order. `Err` when the whole batch failed.
    async fn get_many(
        &mut self,
        tier: usize,
        keys: &[String],
    ) -> Result<Vec<Fetched<Self::Error>>, Self::Error>;

    /// Stores entries in `tier`, in the order given (chunks before their
    /// manifest).
    async fn set_many(&mut self, tier: usize, entries: Vec<StoreItem>) -> Result<(), Self::Error>;

    /// Deletes keys from `tier`. Needed with leases and deletes; the
    /// default does nothing.
    async fn delete_many(&mut self, _tier: usize, _keys: Vec<String>) -> Result<(), Self::Error> {
        Ok(())
    }

    /// `add`s each lease (taken: true). Needed with a lease policy; the
    /// default grants every lease.
    async fn add_many(
        &mut self,
        _tier: usize,
        items: &[LeaseItem],
    ) -> Result<Vec<bool>, Self::Error> {
        Ok(vec![true; items.len()])
    }

    /// Deserializes one payload.
    fn decode(&mut self, item: DecodeItem) -> Result<HostValue<V>, Self::Error>;

    /// Loads `keys` (one batch): one result per key, in order.
    async fn load(&mut self, keys: &[String]) -> Vec<Result<Loaded<V>, Self::Error>>;

    /// Sleeps `ms` (another process holds leases). The default returns at
    /// once.
    async fn sleep(&mut self, _ms: u64) {}

    /// Waits until each waiter is notified (another read in this process
    /// loads those keys), or a timeout. The default returns at once (the
    /// read then claims the keys again).
    async fn wait(&mut self, _waits: &[WaitId]) {}

    /// Wakes waiters of other reads.
    fn notify(&mut self, _waiters: Vec<WaitId>) {}

    #[cfg(feature = "write-behind")]
    /// Whether reads offer their writes to [`Host::write_behind`] (and hand
    /// their values out unsealed). The default: no, writes are awaited.
    fn writes_behind(&self) -> bool {
        false
    }

    #[cfg(feature = "write-behind")]
    /// Takes one write of a read off the request path (a bounded queue in
    /// front of a background task, say), in the order offered: stores
    /// before the lease releases that follow them. `Err(write)` gives it
    /// back for the driver to issue now (a full queue, for a delete).
    fn write_behind(&mut self, write: WriteBehind) -> Result<(), WriteBehind> {
        Err(write)
    }
}

/// Reads `keys` through every tier: starts the read, drives it, runs its
/// effects, and returns one result per key in order.
///
/// See the [module docs](super) for an example.
pub async fn get<V: Clone, H: Host<V>>(
    host: &mut H,
    keys: Vec<String>,
    options: ReadOptions,
    mut request: Option<&mut RequestCache<V>>,
) -> Result<Vec<ReadResult<V, H::Error>>, DriveError<H::Error>> {
    let (now, random) = (host.now(), host.random());
    let read = host
        .cache(|cache| cache.read(keys, options, now, random, request.as_deref()))
        .map_err(DriveError::InvalidKey)?;
    drive(host, read, request.take())
        .await
        .map_err(DriveError::Read)
}

/// Why [`get`] returned no results.
///
/// ```
/// use stratacache::tiered::driver::DriveError;
/// use stratacache::tiered::ReadError;
/// let error: DriveError<String> = DriveError::Read(ReadError::Unanswered { step: "load" });
/// assert!(error.to_string().contains("load"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum DriveError<E> {
    /// A key is not a valid remote key.
    #[error(transparent)]
    InvalidKey(InvalidKey),
    /// The read failed (strict mode).
    #[error(transparent)]
    Read(ReadError<E>),
}

/// Drives a started read to its end.
///
/// See [`get`], which starts the read and calls this.
pub async fn drive<V: Clone, H: Host<V>>(
    host: &mut H,
    mut read: Read<V, H::Error>,
    request: Option<&mut RequestCache<V>>,
) -> Result<Vec<ReadResult<V, H::Error>>, ReadError<H::Error>> {
    #[cfg(feature = "write-behind")]
    if host.writes_behind() {
        read.defer_sealing();
    }
    loop {
        run_effects(host, &mut read).await;
        let r = &mut read;
        match host.cache(move |cache| r.next(cache)) {
            Next::Fetch(fetch) => match host.get_many(fetch.tier(), fetch.keys()).await {
                Ok(values) => host.cache(|cache| fetch.answer(cache, values)),
                Err(error) => {
                    let now = host.now();
                    host.cache(|cache| fetch.fail(cache, error, now));
                }
            },
            Next::Decode(mut decode) => {
                let values = decode
                    .take_items()
                    .into_iter()
                    .map(|item| host.decode(item))
                    .collect();
                host.cache(|cache| decode.answer(cache, values));
            }
            Next::Lease(lease) => match host.add_many(lease.tier(), lease.items()).await {
                Ok(taken) => host.cache(|cache| lease.answer(cache, taken)),
                Err(error) => {
                    let now = host.now();
                    host.cache(|cache| lease.fail(cache, error, now));
                }
            },
            Next::Load(load) => {
                let started = host.now();
                let values = host.load(load.keys()).await;
                let took = host.now().saturating_sub(started);
                host.cache(|cache| load.answer(cache, values, took));
            }
            Next::Wait(wait) => {
                host.wait(wait.waits()).await;
                host.cache(|cache| wait.woke(cache));
            }
            Next::Sleep(sleep) => {
                host.sleep(sleep.ms()).await;
                let now = host.now();
                sleep.slept(now);
            }
            Next::Done => break,
        }
    }
    run_effects(host, &mut read).await;
    host.cache(|cache| read.finish(cache, request))
}

async fn run_effects<V: Clone, H: Host<V>>(host: &mut H, read: &mut Read<V, H::Error>) {
    #[cfg(feature = "write-behind")]
    run_behind(host, read).await;
    while let Some(effect) = read.poll_effect() {
        run_effect(host, effect).await;
    }
    let wakeups = host.cache(TieredCache::poll_wakeups);
    if !wakeups.is_empty() {
        host.notify(wakeups);
    }
}

/// A host writing behind: its read's unsealed values, then its stores and
/// deletes, offered to [`Host::write_behind`] in order (what it gives back
/// is issued now). Wake-ups stay for [`run_effects`].
#[cfg(feature = "write-behind")]
async fn run_behind<V: Clone, H: Host<V>>(host: &mut H, read: &mut Read<V, H::Error>) {
    if !host.writes_behind() {
        return;
    }
    // Unsealed values first: the effects polled after them (lease
    // releases) must not overtake their stores.
    let mut offered: Vec<WriteBehind> = read
        .take_seal_jobs()
        .into_iter()
        .map(|job| WriteBehind::Seal(Box::new(job)))
        .collect();
    let mut notify = Vec::new();
    while let Some(effect) = read.poll_effect() {
        match effect {
            Effect::Notify { waiters } => notify.extend(waiters),
            other => offered.push(WriteBehind::Effect(other)),
        }
    }
    for write in offered {
        if let Err(write) = host.write_behind(write) {
            for effect in write.into_effects() {
                run_effect(host, effect).await;
            }
        }
    }
    if !notify.is_empty() {
        host.notify(notify);
    }
}

/// Runs one effect: the single place where the driver issues writes
/// (back-fills, write-through, lease releases) and wake-ups. A failed
/// write is counted against its tier; a successful one ends its cool-down
/// ([`TieredCache::tier_succeeded`](super::TieredCache::tier_succeeded)).
///
/// ```
/// # use stratacache::tiered::{driver, Effect};
/// # async fn example<H: driver::Host<String>>(host: &mut H) {
/// driver::run_effect(host, Effect::Delete { tier: 0, keys: vec!["k".into()] }).await;
/// # }
/// ```
pub async fn run_effect<V: Clone, H: Host<V>>(host: &mut H, effect: Effect) {
    let (tier, result) = match effect {
        Effect::Store { tier, entries } => (tier, host.set_many(tier, entries).await),
        Effect::Delete { tier, keys } => (tier, host.delete_many(tier, keys).await),
        Effect::Notify { waiters } => {
            host.notify(waiters);
            return;
        }
    };
    if result.is_err() {
        let now = host.now();
        host.cache(|cache| cache.tier_failed(tier, now));
    } else {
        host.cache(|cache| cache.tier_succeeded(tier));
    }
}

/// Runs the write steps of [`TieredCache::set_all_tiers`] or
/// [`TieredCache::delete_all_tiers`].
///
/// ```
/// # use stratacache::tiered::{driver, Step};
/// # async fn example<H: driver::Host<String>>(host: &mut H, steps: Vec<Step>) {
/// driver::write(host, steps).await;
/// # }
/// ```
pub async fn write<V: Clone, H: Host<V>>(host: &mut H, steps: Vec<Step>) {
    for effect in steps.into_iter().filter_map(Effect::from_step) {
        run_effect(host, effect).await;
    }
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on this thread: the driver for a host whose
/// methods do not wait on an executor (blocking I/O, in-memory tiers).
///
/// ```
/// assert_eq!(stratacache::tiered::driver::block_on(async { 7 }), 7);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}
