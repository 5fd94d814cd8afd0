"""Process bodies for the fleet tests and benches (spawned with
multiprocessing, so they live in an importable module of their own)."""

from __future__ import annotations

import time

#: Pickle caches over remote tiers need signing keys (unsigned pickles are refused).
SIGNED = {"signing_keys": [("test", b"a test secret of 32 bytes......!")]}

# time.monotonic() is CLOCK_MONOTONIC on Linux: one clock for every process
# on the machine, so lags can be computed across processes.


def coherence_reader(
    reader_id: int,
    memcached: str,
    redis_url: str,
    channel: str,
    key: str,
    ready,
    results,
    stop,
    invalidation: bool = True,
) -> None:
    """Polls ``key`` through a local tier (60 s TTL) and reports
    ``(reader_id, value, monotonic time)`` each time the value it is served
    changes; at the end, ``(reader_id, "stats", stats)``."""
    from stratacache import LocalTier, TieredCache
    from stratacache.tiers import MemcachedTier

    cache = TieredCache(
        [MemcachedTier(memcached)],
        local=LocalTier(ttl=60),
        invalidation={"url": redis_url, "channel": channel} if invalidation else None,
        name=f"reader{reader_id}",
        **SIGNED,
    )
    if cache.invalidation is not None and not cache.invalidation.wait_connected(10):
        results.put((reader_id, "error", "not subscribed"))
        return
    ready.put(reader_id)
    seen = object()
    try:
        while not stop.is_set():
            value = cache.get(key)
            if value != seen:
                results.put((reader_id, value, time.monotonic()))
                seen = value
            time.sleep(0.0002)
    finally:
        results.put((reader_id, "stats", cache.stats()))
        cache.close()


def run_coherence(
    memcached: str,
    redis_url: str,
    rounds: int,
    readers: int = 3,
    invalidation: bool = True,
    deadline: float = 2.0,
) -> dict:
    """One writer (this process) and ``readers`` spawned processes, all with
    local tiers over the same memcached (and the same invalidation channel).
    Each round the writer sets a new value; the result holds, per round and
    reader, the seconds from the start of the ``set`` until that reader was
    first served the new value (None if not within ``deadline``), and each
    reader's stats."""
    import multiprocessing
    import queue as queue_mod
    import random
    import uuid

    from stratacache import Key, LocalTier, TieredCache
    from stratacache.tiers import MemcachedTier

    channel = f"coherence-{uuid.uuid4().hex[:8]}"
    key = Key("coherence", 1)(uuid.uuid4().hex)
    writer = TieredCache(
        [MemcachedTier(memcached)],
        local=LocalTier(ttl=60),
        invalidation={"url": redis_url, "channel": channel} if invalidation else None,
        name="writer",
        **SIGNED,
    )
    writer.set(key, 0)
    ctx = multiprocessing.get_context("spawn")
    ready, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(
            target=coherence_reader,
            args=(i, memcached, redis_url, channel, key, ready, results, stop, invalidation),
            daemon=True,
        )
        for i in range(readers)
    ]
    for p in procs:
        p.start()
    lags: list = []
    reader_stats: dict = {}
    try:
        for _ in range(readers):
            ready.get(timeout=60)
        # Every reader has value 0 in its local tier before round 1.
        first_seen = 0
        while first_seen < readers:
            rid, value, _t = results.get(timeout=10)
            if value == "error":
                raise RuntimeError(f"reader {rid}: {_t}")
            first_seen += value == 0
        for r in range(1, rounds + 1):
            time.sleep(random.uniform(0.005, 0.02))
            started = time.monotonic()
            writer.set(key, r)
            got: dict = {}
            end = started + deadline
            while len(got) < readers:
                try:
                    rid, value, at = results.get(timeout=max(0.0, end - time.monotonic()))
                except queue_mod.Empty:
                    break
                if value == r:
                    got[rid] = at - started
            lags.append([got.get(i) for i in range(readers)])
            if len(got) < readers:
                # Let stragglers catch up so the next round starts clean.
                writer.set(key, r)
    finally:
        stop.set()
        deadline_stats = time.monotonic() + 10
        while len(reader_stats) < readers and time.monotonic() < deadline_stats:
            try:
                rid, kind, payload = results.get(timeout=1)
            except queue_mod.Empty:
                continue
            if kind == "stats":
                reader_stats[rid] = payload
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
        writer_stats = writer.stats()
        writer.close()
    return {"lags": lags, "readers": reader_stats, "writer": writer_stats}


def percentile(values: list, q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest-rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]
