"""get_many of 100 keys: stratacache's Redis tier (Rust client) against its
memcached tier and Django's RedisCache (redis-py), side by side over real
servers; also a Redis Cluster of three masters. Run: bash scripts/bench-fleet.sh

Best of several interleaved rounds, microseconds per get_many of 100 keys
(all hits): wall time and the client's CPU time (time.process_time; on a
shared machine the wall time also holds the wait for the servers). The
values are the ones of bench_django.py, a dict that pickles to ~280 bytes:
the TieredCaches use their default safe configuration (the pickle codec,
values signed with a key), Django's RedisCache pickles them too, and the
bare tiers read the same pickled bytes.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from pathlib import Path

import django
from django.conf import settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fleet_support import Fleet

MEMCACHED = os.environ["STRATACACHE_MEMCACHED"].split(",")
REDIS = os.environ["STRATACACHE_REDIS_URL"]
CACHES = {"redis": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS}}
try:
    import django_redis  # noqa: F401

    CACHES["django_redis"] = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": REDIS}
except ImportError:
    print("(django-redis does not import here: left out)")
settings.configure(SECRET_KEY="bench", CACHES=CACHES)
django.setup()

from django.core.cache import caches  # noqa: E402

from stratacache import TieredCache  # noqa: E402
from stratacache.tiers import MemcachedTier, RedisTier  # noqa: E402

KEYS = [f"bench:redis:{i:03d}" for i in range(100)]
OBJECT = {"title": "x" * 200, "ids": list(range(20))}  # as bench_django.py
VALUE = pickle.dumps(OBJECT, pickle.HIGHEST_PROTOCOL)
ROUNDS = 7
CALLS = 300


def timed(fn) -> tuple:
    """(wall, client CPU) microseconds per call."""
    fn()
    t, cpu = time.perf_counter(), time.process_time()
    for _ in range(CALLS):
        fn()
    return ((time.perf_counter() - t) / CALLS * 1e6, (time.process_time() - cpu) / CALLS * 1e6)


def main() -> None:
    mc = MemcachedTier(MEMCACHED)
    rd = RedisTier(REDIS)
    dj = caches["redis"]
    mc.set_many([(k, VALUE, None) for k in KEYS])
    rd.set_many([(k, VALUE, None) for k in KEYS])
    dj.set_many({k: OBJECT for k in KEYS}, timeout=None)
    djr = caches["django_redis"] if "django_redis" in CACHES else None
    if djr is not None:
        djr.set_many({k: OBJECT for k in KEYS}, timeout=None)
    fleet = Fleet("redis-cluster")
    try:
        rc = RedisTier(fleet.redis_cluster, cluster=True)
        rc.set_many([(k, VALUE, None) for k in KEYS])
        assert rc.get_many(KEYS) == [VALUE] * 100
        assert mc.get_many(KEYS) == [VALUE] * 100 and rd.get_many(KEYS) == [VALUE] * 100
        assert len(dj.get_many(KEYS)) == 100
        assert djr is None or len(djr.get_many(KEYS)) == 100
        tc_keys = [f"bench:tc:{i:03d}" for i in range(100)]
        # The default codec (pickle) with signing keys: what a project runs.
        tmc = TieredCache([mc], local=None, signing_keys="bench")
        trd = TieredCache([rd], local=None, signing_keys="bench")
        for t in (tmc, trd):
            t.get_many_or_load(tc_keys, lambda ks: {k: OBJECT for k in ks}, ttl=600)
            assert t.get_many(tc_keys) == {k: OBJECT for k in tc_keys}
        subjects = {
            "TieredCache([MemcachedTier]).get_many": lambda: tmc.get_many(tc_keys),
            "TieredCache([RedisTier]).get_many": lambda: trd.get_many(tc_keys),
            "stratacache MemcachedTier.get_many": lambda: mc.get_many(KEYS),
            "stratacache RedisTier.get_many": lambda: rd.get_many(KEYS),
            "Django RedisCache.get_many": lambda: dj.get_many(KEYS),
            **({"django-redis get_many": lambda: djr.get_many(KEYS)} if djr is not None else {}),
            "stratacache RedisTier (3-master cluster)": lambda: rc.get_many(KEYS),
        }
        best = {name: float("inf") for name in subjects}
        cpu = {name: float("inf") for name in subjects}
        for r in range(ROUNDS):
            order = list(subjects.items())
            if r % 2:
                order.reverse()
            for name, fn in order:
                wall, used = timed(fn)
                best[name] = min(best[name], wall)
                cpu[name] = min(cpu[name], used)
        print(f"get_many of 100 keys ({len(VALUE)}-byte pickled values, all hits), best of {ROUNDS} rounds")
        print(f"  {'':42} {'wall':>8}    {'client CPU':>10}")
        for name, us in best.items():
            print(f"  {name:42} {us:8.1f} us {cpu[name]:8.1f} us")

        def ratios(label: str, peer: str, ours: str, target: str, inverse: bool = False) -> None:
            w, c = best[peer] / best[ours], cpu[peer] / cpu[ours]
            if inverse:
                w, c = 1 / w, 1 / c
            print(f"{label}: {w:.2f}x wall, {c:.2f}x client CPU ({target})")

        ratios(
            "Redis / memcached",
            "stratacache MemcachedTier.get_many",
            "stratacache RedisTier.get_many",
            "target <= 1.3x",
            inverse=True,
        )
        ratios(
            "Django RedisCache / stratacache Redis",
            "Django RedisCache.get_many",
            "stratacache RedisTier.get_many",
            "faster; target >= 4x",
        )
        ratios(
            "TieredCache over Redis / over memcached",
            "TieredCache([MemcachedTier]).get_many",
            "TieredCache([RedisTier]).get_many",
            "target <= 1.3x",
            inverse=True,
        )
        ratios(
            "Django RedisCache / TieredCache over Redis",
            "Django RedisCache.get_many",
            "TieredCache([RedisTier]).get_many",
            "faster; target >= 4x",
        )
        if djr is not None:
            ratios(
                "django-redis / TieredCache over Redis",
                "django-redis get_many",
                "TieredCache([RedisTier]).get_many",
                "faster; target >= 4x",
            )
    finally:
        fleet.stop()


if __name__ == "__main__":
    main()
