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

pub mod driver;
mod protocol;
mod read;

pub use protocol::{
    AnswerError, DecodeStep, Effect, FetchStep, Fetched, LeaseStep, LoadStep, Next, Read,
    ReadError, SleepStep, WaitStep,
};
pub use read::{RawRead, ReadResult, Source};

use protocol::{Abandon, Reaper};

use crate::quote::Quoted;
use hashbrown::HashMap;

use crate::chunk::{
    self, ManifestLimits, MEMCACHED_VALUE_LIMIT, MIN_ITEM_LIMIT, WORKERS_KV_VALUE_LIMIT,
};
use crate::envelope::{
    self, Codec, DecodeOptions, EncodeOptions, EnvelopeHeader, Keyring, DEFAULT_COMPRESS_AT,
};
use crate::key::{is_valid_memcached_key, MEMCACHED_MAX_KEY_LEN};
use crate::local::{Expiry, LocalCache, LocalCacheError};
use crate::lookup::Lookup;
use crate::namespace::Namespace;
use crate::request::RequestCache;
use crate::stampede::{
    jitter_ttl, replica_keys, should_refresh_early, AbandonPolicy, LeasePolicy, SingleFlight,
    WaitId,
};
use crate::stats::{ReadStats, TierStats};

/// The most remote tiers one cache may have.
pub const MAX_TIERS: usize = 8;

/// One remote tier as the core sees it: limits and policies, no connection.
#[derive(Debug, Clone, PartialEq)]
pub struct TierConfig {
    /// A name for stats and messages ("memcached", "s3").
    pub name: String,
    /// The largest item the tier stores, in bytes; larger values are chunked.
    pub item_limit: usize,
    /// The longest TTL the tier accepts (memcached: 30 days).
    pub max_ttl_ms: Option<u64>,
    /// The shortest TTL the tier accepts (Workers KV: 60 s); shorter ones are
    /// raised to it (the envelope's own expiry still decides what is served).
    pub min_ttl_ms: u64,
    /// A storage tier (S3, a filesystem) keeps entries with no TTL; the
    /// envelope's expiry decides what is served.
    pub storage: bool,
    /// Write values found in slower tiers back into this one.
    pub backfill: bool,
    /// Store each key under this many replica keys and read one at random,
    /// to spread a hot key over memcached nodes (1: no replicas).
    pub replicas: u8,
    /// Use this tier's `add` for cross-process leases (see [`LeasePolicy`]).
    pub leases: bool,
}

impl TierConfig {
    /// memcached: 1 MiB items (less overhead), 30-day TTL cap.
    pub fn memcached(name: &str) -> Self {
        TierConfig {
            name: name.to_owned(),
            item_limit: MEMCACHED_VALUE_LIMIT,
            max_ttl_ms: Some(30 * 24 * 3600 * 1000),
            min_ttl_ms: 1000,
            storage: false,
            backfill: true,
            replicas: 1,
            leases: false,
        }
    }

    /// Redis: items up to 512 MiB; chunk above 16 MiB to keep latency flat.
    pub fn redis(name: &str) -> Self {
        TierConfig {
            item_limit: 16 * 1024 * 1024,
            max_ttl_ms: None,
            min_ttl_ms: 1,
            ..TierConfig::memcached(name)
        }
    }

    /// Cloudflare Workers KV: 25 MiB values, 60 s minimum expiration TTL.
    pub fn workers_kv(name: &str) -> Self {
        TierConfig {
            item_limit: WORKERS_KV_VALUE_LIMIT,
            max_ttl_ms: None,
            min_ttl_ms: 60_000,
            ..TierConfig::memcached(name)
        }
    }

    /// A storage tier (S3, filesystem): no TTL, large objects, not
    /// back-filled (it is the slowest tier).
    pub fn storage(name: &str) -> Self {
        TierConfig {
            item_limit: 256 * 1024 * 1024,
            max_ttl_ms: None,
            min_ttl_ms: 0,
            storage: true,
            backfill: false,
            ..TierConfig::memcached(name)
        }
    }

    /// The TTL to write with, for a value whose envelope expires at
    /// `hard_expiry_ms` (None: never). `None` means "no TTL".
    fn ttl_for(&self, hard_expiry_ms: Option<u64>, now: u64) -> Option<u64> {
        if self.storage {
            return None;
        }
        let ttl = hard_expiry_ms.map(|at| at.saturating_sub(now).max(self.min_ttl_ms).max(1));
        match (ttl, self.max_ttl_ms) {
            (Some(ttl), Some(max)) => Some(ttl.min(max)),
            (None, Some(max)) => Some(max),
            (ttl, None) => ttl,
        }
    }
}

