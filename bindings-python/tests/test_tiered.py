"""TieredCache over real memcached (two instances), Redis and S3."""

import asyncio
import os
import pickle
import threading
import time

import pytest
from conftest import servers

from stratacache import (
    MISSING,
    Key,
    LoaderError,
    LocalTier,
    TieredCache,
    TierError,
    request_scope,
    signing_keys_from_secret,
)
from stratacache.codecs import JSON

MiB = 1024 * 1024


# Pickle over shared tiers needs signing keys (stratacache refuses otherwise).
KEYS = signing_keys_from_secret("test_tiered secret")


def fresh(tiers, **kwargs):
    """Another process's view: same servers, empty local tier."""
    kwargs.setdefault("cooldown", (3, 0.2))
    kwargs.setdefault("signing_keys", KEYS)
    return TieredCache(tiers, **kwargs)


def test_round_trip_and_stored_none_through_memcached(memcached):
    cache = fresh([memcached])
    cache.set_all_tiers("answer", {"value": 42})
    cache.set_all_tiers("nothing", None)
    other = fresh([memcached])
    assert other.get("answer") == {"value": 42}
    response = other.get_cached_response("nothing")
    assert response.is_found and response.value is None
    assert other.get("absent") is MISSING
    assert other.stats()["tiers"][0]["hits"] == 2


def test_get_many_is_one_round_trip_per_tier(memcached, redis_tier):
    writer = fresh([memcached, redis_tier])
    keys = [Key("grades", 1)(i) for i in range(100)]
    for i, k in enumerate(keys):
        writer.set_all_tiers(k, i)
    reader = fresh([memcached, redis_tier], local=None)
    found = reader.get_many(keys)
    assert found == {k: i for i, k in enumerate(keys)}
    tiers = reader.stats()["tiers"]
    assert tiers[0]["fetches"] == 1 and tiers[0]["hits"] == 100
    assert tiers[1]["fetches"] == 0  # memcached had them all


def test_get_many_or_load_loads_only_the_missing_in_one_batch(memcached):
    cache = fresh([memcached])
    cache.set_all_tiers("a", "cached a")
    batches = []

    def load(keys):
        batches.append(list(keys))
        return {k: f"loaded {k}" for k in keys}

    got = fresh([memcached]).get_many_or_load(["a", "b", "c"], load, ttl=60)
    assert got == {"a": "cached a", "b": "loaded b", "c": "loaded c"}
    assert batches == [["b", "c"]]
    assert fresh([memcached]).get("c") == "loaded c"  # written through


def test_five_mib_value_through_memcached(memcached):
    from django.core.cache import caches

    big = os.urandom(5 * MiB)
    plain = caches["memcached"]
    try:
        plain.set("big-plain", big, 60)
    except Exception:
        pass  # pymemcache reports the server's "object too large"
    assert plain.get("big-plain") is None  # Django's cache cannot keep it

    cache = fresh([memcached])
    cache.set_all_tiers("big", big, ttl=60)
    reader = fresh([memcached], local=None)
    assert reader.get("big") == big
    stats = reader.stats()["tiers"][0]
    assert stats["chunked_reads"] == 1 and stats["hits"] == 1


def test_lost_chunk_is_a_miss_and_the_loader_runs(memcached):
    from stratacache import _core

    big = os.urandom(3 * MiB)
    fresh([memcached]).set_all_tiers("big", big, ttl=60)
    manifest = _core.decode_manifest("big", memcached.get_many(["big"])[0])
    assert manifest["chunk_count"] == 4
    memcached.delete_many([manifest["chunk_keys"][2]])  # evicted
    calls = []
    got = fresh([memcached], local=None).get_or_load("big", lambda: calls.append(1) or b"reloaded", ttl=60)
    assert got == b"reloaded" and calls == [1]


def test_keys_with_spaces_unicode_controls_and_10kb(memcached, redis_tier):
    keys = [
        "with spaces",
        "a%20b",  # must not collide with "a b"
        "a b",
        "ünïcödé 日本 😀",
        "ctrl\x00\x01\n\t\x7f",
        "k" * 10 * 1024,
        "k" * 10 * 1024 + "!",  # same long prefix, other digest
    ]
    writer = fresh([memcached, redis_tier])
    for i, k in enumerate(keys):
        writer.set_all_tiers(k, i)
    reader = fresh([memcached, redis_tier], local=None)
    assert reader.get_many(keys) == {k: i for i, k in enumerate(keys)}
    assert reader.stats()["tiers"][0]["hits"] == len(keys)


