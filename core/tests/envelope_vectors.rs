//! Checks every vector in `tests/vectors/envelopes.json` (format described in
//! `docs/envelope-format.md`) against the envelope encoder and decoder and the
//! chunker.
//!
//! The bytes in that file are a contract with values already stored by
//! earlier deploys and by the Python and JS hosts: if this test fails, fix the
//! code, never the vector. To add vectors, add them to `generate()` below and
//! run `STRATACACHE_WRITE_VECTORS=1 cargo test -p stratacache --test envelope_vectors`;
//! the test refuses to rewrite a vector that already exists with other bytes.

use std::path::PathBuf;

use serde_json::{json, Map, Value};
use stratacache::chunk::{split, Manifest, ManifestLimits, Stored};
use stratacache::envelope::{
    decode, decode_for_key, encode_for_key, Codec, DecodeOptions, EncodeOptions, EnvelopeError,
    EnvelopeHeader, Keyring, FORMAT_VERSION,
};

const FORMAT: &str = "tiercache-envelope-1";
/// The cache key signed vectors are bound to.
const BOUND_KEY: &str = "course_outline|v1|course-v1:edX+DemoX+Demo_Course";

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/envelopes.json")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd-length hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The test keys: (key id, secret). Test-only secrets, never use them.
fn test_keys() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("2025a", b"tiercache test secret 2025a !!!!".to_vec()),
        ("2024b", b"tiercache test secret 2024b !!!!".to_vec()),
        ("gone", b"tiercache test secret gone !!!!!".to_vec()),
    ]
}

/// A keyring of the named test keys, in that order.
fn ring(keys: &[Value], all: &[(String, Vec<u8>)]) -> Option<Keyring> {
    if keys.is_empty() {
        return None;
    }
    let pairs: Vec<(&str, &[u8])> = keys
        .iter()
        .map(|id| {
            let id = id.as_str().expect("key ids are strings");
            let (id, secret) = all
                .iter()
                .find(|(k, _)| k == id)
                .unwrap_or_else(|| panic!("unknown key id {id}"));
            (id.as_str(), secret.as_slice())
        })
        .collect();
    Some(Keyring::from_keys(pairs).unwrap())
}

fn u64_str(v: u64) -> Value {
    Value::String(v.to_string())
}

fn opt_u64_str(v: Option<u64>) -> Value {
    v.map_or(Value::Null, u64_str)
}

fn parse_u64(v: &Value) -> u64 {
    v.as_str()
        .expect("64-bit numbers are decimal strings")
        .parse()
        .expect("a u64")
}

fn parse_opt_u64(v: &Value) -> Option<u64> {
    (!v.is_null()).then(|| parse_u64(v))
}

fn header_json(h: &EnvelopeHeader) -> Value {
    json!({
        "codec": h.codec.name(),
        "manifest": h.manifest,
        "created_at_ms": u64_str(h.created_at_ms),
        "soft_expiry_ms": opt_u64_str(h.soft_expiry_ms),
        "hard_expiry_ms": opt_u64_str(h.hard_expiry_ms),
        "recompute_cost_ms": u64_str(h.recompute_cost_ms),
    })
}

fn parse_header(v: &Value) -> EnvelopeHeader {
    let codec = v["codec"].as_str().expect("codec name");
    EnvelopeHeader {
        codec: Codec::ALL
            .into_iter()
            .find(|c| c.name() == codec)
            .expect("known codec"),
        manifest: v["manifest"].as_bool().expect("manifest is a bool"),
        created_at_ms: parse_u64(&v["created_at_ms"]),
        soft_expiry_ms: parse_opt_u64(&v["soft_expiry_ms"]),
        hard_expiry_ms: parse_opt_u64(&v["hard_expiry_ms"]),
        recompute_cost_ms: parse_u64(&v["recompute_cost_ms"]),
    }
}

fn keys_json() -> Value {
    Value::Array(
        test_keys()
            .into_iter()
            .map(|(id, s)| json!({"key_id": id, "secret_hex": hex(&s)}))
            .collect(),
    )
}

fn parse_keys(v: &Value) -> Vec<(String, Vec<u8>)> {
    v.as_array()
        .expect("keys is a list")
        .iter()
        .map(|k| {
            (
                k["key_id"].as_str().unwrap().to_owned(),
                unhex(k["secret_hex"].as_str().unwrap()),
            )
        })
        .collect()
}

