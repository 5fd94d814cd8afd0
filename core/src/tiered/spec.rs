//! A [`TieredConfig`] from a host's configuration value (a Python dict, a
//! JS object, a JSON or TOML file), through serde. Every field is optional:
//! an absent field (or, where "none" is not a value of its own, `null`) is
//! "unset", and the default filled in is the core's. Durations and TTLs are
//! seconds (fractions allowed), as hosts write them.
//!
//! ```
//! use stratacache::tiered::TieredConfig;
//!
//! let config: TieredConfig = serde_json::from_str(r#"{
//!     "tiers": [{"kind": "memcached", "name": "memcached"}, {"kind": "storage", "name": "s3"}],
//!     "local": {"max_entries": 500},
//!     "default_ttl": 60,
//!     "lease": true
//! }"#).unwrap();
//! assert_eq!(config.tiers[0].item_limit, stratacache::chunk::MEMCACHED_VALUE_LIMIT);
//! assert!(config.tiers[0].leases); // the first tier that can `add` holds leases
//! assert_eq!(config.local.unwrap().max_entries, 500);
//! assert_eq!(config.local.unwrap().ttl_ms, 60_000); // the core's default
//! assert_eq!(config.default_ttl_ms, Some(60_000));
//! ```

use serde::{de, Deserialize, Deserializer};

use super::config::{ConfigError, CooldownPolicy, LocalTierConfig, TierConfig, TieredConfig};
use crate::envelope::{Codec, Keyring};
use crate::local::Expiry;
use crate::namespace::Namespace;
use crate::stampede::LeasePolicy;

/// `Some(None)` for an explicit `null`, `None` when absent (with `#[serde(default)]`).
fn explicit<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Seconds (a host's TTL or duration) as whole milliseconds, rounded up so a
/// positive duration never becomes 0.
fn ms(field: &'static str, secs: f64) -> Result<u64, ConfigError> {
    match Expiry::from_secs(secs) {
        Ok(Expiry::AfterMs(ms)) if secs >= 0.0 => Ok(ms),
        Ok(Expiry::Never) => Ok(u64::MAX),
        _ => Err(ConfigError::OutOfRange {
            field,
            value: secs,
            range: "a number of seconds ≥ 0",
        }),
    }
}

/// One remote tier: a preset (`kind`) and what differs from it.
///
/// ```
/// use stratacache::tiered::TierConfig;
/// let tier: TierConfig = serde_json::from_str(r#"{"name": "s3", "kind": "storage", "item_limit": 4096}"#).unwrap();
/// assert!(tier.storage && tier.item_limit == 4096);
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSpec {
    /// The tier's name (required).
    #[serde(default)]
    pub name: Option<String>,
    /// The preset, one of [`TierConfig::KINDS`] (unset: `"memcached"`).
    #[serde(default)]
    pub kind: Option<String>,
    /// The largest item stored, in bytes (unset: the preset's).
    #[serde(default)]
    pub item_limit: Option<usize>,
    /// The longest TTL the tier accepts, in seconds; `null`: no limit.
    #[serde(default, deserialize_with = "explicit")]
    pub max_ttl: Option<Option<f64>>,
    /// The shortest TTL the tier accepts, in seconds.
    #[serde(default)]
    pub min_ttl: Option<f64>,
    /// Write values found in slower tiers back into this one.
    #[serde(default)]
    pub backfill: Option<bool>,
    /// Replica keys per key (1: none).
    #[serde(default)]
    pub replicas: Option<u8>,
    /// Hold cross-process leases in this tier (unset: the core chooses the
    /// first tier that supports `add` when a lease policy is set).
    #[serde(default)]
    pub leases: Option<bool>,
    /// Whether the tier's adapter has an atomic `add` (unset: the preset's;
    /// storage tiers have none).
    #[serde(default)]
    pub supports_add: Option<bool>,
}

impl TierSpec {
    fn build(&self, index: usize) -> Result<TierConfig, ConfigError> {
        let name = self.name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(ConfigError::UnnamedTier(index));
        }
        let mut tier = TierConfig::preset(self.kind.as_deref().unwrap_or("memcached"), &name)?;
        if let Some(limit) = self.item_limit {
            tier.item_limit = limit;
        }
        if let Some(max) = self.max_ttl {
            tier.max_ttl_ms = max.map(|s| ms("max_ttl", s)).transpose()?;
        }
        if let Some(min) = self.min_ttl {
            tier.min_ttl_ms = ms("min_ttl", min)?;
        }
        tier.backfill = self.backfill.unwrap_or(tier.backfill);
        tier.replicas = self.replicas.unwrap_or(tier.replicas);
        tier.leases = self.leases.unwrap_or(false);
        Ok(tier)
    }

    fn supports_add(&self) -> bool {
        self.supports_add
            .unwrap_or(self.kind.as_deref() != Some("storage"))
    }
}