def test_storage_tier_serves_and_backfills_memcached(memcached, s3_tier):
    fresh([memcached, s3_tier]).set_all_tiers("outline", {"blocks": list(range(1000))}, ttl=3600)
    memcached.clear()
    reader = fresh([memcached, s3_tier], local=None)
    assert reader.get("outline") == {"blocks": list(range(1000))}
    tiers = reader.stats()["tiers"]
    assert tiers[0]["misses"] == 1 and tiers[1]["hits"] == 1
    # back-filled: the next process finds it in memcached
    again = fresh([memcached, s3_tier], local=None)
    assert again.get("outline") == {"blocks": list(range(1000))}
    assert again.stats()["tiers"][0]["hits"] == 1 and again.stats()["tiers"][1]["fetches"] == 0


def test_tampered_and_truncated_values_never_reach_pickle(memcached, secret_keys, monkeypatch):
    writer = fresh([memcached], signing_keys=secret_keys)
    writer.set_all_tiers("tampered", {"is": "original"}, ttl=60)
    writer.set_all_tiers("truncated", {"is": "original"}, ttl=60)
    stored = memcached.get_many(["tampered", "truncated"])
    flipped = bytearray(stored[0])
    flipped[len(flipped) // 2] ^= 0x01
    memcached.client.set_many([("tampered", bytes(flipped), None)])
    memcached.client.set_many([("truncated", stored[1][: len(stored[1]) // 2], None)])
    memcached.client.set_many([("forged", pickle.dumps({"evil": True}), None)], flags=1)  # a pickle flag

    seen = []
    real_loads = pickle.loads
    monkeypatch.setattr(pickle, "loads", lambda data, *a, **k: seen.append(data) or real_loads(data, *a, **k))

    reader = fresh([memcached], signing_keys=secret_keys, local=None)
    calls = []
    for key in ("tampered", "truncated", "forged"):
        assert reader.get_or_load(key, lambda: calls.append(1) or "recomputed", ttl=60) == "recomputed"
    assert len(calls) == 3
    assert seen == []  # nothing from memcached was unpickled
    assert reader.stats()["tiers"][0]["rejected"] == 3
    # and the recomputed, signed values are readable (and unpickled) again
    assert fresh([memcached], signing_keys=secret_keys, local=None).get("tampered") == "recomputed"
    assert len(seen) == 1


def test_memcached_down_falls_back_then_recovers(memcached, redis_tier):
    writer = fresh([memcached, redis_tier])
    writer.set_all_tiers("k", "value", ttl=600)
    servers("stop", "memcached")
    try:
        reader = fresh([memcached, redis_tier], local=None)
        for _ in range(4):
            assert reader.get("k") == "value"  # from Redis, no exception
        calls = []
        assert reader.get_or_load("cold", lambda: calls.append(1) or "loaded", ttl=600) == "loaded"
        assert calls == [1]
        tiers = reader.stats()["tiers"]
        assert tiers[0]["errors"] >= 3 and tiers[1]["hits"] >= 1
        assert tiers[0]["skipped_cooling_down"] >= 1  # not hammered while down
    finally:
        servers("start", "memcached")
    deadline = time.monotonic() + 10
    while True:
        reader.get("k")  # hits Redis and back-fills memcached once it is back
        hits = reader.stats()["tiers"][0]["hits"]
        if hits >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert hits >= 1, "memcached hits did not resume after the restart"


def test_memcached_down_strict_mode_raises(memcached):
    servers("stop", "memcached")
    try:
        strict = fresh([memcached], strict=True)
        # Every server down: the tier failed as a whole. (One server of several down is a
        # per-key failure, which reaches strict mode once the protocol carries it.)
        with pytest.raises(TierError, match="memcached"):
            strict.get_many([f"k{i}" for i in range(20)])
    finally:
        servers("start", "memcached")


def test_slow_redis_times_out_to_the_loader(redis_tier):
    fresh([redis_tier]).set_all_tiers("k", "cached", ttl=60)
    import redis

    admin = redis.Redis.from_url(os.environ["STRATACACHE_REDIS_URL"])
    admin.execute_command("CLIENT", "PAUSE", "1500")
    try:
        reader = fresh([type(redis_tier)(os.environ["STRATACACHE_REDIS_URL"], timeout=0.3)], local=None)
        start = time.monotonic()
        assert reader.get_or_load("k", lambda: "loaded", ttl=60) == "loaded"
        assert time.monotonic() - start < 1.4
        assert reader.stats()["tiers"][0]["errors"] >= 1
    finally:
        time.sleep(1.6)


def _at_once(calls: list) -> list:
    """Runs each call in its own thread, all released together; their results."""
    barrier = threading.Barrier(len(calls))
    results: list = []

    def run(call):
        barrier.wait()
        results.append(call())

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_32_threads_on_one_cold_key_load_once(memcached):
    cache = fresh([memcached])
    calls = []

    def loader():
        calls.append(1)
        time.sleep(0.3)
        return "expensive"

    results = _at_once([lambda: cache.get_or_load("cold", loader, ttl=60)] * 32)
    assert calls == [1]
    assert results == ["expensive"] * 32
    assert cache.stats()["reads"]["flight_waits"] >= 1


def test_asyncio_tasks_on_one_cold_key_load_once(memcached):
    cache = fresh([memcached])
    calls = []

    async def loader():
        calls.append(1)
        await asyncio.sleep(0.2)
        return "expensive"

    async def main():
        return await asyncio.gather(*(cache.aget_or_load("cold-async", loader, ttl=60) for _ in range(50)))

    assert asyncio.run(main()) == ["expensive"] * 50
    assert calls == [1]


def test_leases_make_one_process_load(memcached):
    from stratacache import LeasePolicy

    policy = LeasePolicy(ttl=5, max_wait=3, poll_interval=0.05)
    processes = [fresh([memcached], leases=policy) for _ in range(4)]  # four processes' caches
    calls = []

    def loader():
        calls.append(1)
        time.sleep(0.4)
        return "value"

    results = _at_once([lambda c=c: c.get_or_load("leased", loader, ttl=60) for c in processes])
    assert results == ["value"] * 4
    assert calls == [1]


def test_loader_exception_propagates_and_nothing_is_stored(memcached):
    cache = fresh([memcached])

    def boom():
        raise KeyError("no such course")

    with pytest.raises(KeyError, match="no such course"):
        cache.get_or_load("k", boom)
    assert fresh([memcached]).get("k") is MISSING
    with pytest.raises(LoaderError, match="returned no value"):
        cache.get_many_or_load(["a", "b"], lambda keys: {"a": 1})


def test_request_tier_and_prefetch(memcached):
    writer = fresh([memcached])
    for i in range(10):
        writer.set_all_tiers(f"item:{i}", i)
    cache = fresh([memcached], local=None)
    with request_scope():
        assert cache.prefetch([f"item:{i}" for i in range(10)]) == 10
        fetches = cache.stats()["tiers"][0]["fetches"]
        assert [cache.get(f"item:{i}") for i in range(10)] == list(range(10))
        assert cache.stats()["tiers"][0]["fetches"] == fetches  # all from the request tier
        assert cache.stats()["reads"]["request_hits"] == 10


def test_force_cache_miss_scope_reloads(memcached):
    cache = fresh([memcached])
    cache.set_all_tiers("k", "old")
    with request_scope(force_cache_miss=True):
        assert cache.get_or_load("k", lambda: "new", ttl=60) == "new"
    assert fresh([memcached]).get("k") == "new"


def test_json_codec_for_edge_readable_values(memcached):
    from stratacache import _core

    cache = fresh([memcached], codec=JSON)
    cache.set_all_tiers(Key("edge", 1)("home"), {"title": "Hello"})
    raw = memcached.get_many(["edge|v1|home"])[0]
    opened = _core.decode_envelope(raw)
    assert opened["header"]["codec"] == "json"
    assert opened["payload"] == b'{"title":"Hello"}'


def test_ttl_expiry_with_host_clock(memcached):
    now = [1_900_000_000.0]
    cache = fresh([memcached], clock=lambda: now[0], ttl_jitter=0, local=LocalTier(ttl=3600))
    cache.set_all_tiers("k", "v", ttl=10)
    assert cache.get("k") == "v"
    now[0] += 11
    assert cache.get("k") is MISSING  # expired in the local tier and in the envelope


def test_unpicklable_value_is_a_clear_error(memcached):
    cache = fresh([memcached])
    with pytest.raises(TypeError, match="cannot be serialized"):
        cache.set_all_tiers("k", threading.Lock())


def test_repr_and_bad_config():
    from stratacache import ConfigurationError

    assert "request → local → no remote tiers" in repr(TieredCache([]))
    with pytest.raises(ConfigurationError, match="not a tier adapter"):
        TieredCache([object()])
    with pytest.raises(ConfigurationError, match="ttl_jitter"):
        TieredCache([], ttl_jitter=2)