fn course_outline_json() -> Vec<u8> {
    let mut s = String::from("{\"course_id\":\"course-v1:edX+DemoX+Demo_Course\",\"blocks\":[");
    for i in 0..6 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "{{\"id\":\"block-v1:edX+DemoX+Demo_Course+type@sequential+block@{i}\",\"type\":\"sequential\",\"graded\":false,\"children\":[]}}"
        ));
    }
    s.push_str("]}");
    s.into_bytes()
}

/// One valid vector: inputs and the encoded bytes.
fn valid(
    name: &str,
    header: EnvelopeHeader,
    payload: &[u8],
    compress_at: Option<usize>,
    sign_with: &[&str],
    keys: &[(String, Vec<u8>)],
) -> Value {
    let sign_ids: Vec<Value> = sign_with.iter().map(|s| json!(s)).collect();
    let keyring = ring(&sign_ids, keys);
    let opts = EncodeOptions {
        compress_at,
        keyring: keyring.as_ref(),
    };
    // Signed vectors are bound to a cache key; unsigned bytes do not depend
    // on it.
    let bound_key = if sign_with.is_empty() { "" } else { BOUND_KEY };
    let bytes = encode_for_key(bound_key, &header, payload, &opts);
    let lax = DecodeOptions::new().with_unsigned_pickle(true);
    let compressed = decode(&bytes, &lax).unwrap().compressed;
    json!({
        "name": name,
        "bound_key": bound_key,
        "header": header_json(&header),
        "payload_hex": hex(payload),
        "compress_at": compress_at,
        "sign_with": sign_ids,
        "compressed": compressed,
        "envelope_hex": hex(&bytes),
    })
}

fn invalid(
    name: &str,
    bytes: &[u8],
    keyring: &[&str],
    require_signature: bool,
    max: Option<usize>,
    error: &str,
) -> Value {
    json!({
        "name": name,
        "bound_key": BOUND_KEY,
        "envelope_hex": hex(bytes),
        "keyring": keyring,
        "require_signature": require_signature,
        "max_payload_len": max.map(|m| m.to_string()),
        "error": error,
    })
}