impl TryFrom<TierSpec> for TierConfig {
    type Error = ConfigError;

    /// ```
    /// use stratacache::tiered::{TierConfig, TierSpec};
    /// let spec = TierSpec { name: Some("redis".into()), kind: Some("redis".into()), ..TierSpec::default() };
    /// assert_eq!(TierConfig::try_from(spec).unwrap(), TierConfig::redis("redis"));
    /// ```
    fn try_from(spec: TierSpec) -> Result<Self, ConfigError> {
        spec.build(0)
    }
}

/// The local tier's bounds; unset fields take [`LocalTierConfig::default`]'s.
///
/// ```
/// use stratacache::tiered::TieredConfig;
/// let c: TieredConfig = serde_json::from_str(r#"{"local": {"max_bytes": 1024, "ttl": 5}}"#).unwrap();
/// assert_eq!((c.local.unwrap().max_weight, c.local.unwrap().ttl_ms), (1024, 5000));
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSpec {
    /// Most entries held.
    #[serde(default)]
    pub max_entries: Option<usize>,
    /// Most payload bytes held.
    #[serde(default, alias = "max_weight")]
    pub max_bytes: Option<u64>,
    /// Longest time a value is kept locally, in seconds.
    #[serde(default)]
    pub ttl: Option<f64>,
}

/// A lease policy: `true` (the defaults), `false`, or the fields to change.
///
/// ```
/// use stratacache::tiered::TieredConfig;
/// let c: TieredConfig = serde_json::from_str(r#"{"lease": {"ttl": 3}, "tiers": [{"name": "mc"}]}"#).unwrap();
/// assert_eq!(c.lease.unwrap().ttl_ms, 3000);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum LeaseSpec {
    /// On with [`LeasePolicy::default`], or off.
    On(bool),
    /// On, with these fields changed (seconds).
    Policy {
        /// Lifetime of the lease key.
        #[serde(default)]
        ttl: Option<f64>,
        /// Longest wait for the holder.
        #[serde(default)]
        max_wait: Option<f64>,
        /// Pause between re-reads while waiting.
        #[serde(default)]
        poll_interval: Option<f64>,
    },
}

/// Tier cool-down: `[failures, seconds]` or `{"failures": .., "seconds": ..}`.
///
/// ```
/// use stratacache::tiered::TieredConfig;
/// let c: TieredConfig = serde_json::from_str(r#"{"cooldown": {"seconds": 0.25}}"#).unwrap();
/// assert_eq!((c.cooldown.failures_to_trip, c.cooldown.cooldown_ms), (3, 250));
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CooldownSpec {
    /// `(failures_to_trip, seconds)`.
    Pair(u32, f64),
    /// The fields to change.
    Fields {
        /// Consecutive failures that start a cool-down.
        #[serde(default)]
        failures: Option<u32>,
        /// How long the tier is skipped, in seconds.
        #[serde(default)]
        seconds: Option<f64>,
    },
}