/// After `failures_to_trip` failures in a row a tier is skipped for
/// `cooldown_ms`; then one read probes it, and a success lets it back. An
/// overloaded memcached is not hammered harder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CooldownPolicy {
    /// Consecutive failures that start a cool-down.
    pub failures_to_trip: u32,
    /// How long the tier is skipped.
    pub cooldown_ms: u64,
}

impl Default for CooldownPolicy {
    fn default() -> Self {
        CooldownPolicy {
            failures_to_trip: 3,
            cooldown_ms: 5_000,
        }
    }
}

/// The local (in-process) tier's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTierConfig {
    /// Most entries held.
    pub max_entries: usize,
    /// Most total weight held (payload bytes, as the host weighs values).
    pub max_weight: u64,
    /// Longest time a value is kept locally (it is also never kept past its
    /// envelope's hard expiry).
    pub ttl_ms: u64,
}

impl Default for LocalTierConfig {
    fn default() -> Self {
        LocalTierConfig {
            max_entries: 10_000,
            max_weight: 64 * 1024 * 1024,
            ttl_ms: 60_000,
        }
    }
}

/// Everything a [`TieredCache`] needs to know; see the field docs. Build it
/// with [`TieredConfig::new`] and change what differs from the defaults.
#[derive(Debug, Clone)]
pub struct TieredConfig {
    /// Remote tiers, fastest first (memcached, then Redis, then storage).
    pub tiers: Vec<TierConfig>,
    /// The local tier, or `None` for no local tier.
    pub local: Option<LocalTierConfig>,
    /// The request-cache namespace the tiered cache uses.
    pub request_namespace: Namespace,
    /// Signing keys: values are signed with the first, and accepted if signed
    /// with any. With a keyring, unsigned or badly signed values are refused.
    pub keyring: Option<Keyring>,
    /// Compress payloads of at least this many bytes (when it pays).
    pub compress_at: Option<usize>,
    /// TTL of loaded values when the read does not say (`None`: no expiry).
    pub default_ttl_ms: Option<u64>,
    /// How long past its TTL a value may still be served while one reader
    /// refreshes it (stale-while-revalidate). 0: never serve stale.
    pub stale_ms: u64,
    /// Spread expiries by up to this fraction of the TTL (0.1 = ±10%).
    pub ttl_jitter: f64,
    /// XFetch's β: larger refreshes earlier; 0 turns early refresh off.
    pub xfetch_beta: f64,
    /// How long a reader that was handed a refresh has before another may be.
    pub refresh_timeout_ms: u64,
    /// Cross-process leases on cold keys (needs a tier with `leases`).
    pub lease: Option<LeasePolicy>,
    /// Skipping of failing tiers.
    pub cooldown: CooldownPolicy,
    /// Strict mode: a tier error fails the read instead of degrading to the
    /// next tier or the loader.
    pub strict: bool,
    /// Largest payload accepted from a remote tier.
    pub max_payload_len: usize,
}

impl TieredConfig {
    /// Defaults: a local tier of 10,000 entries / 64 MiB / 60 s, compression
    /// from 1 KiB, no signing, 5-minute TTL, ±10% jitter, XFetch β = 1.
    pub fn new(tiers: Vec<TierConfig>) -> Self {
        TieredConfig {
            tiers,
            local: Some(LocalTierConfig::default()),
            request_namespace: Namespace::internal("request"),
            keyring: None,
            compress_at: Some(DEFAULT_COMPRESS_AT),
            default_ttl_ms: Some(300_000),
            stale_ms: 0,
            ttl_jitter: 0.1,
            xfetch_beta: 1.0,
            refresh_timeout_ms: 30_000,
            lease: None,
            cooldown: CooldownPolicy::default(),
            strict: false,
            max_payload_len: envelope::DEFAULT_MAX_PAYLOAD_LEN,
        }
    }
}