fn generate() -> Value {
    let keys: Vec<(String, Vec<u8>)> = test_keys()
        .into_iter()
        .map(|(k, s)| (k.to_owned(), s))
        .collect();
    let t0 = 1_717_171_717_000u64;
    let raw = EnvelopeHeader::new(Codec::Raw, t0);
    let json_h = EnvelopeHeader::new(Codec::Json, t0)
        .with_soft_expiry(t0 + 60_000)
        .with_hard_expiry(t0 + 86_400_000)
        .with_recompute_cost(2_500);
    let pickle_h = EnvelopeHeader::new(Codec::Pickle, t0).with_hard_expiry(t0 + 300_000);
    let outline = course_outline_json();
    // A protocol-4 pickle of the string "hi" (only a payload here; never
    // unpickle unverified bytes).
    let pickle: &[u8] = b"\x80\x04\x95\x06\x00\x00\x00\x00\x00\x00\x00\x8c\x02hi\x94.";

    let mut valid_vectors = vec![
        valid("raw_unsigned", raw, b"hello, tiercache", None, &[], &keys),
        valid("raw_empty_payload", raw, b"", None, &[], &keys),
        valid(
            "json_unsigned_with_expiry",
            json_h,
            br#"{"answer":42}"#,
            None,
            &[],
            &keys,
        ),
        valid("json_compressed", json_h, &outline, Some(64), &[], &keys),
        valid(
            "json_below_threshold_not_compressed",
            json_h,
            &outline,
            Some(outline.len() + 1),
            &[],
            &keys,
        ),
        valid("pickle_signed", pickle_h, pickle, None, &["2025a"], &keys),
        valid(
            "pickle_signed_old_key",
            pickle_h,
            pickle,
            None,
            &["2024b"],
            &keys,
        ),
        valid(
            "json_compressed_signed",
            json_h,
            &outline,
            Some(64),
            &["2025a"],
            &keys,
        ),
        valid(
            "postcard_max_values",
            EnvelopeHeader::new(Codec::Postcard, u64::MAX)
                .with_soft_expiry(0)
                .with_hard_expiry(u64::MAX)
                .with_recompute_cost(u64::MAX),
            &[0, 1, 2, 3],
            None,
            &[],
            &keys,
        ),
    ];
    for v in &mut valid_vectors {
        // Valid vectors are decoded with this keyring (see the docs).
        v["decode_keyring"] = json!(["2025a", "2024b"]);
    }

    let hex_of = |name: &str| -> Vec<u8> {
        let v = valid_vectors.iter().find(|v| v["name"] == name).unwrap();
        unhex(v["envelope_hex"].as_str().unwrap())
    };
    let raw_bytes = hex_of("raw_unsigned");
    let signed_bytes = hex_of("pickle_signed");
    let compressed_bytes = hex_of("json_compressed");

    let mut truncated = raw_bytes.clone();
    truncated.truncate(raw_bytes.len() - 3);
    let mut v2 = raw_bytes.clone();
    v2[3] = 2;
    let mut codec = raw_bytes.clone();
    codec[4] = 0x7f;
    let mut flag = raw_bytes.clone();
    flag[5] = 0x80;
    let mut trailing = raw_bytes.clone();
    trailing.push(0);
    let mut bad_sig = signed_bytes.clone();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 0x01;
    let mut bad_payload = signed_bytes.clone();
    let mid = bad_payload.len() - 32 - 6 - 3;
    bad_payload[mid] ^= 0x20;
    // Cut the LZ4 block short: the header's payload_len is no longer met.
    let bad_block = compressed_bytes[..compressed_bytes.len() - 4].to_vec();

    let invalid_vectors = vec![
        invalid("empty", b"", &[], false, None, "truncated"),
        invalid(
            "truncated_payload",
            &truncated,
            &[],
            false,
            None,
            "truncated",
        ),
        invalid(
            "truncated_prefix",
            &raw_bytes[..3],
            &[],
            false,
            None,
            "truncated",
        ),
        invalid(
            "truncated_signed_header",
            &signed_bytes[..8],
            &["2025a"],
            true,
            None,
            "truncated",
        ),
        // Cut by one byte, the trailer is read from the wrong place: the
        // byte taken as the key id length is a MAC byte.
        invalid(
            "truncated_signed_trailer",
            &signed_bytes[..signed_bytes.len() - 1],
            &["2025a"],
            true,
            None,
            "corrupt",
        ),
        invalid(
            "not_an_envelope_json",
            br#"{"answer":42}"#,
            &[],
            false,
            None,
            "not_an_envelope",
        ),
        invalid(
            "not_an_envelope_pickle",
            pickle,
            &[],
            false,
            None,
            "not_an_envelope",
        ),
        invalid("unknown_version", &v2, &[], false, None, "unknown_version"),
        invalid("unknown_codec", &codec, &[], false, None, "unknown_codec"),
        invalid("unknown_flag", &flag, &[], false, None, "corrupt"),
        invalid("trailing_bytes", &trailing, &[], false, None, "corrupt"),
        invalid(
            "bad_signature_mac",
            &bad_sig,
            &["2025a"],
            true,
            None,
            "bad_signature",
        ),
        invalid(
            "bad_signature_payload",
            &bad_payload,
            &["2025a", "2024b"],
            false,
            None,
            "bad_signature",
        ),
        invalid(
            "unsigned_when_required",
            &raw_bytes,
            &["2025a"],
            true,
            None,
            "unsigned",
        ),
        invalid(
            "unknown_key",
            &signed_bytes,
            &["2024b"],
            true,
            None,
            "unknown_key",
        ),
        invalid(
            "missing_keyring",
            &signed_bytes,
            &[],
            true,
            None,
            "missing_keyring",
        ),
        invalid("too_large", &raw_bytes, &[], false, Some(8), "too_large"),
        {
            // A signed value copied to another key (replay) does not verify.
            let mut v = invalid(
                "replayed_under_another_key",
                &signed_bytes,
                &["2025a"],
                true,
                None,
                "bad_signature",
            );
            v["bound_key"] = json!("course_outline|v1|course-v1:edX+Other+2024");
            v
        },
        invalid("decompress", &bad_block, &[], false, None, "decompress"),
    ];

    // Manifests: a value chunked for a 1 KiB tier, unsigned and signed.
    let big: Vec<u8> = (0..2500u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut manifests = Vec::new();
    for (name, sign) in [
        ("chunked_unsigned", None),
        ("chunked_signed", Some("2025a")),
    ] {
        let ids: Vec<Value> = sign.iter().map(|s| json!(s)).collect();
        let keyring = ring(&ids, &keys);
        let opts = EncodeOptions {
            compress_at: None,
            keyring: keyring.as_ref(),
        };
        let header = EnvelopeHeader::new(Codec::Raw, t0).with_hard_expiry(t0 + 3_600_000);
        let main_key = "course_blocks|v1|course-v1:edX+DemoX+Demo_Course";
        let envelope = encode_for_key(main_key, &header, &big, &opts);
        let Stored::Chunked { manifest, chunks } =
            split(main_key, envelope.clone(), 1024, &opts).unwrap()
        else {
            panic!("expected chunks");
        };
        let m = Manifest::decode(
            main_key,
            &manifest,
            &DecodeOptions::new(),
            &ManifestLimits::default(),
        )
        .unwrap();
        manifests.push(json!({
            "name": name,
            "main_key": main_key,
            "item_limit": 1024,
            "sign_with": ids,
            "header": header_json(&header),
            "payload_hex": hex(&big),
            "envelope_hex": hex(&envelope),
            "manifest": {
                "total_len": u64_str(m.total_len),
                "chunk_size": u64_str(m.chunk_size),
                "chunk_count": m.chunk_count,
                "digest_hex": hex(&m.digest),
            },
            "manifest_hex": hex(&manifest),
            "chunks": chunks.iter().map(|(k, c)| json!({"key": k, "hex": hex(c)})).collect::<Vec<_>>(),
        }));
    }

    json!({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "about": "Golden vectors for stratacache envelopes and chunk manifests. Described in docs/envelope-format.md. Existing vectors never change. The secrets are for tests only.",
        "keys": keys_json(),
        "valid": valid_vectors,
        "invalid": invalid_vectors,
        "manifests": manifests,
    })
}

fn load() -> Value {
    let text = std::fs::read_to_string(path())
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path().display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path().display()))
}

