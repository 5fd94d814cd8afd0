//! Envelopes: the bytes stratacache stores in remote tiers (memcached, Redis,
//! Workers KV, S3).
//!
//! Every host (the Django app, the edge worker, a Rust service) writes and
//! reads the same envelope bytes, so a value one host stores is readable by the
//! others. An envelope carries the payload (opaque bytes, tagged with the
//! [`Codec`] the host serialized them with) and the metadata the read path
//! needs without deserializing the payload: when it was created, when a
//! refresh should start, when it must no longer be served, and how long it
//! took to compute (for XFetch early refresh).
//!
//! # Byte layout (format version 1)
//!
//! ```text
//! +-------+---------+---------------------+--------------------+--------------------------------+
//! | magic | version | header (postcard)   | body               | trailer (only if signed)       |
//! | 89 54 | 01      | codec, flags, times,| payload, or its    | key id | key id len | HMAC-SHA256 |
//! | 43    |         | cost, payload_len   | lz4 block if       | 1..=16 | 1 byte     | 32 bytes    |
//! |       |         |                     | compressed         |        |            |             |
//! +-------+---------+---------------------+--------------------+--------------------------------+
//! ```
//!
//! * **magic** `89 54 43` (`\x89TC`): a non-ASCII first byte, so text, JSON and
//!   pickles written by other code under the same key are rejected at once
//!   ([`EnvelopeError::NotAnEnvelope`]).
//! * **version**: [`FORMAT_VERSION`]; any other value is
//!   [`EnvelopeError::UnknownVersion`].
//! * **header**: the postcard encoding of, in this order, `codec: u8`
//!   ([`Codec::tag`]), `flags: u8` ([`FLAG_COMPRESSED`], [`FLAG_MANIFEST`],
//!   [`FLAG_SIGNED`]; other bits are refused), `created_at_ms: varint u64`,
//!   `soft_expiry_ms: Option<varint u64>`, `hard_expiry_ms: Option<varint u64>`,
//!   `recompute_cost_ms: varint u64`, `payload_len: varint u64` (the
//!   uncompressed payload length). Only the canonical (shortest) encoding is
//!   accepted.
//! * **body**: the payload itself, or, if [`FLAG_COMPRESSED`] is set, its LZ4
//!   *block* (no frame, no size prefix: the size is `payload_len`).
//! * **trailer**, present exactly when [`FLAG_SIGNED`] is set: the signing key's
//!   id (1 to [`MAX_KEY_ID_LEN`] printable ASCII bytes), one byte giving the key
//!   id's length, then HMAC-SHA256 (keyed with that key's secret) over every
//!   byte before the MAC, magic included. It is read from the end.
//!
//! `docs/envelope-format.md` in the repository gives the same layout with
//! worked examples; `tests/vectors/envelopes.json` holds golden vectors.
//!
//! # Trust
//!
//! With [`DecodeOptions::require_signature`], a value that is unsigned, signed
//! with an unknown key, or badly signed is an error and its payload is never
//! returned, and nothing is decompressed before the signature verifies. Use it
//! whenever the payload is a Python pickle and the tier is shared: a forged
//! pickle is remote code execution.
//!
//! Decoding never panics on any input, and every size is checked against
//! [`DecodeOptions::max_payload_len`] before anything is allocated.
//!
//! # Example
//!
//! ```
//! use stratacache::envelope::{decode, encode, Codec, DecodeOptions, EncodeOptions, EnvelopeHeader, Keyring};
//!
//! let keyring = Keyring::new("2025a", b"a secret of at least 16 bytes").unwrap();
//! let header = EnvelopeHeader::new(Codec::Json, 1_700_000_000_000)
//!     .with_soft_expiry(1_700_000_060_000)
//!     .with_hard_expiry(1_700_000_300_000)
//!     .with_recompute_cost(250);
//! let payload = br#"{"course": "demo", "blocks": []}"#;
//!
//! let bytes = encode(&header, payload, &EncodeOptions::new().with_signing(&keyring));
//! let decoded = decode(&bytes, &DecodeOptions::verify_with(&keyring)).unwrap();
//! assert_eq!(decoded.header, header);
//! assert_eq!(&decoded.payload[..], &payload[..]);
//!
//! // Without the right key, nothing comes back.
//! let other = Keyring::new("2025a", b"another secret, also 16+ bytes").unwrap();
//! assert!(decode(&bytes, &DecodeOptions::verify_with(&other)).is_err());
//! ```

use crate::quote::Quoted;
use std::borrow::Cow;
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The three bytes every envelope starts with: `\x89TC`.
pub const MAGIC: [u8; 3] = [0x89, b'T', b'C'];

/// The envelope format version this crate writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Header flag: the body is an LZ4 block of the payload.
pub const FLAG_COMPRESSED: u8 = 0x01;
/// Header flag: the payload is a chunk manifest (see [`crate::chunk`]).
pub const FLAG_MANIFEST: u8 = 0x02;
/// Header flag: the envelope ends with a signature trailer.
pub const FLAG_SIGNED: u8 = 0x04;
const KNOWN_FLAGS: u8 = FLAG_COMPRESSED | FLAG_MANIFEST | FLAG_SIGNED;

/// Length of the HMAC-SHA256 tag at the end of a signed envelope.
pub const MAC_LEN: usize = 32;

/// The longest key id accepted, in bytes.
pub const MAX_KEY_ID_LEN: usize = 16;

/// The shortest secret a [`Keyring`] accepts, in bytes (32 random bytes are
/// recommended).
pub const MIN_SECRET_LEN: usize = 16;

/// Default for [`DecodeOptions::max_payload_len`]: 64 MiB.
pub const DEFAULT_MAX_PAYLOAD_LEN: usize = 64 * 1024 * 1024;

/// A reasonable compression threshold for [`EncodeOptions::compress_at`]:
/// payloads under 1 KiB rarely shrink enough to pay for decompression.
pub const DEFAULT_COMPRESS_AT: usize = 1024;

/// An LZ4 block expands at most ~255 times; a header claiming more than this
/// ratio is corrupt, and is refused before the output is allocated.
const MAX_LZ4_RATIO: usize = 256;

/// Length of magic + version.
const PREFIX_LEN: usize = MAGIC.len() + 1;

/// The longest possible postcard header (2 bytes + 5 varints of <= 10 bytes
/// + 2 option tags).
const MAX_HEADER_LEN: usize = 2 + 5 * 10 + 2;

/// How the host serialized the payload. The core never looks inside the
/// payload; it only carries the tag so that every host knows how to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// Raw bytes, used as they are (tag 0).
    #[default]
    Raw,
    /// UTF-8 JSON (tag 1).
    Json,
    /// A Python pickle (tag 2). Only ever decode pickles from envelopes whose
    /// signature was verified, or from tiers no one else can write.
    Pickle,
    /// postcard, serde's compact binary format (tag 3).
    Postcard,
}

impl Codec {
    /// Every codec, in tag order.
    pub const ALL: [Codec; 4] = [Codec::Raw, Codec::Json, Codec::Pickle, Codec::Postcard];

    /// The byte that stands for this codec in the header.
    pub const fn tag(self) -> u8 {
        match self {
            Codec::Raw => 0,
            Codec::Json => 1,
            Codec::Pickle => 2,
            Codec::Postcard => 3,
        }
    }

