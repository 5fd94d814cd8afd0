//! Chunking: storing an envelope larger than a tier's item limit as N chunks
//! plus a manifest.
//!
//! memcached refuses (by default) items over 1 MiB; a course's block
//! structure grows past that and is then silently recomputed on every
//! request. [`split`] cuts such an envelope into raw slices ("chunks") of at
//! most the tier's item limit and writes a small **manifest** under the main
//! key instead of the value.
//!
//! # The manifest
//!
//! A manifest is itself an envelope, with the manifest flag
//! ([`EnvelopeHeader::manifest`], wire flag [`FLAG_MANIFEST`](crate::envelope::FLAG_MANIFEST))
//! set and codec [`Codec::Postcard`]; its payload is the postcard encoding of
//! [`Manifest`]: `total_len` (varint), `chunk_size` (varint), `chunk_count`
//! (varint) and `digest` (32 bytes, SHA-256 of the whole chunked envelope).
//! Its header copies the created-at, expiries and recompute cost of the value
//! it stands for, so a reader can take freshness decisions (XFetch,
//! stale-while-revalidate) before fetching any chunk. When signing is on, the
//! manifest is signed, which authenticates the digest and so every chunk; the
//! reassembled envelope is signed too and is verified again when decoded.
//!
//! # Reading
//!
//! A reader decodes the bytes under the main key as usual. If
//! `decoded.header.manifest` is false, it is the value. If it is true, the
//! reader builds the [`Manifest`] ([`Manifest::from_decoded`]), fetches
//! [`Manifest::chunk_keys`] in one batch, calls [`Manifest::reassemble`], and
//! decodes the result as an ordinary envelope. Any error on that path (a lost
//! or evicted chunk, a wrong length, a digest mismatch) means a miss, never
//! wrong data. A manifest is never chunked itself, and a reassembled envelope
//! that claims to be a manifest is refused ([`ChunkError::NestedManifest`]).
//!
//! # Chunk keys
//!
//! Chunk keys are built with [`KeyBuilder`] in the reserved namespace
//! `tiercache.chunk`, version [`CHUNK_KEY_VERSION`], from the main key, the
//! first 16 bytes of the digest (32 lowercase hex digits) and the chunk index:
//! `tiercache.chunk|v1|{main key}|{digest hex}|#{index}` (over-long keys end in
//! a digest, as all keys do). Two versions of a value therefore never share a
//! chunk key, and a reader can never mix their chunks.
//!
//! # Writing
//!
//! Write the chunks first and the manifest last ([`Stored::into_writes`] gives
//! them in that order), with a chunk TTL no shorter than the manifest's, so
//! that a reader that finds a manifest usually finds its chunks.
//!
//! ```
//! use stratacache::chunk::{split, Manifest, ManifestLimits, Stored};
//! use stratacache::envelope::{decode, encode, Codec, DecodeOptions, EncodeOptions, EnvelopeHeader};
//! use std::collections::HashMap;
//!
//! let value = vec![42u8; 5000];
//! let envelope = encode(&EnvelopeHeader::new(Codec::Raw, 0), &value, &EncodeOptions::new());
//!
//! // A tier that holds at most 2 KiB per item.
//! let mut tier = HashMap::new();
//! let stored = split("course_blocks|v1|demo", envelope, 2048, &EncodeOptions::new()).unwrap();
//! for (key, bytes) in stored.into_writes("course_blocks|v1|demo") {
//!     assert!(bytes.len() <= 2048);
//!     tier.insert(key, bytes);
//! }
//!
//! // Read back.
//! let opts = DecodeOptions::new();
//! let main = decode(&tier["course_blocks|v1|demo"], &opts).unwrap();
//! assert!(main.header.manifest);
//! let manifest = Manifest::from_decoded(&main, &ManifestLimits::default()).unwrap();
//! let chunks: Vec<Option<&[u8]>> =
//!     manifest.chunk_keys("course_blocks|v1|demo").iter().map(|k| tier.get(k).map(|v| &v[..])).collect();
//! let whole = manifest.reassemble(&chunks).unwrap();
//! assert_eq!(decode(&whole, &opts).unwrap().payload, value);
//! ```

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::envelope::{
    encode_for_key, peek_header, Codec, DecodeOptions, Decoded, EncodeOptions, EnvelopeError,
    EnvelopeHeader, DEFAULT_MAX_PAYLOAD_LEN,
};
use crate::key::{KeyBuilder, Part};
use crate::namespace::Namespace;

