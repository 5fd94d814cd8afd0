"""Cross-language vectors (tests/vectors/*.json) through the Python API."""

import json
from pathlib import Path

import pytest

from stratacache import Key, _core, safe_key
from stratacache.keys import normalize_key

VECTORS = Path(__file__).resolve().parents[2] / "tests" / "vectors"
KEYS = json.loads((VECTORS / "keys.json").read_text())


def _text(case, field):
    if field in case:
        return case[field]
    rep = case[field + "_repeat"]
    return rep["unit"] * rep["count"]


def _part(part):
    ((kind, value),) = part.items()
    if kind == "str":
        return value
    if kind == "int":
        return int(value)
    if kind == "bytes_hex":
        return bytes.fromhex(value)
    if kind == "str_repeat":
        return value["unit"] * value["count"]
    raise AssertionError(f"unknown part kind {kind}")


@pytest.mark.parametrize("case", KEYS["vectors"], ids=[c["name"] for c in KEYS["vectors"]])
def test_key_vector(case):
    max_len = case.get("max_len", KEYS["default_max_len"])
    parts = [_part(p) for p in case["parts"]]
    if "error" in case:
        with pytest.raises(ValueError):
            Key(case["namespace"], int(case["version"]), max_len)(*parts)
        return
    key = Key(case["namespace"], int(case["version"]), max_len)(*parts)
    assert key == case["key"]
    assert _core.is_valid_memcached_key(key)
    assert normalize_key(key, max_len) == key  # a built key is its own plain key
    assert normalize_key(str(key)) == normalize_key(key)  # str() of it is the same key


@pytest.mark.parametrize("case", KEYS["safe_keys"], ids=[c["name"] for c in KEYS["safe_keys"]])
def test_safe_key_vector(case):
    raw = _text(case, "raw")
    max_len = case.get("max_len", KEYS["default_max_len"])
    if "error" in case:
        with pytest.raises(ValueError):
            safe_key(raw, max_len)
        return
    assert safe_key(raw, max_len) == case["key"]
    assert _core.is_valid_memcached_key(case["key"])
    # The caches map plain str keys with plain_key (tests/vectors/plain-keys.json),
    # not safe_key: safe_key stays available for Django's KEY_FUNCTION.


def test_key_format_name_matches():
    assert KEYS["format"] == _core.KEY_FORMAT
