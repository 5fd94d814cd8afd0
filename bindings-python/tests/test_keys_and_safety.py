"""Plain string keys (format stratacache-plain-key-1), signing keys derived
from a secret, and the safe defaults around pickle, through the Python
package and a real memcached."""

from __future__ import annotations

import importlib.util
import json
import pickle
import uuid
from pathlib import Path

import pytest

from stratacache import (
    MISSING,
    ConfigurationError,
    Key,
    TieredCache,
    _core,
    normalize_key,
    plain_key,
    signing_keys_from_secret,
)

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "tests" / "vectors" / "plain-keys.json").read_text()
)
KEYS = signing_keys_from_secret("test_keys_and_safety secret")


def _raw(case):
    if "raw" in case:
        return case["raw"]
    return case["raw_repeat"]["unit"] * case["raw_repeat"]["count"]


def odd_keys() -> list:
    """Over 200 distinct plain keys a host may pass: separators, spaces,
    Unicode, control characters, the escape prefix, near-empty, 10 KB. One
    list for both hosts: the cross-runtime test's (bindings-wasm/test/cross/odd_keys.py)."""
    path = Path(__file__).resolve().parents[2] / "bindings-wasm" / "test" / "cross" / "odd_keys.py"
    spec = importlib.util.spec_from_file_location("stratacache_cross_odd_keys", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    keys = module.odd_keys()
    assert len(keys) >= 200 and len(set(keys)) == len(keys)
    return keys


# -- the mapping --------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["plain_keys"], ids=[c["name"] for c in VECTORS["plain_keys"]])
def test_plain_key_vector(case):
    max_len = case.get("max_len", VECTORS["default_max_len"])
    if "error" in case:
        with pytest.raises(ValueError, match="from 64 to 250"):
            plain_key(_raw(case), max_len)
        return
    assert plain_key(_raw(case), max_len) == case["key"]
    if max_len == VECTORS["default_max_len"]:
        assert normalize_key(_raw(case)) == case["key"]  # what the caches use


def test_plain_key_format_name():
    assert _core.PLAIN_KEY_FORMAT == VECTORS["format"] == "stratacache-plain-key-1"


def test_odd_keys_never_share_a_remote_key():
    keys = odd_keys()
    remote = [normalize_key(k) for k in keys]
    assert len(set(remote)) == len(keys)
    assert all(_core.is_valid_memcached_key(r) and len(r) <= 200 for r in remote)


def test_a_built_key_and_its_str_are_one_key():
    for key in [
        Key("ns", 1)("a b|c"),
        Key("outline", 3)("course-v1:edX+DemoX", 42),
        Key("n", 1)("\u00e9" * 300),
    ]:
        assert normalize_key(str(key)) == normalize_key(key) == key
        assert normalize_key(json.loads(json.dumps(key))) == key
        assert normalize_key(f"{key}") == key


# -- signing keys -------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["signing_keys"], ids=[c["name"] for c in VECTORS["signing_keys"]])
def test_signing_key_vector(case):
    if "error" in case:
        with pytest.raises(ValueError, match=r"secret .* is empty"):
            signing_keys_from_secret(case["secret"])
        return
    ((key_id, key),) = signing_keys_from_secret(case["secret"])
    assert key_id == "k1"
    assert key.hex() == case["key_hex"]
    assert signing_keys_from_secret(case["secret"].encode("utf-8"), "django") == [("django", key)]


# -- through a real memcached ---------------------------------------------------


def test_str_of_a_built_key_reads_the_same_entry(memcached):
    writer = TieredCache([memcached], signing_keys=KEYS, local=None)
    reader = TieredCache([memcached], signing_keys=KEYS, local=None)
    run = uuid.uuid4().hex[:8]
    built = [
        Key("ns", 1)(run, "a b|c"),
        Key("grades", 7)(run, 42, b"\x00\xff"),
        Key("long", 1)(run, "\u00e9" * 200),
    ]
    for i, key in enumerate(built):
        writer.set(key, {"i": i}, ttl=60)
    for i, key in enumerate(built):
        assert reader.get(key) == {"i": i}
        assert reader.get(str(key)) == {"i": i}
        assert reader.get(json.loads(json.dumps(key))) == {"i": i}
    # and the other way: written under the str, read under the built key
    writer.set(str(built[0]), "via str", ttl=60)
    assert reader.get(built[0]) == "via str"
    assert reader.get_many([str(k) for k in built[1:]]) == {
        str(k): {"i": i + 1} for i, k in enumerate(built[1:])
    }


def test_odd_plain_keys_round_trip_through_memcached(memcached):
    cache = TieredCache([memcached], signing_keys=KEYS, local=None)
    keys = odd_keys()
    for i, key in enumerate(keys):
        cache.set(key, i, ttl=60)
    reader = TieredCache([memcached], signing_keys=KEYS, local=None)
    got = reader.get_many(keys)
    assert got == {key: i for i, key in enumerate(keys)}


# -- safe defaults --------------------------------------------------------------


def test_pickle_over_remote_tiers_needs_keys_or_an_opt_in(memcached):
    with pytest.raises(
        ConfigurationError, match=r"signing_keys=signing_keys_from_secret\(settings.SECRET_KEY\)"
    ):
        TieredCache([memcached])
    with pytest.raises(ConfigurationError, match="allow_unsigned_pickle=True"):
        TieredCache([memcached], codec="pickle", signing_keys=None)
    assert TieredCache([memcached], signing_keys=KEYS).signed
    assert not TieredCache([memcached], codec="json").signed
    assert not TieredCache([memcached], allow_unsigned_pickle=True).signed
    assert not TieredCache([]).signed  # no remote tier: nothing anyone else can write


class _Forged:
    """Unpickling this creates ``path`` (what a forger's payload would do)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _forge(memcached, key: str, marker: Path) -> None:
    """Stores, under the remote key of ``key``, an unsigned pickle envelope
    built with the package's own encoder."""
    payload = pickle.dumps(_Forged(marker))
    sealed = _core.encode_envelope(payload, codec="pickle", created_at_ms=_core.now_ms())
    memcached.set_many([(normalize_key(key), sealed, 60_000)])


@pytest.mark.parametrize(
    "options",
    [{"signing_keys": KEYS}, {"codec": "json"}, {"codec": "raw"}],
    ids=["pickle_with_keys", "json_no_keys", "raw_no_keys"],
)
def test_a_forged_pickle_in_memcached_is_never_unpickled(memcached, tmp_path, monkeypatch, options):
    loads = []
    real_loads = pickle.loads
    monkeypatch.setattr(
        pickle, "loads", lambda data, *a, **k: loads.append(data) or real_loads(data, *a, **k)
    )
    for i, key in enumerate(["forged", "forged key with spaces", Key("ns", 1)("forged")]):
        marker = tmp_path / f"pwned-{i}"
        _forge(memcached, key, marker)
        cache = TieredCache([memcached], local=None, **options)
        assert cache.get(key) is MISSING
        assert cache.get_many([key]) == {}
        assert cache.stats()["tiers"][0]["rejected"] == 2
        assert not marker.exists(), "the forged pickle ran"
    assert loads == []


def test_the_forged_pickle_does_run_when_opted_in(memcached, tmp_path):
    # The control: the payload above is live; only the default keeps it out.
    marker = tmp_path / "pwned"
    _forge(memcached, "forged", marker)
    cache = TieredCache([memcached], local=None, allow_unsigned_pickle=True)
    cache.get("forged")
    assert marker.exists()
