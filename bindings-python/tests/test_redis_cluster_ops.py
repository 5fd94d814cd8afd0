"""Operating a Redis Cluster and the tiers' cool-downs, over real servers
started by scripts/servers.sh:

- ``redis-cluster-tls``: three masters on TLS only (``tls-cluster yes``),
  their certificates signed by the CA servers.sh makes; ``get_many`` across
  slots over ``rediss://`` seed URLs with ``ssl_ca_certs``.
- A memcached server that dies and comes back: the first write that reaches
  it ends the tier's cool-down (it answered), as a successful read does."""

from __future__ import annotations

import time

import pytest
from fleet_support import Fleet

from stratacache import TieredCache
from stratacache.tiers import MemcachedTier, RedisTier

KEYS = [f"ops:{i}" for i in range(60)]  # spread over the three masters' slots


@pytest.fixture(scope="module")
def tls_cluster():
    f = Fleet("redis-cluster-tls")
    yield f
    for node in ("redis-t1", "redis-t2", "redis-t3"):
        f.kill(node)  # at once: a polite stop costs about 2 s per node
    f.stop()


def seeds(fleet: Fleet, var: str) -> list:
    return fleet.vars[var].split(",")


def test_get_many_across_slots_over_tls(tls_cluster):
    urls, ca = (
        seeds(tls_cluster, "STRATACACHE_REDIS_CLUSTER_TLS"),
        tls_cluster.vars["STRATACACHE_REDIS_TLS_CA"],
    )
    assert all(u.startswith("rediss://") for u in urls)
    tier = RedisTier(urls, cluster=True, ssl_ca_certs=ca)
    tier.set_many([(k, k.encode(), 60_000) for k in KEYS])
    assert tier.get_many(KEYS) == [k.encode() for k in KEYS]
    health = tier.health()
    # Every master served part of the batch, each over TLS.
    assert len(health) == 3 and all(h["up"] and h["failures"] == 0 for h in health.values()), health
    # The same keys through TieredCache (one cluster pipeline per read).
    cache = TieredCache([tier], local=None, codec="json")
    got = cache.get_many_or_load([f"opc:{i}" for i in range(30)], lambda ks: {k: 1 for k in ks})
    assert got == {f"opc:{i}": 1 for i in range(30)}
    again = TieredCache([RedisTier(urls, cluster=True, ssl_ca_certs=ca)], local=None, codec="json")
    assert again.get_many([f"opc:{i}" for i in range(30)]) == got
    assert again.stats()["tiers"][0]["errors"] == 0


def test_tls_cluster_with_an_unknown_ca_shows_in_health(tls_cluster):
    urls = seeds(tls_cluster, "STRATACACHE_REDIS_CLUSTER_TLS")
    tier = RedisTier(urls, cluster=True, retry_after=60)  # the system's roots: the test CA is unknown
    cache = TieredCache([tier], local=None, codec="json")
    assert cache.get_or_load("k", lambda: "loaded") == "loaded"  # no exception
    assert cache.stats()["tiers"][0]["errors"] >= 1
    health = tier.health()
    assert sorted(health) == sorted(u.removeprefix("rediss://") for u in urls), health
    for h in health.values():
        assert not h["up"] and h["failures"] == 1
        assert "certificate" in h["last_error"].lower(), h


@pytest.fixture
def one_memcached():
    f = Fleet("memcached1")
    yield f
    f.kill("memcached1")  # at once (a polite stop waits for the test's connections)
    f.stop()


def test_a_successful_write_ends_the_cool_down(one_memcached):
    server = one_memcached.vars["STRATACACHE_MEMCACHED"].split(",")[0]
    tier = MemcachedTier([server], connect_timeout=0.1, timeout=0.2, retry_after=0.05)
    cache = TieredCache([tier], local=None, codec="json", cooldown=(3, 0.3))
    cache.set("before", 1)
    one_memcached.kill("memcached1")
    for i in range(3):  # three failed reads (no write-backs) trip the breaker
        assert cache.get(f"k{i}", "absent") == "absent"
    assert cache._core.is_cooling_down(0, cache._now())
    one_memcached.restart("memcached1")
    time.sleep(0.35)  # the cool-down is over: the next call probes the tier
    cache.set("probe", 2)  # the probe is a write, and memcached takes it
    assert not cache._core.is_cooling_down(0, cache._now()), "the successful write ended the cool-down"
    # The next read goes to memcached at once (no local tier: only it has
    # the value), instead of skipping it for another cool-down.
    stats = dict(cache.stats()["tiers"][0])
    assert cache.get("probe", "absent") == 2
    after = cache.stats()["tiers"][0]
    assert after["skipped_cooling_down"] == stats["skipped_cooling_down"]
    assert after["errors"] == stats["errors"] == 3
