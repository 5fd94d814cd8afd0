//! Arbitrary bytes as a manifest (the envelope under a main key), then
//! arbitrary chunks reassembled against it: never a panic, never an
//! allocation beyond the limits, and reassembly only succeeds for chunks
//! whose digest matches.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use stratacache::chunk::{Manifest, ManifestLimits};
use stratacache::envelope::{encode, Codec, DecodeOptions, EncodeOptions, EnvelopeHeader};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// Either raw bytes decoded as an envelope, or a payload wrapped in a
    /// manifest envelope (so the fuzzer reaches the manifest parser quickly).
    wrap: bool,
    bytes: &'a [u8],
    chunks: Vec<Option<&'a [u8]>>,
}

fuzz_target!(|input: Input<'_>| {
    let limits = ManifestLimits {
        max_total_len: 1 << 20,
        max_chunk_count: 64,
    };
    let envelope;
    let bytes = if input.wrap {
        let mut header = EnvelopeHeader::new(Codec::Postcard, 0);
        header.manifest = true;
        envelope = encode(&header, input.bytes, &EncodeOptions::new());
        &envelope[..]
    } else {
        input.bytes
    };
    let Ok(manifest) = Manifest::decode("", bytes, &DecodeOptions::new(), &limits) else {
        return;
    };
    assert!(manifest.total_len <= limits.max_total_len);
    assert!(manifest.chunk_count <= limits.max_chunk_count);
    let keys = manifest.chunk_keys("main");
    assert_eq!(keys.len(), manifest.chunk_count as usize);
    if let Ok(whole) = manifest.reassemble(&input.chunks) {
        assert_eq!(whole.len() as u64, manifest.total_len);
    }
});
