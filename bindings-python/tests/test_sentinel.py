"""Redis Sentinel over real processes started by scripts/servers.sh: a
primary, its replica and three sentinels (down-after-milliseconds 500).
The primary is killed; once the sentinels promote the replica, reads and
writes go on through the new primary, and meanwhile no exception reaches
the caller (the failures are counted)."""

from __future__ import annotations

import time

import pytest
from fleet_support import Fleet

from stratacache import TieredCache
from stratacache.tiers import RedisTier

SERVICE = "stratacache"


@pytest.fixture(scope="module")
def fleet():
    f = Fleet("sentinel")
    yield f
    f.stop()


def sentinel_tier(fleet: Fleet, **kwargs) -> RedisTier:
    return RedisTier(f"redis://{SERVICE}/0", sentinels=fleet.sentinels, retry_after=0.2, **kwargs)


def test_reads_and_writes_go_on_after_a_failover(fleet):
    tier = sentinel_tier(fleet)
    cache = TieredCache([tier], local=None, codec="json", name="sentinel")
    keys = [f"before-{i}" for i in range(50)]
    for k in keys:
        cache.set(k, k.upper())
    assert cache.get_many(keys) == {k: k.upper() for k in keys}
    primary = f"redis://127.0.0.1:{fleet.base + 10}/0"
    assert list(tier.health()) == [primary]
    fleet.replicated()  # the replica has the keys (asynchronous replication)

    observer = TieredCache([sentinel_tier(fleet)], local=None, codec="json", name="observer")
    fleet.kill("redis-sp")
    start = time.monotonic()
    recovered_after = None
    i = 0
    while time.monotonic() - start < 30:
        i += 1
        key = f"after-{i}"
        # Neither raises while the primary is dead (not strict): the loader
        # serves, the failed writes are counted.
        assert cache.get_or_load(key, lambda i=i: i) == i
        cache.set(f"set-{i}", i)
        if observer.get(key, None) == i:  # written through to a primary
            recovered_after = time.monotonic() - start
            break
        time.sleep(0.05)
    assert recovered_after is not None, "no write reached a new primary within 30 s"
    promoted = f"redis://127.0.0.1:{fleet.base + 11}/0"
    assert promoted in tier.health()
    errors = cache.stats()["tiers"][0]["errors"]
    assert errors >= 1  # the failures in between were counted
    # The keys written before the kill are read from the promoted replica.
    again = cache.get_many(keys)
    assert sum(again.get(k) == k.upper() for k in keys) >= 45, again
    # Another process, started after the failover, finds the new primary.
    other = TieredCache([sentinel_tier(fleet)], local=None, codec="json")
    assert other.get(f"after-{i}") == i
    print(
        f"failover: writes reached the new primary {recovered_after:.2f} s after the kill; {errors} error(s)"
    )


def test_from_django_follows_django_redis_sentinel_convention(fleet, settings):
    settings.CACHES = {
        **settings.CACHES,
        "sentinel": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://{SERVICE}/0",
            "KEY_PREFIX": "site",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.SentinelClient",
                "SENTINELS": fleet.sentinels,
            },
        },
    }
    tier = RedisTier.from_django("sentinel")
    assert tier.key_prefix == "site:1:"
    tier.set_many([("k", b"v", 60_000)])
    assert tier.get_many(["k"]) == [b"v"]
    assert all(name.startswith("redis://127.0.0.1:") for name in tier.health())


def test_a_sentinel_url_names_the_service_and_db():
    with pytest.raises(ValueError, match="service_name"):
        RedisTier("redis://mymaster/not-a-db", sentinels=[("127.0.0.1", 1)])
    with pytest.raises(TypeError, match="service_name"):
        RedisTier(["redis://a/0", "redis://b/0"], sentinels=[("127.0.0.1", 1)])


def test_no_sentinel_answering_degrades_to_misses():
    # Nothing listens on port 1: the tier fails, the loader serves, nothing raises.
    tier = RedisTier("redis://mymaster/0", sentinels=[("127.0.0.1", 1)])
    cache = TieredCache([tier], local=None, codec="json")
    assert cache.get_or_load("k", lambda: "loaded") == "loaded"
    assert cache.stats()["tiers"][0]["errors"] >= 1
    assert not any(h["up"] for h in tier.health().values())
