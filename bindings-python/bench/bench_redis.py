"""get_many of 100 keys: stratacache's Redis tier (Rust client) against its
memcached tier and Django's RedisCache (redis-py), side by side over real
servers; also a Redis Cluster of three masters. Run: bash scripts/bench-fleet.sh

Best of several interleaved rounds, microseconds per get_many of 100 keys
(all hits, 200-byte values).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import django
from django.conf import settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fleet_support import Fleet

MEMCACHED = os.environ["STRATACACHE_MEMCACHED"].split(",")
REDIS = os.environ["STRATACACHE_REDIS_URL"]
settings.configure(
    SECRET_KEY="bench",
    CACHES={"redis": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS}},
)
django.setup()

from django.core.cache import caches  # noqa: E402

from stratacache import TieredCache  # noqa: E402
from stratacache.tiers import MemcachedTier, RedisTier  # noqa: E402

KEYS = [f"bench:redis:{i:03d}" for i in range(100)]
VALUE = b"x" * 200
ROUNDS = 7
CALLS = 300


def timed(fn) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(CALLS):
        fn()
    return (time.perf_counter() - t) / CALLS * 1e6


def main() -> None:
    mc = MemcachedTier(MEMCACHED)
    rd = RedisTier(REDIS)
    dj = caches["redis"]
    mc.set_many([(k, VALUE, None) for k in KEYS])
    rd.set_many([(k, VALUE, None) for k in KEYS])
    dj.set_many({k: VALUE for k in KEYS}, timeout=None)
    fleet = Fleet("redis-cluster")
    try:
        rc = RedisTier(fleet.redis_cluster, cluster=True)
        rc.set_many([(k, VALUE, None) for k in KEYS])
        assert rc.get_many(KEYS) == [VALUE] * 100
        assert mc.get_many(KEYS) == [VALUE] * 100 and rd.get_many(KEYS) == [VALUE] * 100
        assert len(dj.get_many(KEYS)) == 100
        tc_keys = [f"bench:tc:{i:03d}" for i in range(100)]
        tmc = TieredCache([mc], local=None, codec="json", signing_keys="bench")
        trd = TieredCache([rd], local=None, codec="json", signing_keys="bench")
        for t in (tmc, trd):
            t.get_many_or_load(tc_keys, lambda ks: {k: "x" * 200 for k in ks}, ttl=600)
            assert len(t.get_many(tc_keys)) == 100
        subjects = {
            "TieredCache([MemcachedTier]).get_many": lambda: tmc.get_many(tc_keys),
            "TieredCache([RedisTier]).get_many": lambda: trd.get_many(tc_keys),
            "stratacache MemcachedTier.get_many": lambda: mc.get_many(KEYS),
            "stratacache RedisTier.get_many": lambda: rd.get_many(KEYS),
            "Django RedisCache.get_many": lambda: dj.get_many(KEYS),
            "stratacache RedisTier (3-master cluster)": lambda: rc.get_many(KEYS),
        }
        best = {name: float("inf") for name in subjects}
        for r in range(ROUNDS):
            order = list(subjects.items())
            if r % 2:
                order.reverse()
            for name, fn in order:
                best[name] = min(best[name], timed(fn))
        print("get_many of 100 keys (200-byte values, all hits), best of", ROUNDS, "rounds")
        for name, us in best.items():
            print(f"  {name:42} {us:8.1f} us")
        ours = best["stratacache RedisTier.get_many"]
        mem = best["stratacache MemcachedTier.get_many"]
        djr = best["Django RedisCache.get_many"]
        print(f"Redis / memcached: {ours / mem:.2f}x (target <= 1.3x)")
        print(f"Django RedisCache / stratacache Redis: {djr / ours:.1f}x faster (target >= 4x)")
        tr, tm = best["TieredCache([RedisTier]).get_many"], best["TieredCache([MemcachedTier]).get_many"]
        print(f"TieredCache over Redis / over memcached: {tr / tm:.2f}x (target <= 1.3x)")
        print(f"Django RedisCache / TieredCache over Redis: {djr / tr:.1f}x faster (target >= 4x)")
    finally:
        fleet.stop()


if __name__ == "__main__":
    main()
