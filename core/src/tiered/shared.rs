//! What a process shares: the [`TieredCache`] (configuration, local tier,
//! single-flight bookkeeping, tier health, counters).

use hashbrown::HashMap;

use crate::chunk::ManifestLimits;
use crate::envelope::DecodeOptions;
use crate::local::LocalCache;
use crate::lookup::Lookup;
use crate::request::RequestCache;
use crate::stampede::{should_refresh_early, AbandonPolicy, SingleFlight, WaitId};
use crate::stats::{ReadStats, TierStats};

use super::protocol::{Abandon, Reaper};
use super::{ConfigError, InvalidKey, RawRead, Read, ReadOptions, TieredConfig, MAX_TIERS};
use crate::chunk::MIN_ITEM_LIMIT;

/// A value in the local tier, with what refresh decisions need.
pub(super) struct LocalEntry<V> {
    pub(super) value: V,
    pub(super) soft_expiry_ms: Option<u64>,
    pub(super) recompute_cost_ms: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TierHealth {
    pub(super) consecutive_failures: u32,
    pub(super) cooling_until: u64,
}

/// The shared state of a tiered cache in one process: configuration, local
/// tier, single-flight bookkeeping, tier health and counters. Bindings keep
/// one per process behind a lock taken only for the duration of each call.
pub struct TieredCache<V> {
    pub(super) config: TieredConfig,
    pub(super) local: Option<LocalCache<String, LocalEntry<V>>>,
    pub(super) flights: SingleFlight<String>,
    /// Values handed from a leading read to the reads waiting for it.
    pub(super) handoff: HashMap<WaitId, V>,
    /// Keys a reader was handed a refresh of, until when: one refresh per key
    /// per process at a time.
    pub(super) refresh_claims: HashMap<String, u64>,
    pub(super) health: Vec<TierHealth>,
    pub(super) tier_stats: Vec<TierStats>,
    pub(super) read_stats: ReadStats,
    pub(super) next_token: u64,
    /// Claims of reads dropped before they finished.
    pub(super) reaper: Reaper,
    /// Waiters of those reads' flights, for the next read to wake.
    pub(super) wakeups: Vec<WaitId>,
}

impl<V: Clone> TieredCache<V> {
    /// A tiered cache with `config`, after checking it.
    /// ```
    /// use stratacache::tiered::{TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// assert_eq!(cache.config().tiers.len(), 1);
    /// let mut bad = TieredConfig::new(vec![TierConfig::memcached("")]);
    /// assert!(TieredCache::<String>::new(bad).unwrap_err().to_string().contains("empty name"));
    /// ```
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