/// Why a [`TieredConfig`] was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// More than [`MAX_TIERS`] remote tiers.
    #[error("{0} remote tiers configured; at most {MAX_TIERS} are supported")]
    TooManyTiers(usize),
    /// A tier's item limit is too small to hold a chunk manifest.
    #[error("tier {} has an item limit of {limit} bytes; the minimum is {MIN_ITEM_LIMIT}", Quoted(.name))]
    ItemLimitTooSmall {
        /// The tier.
        name: String,
        /// Its item limit.
        limit: usize,
    },
    /// A tier has no name.
    #[error("tier {0} has an empty name: name it after its server, e.g. \"memcached\"")]
    UnnamedTier(usize),
    /// `replicas` is zero.
    #[error("tier {} has 0 replicas: use 1 for no replicas", Quoted(.0))]
    ZeroReplicas(String),
    /// `ttl_jitter` or `xfetch_beta` out of range.
    #[error("{field} is {value}; it must be {range}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// Its value.
        value: f64,
        /// The accepted range.
        range: &'static str,
    },
    /// A lease policy but no tier to hold leases.
    #[error("a lease policy is set but no tier has `leases` on: turn it on for the memcached or Redis tier")]
    NoLeaseTier,
    /// The local tier's bounds are invalid.
    #[error("local tier: {0}")]
    Local(#[from] LocalCacheError),
}

/// A value the host deserialized from a payload, with its weight for the
/// local tier (the payload length is a good weight).
#[derive(Debug, Clone, PartialEq)]
pub struct HostValue<V> {
    /// The value.
    pub value: V,
    /// Its weight for the local tier's weight bound.
    pub weight: u64,
}

impl<V> HostValue<V> {
    /// A value and its weight.
    pub fn new(value: V, weight: u64) -> Self {
        HostValue { value, weight }
    }
}

/// A value the host's loader produced, serialized by the host for the
/// remote tiers.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<V> {
    /// The value as the host uses it.
    pub value: V,
    /// How `payload` is serialized.
    pub codec: Codec,
    /// The serialized value.
    pub payload: Vec<u8>,
    /// Weight for the local tier; defaults to the payload length.
    pub weight: u64,
}

impl<V> Loaded<V> {
    /// A loaded value; its weight is the payload length.
    pub fn new(value: V, codec: Codec, payload: Vec<u8>) -> Self {
        let weight = payload.len() as u64;
        Loaded {
            value,
            codec,
            payload,
            weight,
        }
    }
}

/// A payload for the host to deserialize (see [`Step::Decode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeItem {
    /// The position of the key in the read.
    pub index: usize,
    /// The key.
    pub key: String,
    /// How the payload is serialized.
    pub codec: Codec,
    /// The payload, verified and decompressed.
    pub payload: Vec<u8>,
}

/// One entry for the host to write (see [`Step::Store`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreItem {
    /// The key, as given to the tier.
    pub key: String,
    /// The bytes (an envelope, a manifest or a chunk).
    pub value: Vec<u8>,
    /// TTL to store with; `None` for none.
    pub ttl_ms: Option<u64>,
}

/// One lease for the host to try to take with `add` (see [`Step::Lease`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseItem {
    /// The lease key.
    pub key: String,
    /// A token identifying this reader (the value to `add`).
    pub token: Vec<u8>,
    /// TTL of the lease.
    pub ttl_ms: u64,
}

/// What the host must do next for a [`Read`] (or a write).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Get these keys from remote tier `tier` in one batch, then call
    /// [`RawRead::fetched`] with one `Option<Vec<u8>>` per key, in order (or
    /// [`RawRead::failed`] if the tier failed).
    Fetch {
        /// Index of the tier in [`TieredConfig::tiers`].
        tier: usize,
        /// Keys to get.
        keys: Vec<String>,
    },
    /// Deserialize these payloads, then call [`RawRead::decoded`] with one
    /// result per item, in order.
    Decode {
        /// The payloads.
        items: Vec<DecodeItem>,
    },
    /// Try to take these leases with `add` in `tier`, then call
    /// [`RawRead::leased`] with one `bool` (taken) per item, or [`RawRead::failed`].
    Lease {
        /// The tier holding leases.
        tier: usize,
        /// The leases.
        items: Vec<LeaseItem>,
    },
    /// Another process holds the lease: wait this long, then call
    /// [`RawRead::slept`] with the new time.
    Sleep {
        /// How long to wait.
        ms: u64,
    },
    /// Call the loader for these keys (one batch), then [`RawRead::loaded`].
    Load {
        /// Keys to load.
        keys: Vec<String>,
    },
    /// Wake these waiters of other reads: their values are ready (or their
    /// leader failed and they should retry).
    Notify {
        /// The waiters.
        waiters: Vec<WaitId>,
    },
    /// Wait until each of these waiters is notified (another read in this
    /// process is loading their keys), then call [`RawRead::woke`].
    Wait {
        /// Waiter ids, as [`Step::Notify`] of the leading read will name them.
        waits: Vec<WaitId>,
    },
    /// Write these entries to `tier` (best effort: report a failure with
    /// [`TieredCache::tier_failed`], nothing else depends on it).
    Store {
        /// The tier.
        tier: usize,
        /// The entries.
        entries: Vec<StoreItem>,
    },
    /// Delete these keys from `tier` (best effort).
    Delete {
        /// The tier.
        tier: usize,
        /// The keys.
        keys: Vec<String>,
    },
    /// The read is complete: call [`RawRead::finish`].
    Done,
}

