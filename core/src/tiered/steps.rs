//! The protocol's vocabulary: the steps a read hands the host, the items
//! in them, the values the host answers with, and the errors.

use crate::envelope::Codec;
use crate::key::{is_valid_memcached_key, MEMCACHED_MAX_KEY_LEN};
use crate::quote::Quoted;
use crate::stampede::WaitId;

#[allow(unused_imports)] // for doc links
use super::{RawRead, Read, TieredCache, TieredConfig};

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

impl Step {
    /// The name of every variant, as [`Step::kind`] gives it: the tags of
    /// the bindings' step encodings (a binding's test checks its driver
    /// handles exactly these).
    pub const KINDS: [&'static str; 10] = [
        "fetch", "decode", "lease", "sleep", "load", "notify", "wait", "store", "delete", "done",
    ];

    /// This step's name, one of [`Step::KINDS`].
    ///
    /// ```
    /// use stratacache::tiered::Step;
    /// assert_eq!(Step::Sleep { ms: 5 }.kind(), "sleep");
    /// assert!(Step::KINDS.contains(&Step::Done.kind()));
    /// ```
    pub fn kind(&self) -> &'static str {
        Step::KINDS[match self {
            Step::Fetch { .. } => 0,
            Step::Decode { .. } => 1,
            Step::Lease { .. } => 2,
            Step::Sleep { .. } => 3,
            Step::Load { .. } => 4,
            Step::Notify { .. } => 5,
            Step::Wait { .. } => 6,
            Step::Store { .. } => 7,
            Step::Delete { .. } => 8,
            Step::Done => 9,
        }]
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

/// What a host's batch loader returned for the keys it was given, before
/// the core shapes it into one result per key ([`LoaderOutput::shape`]).
#[derive(Debug, Clone, PartialEq)]
pub enum LoaderOutput<V> {
    /// A sequence meant to hold one value per key, in key order.
    List(Vec<V>),
    /// A mapping, looked up per key: `None` where it has no entry.
    Map(Vec<Option<V>>),
}

/// Why a key got no value from a batch loader (the host raises it as its
/// own error type, with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoaderError {
    /// A list of the wrong length: no key can be trusted to get its value.
    #[error("the batch loader returned {got} values for {keys} keys: return a dict {{key: value}} or a list in the order of the keys")]
    WrongCount {
        /// Values returned.
        got: usize,
        /// Keys asked.
        keys: usize,
    },
    /// A mapping without this key (shown as the host writes it).
    #[error("the batch loader returned no value for key {0}")]
    NoValue(String),
}

impl<V> LoaderOutput<V> {
    /// One result per key of `shown` (the keys as the host shows them, in
    /// the order asked): every key fails when a list has the wrong length.
    ///
    /// ```
    /// use stratacache::tiered::{LoaderError, LoaderOutput};
    /// let keys = ["'a'".to_owned(), "'b'".to_owned()];
    /// assert_eq!(LoaderOutput::List(vec![1, 2]).shape(&keys), vec![Ok(1), Ok(2)]);
    /// let shaped = LoaderOutput::Map(vec![Some(1), None]).shape(&keys);
    /// assert_eq!(shaped[1], Err(LoaderError::NoValue("'b'".into())));
    /// let shaped = LoaderOutput::List(vec![1]).shape(&keys);
    /// assert!(shaped.iter().all(|r| r == &Err(LoaderError::WrongCount { got: 1, keys: 2 })));
    /// ```
    pub fn shape(self, shown: &[String]) -> Vec<Result<V, LoaderError>> {
        match self {
            LoaderOutput::List(values) if values.len() == shown.len() => {
                values.into_iter().map(Ok).collect()
            }
            LoaderOutput::List(values) => {
                let error = LoaderError::WrongCount {
                    got: values.len(),
                    keys: shown.len(),
                };
                shown.iter().map(|_| Err(error.clone())).collect()
            }
            LoaderOutput::Map(values) => values
                .into_iter()
                .zip(shown)
                .map(|(v, key)| v.ok_or_else(|| LoaderError::NoValue(key.clone())))
                .collect(),
        }
    }
}
