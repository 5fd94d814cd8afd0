"""Health per server over real fleets (scripts/servers.sh `fleet` and
`redis-cluster`): one memcached server of four killed (kill -9) or frozen
(SIGSTOP), one Redis Cluster master killed. Bounds here are loose and honest;
exact figures are measured by bench/bench_fleet.py."""

from __future__ import annotations

import time

import pytest
from fleet_support import Fleet

from stratacache import TieredCache
from stratacache.tiers import MemcachedTier, RedisTier

SECRET = "fleet test secret"
N_KEYS = 2000
BATCH = 50


@pytest.fixture(scope="module")
def fleet():
    f = Fleet("fleet", "redis-cluster", "redis", "redis-replica")
    yield f
    f.stop()


def _keys(tag: str) -> list:
    return [f"fleet:{tag}:{i}" for i in range(N_KEYS)]


def _served_after(fleet: Fleet, cache: TieredCache, keys: list, seconds: float) -> float:
    """Reads every key in batches of 50 (missing ones loaded and written
    back) for `seconds`; returns the share served by the remote tier."""
    asked = loaded = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for i in range(0, len(keys), BATCH):
            batch = keys[i : i + BATCH]
            misses = []

            def load(missing: list, misses: list = misses) -> dict:
                misses.extend(missing)
                return {k: k.upper() for k in missing}

            got = cache.get_many_or_load(batch, load)
            assert got == {k: k.upper() for k in batch}
            asked += len(batch)
            loaded += len(misses)
            if time.monotonic() >= end:
                break
    return 1 - loaded / asked


def _cache(servers: list, **tier_args) -> tuple:
    tier = MemcachedTier(servers, timeout=0.3, retry_after=1.0, **tier_args)
    cache = TieredCache([tier], local=None, codec="json", signing_keys=SECRET, cooldown=(3, 5.0))
    return tier, cache


@pytest.mark.parametrize("dead_keys", ["move", "stay"])
def test_one_memcached_server_killed_keeps_the_others(fleet, dead_keys):
    tier, cache = _cache(fleet.memcached, dead_keys=dead_keys)
    keys = _keys(f"kill-{dead_keys}")
    cache.get_many_or_load(keys, lambda ks: {k: k.upper() for k in ks})
    victim = "memcached2"
    on_victim = sum(tier.client.server_for(k) == fleet.memcached[1] for k in keys)
    assert 300 < on_victim < 700  # about a quarter
    fleet.kill(victim)
    try:
        served = _served_after(fleet, cache, keys, 3.0)
        # Issue 16: at least 0.70 within 10 s (here: 3 s). "move" serves
        # nearly all (the dead server's keys are rewritten elsewhere); "stay"
        # misses the dead server's share and no more (that share is about a
        # quarter, but depends on the ports: allow for it).
        floor = 0.70 if dead_keys == "move" else 1 - on_victim / N_KEYS - 0.02
        assert served >= floor, (served, floor)
        health = tier.health()[fleet.memcached[1]]
        assert not health["up"] and health["failures"] >= 1 and health["failed_keys"] >= 1
        # The live servers' keys are never counted as failed.
        assert all(h["failed_keys"] == 0 for n, h in tier.health().items() if n != fleet.memcached[1])
        # The tier never failed as a whole (no cool-down of the healthy three):
        # the dead server's keys are counted as partial failures only.
        tier_stats = cache.stats()["tiers"][0]
        assert tier_stats["skipped_cooling_down"] == 0
        assert not cache._core.is_cooling_down(0, cache._now())
    finally:
        fleet.restart(victim)
    # It comes back by itself (probed every retry_after).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not tier.health()[fleet.memcached[1]]["up"]:
        tier.get_many(keys[:BATCH])
        time.sleep(0.1)
    assert tier.health()[fleet.memcached[1]]["up"]
    assert tier.health()[fleet.memcached[1]]["recoveries"] >= 1


def test_one_memcached_server_frozen_keeps_the_others(fleet):
    tier, cache = _cache(fleet.memcached)
    keys = _keys("freeze")
    cache.get_many_or_load(keys, lambda ks: {k: k.upper() for k in ks})
    fleet.freeze("memcached3")
    try:
        started = time.monotonic()
        served = _served_after(fleet, cache, keys, 3.0)
        assert served >= 0.70, served  # issue 16's bound (dead keys move: nearly 1.0)
        assert time.monotonic() - started < 10
        assert not tier.health()[fleet.memcached[2]]["up"]
    finally:
        fleet.thaw("memcached3")