    /// The codec for a header byte, or `None` if this version does not know it.
    pub const fn from_tag(tag: u8) -> Option<Codec> {
        match tag {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Json),
            2 => Some(Codec::Pickle),
            3 => Some(Codec::Postcard),
            _ => None,
        }
    }

    /// The lowercase name (`"raw"`, `"json"`, `"pickle"`, `"postcard"`), as
    /// used in the test vectors and by the host bindings.
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Raw => "raw",
            Codec::Json => "json",
            Codec::Pickle => "pickle",
            Codec::Postcard => "postcard",
        }
    }

    /// The codec named `name` (`"raw"`, `"json"`, `"pickle"`, `"postcard"`).
    ///
    /// ```
    /// use stratacache::Codec;
    ///
    /// assert_eq!(Codec::from_name("pickle"), Some(Codec::Pickle));
    /// assert_eq!(Codec::from_name("yaml"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Codec> {
        Codec::ALL.into_iter().find(|codec| codec.name() == name)
    }

    /// True for a codec whose decoder can run code chosen by whoever wrote
    /// the bytes (a Python pickle). Such payloads are decoded only when
    /// their signature verified, unless the host opts in by name
    /// ([`DecodeOptions::allow_unsigned_pickle`]).
    ///
    /// ```
    /// use stratacache::Codec;
    ///
    /// assert!(Codec::Pickle.executes_code());
    /// assert!(!Codec::Json.executes_code());
    /// ```
    pub const fn executes_code(self) -> bool {
        matches!(self, Codec::Pickle)
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The metadata stored in front of a payload.
///
/// Times are milliseconds on the host's clock (Unix epoch milliseconds for
/// values shared between hosts). `None` means "no such time".
///
/// ```
/// use stratacache::envelope::{Codec, EnvelopeHeader};
///
/// let h = EnvelopeHeader::new(Codec::Raw, 1_000).with_soft_expiry(2_000).with_hard_expiry(3_000);
/// assert!(!h.is_stale(1_999) && h.is_stale(2_000));
/// assert!(!h.is_expired(2_999) && h.is_expired(3_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct EnvelopeHeader {
    /// How the payload is serialized.
    pub codec: Codec,
    /// The payload is a chunk manifest, not a value (see [`crate::chunk`]).
    pub manifest: bool,
    /// When the value was stored.
    pub created_at_ms: u64,
    /// From this time on the value is stale: it may still be served
    /// (stale-while-revalidate) but a refresh should start.
    pub soft_expiry_ms: Option<u64>,
    /// From this time on the value must not be served.
    pub hard_expiry_ms: Option<u64>,
    /// How long the value took to compute, for XFetch early refresh; 0 if
    /// unknown.
    pub recompute_cost_ms: u64,
}

impl EnvelopeHeader {
    /// A header for a value with `codec` created at `created_at_ms`, with no
    /// expiry and no recompute cost.
    pub const fn new(codec: Codec, created_at_ms: u64) -> Self {
        EnvelopeHeader {
            codec,
            manifest: false,
            created_at_ms,
            soft_expiry_ms: None,
            hard_expiry_ms: None,
            recompute_cost_ms: 0,
        }
    }

    /// Sets the soft expiry (start of stale-while-revalidate).
    pub const fn with_soft_expiry(mut self, at_ms: u64) -> Self {
        self.soft_expiry_ms = Some(at_ms);
        self
    }

    /// Sets the hard expiry (the value must not be served from then on).
    pub const fn with_hard_expiry(mut self, at_ms: u64) -> Self {
        self.hard_expiry_ms = Some(at_ms);
        self
    }

    /// Sets the recompute cost used by XFetch.
    pub const fn with_recompute_cost(mut self, cost_ms: u64) -> Self {
        self.recompute_cost_ms = cost_ms;
        self
    }

    /// True once the hard expiry is reached (`now_ms >= hard_expiry_ms`).
    pub const fn is_expired(&self, now_ms: u64) -> bool {
        match self.hard_expiry_ms {
            Some(at) => now_ms >= at,
            None => false,
        }
    }

    /// True once the soft expiry is reached (`now_ms >= soft_expiry_ms`),
    /// whether or not the value has also expired hard.
    pub const fn is_stale(&self, now_ms: u64) -> bool {
        match self.soft_expiry_ms {
            Some(at) => now_ms >= at,
            None => false,
        }
    }
}

/// The header as it is laid out on the wire (postcard, field order matters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct WireHeader {
    codec: u8,
    flags: u8,
    created_at_ms: u64,
    soft_expiry_ms: Option<u64>,
    hard_expiry_ms: Option<u64>,
    recompute_cost_ms: u64,
    payload_len: u64,
}

/// Bytes of `v` as a postcard varint (7 bits a byte, at least one).
const fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

impl WireHeader {
    /// The length of the header's postcard encoding (`postcard::to_slice`
    /// writes exactly this many bytes; a test checks it).
    fn encoded_len(&self) -> usize {
        let option = |v: Option<u64>| 1 + v.map_or(0, varint_len);
        2 + varint_len(self.created_at_ms)
            + option(self.soft_expiry_ms)
            + option(self.hard_expiry_ms)
            + varint_len(self.recompute_cost_ms)
            + varint_len(self.payload_len)
    }
}

/// Why an envelope could not be decoded. Every variant means "treat the key
/// as a miss"; none of them returns any part of the payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The bytes end before the layout says they should.
    #[error("envelope truncated: {len} bytes end before the layout does; the stored value was cut short (tier item limit, partial write): treat it as a miss and store it again")]
    Truncated {
        /// Length of the bytes given.
        len: usize,
    },
    /// The bytes do not start with [`MAGIC`].
    #[error("not a stratacache envelope (the bytes do not start with the stratacache magic): the key holds a value written by other code; treat it as a miss, or give stratacache its own key prefix")]
    NotAnEnvelope,
    /// The bytes are an envelope but are internally inconsistent.
    #[error("envelope corrupt: {reason}; treat it as a miss and store the value again")]
    Corrupt {
        /// What was inconsistent.
        reason: &'static str,
    },
    /// The format version byte is not [`FORMAT_VERSION`].
    #[error("envelope format version {0} is not supported (this stratacache reads version {FORMAT_VERSION}): upgrade stratacache on this host, or let the value be recomputed")]
    UnknownVersion(u8),
    /// The codec tag is not one of [`Codec`].
    #[error("envelope payload codec tag {0} is unknown to this stratacache: it was written by a newer version; upgrade stratacache on this host, or let the value be recomputed")]
    UnknownCodec(u8),
    /// A signature is required and the envelope has none.
    #[error("envelope is not signed but a signature is required: it was not decoded (an unsigned value in a shared tier may be forged); values written before signing was turned on will be recomputed")]
    Unsigned,
    /// The signature does not match the bytes.
    #[error("envelope signature does not verify with key {}: the value was tampered with, or written with another secret under the same key id; it was not decoded", Quoted(.key_id))]
    BadSignature {
        /// The key id named in the trailer.
        key_id: String,
    },
    /// The envelope is signed with a key id the keyring does not list.
    #[error("envelope is signed with key id {}, which is not in the keyring: while rotating keys, list the old key after the new one; otherwise let the value be recomputed", Quoted(.key_id))]
    UnknownKey {
        /// The key id named in the trailer.
        key_id: String,
    },
    /// The payload is a pickle (a codec that can run code) and its
    /// signature was not verified, and unsigned pickles are not allowed
    /// ([`DecodeOptions::allow_unsigned_pickle`]).
    #[error("envelope holds an unverified pickle: not decoded (a forged pickle runs code); sign values (keys derived from a secret) or set allow_unsigned_pickle")]
    UnsignedPickle,
    /// [`DecodeOptions::require_signature`] is set but no keyring was given.
    #[error("a signature is required but no keyring was given: set DecodeOptions::keyring (or use DecodeOptions::verify_with)")]
    MissingKeyring,
    /// The payload is larger than [`DecodeOptions::max_payload_len`].
    #[error("envelope payload is {len} bytes, over the limit of {limit}: it was not decoded; raise DecodeOptions::max_payload_len if values this large are expected")]
    TooLarge {
        /// The payload length the envelope claims.
        len: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The compressed body is not a valid LZ4 block of the claimed length.
    #[error("envelope payload does not decompress ({reason}): the value is corrupt; treat it as a miss and store it again")]
    Decompress {
        /// What the decompressor reported.
        reason: String,
    },
}