/// A value limit for memcached's default 1 MiB item size. memcached counts
/// the key, the item header and the CAS value against that limit, so this
/// leaves 4 KiB of margin.
pub const MEMCACHED_VALUE_LIMIT: usize = 1024 * 1024 - 4096;

/// Workers KV's value size limit, 25 MiB.
pub const WORKERS_KV_VALUE_LIMIT: usize = 25 * 1024 * 1024;

/// The smallest item limit [`split`] accepts, and the smallest chunk size a
/// manifest may claim.
pub const MIN_ITEM_LIMIT: usize = 1024;

/// The version in every chunk key; bumped if chunk keys are ever derived
/// differently.
pub const CHUNK_KEY_VERSION: u64 = 1;

/// How many bytes of the digest go into chunk keys.
const KEY_DIGEST_LEN: usize = 16;

/// The largest possible manifest payload: three varints and the digest.
const MAX_MANIFEST_PAYLOAD_LEN: usize = 3 * 10 + 32;

/// What [`split`] produced: the envelope as one item, or chunks plus a
/// manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// The envelope fits in one item: store it under the main key.
    Single(Vec<u8>),
    /// The envelope is stored as chunks under their own keys, and the
    /// manifest under the main key.
    Chunked {
        /// The manifest envelope, to store under the main key.
        manifest: Vec<u8>,
        /// (chunk key, chunk bytes), in order.
        chunks: Vec<(String, Vec<u8>)>,
    },
}

impl Stored {
    /// True if the value was chunked.
    pub fn is_chunked(&self) -> bool {
        matches!(self, Stored::Chunked { .. })
    }

    /// The (key, bytes) items to write, chunks first and the item for
    /// `main_key` (the value or its manifest) last.
    pub fn into_writes(self, main_key: &str) -> Vec<(String, Vec<u8>)> {
        match self {
            Stored::Single(bytes) => vec![(main_key.to_owned(), bytes)],
            Stored::Chunked {
                manifest,
                mut chunks,
            } => {
                chunks.push((main_key.to_owned(), manifest));
                chunks
            }
        }
    }
}

/// Limits a reader puts on manifests, checked before anything is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestLimits {
    /// The largest total (chunked envelope) length accepted, in bytes.
    pub max_total_len: u64,
    /// The most chunks accepted.
    pub max_chunk_count: u32,
}

impl Default for ManifestLimits {
    /// An envelope of [`DEFAULT_MAX_PAYLOAD_LEN`] plus room for its header
    /// and signature; at most 4096 chunks.
    fn default() -> Self {
        ManifestLimits {
            max_total_len: DEFAULT_MAX_PAYLOAD_LEN as u64 + 4096,
            max_chunk_count: 4096,
        }
    }
}

/// What a manifest says about the chunked envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Manifest {
    /// Length of the whole chunked envelope, in bytes.
    pub total_len: u64,
    /// Length of every chunk but the last, in bytes.
    pub chunk_size: u64,
    /// Number of chunks: `total_len / chunk_size`, rounded up.
    pub chunk_count: u32,
    /// SHA-256 of the whole chunked envelope.
    pub digest: [u8; 32],
}

