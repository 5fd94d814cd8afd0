"""``TieredCache.get_many`` reads in one call into the extension
(``TieredCore.get_many_keys``: keys mapped, every native tier read, values
checked and decoded, the dict built). These tests hold it to the generic
path (a read started with ``TieredCore.read`` and driven by the Python
driver, as before): the same values, the same tier per key, the same
failures, over real memcached and Redis."""

import os

import pytest
from test_protocol import PartlyDown

from stratacache import TieredCache, request_scope
from stratacache._core import normalize_keys
from stratacache.keys import BuiltKey, normalize_key
from stratacache.scope import current_scope
from stratacache.tiered import DEFAULT_TTL
from stratacache.tiers import RedisTier

#: Pickle caches over remote tiers need signing keys (unsigned pickles are refused).
SIGNED = {"signing_keys": [("test", b"a test secret of 32 bytes......!")]}
VALUE = {"title": "x" * 200, "ids": list(range(20))}


def generic_get_many(cache: TieredCache, keys) -> dict:
    """``get_many`` as it was before the one-call path: the read started in
    the extension, every step it hands back driven by the Python driver."""
    core_keys, user_keys = normalize_keys(keys, BuiltKey)
    scope = current_scope(False)
    read = cache._read(core_keys, scope, False, DEFAULT_TTL, user_keys=user_keys)
    return read if type(read) is dict else cache._driver.run(read, scope, None, user_keys)


def tier_counts(cache: TieredCache) -> list:
    return [
        {k: t[k] for k in ("hits", "misses", "errors", "rejected", "fetches") if k in t}
        for t in cache.stats()["tiers"]
    ]


def no_driver(cache: TieredCache) -> None:
    """Fails the test if the read comes back to the Python driver."""

    def run(*args, **kwargs):
        raise AssertionError("the read came back to the Python driver")

    cache._driver.run = run


@pytest.fixture
def seed(memcached, redis_tier):
    """``seed(prefix)``: keys in memcached and Redis, only in Redis, in
    neither, odd keys; returns ``(asked, stored)`` with user keys. Each
    path reads its own keys (a read back-fills: it changes what the next
    read of the same keys finds)."""
    writer = TieredCache([memcached, redis_tier], local=None, **SIGNED)
    only_redis = TieredCache([redis_tier], local=None, **SIGNED)

    def make(prefix: str) -> tuple:
        keys = {f"{prefix}both:{i}": {**VALUE, "i": i} for i in range(30)}
        keys.update({f"{prefix}with space": "s", f"{prefix}ünïcode": ["u"], f"{prefix}stored none": None})
        for k, v in keys.items():
            writer.set_all_tiers(k, v)
        deeper = {f"{prefix}redis-only:{i}": i for i in range(10)}
        for k, v in deeper.items():
            only_redis.set_all_tiers(k, v)
        asked = [*keys, *deeper, f"{prefix}missing:1", f"{prefix}missing:2", f"{prefix}both:3"]
        return asked, {**keys, **deeper}

    return make


@pytest.fixture
def filled(seed):
    return seed("")


def test_same_values_and_tier_per_key_as_the_generic_path(memcached, redis_tier, seed):
    asked, stored = seed("one:")
    g_asked, _ = seed("generic:")
    one = TieredCache([memcached, redis_tier], local=None, **SIGNED)
    generic = TieredCache([memcached, redis_tier], local=None, **SIGNED)
    no_driver(one)
    # Read twice: the first read back-fills memcached from Redis (in the
    # extension: the memcached store is native too), the second finds all
    # there.
    for _ in range(2):
        got = one.get_many(asked)
        assert got == {k: stored[k] for k in asked if k in stored}
        g_got = generic_get_many(generic, g_asked)
        assert [k.split(":", 1)[1] for k in g_got] == [k.split(":", 1)[1] for k in got]
        assert list(g_got.values()) == list(got.values())
        assert tier_counts(one) == tier_counts(generic)
    tiers = one.stats()["tiers"]
    assert tiers[1]["hits"] == 10, "the Redis-only keys came from Redis, once"
    assert memcached.get_many([normalize_key("one:redis-only:0")])[0] is not None, "back-filled"


def test_a_generator_of_keys_and_an_empty_batch(memcached, filled):
    asked, stored = filled
    cache = TieredCache([memcached], local=None, **SIGNED)
    assert cache.get_many(k for k in asked[:5]) == {k: stored[k] for k in asked[:5]}
    assert cache.get_many([]) == {}


def test_bad_keys_raise_as_before(memcached):
    cache = TieredCache([memcached], local=None, **SIGNED)
    with pytest.raises(TypeError, match="cache keys are str, not int"):
        cache.get_many(["a", 1])
    with pytest.raises(TypeError, match="cache keys are str, not bytes"):
        generic_get_many(cache, [b"a"])
    with pytest.raises(TypeError, match="cache keys are str, not bytes"):
        cache.get_many([b"a"])


