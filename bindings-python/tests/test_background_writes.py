"""Writes off the request path: back-fill and load-then-store writes through
a bounded background queue, over real memcached and Redis
(scripts/servers.sh)."""

import os
import subprocess
import sys
import threading
import time
import uuid

import pytest

from stratacache import Key, TieredCache, _core
from stratacache.background import BackgroundWrites
from stratacache.tiers import MemcachedTier

#: Pickle caches over remote tiers need signing keys (unsigned pickles are refused).
SIGNED = {"signing_keys": [("test", b"a test secret of 32 bytes......!")]}

MEMCACHED = os.environ.get("STRATACACHE_MEMCACHED", "")


class GatedMemcached(MemcachedTier):
    """memcached whose writes from the background writer wait for ``gate``
    (the request path's own writes go through at once)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def set_many(self, entries):
        if threading.current_thread().name.startswith("stratacache-writer"):
            self.entered.set()
            assert self.gate.wait(10), "gate never opened"
        super().set_many(entries)


def remote(tier):
    """Another process's view of the remote tier: no local tier."""
    return TieredCache([tier], local=None, name="observer", **SIGNED)


@pytest.fixture
def gated(memcached):
    tier = GatedMemcached(MEMCACHED)
    yield tier
    tier.gate.set()


def test_a_loaded_value_reaches_memcached_after_the_read_returned(gated):
    cache = TieredCache([gated], background_writes=True, **SIGNED)
    key = Key("outline", 1)("course-1")
    assert cache.get_or_load(key, lambda: {"blocks": 42}) == {"blocks": 42}
    # The read returned while its write waits at the gate.
    assert gated.entered.wait(2)
    assert remote(gated).get(key, None) is None
    assert cache.get(key) == {"blocks": 42}  # this process: its local tier
    gated.gate.set()
    assert cache.flush_writes(5)
    assert remote(gated).get(key) == {"blocks": 42}
    stats = cache.stats()["background_writes"]
    assert stats["queued"] == 1 and stats["written"] == 1 and stats["dropped"] == 0
    assert stats["pending"] == 0
    cache.close()


def test_the_native_memcached_client_writes_in_the_background_too(memcached):
    cache = TieredCache([memcached], background_writes=True, **SIGNED)
    assert memcached.native_client is not None
    keys = [Key("grades", 1)(i) for i in range(20)]
    cache.get_many_or_load(keys, lambda ks: [f"g{k}" for k in ks])
    assert cache.flush_writes(5)
    assert remote(memcached).get_many(keys) == {k: f"g{k}" for k in keys}
    assert cache.stats()["background_writes"]["written"] == 20
    cache.close()


def test_back_fill_from_a_lower_tier_is_queued(memcached, redis_tier):
    TieredCache([redis_tier], local=None, **SIGNED).set("only-in-redis", "deep value")
    cache = TieredCache([memcached, redis_tier], background_writes=True, **SIGNED)
    assert cache.get("only-in-redis") == "deep value"
    assert cache.flush_writes(5)
    assert remote(memcached).get("only-in-redis") == "deep value"
    assert cache.stats()["background_writes"]["written"] == 1


def test_the_queue_bound_drops_and_counts(gated):
    cache = TieredCache([gated], background_writes=BackgroundWrites(max_steps=2), **SIGNED)
    keys = [f"k{i}" for i in range(5)]
    cache.get_or_load(keys[0], lambda: 0)
    assert gated.entered.wait(2)  # the writer holds k0: the queue is empty
    for i, key in enumerate(keys[1:], 1):
        assert cache.get_or_load(key, lambda i=i: i) == i  # reads never wait
    stats = cache.stats()["background_writes"]
    assert stats["queued"] == 3 and stats["dropped"] == 2 and stats["pending"] == 2
    gated.gate.set()
    assert cache.flush_writes(5)
    found = remote(gated).get_many(keys)
    assert found == {"k0": 0, "k1": 1, "k2": 2}  # k3, k4 were dropped
    assert cache.stats()["background_writes"]["written"] == 3
    cache.close()


