//! Configuration of a tiered cache: tiers, the local tier, policies, read options.

use crate::chunk::{MEMCACHED_VALUE_LIMIT, MIN_ITEM_LIMIT, WORKERS_KV_VALUE_LIMIT};
use crate::envelope::{self, Keyring, DEFAULT_COMPRESS_AT};
use crate::local::{Expiry, LocalCacheError};
use crate::namespace::Namespace;
use crate::quote::Quoted;
use crate::stampede::LeasePolicy;

#[allow(unused_imports)] // for doc links
use super::TieredCache;

/// The most remote tiers one cache may have.
pub const MAX_TIERS: usize = 8;

/// One remote tier as the core sees it: limits and policies, no connection.
/// Deserializes from a [`TierSpec`](super::TierSpec) (a preset `kind` and
/// what differs from it).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(try_from = "super::TierSpec")]
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

/// Item limit of the Redis and generic presets: Redis takes 512 MiB, but
/// chunks of 16 MiB keep its latency flat.
pub const REDIS_VALUE_LIMIT: usize = 16 * 1024 * 1024;

/// Item limit of the storage preset (S3, a filesystem).
pub const STORAGE_VALUE_LIMIT: usize = 256 * 1024 * 1024;

impl TierConfig {
    /// The preset names [`TierConfig::preset`] knows.
    pub const KINDS: [&'static str; 5] = ["memcached", "redis", "workers_kv", "storage", "generic"];

    /// The preset of `kind` (one of [`TierConfig::KINDS`]) named `name`.
    ///
    /// ```
    /// use stratacache::tiered::TierConfig;
    /// assert_eq!(TierConfig::preset("redis", "r").unwrap(), TierConfig::redis("r"));
    /// assert!(TierConfig::preset("mongo", "m").unwrap_err().to_string().contains("\"generic\""));
    /// ```
    pub fn preset(kind: &str, name: &str) -> Result<Self, ConfigError> {
        Ok(match kind {
            "memcached" => TierConfig::memcached(name),
            "redis" => TierConfig::redis(name),
            "workers_kv" => TierConfig::workers_kv(name),
            "storage" => TierConfig::storage(name),
            "generic" => TierConfig::generic(name),
            other => {
                return Err(ConfigError::UnknownKind {
                    name: name.to_owned(),
                    kind: other.to_owned(),
                })
            }
        })
    }

    /// memcached: 1 MiB items (less overhead), 30-day TTL cap.
    ///
    /// ```
    /// use stratacache::tiered::TierConfig;
    /// assert_eq!(TierConfig::memcached("mc").max_ttl_ms, Some(30 * 24 * 3600 * 1000));
    /// ```
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
    ///
    /// ```
    /// use stratacache::tiered::{TierConfig, REDIS_VALUE_LIMIT};
    /// assert_eq!(TierConfig::redis("r").item_limit, REDIS_VALUE_LIMIT);
    /// ```
    pub fn redis(name: &str) -> Self {
        TierConfig {
            item_limit: REDIS_VALUE_LIMIT,
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

    /// Any other store with a TTL (a Django cache alias): Redis's limits.
    ///
    /// ```
    /// use stratacache::tiered::TierConfig;
    /// assert_eq!(TierConfig::generic("g").item_limit, TierConfig::redis("g").item_limit);
    /// ```
    pub fn generic(name: &str) -> Self {
        TierConfig::redis(name)
    }

    /// A storage tier (S3, filesystem): no TTL, large objects, not
    /// back-filled (it is the slowest tier).
    ///
    /// ```
    /// use stratacache::tiered::TierConfig;
    /// assert!(TierConfig::storage("s3").storage);
    /// ```
    pub fn storage(name: &str) -> Self {
        TierConfig {
            item_limit: STORAGE_VALUE_LIMIT,
            max_ttl_ms: None,
            min_ttl_ms: 0,
            storage: true,
            backfill: false,
            ..TierConfig::memcached(name)
        }
    }

    /// The TTL to write with, for a value whose envelope expires at
    /// `hard_expiry_ms` (None: never). `None` means "no TTL".
    pub(super) fn ttl_for(&self, hard_expiry_ms: Option<u64>, now: u64) -> Option<u64> {
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
/// with [`TieredConfig::new`] and change what differs from the defaults, or
/// deserialize it from a host's value (see [`TieredSpec`](super::TieredSpec)).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(try_from = "super::TieredSpec")]
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
    /// Decode pickles from remote tiers without a verified signature (off:
    /// an unsigned pickle is rejected and counted, never unpickled).
    pub allow_unsigned_pickle: bool,
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
            allow_unsigned_pickle: false,
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
    /// A tier kind with no preset.
    #[error("tier {} has kind {}: use \"memcached\", \"redis\", \"workers_kv\", \"storage\" or \"generic\"", Quoted(.name), Quoted(.kind))]
    UnknownKind {
        /// The tier.
        name: String,
        /// Its kind.
        kind: String,
    },
    /// A field's value was refused (the message says why).
    #[error("{message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// A lease policy but no tier to hold leases.
    #[error("a lease policy is set but no tier has `leases` on: turn it on for the memcached or Redis tier")]
    NoLeaseTier,
    /// The local tier's bounds are invalid.
    #[error("local tier: {0}")]
    Local(#[from] LocalCacheError),
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

impl Expiry {
    /// A host's TTL in seconds, the one conversion every binding uses:
    /// positive → that many milliseconds (rounded up, at least 1); zero or
    /// negative → `AfterMs(0)` (store nothing, as Django's `timeout=0`);
    /// infinite → [`Expiry::Never`]; NaN → an error. A host maps its own
    /// "forever" (Python's `None`) to [`Expiry::Never`] and "unset" to
    /// [`Expiry::Default`] before calling it.
    ///
    /// ```
    /// use stratacache::Expiry;
    /// assert_eq!(Expiry::from_secs(1.5).unwrap(), Expiry::AfterMs(1500));
    /// assert_eq!(Expiry::from_secs(0.0001).unwrap(), Expiry::AfterMs(1));
    /// assert_eq!(Expiry::from_secs(-3.0).unwrap(), Expiry::AfterMs(0));
    /// assert_eq!(Expiry::from_secs(f64::INFINITY).unwrap(), Expiry::Never);
    /// assert!(Expiry::from_secs(f64::NAN).is_err());
    /// ```
    pub fn from_secs(secs: f64) -> Result<Expiry, ConfigError> {
        if secs.is_nan() {
            return Err(ConfigError::OutOfRange {
                field: "ttl",
                value: secs,
                range: "a number of seconds (not NaN)",
            });
        }
        Ok(if secs <= 0.0 {
            Expiry::AfterMs(0)
        } else if secs.is_infinite() || secs * 1000.0 >= u64::MAX as f64 {
            Expiry::Never
        } else {
            Expiry::AfterMs(((secs * 1000.0).ceil() as u64).max(1))
        })
    }
}
