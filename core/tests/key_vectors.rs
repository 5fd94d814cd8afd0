//! Checks every vector in `tests/vectors/keys.json` (format described in
//! `docs/key-format.md`) against the key builder and `safe_key`.
//!
//! The expected strings in that file are a contract with caches written by
//! earlier deploys and by the Python and JS hosts: if this test fails, fix the
//! code, never the vector.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;
use stratacache::key::{
    is_valid_memcached_key, safe_key, KeyBuilder, KeyError, Part, DEFAULT_MAX_KEY_LEN, KEY_FORMAT,
};
use stratacache::Namespace;

fn load() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/keys.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// An owned part, decoded from the JSON form.
enum OwnedPart {
    Str(String),
    Int(i128),
    Bytes(Vec<u8>),
}

impl OwnedPart {
    fn as_part(&self) -> Part<'_> {
        match self {
            OwnedPart::Str(s) => Part::Str(s),
            OwnedPart::Int(n) => Part::Int(*n),
            OwnedPart::Bytes(b) => Part::Bytes(b),
        }
    }
}

fn hex_decode(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd-length bytes_hex {hex:?}");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("bytes_hex is hex"))
        .collect()
}

fn repeat(spec: &Value) -> String {
    let unit = spec["unit"].as_str().expect("repeat unit is a string");
    let count = spec["count"].as_u64().expect("repeat count is a number");
    unit.repeat(count as usize)
}

fn decode_part(part: &Value) -> OwnedPart {
    let obj = part.as_object().expect("a part is an object");
    assert_eq!(obj.len(), 1, "a part has exactly one field: {part}");
    let (kind, value) = obj.iter().next().unwrap();
    match kind.as_str() {
        "str" => OwnedPart::Str(value.as_str().expect("str is a string").to_owned()),
        "int" => OwnedPart::Int(
            value
                .as_str()
                .expect("int is a decimal string")
                .parse()
                .expect("int fits in i128"),
        ),
        "bytes_hex" => OwnedPart::Bytes(hex_decode(value.as_str().expect("bytes_hex is a string"))),
        "str_repeat" => OwnedPart::Str(repeat(value)),
        other => panic!("unknown part kind {other:?}"),
    }
}

fn error_code(err: &KeyError) -> &'static str {
    match err {
        KeyError::MaxLenOutOfRange { .. } => "max_len_out_of_range",
        KeyError::EmptyKey => "empty_key",
    }
}

fn max_len(case: &Value) -> Option<usize> {
    case.get("max_len")
        .map(|m| m.as_u64().expect("max_len is a number") as usize)
}

/// Compares one result with the case's `key` or `error`; returns a failure
/// message or `None`.
fn check(case: &Value, got: Result<String, KeyError>) -> Option<String> {
    let name = case["name"].as_str().expect("every case has a name");
    match (case.get("key"), case.get("error"), got) {
        (Some(want), None, Ok(got)) => {
            let want = want.as_str().expect("key is a string");
            if got != want {
                return Some(format!(
                    "{name}: want {want:?}\n{:>w$}  got  {got:?}",
                    "",
                    w = name.len()
                ));
            }
            if !is_valid_memcached_key(&got) {
                return Some(format!("{name}: {got:?} is not a valid memcached key"));
            }
            None
        }
        (None, Some(want), Err(err)) => {
            let want = want.as_str().expect("error is a string");
            (error_code(&err) != want).then(|| format!("{name}: want error {want}, got {err:?}"))
        }
        (None, Some(want), Ok(got)) => Some(format!("{name}: want error {want}, got key {got:?}")),
        (Some(want), None, Err(err)) => Some(format!("{name}: want {want}, got error {err}")),
        _ => Some(format!(
            "{name}: a case has exactly one of \"key\" and \"error\""
        )),
    }
}

fn run_vector(case: &Value) -> Result<String, KeyError> {
    let namespace = Namespace::new(case["namespace"].as_str().expect("namespace is a string"))
        .expect("vector namespaces are valid");
    let version: u64 = case["version"]
        .as_str()
        .expect("version is a decimal string")
        .parse()
        .expect("version fits in u64");
    let owned: Vec<OwnedPart> = case["parts"]
        .as_array()
        .expect("parts is a list")
        .iter()
        .map(decode_part)
        .collect();
    let parts: Vec<Part<'_>> = owned.iter().map(OwnedPart::as_part).collect();
    let mut builder = KeyBuilder::new(namespace, version);
    if let Some(n) = max_len(case) {
        builder = builder.with_max_len(n)?;
    }
    let key = builder.build(&parts);
    let mut buf = String::from("stale contents");
    builder.build_into(&parts, &mut buf);
    assert_eq!(buf, key, "build_into and build disagree");
    Ok(key)
}

fn run_safe_key(case: &Value) -> Result<String, KeyError> {
    let raw = match (case.get("raw"), case.get("raw_repeat")) {
        (Some(raw), None) => raw.as_str().expect("raw is a string").to_owned(),
        (None, Some(spec)) => repeat(spec),
        _ => panic!("a safe_keys case has exactly one of \"raw\" and \"raw_repeat\": {case}"),
    };
    safe_key(&raw, max_len(case).unwrap_or(DEFAULT_MAX_KEY_LEN))
}

#[test]
fn header_matches_the_code() {
    let doc = load();
    assert_eq!(doc["format"], KEY_FORMAT);
    assert_eq!(doc["default_max_len"], DEFAULT_MAX_KEY_LEN as u64);
}

#[test]
fn every_versioned_key_vector() {
    let doc = load();
    let cases = doc["vectors"].as_array().expect("vectors is a list");
    assert!(cases.len() >= 60, "expected the full vector set");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| check(case, run_vector(case)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} vectors fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_safe_key_vector() {
    let doc = load();
    let cases = doc["safe_keys"].as_array().expect("safe_keys is a list");
    assert!(cases.len() >= 15, "expected the full safe_key set");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| check(case, run_safe_key(case)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} safe_key vectors fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    for case in cases {
        if let Some(key) = case.get("key").and_then(Value::as_str) {
            assert!(!key.contains('|'), "{key:?} contains '|'");
        }
    }
}

#[test]
fn names_are_unique_and_keys_distinct() {
    let doc = load();
    let mut names = HashMap::new();
    let mut keys = HashMap::new();
    for list in ["vectors", "safe_keys"] {
        for case in doc[list].as_array().unwrap() {
            let name = format!("{list}/{}", case["name"].as_str().unwrap());
            assert!(
                names.insert(name.clone(), ()).is_none(),
                "duplicate name {name}"
            );
            if let Some(key) = case.get("key").and_then(Value::as_str) {
                if let Some(other) = keys.insert(key.to_owned(), name.clone()) {
                    // Only safe_key cases may share a key with one another
                    // when the raw strings are the same; none do today.
                    panic!("{name} and {other} expect the same key {key:?}");
                }
            }
        }
    }
}