/// Writes the generated vectors when asked, keeping existing ones unchanged.
#[test]
fn write_vectors_when_asked() {
    if std::env::var_os("STRATACACHE_WRITE_VECTORS").is_none() {
        return;
    }
    let new = generate();
    if let Ok(text) = std::fs::read_to_string(path()) {
        let old: Value = serde_json::from_str(&text).unwrap();
        for section in ["valid", "invalid", "manifests"] {
            for o in old[section].as_array().unwrap() {
                if let Some(n) = new[section]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|n| n["name"] == o["name"])
                {
                    assert_eq!(
                        n, o,
                        "vector {} would change: fix the code, not the vector",
                        o["name"]
                    );
                }
            }
        }
    }
    let mut text = serde_json::to_string_pretty(&new).unwrap();
    text.push('\n');
    std::fs::write(path(), text).unwrap();
}

fn decode_options<'k>(v: &Value, keyring: Option<&'k Keyring>) -> DecodeOptions<'k> {
    let mut opts = DecodeOptions::new();
    opts.keyring = keyring;
    opts.require_signature = v["require_signature"].as_bool().unwrap_or(false);
    if let Some(m) = v["max_payload_len"].as_str() {
        opts.max_payload_len = m.parse().unwrap();
    }
    opts
}

#[test]
fn header_is_pinned() {
    let v = load();
    assert_eq!(v["format"], FORMAT);
    assert_eq!(v["format_version"], FORMAT_VERSION);
    let names: Vec<&str> = ["valid", "invalid", "manifests"]
        .iter()
        .flat_map(|s| v[*s].as_array().unwrap())
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "vector names are unique");
}

#[test]
fn valid_vectors_encode_and_decode() {
    let v = load();
    let keys = parse_keys(&v["keys"]);
    let vectors = v["valid"].as_array().unwrap();
    assert!(vectors.len() >= 5);
    for vector in vectors {
        let name = vector["name"].as_str().unwrap();
        let header = parse_header(&vector["header"]);
        let payload = unhex(vector["payload_hex"].as_str().unwrap());
        let expected = unhex(vector["envelope_hex"].as_str().unwrap());
        let sign_with = vector["sign_with"].as_array().unwrap();
        let signer = ring(sign_with, &keys);
        let compress_at = vector["compress_at"].as_u64().map(|n| n as usize);
        let opts = EncodeOptions {
            compress_at,
            keyring: signer.as_ref(),
        };
        let bound_key = vector["bound_key"].as_str().unwrap();
        assert_eq!(
            hex(&encode_for_key(bound_key, &header, &payload, &opts)),
            hex(&expected),
            "{name}: encode"
        );

        let verifier = ring(vector["decode_keyring"].as_array().unwrap(), &keys);
        let dopts = DecodeOptions {
            keyring: verifier.as_ref(),
            require_signature: !sign_with.is_empty(),
            ..DecodeOptions::new()
        };
        let d =
            decode_for_key(bound_key, &expected, &dopts).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(d.header, header, "{name}");
        assert_eq!(d.payload, payload, "{name}");
        assert_eq!(
            d.compressed,
            vector["compressed"].as_bool().unwrap(),
            "{name}"
        );
        assert_eq!(
            d.signature.key_id(),
            sign_with.first().and_then(Value::as_str),
            "{name}"
        );
    }
}

