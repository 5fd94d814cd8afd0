"""LocalCache: Python objects as they are, bounded by entries and bytes, TTL."""

import sys

import pytest

from stratacache import LocalCache


class Clock:
    def __init__(self):
        self.now = 1_700_000_000.0

    def __call__(self):
        return self.now


def test_holds_objects_as_they_are_no_pickling():
    cache = LocalCache(10, 1 << 20)
    lock_like = object()  # not picklable-meaningful: identity must survive
    cache.set("k", lock_like)
    assert cache.get("k") is lock_like
    assert cache["k"] is lock_like


def test_stored_none_is_a_hit_and_default_on_miss():
    cache = LocalCache()
    cache.set("k", None)
    assert cache.get_cached_response("k").is_found
    assert cache.get("k", "d") is None
    assert cache.get("missing", "d") == "d"
    with pytest.raises(KeyError):
        cache["missing"]


def test_any_hashable_key_with_python_equality():
    cache = LocalCache()
    cache.set(("course", 1), "a")
    cache.set(1, "int")
    assert cache.get(("course", 1)) == "a"
    assert cache.get(1.0) == "int"  # 1 == 1.0, as in a dict
    with pytest.raises(TypeError):
        cache.get(["unhashable"])


def test_bounded_by_entries_lru_order():
    cache = LocalCache(max_entries=3, max_bytes=1 << 20, policy="lru")
    for k in "abc":
        cache.set(k, k)
    cache.get("a")  # a is now the most recently used
    cache.set("d", "d")
    assert "b" not in cache and {"a", "c", "d"} <= set(cache.keys())
    assert cache.stats()["evictions"] == 1


def test_default_policy_is_scan_resistant_and_lru_is_an_option():
    def hit_ratio(cache):
        hits = 0
        for _ in range(20):
            for k in range(400):  # a loop longer than the cache
                if cache.get(k) is not None:
                    hits += 1
                else:
                    cache.set(k, k)
        return hits / 8000

    assert hit_ratio(LocalCache(300, 1 << 30, policy="lru")) == 0.0
    adaptive = LocalCache(300, 1 << 30)
    assert hit_ratio(adaptive) > 0.5
    stats = adaptive.stats()
    assert stats["admissions_rejected"] > 0
    assert 0 <= stats["window_entries"] <= stats["entries"] <= 300
    with pytest.raises(ValueError, match="adaptive"):
        LocalCache(10, 100, policy="lfu")


def test_bounded_by_bytes_with_getsizeof_and_custom_weigher():
    big = "x" * 600
    cache = LocalCache(max_entries=100, max_bytes=1000)
    cache.set("a", big)
    cache.set("b", big)  # two do not fit in 1000 bytes
    assert "a" not in cache and "b" in cache
    assert cache.stats()["weight"] == sys.getsizeof(big)
    weighed = LocalCache(100, 10, weigher=len)
    assert weighed.set("k", "123456") is True
    assert weighed.set("too big", "12345678901") is False  # heavier than the whole cache
    assert weighed.stats()["rejected"] == 1


def test_ttl_expiry_and_purge_without_reads():
    clock = Clock()
    cache = LocalCache(100, 1 << 20, ttl=10, clock=clock)
    cache.set("default", 1)
    cache.set("short", 2, ttl=1)
    cache.set("forever", 3, ttl=None)
    clock.now += 2
    assert "short" not in cache and cache.get("default") == 1
    clock.now += 60
    assert cache.purge_expired() == 2  # "short" and "default" reclaimed without a read
    assert cache.get("forever") == 3 and len(cache) == 1
    assert cache.ttl("forever") is None


def test_zero_ttl_deletes_like_django():
    cache = LocalCache()
    cache.set("k", 1)
    assert cache.set("k", 2, ttl=0) is False
    assert "k" not in cache


def test_get_or_load_touch_delete_and_repr():
    clock = Clock()
    cache = LocalCache(10, 1 << 20, ttl=5, clock=clock)
    calls = []
    assert cache.get_or_load("k", lambda: calls.append(1) or "v") == "v"
    assert cache.get_or_load("k", lambda: calls.append(1) or "w") == "v"
    assert calls == [1]
    assert cache.touch("k", 100)
    clock.now += 50
    assert cache.get("k") == "v"
    assert cache.delete("k") and not cache.delete("k")
    assert repr(cache).startswith("<LocalCache entries=0/10")


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="max_entries is 0"):
        LocalCache(0)
    with pytest.raises(ValueError, match="ttl must be positive"):
        LocalCache(10, 100, ttl=0)
    with pytest.raises(TypeError, match="ttl must be seconds"):
        LocalCache().set("k", 1, ttl="soon")
    with pytest.raises(ValueError, match="negative"):
        LocalCache(10, 100, weigher=lambda v: -1).set("k", 1)


def test_fast_get_accepts_keywords_and_reports_arity():
    cache = LocalCache()
    cache.set("k", 1)
    assert cache.get(key="k") == 1
    assert cache.get("nope", default=7) == 7
    with pytest.raises(TypeError, match="at most 2"):
        cache.get("a", 1, 2)
    with pytest.raises(TypeError, match="missing required argument"):
        cache.get()