def test_the_byte_bound_counts_value_bytes(gated):
    cache = TieredCache(
        [gated], background_writes=BackgroundWrites(max_bytes=64 * 1024), compress_at=None, **SIGNED
    )
    cache.get_or_load("first", lambda: b"x")
    assert gated.entered.wait(2)
    cache.get_or_load("big1", lambda: os.urandom(40 * 1024))
    cache.get_or_load("big2", lambda: os.urandom(40 * 1024))  # 80 KiB queued would be too many
    stats = cache.stats()["background_writes"]
    assert stats["pending"] == 1 and stats["dropped"] == 1
    assert 40 * 1024 < stats["pending_bytes"] < 64 * 1024
    gated.gate.set()
    cache.close()


def test_close_drains_the_queue_and_later_writes_are_synchronous(gated):
    cache = TieredCache([gated], background_writes=True, **SIGNED)
    for i in range(10):
        cache.get_or_load(f"drain{i}", lambda i=i: i)
    threading.Timer(0.2, gated.gate.set).start()
    started = time.monotonic()
    cache.close(timeout=5)
    assert time.monotonic() - started >= 0.15  # it waited for the gate
    assert remote(gated).get_many([f"drain{i}" for i in range(10)]) == {f"drain{i}": i for i in range(10)}
    assert "background_writes" not in cache.stats()
    cache.get_or_load("after-close", lambda: "sync")
    assert remote(gated).get("after-close") == "sync"


def test_an_explicit_set_supersedes_a_queued_write_of_the_same_key(gated):
    cache = TieredCache([gated], background_writes=True, **SIGNED)
    cache.get_or_load("blocker", lambda: "b")
    assert gated.entered.wait(2)
    cache.get_or_load("outline", lambda: "loaded v1")  # queued behind the blocker
    cache.set_all_tiers("outline", "explicit v2")  # synchronous: in memcached now
    assert remote(gated).get("outline") == "explicit v2"
    gated.gate.set()
    assert cache.flush_writes(5)
    assert remote(gated).get("outline") == "explicit v2"  # v1 never landed after it
    assert cache.stats()["background_writes"]["superseded"] == 1
    cache.close()


def test_a_delete_supersedes_a_queued_write(gated):
    cache = TieredCache([gated], background_writes=True, **SIGNED)
    cache.get_or_load("blocker", lambda: "b")
    assert gated.entered.wait(2)
    cache.get_or_load("gone", lambda: "v1")
    cache.delete("gone")
    gated.gate.set()
    assert cache.flush_writes(5)
    assert remote(gated).get("gone", None) is None
    cache.close()


def test_failed_background_writes_are_counted_and_never_raised():
    dead = MemcachedTier("127.0.0.1:1", connect_timeout=0.05, timeout=0.05)
    cache = TieredCache([dead], background_writes=True, cooldown=(100, 1.0), **SIGNED)
    assert cache.get_or_load("k", lambda: "v") == "v"
    assert cache.flush_writes(5)
    stats = cache.stats()
    assert stats["background_writes"]["failed"] == 1
    assert stats["tiers"][0]["errors"] >= 2  # the fetch and the background store
    cache.close()


def test_async_reads_queue_their_writes_too(memcached):
    import asyncio

    cache = TieredCache([memcached], background_writes=True, **SIGNED)

    async def main():
        return await cache.aget_or_load("async-key", lambda: "async value")

    assert asyncio.run(main()) == "async value"
    assert cache.flush_writes(5)
    assert remote(memcached).get("async-key") == "async value"
    assert cache.stats()["background_writes"]["written"] == 1
    cache.close()


