//! Envelopes and chunks as Python functions: used by the cross-language
//! vector tests and by tools that inspect what a tier holds.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use stratacache::chunk::{self, Manifest, ManifestLimits};
use stratacache::envelope::{
    self, Codec, DecodeOptions, EncodeOptions, EnvelopeHeader, Keyring, SignatureStatus,
};

use crate::util::new_error;

/// A keyring from `[(key_id, secret), ...]` (secret: bytes or str); `None`
/// for an empty list.
pub fn keyring_from(keys: Option<Vec<(String, Vec<u8>)>>) -> PyResult<Option<Keyring>> {
    let Some(keys) = keys.filter(|k| !k.is_empty()) else {
        return Ok(None);
    };
    Keyring::from_keys(
        keys.iter()
            .map(|(id, secret)| (id.as_str(), secret.as_slice())),
    )
    .map(Some)
    .map_err(|e| PyValueError::new_err(e.to_string()))
}

pub fn codec_from(name: &str) -> PyResult<Codec> {
    Codec::ALL.into_iter().find(|c| c.name() == name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown codec {name:?}: the envelope format knows \"raw\", \"json\", \"pickle\" and \"postcard\""
        ))
    })
}

fn header_dict<'py>(py: Python<'py>, header: &EnvelopeHeader) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("codec", header.codec.name())?;
    d.set_item("manifest", header.manifest)?;
    d.set_item("created_at_ms", header.created_at_ms)?;
    d.set_item("soft_expiry_ms", header.soft_expiry_ms)?;
    d.set_item("hard_expiry_ms", header.hard_expiry_ms)?;
    d.set_item("recompute_cost_ms", header.recompute_cost_ms)?;
    Ok(d)
}

/// Seals `payload` in an envelope.
#[pyfunction]
#[pyo3(signature = (payload, *, codec = "raw", created_at_ms, soft_expiry_ms = None, hard_expiry_ms = None,
                    recompute_cost_ms = 0, compress_at = None, signing_keys = None, key = None))]
#[allow(clippy::too_many_arguments)]
fn encode_envelope<'py>(
    py: Python<'py>,
    payload: &[u8],
    codec: &str,
    created_at_ms: u64,
    soft_expiry_ms: Option<u64>,
    hard_expiry_ms: Option<u64>,
    recompute_cost_ms: u64,
    compress_at: Option<usize>,
    signing_keys: Option<Vec<(String, Vec<u8>)>>,
    key: Option<&str>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut header = EnvelopeHeader::new(codec_from(codec)?, created_at_ms)
        .with_recompute_cost(recompute_cost_ms);
    header.soft_expiry_ms = soft_expiry_ms;
    header.hard_expiry_ms = hard_expiry_ms;
    let keyring = keyring_from(signing_keys)?;
    let options = EncodeOptions {
        compress_at,
        keyring: keyring.as_ref(),
    };
    let sealed = match key {
        Some(key) => envelope::encode_for_key(key, &header, payload, &options),
        None => envelope::encode(&header, payload, &options),
    };
    Ok(PyBytes::new(py, &sealed))
}

/// Opens an envelope: a dict with `header`, `payload`, `compressed` and
/// `key_id`; raises `EnvelopeError` (with `.kind`) for anything unusable,
/// including an unverified pickle (`unsigned_pickle`) unless
/// `allow_unsigned_pickle=True`.
#[pyfunction]
#[pyo3(signature = (data, *, signing_keys = None, require_signature = false, max_payload_len = envelope::DEFAULT_MAX_PAYLOAD_LEN, key = None, allow_unsigned_pickle = false))]
fn decode_envelope<'py>(
    py: Python<'py>,
    data: &[u8],
    signing_keys: Option<Vec<(String, Vec<u8>)>>,
    require_signature: bool,
    max_payload_len: usize,
    key: Option<&str>,
    allow_unsigned_pickle: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let keyring = keyring_from(signing_keys)?;
    let options = DecodeOptions {
        keyring: keyring.as_ref(),
        require_signature,
        max_payload_len,
        allow_unsigned_pickle,
    };
    let decoded = match key {
        Some(key) => envelope::decode_for_key(key, data, &options),
        None => envelope::decode(data, &options),
    }
    .map_err(|e| new_error(py, "EnvelopeError", (e.kind(), e.to_string())))?;
    let d = PyDict::new(py);
    d.set_item("header", header_dict(py, &decoded.header)?)?;
    d.set_item("compressed", decoded.compressed)?;
    d.set_item(
        "key_id",
        match decoded.signature {
            SignatureStatus::Unsigned => None,
            other => other.key_id(),
        },
    )?;
    d.set_item("verified", decoded.signature.is_verified())?;
    d.set_item("payload", PyBytes::new(py, &decoded.payload))?;
    Ok(d)
}