/// Options of one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadOptions {
    /// Call the loader for keys no tier has (read-through). Off: plain get.
    pub load: bool,
    /// Skip the local and remote tiers and load (edx-django-utils'
    /// `force_cache_miss`, and how refreshes are done). The loaded value is
    /// written to every tier.
    pub force_miss: bool,
    /// Expiry of loaded values (`Default`: the config's `default_ttl_ms`).
    pub ttl: Expiry,
    /// Skip the request tier for this read.
    pub skip_request_tier: bool,
}

impl ReadOptions {
    /// A plain get: tiers only, no loader.
    pub fn get() -> Self {
        ReadOptions::default()
    }

    /// Read-through: tiers, then the loader.
    pub fn load() -> Self {
        ReadOptions {
            load: true,
            ..ReadOptions::default()
        }
    }

    /// Load and write every tier without reading any (refresh, force-miss).
    pub fn refresh() -> Self {
        ReadOptions {
            load: true,
            force_miss: true,
            ..ReadOptions::default()
        }
    }
}

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cache key {} is not a valid memcached key ({reason}): build keys with stratacache's key builder, or pass arbitrary strings through `safe_key`", Quoted(.shown))]
pub struct InvalidKey {
    /// The key, cut to 80 characters for the message.
    pub shown: String,
    /// What is wrong.
    pub reason: &'static str,
}

pub(crate) fn check_key(key: &str) -> Result<(), InvalidKey> {
    if is_valid_memcached_key(key) {
        return Ok(());
    }
    let reason = if key.is_empty() {
        "empty"
    } else if key.len() > MEMCACHED_MAX_KEY_LEN {
        "longer than 250 bytes"
    } else {
        "has a space, control or non-ASCII character"
    };
    Err(InvalidKey {
        shown: key.chars().take(80).collect(),
        reason,
    })
}

/// A remote tier failed and the cache is in strict mode.
///
/// ```
/// use stratacache::tiered::TierFailure;
/// let failure = TierFailure { tier: 0, tier_name: "memcached".into(), message: "timed out" };
/// assert_eq!(failure.to_string(), "tier \"memcached\" failed in strict mode: timed out");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tier {} failed in strict mode: {message}", Quoted(.tier_name))]
pub struct TierFailure<E = String> {
    /// The tier's index.
    pub tier: usize,
    /// The tier's name.
    pub tier_name: String,
    /// The host's error.
    pub message: E,
}

