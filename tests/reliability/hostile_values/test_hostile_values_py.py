"""Hostile values in every Python remote tier (issue 7): tampered, truncated,
replayed under another key, oversized, and pickles that would run code.

For each tier x corruption: a signed value is written through the tier
adapter, corrupted in the server with a raw client, then read by a fresh
process's cache (no local tier). The read must be a miss (or the loader's
fresh value), never the bad bytes; no exception may reach the caller, in
strict mode either; nothing may be unpickled (the evil pickle's side effect,
a directory, must not exist); the tier's counter (``rejected``, or
``chunk_misses`` for chunks) must count it; and after the loader ran the tier
must hold a valid value again.

Run: bash scripts/test-reliability.sh -k hostile_values
(or, with servers up: cd tests/reliability && ../../.venv/bin/python -m pytest -q hostile_values)
"""

from __future__ import annotations

import asyncio
import functools
import os
import pickle

import pytest
from hv_support import (
    CASES,
    CHUNK_CASES,
    FLAG_MANIFEST,
    FLAG_SIGNED,
    KEYRING,
    READER_MAX_PAYLOAD,
    RUN,
    UNSIGNED_CASES,
    Ctx,
    envelope,
    evil_pickle,
    flip,
    parse,
    varint,
)

from stratacache import MISSING, TieredCache, TierError, _core
from stratacache.tiers import Tier

ORIGINAL = {"owner": "user A", "grade": 93}
FRESH = {"owner": "loader", "grade": 0}
PY_TIERS = ["memcached", "redis", "s3", "django_pymemcache", "django_redis", "django_locmem"]


def _cache(tier, **kwargs):
    kwargs.setdefault("signing_keys", KEYRING)
    kwargs.setdefault("local", None)
    kwargs.setdefault("compress_at", None)
    kwargs.setdefault("cooldown", (1000, 0.01))
    return TieredCache([tier], **kwargs)


def _reader(tier, **kwargs):
    return _cache(tier, max_payload_len=READER_MAX_PAYLOAD, **kwargs)


cache, reader = _cache, _reader


def counters(c) -> dict:
    return c.stats()["tiers"][0]


def check_outcome(target, tier, key, counter, marker, unpickled, fresh=FRESH, **options):
    """The assertions every case shares, once the hostile bytes are in place."""
    reader = functools.partial(_reader, **options)
    cache = functools.partial(_cache, **options)
    # strict mode: a hostile value is not a tier failure, so no error: a miss.
    strict = reader(tier, strict=True)
    assert strict.get(key) is MISSING
    assert not marker.exists(), "the evil pickle ran"
    assert counters(strict)[counter] == 1, counters(strict)

    r = reader(tier)
    assert r.get(key) is MISSING
    assert r.get_many([key]) == {}
    stats = counters(r)
    assert stats[counter] == 2, stats
    assert stats["hits"] == 0 and stats["errors"] == 0, stats

    # the async read path (Python get_many, no native client) too
    ar = reader(tier)
    assert asyncio.run(ar.aget(key)) is MISSING
    assert counters(ar)[counter] == 1, counters(ar)
    assert not marker.exists(), "the evil pickle ran"

    loads = []
    assert r.get_or_load(key, lambda: loads.append(1) or fresh, ttl=60) == fresh
    assert loads == [1]
    assert r.stats()["reads"]["loads"] == 1
    assert r.stats()["reads"]["decode_errors"] == 0

    # nothing hostile was unpickled, by stratacache or by anyone
    assert not marker.exists(), "the evil pickle ran"
    evil = evil_pickle(marker)
    assert evil not in unpickled
    if target.name not in ("django_redis", "django_locmem"):  # these frame every value in a pickle
        assert unpickled == [], "stratacache unpickled bytes from the tier"

    # the bad entry was replaced: another process reads the fresh value
    check = cache(tier)
    assert check.get(key) == fresh
    assert counters(check)["hits"] == 1 and counters(check)["rejected"] == 0
    return check


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("tier_name", PY_TIERS)
def test_hostile_value(tier_name, case, targets, tmp_path, unpickled):
    target = targets(tier_name)
    tier = target.tier()
    key = f"hv:{RUN}:{tier_name}:{case.name}"
    other = f"hv:{RUN}:{tier_name}:{case.name}:other"
    writer = cache(tier)
    writer.set_all_tiers(key, ORIGINAL, ttl=60)
    valid = target.raw_get(key)
    other_valid = None
    if case.group == "replay":
        writer.set_all_tiers(other, {"owner": "user B", "grade": 12}, ttl=60)
        other_valid = target.raw_get(other)
        assert other_valid is not None and other_valid != valid
    assert valid is not None
    assert parse(valid).signed and parse(valid).key_id == "2025a"
    # control: the untouched value is a hit (the harness reads what it wrote)
    control = reader(tier)
    assert control.get(key) == ORIGINAL and counters(control)["rejected"] == 0

    marker = tmp_path / "pwned"
    bad = case.make(valid, Ctx(key, other_valid, marker))
    assert bad != valid
    target.raw_put(key, bad)
    assert target.raw_get(key) == bad  # the server holds the hostile bytes

    unpickled.clear()
    check_outcome(target, tier, key, case.counter, marker, unpickled)


