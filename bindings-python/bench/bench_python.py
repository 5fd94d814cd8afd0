"""stratacache (Python) against its peers, side by side in one process, over
the real servers of scripts/servers.sh. Run: bash scripts/bench-python.sh

Each figure is the best of several rounds (the machine is shared), in
nanoseconds, microseconds or milliseconds per operation; ours and the peers
run interleaved (round 1: ours, peer; round 2: peer, ours; ...), so a burst
of load elsewhere on the machine hits both sides alike. The ratio column
says how many times faster stratacache is (or, for lru_cache, how many times
its time).
"""

from __future__ import annotations

import functools
import os
import sys
import time

import django
from django.conf import settings

MEMCACHED = os.environ["STRATACACHE_MEMCACHED"].split(",")
settings.configure(
    SECRET_KEY="bench",
    CACHES={
        "default": {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": MEMCACHED,
        },
        "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "bench"},
    },
    INSTALLED_APPS=[],
)
django.setup()

import cachetools  # noqa: E402
from django.core.cache import caches  # noqa: E402
from edx_django_utils.cache import RequestCache as EdxRequestCache  # noqa: E402
from edx_django_utils.cache import TieredCache as EdxTieredCache  # noqa: E402

from stratacache import LocalCache, RequestCache, TieredCache, request_scope  # noqa: E402
from stratacache.tiers import MemcachedTier  # noqa: E402

QUICK = "--quick" in sys.argv
ROUNDS = 3 if QUICK else 7
rows: list = []


def interleaved(fns: list, n: int, rounds: int = 0) -> list:
    """Best seconds per call of each fn(n) (fn runs its operation n times),
    over the rounds; each round runs every fn once, in alternating order."""
    best = [float("inf")] * len(fns)
    for r in range(rounds or ROUNDS):
        order = list(range(len(fns)))
        if r % 2:
            order.reverse()
        for i in order:
            start = time.perf_counter()
            fns[i](n)
            best[i] = min(best[i], (time.perf_counter() - start) / n)
    return best


def row(what: str, ours: float, peer_name: str, peer: float, unit: str, target: str, ok: bool) -> None:
    rows.append((what, ours, peer_name, peer, unit, target, ok))


def ns(s: float) -> float:
    return s * 1e9


def bench_request_cache() -> None:
    n = 200_000 if not QUICK else 50_000
    ours = RequestCache("bench")
    edx = EdxRequestCache("bench")
    with request_scope():
        ours.set("course:1", {"title": "Demo"})
        edx.set("course:1", {"title": "Demo"})
        g = ours.get_cached_response

        def run_ours(n):
            for _ in range(n):
                g("course:1")

        e = edx.get_cached_response

        def run_edx(n):
            for _ in range(n):
                e("course:1")

        a, b = interleaved([run_ours, run_edx], n)
    row(
        "RequestCache hit (get_cached_response)",
        ns(a),
        "edx RequestCache",
        ns(b),
        "ns",
        ">= 5x faster",
        b / a >= 5,
    )