/// A value in the local tier, with what refresh decisions need.
struct LocalEntry<V> {
    value: V,
    soft_expiry_ms: Option<u64>,
    recompute_cost_ms: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct TierHealth {
    consecutive_failures: u32,
    cooling_until: u64,
}

/// The shared state of a tiered cache in one process: configuration, local
/// tier, single-flight bookkeeping, tier health and counters. Bindings keep
/// one per process behind a lock taken only for the duration of each call.
pub struct TieredCache<V> {
    config: TieredConfig,
    local: Option<LocalCache<String, LocalEntry<V>>>,
    flights: SingleFlight<String>,
    /// Values handed from a leading read to the reads waiting for it.
    handoff: HashMap<WaitId, V>,
    /// Keys a reader was handed a refresh of, until when: one refresh per key
    /// per process at a time.
    refresh_claims: HashMap<String, u64>,
    health: Vec<TierHealth>,
    tier_stats: Vec<TierStats>,
    read_stats: ReadStats,
    next_token: u64,
    /// Claims of reads dropped before they finished.
    reaper: Reaper,
    /// Waiters of those reads' flights, for the next read to wake.
    wakeups: Vec<WaitId>,
}

impl<V: Clone> TieredCache<V> {
    /// A tiered cache with `config`, after checking it.
    pub fn new(config: TieredConfig) -> Result<Self, ConfigError> {
        if config.tiers.len() > MAX_TIERS {
            return Err(ConfigError::TooManyTiers(config.tiers.len()));
        }
        for (i, tier) in config.tiers.iter().enumerate() {
            if tier.name.is_empty() {
                return Err(ConfigError::UnnamedTier(i));
            }
            if tier.item_limit < MIN_ITEM_LIMIT {
                return Err(ConfigError::ItemLimitTooSmall {
                    name: tier.name.clone(),
                    limit: tier.item_limit,
                });
            }
            if tier.replicas == 0 {
                return Err(ConfigError::ZeroReplicas(tier.name.clone()));
            }
        }
        if !(0.0..1.0).contains(&config.ttl_jitter) {
            return Err(ConfigError::OutOfRange {
                field: "ttl_jitter",
                value: config.ttl_jitter,
                range: "at least 0 and below 1",
            });
        }
        if !(config.xfetch_beta.is_finite() && config.xfetch_beta >= 0.0) {
            return Err(ConfigError::OutOfRange {
                field: "xfetch_beta",
                value: config.xfetch_beta,
                range: "finite and at least 0",
            });
        }
        if config.lease.is_some() && !config.tiers.iter().any(|t| t.leases) {
            return Err(ConfigError::NoLeaseTier);
        }
        let local = match config.local {
            Some(local) => Some(
                LocalCache::new(local.max_entries, local.max_weight)?
                    .with_default_ttl(Some(local.ttl_ms))?,
            ),
            None => None,
        };
        let tiers = config.tiers.len();
        Ok(TieredCache {
            config,
            local,
            flights: SingleFlight::new(),
            handoff: HashMap::new(),
            refresh_claims: HashMap::new(),
            health: vec![TierHealth::default(); tiers],
            tier_stats: vec![TierStats::default(); tiers],
            read_stats: ReadStats::default(),
            next_token: 0,
            reaper: Reaper::default(),
            wakeups: Vec::new(),
        })
    }

    /// Starts a read of `keys` (any number, duplicates allowed) at `now` (ms).
    /// `random` seeds this read's random choices (XFetch, jitter, replicas);
    /// pass a fresh random number each time. Request-tier and local-tier hits
    /// are answered here; drive the rest with [`Read::next`] (or hand the
    /// read to the [`driver`]). `E` is the host's error type.
    ///
    /// ```
    /// use stratacache::tiered::{Next, ReadOptions, TieredCache, TieredConfig};
    /// use stratacache::local::Expiry;
    /// use stratacache::tiered::Loaded;
    /// use stratacache::envelope::Codec;
    /// let mut cache: TieredCache<String> = TieredCache::new(TieredConfig::new(vec![])).unwrap();
    /// let _ = cache.set_all_tiers("k", Loaded::new("v".into(), Codec::Raw, b"v".to_vec()), Expiry::Default, 0, 1, None);
    /// let mut read = cache.read::<String>(vec!["k".into()], ReadOptions::get(), 1, 2, None).unwrap();
    /// assert!(matches!(read.next(&mut cache), Next::Done)); // a local hit
    /// assert_eq!(read.finish(&mut cache, None).unwrap()[0].lookup.as_ref().cloned(), stratacache::Lookup::Hit("v".to_string()));
    /// ```
    pub fn read<E>(
        &mut self,
        keys: Vec<String>,
        options: ReadOptions,
        now: u64,
        random: u64,
        request: Option<&RequestCache<V>>,
    ) -> Result<Read<V, E>, InvalidKey> {
        RawRead::start(self, keys, options, now, random, request).map(Read::new)
    }

    /// [`read`](TieredCache::read) in its untyped form, for FFI bindings:
    /// each reply is checked at run time ([`AnswerError`]).
    ///
    /// ```
    /// use stratacache::tiered::{ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::get(), 0, 7, None).unwrap();
    /// assert_eq!(read.next(&mut cache), Step::Fetch { tier: 0, keys: vec!["k".into()] });
    /// read.fetched(&mut cache, 0, vec![None]).unwrap();
    /// assert_eq!(read.next(&mut cache), Step::Done);
    /// ```
    pub fn read_raw<E>(
        &mut self,
        keys: Vec<String>,
        options: ReadOptions,
        now: u64,
        random: u64,
        request: Option<&RequestCache<V>>,
    ) -> Result<RawRead<V, E>, InvalidKey> {
        RawRead::start(self, keys, options, now, random, request)
    }

