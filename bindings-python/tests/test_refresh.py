"""Stale-while-revalidate and XFetch early refresh, live, over real memcached:
the stale or nearly expired value is served at once, one background refresh
per process reloads it, and the next read sees the new value."""

from __future__ import annotations

import threading
import time
import uuid

import stratacache

# Pickle over a shared tier needs signing keys.
KEYS = stratacache.signing_keys_from_secret("test_refresh secret")


class Clock:
    """A settable clock (seconds), shared by the cache and the test."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingLoader:
    def __init__(self, value: str, delay: float = 0.0) -> None:
        self.value = value
        self.delay = delay
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> str:
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        return self.value


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "background refresh did not happen"
        time.sleep(0.01)


def _remote_cache(memcached, clock, **options) -> stratacache.TieredCache:
    """A signed cache over ``memcached`` alone, no jitter, on ``clock``."""
    return stratacache.TieredCache(
        [memcached], local=None, signing_keys=KEYS, ttl_jitter=0, clock=clock, **options
    )


def test_stale_value_is_served_while_one_background_refresh_reloads_it(memcached):
    clock = Clock()
    cache = _remote_cache(memcached, clock, default_ttl=10, stale_ttl=60, xfetch_beta=0)
    key = f"refresh|v1|{uuid.uuid4().hex}"
    first, second = CountingLoader("v1"), CountingLoader("v2", delay=0.05)
    assert cache.get_or_load(key, first) == "v1"
    clock.now += 20  # past the TTL, inside the stale window
    results = [cache.get_or_load(key, second) for _ in range(5)]
    assert results == ["v1"] * 5, "stale value served at once, not after the reload"
    wait_for(lambda: second.calls == 1 and cache.get(key) == "v2")
    assert second.calls == 1, "one refresh per process, however many readers saw the stale value"
    assert first.calls == 1
    # Past the hard expiry (TTL + stale window) nothing is served: a load.
    clock.now += 200
    third = CountingLoader("v3")
    assert cache.get_or_load(key, third) == "v3"
    assert third.calls == 1


def test_xfetch_refreshes_early_near_expiry_and_never_with_beta_zero(memcached):
    clock = Clock()
    key = f"xfetch|v1|{uuid.uuid4().hex}"
    # The loader takes ~50 ms: that recompute cost goes into the envelope.
    slow = CountingLoader("v1", delay=0.05)
    eager = _remote_cache(memcached, clock, default_ttl=100, xfetch_beta=1e6)
    assert eager.get_or_load(key, slow) == "v1"
    never = _remote_cache(memcached, clock, default_ttl=100, xfetch_beta=0)
    clock.now += 99  # one second before expiry
    untouched = CountingLoader("never")
    assert never.get_or_load(key, untouched) == "v1"
    time.sleep(0.2)
    assert untouched.calls == 0, "beta = 0 turns early refresh off"
    # With a large beta, a read one second before expiry refreshes early
    # (probability 1 - exp(-1 s / (50 ms * 1e6)) ~ 1), serving v1 meanwhile.
    fresh = CountingLoader("v2")
    assert eager.get_or_load(key, fresh) == "v1"
    wait_for(lambda: fresh.calls == 1 and eager.get(key) == "v2")