    /// Releases the claims of reads dropped before they finished.
    pub(super) fn reap_abandoned(&mut self) {
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

    /// Records that the host's operation on `tier` failed (a fetch, store,
    /// delete or lease outside a read's own reporting). Counted; enough
    /// failures in a row start the tier's cool-down.
    /// ```
    /// use stratacache::tiered::{TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// for _ in 0..3 { cache.tier_failed(0, 100); }
    /// assert!(cache.is_cooling_down(0, 101));
    /// ```
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

    /// Records that the host's operation on `tier` succeeded (a store,
    /// delete or lease outside a read's own reporting): the tier answered,
    /// so its failures in a row are over and a cool-down ends, as a
    /// successful fetch ends it. pymemcache's `HashClient` does the same
    /// with a server whose `set` succeeds; a write that comes first after a
    /// cool-down is then a probe that can bring the tier back.
    /// ```
    /// use stratacache::tiered::{TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// for _ in 0..3 { cache.tier_failed(0, 100); }
    /// cache.tier_succeeded(0);
    /// assert!(!cache.is_cooling_down(0, 101));
    /// ```
    pub fn tier_succeeded(&mut self, tier: usize) {
        if let Some(health) = self.health.get_mut(tier) {
            health.consecutive_failures = 0;
        }
    }

    /// True if `tier` is cooling down at `now` (reads and writes skip it).
    /// ```
    /// use stratacache::tiered::{TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// assert!(!cache.is_cooling_down(0, 0));
    /// ```
    pub fn is_cooling_down(&self, tier: usize, now: u64) -> bool {
        self.health.get(tier).is_some_and(|h| {
            h.consecutive_failures >= self.config.cooldown.failures_to_trip && now < h.cooling_until
        })
    }

    /// The configuration.
    /// ```
    /// use stratacache::tiered::{TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// assert_eq!(cache.config().tiers[0].name, "mc");
    /// ```
    pub fn config(&self) -> &TieredConfig {
        &self.config
    }

    /// Counters of each remote tier, in configuration order.
    /// ```
    /// use stratacache::tiered::{TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// assert_eq!(cache.tier_stats()[0].hits, 0);
    /// ```
    pub fn tier_stats(&self) -> &[TierStats] {
        &self.tier_stats
    }

    /// Counters of the read path.
    /// ```
    /// use stratacache::tiered::{TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// assert_eq!(cache.read_stats().reads, 0);
    /// ```
    pub fn read_stats(&self) -> ReadStats {
        self.read_stats
    }

    /// Counters of the local tier, if there is one.
    /// ```
    /// use stratacache::tiered::{TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// assert_eq!(cache.local_stats().unwrap().entries, 0);
    /// ```
    pub fn local_stats(&self) -> Option<crate::local::LocalStats> {
        self.local.as_ref().map(LocalCache::stats)
    }

    /// Counters of the single-flight bookkeeping.
    /// ```
    /// use stratacache::tiered::{TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// assert_eq!(cache.flight_stats().flights_started, 0);
    /// ```
    pub fn flight_stats(&self) -> crate::stampede::FlightStats {
        self.flights.stats()
    }

    /// The local tier's value for `key` at `now`, without counting or
    /// refreshing anything.
    /// ```
    /// use stratacache::tiered::{TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// assert!(cache.peek_local("k", 0).is_miss());
    /// ```
    pub fn peek_local(&self, key: &str, now: u64) -> Lookup<&V> {
        match &self.local {
            Some(local) => local.peek(key, now).map(|entry| &entry.value),
            None => Lookup::Miss,
        }
    }

    /// Empties the local tier (other processes' tiers are not touched).
    /// ```
    /// use stratacache::tiered::{TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// cache.clear_local();
    /// assert_eq!(cache.local_stats().unwrap().entries, 0);
    /// ```
    pub fn clear_local(&mut self) {
        if let Some(local) = &mut self.local {
            local.clear();
        }
    }

    /// Drops `key` from the local tier only (remote tiers and request tiers
    /// are not touched): how a host applies another process's invalidation.
    /// Returns true if the key was there.
    ///
    /// ```
    /// use stratacache::tiered::{TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<u32> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// assert!(!cache.delete_local("k"));
    /// ```
    pub fn delete_local(&mut self, key: &str) -> bool {
        self.local
            .as_mut()
            .is_some_and(|local| local.delete(key).is_found())
    }

    /// Reclaims expired local entries; returns how many.
    /// ```
    /// use stratacache::tiered::{TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// assert_eq!(cache.purge_expired(0), 0);
    /// ```
    pub fn purge_expired(&mut self, now: u64) -> usize {
        self.local
            .as_mut()
            .map_or(0, |local| local.purge_expired(now))
    }

    /// Reads and writes may use `tier` now. A tier cooling down is skipped;
    /// once its cool-down is over one caller probes it, and the cool-down is
    /// pushed back so others keep skipping until the probe reports.
    pub(super) fn tier_available(&mut self, tier: usize, now: u64) -> bool {
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

    pub(super) fn decode_options(&self) -> DecodeOptions<'_> {
        DecodeOptions {
            keyring: self.config.keyring.as_ref(),
            require_signature: self.config.keyring.is_some(),
            max_payload_len: self.config.max_payload_len,
            allow_unsigned_pickle: self.config.allow_unsigned_pickle,
        }
    }

    /// The checks of fetched values, detached from the cache, for a host
    /// that verifies them away from its reads (another thread, its
    /// interpreter lock released): answer fetches with
    /// `Fetched::Prechecked(checker.check(key, bytes))`.
    ///
    /// ```
    /// use stratacache::tiered::{TierConfig, TieredCache, TieredConfig};
    /// let cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let _checker = cache.prechecker();
    /// ```
    #[cfg(feature = "precheck")]
    pub fn prechecker(&self) -> super::Prechecker {
        super::Prechecker {
            keyring: self.config.keyring.clone(),
            max_payload_len: self.config.max_payload_len,
            allow_unsigned_pickle: self.config.allow_unsigned_pickle,
        }
    }

    pub(super) fn manifest_limits(&self) -> ManifestLimits {
        ManifestLimits {
            max_total_len: self.config.max_payload_len as u64 + 4096,
            ..ManifestLimits::default()
        }
    }

    /// A value with this soft expiry and recompute cost is stale at `now`,
    /// or due for an XFetch early refresh (`random` is drawn only then).
    pub(super) fn refresh_due(
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
    pub(super) fn claim_refresh(&mut self, key: &str, now: u64) -> bool {
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

    pub(super) fn new_token(&mut self) -> u64 {
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
pub(super) fn mix(seed: u64, salt: u64) -> u64 {
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A number in (0, 1] from random bits.
pub(super) fn unit_random(bits: u64) -> f64 {
    ((bits >> 11) + 1) as f64 / (1u64 << 53) as f64
}