    /// Waiters left behind by reads that were dropped before they
    /// finished: wake them (their keys are free to claim again). Drivers
    /// call this with their other wake-ups; reads also pass them on.
    ///
    /// ```
    /// use stratacache::tiered::{TieredCache, TieredConfig};
    /// let mut cache: TieredCache<u8> = TieredCache::new(TieredConfig::new(vec![])).unwrap();
    /// assert!(cache.poll_wakeups().is_empty());
    /// ```
    pub fn poll_wakeups(&mut self) -> Vec<WaitId> {
        self.reap_abandoned();
        std::mem::take(&mut self.wakeups)
    }

    fn reaper_has_work(&self) -> bool {
        // Cheap: an uncontended lock, only taken on a read's `next`.
        !self.reaper.is_empty()
    }

    /// Releases the claims of reads dropped before they finished.
    fn reap_abandoned(&mut self) {
        for claim in self.reaper.take() {
            match claim {
                Abandon::Lead(token) => {
                    if let Ok(abandoned) = self.flights.abandon(token, AbandonPolicy::ReleaseAll) {
                        self.wakeups.extend(abandoned.release);
                    }
                }
                Abandon::Wait(id) => {
                    self.flights.withdraw(id);
                    self.handoff.remove(&id);
                }
            }
        }
    }

    /// Writes `value` under `key` to the request and local tiers now, and
    /// returns the [`Step::Store`]s that write it to every remote tier
    /// (write-through, storage tier included). An expiry of zero deletes
    /// instead, as Django's `timeout=0` does.
    pub fn set_all_tiers(
        &mut self,
        key: &str,
        value: Loaded<V>,
        ttl: Expiry,
        now: u64,
        random: u64,
        request: Option<&mut RequestCache<V>>,
    ) -> Result<Vec<Step>, InvalidKey> {
        check_key(key)?;
        let Some(soft_ttl) = self.soft_ttl(ttl) else {
            return self.delete_all_tiers(key, now, request);
        };
        let mut stores = Vec::new();
        self.write_value(
            key,
            value,
            soft_ttl,
            0,
            now,
            unit_random(random),
            &mut stores,
            request,
        );
        Ok(self.store_steps(stores, now))
    }

    /// Removes `key` from the request and local tiers now, and returns the
    /// [`Step::Delete`]s for every remote tier (replicas included). Chunks of
    /// a chunked value are left to expire: without their manifest they are
    /// unreachable.
    pub fn delete_all_tiers(
        &mut self,
        key: &str,
        now: u64,
        request: Option<&mut RequestCache<V>>,
    ) -> Result<Vec<Step>, InvalidKey> {
        check_key(key)?;
        if let Some(request) = request {
            request.delete(&self.config.request_namespace, key);
        }
        if let Some(local) = &mut self.local {
            local.delete(key);
        }
        let mut steps = Vec::new();
        for tier in 0..self.config.tiers.len() {
            if !self.tier_available(tier, now) {
                continue;
            }
            self.tier_stats[tier].writes += 1;
            steps.push(Step::Delete {
                tier,
                keys: replica_keys(key, self.config.tiers[tier].replicas),
            });
        }
        Ok(steps)
    }

    /// Records that the host's operation on `tier` failed (a fetch, store,
    /// delete or lease outside a read's own reporting). Counted; enough
    /// failures in a row start the tier's cool-down.
    pub fn tier_failed(&mut self, tier: usize, now: u64) {
        if tier >= self.health.len() {
            return;
        }
        self.tier_stats[tier].errors += 1;
        let health = &mut self.health[tier];
        health.consecutive_failures = health.consecutive_failures.saturating_add(1);
        if health.consecutive_failures >= self.config.cooldown.failures_to_trip {
            // Never earlier than it was: a failure reported late (a read
            // that started before a probe pushed the cool-down forward)
            // must not cut the cool-down short.
            let until = now.saturating_add(self.config.cooldown.cooldown_ms);
            health.cooling_until = health.cooling_until.max(until);
        }
    }

