"""tests/vectors/envelopes.json through the Python API (stratacache._core)."""

import json
from pathlib import Path

import pytest

from stratacache import EnvelopeError, _core

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "tests" / "vectors" / "envelopes.json").read_text()
)
KEYS = {k["key_id"]: bytes.fromhex(k["secret_hex"]) for k in VECTORS["keys"]}


def ring(ids):
    return [(i, KEYS[i]) for i in ids] or None


def opt_int(v):
    return None if v is None else int(v)


def test_format_is_pinned():
    assert VECTORS["format"] == "tiercache-envelope-1"
    assert VECTORS["format_version"] == _core.ENVELOPE_FORMAT_VERSION


@pytest.mark.parametrize("case", VECTORS["valid"], ids=[c["name"] for c in VECTORS["valid"]])
def test_valid_vector(case):
    header = case["header"]
    payload = bytes.fromhex(case["payload_hex"])
    expected = bytes.fromhex(case["envelope_hex"])
    sealed = _core.encode_envelope(
        payload,
        codec=header["codec"],
        created_at_ms=int(header["created_at_ms"]),
        soft_expiry_ms=opt_int(header["soft_expiry_ms"]),
        hard_expiry_ms=opt_int(header["hard_expiry_ms"]),
        recompute_cost_ms=int(header["recompute_cost_ms"]),
        compress_at=case["compress_at"],
        signing_keys=ring(case["sign_with"]),
        key=case["bound_key"],
    )
    assert sealed.hex() == expected.hex()
    opened = _core.decode_envelope(
        expected,
        signing_keys=ring(case["decode_keyring"]),
        require_signature=bool(case["sign_with"]),
        key=case["bound_key"],
    )
    got = opened["header"]
    assert got["codec"] == header["codec"] and got["manifest"] == header["manifest"]
    assert got["created_at_ms"] == int(header["created_at_ms"])
    assert got["soft_expiry_ms"] == opt_int(header["soft_expiry_ms"])
    assert got["hard_expiry_ms"] == opt_int(header["hard_expiry_ms"])
    assert got["recompute_cost_ms"] == int(header["recompute_cost_ms"])
    assert opened["payload"] == payload
    assert opened["compressed"] == case["compressed"]
    assert opened["key_id"] == (case["sign_with"][0] if case["sign_with"] else None)


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=[c["name"] for c in VECTORS["invalid"]])
def test_invalid_vector(case):
    kwargs = {
        "signing_keys": ring(case["keyring"]),
        "require_signature": case["require_signature"],
        "key": case["bound_key"],
    }
    if case["max_payload_len"] is not None:
        kwargs["max_payload_len"] = int(case["max_payload_len"])
    with pytest.raises(EnvelopeError) as info:
        _core.decode_envelope(bytes.fromhex(case["envelope_hex"]), **kwargs)
    assert info.value.kind == case["error"]
    assert str(info.value)  # a message that says what to do


@pytest.mark.parametrize("case", VECTORS["manifests"], ids=[c["name"] for c in VECTORS["manifests"]])
def test_manifest_vector(case):
    envelope = bytes.fromhex(case["envelope_hex"])
    key = case["main_key"]
    signing = ring(case["sign_with"])
    writes = _core.split_envelope(key, envelope, case["item_limit"], signing_keys=signing)
    expected = [(c["key"], c["hex"]) for c in case["chunks"]] + [(key, case["manifest_hex"])]
    assert [(k, v.hex()) for k, v in writes] == expected
    manifest_bytes = bytes.fromhex(case["manifest_hex"])
    manifest = _core.decode_manifest(
        key, manifest_bytes, signing_keys=signing, require_signature=bool(signing)
    )
    assert manifest["chunk_count"] == case["manifest"]["chunk_count"]
    assert manifest["total_len"] == int(case["manifest"]["total_len"])
    assert manifest["digest"] == case["manifest"]["digest_hex"]
    assert manifest["chunk_keys"] == [c["key"] for c in case["chunks"]]
    chunks = [bytes.fromhex(c["hex"]) for c in case["chunks"]]
    whole = _core.join_chunks(
        key, manifest_bytes, chunks, signing_keys=signing, require_signature=bool(signing)
    )
    assert whole == envelope
    with pytest.raises(EnvelopeError):
        _core.join_chunks(key, manifest_bytes, [*chunks[:-1], None], signing_keys=signing)
