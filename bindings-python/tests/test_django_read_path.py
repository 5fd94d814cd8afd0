"""The Django backend's read path in the extension (``TieredCore.get_made``
/ ``get_many_made``: keys made as Django's default key function makes them,
read, decoded and returned in one call) gives exactly what the Python path
gives (``KEY_FUNCTION``, a subclass's ``make_key``) over memcached and Redis:
non-str keys, repeated keys, versions, a stored ``None``, generators, str
subclasses, async, the request tier, and the read observers (Debug Toolbar)."""

from __future__ import annotations

import asyncio
import os

import pytest
from django.core.cache import caches
from django.test import override_settings

from stratacache import request_scope
from stratacache._observe import observe
from stratacache.django.backend import BACKEND_PATH, TieredCacheBackend, forget_shared

MEMCACHED = os.environ.get("STRATACACHE_MEMCACHED", "").split(",")
REDIS_URL = os.environ.get("STRATACACHE_REDIS_URL", "")


def python_key_func(key, key_prefix, version):
    """Django's default key function, as a KEY_FUNCTION (the Python path)."""
    return "%s:%s:%s" % (key_prefix, version, key)  # noqa: UP031 (as Django formats it)


class Label:
    """A non-str key: Django formats it with ``%s``."""

    def __init__(self, text):
        self.text = text

    def __str__(self):
        return f"label<{self.text}>"


class Shouting(str):
    """A str subclass whose ``__str__`` differs from its value: ``%s`` calls it."""

    def __str__(self):
        return self.upper()


@pytest.fixture(params=["memcached", "redis"])
def pair(request):
    """(native, python): two aliases over the same server with the same
    KEY_PREFIX, the second making keys through a KEY_FUNCTION."""
    location = MEMCACHED if request.param == "memcached" else REDIS_URL
    common = {"BACKEND": BACKEND_PATH, "LOCATION": location, "KEY_PREFIX": f"rp-{os.getpid()}"}
    from django.conf import settings

    conf = {
        **settings.CACHES,
        "rp_native": dict(common),
        "rp_python": {**common, "KEY_FUNCTION": python_key_func},
    }
    with override_settings(CACHES=conf):
        forget_shared()
        native, python = caches["rp_native"], caches["rp_python"]
        assert native._prefix(None) is not None and python._prefix(None) is None
        native.clear()
        yield native, python
        native.clear()
        forget_shared()


def test_get_many_gives_what_the_python_path_gives(pair):
    native, python = pair
    native.set_many({"a": 1, "b": None, 7: "seven", "label<x>": "L", "SHOUT": "loud"}, 60)
    python.set("v2", "two", version=2)
    keys = ["a", "b", "missing", 7, "7", Label("x"), Shouting("shout"), "a"]
    expected = python.get_many(keys)
    assert native.get_many(keys) == expected
    # A stored None is a hit; 7 and "7" make the same key: the last one names it.
    assert list(expected) == ["a", "b", "7", keys[5], keys[6]]
    assert expected["b"] is None and expected["7"] == "seven"
    assert native.get_many(iter(["a", "b"])) == {"a": 1, "b": None}
    assert native.get_many([]) == {} and native.get_many(iter(())) == {}
    assert native.get_many(["v2", "a"], version=2) == python.get_many(["v2", "a"], version=2) == {"v2": "two"}


def test_get_gives_what_the_python_path_gives(pair):
    native, python = pair
    native.set_many({"a": [1, 2], "none": None, 7: "seven", "SHOUT": "loud"}, 60)
    sentinel = object()
    for key in ["a", "none", 7, "7", "missing", Shouting("shout"), Label("y")]:
        assert native.get(key, sentinel) == python.get(key, sentinel), key
    assert native.get("missing") is None
    assert native.get("none", sentinel) is None  # a stored None is a hit
    assert native.get("missing", default=sentinel) is sentinel


def test_keys_written_by_one_path_are_read_by_the_other(pair):
    native, python = pair
    python.set_many({f"k{i}": i for i in range(30)}, 60)
    assert native.get_many([f"k{i}" for i in range(40)]) == {f"k{i}": i for i in range(30)}
    native.set("n", {"x": 1}, 60)
    assert python.get("n") == {"x": 1}


def test_a_bad_key_is_a_clear_error(pair):
    native, _python = pair
    with pytest.raises(ValueError, match="UTF-8"):
        native.get_many(["ok", "lone \ud800 surrogate"])
    with pytest.raises(ValueError, match="UTF-8"):
        native.get("lone \ud800 surrogate")


def test_async_reads_match(pair):
    native, python = pair
    native.set_many({"a": 1, "b": None, 7: "x"}, 60)

    async def run():
        many = await native.aget_many(["a", "b", "c", 7])
        one = await native.aget("a"), await native.aget("c", "dflt"), await native.aget("b", "dflt")
        return many, one

    many, one = asyncio.run(run())
    assert many == python.get_many(["a", "b", "c", 7]) == {"a": 1, "b": None, 7: "x"}
    assert one == (1, "dflt", None)