def test_the_queue_is_drained_at_interpreter_exit(memcached):
    """A process that never calls close(): the exit handler drains."""
    key = f"atexit-{uuid.uuid4().hex[:8]}"
    program = f"""
import os, time
from stratacache import TieredCache
from stratacache.tiers import MemcachedTier

SIGNED = dict(signing_keys=[("test", b"a test secret of 32 bytes......!")])

class Slow(MemcachedTier):
    def set_many(self, entries):
        time.sleep(0.3)
        super().set_many(entries)

cache = TieredCache([Slow(os.environ["STRATACACHE_MEMCACHED"])], background_writes=True, **SIGNED)
cache.get_or_load({key!r}, lambda: "written at exit")
"""
    subprocess.run([sys.executable, "-c", program], check=True, timeout=30, env=os.environ.copy())
    assert remote(memcached).get(key) == "written at exit"


def test_bad_background_options_are_clear_errors(memcached):
    with pytest.raises(TypeError, match="background_writes must be"):
        TieredCache([memcached], background_writes="yes", **SIGNED)
    with pytest.raises(TypeError):
        TieredCache([memcached], background_writes={"max_stepz": 1}, **SIGNED)


def test_a_lease_is_released_only_after_the_queued_store(gated):
    """With leases, another process waiting on the lease finds the value
    in memcached instead of loading it again: the lease release is queued
    behind the store."""
    from stratacache import LeasePolicy

    policy = LeasePolicy(ttl=10, max_wait=5, poll_interval=0.05)
    a = TieredCache([gated], background_writes=True, leases=policy, name="a", **SIGNED)
    b = TieredCache([gated], leases=policy, name="b", **SIGNED)
    a.get_or_load("leased", lambda: "from a")  # holds the lease until its queue drains
    assert gated.entered.wait(2)
    b_loads = []
    got = {}
    reader = threading.Thread(
        target=lambda: got.setdefault("b", b.get_or_load("leased", lambda: b_loads.append(1) or "from b"))
    )
    reader.start()
    time.sleep(0.3)
    assert reader.is_alive()  # waiting on a's lease
    gated.gate.set()
    reader.join(5)
    assert got["b"] == "from a" and b_loads == []
    assert a.stats()["background_writes"]["deletes_queued"] == 1
    a.close()


class SealWatchingMemcached(MemcachedTier):
    """memcached that records which thread each write came from."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.writers = []

    def set_many(self, entries):
        self.writers.append((threading.current_thread().name, [e[0] for e in entries]))
        super().set_many(entries)


def test_a_large_value_is_sealed_and_chunked_by_the_writer(memcached, redis_tier):
    """The read hands its writes out unsealed: the writer thread seals and
    chunks them (chunks before their manifest), back-fills as well."""
    tier = SealWatchingMemcached(MEMCACHED)
    cache = TieredCache([tier, redis_tier], background_writes=True, **SIGNED)
    key = Key("block_structure", 1)(uuid.uuid4().hex)
    big = os.urandom(3 * 1024 * 1024)  # over memcached's 1 MiB items: chunked
    assert cache.get_or_load(key, lambda: big) == big
    assert cache.flush_writes(10)
    # Every write ran on the writer thread, the manifest (the main key) last.
    names = {name for name, _ in tier.writers}
    assert names and all(n.startswith("stratacache-writer") for n in names), names
    written = [k for _, keys in tier.writers for k in keys]
    chunk = [k.startswith(_core.CHUNK_KEY_PREFIX) for k in written]
    assert len(written) >= 4 and all(chunk[:-1]) and not chunk[-1], written
    assert remote(tier).get(key) == big
    assert TieredCache([redis_tier], local=None, **SIGNED).get(key) == big
    stats = cache.stats()["background_writes"]
    assert stats["written"] == stats["queued"] >= 5 and stats["failed"] == 0
    # A back-fill of the same size from Redis to memcached: sealed already,
    # chunked by the writer too.
    key2 = Key("block_structure", 1)(uuid.uuid4().hex)
    TieredCache([redis_tier], local=None, **SIGNED).set(key2, big)
    tier.writers.clear()
    other = TieredCache([tier, redis_tier], background_writes=True, **SIGNED)
    assert other.get(key2) == big
    assert other.flush_writes(10)
    assert tier.writers and all(n.startswith("stratacache-writer") for n, _ in tier.writers)
    assert remote(tier).get(key2) == big
    cache.close()
    other.close()
