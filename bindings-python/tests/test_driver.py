"""The one Python driver (``stratacache._driver``) and its two runners: the
same reads through ``get_many_or_load`` (on the calling thread) and
``aget_many_or_load`` (with ``await``) over a real memcached give the same
answers, make the same tier calls and count the same failures."""

import asyncio

import pytest

from stratacache import TieredCache
from stratacache.tiers import Tier

#: Pickle caches over remote tiers need signing keys (unsigned pickles are refused).
SIGNED = {"signing_keys": [("test", b"a test secret of 32 bytes......!")]}


class Recorded(Tier):
    """A real memcached tier that records which method each runner called,
    and can be made to fail or to answer in the wrong shape."""

    def __init__(self, tier, mode="ok"):
        self.tier, self.mode, self.calls = tier, mode, []
        self.name, self.kind, self.item_limit = tier.name, tier.kind, tier.item_limit

    def get_many(self, keys):
        self.calls.append("get_many")
        if self.mode == "down":
            raise ConnectionError("memcached is down")
        if self.mode == "garbled":
            return "not a list of values"
        if self.mode == "tuple":  # any sequence of values is a valid answer
            return tuple(self.tier.get_many(keys))
        return self.tier.get_many(keys)

    async def aget_many(self, keys):
        self.calls.append("aget_many")
        return self.get_many(keys)

    def set_many(self, entries):
        self.calls.append("set_many")
        if self.mode == "down":
            raise ConnectionError("memcached is down")
        self.tier.set_many(entries)

    def delete_many(self, keys):
        self.tier.delete_many(keys)


def read(cache, keys, loader, runner):
    if runner == "sync":
        return cache.get_many_or_load(keys, loader)

    async def aloader(missing):
        return loader(missing)

    return asyncio.run(cache.aget_many_or_load(keys, aloader))


@pytest.mark.parametrize("runner", ["sync", "async"])
def test_both_runners_fetch_load_and_write_through_alike(memcached, runner):
    tier = Recorded(memcached)
    cache = TieredCache([tier], local=None, **SIGNED)
    loaded = []
    loader = lambda keys: (loaded.extend(keys), {k: k.upper() for k in keys})[1]  # noqa: E731
    assert read(cache, ["d:a", "d:b"], loader, runner) == {"d:a": "D:A", "d:b": "D:B"}
    assert sorted(loaded) == ["d:a", "d:b"]
    assert read(cache, ["d:a", "d:b"], loader, runner) == {"d:a": "D:A", "d:b": "D:B"}
    assert len(loaded) == 2, "the second read is served by memcached"
    # Two values in a tuple are an answer, not a (values, failed keys) outcome.
    tier.mode = "tuple"
    assert read(cache, ["d:a", "d:b"], loader, runner) == {"d:a": "D:A", "d:b": "D:B"}
    assert len(loaded) == 2 and cache.stats()["tiers"][0]["errors"] == 0
    tier.mode = "ok"
    # The async runner awaits the tier's own coroutine methods.
    fetch = "aget_many" if runner == "async" else "get_many"
    assert tier.calls.count(fetch) == 3
    assert "set_many" in tier.calls  # written through (a worker thread for async)


@pytest.mark.parametrize("runner", ["sync", "async"])
@pytest.mark.parametrize("mode", ["down", "garbled"])
def test_a_failed_or_garbled_tier_falls_through_to_the_loader(memcached, runner, mode):
    cache = TieredCache([Recorded(memcached, mode)], local=None, **SIGNED)
    assert read(cache, ["f:a"], lambda keys: {k: 7 for k in keys}, runner) == {"f:a": 7}
    assert cache.stats()["tiers"][0]["errors"] >= 1, "the failure is counted against the tier"


@pytest.mark.parametrize("runner", ["sync", "async"])
def test_a_raising_loader_reaches_the_caller_and_releases_the_keys(memcached, runner):
    cache = TieredCache([memcached], local=None, wait_timeout=30, **SIGNED)

    def boom(keys):
        raise KeyError("the database is gone")

    with pytest.raises(KeyError, match="database is gone"):
        read(cache, ["r:a"], boom, runner)
    # The failed read gave up its single-flight claim: the next reader loads
    # at once instead of waiting 30 s for it.
    assert read(cache, ["r:a"], lambda keys: {k: 1 for k in keys}, runner) == {"r:a": 1}
