//! stratacache: one caching core for Django apps, edge workers and Rust services.
//!
//! The crate does no I/O, reads no clock, starts no threads and keeps no
//! global state. Hosts pass the time (`now`, milliseconds) and any random
//! numbers in, and perform the I/O the core asks for. The map of the project
//! is `docs/design.md` in the repository.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chunk;
pub mod content;
pub mod envelope;
pub mod key;
pub mod local;
pub mod lookup;
pub mod namespace;
pub mod quote;
pub mod request;
pub mod signing;
pub mod stampede;
pub mod stats;
pub mod tiered;

pub use chunk::{ChunkError, Manifest};
pub use envelope::{Codec, EnvelopeError, EnvelopeHeader, Keyring};
pub use key::{
    is_valid_memcached_key, plain_key, safe_key, KeyBuilder, KeyError, OwnedPart, Part,
    DEFAULT_MAX_KEY_LEN,
};
pub use local::{
    Eviction, Expiry, LocalCache, LocalCacheError, LocalStats, RemovalCause, SetOutcome,
};
pub use lookup::Lookup;
pub use namespace::{Namespace, NamespaceError};
pub use quote::{Quoted, QuotedChar};
pub use request::RequestCache;
pub use signing::{check_codec_safety, signing_key_from_secret, UnsafeCodec};
pub use stampede::{Freshness, LeasePolicy, SingleFlight, WaitId};
pub use stats::{NamedCounters, ReadStats, TierStats};
pub use tiered::{ReadOptions, ReadResult, Source, Step, TierConfig, TieredCache, TieredConfig};