def test_a_dead_redis_fails_over_to_the_next_tier_as_before(memcached, filled, caplog):
    asked, stored = filled
    dead = "redis://127.0.0.1:9/0"  # discard port: nothing listens
    one = TieredCache([RedisTier(dead, connect_timeout=0.2), memcached], local=None, **SIGNED)
    generic = TieredCache([RedisTier(dead, connect_timeout=0.2), memcached], local=None, **SIGNED)
    got = one.get_many(asked)
    assert got == generic_get_many(generic, asked)
    assert got == {k: v for k, v in stored.items() if not k.startswith("redis-only")}
    assert tier_counts(one) == tier_counts(generic)
    assert one.stats()["tiers"][0]["errors"] >= 1
    assert "redis" in caplog.text.lower(), "the failure is logged, as on the generic path"


def test_a_tier_without_a_native_client_is_driven_by_python(memcached, redis_tier, seed):
    asked, stored = seed("one:")
    g_asked, _ = seed("generic:")
    one = TieredCache(
        [PartlyDown(memcached, {normalize_key("one:both:1"), normalize_key("one:both:2")}), redis_tier],
        local=None,
        **SIGNED,
    )
    generic = TieredCache(
        [
            PartlyDown(memcached, {normalize_key("generic:both:1"), normalize_key("generic:both:2")}),
            redis_tier,
        ],
        local=None,
        **SIGNED,
    )
    got = one.get_many(asked)
    assert got == {k: stored[k] for k in asked if k in stored}
    assert list(generic_get_many(generic, g_asked).values()) == list(got.values())
    assert tier_counts(one) == tier_counts(generic)
    assert one.stats()["tiers"][1]["hits"] == 12, "the failed keys and the Redis-only ones"


def test_an_unsigned_or_foreign_value_is_a_miss_on_both_paths(redis_tier):
    writer = TieredCache([redis_tier], local=None, codec="pickle", allow_unsigned_pickle=True)
    writer.set_all_tiers("unsigned", "u")
    redis_tier.set_many([(normalize_key("foreign"), b"not an envelope", None)])
    one = TieredCache([redis_tier], local=None, **SIGNED)
    generic = TieredCache([redis_tier], local=None, **SIGNED)
    assert one.get_many(["unsigned", "foreign"]) == {} == generic_get_many(generic, ["unsigned", "foreign"])
    assert tier_counts(one) == tier_counts(generic)
    assert one.stats()["tiers"][0]["rejected"] == 2


def test_a_copied_or_tampered_signed_value_is_a_miss_on_the_native_path(redis_tier):
    """The one-call path checks signatures in its fetch step (GIL released):
    a value signed for one key and copied under another, or altered in
    Redis, is refused there as the read itself refuses it."""
    cache = TieredCache([redis_tier], local=None, **SIGNED)
    cache.set_all_tiers("genuine", VALUE)
    cache.set_all_tiers("altered", VALUE)
    (genuine,) = redis_tier.get_many([normalize_key("genuine")])
    (altered,) = redis_tier.get_many([normalize_key("altered")])
    flipped = bytearray(altered)
    flipped[len(flipped) // 2] ^= 1
    redis_tier.set_many(
        [(normalize_key("copied"), genuine, None), (normalize_key("altered"), bytes(flipped), None)]
    )
    one = TieredCache([redis_tier], local=None, **SIGNED)
    no_driver(one)
    assert one.get_many(["genuine", "copied", "altered"]) == {"genuine": VALUE}
    assert one.stats()["tiers"][0]["rejected"] == 2
    generic = TieredCache([redis_tier], local=None, **SIGNED)
    assert generic_get_many(generic, ["genuine", "copied", "altered"]) == {"genuine": VALUE}
    assert tier_counts(one) == tier_counts(generic)


def test_the_request_tier_answers_inside_a_request(redis_tier):
    cache = TieredCache([redis_tier], local=None, **SIGNED)
    with request_scope():
        cache.set("req", "value")
        redis_tier.clear()  # only the request tier has it now
        assert cache.get_many(["req", "other"]) == {"req": "value"}
        assert generic_get_many(cache, ["req"]) == {"req": "value"}
    assert cache.get_many(["req"]) == {}


def test_background_writes_back_fill_off_the_read(memcached, redis_tier):
    only_redis = TieredCache([redis_tier], local=None, **SIGNED)
    only_redis.set_all_tiers("bg:1", 1)
    cache = TieredCache([memcached, redis_tier], local=None, background_writes=True, **SIGNED)
    try:
        assert cache.get_many(["bg:1"]) == {"bg:1": 1}
        assert cache.flush_writes(timeout=5)
        assert memcached.get_many([normalize_key("bg:1")])[0] is not None
    finally:
        cache.close()


def test_redis_url_from_the_environment_is_the_one_tested():
    # The suite's servers (scripts/servers.sh): a wrong variable would make
    # every test above pass against nothing.
    assert RedisTier(os.environ["STRATACACHE_REDIS_URL"]).get_many(["x"]) == [None]
