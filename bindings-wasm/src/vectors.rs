//! The core's envelope and chunk formats for JS: the shared golden vectors
//! are checked through these, and they let tests (and tools) read and write
//! envelopes directly.

use js_sys::{Array, Object};
use stratacache::chunk::{self, Manifest, ManifestLimits};
use stratacache::envelope::{
    self, Codec, DecodeOptions, EncodeOptions, EnvelopeHeader, Keyring, SignatureStatus,
};
use wasm_bindgen::prelude::*;

use crate::js::{self, get, get_bool, get_string, object, set};

/// Envelope encoding and decoding with one keyring and one set of limits.
#[wasm_bindgen]
pub struct EnvelopeCodec {
    keyring: Option<Keyring>,
    require_signature: bool,
    max_payload_len: usize,
    compress_at: Option<usize>,
}

fn opt_u64(obj: &JsValue, name: &str) -> Result<Option<u64>, JsValue> {
    let v = get(obj, name);
    if v.is_null() || v.is_undefined() {
        return Ok(None);
    }
    if let Some(n) = v.as_f64() {
        if n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0 {
            return Ok(Some(n as u64));
        }
    }
    v.as_string()
        .and_then(|text| text.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            js::type_error(&format!(
                "header field {name} must be a decimal string or a safe integer"
            ))
        })
}

fn header_of(obj: &JsValue) -> Result<EnvelopeHeader, JsValue> {
    let codec_name = get_string(obj, "codec").unwrap_or_default();
    let codec = Codec::ALL
        .into_iter()
        .find(|c| c.name() == codec_name)
        .ok_or_else(|| js::type_error(&format!("unknown codec {}", js::quote(&codec_name))))?;
    Ok(EnvelopeHeader {
        codec,
        manifest: get_bool(obj, "manifest").unwrap_or(false),
        created_at_ms: opt_u64(obj, "created_at_ms")?.unwrap_or(0),
        soft_expiry_ms: opt_u64(obj, "soft_expiry_ms")?,
        hard_expiry_ms: opt_u64(obj, "hard_expiry_ms")?,
        recompute_cost_ms: opt_u64(obj, "recompute_cost_ms")?.unwrap_or(0),
    })
}

fn opt_string(v: Option<u64>) -> JsValue {
    v.map_or(JsValue::NULL, |n| JsValue::from_str(&n.to_string()))
}

/// The header as the vectors write it (u64s as decimal strings).
fn header_object(h: &EnvelopeHeader) -> Object {
    let o = object();
    set(&o, "codec", h.codec.name());
    set(&o, "manifest", h.manifest);
    set(&o, "created_at_ms", h.created_at_ms.to_string());
    set(&o, "soft_expiry_ms", opt_string(h.soft_expiry_ms));
    set(&o, "hard_expiry_ms", opt_string(h.hard_expiry_ms));
    set(&o, "recompute_cost_ms", h.recompute_cost_ms.to_string());
    o
}

fn manifest_object(m: &Manifest) -> Object {
    let o = object();
    set(&o, "total_len", m.total_len.to_string());
    set(&o, "chunk_size", m.chunk_size.to_string());
    set(&o, "chunk_count", m.chunk_count);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hex: String = m
        .digest
        .iter()
        .flat_map(|b| {
            [
                HEX[(b >> 4) as usize] as char,
                HEX[(b & 15) as usize] as char,
            ]
        })
        .collect();
    set(&o, "digest_hex", hex);
    o
}

/// An error carrying the core's error kind (the kind names are the
/// contract; see docs/envelope-format.md for what each means).
fn kind_error(kind: &str) -> JsValue {
    js::error_with_kind(&format!("stratacache: envelope refused ({kind})"), kind)
}

#[wasm_bindgen]
impl EnvelopeCodec {
    /// A codec. `keys` is `[{ id, secret: Uint8Array }, ...]` (the first
    /// signs; empty: no signing), `compress_at` a threshold in bytes (0:
    /// never compress), `max_payload_len` 0 for the default (64 MiB).
    #[wasm_bindgen(constructor)]
    pub fn new(
        keys: JsValue,
        require_signature: bool,
        compress_at: u32,
        max_payload_len: f64,
    ) -> Result<EnvelopeCodec, JsValue> {
        let list = if keys.is_undefined() || keys.is_null() {
            Array::new()
        } else {
            Array::from(&keys)
        };
        let mut owned: Vec<(String, Vec<u8>)> = Vec::new();
        for entry in list.iter() {
            let id = get_string(&entry, "id").unwrap_or_default();
            owned.push((id, js_sys::Uint8Array::new(&get(&entry, "secret")).to_vec()));
        }
        let keyring = if owned.is_empty() {
            None
        } else {
            Some(
                Keyring::from_keys(owned.iter().map(|(id, s)| (id.as_str(), s.as_slice())))
                    .map_err(|e| js::type_error(&e.to_string()))?,
            )
        };
        Ok(EnvelopeCodec {
            keyring,
            require_signature,
            max_payload_len: if max_payload_len > 0.0 {
                max_payload_len as usize
            } else {
                envelope::DEFAULT_MAX_PAYLOAD_LEN
            },
            compress_at: (compress_at > 0).then_some(compress_at as usize),
        })
    }

