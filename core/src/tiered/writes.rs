//! Writes: write-through, deletes, and the store plans of reads (back-fill),
//! chunked per tier and issued chunks first.

use crate::chunk;
#[cfg(feature = "write-behind")]
use crate::envelope::Keyring;
use crate::envelope::{self, EncodeOptions, EnvelopeHeader};
use crate::local::Expiry;
use crate::request::RequestCache;
use crate::stampede::{jitter_ttl, replica_keys};

#[cfg(feature = "write-behind")]
use super::Effect;
use super::{check_key, unit_random, InvalidKey, Loaded, LocalEntry, Step, StoreItem, TieredCache};

/// The unsealed writes a read collects when it defers sealing (feature
/// `write-behind`; without it, never any).
#[cfg(feature = "write-behind")]
pub(super) type Jobs = Vec<SealJob>;
/// The unsealed writes a read collects when it defers sealing (feature
/// `write-behind`; without it, never any).
#[cfg(not(feature = "write-behind"))]
pub(super) type Jobs = std::convert::Infallible;

impl<V: Clone> TieredCache<V> {
    /// Writes `value` under `key` to the request and local tiers now, and
    /// returns the [`Step::Store`]s that write it to every remote tier
    /// (write-through, storage tier included). An expiry of zero deletes
    /// instead, as Django's `timeout=0` does.
    /// ```
    /// use stratacache::tiered::{TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// use stratacache::{envelope::Codec, tiered::{Loaded, Step}, Expiry};
    /// let value = Loaded::new("v".to_string(), Codec::Raw, b"v".to_vec());
    /// let steps = cache.set_all_tiers("k", value, Expiry::Default, 0, 1, None).unwrap();
    /// assert!(matches!(&steps[..], [Step::Store { tier: 0, .. }]));
    /// assert!(!cache.peek_local("k", 1).is_miss());
    /// ```
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
            None,
            request,
        );
        Ok(self.store_steps(stores, now))
    }

    /// Removes `key` from the request and local tiers now, and returns the
    /// [`Step::Delete`]s for every remote tier (replicas included). Chunks of
    /// a chunked value are left to expire: without their manifest they are
    /// unreachable.
    /// ```
    /// use stratacache::tiered::{TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// use stratacache::tiered::Step;
    /// let steps = cache.delete_all_tiers("k", 0, None).unwrap();
    /// assert_eq!(steps, vec![Step::Delete { tier: 0, keys: vec!["k".into()] }]);
    /// ```
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

    pub(super) fn soft_ttl(&self, ttl: Expiry) -> Option<Option<u64>> {
        match ttl {
            Expiry::Default => Some(self.config.default_ttl_ms),
            Expiry::Never => Some(None),
            Expiry::AfterMs(0) => None,
            Expiry::AfterMs(ms) => Some(Some(ms)),
        }
    }

    pub(super) fn encode_options(&self) -> EncodeOptions<'_> {
        EncodeOptions {
            compress_at: self.config.compress_at,
            keyring: self.config.keyring.as_ref(),
        }
    }

    /// Plans writes of an envelope to `tiers`, chunked per tier item limit,
    /// to every replica key.
    pub(super) fn plan_stores(
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
    /// tiers and plans its writes to every remote tier (or, with `jobs`,
    /// hands the sealing and planning to a [`SealJob`]). Returns the value.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn write_value(
        &mut self,
        key: &str,
        loaded: Loaded<V>,
        soft_ttl: Option<u64>,
        recompute_cost_ms: u64,
        now: u64,
        random: f64,
        stores: &mut Vec<Vec<StoreItem>>,
        jobs: Option<&mut Jobs>,
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
        // Sealing a large value costs milliseconds: a host that writes off
        // the request path seals there too (a job, the payload moved in).
        #[cfg(feature = "write-behind")]
        let loaded = match jobs {
            Some(jobs) if !self.config.tiers.is_empty() => {
                let Loaded {
                    value,
                    codec,
                    payload,
                    weight,
                } = loaded;
                let tiers = 0..self.config.tiers.len();
                jobs.extend(self.seal_job(key, Some(header), payload, tiers, hard, now));
                Loaded {
                    value,
                    codec,
                    payload: Vec::new(),
                    weight,
                }
            }
            _ => {
                self.seal_and_plan(key, &header, &loaded.payload, hard, now, stores);
                loaded
            }
        };
        #[cfg(not(feature = "write-behind"))]
        if !self.config.tiers.is_empty() {
            let _: Option<&mut Jobs> = jobs;
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

    /// Seals `payload` once and plans its writes to every remote tier.
    #[cfg(feature = "write-behind")]
    fn seal_and_plan(
        &mut self,
        key: &str,
        header: &EnvelopeHeader,
        payload: &[u8],
        hard_expiry_ms: Option<u64>,
        now: u64,
        stores: &mut Vec<Vec<StoreItem>>,
    ) {
        if self.config.tiers.is_empty() {
            return;
        }
        let sealed = envelope::encode_for_key(key, header, payload, &self.encode_options());
        let tiers = 0..self.config.tiers.len();
        self.plan_stores(stores, tiers, key, &sealed, hard_expiry_ms, now);
    }

    #[cfg(feature = "write-behind")]
    /// A [`SealJob`] writing `bytes` (a payload to seal with `header`, or an
    /// envelope already sealed when `header` is `None`) to the available
    /// `tiers`; `None` when no tier is available. Counts the writes now.
    pub(super) fn seal_job(
        &mut self,
        key: &str,
        header: Option<EnvelopeHeader>,
        bytes: Vec<u8>,
        tiers: impl Iterator<Item = usize>,
        hard_expiry_ms: Option<u64>,
        now: u64,
    ) -> Option<SealJob> {
        let mut plans = Vec::new();
        for tier in tiers {
            if !self.tier_available(tier, now) {
                continue;
            }
            let config = &self.config.tiers[tier];
            plans.push(SealTier {
                tier,
                item_limit: config.item_limit,
                replicas: config.replicas,
                ttl_ms: config.ttl_for(hard_expiry_ms, now),
            });
            let stats = &mut self.tier_stats[tier];
            stats.writes += 1;
            // The payload's size: the envelope is not sealed yet.
            stats.bytes_written += bytes.len() as u64 * u64::from(config.replicas.max(1));
        }
        if plans.is_empty() {
            return None;
        }
        Some(SealJob {
            key: key.to_owned(),
            header,
            bytes,
            tiers: plans,
            compress_at: self.config.compress_at,
            keyring: self.config.keyring.clone(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn fill_local(
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

    pub(super) fn store_steps(&mut self, stores: Vec<Vec<StoreItem>>, now: u64) -> Vec<Step> {
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
}

#[cfg(feature = "write-behind")]
/// One tier of a [`SealJob`].
#[derive(Debug, Clone)]
struct SealTier {
    tier: usize,
    item_limit: usize,
    replicas: u8,
    ttl_ms: Option<u64>,
}

#[cfg(feature = "write-behind")]
/// The writes of one value to remote tiers, not yet sealed: a read that
/// defers sealing ([`RawRead::defer_sealing`](super::RawRead::defer_sealing))
/// hands these out instead of store steps, so that a host with a
/// background writer signs, compresses and chunks a large value there, off
/// the request path. [`SealJob::seal`] gives the stores in the order the
/// core issues them (tiers in order, chunks before their manifest).
///
/// ```
/// use stratacache::envelope::Codec;
/// use stratacache::tiered::{Effect, Loaded, ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
/// let mut cache: TieredCache<String> =
///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
/// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
/// read.defer_sealing();
/// assert!(matches!(read.next(&mut cache), Step::Fetch { .. }));
/// read.fetched(&mut cache, 0, vec![None]).unwrap();
/// assert!(matches!(read.next(&mut cache), Step::Load { .. }));
/// read.loaded(&mut cache, vec![Ok(Loaded::new("v".into(), Codec::Raw, b"v".to_vec()))], 1).unwrap();
/// let jobs = read.take_seal_jobs();
/// assert_eq!(jobs[0].key(), "k");
/// let effects = jobs.into_iter().next().unwrap().seal();
/// assert!(matches!(&effects[..], [Effect::Store { tier: 0, .. }]));
/// ```
#[derive(Clone)]
pub struct SealJob {
    key: String,
    header: Option<EnvelopeHeader>,
    bytes: Vec<u8>,
    tiers: Vec<SealTier>,
    compress_at: Option<usize>,
    keyring: Option<Keyring>,
}

#[cfg(feature = "write-behind")]
impl SealJob {
    /// The key written (its chunks and replicas are derived from it).
    ///
    /// ```
    /// # use stratacache::tiered::SealJob;
    /// fn superseded(job: &SealJob, key: &str) -> bool { job.key() == key }
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Bytes this job will write, about: the value's size times its tiers
    /// and replicas (for a host's queue bound).
    ///
    /// ```
    /// # use stratacache::tiered::SealJob;
    /// fn fits(job: &SealJob, room: usize) -> bool { job.size() <= room }
    /// ```
    pub fn size(&self) -> usize {
        let copies: usize = self
            .tiers
            .iter()
            .map(|t| usize::from(t.replicas.max(1)))
            .sum();
        self.bytes.len().saturating_mul(copies)
    }

    /// Seals (signs, compresses) the value once and chunks it per tier:
    /// one [`Effect::Store`] per tier, in tier order, chunks before their
    /// manifest, as the store steps of a read that does not defer.
    ///
    /// ```
    /// # use stratacache::tiered::{Effect, SealJob};
    /// fn write(job: SealJob) {
    ///     for effect in job.seal() {
    ///         if let Effect::Store { tier, entries } = effect { /* set_many(tier, entries) */ }
    ///     }
    /// }
    /// ```
    pub fn seal(self) -> Vec<Effect> {
        let options = EncodeOptions {
            compress_at: self.compress_at,
            keyring: self.keyring.as_ref(),
        };
        let envelope = match &self.header {
            Some(header) => envelope::encode_for_key(&self.key, header, &self.bytes, &options),
            None => self.bytes,
        };
        let manifest_options = EncodeOptions {
            compress_at: None,
            keyring: self.keyring.as_ref(),
        };
        let mut effects = Vec::with_capacity(self.tiers.len());
        for plan in &self.tiers {
            let mut entries = Vec::new();
            for replica in replica_keys(&self.key, plan.replicas) {
                // `split` fails only for an item limit below the minimum, which
                // `TieredCache::new` refuses.
                let Ok(stored) = chunk::split(
                    &replica,
                    envelope.clone(),
                    plan.item_limit,
                    &manifest_options,
                ) else {
                    continue;
                };
                for (key, value) in stored.into_writes(&replica) {
                    entries.push(StoreItem {
                        key,
                        value,
                        ttl_ms: plan.ttl_ms,
                    });
                }
            }
            if !entries.is_empty() {
                effects.push(Effect::Store {
                    tier: plan.tier,
                    entries,
                });
            }
        }
        effects
    }
}

#[cfg(feature = "write-behind")]
impl std::fmt::Debug for SealJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealJob")
            .field("key", &self.key)
            .field("sealed", &self.header.is_none())
            .field("bytes", &self.bytes.len())
            .field("tiers", &self.tiers)
            .finish_non_exhaustive()
    }
}