/// Splits an envelope for a tier whose items hold `item_limit` bytes: a list
/// of `(key, bytes)` writes, chunks first and the main key (value or
/// manifest) last.
#[pyfunction]
#[pyo3(signature = (main_key, data, item_limit, *, signing_keys = None))]
fn split_envelope<'py>(
    py: Python<'py>,
    main_key: &str,
    data: Vec<u8>,
    item_limit: usize,
    signing_keys: Option<Vec<(String, Vec<u8>)>>,
) -> PyResult<Vec<(String, Bound<'py, PyBytes>)>> {
    let keyring = keyring_from(signing_keys)?;
    let options = EncodeOptions {
        compress_at: None,
        keyring: keyring.as_ref(),
    };
    let stored = chunk::split(main_key, data, item_limit, &options)
        .map_err(|e| new_error(py, "EnvelopeError", (e.kind(), e.to_string())))?;
    Ok(stored
        .into_writes(main_key)
        .into_iter()
        .map(|(k, v)| (k, PyBytes::new(py, &v)))
        .collect())
}

/// Reads a chunk manifest envelope: a dict with `total_len`, `chunk_size`,
/// `chunk_count`, `digest` (hex) and `chunk_keys` for `main_key`.
#[pyfunction]
#[pyo3(signature = (main_key, data, *, signing_keys = None, require_signature = false))]
fn decode_manifest<'py>(
    py: Python<'py>,
    main_key: &str,
    data: &[u8],
    signing_keys: Option<Vec<(String, Vec<u8>)>>,
    require_signature: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let keyring = keyring_from(signing_keys)?;
    let options = DecodeOptions {
        keyring: keyring.as_ref(),
        require_signature,
        max_payload_len: envelope::DEFAULT_MAX_PAYLOAD_LEN,
        allow_unsigned_pickle: false,
    };
    let manifest = Manifest::decode(main_key, data, &options, &ManifestLimits::default())
        .map_err(|e| new_error(py, "EnvelopeError", (e.kind(), e.to_string())))?;
    let d = PyDict::new(py);
    d.set_item("total_len", manifest.total_len)?;
    d.set_item("chunk_size", manifest.chunk_size)?;
    d.set_item("chunk_count", manifest.chunk_count)?;
    d.set_item(
        "digest",
        manifest
            .digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    )?;
    d.set_item("chunk_keys", manifest.chunk_keys(main_key))?;
    Ok(d)
}

/// Reassembles the chunked envelope a manifest describes from its chunks
/// (`None` for a lost chunk, which raises `EnvelopeError`).
#[pyfunction]
#[pyo3(signature = (main_key, manifest, chunks, *, signing_keys = None, require_signature = false))]
fn join_chunks<'py>(
    py: Python<'py>,
    main_key: &str,
    manifest: &[u8],
    chunks: Vec<Option<Vec<u8>>>,
    signing_keys: Option<Vec<(String, Vec<u8>)>>,
    require_signature: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let keyring = keyring_from(signing_keys)?;
    let options = DecodeOptions {
        keyring: keyring.as_ref(),
        require_signature,
        max_payload_len: envelope::DEFAULT_MAX_PAYLOAD_LEN,
        allow_unsigned_pickle: false,
    };
    let manifest = Manifest::decode(main_key, manifest, &options, &ManifestLimits::default())
        .map_err(|e| new_error(py, "EnvelopeError", (e.kind(), e.to_string())))?;
    let joined = manifest
        .reassemble(&chunks)
        .map_err(|e| new_error(py, "EnvelopeError", (e.kind(), e.to_string())))?;
    Ok(PyBytes::new(py, &joined))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode_envelope, m)?)?;
    m.add_function(wrap_pyfunction!(decode_envelope, m)?)?;
    m.add_function(wrap_pyfunction!(split_envelope, m)?)?;
    m.add_function(wrap_pyfunction!(decode_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(join_chunks, m)?)?;
    m.add("ENVELOPE_FORMAT_VERSION", envelope::FORMAT_VERSION)?;
    m.add("MEMCACHED_VALUE_LIMIT", chunk::MEMCACHED_VALUE_LIMIT)?;
    m.add("MIN_ITEM_LIMIT", chunk::MIN_ITEM_LIMIT)?;
    Ok(())
}