NATIVE_TIERS = [t for t in PY_TIERS if t != "django_locmem"]  # LocMem: no one outside the process writes it


@pytest.mark.parametrize("tier_name", NATIVE_TIERS)
def test_hostile_value_native_pickle(tier_name, targets, tmp_path, unpickled):
    """An evil pickle stored in the server's own format for pickled values
    (memcached flag 1, a raw pickle in Redis or S3): not an envelope, so
    refused; and nothing in the read path may unpickle it."""
    target = targets(tier_name)
    tier = target.tier()
    key = f"hv:{RUN}:{tier_name}:native_pickle"
    marker = tmp_path / "pwned"
    cache(tier).set_all_tiers(key, ORIGINAL, ttl=60)
    target.native_pickle_put(key, evil_pickle(marker))
    unpickled.clear()
    check_outcome(target, tier, key, "rejected", marker, unpickled)


def test_hostile_values_evil_pickle_really_runs_code(tmp_path):
    """The payload the pickle cases use does run code when unpickled: the
    absence of its side effect in the other tests means something."""
    marker = tmp_path / "pwned"
    assert not marker.exists()
    pickle.loads(evil_pickle(marker))
    assert marker.is_dir()


# -- chunked values: memcached with a 2 KiB item limit ------------------------------


def chunked_bad(case_name, target, key, other, valid_manifest):
    info = _core.decode_manifest(key, valid_manifest, signing_keys=KEYRING, require_signature=True)
    chunks = info["chunk_keys"]
    other_info = _core.decode_manifest(
        other, target.raw_get(other), signing_keys=KEYRING, require_signature=True
    )
    if case_name == "chunk_flip":
        target.raw_put(chunks[1], flip(target.raw_get(chunks[1]), 100))
    elif case_name == "chunk_truncate":
        target.raw_put(chunks[1], target.raw_get(chunks[1])[:-10])
    elif case_name == "chunk_missing":
        target.raw_delete(chunks[2])
    elif case_name == "chunk_swapped":
        target.raw_put(chunks[0], target.raw_get(other_info["chunk_keys"][0]))
    elif case_name == "chunk_is_envelope":
        target.raw_put(chunks[0], envelope(pickle.dumps("small"), key=key))
    elif case_name == "manifest_flip":
        target.raw_put(key, flip(valid_manifest, parse(valid_manifest).body_end - 3))
    elif case_name == "manifest_truncate":
        target.raw_put(key, valid_manifest[: len(valid_manifest) // 2])
    elif case_name == "manifest_replay":
        target.raw_put(key, target.raw_get(other))
    elif case_name == "manifest_huge_count":
        count = 10**6
        payload = varint(1024 * count) + varint(1024) + varint(count) + bytes(32)
        target.raw_put(key, envelope(payload, codec="postcard", key=key, flags=FLAG_MANIFEST))
    else:  # pragma: no cover
        raise AssertionError(case_name)
    return chunks


@pytest.mark.parametrize("case", CHUNK_CASES, ids=lambda c: c.name)
def test_hostile_value_memcached_chunked(case, targets, tmp_path, unpickled):
    target = targets("memcached_chunked")
    tier = target.tier()
    key = f"hv:{RUN}:chunked:{case.name}"
    other = f"hv:{RUN}:chunked:{case.name}:other"
    writer = cache(tier)
    writer.set_all_tiers(key, os.urandom(6000), ttl=60)
    writer.set_all_tiers(other, os.urandom(6000), ttl=60)
    manifest = target.raw_get(key)
    assert parse(manifest).flags & FLAG_MANIFEST
    chunks = chunked_bad(case.name, target, key, other, manifest)
    assert len(chunks) == 3

    unpickled.clear()
    fresh = os.urandom(6000)  # chunked again when the loader's value is stored
    check = check_outcome(target, tier, key, case.counter, tmp_path / "pwned", unpickled, fresh)
    assert counters(check)["chunked_reads"] == 1 and counters(check)["chunk_misses"] == 0


# -- values of another type under the key (other code sharing a Django cache) --------

FOREIGN = {"str": "written by other code", "int": 42, "dict": {"owner": "other code"}}


@pytest.mark.parametrize("kind", list(FOREIGN))
@pytest.mark.parametrize("tier_name", ["django_pymemcache", "django_redis", "django_locmem"])
def test_hostile_value_foreign_type(tier_name, kind, targets, tmp_path, unpickled):
    """Other code stores a str, an int or a dict under the same key of a
    shared Django cache: refused and counted like any value that is not an
    envelope (it used to raise TypeError out of get/get_or_load)."""
    from django.core.cache import caches

    target = targets(tier_name)
    tier = target.tier()
    key = f"hv:{RUN}:{tier_name}:foreign_{kind}"
    cache(tier).set_all_tiers(key, ORIGINAL, ttl=60)
    caches[target.alias].set(key, FOREIGN[kind], 60)
    unpickled.clear()
    check_outcome(target, tier, key, "rejected", tmp_path / "pwned", unpickled)


class AnswersWith(Tier):
    """A user-written adapter (the documented interface) whose server hands
    back something that is not bytes."""

    kind = "redis"
    name = "custom"

    def __init__(self, answer):
        self.answer = answer
        self.stored = {}

    def get_many(self, keys):
        return [self.answer for _ in keys]

    def set_many(self, entries):
        self.stored.update((k, v) for k, v, _ttl in entries)

    def add_many(self, items):
        return [True for _ in items]

    def delete_many(self, keys):
        for k in keys:
            self.stored.pop(k, None)


@pytest.mark.parametrize("answer", ["a str", 42, {"a": 1}], ids=["str", "int", "dict"])
def test_hostile_value_custom_adapter_wrong_type(answer):
    """An adapter answering with a non-bytes value is a failing tier: counted
    as an error, a miss for the caller, ``TierError`` in strict mode."""
    tier = AnswersWith(answer)
    r = cache(tier)
    assert r.get("k") is MISSING
    assert r.get_or_load("k", lambda: FRESH, ttl=60) == FRESH
    assert counters(r)["errors"] == 2
    assert tier.stored  # the loader's value was written
    assert asyncio.run(cache(tier).aget("k")) is MISSING
    with pytest.raises(TierError, match="bytes or None"):
        cache(tier, strict=True).get("k")


@pytest.mark.parametrize("case", UNSIGNED_CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("tier_name", ["memcached", "redis"])
def test_hostile_value_unsigned_cache(tier_name, case, targets, tmp_path, unpickled):
    """Signing off: structure and sizes are still checked before anything
    is decoded (a flipped payload byte is not detectable without a key)."""
    target = targets(tier_name)
    tier = target.tier()
    key = f"hv:{RUN}:{tier_name}:unsigned:{case.name}"
    other = f"{key}:other"
    # Opted in by name: pickle over an unsigned tier is refused otherwise.
    writer = cache(tier, signing_keys=None, allow_unsigned_pickle=True)
    writer.set_all_tiers(key, ORIGINAL, ttl=60)
    writer.set_all_tiers(other, {"owner": "user B"}, ttl=60)
    valid = target.raw_get(key)
    assert not parse(valid).signed
    marker = tmp_path / "pwned"
    bad = case.make(valid, Ctx(key, target.raw_get(other), marker, keyring=None))
    assert len(bad) < 6 or not bad[5] & FLAG_SIGNED  # unsigned hostile bytes
    target.raw_put(key, bad)
    unpickled.clear()
    check_outcome(
        target, tier, key, case.counter, marker, unpickled, signing_keys=None, allow_unsigned_pickle=True
    )