def test_partial_batch_names_failed_keys_apart_from_misses(fleet):
    tier = MemcachedTier(fleet.memcached, timeout=0.3, dead_keys="stay", retry_after=30)
    keys = [f"partial:{i}" for i in range(200)]
    tier.set_many([(k, b"v", None) for k in keys[:100]])
    fleet.kill("memcached4")
    try:
        values, failed = tier.get_many_outcome(keys)
        dead = {k for k in keys if tier.client.server_for(k) == fleet.memcached[3]}
        assert set(failed) == dead and dead
        for k, v in zip(keys, values):
            if k in dead:
                assert v is None
            else:
                assert v == (b"v" if k in keys[:100] else None)
        # No exception while other servers are up, even for a batch of the dead server's keys only
        # (it reads as misses: the cache falls through for them and does not cool the tier down).
        assert len(tier.get_many(keys)) == len(keys)
        assert tier.get_many(sorted(dead)) == [None] * len(dead)
        assert tier.health()[fleet.memcached[3]]["failed_keys"] >= 2 * len(dead)
    finally:
        fleet.restart("memcached4")


def test_ketama_spreads_and_is_stable(fleet):
    tier = MemcachedTier(fleet.memcached, hashing="ketama")
    keys = [f"ketama:{i}" for i in range(2000)]
    counts = {}
    for k in keys:
        counts[tier.client.server_for(k)] = counts.get(tier.client.server_for(k), 0) + 1
    assert len(counts) == 4 and min(counts.values()) > 300
    tier.set_many([(k, k.encode(), None) for k in keys[:100]])
    assert tier.get_many(keys[:100]) == [k.encode() for k in keys[:100]]


def test_redis_cluster_get_many_across_slots(fleet):
    tier = RedisTier(fleet.redis_cluster, cluster=True, timeout=0.3, retry_after=1.0)
    keys = [f"rc:{i}" for i in range(300)]
    tier.set_many([(k, k.encode(), 60_000) for k in keys])
    assert tier.get_many(keys) == [k.encode() for k in keys]
    assert tier.add_many([(keys[0], b"x", None), ("rc:new", b"y", None)]) == [False, True]
    tier.delete_many(["rc:new"])
    assert tier.get_many(["rc:new"]) == [None]
    cache = TieredCache([tier], local=None, codec="json", signing_keys=SECRET)
    got = cache.get_many_or_load([f"rcc:{i}" for i in range(100)], lambda ks: {k: 1 for k in ks})
    assert len(got) == 100
    cache2 = TieredCache([tier], local=None, codec="json", signing_keys=SECRET)
    assert len(cache2.get_many([f"rcc:{i}" for i in range(100)])) == 100


def test_redis_cluster_master_killed_only_its_slots_miss(fleet):
    tier = RedisTier(fleet.redis_cluster, cluster=True, timeout=0.3, retry_after=1.0)
    keys = [f"rk:{i}" for i in range(300)]
    tier.set_many([(k, k.encode(), 60_000) for k in keys])
    fleet.kill("redis-c2")
    try:
        for _ in range(3):
            values, failed = tier.get_many_outcome(keys)
            assert failed, "the dead master's keys are reported failed"
            assert 50 < len(failed) < 150  # about a third
            for k, v in zip(keys, values):
                assert v == (None if k in failed else k.encode())
        cache = TieredCache([tier], local=None, codec="json", signing_keys=SECRET)
        got = cache.get_many_or_load([f"rkc:{i}" for i in range(60)], lambda ks: {k: 2 for k in ks})
        assert got == {f"rkc:{i}": 2 for i in range(60)}  # no exception reached the caller
    finally:
        pass  # the cluster is rebuilt by the next `start`; the fleet is stopped at the end


def test_redis_from_django_reads_from_the_replica(fleet):
    import redis
    from django.test import override_settings

    primary, replica = fleet.vars["STRATACACHE_REDIS_URL"], fleet.vars["STRATACACHE_REDIS_REPLICA_URL"]
    caches = {"r": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": [primary, replica]}}
    with override_settings(CACHES=caches):
        tier = RedisTier.from_django("r")
    assert tier.key_prefix == ":1:"
    tier.set_many([(f"rep{i}", b"v", 60_000) for i in range(10)])
    admin = {url: redis.Redis.from_url(url) for url in (primary, replica)}
    deadline = time.monotonic() + 5
    while admin[replica].get(":1:rep9") != b"v" and time.monotonic() < deadline:
        time.sleep(0.05)
    hits = {url: a.info("stats")["keyspace_hits"] for url, a in admin.items()}
    assert tier.get_many([f"rep{i}" for i in range(10)]) == [b"v"] * 10
    after = {url: a.info("stats")["keyspace_hits"] for url, a in admin.items()}
    assert after[replica] - hits[replica] == 10  # the read went to the replica
    assert after[primary] == hits[primary]  # not to the primary
