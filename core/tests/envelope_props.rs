//! Property tests: envelopes round-trip, arbitrary bytes never panic, and
//! chunk loss or substitution never yields different data.

use proptest::prelude::*;
use stratacache::chunk::{split, Manifest, ManifestLimits, Stored};
use stratacache::envelope::{
    decode, encode, Codec, DecodeOptions, EncodeOptions, EnvelopeError, EnvelopeHeader, Keyring,
};

fn keyring() -> Keyring {
    Keyring::from_keys([
        ("new", &b"the new secret, 32 bytes long.."[..]),
        ("old", &b"the old secret, 32 bytes long.."[..]),
    ])
    .unwrap()
}

fn arb_header() -> impl Strategy<Value = EnvelopeHeader> {
    (
        prop::sample::select(Codec::ALL.to_vec()),
        any::<bool>(),
        any::<u64>(),
        any::<Option<u64>>(),
        any::<Option<u64>>(),
        any::<u64>(),
    )
        .prop_map(
            |(
                codec,
                manifest,
                created_at_ms,
                soft_expiry_ms,
                hard_expiry_ms,
                recompute_cost_ms,
            )| EnvelopeHeader {
                codec,
                manifest,
                created_at_ms,
                soft_expiry_ms,
                hard_expiry_ms,
                recompute_cost_ms,
            },
        )
}

/// Payloads that are sometimes compressible.
fn arb_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        (prop::collection::vec(any::<u8>(), 1..16), 0usize..300)
            .prop_map(|(unit, n)| unit.repeat(n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip(header in arb_header(), payload in arb_payload(), compress in any::<Option<u16>>(), signed in any::<bool>()) {
        let k = keyring();
        let opts = EncodeOptions { compress_at: compress.map(usize::from), keyring: signed.then_some(&k) };
        let bytes = encode(&header, &payload, &opts);
        // Unsigned pickles are decoded only by a reader that opts in.
        let dopts = if signed { DecodeOptions::verify_with(&k) } else { DecodeOptions::new().with_unsigned_pickle(true) };
        if !signed && header.codec == Codec::Pickle {
            prop_assert_eq!(decode(&bytes, &DecodeOptions::new()).unwrap_err(), EnvelopeError::UnsignedPickle);
        }
        let d = decode(&bytes, &dopts).unwrap();
        prop_assert_eq!(d.header, header);
        prop_assert_eq!(&d.payload[..], &payload[..]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let k = keyring();
        let _ = decode(&bytes, &DecodeOptions::new());
        let _ = decode(&bytes, &DecodeOptions::verify_with(&k));
        let _ = Manifest::decode("main", &bytes, &DecodeOptions::new(), &ManifestLimits::default());
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_prefix_never_panic(
        header in arb_header(),
        tail in prop::collection::vec(any::<u8>(), 0..256),
        cut in 0usize..64,
        signed in any::<bool>(),
    ) {
        // Valid magic, version and header followed by junk exercises the
        // body, trailer and decompression paths.
        let k = keyring();
        let opts = EncodeOptions { compress_at: None, keyring: signed.then_some(&k) };
        let mut bytes = encode(&header, b"", &opts);
        bytes.truncate(bytes.len().saturating_sub(cut));
        bytes.extend_from_slice(&tail);
        let _ = decode(&bytes, &DecodeOptions::new());
        let _ = decode(&bytes, &DecodeOptions::verify_with(&k));
        if let Some(flags) = bytes.get_mut(5) {
            *flags |= stratacache::envelope::FLAG_COMPRESSED;
        }
        let _ = decode(&bytes, &DecodeOptions::new());
        let _ = Manifest::decode("main", &bytes, &DecodeOptions::new(), &ManifestLimits::default());
    }

    #[test]
    fn signed_and_tampered_is_always_an_error(
        payload in arb_payload(),
        pos in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let k = keyring();
        let opts = EncodeOptions::new().with_signing(&k).with_compression(64);
        let mut bytes = encode(&EnvelopeHeader::new(Codec::Pickle, 1), &payload, &opts);
        let i = pos.index(bytes.len());
        bytes[i] ^= mask;
        prop_assert!(decode(&bytes, &DecodeOptions::verify_with(&k)).is_err());
    }

    #[test]
    fn chunk_loss_or_substitution_never_gives_other_data(
        payload in prop::collection::vec(any::<u8>(), 1024..6000),
        other in prop::collection::vec(any::<u8>(), 1024..6000),
        limit in 1024usize..2048,
        // For each chunk: 0 = keep, 1 = lose, 2 = take from the other value,
        // 3 = flip a byte, 4 = truncate.
        fate in prop::collection::vec(0u8..5, 8),
        signed in any::<bool>(),
    ) {
        let k = keyring();
        let opts = EncodeOptions { compress_at: None, keyring: signed.then_some(&k) };
        let header = EnvelopeHeader::new(Codec::Raw, 0);
        let env = encode(&header, &payload, &opts);
        let env_other = encode(&header, &other, &opts);
        let (manifest, chunks) = match split("main", env.clone(), limit, &opts).unwrap() {
            Stored::Chunked { manifest, chunks } => (manifest, chunks),
            Stored::Single(_) => return Ok(()),
        };
        let other_chunks = match split("main", env_other, limit, &opts).unwrap() {
            Stored::Chunked { chunks, .. } => chunks,
            Stored::Single(_) => Vec::new(),
        };
        let dopts = if signed { DecodeOptions::verify_with(&k) } else { DecodeOptions::new() };
        let m = Manifest::decode("main", &manifest, &dopts, &ManifestLimits::default()).unwrap();
        let mut got: Vec<Option<Vec<u8>>> = chunks.iter().map(|(_, c)| Some(c.clone())).collect();
        let mut changed = false;
        for (i, slot) in got.iter_mut().enumerate() {
            match fate.get(i).copied().unwrap_or(0) {
                1 => { *slot = None; changed = true; }
                2 => if let Some((_, c)) = other_chunks.get(i) {
                    changed |= slot.as_deref() != Some(&c[..]);
                    *slot = Some(c.clone());
                },
                3 => if let Some(c) = slot.as_mut() { c[0] ^= 1; changed = true; },
                4 => if let Some(c) = slot.as_mut() { c.pop(); changed = true; },
                _ => {}
            }
        }
        match m.reassemble(&got) {
            Ok(whole) => {
                prop_assert!(!changed);
                prop_assert_eq!(&whole, &env);
                prop_assert_eq!(&decode(&whole, &dopts).unwrap().payload[..], &payload[..]);
            }
            Err(_) => prop_assert!(changed),
        }
    }
}