    fn encode_options(&self) -> EncodeOptions<'_> {
        EncodeOptions {
            compress_at: self.compress_at,
            keyring: self.keyring.as_ref(),
        }
    }

    /// The envelope for `payload` under `header` (`{ codec, manifest,
    /// created_at_ms, soft_expiry_ms, hard_expiry_ms, recompute_cost_ms }`,
    /// times as decimal strings or numbers), its signature bound to the
    /// cache key `key` (absent: the empty key).
    pub fn encode(
        &self,
        header: JsValue,
        payload: &[u8],
        key: Option<String>,
    ) -> Result<Vec<u8>, JsValue> {
        let header = header_of(&header)?;
        Ok(envelope::encode_for_key(
            key.as_deref().unwrap_or(""),
            &header,
            payload,
            &self.encode_options(),
        ))
    }

    /// `{ header, payload, compressed, keyId, verified }`; throws an Error
    /// whose `kind` is the core's error kind (`truncated`, `bad_signature`...).
    /// The signature must be bound to `key` (absent: the empty key).
    pub fn decode(&self, bytes: &[u8], key: Option<String>) -> Result<Object, JsValue> {
        let options = DecodeOptions {
            keyring: self.keyring.as_ref(),
            require_signature: self.require_signature,
            max_payload_len: self.max_payload_len,
            allow_unsigned_pickle: false,
        };
        let decoded = envelope::decode_for_key(key.as_deref().unwrap_or(""), bytes, &options)
            .map_err(|e| kind_error(e.kind()))?;
        let o = object();
        set(&o, "header", header_object(&decoded.header));
        set(&o, "payload", js::bytes(&decoded.payload));
        set(&o, "compressed", decoded.compressed);
        set(
            &o,
            "keyId",
            decoded
                .signature
                .key_id()
                .map_or(JsValue::NULL, JsValue::from_str),
        );
        set(
            &o,
            "verified",
            matches!(decoded.signature, SignatureStatus::Verified(_)),
        );
        Ok(o)
    }

    /// Splits an envelope for a tier of `item_limit` bytes: `{ chunked,
    /// writes: [{ key, value }] }`, chunks first, the main key last.
    pub fn split(
        &self,
        main_key: &str,
        envelope: Vec<u8>,
        item_limit: f64,
    ) -> Result<Object, JsValue> {
        let options = EncodeOptions {
            compress_at: None,
            keyring: self.keyring.as_ref(),
        };
        let stored = chunk::split(main_key, envelope, item_limit as usize, &options)
            .map_err(|e| kind_error(e.kind()))?;
        let o = object();
        set(&o, "chunked", stored.is_chunked());
        let writes: Array = stored
            .into_writes(main_key)
            .into_iter()
            .map(|(key, value)| {
                let w = object();
                set(&w, "key", key);
                set(&w, "value", js::bytes(&value));
                JsValue::from(w)
            })
            .collect();
        set(&o, "writes", writes);
        Ok(o)
    }

    /// Reads a manifest envelope: `{ header, manifest, chunkKeys }`.
    #[wasm_bindgen(js_name = readManifest)]
    pub fn read_manifest(&self, main_key: &str, bytes: &[u8]) -> Result<Object, JsValue> {
        let options = DecodeOptions {
            keyring: self.keyring.as_ref(),
            require_signature: self.require_signature,
            max_payload_len: self.max_payload_len,
            allow_unsigned_pickle: false,
        };
        let decoded = envelope::decode_for_key(main_key, bytes, &options)
            .map_err(|e| kind_error(e.kind()))?;
        let manifest = Manifest::from_decoded(&decoded, &ManifestLimits::default())
            .map_err(|e| kind_error(e.kind()))?;
        let o = object();
        set(&o, "header", header_object(&decoded.header));
        set(&o, "manifest", manifest_object(&manifest));
        set(&o, "chunkKeys", js::strings(&manifest.chunk_keys(main_key)));
        Ok(o)
    }

    /// Reassembles chunks (`Uint8Array` or `null` each) per a manifest
    /// envelope; throws (kind `digest_mismatch`...) for a lost or wrong chunk.
    pub fn reassemble(
        &self,
        main_key: &str,
        manifest_bytes: &[u8],
        chunks: Vec<JsValue>,
    ) -> Result<Vec<u8>, JsValue> {
        let options = DecodeOptions {
            keyring: self.keyring.as_ref(),
            require_signature: self.require_signature,
            max_payload_len: self.max_payload_len,
            allow_unsigned_pickle: false,
        };
        let decoded = envelope::decode_for_key(main_key, manifest_bytes, &options)
            .map_err(|e| kind_error(e.kind()))?;
        let manifest = Manifest::from_decoded(&decoded, &ManifestLimits::default())
            .map_err(|e| kind_error(e.kind()))?;
        let chunks: Vec<Option<Vec<u8>>> = chunks
            .iter()
            .map(|c| {
                c.is_instance_of::<js_sys::Uint8Array>()
                    .then(|| js_sys::Uint8Array::new(c).to_vec())
            })
            .collect();
        manifest
            .reassemble(&chunks)
            .map_err(|e| kind_error(e.kind()))
    }
}
