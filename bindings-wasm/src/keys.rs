//! The core's versioned key builder, `plain_key`, `safe_key` and the
//! signing-key derivation, for JS.

use std::borrow::Cow;

use js_sys::{ArrayBuffer, Uint8Array};
use stratacache::key::{self, OwnedPart};
use stratacache::Namespace;
use wasm_bindgen::prelude::*;

use crate::js;

/// Builds versioned keys `{namespace}|v{version}|{part}...` (format
/// `tiercache-key-1`), byte for byte as the Rust and Python hosts do.
#[wasm_bindgen]
pub struct KeyBuilder {
    inner: key::KeyBuilder,
    buf: String,
}

fn part_of(value: &JsValue, index: usize) -> Result<OwnedPart, JsValue> {
    if let Some(s) = value.as_string() {
        return Ok(OwnedPart::Str(s));
    }
    if let Some(n) = value.as_f64() {
        if n.fract() == 0.0 && n.abs() <= 9_007_199_254_740_991.0 {
            return Ok(OwnedPart::Int(n as i128));
        }
        return Err(js::type_error(&format!(
            "key part {index} is a number that is not a safe integer: pass integers as numbers up to 2^53 - 1 or as bigint, and anything else as a string"
        )));
    }
    if value.is_bigint() {
        let text: String = js_sys::BigInt::from(value.clone())
            .to_string(10)
            .map(String::from)
            .unwrap_or_default();
        return text.parse::<i128>().map(OwnedPart::Int).map_err(|_| {
            js::range_error(&format!(
                "key part {index} is a bigint outside the signed 128-bit range"
            ))
        });
    }
    if value.is_instance_of::<Uint8Array>() {
        return Ok(OwnedPart::Bytes(Uint8Array::from(value.clone()).to_vec()));
    }
    if value.is_instance_of::<ArrayBuffer>() {
        return Ok(OwnedPart::Bytes(Uint8Array::new(value).to_vec()));
    }
    let shown = if value.is_undefined() {
        "undefined".to_owned()
    } else if value.is_null() {
        "null".to_owned()
    } else {
        value.js_typeof().as_string().unwrap_or_default()
    };
    Err(js::type_error(&format!(
        "key part {index} is {shown}: key parts must be strings, integers (number or bigint) or bytes (Uint8Array)"
    )))
}

#[wasm_bindgen]
impl KeyBuilder {
    /// A builder for `namespace` at `version` (a decimal string, so versions
    /// up to 2^64 - 1 survive JS numbers), keys of at most `max_len` bytes
    /// (0: the default, 200).
    #[wasm_bindgen(constructor)]
    pub fn new(namespace: &str, version: &str, max_len: u32) -> Result<KeyBuilder, JsValue> {
        let ns = Namespace::new(namespace).map_err(|e| js::type_error(&e.to_string()))?;
        let version: u64 = version.parse().map_err(|_| {
            js::type_error(&format!(
                "key version {} is not an integer from 0 to 2^64 - 1",
                js::quote(version)
            ))
        })?;
        let mut inner = key::KeyBuilder::new(ns, version);
        if max_len != 0 {
            inner = inner
                .with_max_len(max_len as usize)
                // `js/key.js` checks the range first, with the core's message.
                .map_err(|_| js::range_error("stratacache: maxLen is out of range"))?;
        }
        Ok(KeyBuilder {
            inner,
            buf: String::new(),
        })
    }

    /// The key for `parts` (strings, safe integers, bigints, `Uint8Array`s).
    pub fn build(&mut self, parts: Vec<JsValue>) -> Result<String, JsValue> {
        let owned = parts
            .iter()
            .enumerate()
            .map(|(i, p)| part_of(p, i))
            .collect::<Result<Vec<_>, _>>()?;
        self.inner.build_owned_into(&owned, &mut self.buf);
        Ok(self.buf.clone())
    }

    /// The maximum key length in bytes.
    #[wasm_bindgen(getter, js_name = maxLen)]
    pub fn max_len(&self) -> u32 {
        self.inner.max_len() as u32
    }
}

/// Makes any non-empty string a valid memcached key of at most `max_len`
/// bytes (0: 200), as the core's `safe_key` does; empty where the core
/// refuses (an empty key, a `max_len` out of range): `js/key.js` throws
/// then (no error formatting in the module: size budget).
#[wasm_bindgen(js_name = safeKey)]
pub fn safe_key(raw: &str, max_len: u32) -> String {
    key::safe_key(raw, max_len_or_default(max_len)).unwrap_or_default()
}

/// True if memcached (and so every tier) accepts `key` as it is.
#[wasm_bindgen(js_name = isValidKey)]
pub fn is_valid_key(key: &str) -> bool {
    key::is_valid_memcached_key(key)
}

fn max_len_or_default(max_len: u32) -> usize {
    if max_len == 0 {
        key::DEFAULT_MAX_KEY_LEN
    } else {
        max_len as usize
    }
}

/// The remote key for a plain string key (format `stratacache-plain-key-1`,
/// the core's `plain_key`): the same string in Python, Rust and JS. Empty
/// for a `max_len` out of range (never a key: `""` maps to `%~`), which
/// `js/key.js` refuses with the core's message.
#[wasm_bindgen(js_name = plainKey)]
pub fn plain_key(raw: String, max_len: u32) -> String {
    key::plain_key_owned(raw, max_len_or_default(max_len)).unwrap_or_default()
}

/// The remote keys the tiered cache uses for the host's keys (the core's
/// `plain_key` at the default maximum length), in place.
// One copy of the mapping in the module (size budget), not one per caller.
#[inline(never)]
pub(crate) fn to_remote(keys: &mut [String]) {
    for key in keys {
        // The default maximum length is in range: `plain_key` cannot fail here.
        if let Ok(Cow::Owned(remote)) = key::plain_key(key, key::DEFAULT_MAX_KEY_LEN) {
            *key = remote;
        }
    }
}

/// The 32-byte signing key derived from a secret (UTF-8 bytes), as every
/// host derives it (`stratacache::signing::signing_key_from_secret`); empty
/// for an empty secret, which `js/key.js` refuses with the core's message
/// (no error formatting in the module: size budget).
#[wasm_bindgen(js_name = signingKeyFromSecret)]
pub fn signing_key_from_secret(secret: &[u8]) -> Vec<u8> {
    stratacache::signing_key_from_secret(secret)
        .map(|k| k.to_vec())
        .unwrap_or_default()
}