/// Why a value could not be chunked, or a chunked value could not be read
/// back. On the read path every variant means "treat the key as a miss".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// [`split`] was given an item limit under [`MIN_ITEM_LIMIT`].
    #[error("item limit {limit} is too small to chunk into: give at least {min} bytes (memcached: MEMCACHED_VALUE_LIMIT)")]
    ItemLimitTooSmall {
        /// The limit given.
        limit: usize,
        /// [`MIN_ITEM_LIMIT`].
        min: usize,
    },
    /// The bytes to split, or the manifest, are not a valid envelope.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The envelope under the main key is a value, not a manifest.
    #[error("the envelope is not a manifest: use its payload as the value")]
    NotAManifest,
    /// The manifest's payload is inconsistent.
    #[error("manifest corrupt: {reason}; treat the key as a miss and store the value again")]
    BadManifest {
        /// What was inconsistent.
        reason: &'static str,
    },
    /// The manifest claims a value larger than [`ManifestLimits::max_total_len`].
    #[error("manifest claims a value of {len} bytes, over the limit of {limit}: it was not read; raise ManifestLimits::max_total_len if values this large are expected")]
    TooLarge {
        /// The claimed length.
        len: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The manifest claims more chunks than [`ManifestLimits::max_chunk_count`].
    #[error("manifest claims {count} chunks, over the limit of {limit}: it was not read; raise ManifestLimits::max_chunk_count, or store large values in a tier with a larger item limit")]
    TooManyChunks {
        /// The claimed count.
        count: u64,
        /// The limit in force.
        limit: u32,
    },
    /// [`Manifest::reassemble`] was given a different number of chunks than
    /// the manifest lists.
    #[error("{given} chunks were given but the manifest lists {expected}: pass one entry (None if missing) per key of Manifest::chunk_keys, in order")]
    WrongChunkCount {
        /// What the manifest lists.
        expected: u32,
        /// What was given.
        given: usize,
    },
    /// A chunk was not found in the tier (evicted, expired, never written).
    #[error("chunk {index} is missing (evicted or expired): treat the key as a miss and store the value again")]
    MissingChunk {
        /// The chunk's index.
        index: u32,
    },
    /// A chunk has the wrong length.
    #[error("chunk {index} is {actual} bytes but the manifest says {expected}: treat the key as a miss and store the value again")]
    ChunkLength {
        /// The chunk's index.
        index: u32,
        /// The length the manifest implies.
        expected: u64,
        /// The chunk's length.
        actual: usize,
    },
    /// The reassembled bytes do not match the manifest's digest.
    #[error("the reassembled chunks do not match the manifest's digest (a chunk was overwritten or corrupted): treat the key as a miss and store the value again")]
    DigestMismatch,
    /// The reassembled envelope is itself a manifest, or [`split`] was given
    /// a manifest.
    #[error("a manifest points to another manifest: manifests are never nested; treat the key as a miss")]
    NestedManifest,
}

impl ChunkError {
    /// A stable snake_case name for the variant, as used by test vectors and
    /// host bindings; [`ChunkError::Envelope`] gives the envelope error's
    /// [`kind`](EnvelopeError::kind).
    pub fn kind(&self) -> &'static str {
        match self {
            ChunkError::ItemLimitTooSmall { .. } => "item_limit_too_small",
            ChunkError::Envelope(e) => e.kind(),
            ChunkError::NotAManifest => "not_a_manifest",
            ChunkError::BadManifest { .. } => "bad_manifest",
            ChunkError::TooLarge { .. } => "too_large",
            ChunkError::TooManyChunks { .. } => "too_many_chunks",
            ChunkError::WrongChunkCount { .. } => "wrong_chunk_count",
            ChunkError::MissingChunk { .. } => "missing_chunk",
            ChunkError::ChunkLength { .. } => "chunk_length",
            ChunkError::DigestMismatch => "digest_mismatch",
            ChunkError::NestedManifest => "nested_manifest",
        }
    }
}

/// Stores `envelope` (the bytes of [`encode`]) for a tier whose items hold at
/// most `item_limit` bytes.
///
/// If the envelope fits, it comes back as [`Stored::Single`], untouched.
/// Otherwise it is cut into chunks of `item_limit` bytes and a manifest is
/// encoded with `manifest_options` (sign it when values are signed; it is
/// never compressed). `main_key` is the key the value is stored under, before
/// any host prefix; it is part of every chunk key.
///
/// ```
/// use stratacache::chunk::{split, Stored, MEMCACHED_VALUE_LIMIT};
/// use stratacache::envelope::{encode, Codec, EncodeOptions, EnvelopeHeader};
///
/// let small = encode(&EnvelopeHeader::new(Codec::Raw, 0), b"small", &EncodeOptions::new());
/// let stored = split("k", small.clone(), MEMCACHED_VALUE_LIMIT, &EncodeOptions::new()).unwrap();
/// assert_eq!(stored, Stored::Single(small));
/// ```
pub fn split(
    main_key: &str,
    envelope: Vec<u8>,
    item_limit: usize,
    manifest_options: &EncodeOptions<'_>,
) -> Result<Stored, ChunkError> {
    if item_limit < MIN_ITEM_LIMIT {
        return Err(ChunkError::ItemLimitTooSmall {
            limit: item_limit,
            min: MIN_ITEM_LIMIT,
        });
    }
    if envelope.len() <= item_limit {
        return Ok(Stored::Single(envelope));
    }
    let inner = peek_header(&envelope)?;
    if inner.manifest {
        return Err(ChunkError::NestedManifest);
    }
    let chunk_count = envelope.len().div_ceil(item_limit);
    let chunk_count = u32::try_from(chunk_count).map_err(|_| ChunkError::TooManyChunks {
        count: chunk_count as u64,
        limit: u32::MAX,
    })?;
    let manifest = Manifest {
        total_len: envelope.len() as u64,
        chunk_size: item_limit as u64,
        chunk_count,
        digest: Sha256::digest(envelope.as_slice()).into(),
    };
    let header = EnvelopeHeader {
        codec: Codec::Postcard,
        manifest: true,
        ..inner
    };
    let options = EncodeOptions {
        compress_at: None,
        keyring: manifest_options.keyring,
    };
    // The manifest is bound to the key it is stored under, so a signed
    // manifest copied to another key does not verify.
    let manifest_bytes = encode_for_key(main_key, &header, &manifest.to_payload(), &options);
    let chunks = manifest
        .chunk_keys(main_key)
        .into_iter()
        .zip(envelope.chunks(item_limit))
        .map(|(key, chunk)| (key, chunk.to_vec()))
        .collect();
    Ok(Stored::Chunked {
        manifest: manifest_bytes,
        chunks,
    })
}

