//! Headers that claim huge sizes are refused without allocating for them.
//!
//! A counting global allocator (wrapping `System`) measures what the calling
//! thread allocates while envelopes, manifests and tiered reads decode bytes
//! whose headers claim gigabytes: a payload length, a chunk count, a chunk
//! size or a total length. Every case must stay under [`BOUND`] bytes
//! allocated in total (the claims are 1 GiB to 16 EiB), so a hostile value in
//! a shared tier can neither exhaust memory nor abort the process on an
//! allocation failure.
//!
//! The counters are per thread, so the test harness's parallel threads do
//! not disturb one another.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use stratacache::chunk::{Manifest, ManifestLimits};
use stratacache::envelope::{
    decode, decode_for_key, encode, Codec, DecodeOptions, EncodeOptions, EnvelopeError,
    EnvelopeHeader, Keyring, FLAG_COMPRESSED, FLAG_MANIFEST, FLAG_SIGNED,
};
use stratacache::tiered::{ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
use stratacache::ChunkError;

/// The most a refused hostile header may cost, in bytes allocated.
const BOUND: usize = 64 * 1024;

const GIB: u64 = 1 << 30;

thread_local! {
    /// Bytes requested by this thread (allocations and reallocations).
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
    /// The largest single request of this thread.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

fn count(size: usize) {
    // `try_with`: the thread-local may be gone while a thread exits.
    let _ = ALLOCATED.try_with(|a| a.set(a.get().saturating_add(size)));
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every method forwards to `System` with the same arguments, which
// upholds `GlobalAlloc`'s contract; the counting touches only const-initialized
// thread-locals of `Cell<usize>` (no allocation, no destructor, no reentry).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every
        // allocation goes through this wrapper).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Debug, Clone, Copy)]
struct Allocs {
    total: usize,
    largest: usize,
}

/// Runs `f` and returns its result and what this thread allocated during it
/// (the result is dropped after measuring).
fn measure<R>(f: impl FnOnce() -> R) -> (R, Allocs) {
    let (a0, l0) = (ALLOCATED.with(Cell::get), LARGEST.with(Cell::get));
    LARGEST.with(|l| l.set(0));
    let r = f();
    let allocs = Allocs {
        total: ALLOCATED.with(Cell::get) - a0,
        largest: LARGEST.with(Cell::get),
    };
    LARGEST.with(|l| l.set(l0.max(allocs.largest)));
    (r, allocs)
}

fn assert_small(what: &str, allocs: Allocs) {
    // The figures, for `cargo test --test hostile_alloc -- --nocapture`.
    eprintln!(
        "{what}: {} bytes allocated, largest {}",
        allocs.total, allocs.largest
    );
    assert!(
        allocs.total < BOUND,
        "{what}: {} bytes allocated (largest {}), bound {BOUND}",
        allocs.total,
        allocs.largest
    );
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Envelope bytes by hand: magic, version, a canonical postcard header with
/// `codec`, `flags` and a `payload_len` claim, then `body` as is.
fn envelope_claiming(codec: u8, flags: u8, payload_len: u64, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x89, b'T', b'C', 1, codec, flags];
    varint(&mut out, 1_700_000_000_000); // created_at_ms
    out.push(0); // soft_expiry_ms: None
    out.push(0); // hard_expiry_ms: None
    varint(&mut out, 0); // recompute_cost_ms
    varint(&mut out, payload_len);
    out.extend_from_slice(body);
    out
}

/// Appends a valid signature trailer for `key` (as the envelope module
/// computes it: HMAC-SHA256 over the key's length, the key and the bytes).
fn sign(mut bytes: Vec<u8>, key_id: &str, secret: &[u8], key: &str) -> Vec<u8> {
    bytes.extend_from_slice(key_id.as_bytes());
    bytes.push(key_id.len() as u8);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
    mac.update(&(key.len() as u64).to_be_bytes());
    mac.update(key.as_bytes());
    mac.update(&bytes);
    bytes.extend_from_slice(&mac.finalize().into_bytes());
    bytes
}

/// The postcard encoding of a manifest: three varints and the digest.
fn manifest_payload(total_len: u64, chunk_size: u64, chunk_count: u32) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, total_len);
    varint(&mut out, chunk_size);
    varint(&mut out, u64::from(chunk_count));
    out.extend_from_slice(&[0xAB; 32]);
    out
}

fn manifest_envelope(total_len: u64, chunk_size: u64, chunk_count: u32) -> Vec<u8> {
    let mut header = EnvelopeHeader::new(Codec::Postcard, 0);
    header.manifest = true;
    encode(
        &header,
        &manifest_payload(total_len, chunk_size, chunk_count),
        &EncodeOptions::new(),
    )
}

const HUGE: &[u64] = &[
    GIB,
    4 * GIB,
    1 << 40,
    u32::MAX as u64 + 1,
    i64::MAX as u64,
    u64::MAX,
];

#[test]
fn the_allocator_counts() {
    let (v, allocs) = measure(|| vec![0u8; 1 << 20]);
    assert!(allocs.total >= 1 << 20, "{allocs:?}");
    assert_eq!(allocs.largest, 1 << 20);
    drop(v);
}

#[test]
fn uncompressed_envelope_claiming_a_huge_payload() {
    let body = [7u8; 100];
    for &claim in HUGE {
        let bytes = envelope_claiming(0, 0, claim, &body);
        // The default limit (64 MiB) refuses the claim outright.
        let (r, allocs) = measure(|| decode(&bytes, &DecodeOptions::new()).map(|_| ()));
        assert!(
            matches!(r, Err(EnvelopeError::TooLarge { len, .. }) if len == claim),
            "{r:?}"
        );
        assert_small("default limit", allocs);
        // Without a limit, the body is shorter than the claim: truncated.
        let no_limit = DecodeOptions::new().with_max_payload_len(usize::MAX);
        let (r, allocs) = measure(|| decode(&bytes, &no_limit).map(|_| ()));
        assert!(
            matches!(
                r,
                Err(EnvelopeError::Truncated { .. } | EnvelopeError::TooLarge { .. })
            ),
            "{claim}: {r:?}"
        );
        assert_small("no limit", allocs);
    }
}

#[test]
fn compressed_envelope_claiming_a_huge_payload() {
    // A real LZ4 block of 64 bytes; the header claims far more.
    let packed = lz4_block_of(&[1u8; 64]);
    for &claim in HUGE {
        let bytes = envelope_claiming(0, FLAG_COMPRESSED, claim, &packed);
        let (r, allocs) = measure(|| decode(&bytes, &DecodeOptions::new()).map(|_| ()));
        assert!(matches!(r, Err(EnvelopeError::TooLarge { .. })), "{r:?}");
        assert_small("default limit", allocs);
        // Without a limit the claim is still refused: an LZ4 block cannot
        // expand ~256 times, so nothing is allocated for the output.
        let no_limit = DecodeOptions::new().with_max_payload_len(usize::MAX);
        let (r, allocs) = measure(|| decode(&bytes, &no_limit).map(|_| ()));
        assert!(
            matches!(
                r,
                Err(EnvelopeError::Corrupt { .. } | EnvelopeError::TooLarge { .. })
            ),
            "{claim}: {r:?}"
        );
        assert_small("no limit", allocs);
    }
}

#[test]
fn compressed_claims_within_the_ratio_allocate_in_proportion_to_the_input() {
    // What a claim can still cost: at most ~256 bytes per byte received, and
    // never more than the limit. 1 KiB of junk claiming 256 KiB allocates the
    // 256 KiB output and fails to decompress into it.
    let junk = [0xF0u8; 1024];
    let bytes = envelope_claiming(0, FLAG_COMPRESSED, 256 * 1024, &junk);
    let (r, allocs) = measure(|| decode(&bytes, &DecodeOptions::new()).map(|_| ()));
    assert!(matches!(r, Err(EnvelopeError::Decompress { .. })), "{r:?}");
    assert!(
        allocs.largest >= 256 * 1024,
        "{allocs:?}: the output was allocated"
    );
    assert!(
        allocs.total <= 256 * bytes.len() + BOUND,
        "{} bytes allocated for {} bytes of input",
        allocs.total,
        bytes.len()
    );
    // With a tighter limit the same bytes cost nothing.
    let tight = DecodeOptions::new().with_max_payload_len(64 * 1024);
    let (r, allocs) = measure(|| decode(&bytes, &tight).map(|_| ()));
    assert!(matches!(r, Err(EnvelopeError::TooLarge { .. })), "{r:?}");
    assert_small("tight limit", allocs);
}

#[test]
fn signed_envelope_claiming_a_huge_payload() {
    let secret = b"0123456789abcdef0123456789abcdef";
    let keyring = Keyring::new("k1", secret).unwrap();
    let strict = DecodeOptions::verify_with(&keyring);
    let no_limit = DecodeOptions::verify_with(&keyring).with_max_payload_len(usize::MAX);
    for &claim in HUGE {
        for flags in [FLAG_SIGNED, FLAG_SIGNED | FLAG_COMPRESSED] {
            // Correctly signed (a writer that holds the key, or a bug): the
            // claim is still refused before any allocation for it.
            let bytes = sign(
                envelope_claiming(0, flags, claim, &[9u8; 200]),
                "k1",
                secret,
                "ns|v1|k",
            );
            for options in [&strict, &no_limit] {
                let (r, allocs) =
                    measure(|| decode_for_key("ns|v1|k", &bytes, options).map(|_| ()));
                assert!(r.is_err(), "{claim} {flags}: accepted");
                assert_small("signed", allocs);
            }
            // Forged (an attacker's key): refused at the signature.
            let forged = sign(
                envelope_claiming(0, flags, claim, &[9u8; 200]),
                "k1",
                b"not the secret, but 16+ bytes",
                "ns|v1|k",
            );
            let (r, allocs) = measure(|| decode_for_key("ns|v1|k", &forged, &strict).map(|_| ()));
            assert!(
                matches!(r, Err(EnvelopeError::BadSignature { .. })),
                "{r:?}"
            );
            assert_small("forged", allocs);
        }
    }
}

#[test]
fn manifest_claiming_huge_sizes_and_counts() {
    let limits = ManifestLimits::default();
    let opts = DecodeOptions::new();
    let cases: &[(u64, u64, u32)] = &[
        // total, chunk size, count
        (1 << 40, 1 << 20, 1 << 20), // 1 TiB in 1 MiB chunks
        (u64::MAX, 1024, u32::MAX),  // everything maximal
        (4 * GIB, 4 * GIB - 1, 2),   // two chunks of 4 GiB
        (64 << 20, 1024, 65_536),    // within the size limit, 64 Ki chunks
        (u32::MAX as u64 * 1024, 1024, u32::MAX),
        (GIB, u64::MAX, 1),     // one chunk of 16 EiB
        (2048, 1024, u32::MAX), // inconsistent count
        (GIB, 0, 0),            // chunk size 0
    ];
    for &(total, size, n) in cases {
        let bytes = manifest_envelope(total, size, n);
        let (r, allocs) = measure(|| Manifest::decode("ns|v1|k", &bytes, &opts, &limits));
        assert!(
            matches!(
                r,
                Err(ChunkError::TooLarge { .. }
                    | ChunkError::TooManyChunks { .. }
                    | ChunkError::BadManifest { .. })
            ),
            "({total}, {size}, {n}): {r:?}"
        );
        assert_small("manifest", allocs);
    }
}

#[test]
fn a_manifest_accepted_under_raised_limits_still_allocates_nothing_for_its_claims() {
    // A reader that lifts every limit: the manifest (a few integers) decodes,
    // but reassembling from chunks that do not match the claim fails before
    // the claimed total is allocated.
    let limits = ManifestLimits {
        max_total_len: u64::MAX,
        max_chunk_count: u32::MAX,
    };
    let bytes = manifest_envelope(4 * GIB, 2 * GIB, 2);
    let (manifest, allocs) =
        measure(|| Manifest::decode("ns|v1|k", &bytes, &DecodeOptions::new(), &limits).unwrap());
    assert_eq!(manifest.total_len, 4 * GIB);
    assert_small("decode", allocs);
    let small = vec![0u8; 4096];
    let chunks = [Some(&small[..]), Some(&small[..])];
    let (r, allocs) = measure(|| manifest.reassemble(&chunks));
    assert!(matches!(r, Err(ChunkError::ChunkLength { .. })), "{r:?}");
    assert_small("reassemble", allocs);
    let (r, allocs) = measure(|| manifest.reassemble(&[Some(&small[..])]));
    assert!(
        matches!(r, Err(ChunkError::WrongChunkCount { .. })),
        "{r:?}"
    );
    assert_small("reassemble, wrong count", allocs);
}

#[test]
fn tiered_read_refuses_huge_claims_from_a_tier() {
    let config = TieredConfig::new(vec![TierConfig::memcached("memcached")]);
    let mut cache: TieredCache<Vec<u8>> = TieredCache::new(config).unwrap();
    let keys: Vec<String> = (0..6).map(|i| format!("ns|v1|{i}")).collect();
    let answers = vec![
        Some(envelope_claiming(0, 0, 4 * GIB, &[1; 100])),
        Some(envelope_claiming(
            0,
            FLAG_COMPRESSED,
            u64::MAX,
            &lz4_block_of(&[1; 64]),
        )),
        Some(manifest_envelope(1 << 40, 1 << 20, 1 << 20)),
        Some(manifest_envelope(u64::MAX, 1024, u32::MAX)),
        Some(envelope_claiming(3, FLAG_MANIFEST, 8 * GIB, &[0; 60])),
        Some(manifest_envelope(64 << 20, 1024, 65_536)),
    ];
    let mut read = cache
        .read_raw::<String>(keys.clone(), ReadOptions::get(), 1_700_000_000_000, 1, None)
        .unwrap();
    let Step::Fetch { tier, keys: asked } = read.next(&mut cache) else {
        panic!("expected a fetch");
    };
    assert_eq!(asked, keys);
    let (step, allocs) = measure(|| {
        read.fetched(&mut cache, tier, answers).unwrap();
        read.next(&mut cache)
    });
    // No chunk fetch for any of the manifests: the read is over.
    assert_eq!(step, Step::Done);
    assert_small("tiered read", allocs);
    assert_eq!(cache.tier_stats()[0].rejected, 6);
    let results = read.finish(&mut cache, None).unwrap();
    assert!(results.iter().all(|r| r.lookup.is_miss()));
}

/// An LZ4 block of `data`, made by the envelope encoder (the body of a
/// compressed envelope).
fn lz4_block_of(data: &[u8]) -> Vec<u8> {
    let bytes = encode(
        &EnvelopeHeader::new(Codec::Raw, 0),
        data,
        &EncodeOptions::new().with_compression(1),
    );
    // magic + version + codec + flags + created (1 varint byte for 0) +
    // two None tags + cost + payload_len (1 byte for < 128).
    let header_len = 4 + 2 + 1 + 2 + 1 + 1;
    assert_eq!(
        bytes[5] & FLAG_COMPRESSED,
        FLAG_COMPRESSED,
        "the encoder compressed it"
    );
    bytes[header_len..].to_vec()
}

#[test]
fn a_forged_manifest_within_the_limits_costs_its_chunk_keys_only_when_unsigned() {
    // The most a manifest may claim under the default limits: 4096 chunks.
    // Unsigned tiers accept it (anyone who can write the tier can also write
    // the value itself) and the read asks for 4096 chunk keys; that batch of
    // keys is the whole cost. With signing on, it is refused at once.
    let forged = manifest_envelope(4096 * 16 * 1024, 16 * 1024, 4096);
    let keyring = Keyring::new("k1", b"0123456789abcdef0123456789abcdef").unwrap();
    for signed in [false, true] {
        let mut config = TieredConfig::new(vec![TierConfig::memcached("memcached")]);
        config.keyring = signed.then(|| keyring.clone());
        let mut cache: TieredCache<Vec<u8>> = TieredCache::new(config).unwrap();
        let mut read = cache
            .read_raw::<String>(
                vec!["ns|v1|k".into()],
                ReadOptions::get(),
                1_700_000_000_000,
                1,
                None,
            )
            .unwrap();
        let Step::Fetch { tier, .. } = read.next(&mut cache) else {
            panic!("expected a fetch");
        };
        let answer = vec![Some(forged.clone())];
        let (step, allocs) = measure(|| {
            read.fetched(&mut cache, tier, answer).unwrap();
            read.next(&mut cache)
        });
        eprintln!("forged 4096-chunk manifest, signed={signed}: {allocs:?}");
        if signed {
            assert_eq!(step, Step::Done);
            assert_small("signed", allocs);
        } else {
            let Step::Fetch { keys, .. } = &step else {
                panic!("expected the chunk fetch, got {step:?}");
            };
            assert_eq!(keys.len(), 4096);
            assert!(allocs.total < 4096 * 512, "{allocs:?}");
            // The chunks are not there: a miss, counted.
            read.fetched(&mut cache, tier, vec![None; 4096]).unwrap();
            assert_eq!(read.next(&mut cache), Step::Done);
            assert_eq!(cache.tier_stats()[0].chunk_misses, 1);
        }
    }
}