def test_the_request_tier_answers_and_a_set_updates_it(pair):
    native, _python = pair
    native.set("r", "old", 60)
    with request_scope():
        assert native.get("r") == "old"
        # Changed behind the backend's back: the request tier keeps the value read.
        native.tiered._tiers[0].delete_many([_core_key(native, "r")])
        assert native.get("r") == "old" and native.get_many(["r"]) == {"r": "old"}
        native.set("r", "new", 60)
        assert native.get("r") == "new" and native.get_many(["r", "zz"]) == {"r": "new"}
    assert native.get("r") == "new"  # the set wrote the server too


def _core_key(cache, key):
    from stratacache.keys import normalize_key

    return normalize_key(cache.make_key(key))


def test_read_observers_still_see_backend_reads(pair):
    """The Debug Toolbar panel and the metrics observe TieredCache's reads:
    while they observe, the backend goes through them."""
    native, _python = pair
    native.set("seen", 1, 60)
    events = []
    with observe(events.append):
        assert native.get_many(["seen", "unseen"]) == {"seen": 1}
        assert native.get("seen") == 1
    assert [e.method for e in events] == ["get_many", "get"]
    assert native.get_many(["seen"]) == {"seen": 1}  # unwrapped again
    assert len(events) == 2


def test_a_subclass_making_its_own_keys_is_honoured():
    class Reversed(TieredCacheBackend):
        def make_key(self, key, version=None):
            return super().make_key(str(key)[::-1], version)

    cache = Reversed(MEMCACHED, {"KEY_PREFIX": f"rev-{os.getpid()}"})
    assert cache._prefix(None) is None
    cache.set("abc", 1, 60)
    assert cache.get_many(["abc"]) == {"abc": 1} and cache.get("abc") == 1
    assert cache.tiered.get(cache.make_key("abc")) == 1
    cache.delete("abc")


@pytest.mark.parametrize("server", ["memcached", "redis"])
@pytest.mark.parametrize("mode", ["prefix", "flush"])
def test_aclear_runs_on_the_event_loop(server, mode, monkeypatch):
    """``aclear`` flushes, or scans and deletes this cache's keys, awaiting
    the servers on the loop: no worker thread (``asyncio.to_thread``,
    ``run_in_executor``); other users' keys stay in prefix mode."""
    from stratacache.tiers import MemcachedTier, RedisTier

    location = MEMCACHED if server == "memcached" else REDIS_URL
    raw = MemcachedTier(MEMCACHED) if server == "memcached" else RedisTier(REDIS_URL)
    prefix = f"aclear-{os.getpid()}"
    conf = {"BACKEND": BACKEND_PATH, "LOCATION": location, "KEY_PREFIX": prefix, "OPTIONS": {"CLEAR": mode}}
    from django.conf import settings

    with override_settings(CACHES={**settings.CACHES, "rp_aclear": conf}):
        forget_shared()
        cache = caches["rp_aclear"]
        cache.set_many({"a": 1, "big": b"x" * (2 * 1024 * 1024)}, 60)  # chunked on memcached
        raw.set_many([("someone-else:1:key", b"theirs", None)])

        async def no_thread(*args, **kwargs):
            raise AssertionError("asyncio.to_thread called")

        def no_executor(*args, **kwargs):
            raise AssertionError("loop.run_in_executor called")

        async def main():
            monkeypatch.setattr(asyncio, "to_thread", no_thread)
            monkeypatch.setattr(asyncio.get_running_loop(), "run_in_executor", no_executor)
            with request_scope():
                assert await cache.aget("a") == 1  # now in the request tier too
                await cache.aclear()
                assert await cache.aget_many(["a", "big"]) == {}
            monkeypatch.undo()

        asyncio.run(main())
        assert cache.get_many(["a", "big"]) == {}
        theirs = raw.get_many(["someone-else:1:key"])
        assert theirs == ([b"theirs"] if mode == "prefix" else [None])
        raw.delete_many(["someone-else:1:key"])
        forget_shared()


def test_redis_reads_select_the_database_of_the_url():
    """Reads and writes go to the database the URL names."""
    from stratacache.tiers import RedisTier

    base = REDIS_URL.rsplit("/", 1)[0]
    db3, db0 = RedisTier(f"{base}/3"), RedisTier(f"{base}/0")
    db3.set_many([("rp-db", b"three", 60_000)])
    try:
        assert db3.client.get_many(["rp-db", "rp-missing"]) == [b"three", None]
        assert db0.client.get_many(["rp-db"]) == [None]
    finally:
        db3.delete_many(["rp-db"])
