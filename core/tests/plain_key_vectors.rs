//! Checks every vector in `tests/vectors/plain-keys.json` (format
//! `stratacache-plain-key-1`, described in `docs/key-format.md`) against
//! `plain_key`, and the signing-key vectors against `signing_key_from_secret`.
//!
//! The expected strings are a contract with caches written by the Python and
//! JS hosts: if this test fails, fix the code, never the vector.

use std::collections::HashSet;
use std::path::PathBuf;

use serde_json::Value;
use stratacache::key::{
    is_valid_memcached_key, plain_key, KeyError, DEFAULT_MAX_KEY_LEN, PLAIN_KEY_ESCAPE_PREFIX,
    PLAIN_KEY_FORMAT,
};
use stratacache::signing::signing_key_from_secret;

fn load() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/plain-keys.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn raw_of(case: &Value) -> String {
    match (&case["raw"], &case["raw_repeat"]) {
        (Value::String(s), Value::Null) => s.clone(),
        (Value::Null, spec @ Value::Object(_)) => spec["unit"]
            .as_str()
            .expect("unit")
            .repeat(spec["count"].as_u64().expect("count") as usize),
        _ => panic!("case {} needs exactly one of raw, raw_repeat", case["name"]),
    }
}

#[test]
fn plain_key_vectors() {
    let doc = load();
    assert_eq!(doc["format"], PLAIN_KEY_FORMAT);
    assert_eq!(doc["default_max_len"], DEFAULT_MAX_KEY_LEN);
    assert_eq!(doc["reserved_prefix"], PLAIN_KEY_ESCAPE_PREFIX);
    let cases = doc["plain_keys"].as_array().expect("plain_keys");
    assert!(cases.len() >= 30);
    let mut names = HashSet::new();
    let mut outputs = HashSet::new();
    let mut inputs = HashSet::new();
    for case in cases {
        let name = case["name"].as_str().expect("name");
        assert!(names.insert(name), "duplicate vector name {name}");
        let raw = raw_of(case);
        let max_len = case["max_len"]
            .as_u64()
            .map_or(DEFAULT_MAX_KEY_LEN, |n| n as usize);
        let got = plain_key(&raw, max_len);
        match (&case["key"], &case["error"]) {
            (Value::String(expected), Value::Null) => {
                let got = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(&got, expected, "{name}");
                assert!(
                    is_valid_memcached_key(&got) && got.len() <= max_len,
                    "{name}"
                );
                if max_len == DEFAULT_MAX_KEY_LEN {
                    inputs.insert(raw.clone());
                    outputs.insert(got.into_owned());
                }
            }
            (Value::Null, Value::String(code)) => {
                assert_eq!(code, "max_len_out_of_range", "{name}");
                assert!(
                    matches!(got, Err(KeyError::MaxLenOutOfRange { .. })),
                    "{name}: {got:?}"
                );
            }
            _ => panic!("{name}: needs exactly one of key, error"),
        }
    }
    // Different strings, different keys.
    assert_eq!(inputs.len(), outputs.len());
}

#[test]
fn signing_key_vectors() {
    let doc = load();
    for case in doc["signing_keys"].as_array().expect("signing_keys") {
        let name = case["name"].as_str().unwrap();
        let secret = case["secret"].as_str().unwrap();
        let got = signing_key_from_secret(secret.as_bytes());
        match (&case["key_hex"], &case["error"]) {
            (Value::String(hex), Value::Null) => {
                let key = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                let got: String = key.iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(&got, hex, "{name}");
            }
            (Value::Null, Value::String(code)) => {
                assert_eq!(code, "empty_secret");
                assert!(got.is_err(), "{name}");
            }
            _ => panic!("{name}: needs exactly one of key_hex, error"),
        }
    }
}
