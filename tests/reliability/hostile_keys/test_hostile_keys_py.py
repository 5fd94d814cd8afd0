"""Keys built from hostile parts through the Python package (issue 7).

Separators, Unicode confusables, NFC/NFD forms, NUL and control bytes,
empty parts, 1 MB strings (cases in ``hk_cases.py``, ~650 part lists at
max_len 64, 200 and 250): every key is printable ASCII 0x21-0x7e of at most
``max_len`` bytes, different part lists never share a key, and a real
memcached server accepts every key (set, then get of all keys returns each
key's own value). Strings holding lone surrogates (which Python ``str`` can
hold, e.g. from ``os.fsdecode`` of non-UTF-8 bytes) are refused with
``ValueError``, never turned into a key. The JS test
(``hostile_keys.test.mjs``) checks that JS builds byte-identical keys.

Run: bash scripts/test-reliability.sh -k hostile_keys
(or, with servers up: cd tests/reliability && ../../.venv/bin/python -m pytest -q hostile_keys)
"""

from __future__ import annotations

import os
import uuid

import pytest
from hostile_keys.hk_cases import LONE_SURROGATES, MEGABYTE, all_cases, build
from pymemcache.client.base import Client

import stratacache

CASES = all_cases()


def test_cases_are_many_and_distinct():
    # 45 table entries, 9 of 1 MB, and the distinct ones of 800 random lists.
    assert len(CASES) == 3 * len({repr(c["parts"]) for c in CASES})
    assert len(CASES) >= 3 * 600
    assert sum(1 for c in CASES if c["parts"] in MEGABYTE) == 3 * len(MEGABYTE)


@pytest.fixture(scope="module")
def keys() -> list[str]:
    return [build(c) for c in CASES]


def test_every_key_is_a_valid_memcached_key(keys):
    for case, key in zip(CASES, keys, strict=True):
        raw = key.encode("ascii")
        assert 1 <= len(raw) <= case["max_len"] <= 250, (case["parts"][:3], key)
        assert all(0x21 <= c <= 0x7E for c in raw), key


def test_different_parts_never_share_a_key(keys):
    for max_len in (64, 200, 250):
        at = [k for c, k in zip(CASES, keys, strict=True) if c["max_len"] == max_len]
        assert len(set(at)) == len(at), f"collision at max_len {max_len}"


@pytest.mark.parametrize("text", LONE_SURROGATES)
def test_lone_surrogates_are_refused(text):
    key = stratacache.Key("hk")
    with pytest.raises(ValueError, match="lone surrogate"):
        key(text)
    with pytest.raises(ValueError, match="lone surrogate"):
        key("ok", text)
    with pytest.raises(ValueError, match="lone surrogate"):
        stratacache.safe_key(text)


def test_fsdecoded_names_are_refused_not_merged():
    # os.fsdecode(b"\xff") is "\udcff" (surrogateescape): refused, so it can
    # never share a key with "\ufffd" as a lossy UTF-8 encoding would.
    name = os.fsdecode(b"caf\xe9")
    with pytest.raises(ValueError):
        stratacache.Key("hk")(name)
    assert stratacache.Key("hk")("caf\ufffd") != stratacache.Key("hk")(b"caf\xe9")


def test_memcached_accepts_every_key(keys):
    servers = os.environ.get("STRATACACHE_MEMCACHED")
    assert servers, "STRATACACHE_MEMCACHED is not set: run through scripts/test-reliability.sh"
    host, port = servers.split(",")[0].rsplit(":", 1)
    client = Client((host, int(port)), connect_timeout=5, timeout=5)
    run = uuid.uuid4().hex[:8].encode()
    unique = sorted(set(keys))
    try:
        for n, key in enumerate(unique):
            assert client.set(key, run + b":%d" % n, expire=120, noreply=False), key
        got = {}
        for start in range(0, len(unique), 100):
            got.update(client.get_many(unique[start : start + 100]))
        for n, key in enumerate(unique):
            assert got.get(key) == run + b":%d" % n, key
        assert client.delete_many(unique, noreply=False)
    finally:
        client.close()