#[test]
fn invalid_vectors_fail_with_the_expected_kind() {
    let v = load();
    let keys = parse_keys(&v["keys"]);
    let vectors = v["invalid"].as_array().unwrap();
    let kinds: Vec<&str> = vectors
        .iter()
        .map(|x| x["error"].as_str().unwrap())
        .collect();
    for needed in [
        "truncated",
        "bad_signature",
        "unknown_version",
        "not_an_envelope",
        "unsigned",
    ] {
        assert!(
            kinds.contains(&needed),
            "an invalid vector of kind {needed}"
        );
    }
    for vector in vectors {
        let name = vector["name"].as_str().unwrap();
        let bytes = unhex(vector["envelope_hex"].as_str().unwrap());
        let keyring = ring(vector["keyring"].as_array().unwrap(), &keys);
        let opts = decode_options(vector, keyring.as_ref());
        let bound_key = vector["bound_key"].as_str().unwrap();
        let err: EnvelopeError = decode_for_key(bound_key, &bytes, &opts)
            .map(|_| ())
            .expect_err(name);
        assert_eq!(
            err.kind(),
            vector["error"].as_str().unwrap(),
            "{name}: {err}"
        );
    }
}

#[test]
fn manifest_vectors_split_and_reassemble() {
    let v = load();
    let keys = parse_keys(&v["keys"]);
    let vectors = v["manifests"].as_array().unwrap();
    assert!(!vectors.is_empty());
    for vector in vectors {
        let name = vector["name"].as_str().unwrap();
        let sign_with = vector["sign_with"].as_array().unwrap();
        let keyring = ring(sign_with, &keys);
        let opts = EncodeOptions {
            compress_at: None,
            keyring: keyring.as_ref(),
        };
        let header = parse_header(&vector["header"]);
        let payload = unhex(vector["payload_hex"].as_str().unwrap());
        let envelope = unhex(vector["envelope_hex"].as_str().unwrap());
        let main_key = vector["main_key"].as_str().unwrap();
        assert_eq!(
            encode_for_key(main_key, &header, &payload, &opts),
            envelope,
            "{name}: envelope"
        );
        let limit = vector["item_limit"].as_u64().unwrap() as usize;
        let expected_manifest = unhex(vector["manifest_hex"].as_str().unwrap());
        let expected_chunks: Vec<(String, Vec<u8>)> = vector["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["key"].as_str().unwrap().to_owned(),
                    unhex(c["hex"].as_str().unwrap()),
                )
            })
            .collect();
        let Stored::Chunked { manifest, chunks } =
            split(main_key, envelope.clone(), limit, &opts).unwrap()
        else {
            panic!("{name}: expected chunks");
        };
        assert_eq!(
            hex(&manifest),
            hex(&expected_manifest),
            "{name}: manifest bytes"
        );
        assert_eq!(chunks, expected_chunks, "{name}: chunks");

        let dopts = match &keyring {
            Some(k) => DecodeOptions::verify_with(k),
            None => DecodeOptions::new(),
        };
        let m = Manifest::decode(
            main_key,
            &expected_manifest,
            &dopts,
            &ManifestLimits::default(),
        )
        .unwrap();
        let mv = &vector["manifest"];
        assert_eq!(m.total_len, parse_u64(&mv["total_len"]), "{name}");
        assert_eq!(m.chunk_size, parse_u64(&mv["chunk_size"]), "{name}");
        assert_eq!(
            u64::from(m.chunk_count),
            mv["chunk_count"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(hex(&m.digest), mv["digest_hex"].as_str().unwrap(), "{name}");
        let keys_expected: Vec<String> = expected_chunks.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(m.chunk_keys(main_key), keys_expected, "{name}");
        let got: Vec<Option<&[u8]>> = expected_chunks.iter().map(|(_, c)| Some(&c[..])).collect();
        let whole = m.reassemble(&got).unwrap();
        assert_eq!(whole, envelope, "{name}");
        let d = decode_for_key(main_key, &whole, &dopts).unwrap();
        assert_eq!(d.payload, payload, "{name}");

        // The manifest's header carries the value's times.
        let md = decode_for_key(main_key, &expected_manifest, &dopts).unwrap();
        assert!(md.header.manifest);
        assert_eq!(md.header.hard_expiry_ms, header.hard_expiry_ms);
    }
}

#[test]
fn checked_in_vectors_match_the_generator() {
    // Catches a generator edit that was not written out (or the reverse).
    let file = load();
    let generated = generate();
    let _: &Map<String, Value> = generated.as_object().unwrap();
    assert_eq!(
        file, generated,
        "run with STRATACACHE_WRITE_VECTORS=1 after adding vectors"
    );
}