    /// True if `tier` is cooling down at `now` (reads and writes skip it).
    pub fn is_cooling_down(&self, tier: usize, now: u64) -> bool {
        self.health.get(tier).is_some_and(|h| {
            h.consecutive_failures >= self.config.cooldown.failures_to_trip && now < h.cooling_until
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TieredConfig {
        &self.config
    }

    /// Counters of each remote tier, in configuration order.
    pub fn tier_stats(&self) -> &[TierStats] {
        &self.tier_stats
    }

    /// Counters of the read path.
    pub fn read_stats(&self) -> ReadStats {
        self.read_stats
    }

    /// Counters of the local tier, if there is one.
    pub fn local_stats(&self) -> Option<crate::local::LocalStats> {
        self.local.as_ref().map(LocalCache::stats)
    }

    /// Counters of the single-flight bookkeeping.
    pub fn flight_stats(&self) -> crate::stampede::FlightStats {
        self.flights.stats()
    }

    /// The local tier's value for `key` at `now`, without counting or
    /// refreshing anything.
    pub fn peek_local(&self, key: &str, now: u64) -> Lookup<&V> {
        match &self.local {
            Some(local) => local.peek(key, now).map(|entry| &entry.value),
            None => Lookup::Miss,
        }
    }

    /// Empties the local tier (other processes' tiers are not touched).
    pub fn clear_local(&mut self) {
        if let Some(local) = &mut self.local {
            local.clear();
        }
    }

    /// Reclaims expired local entries; returns how many.
    pub fn purge_expired(&mut self, now: u64) -> usize {
        self.local
            .as_mut()
            .map_or(0, |local| local.purge_expired(now))
    }

    // ---- shared by reads and writes ---------------------------------------

    fn soft_ttl(&self, ttl: Expiry) -> Option<Option<u64>> {
        match ttl {
            Expiry::Default => Some(self.config.default_ttl_ms),
            Expiry::Never => Some(None),
            Expiry::AfterMs(0) => None,
            Expiry::AfterMs(ms) => Some(Some(ms)),
        }
    }

    /// Reads and writes may use `tier` now. A tier cooling down is skipped;
    /// once its cool-down is over one caller probes it, and the cool-down is
    /// pushed back so others keep skipping until the probe reports.
    fn tier_available(&mut self, tier: usize, now: u64) -> bool {
        let trip = self.config.cooldown.failures_to_trip;
        let cooldown = self.config.cooldown.cooldown_ms;
        let health = &mut self.health[tier];
        if health.consecutive_failures < trip {
            return true;
        }
        if now >= health.cooling_until {
            health.cooling_until = now.saturating_add(cooldown);
            return true;
        }
        self.tier_stats[tier].skipped_cooling_down += 1;
        false
    }

    fn tier_succeeded(&mut self, tier: usize) {
        self.health[tier].consecutive_failures = 0;
    }

    fn decode_options(&self) -> DecodeOptions<'_> {
        DecodeOptions {
            keyring: self.config.keyring.as_ref(),
            require_signature: self.config.keyring.is_some(),
            max_payload_len: self.config.max_payload_len,
        }
    }

    fn manifest_limits(&self) -> ManifestLimits {
        ManifestLimits {
            max_total_len: self.config.max_payload_len as u64 + 4096,
            ..ManifestLimits::default()
        }
    }

    fn encode_options(&self) -> EncodeOptions<'_> {
        EncodeOptions {
            compress_at: self.config.compress_at,
            keyring: self.config.keyring.as_ref(),
        }
    }

    /// Plans writes of an envelope to `tiers`, chunked per tier item limit,
    /// to every replica key.
    fn plan_stores(
        &mut self,
        stores: &mut Vec<Vec<StoreItem>>,
        tiers: impl Iterator<Item = usize>,
        key: &str,
        envelope: &[u8],
        hard_expiry_ms: Option<u64>,
        now: u64,
    ) {
        stores.resize_with(self.config.tiers.len(), Vec::new);
        for tier in tiers {
            let config = &self.config.tiers[tier];
            let ttl_ms = config.ttl_for(hard_expiry_ms, now);
            for replica in replica_keys(key, config.replicas) {
                let manifest_options = EncodeOptions {
                    compress_at: None,
                    keyring: self.config.keyring.as_ref(),
                };
                // `split` fails only for an item limit below the minimum, which
                // `TieredCache::new` refuses.
                let Ok(stored) = chunk::split(
                    &replica,
                    envelope.to_vec(),
                    config.item_limit,
                    &manifest_options,
                ) else {
                    continue;
                };
                for (key, value) in stored.into_writes(&replica) {
                    stores[tier].push(StoreItem { key, value, ttl_ms });
                }
            }
        }
    }

    /// Seals a loaded value in an envelope, puts it in the local and request
    /// tiers and plans its writes to every remote tier. Returns the value.
    #[allow(clippy::too_many_arguments)]
    fn write_value(
        &mut self,
        key: &str,
        loaded: Loaded<V>,
        soft_ttl: Option<u64>,
        recompute_cost_ms: u64,
        now: u64,
        random: f64,
        stores: &mut Vec<Vec<StoreItem>>,
        request: Option<&mut RequestCache<V>>,
    ) -> V {
        // A new value ends any refresh handed out for the old one.
        self.refresh_claims.remove(key);
        let soft =
            soft_ttl.map(|ttl| now.saturating_add(jitter_ttl(ttl, self.config.ttl_jitter, random)));
        let hard = soft.map(|at| at.saturating_add(self.config.stale_ms));
        let mut header =
            EnvelopeHeader::new(loaded.codec, now).with_recompute_cost(recompute_cost_ms);
        header.soft_expiry_ms = soft;
        header.hard_expiry_ms = hard;
        if !self.config.tiers.is_empty() {
            let sealed =
                envelope::encode_for_key(key, &header, &loaded.payload, &self.encode_options());
            let tiers = 0..self.config.tiers.len();
            self.plan_stores(stores, tiers, key, &sealed, hard, now);
        }
        self.fill_local(
            key,
            &loaded.value,
            loaded.weight,
            soft,
            hard,
            recompute_cost_ms,
            now,
        );
        if let Some(request) = request {
            request.set(&self.config.request_namespace, key, loaded.value.clone());
        }
        loaded.value
    }

    #[allow(clippy::too_many_arguments)]
    fn fill_local(
        &mut self,
        key: &str,
        value: &V,
        weight: u64,
        soft_expiry_ms: Option<u64>,
        hard_expiry_ms: Option<u64>,
        recompute_cost_ms: u64,
        now: u64,
    ) {
        let Some(local) = &mut self.local else { return };
        let ttl = local.default_ttl().unwrap_or(u64::MAX);
        let ttl = hard_expiry_ms.map_or(ttl, |at| ttl.min(at.saturating_sub(now)));
        let entry = LocalEntry {
            value: value.clone(),
            soft_expiry_ms,
            recompute_cost_ms,
        };
        local.set(key.to_owned(), entry, weight, Expiry::AfterMs(ttl), now);
    }

    fn store_steps(&mut self, stores: Vec<Vec<StoreItem>>, now: u64) -> Vec<Step> {
        let mut steps = Vec::new();
        for (tier, entries) in stores.into_iter().enumerate() {
            if entries.is_empty() || !self.tier_available(tier, now) {
                continue;
            }
            let stats = &mut self.tier_stats[tier];
            stats.writes += 1;
            stats.bytes_written += entries.iter().map(|e| e.value.len() as u64).sum::<u64>();
            steps.push(Step::Store { tier, entries });
        }
        steps
    }

    /// A value with this soft expiry and recompute cost is stale at `now`,
    /// or due for an XFetch early refresh (`random` is drawn only then).
    fn refresh_due(
        &self,
        soft_expiry_ms: Option<u64>,
        recompute_cost_ms: u64,
        now: u64,
        random: impl FnOnce() -> f64,
    ) -> bool {
        match soft_expiry_ms {
            Some(soft) if now >= soft => true,
            Some(soft) if recompute_cost_ms > 0 => should_refresh_early(
                now,
                soft,
                recompute_cost_ms,
                self.config.xfetch_beta,
                random(),
            ),
            _ => false,
        }
    }

    /// Hands the refresh of `key` to the caller unless another reader has it.
    fn claim_refresh(&mut self, key: &str, now: u64) -> bool {
        if self
            .refresh_claims
            .get(key)
            .is_some_and(|&until| until > now)
        {
            return false;
        }
        if self.refresh_claims.len() >= 4096 {
            self.refresh_claims.retain(|_, until| *until > now);
        }
        let until = now.saturating_add(self.config.refresh_timeout_ms);
        self.refresh_claims.insert(key.to_owned(), until);
        self.read_stats.refreshes += 1;
        true
    }

    fn new_token(&mut self) -> u64 {
        self.next_token = self.next_token.wrapping_add(1);
        self.next_token
    }
}

impl<V> std::fmt::Debug for TieredCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tiers: Vec<&str> = self.config.tiers.iter().map(|t| t.name.as_str()).collect();
        f.debug_struct("TieredCache")
            .field("tiers", &tiers)
            .field("local", &self.local.as_ref().map(LocalCache::len))
            .field("signed", &self.config.keyring.is_some())
            .field("in_flight", &self.flights.len())
            .finish()
    }
}

/// SplitMix64: derives independent random numbers from one host seed.
fn mix(seed: u64, salt: u64) -> u64 {
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A number in (0, 1] from random bits.
fn unit_random(bits: u64) -> f64 {
    ((bits >> 11) + 1) as f64 / (1u64 << 53) as f64
}