impl Manifest {
    /// The manifest carried by a decoded envelope, checked against `limits`.
    ///
    /// Fails with [`ChunkError::NotAManifest`] if the envelope is a plain value
    /// (use its payload), and with another error if the manifest is corrupt or
    /// claims more than `limits` allow; nothing is allocated before the
    /// checks.
    pub fn from_decoded(
        decoded: &Decoded<'_>,
        limits: &ManifestLimits,
    ) -> Result<Manifest, ChunkError> {
        if !decoded.header.manifest {
            return Err(ChunkError::NotAManifest);
        }
        if decoded.header.codec != Codec::Postcard {
            return Err(ChunkError::BadManifest {
                reason: "the manifest's codec is not postcard",
            });
        }
        let payload = &decoded.payload[..];
        let (manifest, rest) = postcard::take_from_bytes::<Manifest>(payload).map_err(|_| {
            ChunkError::BadManifest {
                reason: "the manifest payload is not a valid postcard manifest",
            }
        })?;
        if !rest.is_empty() {
            return Err(ChunkError::BadManifest {
                reason: "bytes follow the manifest",
            });
        }
        let mut canonical = [0u8; MAX_MANIFEST_PAYLOAD_LEN];
        let canonical_ok = postcard::to_slice(&manifest, &mut canonical)
            .map(|c| c == payload)
            .unwrap_or(false);
        if !canonical_ok {
            return Err(ChunkError::BadManifest {
                reason: "the manifest is not canonically encoded",
            });
        }
        manifest.check(limits)?;
        Ok(manifest)
    }

    /// Decodes `bytes`, read under `main_key`, as an envelope with `options`
    /// and reads the manifest in it (see [`Manifest::from_decoded`]). A
    /// signed manifest verifies only under the key [`split`] stored it under.
    pub fn decode(
        main_key: &str,
        bytes: &[u8],
        options: &DecodeOptions<'_>,
        limits: &ManifestLimits,
    ) -> Result<Manifest, ChunkError> {
        // A manifest's payload is postcard and never reaches a host's
        // decoder: the unsigned-pickle guard applies to the value it leads to.
        let options = DecodeOptions {
            allow_unsigned_pickle: true,
            ..*options
        };
        let decoded = crate::envelope::decode_for_key(main_key, bytes, &options)?;
        Manifest::from_decoded(&decoded, limits)
    }

    /// Checks internal consistency and `limits`.
    fn check(&self, limits: &ManifestLimits) -> Result<(), ChunkError> {
        if self.total_len > limits.max_total_len {
            return Err(ChunkError::TooLarge {
                len: self.total_len,
                limit: limits.max_total_len,
            });
        }
        if self.chunk_count > limits.max_chunk_count {
            return Err(ChunkError::TooManyChunks {
                count: u64::from(self.chunk_count),
                limit: limits.max_chunk_count,
            });
        }
        if self.chunk_size < MIN_ITEM_LIMIT as u64 {
            return Err(ChunkError::BadManifest {
                reason: "the chunk size is under the minimum item limit",
            });
        }
        if self.total_len <= self.chunk_size {
            return Err(ChunkError::BadManifest {
                reason: "the value fits in one chunk, so it would not have been chunked",
            });
        }
        // chunk_size >= MIN_ITEM_LIMIT > 0, so the division is defined.
        if self.total_len.div_ceil(self.chunk_size) != u64::from(self.chunk_count) {
            return Err(ChunkError::BadManifest {
                reason: "the chunk count does not match the total length and chunk size",
            });
        }
        if usize::try_from(self.total_len).is_err() {
            return Err(ChunkError::TooLarge {
                len: self.total_len,
                limit: usize::MAX as u64,
            });
        }
        Ok(())
    }

