"""LocalCache soak (issue 7, "Soak and memory"), Python contenders.

One process runs one contender over the shared op stream (the same in
core/examples/soak_local.rs and soak_local.mjs: xorshift32, three draws per
op) and prints one JSON object with RSS sampled every ``--sample`` ops:

* 45% get a hot key (4,096 keys), set it on a miss (TTL 60 s)
* 35% set a fresh key never read again (TTL 1-10 s)
* 10% overwrite a hot key (TTL 60 s)
*  5% get a key that was never set
*  5% delete a hot key

Values are fresh byte strings of 16 B - 16 KiB (log-uniform, ~2.4 KiB on
average), each weighed at its length. Time is a fake clock driven by the op
index (10 ops per millisecond, so 10M ops are ~17 simulated minutes and
every short TTL lapses many times over).

Contenders: ``stratacache`` (stratacache.LocalCache, max_entries and max_bytes),
``django-locmem`` (Django's LocMemCache, MAX_ENTRIES: it has no byte bound),
``cachetools-ttl`` (cachetools.TTLCache, maxsize in bytes via getsizeof: it
has one TTL for all entries, 60 s here, and no entry bound); ``dict`` (a
plain dict, no bound: the negative control of the fast test).

Usage: python soak_local.py CONTENDER [--ops N] [--sample N] [--progress]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time

from soak_rss import rss_bytes

HOT = 4096
MAX_ENTRIES = 50_000
MAX_BYTES = 32 << 20
HOT_TTL_MS = 60_000
OPS_PER_MS = 10
START_MS = 1_700_000_000_000
SEED = 2463534242
BLOB = bytes((i * 131 + 7) & 0xFF for i in range(32 << 10))
HOT_KEYS = [f"hot:{n}" for n in range(HOT)]
CONTENDERS = ("stratacache", "django-locmem", "cachetools-ttl", "dict")

_PAGE = None


class Clock:
    """The fake clock: seconds since the epoch, moved by the driver."""

    __slots__ = ("ms",)

    def __init__(self) -> None:
        self.ms = START_MS

    def seconds(self) -> float:
        return self.ms / 1000.0


def build(contender: str, clock: Clock):
    """(get(key) -> value or None, set(key, value, ttl_ms), delete(key), len())."""
    if contender == "stratacache":
        from stratacache import LocalCache

        cache = LocalCache(MAX_ENTRIES, MAX_BYTES, HOT_TTL_MS / 1000, clock=clock.seconds)

        def put(key, value, ttl_ms):
            cache.set(key, value, ttl_ms / 1000, weight=len(value))

        return cache.get, put, cache.delete, cache.__len__
    if contender == "django-locmem":
        import django
        from django.conf import settings

        settings.configure(
            CACHES={
                "default": {
                    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                    "TIMEOUT": HOT_TTL_MS / 1000,
                    "OPTIONS": {"MAX_ENTRIES": MAX_ENTRIES},
                }
            }
        )
        django.setup()
        # LocMemCache and BaseCache read time.time(): drive it by the fake clock.
        time.time = clock.seconds
        from django.core.cache import caches

        cache = caches["default"]

        def put(key, value, ttl_ms):
            cache.set(key, value, ttl_ms / 1000)

        return cache.get, put, cache.delete, lambda: len(cache._cache)
    if contender == "cachetools-ttl":
        from cachetools import TTLCache

        cache = TTLCache(MAX_BYTES, HOT_TTL_MS / 1000, timer=clock.seconds, getsizeof=len)

        def put(key, value, ttl_ms):
            cache[key] = value

        def delete(key):
            cache.pop(key, None)

        return cache.get, put, delete, cache.__len__
    if contender == "dict":
        # No bound at all: the negative control of the fast test.
        cache = {}

        def put(key, value, ttl_ms):
            cache[key] = value

        def delete(key):
            cache.pop(key, None)

        return cache.get, put, delete, cache.__len__
    raise SystemExit(f"unknown contender {contender!r}; one of {', '.join(CONTENDERS)}")


def run(contender: str, ops: int, sample: int, progress: bool = False) -> dict:
    clock = Clock()
    get, put, delete, size = build(contender, clock)
    gc.collect()
    baseline = rss_bytes()  # after the imports and the empty cache
    blob, hot_keys = BLOB, HOT_KEYS
    x = SEED
    hits = misses = digest = 0
    samples = [[0, rss_bytes(), 0]]
    next_sample = sample
    report_every = max(ops // 20, 1)
    t0 = time.perf_counter()
    for i in range(ops):
        clock.ms = START_MS + i // OPS_PER_MS
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        r = x % 100
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        y = x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        span = 16 << ((y >> 12) % 10)
        length = span + x % span
        digest = (digest * 31 + r * 65536 + length) & 0xFFFFFFFF
        if r < 45:
            key = hot_keys[y & 4095]
            if get(key) is None:
                misses += 1
                put(key, blob[:length], HOT_TTL_MS)
            else:
                hits += 1
        elif r < 80:
            put(f"fresh:{i}", blob[:length], (1 + (y >> 16) % 10) * 1000)
        elif r < 90:
            put(hot_keys[y & 4095], blob[:length], HOT_TTL_MS)
        elif r < 95:
            if get(f"absent:{i}") is not None:
                raise AssertionError("a key that was never set was found")
            misses += 1
        else:
            delete(hot_keys[y & 4095])
        if i + 1 == next_sample:
            samples.append([i + 1, rss_bytes(), size()])
            next_sample += sample
            if progress and (i + 1) % report_every < sample:
                print(
                    f"  [python {contender}] {i + 1:>11,} ops  rss {samples[-1][1] / 2**20:7.1f} MiB"
                    f"  entries {samples[-1][2]:>7,}",
                    file=sys.stderr,
                    flush=True,
                )
    seconds = time.perf_counter() - t0
    if samples[-1][0] != ops:
        samples.append([ops, rss_bytes(), size()])
    return summarize("python", contender, ops, seconds, baseline, samples, hits, misses, digest)


def summarize(host, contender, ops, seconds, baseline, samples, hits, misses, digest) -> dict:
    """The figures of one run (the same fields as the Rust and JS drivers)."""
    warm_at = ops // 5
    warm = next(s for s in samples if s[0] >= warm_at)
    after = [s[1] for s in samples if s[0] >= warm_at]
    return {
        "host": host,
        "contender": contender,
        "ops": ops,
        "seconds": seconds,
        "ops_per_s": ops / seconds if seconds else 0.0,
        "max_entries": MAX_ENTRIES,
        "max_bytes": MAX_BYTES,
        "baseline_rss": baseline,
        "warm_ops": warm[0],
        "warm_rss": warm[1],
        "peak_rss": max(s[1] for s in samples),
        "peak_rss_after_warm": max(after),
        "final_rss": samples[-1][1],
        "growth_after_warm": samples[-1][1] - warm[1],
        "peak_growth_after_warm": max(after) - warm[1],
        "final_entries": samples[-1][2],
        "hits": hits,
        "misses": misses,
        "digest": digest,
        "samples": samples,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("contender", choices=CONTENDERS)
    parser.add_argument("--ops", type=int, default=10_000_000)
    parser.add_argument("--sample", type=int, default=0, help="ops between RSS samples (default ops/200)")
    parser.add_argument("--progress", action="store_true", help="progress lines on stderr")
    args = parser.parse_args(argv)
    sample = args.sample or max(args.ops // 200, 1)
    print(json.dumps(run(args.contender, args.ops, sample, args.progress)))


if __name__ == "__main__":
    main()
