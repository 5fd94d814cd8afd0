"""``TieredCacheBackend`` against Django's cache backends on the same
servers, in one process: ``PyMemcacheCache``, ``PyLibMCCache`` (if pylibmc
installs), ``RedisCache`` and django-redis. Run: bash scripts/bench-django.sh

Each figure is the best of several interleaved rounds (ours and the peers
alternate, so load elsewhere on the shared machine hits both alike), per
operation. The ratio column is how many times faster the stratacache
backend is than the peer on the same server.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time

import django
from django.conf import settings

MEMCACHED = os.environ["STRATACACHE_MEMCACHED"].split(",")
REDIS_URL = os.environ["STRATACACHE_REDIS_URL"]
OURS = "stratacache.django.backend.TieredCacheBackend"

try:
    import pylibmc  # noqa: F401

    HAVE_PYLIBMC = True
except ImportError:
    HAVE_PYLIBMC = False
try:
    import django_redis  # noqa: F401

    HAVE_DJANGO_REDIS = True
except ImportError:
    HAVE_DJANGO_REDIS = False

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "ours_mc": {"BACKEND": OURS, "LOCATION": MEMCACHED, "KEY_PREFIX": "b1"},
    "ours_mc_local": {
        "BACKEND": OURS,
        "LOCATION": MEMCACHED,
        "KEY_PREFIX": "b2",
        "OPTIONS": {"LOCAL": {"MAX_ENTRIES": 10_000, "TTL": 5}},
    },
    "ours_redis": {"BACKEND": OURS, "LOCATION": REDIS_URL, "KEY_PREFIX": "b3"},
    "pymemcache": {
        "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
        "LOCATION": MEMCACHED,
        "KEY_PREFIX": "b4",
    },
    "redis": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "b5",
    },
}
if HAVE_PYLIBMC:
    CACHES["pylibmc"] = {
        "BACKEND": "django.core.cache.backends.memcached.PyLibMCCache",
        "LOCATION": MEMCACHED,
        "KEY_PREFIX": "b6",
    }
if HAVE_DJANGO_REDIS:
    CACHES["django_redis"] = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "b7",
    }
settings.configure(SECRET_KEY="bench", CACHES=CACHES, INSTALLED_APPS=["stratacache.django"])
django.setup()

from django.core.cache import caches  # noqa: E402

QUICK = "--quick" in sys.argv
ROUNDS = 3 if QUICK else 7
VALUE = {"title": "x" * 200, "ids": list(range(20))}  # ~300 bytes pickled
KEYS = [f"block:{i}" for i in range(100)]
BIG = os.urandom(3 * 1024 * 1024)


#: Best client CPU seconds per operation (time.process_time), per
#: operation and backend: on a loaded machine the wall time also holds the
#: wait for the servers to be scheduled; this is the client's own cost.
CPU: dict = {}


def best(fns: dict, n: int, op: str = "") -> dict:
    """Best seconds per operation of each fn(n), rounds interleaved."""
    out = {name: float("inf") for name in fns}
    cpu = CPU.setdefault(op, {name: float("inf") for name in fns})
    names = list(fns)
    for r in range(ROUNDS):
        for name in names if r % 2 == 0 else reversed(names):
            start, start_cpu = time.perf_counter(), time.process_time()
            fns[name](n)
            out[name] = min(out[name], (time.perf_counter() - start) / n)
            cpu[name] = min(cpu[name], (time.process_time() - start_cpu) / n)
    return out


def fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} µs"
    return f"{seconds * 1e3:8.2f} ms"


def _try_set(cache, key, value) -> None:
    """PyMemcacheCache raises on a value past memcached's item size
    (pylibmc too); an app that catches it caches nothing, as here."""
    try:
        cache.set(key, value, 3600)
    except Exception:
        pass


def main() -> None:
    peers_mc = ["pymemcache"] + (["pylibmc"] if HAVE_PYLIBMC else [])
    peers_redis = ["redis"] + (["django_redis"] if HAVE_DJANGO_REDIS else [])
    names = ["ours_mc", "ours_mc_local", "ours_redis", *peers_mc, *peers_redis]
    for name in names:
        caches[name].set_many({k: VALUE for k in KEYS}, 3600)
        caches[name].set("hot", VALUE, 3600)
    print(f"django {django.get_version()}; memcached x{len(MEMCACHED)}, redis; best of {ROUNDS} rounds")
    if not HAVE_PYLIBMC:
        print("(PyLibMCCache: pylibmc does not import here, left out)")

    # Each call's result is dropped before the next, as a request drops what
    # it read (kept in a list, n results of 100 fresh objects each would
    # survive into the older GC generations and make the collector's
    # full passes, a cost per object every backend pays alike, dominate the
    # fastest backend's time).
    def op_get(c):
        def run(n):
            for _ in range(n):
                c.get("hot")

        return run

    def op_get_many(c):
        def run(n):
            for _ in range(n):
                c.get_many(KEYS)

        return run

    def op_set_many(c):
        data = {k: VALUE for k in KEYS}

        def run(n):
            for _ in range(n):
                c.set_many(data, 3600)

        return run

    results = {}
    n_get = 300 if QUICK else 2000
    results["get hit"] = best({name: op_get(caches[name]) for name in names}, n_get, "get hit")
    results["get_many 100"] = best(
        {name: op_get_many(caches[name]) for name in names}, 20 if QUICK else 100, "get_many 100"
    )
    results["set_many 100"] = best(
        {name: op_set_many(caches[name]) for name in names if name != "ours_mc_local"}, 10 if QUICK else 50
    )

    # The block-structure pattern (background/000): a 3 MiB value set once,
    # read back; a peer that lost it rebuilds it (here: sha256 of 3 MiB x20,
    # ~the cost of a small rebuild) and tries to store it again.
    def op_big(c):
        def run(n):
            for _ in range(n):
                value = c.get("big")
                if value is None:
                    value = BIG
                    for _ in range(20):
                        hashlib.sha256(value).digest()
                    _try_set(c, "big", value)

        return run

    big_names = ["ours_mc", "ours_redis", *peers_mc, *peers_redis]
    for name in big_names:
        _try_set(caches[name], "big", BIG)
    served = {name: caches[name].get("big") == BIG for name in big_names}
    results["3 MiB get"] = best({name: op_big(caches[name]) for name in big_names}, 3 if QUICK else 10)

    print(f"\n{'operation':<14} {'backend':<16} {'time/op':>11}   ratio (stratacache backend ÷ peer time)")
    for op, times in results.items():
        for name, t in times.items():
            note = ""
            if op == "3 MiB get":
                note = "served from cache" if served[name] else "NOT cached: rebuilt every time"
            print(f"{op:<14} {name:<16} {fmt(t)}   {note}")
        mc = times.get("ours_mc")
        rd = times.get("ours_redis")
        for peer in peers_mc:
            if mc and peer in times:
                print(f"{'':<14} ours_mc vs {peer}: {times[peer] / mc:6.1f}x faster")
        for peer in peers_redis:
            if rd and peer in times:
                print(f"{'':<14} ours_redis vs {peer}: {times[peer] / rd:6.1f}x faster")
        cpu = CPU.get(op)
        if cpu:
            shown = ", ".join(f"{name} {fmt(t).strip()}" for name, t in cpu.items())
            print(f"{'':<14} client CPU/op: {shown}")
            for ours, peers in (("ours_mc", peers_mc), ("ours_redis", peers_redis)):
                ratios = ", ".join(f"{p} {cpu[p] / cpu[ours]:.1f}x" for p in peers if p in cpu)
                print(f"{'':<14} client CPU, {ours} vs {ratios}")
        if op == "get hit":
            local = times["ours_mc_local"]
            print(
                f"{'':<14} local tier (ours_mc_local) vs pymemcache: {times['pymemcache'] / local:6.1f}x faster"
            )
    print(
        "\ntargets: get_many 100 >= 8x PyMemcacheCache, >= 4x RedisCache/django-redis; local-tier get >= 20x"
    )


if __name__ == "__main__":
    main()