    fn to_payload(self) -> Vec<u8> {
        let mut buf = [0u8; MAX_MANIFEST_PAYLOAD_LEN];
        // Three varints and 32 bytes always fit in MAX_MANIFEST_PAYLOAD_LEN.
        postcard::to_slice(&self, &mut buf)
            .unwrap_or_else(|_| unreachable!("a manifest always fits its maximum length"))
            .to_vec()
    }

    /// The key of chunk `index` of the value stored under `main_key`.
    pub fn chunk_key(&self, main_key: &str, index: u32) -> String {
        let mut hex = String::with_capacity(2 * KEY_DIGEST_LEN);
        for b in &self.digest[..KEY_DIGEST_LEN] {
            hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(b & 0x0f)]));
        }
        KeyBuilder::new(Namespace::internal("chunk"), CHUNK_KEY_VERSION).build(&[
            Part::Str(main_key),
            Part::Str(&hex),
            Part::Int(i128::from(index)),
        ])
    }

    /// The keys of all chunks of the value stored under `main_key`, in order:
    /// fetch them in one batch.
    pub fn chunk_keys(&self, main_key: &str) -> Vec<String> {
        (0..self.chunk_count)
            .map(|i| self.chunk_key(main_key, i))
            .collect()
    }

    /// The length chunk `index` must have, or `None` past the last chunk.
    pub fn chunk_len(&self, index: u32) -> Option<u64> {
        if index >= self.chunk_count {
            return None;
        }
        let start = u64::from(index).checked_mul(self.chunk_size)?;
        Some(self.total_len.saturating_sub(start).min(self.chunk_size))
    }

    /// Reassembles the chunked envelope from the fetched chunks, one entry per
    /// key of [`Manifest::chunk_keys`], `None` where the tier had nothing.
    ///
    /// A missing chunk, a chunk of the wrong length, or bytes that do not
    /// match the digest is an error: the caller counts a chunk miss and
    /// treats the key as a miss. The result is an envelope: decode it with
    /// [`decode`](crate::envelope::decode).
    pub fn reassemble<B: AsRef<[u8]>>(&self, chunks: &[Option<B>]) -> Result<Vec<u8>, ChunkError> {
        if chunks.len() != self.chunk_count as usize {
            return Err(ChunkError::WrongChunkCount {
                expected: self.chunk_count,
                given: chunks.len(),
            });
        }
        for (index, chunk) in (0u32..).zip(chunks) {
            let chunk = chunk
                .as_ref()
                .ok_or(ChunkError::MissingChunk { index })?
                .as_ref();
            let expected = self.chunk_len(index).unwrap_or(0);
            if chunk.len() as u64 != expected {
                return Err(ChunkError::ChunkLength {
                    index,
                    expected,
                    actual: chunk.len(),
                });
            }
        }
        // The lengths add up to total_len (checked against the limits when
        // the manifest was read), so this allocation is bounded.
        let total = usize::try_from(self.total_len).map_err(|_| ChunkError::TooLarge {
            len: self.total_len,
            limit: usize::MAX as u64,
        })?;
        let mut whole = Vec::with_capacity(total);
        for chunk in chunks.iter().flatten() {
            whole.extend_from_slice(chunk.as_ref());
        }
        let digest: [u8; 32] = Sha256::digest(whole.as_slice()).into();
        if digest != self.digest {
            return Err(ChunkError::DigestMismatch);
        }
        if matches!(peek_header(&whole), Ok(h) if h.manifest) {
            return Err(ChunkError::NestedManifest);
        }
        Ok(whole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{decode, encode, Keyring};

    fn envelope(len: usize) -> Vec<u8> {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let header = EnvelopeHeader::new(Codec::Pickle, 1000)
            .with_soft_expiry(2000)
            .with_hard_expiry(3000)
            .with_recompute_cost(77);
        encode(&header, &payload, &EncodeOptions::new())
    }

    fn chunked(
        env: &[u8],
        limit: usize,
        opts: &EncodeOptions<'_>,
    ) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
        match split("main", env.to_vec(), limit, opts).unwrap() {
            Stored::Chunked { manifest, chunks } => (manifest, chunks),
            Stored::Single(_) => panic!("expected chunks"),
        }
    }

    fn manifest_of(bytes: &[u8]) -> Manifest {
        Manifest::decode(
            "main",
            bytes,
            &DecodeOptions::new(),
            &ManifestLimits::default(),
        )
        .unwrap()
    }

    #[test]
    fn small_values_are_single() {
        let env = envelope(100);
        assert_eq!(
            split("k", env.clone(), 1024, &EncodeOptions::new()).unwrap(),
            Stored::Single(env.clone())
        );
        let exact = envelope(5000);
        let stored = split("k", exact.clone(), exact.len(), &EncodeOptions::new()).unwrap();
        assert!(!stored.is_chunked());
        assert_eq!(stored.into_writes("k"), vec![("k".to_owned(), exact)]);
    }

    #[test]
    fn item_limit_too_small() {
        assert_eq!(
            split("k", envelope(10), 1023, &EncodeOptions::new()),
            Err(ChunkError::ItemLimitTooSmall {
                limit: 1023,
                min: 1024
            })
        );
    }

    #[test]
    fn split_refuses_non_envelopes_and_manifests() {
        let junk = vec![0u8; 5000];
        assert_eq!(
            split("k", junk, 1024, &EncodeOptions::new()),
            Err(ChunkError::Envelope(EnvelopeError::NotAnEnvelope))
        );
        let mut header = EnvelopeHeader::new(Codec::Postcard, 0);
        header.manifest = true;
        let fake = encode(&header, &[0; 3000], &EncodeOptions::new());
        assert_eq!(
            split("k", fake, 1024, &EncodeOptions::new()),
            Err(ChunkError::NestedManifest)
        );
    }

    #[test]
    fn round_trip_through_chunks() {
        let env = envelope(10_000);
        let (manifest_bytes, chunks) = chunked(&env, 4096, &EncodeOptions::new());
        assert_eq!(chunks.len(), 3);
        let main = decode(&manifest_bytes, &DecodeOptions::new()).unwrap();
        assert!(main.header.manifest);
        assert_eq!(main.header.codec, Codec::Postcard);
        assert_eq!(main.header.hard_expiry_ms, Some(3000));
        assert_eq!(main.header.recompute_cost_ms, 77);
        let m = Manifest::from_decoded(&main, &ManifestLimits::default()).unwrap();
        assert_eq!(m.total_len, env.len() as u64);
        assert_eq!(m.chunk_size, 4096);
        assert_eq!(m.chunk_count, 3);
        assert_eq!(
            m.chunk_keys("main"),
            chunks.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()
        );
        assert_eq!(m.chunk_len(0), Some(4096));
        assert_eq!(m.chunk_len(2), Some(env.len() as u64 - 8192));
        assert_eq!(m.chunk_len(3), None);
        let got: Vec<Option<&[u8]>> = chunks.iter().map(|(_, c)| Some(&c[..])).collect();
        assert_eq!(m.reassemble(&got).unwrap(), env);
        // Owned chunks work too.
        let owned: Vec<Option<Vec<u8>>> = chunks.iter().map(|(_, c)| Some(c.clone())).collect();
        assert_eq!(m.reassemble(&owned).unwrap(), env);
    }

    #[test]
    fn into_writes_puts_the_manifest_last() {
        let env = envelope(3000);
        let stored = split("main", env, 1024, &EncodeOptions::new()).unwrap();
        assert!(stored.is_chunked());
        let writes = stored.into_writes("main");
        assert_eq!(writes.len(), 4);
        assert_eq!(writes.last().unwrap().0, "main");
        assert!(writes[..3]
            .iter()
            .all(|(k, v)| k.starts_with("tiercache.chunk|v1|main|") && v.len() <= 1024));
    }

    #[test]
    fn chunk_keys_depend_on_the_value() {
        let a = manifest_of(&chunked(&envelope(3000), 1024, &EncodeOptions::new()).0);
        let b = manifest_of(&chunked(&envelope(3001), 1024, &EncodeOptions::new()).0);
        assert_ne!(a.chunk_key("main", 0), b.chunk_key("main", 0));
        assert_ne!(a.chunk_key("main", 0), a.chunk_key("other", 0));
        assert_ne!(a.chunk_key("main", 0), a.chunk_key("main", 1));
        let long_key = "k".repeat(240);
        let key = a.chunk_key(&long_key, 7);
        assert!(key.len() <= crate::key::DEFAULT_MAX_KEY_LEN);
        assert!(crate::key::is_valid_memcached_key(&key));
    }

    #[test]
    fn reassembly_errors() {
        let env = envelope(3000);
        let (mb, chunks) = chunked(&env, 1024, &EncodeOptions::new());
        let m = manifest_of(&mb);
        let mut got: Vec<Option<Vec<u8>>> = chunks.iter().map(|(_, c)| Some(c.clone())).collect();

        assert_eq!(
            m.reassemble(&got[..2]),
            Err(ChunkError::WrongChunkCount {
                expected: 3,
                given: 2
            })
        );
        let saved = got[1].take();
        assert_eq!(
            m.reassemble(&got),
            Err(ChunkError::MissingChunk { index: 1 })
        );
        got[1] = saved.map(|mut c| {
            c.pop();
            c
        });
        assert_eq!(
            m.reassemble(&got),
            Err(ChunkError::ChunkLength {
                index: 1,
                expected: 1024,
                actual: 1023
            })
        );
        got[1] = Some(vec![0; 1024]);
        assert_eq!(m.reassemble(&got), Err(ChunkError::DigestMismatch));
    }

    #[test]
    fn chunks_of_another_version_do_not_mix() {
        let (m1, c1) = chunked(&envelope(3000), 1024, &EncodeOptions::new());
        let mut other = envelope(3000);
        let n = other.len();
        other[n - 1] ^= 0xff;
        let (_, c2) = chunked(&other, 1024, &EncodeOptions::new());
        let m = manifest_of(&m1);
        let mixed = [Some(&c1[0].1[..]), Some(&c1[1].1[..]), Some(&c2[2].1[..])];
        assert_eq!(m.reassemble(&mixed), Err(ChunkError::DigestMismatch));
        // And their keys differ, so a reader would not even fetch them.
        assert_ne!(c1[2].0, c2[2].0);
    }

    #[test]
    fn signed_manifest_needs_the_key() {
        let k = Keyring::new("k1", b"sixteen byte key!").unwrap();
        let env = encode(
            &EnvelopeHeader::new(Codec::Pickle, 0),
            &[1u8; 4000],
            &EncodeOptions::new().with_signing(&k),
        );
        let (mb, chunks) = chunked(&env, 1024, &EncodeOptions::new().with_signing(&k));
        let strict = DecodeOptions::verify_with(&k);
        let m = Manifest::decode("main", &mb, &strict, &ManifestLimits::default()).unwrap();
        // Copied under another key, the signed manifest does not verify.
        assert!(matches!(
            Manifest::decode("other", &mb, &strict, &ManifestLimits::default()),
            Err(ChunkError::Envelope(EnvelopeError::BadSignature { .. }))
        ));
        let got: Vec<Option<&[u8]>> = chunks.iter().map(|(_, c)| Some(&c[..])).collect();
        let whole = m.reassemble(&got).unwrap();
        assert_eq!(decode(&whole, &strict).unwrap().payload, vec![1u8; 4000]);

        let mut forged = mb.clone();
        let n = forged.len();
        forged[n - 40] ^= 1;
        assert!(matches!(
            Manifest::decode("main", &forged, &strict, &ManifestLimits::default()),
            Err(ChunkError::Envelope(_))
        ));
        // An unsigned manifest is refused when signatures are required.
        let (unsigned, _) = chunked(&env, 1024, &EncodeOptions::new());
        assert_eq!(
            Manifest::decode("main", &unsigned, &strict, &ManifestLimits::default()),
            Err(ChunkError::Envelope(EnvelopeError::Unsigned))
        );
    }

    fn manifest_envelope(m: &Manifest) -> Vec<u8> {
        let mut header = EnvelopeHeader::new(Codec::Postcard, 0);
        header.manifest = true;
        encode(
            &header,
            &postcard::to_allocvec(m).unwrap(),
            &EncodeOptions::new(),
        )
    }

    #[test]
    fn absurd_manifests_are_refused() {
        let limits = ManifestLimits::default();
        let ok = Manifest {
            total_len: 3000,
            chunk_size: 1024,
            chunk_count: 3,
            digest: [0; 32],
        };
        assert!(
            Manifest::decode("", &manifest_envelope(&ok), &DecodeOptions::new(), &limits).is_ok()
        );
        let cases = [
            (
                Manifest {
                    total_len: u64::MAX,
                    ..ok
                },
                "too_large",
            ),
            (
                Manifest {
                    total_len: 1 << 40,
                    chunk_size: 1 << 20,
                    chunk_count: 1 << 20,
                    ..ok
                },
                "too_large",
            ),
            (
                Manifest {
                    chunk_count: u32::MAX,
                    ..ok
                },
                "too_many_chunks",
            ),
            (
                Manifest {
                    chunk_size: 0,
                    chunk_count: 0,
                    ..ok
                },
                "bad_manifest",
            ),
            (
                Manifest {
                    chunk_size: 1,
                    chunk_count: 3000,
                    ..ok
                },
                "bad_manifest",
            ),
            (
                Manifest {
                    chunk_count: 4,
                    ..ok
                },
                "bad_manifest",
            ),
            (
                Manifest {
                    chunk_size: 3000,
                    chunk_count: 1,
                    ..ok
                },
                "bad_manifest",
            ),
            (
                Manifest {
                    total_len: 0,
                    chunk_count: 0,
                    ..ok
                },
                "bad_manifest",
            ),
        ];
        for (m, kind) in cases {
            let err = Manifest::decode("", &manifest_envelope(&m), &DecodeOptions::new(), &limits)
                .unwrap_err();
            assert_eq!(err.kind(), kind, "{m:?}: {err}");
        }
        // Trailing bytes, wrong codec, not a manifest, non-canonical.
        let mut header = EnvelopeHeader::new(Codec::Postcard, 0);
        header.manifest = true;
        let mut payload = postcard::to_allocvec(&ok).unwrap();
        payload.push(0);
        let e = encode(&header, &payload, &EncodeOptions::new());
        assert_eq!(
            Manifest::decode("", &e, &DecodeOptions::new(), &limits)
                .unwrap_err()
                .kind(),
            "bad_manifest"
        );
        let e = encode(&header, &payload[..10], &EncodeOptions::new());
        assert_eq!(
            Manifest::decode("", &e, &DecodeOptions::new(), &limits)
                .unwrap_err()
                .kind(),
            "bad_manifest"
        );
        let mut padded = vec![0x80 | (3000 & 0x7f) as u8, 0x80 | (3000 >> 7) as u8, 0x00];
        padded.extend_from_slice(&postcard::to_allocvec(&ok).unwrap()[2..]);
        let e = encode(&header, &padded, &EncodeOptions::new());
        assert_eq!(
            Manifest::decode("", &e, &DecodeOptions::new(), &limits)
                .unwrap_err()
                .kind(),
            "bad_manifest"
        );
        let json = EnvelopeHeader {
            codec: Codec::Json,
            ..header
        };
        let e = encode(
            &json,
            &postcard::to_allocvec(&ok).unwrap(),
            &EncodeOptions::new(),
        );
        assert_eq!(
            Manifest::decode("", &e, &DecodeOptions::new(), &limits)
                .unwrap_err()
                .kind(),
            "bad_manifest"
        );
        let plain = envelope(10);
        assert_eq!(
            Manifest::decode("", &plain, &DecodeOptions::new(), &limits),
            Err(ChunkError::NotAManifest)
        );
    }

    #[test]
    fn nested_manifest_is_refused_on_reassembly() {
        // A forged (unsigned) manifest whose chunks form another manifest.
        let mut header = EnvelopeHeader::new(Codec::Postcard, 0);
        header.manifest = true;
        let inner = encode(&header, &[0u8; 2500], &EncodeOptions::new());
        let m = Manifest {
            total_len: inner.len() as u64,
            chunk_size: 1024,
            chunk_count: inner.len().div_ceil(1024) as u32,
            digest: Sha256::digest(&inner).into(),
        };
        let chunks: Vec<Option<&[u8]>> = inner.chunks(1024).map(Some).collect();
        assert_eq!(m.reassemble(&chunks), Err(ChunkError::NestedManifest));
    }

    #[test]
    fn error_kinds_and_messages() {
        let all = [
            ChunkError::ItemLimitTooSmall { limit: 1, min: 2 },
            ChunkError::Envelope(EnvelopeError::Unsigned),
            ChunkError::NotAManifest,
            ChunkError::BadManifest { reason: "x" },
            ChunkError::TooLarge { len: 2, limit: 1 },
            ChunkError::TooManyChunks { count: 2, limit: 1 },
            ChunkError::WrongChunkCount {
                expected: 2,
                given: 1,
            },
            ChunkError::MissingChunk { index: 0 },
            ChunkError::ChunkLength {
                index: 0,
                expected: 1,
                actual: 2,
            },
            ChunkError::DigestMismatch,
            ChunkError::NestedManifest,
        ];
        let mut kinds: Vec<_> = all.iter().map(ChunkError::kind).collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), all.len());
        for e in &all {
            assert!(e.to_string().len() > 20, "{e}");
        }
    }
}