impl EnvelopeError {
    /// A stable snake_case name for the variant, as used by the test vectors
    /// and the host bindings: `truncated`, `not_an_envelope`, `corrupt`,
    /// `unknown_version`, `unknown_codec`, `unsigned`, `bad_signature`,
    /// `unknown_key`, `missing_keyring`, `too_large`, `decompress`,
    /// `unsigned_pickle`.
    pub fn kind(&self) -> &'static str {
        match self {
            EnvelopeError::Truncated { .. } => "truncated",
            EnvelopeError::NotAnEnvelope => "not_an_envelope",
            EnvelopeError::Corrupt { .. } => "corrupt",
            EnvelopeError::UnknownVersion(_) => "unknown_version",
            EnvelopeError::UnknownCodec(_) => "unknown_codec",
            EnvelopeError::Unsigned => "unsigned",
            EnvelopeError::UnsignedPickle => "unsigned_pickle",
            EnvelopeError::BadSignature { .. } => "bad_signature",
            EnvelopeError::UnknownKey { .. } => "unknown_key",
            EnvelopeError::MissingKeyring => "missing_keyring",
            EnvelopeError::TooLarge { .. } => "too_large",
            EnvelopeError::Decompress { .. } => "decompress",
        }
    }
}

/// Why a [`Keyring`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// No key was given.
    #[error("keyring is empty: give at least one (key id, secret) pair, the signing key first")]
    Empty,
    /// The key id is empty, too long, or not printable ASCII.
    #[error("key id {} is invalid: use 1 to {MAX_KEY_ID_LEN} printable ASCII characters without spaces, such as \"2025a\"", Quoted(.key_id))]
    InvalidKeyId {
        /// The refused key id.
        key_id: String,
    },
    /// Two keys have the same id.
    #[error("key id {} is listed twice: give every secret its own id, so a rotated value names the key that signed it", Quoted(.key_id))]
    DuplicateKeyId {
        /// The repeated key id.
        key_id: String,
    },
    /// The secret is too short to be safe.
    #[error("secret for key id {} is {len} bytes; at least {MIN_SECRET_LEN} are required: use 32 random bytes", Quoted(.key_id))]
    SecretTooShort {
        /// The key id whose secret was refused.
        key_id: String,
        /// The length of the refused secret.
        len: usize,
    },
}

#[derive(Clone)]
struct SigningKey {
    id: String,
    mac: Hmac<Sha256>,
}

/// The HMAC keys used to sign and verify envelopes.
///
/// The first key signs; every listed key verifies. To rotate: put the new key
/// first and keep the old one listed until values signed with it have
/// expired, then remove it. Verification is constant-time. `Debug` prints
/// key ids only, never secrets.
///
/// ```
/// use stratacache::envelope::{decode, encode, Codec, DecodeOptions, EncodeOptions, EnvelopeHeader, Keyring};
///
/// let old = Keyring::new("k1", b"old secret, 16 bytes+").unwrap();
/// let bytes = encode(&EnvelopeHeader::new(Codec::Raw, 0), b"v", &EncodeOptions::new().with_signing(&old));
///
/// let rotated = Keyring::from_keys([("k2", &b"new secret, 16 bytes+"[..]), ("k1", &b"old secret, 16 bytes+"[..])]).unwrap();
/// assert_eq!(rotated.signing_key_id(), "k2");
/// let decoded = decode(&bytes, &DecodeOptions::verify_with(&rotated)).unwrap();
/// assert_eq!(decoded.signature.key_id(), Some("k1"));
/// ```
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<SigningKey>,
}

impl Keyring {
    /// A keyring with one key, which signs and verifies.
    pub fn new(key_id: &str, secret: &[u8]) -> Result<Self, KeyringError> {
        Keyring::from_keys([(key_id, secret)])
    }

    /// A keyring from (key id, secret) pairs; the first one signs, all verify.
    pub fn from_keys<'s, I>(keys: I) -> Result<Self, KeyringError>
    where
        I: IntoIterator<Item = (&'s str, &'s [u8])>,
    {
        let mut ring = Keyring { keys: Vec::new() };
        for (key_id, secret) in keys {
            ring.push(key_id, secret)?;
        }
        if ring.keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        Ok(ring)
    }

    /// Adds an older key, accepted for verification only.
    pub fn with_older_key(mut self, key_id: &str, secret: &[u8]) -> Result<Self, KeyringError> {
        self.push(key_id, secret)?;
        Ok(self)
    }

    fn push(&mut self, key_id: &str, secret: &[u8]) -> Result<(), KeyringError> {
        if !valid_key_id(key_id.as_bytes()) {
            return Err(KeyringError::InvalidKeyId {
                key_id: key_id.to_owned(),
            });
        }
        if self.contains(key_id) {
            return Err(KeyringError::DuplicateKeyId {
                key_id: key_id.to_owned(),
            });
        }
        let too_short = || KeyringError::SecretTooShort {
            key_id: key_id.to_owned(),
            len: secret.len(),
        };
        if secret.len() < MIN_SECRET_LEN {
            return Err(too_short());
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| too_short())?;
        self.keys.push(SigningKey {
            id: key_id.to_owned(),
            mac,
        });
        Ok(())
    }

    /// The id of the key new envelopes are signed with.
    pub fn signing_key_id(&self) -> &str {
        // `from_keys` refuses an empty keyring, so there is always a first key.
        self.keys.first().map_or("", |k| k.id.as_str())
    }

    /// The ids of all keys, the signing key first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// True if `key_id` is listed.
    pub fn contains(&self, key_id: &str) -> bool {
        self.find(key_id).is_some()
    }

    fn find(&self, key_id: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.id == key_id)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.key_ids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn valid_key_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_KEY_ID_LEN && id.iter().all(u8::is_ascii_graphic)
}