def bench_local_cache() -> None:
    n = 200_000 if not QUICK else 50_000
    keys = [f"flag:{i}" for i in range(1000)]
    ours = LocalCache(10_000, 64 << 20, ttl=300)
    for k in keys:
        ours.set(k, k)

    @functools.lru_cache(maxsize=2048)
    def lru(k):
        return k

    for k in keys:
        lru(k)
    ttl = cachetools.TTLCache(10_000, 300)
    for k in keys:
        ttl[k] = k
    locmem = caches["locmem"]
    for k in keys:
        locmem.set(k, k, 300)

    def looped(f):
        def run(n):
            for _ in range(n // 1000):
                for k in keys:
                    f(k)

        return run

    a, b, c = interleaved([looped(ours.get), looped(lru), looped(ttl.get)], n)
    d, a2 = interleaved([looped(locmem.get), looped(ours.get)], n // 10)
    a = min(a, a2)
    row("LocalCache get hit", ns(a), "functools.lru_cache hit", ns(b), "ns", "<= 1.3x its time", a / b <= 1.3)
    row("LocalCache get hit", ns(a), "cachetools.TTLCache get", ns(c), "ns", ">= 8x faster", c / a >= 8)
    row("LocalCache get hit", ns(a), "Django LocMemCache get", ns(d), "ns", ">= 40x faster", d / a >= 40)


def bench_memcached_batch() -> None:
    """Both sides read the same 100 values from the same two memcached
    servers, with nothing cached in-process: ours with one get_many (request
    tier empty: a fresh request scope each time; no local tier), edx with
    100 get_cached_response calls after clearing its request cache (each is
    a Django cache.get: one round trip to the server HashClient picks)."""
    n = 40 if not QUICK else 10
    memcached = MemcachedTier(MEMCACHED)
    memcached.clear()
    keys = [f"course-block-{i}" for i in range(100)]
    # Unsigned, as edx-django-utils stores them (the bench's memcached is private).
    ours = TieredCache([memcached], local=None, allow_unsigned_pickle=True)
    for i, k in enumerate(keys):
        ours.set_all_tiers(k, {"block": i, "children": list(range(10))}, ttl=600)
        EdxTieredCache.set_all_tiers(k, {"block": i, "children": list(range(10))}, 600)

    def run_ours(n):
        for _ in range(n):
            with request_scope():
                got = ours.get_many(keys)
            assert len(got) == 100

    def run_edx(n):
        for _ in range(n):
            EdxRequestCache.clear_all_namespaces()
            for k in keys:
                assert EdxTieredCache.get_cached_response(k).is_found

    before = ours.stats()["tiers"][0]["hits"]
    a, b = interleaved([run_ours, run_edx], n, rounds=ROUNDS * 2)
    # Honesty: every one of our reads went to memcached for all 100 keys.
    hits = ours.stats()["tiers"][0]["hits"] - before
    assert hits == 100 * n * ROUNDS * 2, f"{hits} memcached hits for {n * ROUNDS * 2} reads of 100 keys"
    assert ours.stats()["reads"]["request_hits"] == 0 and ours.stats()["local"] is None
    row(
        "100 keys via memcached: TieredCache.get_many",
        a * 1e6,
        "100x edx TieredCache.get_cached_response",
        b * 1e6,
        "µs",
        ">= 20x faster",
        b / a >= 20,
    )


def bench_big_value() -> None:
    n = 5 if not QUICK else 2
    memcached = MemcachedTier(MEMCACHED)
    big = os.urandom(5 * 1024 * 1024)

    def loader():
        time.sleep(0.2)  # stands for building a large course structure
        return big

    ours = TieredCache([memcached], local=None, allow_unsigned_pickle=True)
    ours.get_or_load("big-structure", loader, ttl=600)
    plain = caches["default"]

    def run_ours(n):
        for _ in range(n):
            assert len(ours.get_or_load("big-structure", loader, ttl=600)) == len(big)

    def run_django(n):
        for _ in range(n):
            value = plain.get("big-structure-plain")
            if value is None:  # never cached: memcached refuses 5 MiB items
                value = loader()
                try:
                    plain.set("big-structure-plain", value, 600)
                except Exception:
                    pass
            assert len(value) == len(big)

    a, b = interleaved([run_ours, run_django], n)
    row(
        "5 MiB value behind memcached (served from cache)",
        a * 1e3,
        "Django PyMemcacheCache + loader every time",
        b * 1e3,
        "ms",
        "print both",
        True,
    )


def main() -> None:
    print(f"stratacache Python benchmarks (best of {ROUNDS} rounds; memcached at {','.join(MEMCACHED)})")
    bench_request_cache()
    bench_local_cache()
    bench_memcached_batch()
    bench_big_value()
    width = max(len(r[0]) for r in rows)
    pwidth = max(len(r[2]) for r in rows)
    print()
    print(
        f"{'what':<{width}}  {'stratacache':>11}  {'peer':<{pwidth}}  {'peer time':>11}  {'ratio':>8}  target"
    )
    failed = 0
    for what, ours, peer_name, peer, unit, target, ok in rows:
        ratio = ours / peer if "its time" in target else peer / ours
        mark = "ok" if ok else "MISSED"
        failed += not ok
        print(
            f"{what:<{width}}  {ours:>8.1f} {unit:<2}  {peer_name:<{pwidth}}  {peer:>8.1f} {unit:<2}  "
            f"{ratio:>7.2f}x  {target} [{mark}]"
        )
    print(
        "\nmemcached row: ours = one TieredCache.get_many of 100 keys (fresh request scope, no local tier;"
        "\n  checked: memcached answered all 100 keys of every read); edx = RequestCache.clear_all_namespaces()"
        "\n  then 100 TieredCache.get_cached_response (Django PyMemcacheCache, same two servers, same values)."
    )
    if failed and "--check" in sys.argv:
        sys.exit(1)


if __name__ == "__main__":
    main()
