//! Arbitrary bytes through `envelope::decode` under several options: it must
//! never panic, a verified decode must only succeed for bytes that carry a
//! valid signature, and a successful decode re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stratacache::envelope::{decode, encode, DecodeOptions, EncodeOptions, Keyring, SignatureStatus};

fuzz_target!(|data: &[u8]| {
    let keyring = Keyring::from_keys([
        ("k1", &b"fuzz secret number one!!"[..]),
        ("k2", &b"fuzz secret number two!!"[..]),
    ])
    .expect("valid keyring");
    let small = DecodeOptions::new().with_max_payload_len(1 << 20);

    if let Ok(d) = decode(data, &small) {
        assert!(d.payload.len() <= 1 << 20);
        // Canonical form: an unsigned, uncompressed envelope re-encodes to
        // exactly its own bytes.
        if d.signature == SignatureStatus::Unsigned && !d.compressed {
            assert_eq!(encode(&d.header, &d.payload, &EncodeOptions::new()), data);
        }
    }
    let strict = DecodeOptions::verify_with(&keyring).with_max_payload_len(1 << 20);
    if let Ok(d) = decode(data, &strict) {
        // Only reachable by the fuzzer forging an HMAC: that would be a bug.
        assert!(d.signature.is_verified());
    }
    let lax_ring = DecodeOptions {
        require_signature: false,
        ..strict
    };
    let _ = decode(data, &lax_ring);
});