/// How to encode: compression and signing.
#[derive(Debug, Clone, Copy, Default)]
pub struct EncodeOptions<'k> {
    /// Compress payloads of at least this many bytes with LZ4, keeping the
    /// compressed form only when it pays: when it saves at least 1/16 of the
    /// payload. `None` never compresses. See [`DEFAULT_COMPRESS_AT`].
    pub compress_at: Option<usize>,
    /// Sign with this keyring's first key. `None` writes unsigned envelopes.
    pub keyring: Option<&'k Keyring>,
}

impl<'k> EncodeOptions<'k> {
    /// No compression, no signature.
    pub const fn new() -> Self {
        EncodeOptions {
            compress_at: None,
            keyring: None,
        }
    }

    /// Compress payloads of at least `threshold` bytes when it pays.
    pub const fn with_compression(mut self, threshold: usize) -> Self {
        self.compress_at = Some(threshold);
        self
    }

    /// Sign with `keyring`'s signing key.
    pub const fn with_signing(mut self, keyring: &'k Keyring) -> Self {
        self.keyring = Some(keyring);
        self
    }
}

/// How to decode: which keys to trust, whether a signature is required, and
/// how large a payload may be.
///
/// | `keyring` | `require_signature` | unsigned value | signed value |
/// |---|---|---|---|
/// | `None` | `false` | decoded | decoded, signature not checked ([`SignatureStatus::Unchecked`]) |
/// | `Some` | `false` | decoded | verified: an unknown key or a bad signature is an error |
/// | `Some` | `true` | [`EnvelopeError::Unsigned`] | verified: an unknown key or a bad signature is an error |
/// | `None` | `true` | [`EnvelopeError::MissingKeyring`] | [`EnvelopeError::MissingKeyring`] |
///
/// Whatever the row, a pickle ([`Codec::executes_code`]) whose signature
/// was not verified is [`EnvelopeError::UnsignedPickle`] unless
/// [`DecodeOptions::allow_unsigned_pickle`] is set.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions<'k> {
    /// Keys to verify signatures with.
    pub keyring: Option<&'k Keyring>,
    /// Refuse envelopes that are not signed by a key in `keyring`.
    pub require_signature: bool,
    /// The largest (uncompressed) payload accepted, in bytes.
    pub max_payload_len: usize,
    /// Decode pickles ([`Codec::executes_code`]) whose signature was not
    /// verified. Off by default: set it only for tiers no one else can
    /// write to.
    pub allow_unsigned_pickle: bool,
}

impl Default for DecodeOptions<'_> {
    fn default() -> Self {
        DecodeOptions::new()
    }
}

impl<'k> DecodeOptions<'k> {
    /// No keyring, no signature required, [`DEFAULT_MAX_PAYLOAD_LEN`].
    pub const fn new() -> Self {
        DecodeOptions {
            keyring: None,
            require_signature: false,
            max_payload_len: DEFAULT_MAX_PAYLOAD_LEN,
            allow_unsigned_pickle: false,
        }
    }

    /// Require a valid signature by a key in `keyring`.
    pub const fn verify_with(keyring: &'k Keyring) -> Self {
        DecodeOptions {
            keyring: Some(keyring),
            require_signature: true,
            max_payload_len: DEFAULT_MAX_PAYLOAD_LEN,
            allow_unsigned_pickle: false,
        }
    }

    /// Sets [`DecodeOptions::max_payload_len`].
    pub const fn with_max_payload_len(mut self, limit: usize) -> Self {
        self.max_payload_len = limit;
        self
    }

    /// Sets [`DecodeOptions::allow_unsigned_pickle`].
    ///
    /// ```
    /// use stratacache::envelope::{decode, encode, Codec, DecodeOptions, EncodeOptions, EnvelopeHeader};
    /// use stratacache::EnvelopeError;
    ///
    /// let bytes = encode(&EnvelopeHeader::new(Codec::Pickle, 0), b"\x80\x04N.", &EncodeOptions::new());
    /// assert_eq!(decode(&bytes, &DecodeOptions::new()).unwrap_err(), EnvelopeError::UnsignedPickle);
    /// assert!(decode(&bytes, &DecodeOptions::new().with_unsigned_pickle(true)).is_ok());
    /// ```
    pub const fn with_unsigned_pickle(mut self, allow: bool) -> Self {
        self.allow_unsigned_pickle = allow;
        self
    }
}

/// Whether and how a decoded envelope was signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureStatus<'a> {
    /// The envelope carries no signature.
    Unsigned,
    /// The envelope is signed with this key id, but no keyring was given, so
    /// the signature was not checked.
    Unchecked(&'a str),
    /// The signature was verified with this key id.
    Verified(&'a str),
}

impl<'a> SignatureStatus<'a> {
    /// True if the signature was verified.
    pub const fn is_verified(&self) -> bool {
        matches!(self, SignatureStatus::Verified(_))
    }

    /// The key id in the trailer, if the envelope is signed.
    pub const fn key_id(&self) -> Option<&'a str> {
        match *self {
            SignatureStatus::Unsigned => None,
            SignatureStatus::Unchecked(id) | SignatureStatus::Verified(id) => Some(id),
        }
    }
}

/// A decoded envelope. The payload borrows from the input unless it had to
/// be decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The metadata.
    pub header: EnvelopeHeader,
    /// The payload, as the host serialized it (see [`EnvelopeHeader::codec`]).
    pub payload: Cow<'a, [u8]>,
    /// The body was compressed.
    pub compressed: bool,
    /// The signature, if any.
    pub signature: SignatureStatus<'a>,
}

impl Decoded<'_> {
    /// The payload as an owned vector (copies it unless it was decompressed).
    pub fn into_payload(self) -> Vec<u8> {
        self.payload.into_owned()
    }
}

/// Encodes `payload` with `header` into envelope bytes.
///
/// The payload is compressed if [`EncodeOptions::compress_at`] says so and it
/// pays, and signed if [`EncodeOptions::keyring`] is set. The output is
/// deterministic: the same inputs give the same bytes on every host.
///
/// ```
/// use stratacache::envelope::{decode, encode, Codec, DecodeOptions, EncodeOptions, EnvelopeHeader};
///
/// let json = br#"{"a": 1}"#.repeat(1000);
/// let bytes = encode(&EnvelopeHeader::new(Codec::Json, 0), &json, &EncodeOptions::new().with_compression(1024));
/// assert!(bytes.len() < json.len() / 10);
/// let decoded = decode(&bytes, &DecodeOptions::new()).unwrap();
/// assert!(decoded.compressed);
/// assert_eq!(decoded.payload, json);
/// ```
pub fn encode(header: &EnvelopeHeader, payload: &[u8], options: &EncodeOptions<'_>) -> Vec<u8> {
    encode_for_key("", header, payload, options)
}

