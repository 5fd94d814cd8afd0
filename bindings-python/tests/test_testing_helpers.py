"""stratacache.testing (issue 17, item 9): isolation of the request, local
and remote tiers between tests, and assertNumQueries-style assertions on
loads and remote calls, over the real servers."""

import unittest

import pytest

from stratacache import RequestCache, TieredCache, current_scope
from stratacache.django import get_cache, reset_caches
from stratacache.testing import (
    CacheIsolationMixin,
    CacheIsolationTestCase,
    assert_num_loads,
    assert_remote_calls,
    isolated_caches,
    stratacache_isolation,  # noqa: F401  (the fixture, as a conftest.py would import it)
)


@pytest.fixture(autouse=True)
def fresh(s3_bucket):
    reset_caches()
    yield
    reset_caches()


@pytest.mark.usefixtures("stratacache_isolation")
def test_fixture_gives_a_fresh_scope_and_empty_tiers():
    cache = get_cache()
    assert current_scope() is not None
    RequestCache("ns").set("a", 1)
    with assert_num_loads(1, cache):
        assert cache.get_or_load("isolated", lambda: "v") == "v"
        assert cache.get_or_load("isolated", lambda: "other") == "v"


@pytest.mark.usefixtures("stratacache_isolation")
def test_the_previous_test_left_nothing_behind():
    cache = get_cache()
    assert RequestCache("ns").get("a", None) is None
    with assert_num_loads(1, cache):  # not in local, memcached, Redis or S3 any more
        cache.get_or_load("isolated", lambda: "v")


def test_isolation_clears_remote_tiers_and_keeps_them_with_remote_false():
    cache = get_cache()
    cache.set_all_tiers("kept", 1)
    with isolated_caches(remote=False):
        with assert_num_loads(0, cache), assert_remote_calls({"memcached": 1, "redis": 0}, cache):
            assert cache.get("kept") == 1  # local was cleared; memcached still has it
    with isolated_caches():
        assert cache.lookup("kept") == (("kept", False, None, None))  # in no tier any more


def test_assert_remote_calls_counts_batches_per_tier():
    cache = get_cache()
    with isolated_caches(remote=True):
        with assert_remote_calls({"memcached": 1, "redis": 1, "storage": 1}) as counts:
            cache.get_many([f"k{i}" for i in range(50)])  # one batch per tier for 50 keys
        assert counts.fetches["memcached"] == 1
        with assert_remote_calls(3, kind="writes"):
            cache.set_all_tiers("w", 1)


def test_assertions_fail_with_the_counts():
    cache = TieredCache([], name="plain")
    with pytest.raises(AssertionError, match="2 key\\(s\\) loaded, 1 expected"):
        with assert_num_loads(1, cache):
            cache.get_or_load("a", lambda: 1)
            cache.get_or_load("b", lambda: 2)
    with pytest.raises(AssertionError, match="no tier named 'nope'"):
        with assert_remote_calls({"nope": 0}, cache):
            pass
    with pytest.raises(AssertionError, match="remote fetches per tier"):
        with assert_remote_calls({"memcached": 0}, get_cache()):
            get_cache().get("missing-everywhere")


class MixinExample(CacheIsolationMixin, unittest.TestCase):
    def test_a_writes(self):
        get_cache().set_all_tiers("mixin", "a")
        RequestCache("ns").set("mixin", "a")

    def test_b_sees_nothing(self):
        self.assertIsNone(RequestCache("ns").get("mixin", None))
        with self.assertNumLoads(1), self.assertRemoteCalls({"memcached": 1}):
            get_cache().get_or_load("mixin", lambda: "b")


def test_mixin_isolates_tests_in_any_order():
    assert CacheIsolationTestCase is CacheIsolationMixin
    for order in (["test_a_writes", "test_b_sees_nothing"], ["test_b_sees_nothing", "test_a_writes"]):
        suite = unittest.TestSuite(MixinExample(name) for name in order)
        result = unittest.TestResult()
        suite.run(result)
        assert result.wasSuccessful(), result.failures + result.errors


def test_the_documented_mixin_example_runs_as_written(django_db_blocker):
    # docs/testing.md's first example (a Django TestCase with the mixin and
    # both assertions), run over this suite's tiers (memcached, redis, ...);
    # only its `build_outline` is supplied.
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "testing.md").read_text()
    example = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    assert "class OutlineTests(CacheIsolationMixin, TestCase)" in example
    loaded = []
    namespace = {"build_outline": lambda: loaded.append(1) or {"outline": "demo"}}
    exec(compile(example, "docs/testing.md", "exec"), namespace)
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(namespace["OutlineTests"])
    result = unittest.TestResult()
    with django_db_blocker.unblock():
        suite.run(result)
    assert result.testsRun == 2
    assert result.wasSuccessful(), result.failures + result.errors
    assert loaded == [1]  # loaded once, then read from the local tier