/// A signing secret: bytes, a string (its UTF-8 bytes) or a list of bytes.
///
/// ```
/// use stratacache::tiered::Secret;
/// let s: Secret = serde_json::from_str("\"0123456789abcdef\"").unwrap();
/// assert_eq!(s.0.len(), 16);
/// ```
#[derive(Debug, Clone)]
pub struct Secret(pub Vec<u8>);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a secret (bytes or a string)")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Secret, E> {
                Ok(Secret(v.to_vec()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.as_bytes().to_vec()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Secret, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Secret(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A [`TieredConfig`] as a host writes it. `TieredConfig` deserializes
/// through it.
///
/// ```
/// use stratacache::tiered::{TieredConfig, TieredSpec};
/// let spec: TieredSpec = serde_json::from_str(r#"{"default_ttl": null}"#).unwrap();
/// assert_eq!(TieredConfig::try_from(spec).unwrap().default_ttl_ms, None); // forever
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TieredSpec {
    /// Remote tiers, fastest first.
    #[serde(default)]
    pub tiers: Vec<TierSpec>,
    /// The local tier; `null`: none (unset: [`LocalTierConfig::default`]).
    #[serde(default, deserialize_with = "explicit")]
    pub local: Option<Option<LocalSpec>>,
    /// The cache's name: its request-tier namespace is derived from it.
    #[serde(default)]
    pub name: Option<String>,
    /// `[(key_id, secret), ...]`, newest first.
    #[serde(default)]
    pub signing_keys: Option<Vec<(String, Secret)>>,
    /// The host's codec, checked against the signing rule
    /// ([`crate::check_codec_safety`]).
    #[serde(default)]
    pub codec: Option<String>,
    /// Compress payloads from this many bytes; `null`: never.
    #[serde(default, deserialize_with = "explicit")]
    pub compress_at: Option<Option<usize>>,
    /// TTL of loaded values, in seconds; `null`: forever.
    #[serde(default, deserialize_with = "explicit")]
    pub default_ttl: Option<Option<f64>>,
    /// Seconds past its TTL a value may be served while it is refreshed.
    #[serde(default)]
    pub stale_ttl: Option<f64>,
    /// Spread TTLs by up to this fraction.
    #[serde(default)]
    pub ttl_jitter: Option<f64>,
    /// XFetch's β (0: off).
    #[serde(default)]
    pub xfetch_beta: Option<f64>,
    /// Seconds a reader handed a refresh has before another may be.
    #[serde(default)]
    pub refresh_timeout: Option<f64>,
    /// Cross-process leases.
    #[serde(default)]
    pub lease: Option<LeaseSpec>,
    /// Skipping of failing tiers.
    #[serde(default)]
    pub cooldown: Option<CooldownSpec>,
    /// A tier error fails the read.
    #[serde(default)]
    pub strict: Option<bool>,
    /// Largest payload accepted from a remote tier.
    #[serde(default)]
    pub max_payload_len: Option<usize>,
    /// Read unsigned pickles from remote tiers.
    #[serde(default)]
    pub allow_unsigned_pickle: Option<bool>,
}

/// The request-tier namespace of a cache named `name`: printable ASCII
/// without the key separators, at most 48 characters.
fn request_namespace(name: &str) -> Result<Namespace, ConfigError> {
    let safe: String = name
        .chars()
        .map(|c| {
            if ('!'..='~').contains(&c) && c != '|' && c != '%' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    Namespace::new(format!("~tiered.{safe}")).map_err(|e| ConfigError::Invalid {
        field: "name",
        message: e.to_string(),
    })
}

impl TryFrom<TieredSpec> for TieredConfig {
    type Error = ConfigError;

    fn try_from(spec: TieredSpec) -> Result<Self, ConfigError> {
        let tiers = spec
            .tiers
            .iter()
            .enumerate()
            .map(|(i, t)| t.build(i))
            .collect::<Result<Vec<_>, _>>()?;
        let mut config = TieredConfig::new(tiers);
        if let Some(local) = spec.local {
            config.local = local
                .map(|l| {
                    let d = LocalTierConfig::default();
                    Ok::<_, ConfigError>(LocalTierConfig {
                        max_entries: l.max_entries.unwrap_or(d.max_entries),
                        max_weight: l.max_bytes.unwrap_or(d.max_weight),
                        ttl_ms: l
                            .ttl
                            .map(|s| ms("local.ttl", s))
                            .transpose()?
                            .unwrap_or(d.ttl_ms)
                            .max(1),
                    })
                })
                .transpose()?;
        }
        if let Some(name) = &spec.name {
            config.request_namespace = request_namespace(name)?;
        }
        if let Some(keys) = spec.signing_keys.filter(|k| !k.is_empty()) {
            let ring = Keyring::from_keys(keys.iter().map(|(id, s)| (id.as_str(), s.0.as_slice())))
                .map_err(|e| ConfigError::Invalid {
                    field: "signing_keys",
                    message: e.to_string(),
                })?;
            config.keyring = Some(ring);
        }
        if let Some(at) = spec.compress_at {
            config.compress_at = at;
        }
        if let Some(ttl) = spec.default_ttl {
            config.default_ttl_ms = match ttl {
                None => None,
                Some(s) => match ms("default_ttl", s)? {
                    u64::MAX => None,
                    ms => Some(ms.max(1)),
                },
            };
        }
        if let Some(s) = spec.stale_ttl {
            config.stale_ms = ms("stale_ttl", s)?;
        }
        config.ttl_jitter = spec.ttl_jitter.unwrap_or(config.ttl_jitter);
        config.xfetch_beta = spec.xfetch_beta.unwrap_or(config.xfetch_beta);
        if let Some(s) = spec.refresh_timeout {
            config.refresh_timeout_ms = ms("refresh_timeout", s)?;
        }
        config.lease = match spec.lease {
            None | Some(LeaseSpec::On(false)) => None,
            Some(LeaseSpec::On(true)) => Some(LeasePolicy::default()),
            Some(LeaseSpec::Policy {
                ttl,
                max_wait,
                poll_interval,
            }) => {
                let d = LeasePolicy::default();
                Some(LeasePolicy {
                    ttl_ms: ttl
                        .map(|s| ms("lease.ttl", s))
                        .transpose()?
                        .unwrap_or(d.ttl_ms),
                    max_wait_ms: max_wait
                        .map(|s| ms("lease.max_wait", s))
                        .transpose()?
                        .unwrap_or(d.max_wait_ms),
                    poll_interval_ms: poll_interval
                        .map(|s| ms("lease.poll_interval", s))
                        .transpose()?
                        .unwrap_or(d.poll_interval_ms)
                        .max(1),
                })
            }
        };
        // Lease-tier choice: unless a tier was named, the first that can `add`.
        if config.lease.is_some() && !config.tiers.iter().any(|t| t.leases) {
            if let Some(i) = spec.tiers.iter().position(TierSpec::supports_add) {
                config.tiers[i].leases = true;
            }
        }
        if let Some(cooldown) = spec.cooldown {
            let d = CooldownPolicy::default();
            let (failures, seconds) = match cooldown {
                CooldownSpec::Pair(f, s) => (Some(f), Some(s)),
                CooldownSpec::Fields { failures, seconds } => (failures, seconds),
            };
            config.cooldown = CooldownPolicy {
                failures_to_trip: failures.unwrap_or(d.failures_to_trip),
                cooldown_ms: seconds
                    .map(|s| ms("cooldown", s))
                    .transpose()?
                    .unwrap_or(d.cooldown_ms),
            };
        }
        config.strict = spec.strict.unwrap_or(false);
        config.max_payload_len = spec.max_payload_len.unwrap_or(config.max_payload_len);
        config.allow_unsigned_pickle = spec.allow_unsigned_pickle.unwrap_or(false);
        if let Some(name) = &spec.codec {
            // An unknown name is the host's own codec: it cannot run code in core's view.
            if let Some(codec) = Codec::from_name(name) {
                crate::check_codec_safety(
                    codec,
                    config.tiers.len(),
                    config.keyring.is_some(),
                    config.allow_unsigned_pickle,
                )
                .map_err(|e| ConfigError::Invalid {
                    field: "codec",
                    message: e.to_string(),
                })?;
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Result<TieredConfig, String> {
        serde_json::from_str::<TieredConfig>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn unset_fields_take_the_core_defaults() {
        let c = config(r#"{"tiers": [{"name": "mc"}]}"#).unwrap();
        let d = TieredConfig::new(vec![TierConfig::memcached("mc")]);
        assert_eq!(c.tiers, d.tiers);
        assert_eq!(c.local, d.local);
        assert_eq!(c.default_ttl_ms, d.default_ttl_ms);
        assert_eq!(c.compress_at, d.compress_at);
        assert_eq!(c.cooldown, d.cooldown);
        assert_eq!((c.ttl_jitter, c.xfetch_beta), (d.ttl_jitter, d.xfetch_beta));
        assert!(c.lease.is_none() && c.keyring.is_none());
    }

    #[test]
    fn null_means_none_where_none_is_a_value() {
        let c = config(r#"{"local": null, "default_ttl": null, "compress_at": null}"#).unwrap();
        assert_eq!(
            (c.local, c.default_ttl_ms, c.compress_at),
            (None, None, None)
        );
    }

    #[test]
    fn seconds_become_milliseconds_rounded_up() {
        let c = config(
            r#"{"local": {"ttl": 0.0001}, "stale_ttl": 2.5, "cooldown": [5, 1.5],
            "lease": {"max_wait": 0.5}}"#,
        )
        .unwrap();
        assert_eq!(c.local.unwrap().ttl_ms, 1);
        assert_eq!(c.stale_ms, 2500);
        assert_eq!(
            c.cooldown,
            CooldownPolicy {
                failures_to_trip: 5,
                cooldown_ms: 1500
            }
        );
        let lease = c.lease.unwrap();
        assert_eq!(
            (lease.max_wait_ms, lease.ttl_ms),
            (500, LeasePolicy::default().ttl_ms)
        );
        assert!(config(r#"{"stale_ttl": -1}"#)
            .unwrap_err()
            .contains("stale_ttl"));
    }

    #[test]
    fn leases_go_to_the_first_tier_that_can_add() {
        let c = config(r#"{"lease": true, "tiers": [{"name": "s3", "kind": "storage"},
            {"name": "d", "kind": "generic", "supports_add": false}, {"name": "r", "kind": "redis"}]}"#)
        .unwrap();
        assert_eq!(
            c.tiers.iter().map(|t| t.leases).collect::<Vec<_>>(),
            [false, false, true]
        );
        let c = config(
            r#"{"lease": true, "tiers": [{"name": "r", "kind": "redis"},
            {"name": "m", "leases": true}]}"#,
        )
        .unwrap();
        assert_eq!(
            c.tiers.iter().map(|t| t.leases).collect::<Vec<_>>(),
            [false, true]
        );
        let c = config(r#"{"tiers": [{"name": "r", "kind": "redis"}]}"#).unwrap();
        assert!(!c.tiers[0].leases);
    }

    #[test]
    fn bad_values_are_refused_with_the_field() {
        assert!(config(r#"{"tiers": [{"name": "x", "kind": "mongo"}]}"#)
            .unwrap_err()
            .contains("mongo"));
        assert!(config(r#"{"tiers": [{"kind": "redis"}]}"#)
            .unwrap_err()
            .contains("empty name"));
        assert!(config(r#"{"ttl_jiter": 0.1}"#)
            .unwrap_err()
            .contains("ttl_jiter"));
        let e = config(r#"{"codec": "pickle", "tiers": [{"name": "mc"}]}"#).unwrap_err();
        assert!(e.contains("signing_keys_from_secret"), "{e}");
        let c = config(r#"{"codec": "pickle", "tiers": [{"name": "mc"}], "signing_keys": [["k1", "a secret of 32 bytes or so, ok?"]]}"#)
            .unwrap();
        assert!(c.keyring.is_some());
    }

    #[test]
    fn the_name_gives_the_request_namespace() {
        let c = config(r#"{"name": "a b|c"}"#).unwrap();
        assert_eq!(c.request_namespace.as_str(), "~tiered.a_b_c");
    }
}