/// Like [`encode`], with the signature bound to `key`: the cache key the
/// value is read under. A signed value copied to another key (to serve one
/// user's data under another user's key) then fails verification. Unsigned
/// envelopes are the same bytes whatever the key.
///
/// ```
/// use stratacache::envelope::{decode_for_key, encode_for_key, Codec, DecodeOptions, EncodeOptions, EnvelopeError, EnvelopeHeader, Keyring};
///
/// let keyring = Keyring::new("k1", b"a secret of at least 16 bytes").unwrap();
/// let signed = EncodeOptions::new().with_signing(&keyring);
/// let bytes = encode_for_key("grades|v1|#7", &EnvelopeHeader::new(Codec::Json, 0), b"[93]", &signed);
/// let verify = DecodeOptions::verify_with(&keyring);
/// assert!(decode_for_key("grades|v1|#7", &bytes, &verify).is_ok());
/// assert!(matches!(decode_for_key("grades|v1|#8", &bytes, &verify), Err(EnvelopeError::BadSignature { .. })));
/// ```
pub fn encode_for_key(
    key: &str,
    header: &EnvelopeHeader,
    payload: &[u8],
    options: &EncodeOptions<'_>,
) -> Vec<u8> {
    let compressed = match options.compress_at {
        Some(threshold) if !payload.is_empty() && payload.len() >= threshold => {
            let packed = lz4_flex::block::compress(payload);
            // Keep it only if it saves at least 1/16 of the payload.
            (packed.len() + payload.len() / 16 < payload.len()).then_some(packed)
        }
        _ => None,
    };
    let mut flags = 0;
    if header.manifest {
        flags |= FLAG_MANIFEST;
    }
    if compressed.is_some() {
        flags |= FLAG_COMPRESSED;
    }
    if options.keyring.is_some() {
        flags |= FLAG_SIGNED;
    }
    let wire = WireHeader {
        codec: header.codec.tag(),
        flags,
        created_at_ms: header.created_at_ms,
        soft_expiry_ms: header.soft_expiry_ms,
        hard_expiry_ms: header.hard_expiry_ms,
        recompute_cost_ms: header.recompute_cost_ms,
        payload_len: payload.len() as u64,
    };
    let body = compressed.as_deref().unwrap_or(payload);
    let trailer_len = if options.keyring.is_some() {
        MAX_KEY_ID_LEN + 1 + MAC_LEN
    } else {
        0
    };
    let mut out = Vec::with_capacity(PREFIX_LEN + MAX_HEADER_LEN + body.len() + trailer_len);
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    // Serializing a struct of integers into a Vec cannot fail (no `expect`:
    // it would link postcard's error `Debug` into the wasm module).
    let mut out = postcard::to_extend(&wire, out)
        .unwrap_or_else(|_| unreachable!("postcard writes a fixed struct into a Vec"));
    out.extend_from_slice(body);
    if let Some(keyring) = options.keyring {
        if let Some(signing) = keyring.keys.first() {
            out.extend_from_slice(signing.id.as_bytes());
            // Key ids are at most MAX_KEY_ID_LEN (16) bytes, checked when the
            // keyring was built.
            out.push(signing.id.len() as u8);
            let mac = keyed_mac(&signing.mac, key, &out);
            out.extend_from_slice(&mac.finalize().into_bytes());
        }
    }
    out
}

/// Decodes envelope bytes, checking the signature as `options` say.
///
/// The payload is borrowed from `bytes` (no copy) unless it was compressed.
/// Any input, however malformed, gives an [`EnvelopeError`] and never a panic;
/// a value that fails verification is never returned, not even in part.
///
/// ```
/// use stratacache::envelope::{decode, encode, Codec, DecodeOptions, EncodeOptions, EnvelopeError, EnvelopeHeader};
///
/// let bytes = encode(&EnvelopeHeader::new(Codec::Raw, 5), b"hello", &EncodeOptions::new());
/// let decoded = decode(&bytes, &DecodeOptions::new()).unwrap();
/// assert_eq!(&decoded.payload[..], b"hello");
/// assert_eq!(decoded.header.created_at_ms, 5);
///
/// assert_eq!(decode(b"hello", &DecodeOptions::new()), Err(EnvelopeError::NotAnEnvelope));
/// assert!(matches!(decode(&bytes[..6], &DecodeOptions::new()), Err(EnvelopeError::Truncated { .. })));
/// ```
pub fn decode<'a>(
    bytes: &'a [u8],
    options: &DecodeOptions<'_>,
) -> Result<Decoded<'a>, EnvelopeError> {
    decode_for_key("", bytes, options)
}

/// Like [`decode`], for a value written with [`encode_for_key`] under
/// `key`: a signed value written under another key is a
/// [`EnvelopeError::BadSignature`].
pub fn decode_for_key<'a>(
    key: &str,
    bytes: &'a [u8],
    options: &DecodeOptions<'_>,
) -> Result<Decoded<'a>, EnvelopeError> {
    if options.require_signature && options.keyring.is_none() {
        return Err(EnvelopeError::MissingKeyring);
    }
    let (header, wire, body_start) = read_header(bytes)?;

    let (body_end, signature) = if wire.flags & FLAG_SIGNED != 0 {
        let trailer = read_trailer(bytes, body_start)?;
        match options.keyring {
            Some(keyring) => {
                let signing =
                    keyring
                        .find(trailer.key_id)
                        .ok_or_else(|| EnvelopeError::UnknownKey {
                            key_id: trailer.key_id.to_owned(),
                        })?;
                keyed_mac(&signing.mac, key, trailer.signed)
                    .verify_slice(trailer.mac)
                    .map_err(|_| EnvelopeError::BadSignature {
                        key_id: trailer.key_id.to_owned(),
                    })?;
                (trailer.body_end, SignatureStatus::Verified(trailer.key_id))
            }
            None => (trailer.body_end, SignatureStatus::Unchecked(trailer.key_id)),
        }
    } else {
        if options.require_signature {
            return Err(EnvelopeError::Unsigned);
        }
        (bytes.len(), SignatureStatus::Unsigned)
    };

    if header.codec.executes_code() && !signature.is_verified() && !options.allow_unsigned_pickle {
        return Err(EnvelopeError::UnsignedPickle);
    }

    let body = bytes
        .get(body_start..body_end)
        .ok_or(EnvelopeError::Truncated { len: bytes.len() })?;
    let limit = options.max_payload_len;
    let too_large = |len: u64| EnvelopeError::TooLarge {
        len,
        limit: limit as u64,
    };
    let payload_len = usize::try_from(wire.payload_len).map_err(|_| too_large(wire.payload_len))?;
    if payload_len > limit {
        return Err(too_large(wire.payload_len));
    }
    let compressed = wire.flags & FLAG_COMPRESSED != 0;
    let payload = if compressed {
        if payload_len > body.len().saturating_mul(MAX_LZ4_RATIO) {
            return Err(EnvelopeError::Corrupt {
                reason: "the header claims a payload far larger than the compressed body can hold",
            });
        }
        let mut out = vec![0u8; payload_len];
        let written = lz4_flex::block::decompress_into(body, &mut out).map_err(|e| {
            EnvelopeError::Decompress {
                reason: e.to_string(),
            }
        })?;
        if written != payload_len {
            return Err(EnvelopeError::Decompress {
                reason: format!("{written} bytes decompressed, the header says {payload_len}"),
            });
        }
        Cow::Owned(out)
    } else {
        if body.len() != payload_len {
            return Err(if body.len() < payload_len {
                EnvelopeError::Truncated { len: bytes.len() }
            } else {
                EnvelopeError::Corrupt {
                    reason: "bytes follow the payload",
                }
            });
        }
        Cow::Borrowed(body)
    };
    Ok(Decoded {
        header,
        payload,
        compressed,
        signature,
    })
}

