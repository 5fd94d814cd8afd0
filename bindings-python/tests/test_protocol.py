"""The read protocol as Python drives it: per-key tier failures, checked
answers (AnswerError), one driver with a sync and an async runner."""

import asyncio
import os

import pytest

from stratacache import TieredCache
from stratacache._errors import AnswerError
from stratacache.keys import normalize_key
from stratacache.tiers import Tier

#: Pickle caches over remote tiers need signing keys (unsigned pickles are refused).
SIGNED = {"signing_keys": [("test", b"a test secret of 32 bytes......!")]}


class PartlyDown(Tier):
    """A real memcached tier of which one server is down: the keys it holds
    come back as failed (the adapter contract's ``(values, failed)``)."""

    def __init__(self, tier, down):
        self.tier = tier
        self.down = set(down)
        self.name = tier.name
        self.kind = tier.kind
        self.item_limit = tier.item_limit

    def get_many(self, keys):
        healthy = [k for k in keys if k not in self.down]
        found = dict(zip(healthy, self.tier.get_many(healthy)))
        return [found.get(k) for k in keys], [k for k in keys if k in self.down]

    def set_many(self, entries):
        self.tier.set_many(entries)

    def add_many(self, items):
        return self.tier.add_many(items)

    def delete_many(self, keys):
        self.tier.delete_many(keys)


def test_a_partly_failed_batch_keeps_the_healthy_keys(memcached, redis_tier):
    keys = [f"partial:{i}" for i in range(8)]
    writer = TieredCache([memcached, redis_tier], **SIGNED)
    for i, k in enumerate(keys):
        writer.set_all_tiers(k, i)
    # The server holding keys 1 and 5 is down (the adapter sees core keys).
    down = {normalize_key(keys[1]), normalize_key(keys[5])}
    reader = TieredCache([PartlyDown(memcached, down), redis_tier], local=None, **SIGNED)
    assert reader.get_many(keys) == {k: i for i, k in enumerate(keys)}
    tiers = reader.stats()["tiers"]
    assert tiers[0]["hits"] == 6, "the healthy keys are kept from the partly failed batch"
    assert tiers[1]["hits"] == 2, "only the failed keys went on to the next tier"
    assert tiers[0]["errors"] == 1
    assert not reader._core.is_cooling_down(0, reader._now())


def test_the_async_runner_keeps_the_healthy_keys_too(memcached, redis_tier):
    writer = TieredCache([memcached, redis_tier], **SIGNED)
    writer.set_all_tiers("apartial:a", "a")
    writer.set_all_tiers("apartial:b", "b")
    down = {normalize_key("apartial:a")}
    reader = TieredCache([PartlyDown(memcached, down), redis_tier], local=None, **SIGNED)
    got = asyncio.run(reader.aget_many(["apartial:a", "apartial:b"]))
    assert got == {"apartial:a": "a", "apartial:b": "b"}
    tiers = reader.stats()["tiers"]
    assert (tiers[0]["hits"], tiers[1]["hits"]) == (1, 1)


def test_a_wrong_answer_is_an_answer_error(memcached):
    cache = TieredCache([memcached], local=None, **SIGNED)
    read = cache._read([normalize_key("wrong-answer")], None, False, None)
    step = read.next()
    assert step[0] == "fetch"
    with pytest.raises(AnswerError, match="answered a wait step"):
        read.woke()
    with pytest.raises(AnswerError, match="asked for 1 values, but the host gave 2"):
        read.fetched(step[1], [None, None])
    read.fetched(step[1], [None])
    with pytest.raises(AnswerError, match="answered a fetch step"):
        read.fetched(step[1], [None])
    assert read.next() == ("done",)


def test_redis_is_read_natively_unless_a_subclass_overrides_it(redis_tier):
    """A RedisTier's client answers the read loop directly, as memcached's
    does (no Python per key); a subclass that overrides get_many is called."""
    from stratacache.tiers import RedisTier

    assert redis_tier.native_client is redis_tier.client
    cache = TieredCache([redis_tier], local=None, **SIGNED)
    assert cache._natives[0] is redis_tier.client
    keys = [f"native-redis:{i}" for i in range(20)]
    cache.get_many_or_load(keys, lambda ks: {k: k.upper() for k in ks})
    fresh = TieredCache([redis_tier], local=None, **SIGNED)
    assert fresh.get_many(keys) == {k: k.upper() for k in keys}
    assert fresh.stats()["tiers"][0]["hits"] == 20

    calls = []

    class Counting(RedisTier):
        def get_many(self, keys):
            calls.append(list(keys))
            return super().get_many(keys)

    counting = Counting(os.environ["STRATACACHE_REDIS_URL"])
    assert counting.native_client is None
    assert TieredCache([counting], local=None, **SIGNED).get_many(keys[:2]) == {
        k: k.upper() for k in keys[:2]
    }
    assert calls == [keys[:2]]