/// True if `bytes` start like an envelope (magic only; nothing is verified).
/// Useful to tell stratacache values from values written by other code under
/// the same keys.
pub fn looks_like_envelope(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// Parses magic, version and header, without verifying anything. Returns the
/// public header, the wire header and the offset where the body starts.
fn read_header(bytes: &[u8]) -> Result<(EnvelopeHeader, WireHeader, usize), EnvelopeError> {
    let truncated = EnvelopeError::Truncated { len: bytes.len() };
    // A prefix of the magic is a truncated envelope; anything else is not one.
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes.get(..magic_len) != MAGIC.get(..magic_len) {
        return Err(EnvelopeError::NotAnEnvelope);
    }
    let version = *bytes.get(MAGIC.len()).ok_or(truncated.clone())?;
    if version != FORMAT_VERSION {
        return Err(EnvelopeError::UnknownVersion(version));
    }
    let rest = bytes.get(PREFIX_LEN..).ok_or(truncated.clone())?;
    let (wire, after) = postcard::take_from_bytes::<WireHeader>(rest).map_err(|e| match e {
        postcard::Error::DeserializeUnexpectedEnd => truncated.clone(),
        _ => EnvelopeError::Corrupt {
            reason: "the header is not valid postcard",
        },
    })?;
    let header_len = rest.len() - after.len();
    // Only the canonical encoding is accepted, so every envelope has exactly
    // one byte form (no padded varints). Each field decoded from at least
    // its shortest encoding, and that one is unique: the header is canonical
    // exactly when it is as long as the shortest encoding of its values
    // (counted, not re-serialized: this runs for every value read).
    if header_len != wire.encoded_len() {
        return Err(EnvelopeError::Corrupt {
            reason: "the header is not canonically encoded",
        });
    }
    if wire.flags & !KNOWN_FLAGS != 0 {
        return Err(EnvelopeError::Corrupt {
            reason: "the header sets unknown flags",
        });
    }
    let codec = Codec::from_tag(wire.codec).ok_or(EnvelopeError::UnknownCodec(wire.codec))?;
    let header = EnvelopeHeader {
        codec,
        manifest: wire.flags & FLAG_MANIFEST != 0,
        created_at_ms: wire.created_at_ms,
        soft_expiry_ms: wire.soft_expiry_ms,
        hard_expiry_ms: wire.hard_expiry_ms,
        recompute_cost_ms: wire.recompute_cost_ms,
    };
    Ok((header, wire, PREFIX_LEN + header_len))
}

/// Reads the header of envelope bytes without verifying the signature or
/// decoding the payload. For bytes this process produced itself (chunking).
pub(crate) fn peek_header(bytes: &[u8]) -> Result<EnvelopeHeader, EnvelopeError> {
    read_header(bytes).map(|(header, _, _)| header)
}

/// The MAC of an envelope stored under `key`: HMAC-SHA256 over the key's
/// length (8 bytes, big-endian), the key, then the envelope bytes before the
/// MAC. The length prefix keeps (key, bytes) pairs unambiguous.
fn keyed_mac(base: &Hmac<Sha256>, key: &str, signed: &[u8]) -> Hmac<Sha256> {
    let mut mac = base.clone();
    mac.update(&(key.len() as u64).to_be_bytes());
    mac.update(key.as_bytes());
    mac.update(signed);
    mac
}

struct Trailer<'a> {
    key_id: &'a str,
    /// Everything the MAC covers.
    signed: &'a [u8],
    mac: &'a [u8],
    /// Where the body ends (the key id starts).
    body_end: usize,
}

fn read_trailer(bytes: &[u8], body_start: usize) -> Result<Trailer<'_>, EnvelopeError> {
    let truncated = || EnvelopeError::Truncated { len: bytes.len() };
    let mac_start = bytes.len().checked_sub(MAC_LEN).ok_or_else(truncated)?;
    let len_at = mac_start.checked_sub(1).ok_or_else(truncated)?;
    if len_at < body_start {
        return Err(truncated());
    }
    let key_id_len = usize::from(*bytes.get(len_at).ok_or_else(truncated)?);
    if key_id_len == 0 || key_id_len > MAX_KEY_ID_LEN {
        return Err(EnvelopeError::Corrupt {
            reason: "the signature trailer has an invalid key id length",
        });
    }
    let key_id_start = len_at.checked_sub(key_id_len).ok_or_else(truncated)?;
    if key_id_start < body_start {
        return Err(truncated());
    }
    let key_id = bytes.get(key_id_start..len_at).ok_or_else(truncated)?;
    if !valid_key_id(key_id) {
        return Err(EnvelopeError::Corrupt {
            reason: "the signature trailer has an invalid key id",
        });
    }
    let key_id = std::str::from_utf8(key_id).map_err(|_| EnvelopeError::Corrupt {
        reason: "the signature trailer has an invalid key id",
    })?;
    Ok(Trailer {
        key_id,
        signed: bytes.get(..mac_start).ok_or_else(truncated)?,
        mac: bytes.get(mac_start..).ok_or_else(truncated)?,
        body_end: key_id_start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(id: &str) -> Keyring {
        Keyring::new(id, format!("secret for {id} 0123456789").as_bytes()).unwrap()
    }

    fn header() -> EnvelopeHeader {
        EnvelopeHeader::new(Codec::Json, 1_700_000_000_000)
            .with_soft_expiry(1_700_000_060_000)
            .with_hard_expiry(1_700_000_600_000)
            .with_recompute_cost(1234)
    }

    #[test]
    fn codec_tags_round_trip() {
        for codec in Codec::ALL {
            assert_eq!(Codec::from_tag(codec.tag()), Some(codec));
            assert_eq!(codec.to_string(), codec.name());
        }
        assert_eq!(Codec::from_tag(4), None);
        assert_eq!(Codec::default(), Codec::Raw);
    }

    #[test]
    fn header_times() {
        let h = EnvelopeHeader::new(Codec::Raw, 0);
        assert!(!h.is_stale(u64::MAX) && !h.is_expired(u64::MAX));
        let h = h.with_soft_expiry(10).with_hard_expiry(20);
        assert!(!h.is_stale(9) && h.is_stale(10) && h.is_stale(25));
        assert!(!h.is_expired(19) && h.is_expired(20));
    }

    #[test]
    fn layout_starts_with_magic_and_version() {
        let bytes = encode(&header(), b"x", &EncodeOptions::new());
        assert_eq!(&bytes[..4], &[0x89, b'T', b'C', FORMAT_VERSION]);
        assert!(looks_like_envelope(&bytes));
        assert!(!looks_like_envelope(b"\x80\x04pickle"));
        // codec, flags
        assert_eq!(&bytes[4..6], &[Codec::Json.tag(), 0]);
        assert_eq!(*bytes.last().unwrap(), b'x');
    }

    #[test]
    fn round_trip_plain_is_zero_copy() {
        let bytes = encode(&header(), b"payload", &EncodeOptions::new());
        let d = decode(&bytes, &DecodeOptions::new()).unwrap();
        assert_eq!(d.header, header());
        assert!(matches!(d.payload, Cow::Borrowed(_)));
        assert!(!d.compressed);
        assert_eq!(d.signature, SignatureStatus::Unsigned);
        assert_eq!(d.into_payload(), b"payload".to_vec());
    }

    #[test]
    fn empty_payload_round_trips() {
        for opts in [
            EncodeOptions::new(),
            EncodeOptions::new().with_compression(0),
        ] {
            let bytes = encode(&header(), b"", &opts);
            let d = decode(&bytes, &DecodeOptions::new()).unwrap();
            assert!(d.payload.is_empty());
            assert!(!d.compressed);
        }
    }

    #[test]
    fn compression_only_when_it_pays() {
        let text = b"the same words again and again; ".repeat(200);
        let opts = EncodeOptions::new().with_compression(1024);
        let bytes = encode(&header(), &text, &opts);
        assert!(bytes.len() < text.len() / 4);
        let d = decode(&bytes, &DecodeOptions::new()).unwrap();
        assert!(d.compressed);
        assert!(matches!(d.payload, Cow::Owned(_)));
        assert_eq!(d.payload, text);

        // Below the threshold: stored as is.
        let d2 = encode(&header(), &text[..1000], &opts);
        assert!(!decode(&d2, &DecodeOptions::new()).unwrap().compressed);

        // Incompressible: stored as is even above the threshold.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 56) as u8
            })
            .collect();
        let d3 = encode(&header(), &noise, &opts);
        let d3 = decode(&d3, &DecodeOptions::new()).unwrap();
        assert!(!d3.compressed);
        assert_eq!(d3.payload, noise);
    }

    #[test]
    fn signed_round_trip_and_status() {
        let k = ring("k1");
        let bytes = encode(&header(), b"v", &EncodeOptions::new().with_signing(&k));
        let d = decode(&bytes, &DecodeOptions::verify_with(&k)).unwrap();
        assert_eq!(d.signature, SignatureStatus::Verified("k1"));
        assert!(d.signature.is_verified());
        // Not required, keyring given: still verified.
        let opts = DecodeOptions {
            require_signature: false,
            ..DecodeOptions::verify_with(&k)
        };
        assert!(decode(&bytes, &opts).unwrap().signature.is_verified());
        // No keyring: decoded, signature unchecked.
        let d = decode(&bytes, &DecodeOptions::new()).unwrap();
        assert_eq!(d.signature, SignatureStatus::Unchecked("k1"));
        assert_eq!(d.signature.key_id(), Some("k1"));
        assert_eq!(SignatureStatus::Unsigned.key_id(), None);
    }

    #[test]
    fn pickles_are_decoded_only_when_verified_or_allowed() {
        let k = ring("k1");
        let pickle = EnvelopeHeader::new(Codec::Pickle, 1);
        let unsigned = encode(&pickle, b"\x80\x04N.", &EncodeOptions::new());
        let signed = encode(
            &pickle,
            b"\x80\x04N.",
            &EncodeOptions::new().with_signing(&k),
        );
        let lax = DecodeOptions::new();
        let allowed = DecodeOptions::new().with_unsigned_pickle(true);
        // Unsigned, or signed but not checked: refused unless allowed.
        assert_eq!(
            decode(&unsigned, &lax).unwrap_err(),
            EnvelopeError::UnsignedPickle
        );
        assert_eq!(
            decode(&signed, &lax).unwrap_err(),
            EnvelopeError::UnsignedPickle
        );
        let not_required = DecodeOptions {
            require_signature: false,
            ..DecodeOptions::verify_with(&k)
        };
        assert_eq!(
            decode(&unsigned, &not_required).unwrap_err().kind(),
            "unsigned_pickle"
        );
        assert!(decode(&unsigned, &allowed).is_ok());
        assert!(decode(&signed, &allowed).is_ok());
        // Verified: decoded.
        assert!(decode(&signed, &DecodeOptions::verify_with(&k)).is_ok());
        assert!(decode(&signed, &not_required).is_ok());
        // Other codecs are not affected.
        let json = encode(&header(), b"1", &EncodeOptions::new());
        assert!(decode(&json, &lax).is_ok());
        assert!(EnvelopeError::UnsignedPickle
            .to_string()
            .contains("allow_unsigned_pickle"));
    }

    #[test]
    fn every_error_variant() {
        let k = ring("k1");
        let signed = encode(&header(), b"value", &EncodeOptions::new().with_signing(&k));
        let plain = encode(&header(), b"value", &EncodeOptions::new());
        let strict = DecodeOptions::verify_with(&k);
        let lax = DecodeOptions::new();

        assert_eq!(decode(b"", &lax), Err(EnvelopeError::Truncated { len: 0 }));
        assert_eq!(
            decode(b"\x89T", &lax),
            Err(EnvelopeError::Truncated { len: 2 })
        );
        assert_eq!(
            decode(b"{\"json\": 1}", &lax),
            Err(EnvelopeError::NotAnEnvelope)
        );
        let mut v2 = plain.clone();
        v2[3] = 2;
        assert_eq!(decode(&v2, &lax), Err(EnvelopeError::UnknownVersion(2)));
        let mut codec = plain.clone();
        codec[4] = 9;
        assert_eq!(decode(&codec, &lax), Err(EnvelopeError::UnknownCodec(9)));
        let mut flags = plain.clone();
        flags[5] = 0x40;
        assert!(matches!(
            decode(&flags, &lax),
            Err(EnvelopeError::Corrupt { .. })
        ));
        let mut extra = plain.clone();
        extra.push(0);
        assert!(matches!(
            decode(&extra, &lax),
            Err(EnvelopeError::Corrupt { .. })
        ));
        assert_eq!(decode(&plain, &strict), Err(EnvelopeError::Unsigned));
        let mut bad = signed.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert_eq!(
            decode(&bad, &strict),
            Err(EnvelopeError::BadSignature {
                key_id: "k1".into()
            })
        );
        assert_eq!(
            decode(&signed, &DecodeOptions::verify_with(&ring("k2"))),
            Err(EnvelopeError::UnknownKey {
                key_id: "k1".into()
            })
        );
        let no_ring = DecodeOptions {
            require_signature: true,
            ..DecodeOptions::new()
        };
        assert_eq!(
            decode(&signed, &no_ring),
            Err(EnvelopeError::MissingKeyring)
        );
        assert_eq!(
            decode(&plain, &lax.with_max_payload_len(4)),
            Err(EnvelopeError::TooLarge { len: 5, limit: 4 })
        );
        let big = encode(
            &header(),
            &[7u8; 4096],
            &EncodeOptions::new().with_compression(0),
        );
        let mut broken = big.clone();
        let n = broken.len();
        broken[n - 3] = 0xff;
        broken.truncate(n - 1);
        assert!(matches!(
            decode(&broken, &lax),
            Err(EnvelopeError::Decompress { .. } | EnvelopeError::Corrupt { .. })
        ));

        for e in [
            EnvelopeError::Truncated { len: 0 },
            EnvelopeError::NotAnEnvelope,
            EnvelopeError::Corrupt { reason: "x" },
            EnvelopeError::UnknownVersion(2),
            EnvelopeError::UnknownCodec(9),
            EnvelopeError::Unsigned,
            EnvelopeError::BadSignature { key_id: "k".into() },
            EnvelopeError::UnknownKey { key_id: "k".into() },
            EnvelopeError::MissingKeyring,
            EnvelopeError::TooLarge { len: 1, limit: 0 },
            EnvelopeError::Decompress { reason: "x".into() },
        ] {
            assert!(!e.kind().is_empty());
            assert!(e.to_string().len() > 20, "{e}");
        }
    }

    #[test]
    fn decompress_error_from_a_bad_block() {
        let text = b"abcabcabcabcabcabcabcabcabcabcabcabcabc".repeat(50);
        let bytes = encode(&header(), &text, &EncodeOptions::new().with_compression(0));
        assert!(decode(&bytes, &DecodeOptions::new()).unwrap().compressed);
        // Claim one more byte than the block decompresses to, keeping the
        // header canonical: find payload_len (varint, last header field).
        let (_, wire, start) = read_header(&bytes).unwrap();
        let mut wire2 = wire;
        wire2.payload_len += 1;
        let mut forged = bytes[..PREFIX_LEN].to_vec();
        forged = postcard::to_extend(&wire2, forged).unwrap();
        forged.extend_from_slice(&bytes[start..]);
        assert!(matches!(
            decode(&forged, &DecodeOptions::new()),
            Err(EnvelopeError::Decompress { .. })
        ));
    }

    #[test]
    fn absurd_compressed_length_is_refused_before_allocating() {
        let wire = WireHeader {
            codec: 0,
            flags: FLAG_COMPRESSED,
            created_at_ms: 0,
            soft_expiry_ms: None,
            hard_expiry_ms: None,
            recompute_cost_ms: 0,
            payload_len: u64::MAX,
        };
        let mut bytes = vec![0x89, b'T', b'C', 1];
        bytes = postcard::to_extend(&wire, bytes).unwrap();
        bytes.extend_from_slice(&[0x10, b'a']);
        assert!(matches!(
            decode(&bytes, &DecodeOptions::new()),
            Err(EnvelopeError::TooLarge { .. })
        ));
        let opts = DecodeOptions::new().with_max_payload_len(usize::MAX);
        let e = decode(&bytes, &opts).unwrap_err();
        assert!(
            matches!(
                e,
                EnvelopeError::Corrupt { .. } | EnvelopeError::TooLarge { .. }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn non_canonical_header_is_corrupt() {
        let bytes = encode(
            &EnvelopeHeader::new(Codec::Raw, 0),
            b"x",
            &EncodeOptions::new(),
        );
        // created_at_ms = 0 is one byte 0x00; pad it to 0x80 0x00.
        let mut padded = bytes[..6].to_vec();
        padded.extend_from_slice(&[0x80, 0x00]);
        padded.extend_from_slice(&bytes[7..]);
        assert!(matches!(
            decode(&padded, &DecodeOptions::new()),
            Err(EnvelopeError::Corrupt { .. })
        ));
    }

    #[test]
    fn encoded_len_is_what_postcard_writes() {
        let edges = [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            1 << 35,
            u64::MAX >> 1,
            u64::MAX,
        ];
        for &a in &edges {
            for &b in &edges {
                for soft in [None, Some(a), Some(b)] {
                    let wire = WireHeader {
                        codec: 3,
                        flags: FLAG_SIGNED,
                        created_at_ms: a,
                        soft_expiry_ms: soft,
                        hard_expiry_ms: soft.map(|_| b),
                        recompute_cost_ms: b,
                        payload_len: a,
                    };
                    let mut buf = [0u8; MAX_HEADER_LEN];
                    let written = postcard::to_slice(&wire, &mut buf).unwrap().len();
                    assert_eq!(wire.encoded_len(), written, "{wire:?}");
                }
            }
        }
    }

    #[test]
    fn padded_varints_anywhere_in_the_header_are_corrupt() {
        let bytes = encode(&header(), b"payload", &EncodeOptions::new());
        assert!(decode(&bytes, &DecodeOptions::new()).is_ok());
        let (_, after) = postcard::take_from_bytes::<WireHeader>(&bytes[PREFIX_LEN..]).unwrap();
        let header_end = bytes.len() - after.len();
        // Pad each varint's last byte (no continuation bit) with 0x80 0x00...
        // a longer form of the same value, which must be refused.
        for at in PREFIX_LEN + 2..header_end {
            if bytes[at] & 0x80 != 0 {
                continue;
            }
            let mut padded = bytes[..at].to_vec();
            padded.extend_from_slice(&[bytes[at] | 0x80, 0x00]);
            padded.extend_from_slice(&bytes[at + 1..]);
            assert!(
                matches!(
                    decode(&padded, &DecodeOptions::new()),
                    Err(EnvelopeError::Corrupt { .. })
                ),
                "byte {at} padded"
            );
        }
    }

    #[test]
    fn keyring_validation() {
        assert_eq!(
            Keyring::from_keys(std::iter::empty::<(&str, &[u8])>()).unwrap_err(),
            KeyringError::Empty
        );
        for bad in ["", "has space", "é", "seventeen-chars-x"] {
            assert!(
                matches!(
                    Keyring::new(bad, &[0; 32]),
                    Err(KeyringError::InvalidKeyId { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            Keyring::new("k", &[0; 15]),
            Err(KeyringError::SecretTooShort { len: 15, .. })
        ));
        let k = Keyring::new("k", &[0; 16]).unwrap();
        assert!(matches!(
            k.clone().with_older_key("k", &[1; 16]),
            Err(KeyringError::DuplicateKeyId { .. })
        ));
        let k = k.with_older_key("old", &[1; 16]).unwrap();
        assert_eq!(k.key_ids().collect::<Vec<_>>(), ["k", "old"]);
        assert!(k.contains("old") && !k.contains("new"));
        assert_eq!(k.signing_key_id(), "k");
        let debug = format!("{k:?}");
        assert!(debug.contains("old") && !debug.contains("[1"));
        for e in [
            KeyringError::Empty,
            KeyringError::InvalidKeyId { key_id: "".into() },
            KeyringError::DuplicateKeyId { key_id: "k".into() },
            KeyringError::SecretTooShort {
                key_id: "k".into(),
                len: 1,
            },
        ] {
            assert!(e.to_string().len() > 20);
        }
    }

    #[test]
    fn options_builders() {
        let k = ring("a");
        let e = EncodeOptions::new().with_compression(10).with_signing(&k);
        assert_eq!(e.compress_at, Some(10));
        assert!(e.keyring.is_some());
        assert!(EncodeOptions::default().keyring.is_none());
        let d = DecodeOptions::default();
        assert!(!d.require_signature && d.keyring.is_none());
        assert_eq!(d.max_payload_len, DEFAULT_MAX_PAYLOAD_LEN);
        assert!(DecodeOptions::verify_with(&k).require_signature);
    }

    #[test]
    fn peek_header_reads_without_verifying() {
        let k = ring("k1");
        let bytes = encode(&header(), b"v", &EncodeOptions::new().with_signing(&k));
        assert_eq!(peek_header(&bytes).unwrap(), header());
        assert_eq!(peek_header(b"nope"), Err(EnvelopeError::NotAnEnvelope));
    }
}
