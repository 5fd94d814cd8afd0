"""The DX pieces of issue 17 over ``TieredCacheBackend`` aliases (issue 15),
on the real servers: checks and ``stratacache_check`` probe a backend
alias's tiers, metrics and both Debug Toolbar panels see reads made through
``caches[alias]``, the test helpers isolate and count an alias, the
edx-compatible API over a default alias on the backend gets chunking,
signing and the storage tier, django-waffle reads through the backend, and
``STRATACACHE['NAMED']`` replaces the deprecated ``'CACHES'`` key."""

from __future__ import annotations

import json
import os
import re
import unittest
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, RequestFactory, override_settings

from stratacache import _observe
from stratacache.django import get_cache, reset_caches
from stratacache.django.backend import BACKEND_PATH
from stratacache.testing import stratacache_isolation  # noqa: F401 - the fixture
from stratacache.tiers import MemcachedTier, RedisTier, StorageTier

MEMCACHED = os.environ.get("STRATACACHE_MEMCACHED", "").split(",")
REDIS_URL = os.environ.get("STRATACACHE_REDIS_URL", "")
BIG = 3 * 1024 * 1024


def backend(location, **extra):
    return {"BACKEND": BACKEND_PATH, "LOCATION": location, **extra}


def caches_with(**aliases):
    from django.conf import settings

    return override_settings(CACHES={**settings.CACHES, **aliases})


@pytest.fixture(autouse=True)
def flushed(s3_bucket):
    # s3_bucket: the test settings' caches include an S3 storage tier, which
    # the isolation helpers clear (the bucket must exist, whatever ran first).
    MemcachedTier(MEMCACHED).clear()
    RedisTier(REDIS_URL).clear()
    reset_caches()
    yield
    reset_caches()


# -- checks --------------------------------------------------------------------


def test_backend_tiered_caches_finds_the_backend_tiered_cache():
    from stratacache.django.checks import backend_tiered_caches

    with caches_with(
        strata=backend(MEMCACHED, KEY_PREFIX="dx"), broken=backend(MEMCACHED, OPTIONS={"NOPE": 1})
    ):
        found = backend_tiered_caches()
        assert found["strata"] is caches["strata"].tiered
        assert "broken" not in found  # reported by its own check, not a crash here


def test_stratacache_check_and_check_deploy_probe_backend_alias_tiers():
    dead = "127.0.0.1:1"
    with caches_with(
        strata=backend(MEMCACHED, KEY_PREFIX="dx"),
        strata_redis=backend(REDIS_URL, KEY_PREFIX="dx"),
        strata_dead=backend([dead], KEY_PREFIX="dx", OPTIONS={"CONNECT_TIMEOUT": 0.1, "TIMEOUT": 0.2}),
    ):
        out = StringIO()
        with pytest.raises(CommandError):
            call_command("stratacache_check", "--json", stdout=out)
        rows = {(r["cache"], r["kind"]): r for r in json.loads(out.getvalue())}
        assert rows[("CACHES['strata']", "memcached")]["ok"] is True
        assert rows[("CACHES['strata_redis']", "redis")]["ok"] is True
        assert rows[("CACHES['strata_dead']", "memcached")]["ok"] is False
        from stratacache.django.checks import check_connections

        errors = [m for m in check_connections() if m.id == "stratacache.E008"]
        assert len(errors) == 1 and "strata_dead" in errors[0].msg
        from django.core.management.base import SystemCheckError

        with pytest.raises(SystemCheckError, match=r"stratacache.E008.*strata_dead"):
            call_command("check", "--deploy", stdout=StringIO(), stderr=StringIO())


def test_a_default_alias_on_the_backend_is_probed_once():
    from stratacache.django.checks import probe_tiers

    with override_settings(CACHES={"default": backend(MEMCACHED, KEY_PREFIX="dx")}, STRATACACHE={}):
        rows = probe_tiers()
    assert [(r[0], r[2], r[3]) for r in rows] == [("CACHES['default']", "memcached", None)]


# -- metrics and panels --------------------------------------------------------


def test_metrics_see_reads_through_a_backend_alias():
    from prometheus_client import CollectorRegistry, generate_latest

    from stratacache.metrics import register_prometheus

    with caches_with(strata=backend(MEMCACHED, KEY_PREFIX="dx")):
        registry = CollectorRegistry()
        collector = register_prometheus(registry=registry)
        try:
            cache = caches["strata"]
            cache.set_many({f"m{i}": i for i in range(5)})
            cache.tiered.clear_local()
            assert cache.get_many([f"m{i}" for i in range(5)]) == {f"m{i}": i for i in range(5)}
            text = generate_latest(registry).decode()
        finally:
            collector.close()
    hits = re.search(r'stratacache_tier_hits_total\{cache="strata",tier="memcached"\} (\S+)', text)
    assert hits and float(hits.group(1)) >= 5
    assert re.search(
        r'stratacache_read_duration_seconds_count\{cache="strata",source="memcached"\} 1\.0', text
    )


PANELS = ["debug_toolbar.panels.cache.CachePanel", "stratacache.django.panels.StratacachePanel"]
MIDDLEWARE = [
    "debug_toolbar.middleware.DebugToolbarMiddleware",
    "stratacache.django.middleware.RequestCacheMiddleware",
]


def test_both_debug_toolbar_panels_show_calls_on_a_backend_alias():
    from debug_toolbar.panels.cache import CachePanel

    CachePanel.ready()  # patches CacheHandler.create_connection, as the toolbar's app does
    client = Client()
    with (
        caches_with(strata=backend(MEMCACHED, KEY_PREFIX="ddt")),
        override_settings(MIDDLEWARE=MIDDLEWARE, DEBUG=True, DEBUG_TOOLBAR_PANELS=PANELS),
    ):
        page = client.get("/backend/")
        assert page.status_code == 200
        html = page.content.decode()
        assert "page-value ['page-key']" in html
        request_id = re.search(r'data-request-id="([0-9a-f]+)"', html).group(1)

        def render(panel_id):
            got = client.get("/__debug__/render_panel/", {"request_id": request_id, "panel_id": panel_id})
            assert got.status_code == 200
            return json.loads(got.content)["content"]

        django_panel = render("CachePanel")
        ours = render("StratacachePanel")
    # Django Debug Toolbar's own cache panel: the set, get and get_many on caches["strata"].
    for call in ("set", "get", "get_many"):
        assert re.search(rf"<td>\s*{call}\s*</td>", django_panel), call
    assert "page-key" in django_panel and "page-absent" in django_panel
    assert "TieredCacheBackend" in django_panel
    # stratacache's panel: the same reads, by alias, with their sources.
    assert "strata.get<" in ours and "strata.get_many" in ours
    assert "request: 1" in ours and "miss: 1" in ours
    assert not _observe._originals


# -- test helpers --------------------------------------------------------------


def test_helpers_count_and_isolate_a_backend_alias(memcached):
    from stratacache.testing import assert_num_loads, assert_remote_calls, isolated_caches

    with caches_with(strata=backend(MEMCACHED, KEY_PREFIX="th", OPTIONS={"LOCAL": {"TTL": 60}})):
        cache = caches["strata"]
        cache.set("seen", 1)
        with isolated_caches() as scope:
            # Isolation emptied the alias's local tier and its memcached.
            assert cache.get("seen", "gone") == "gone"
            cache.set_many({"a": 1, "b": 2})
            cache.tiered.clear_local()
            scope.clear()
            with assert_remote_calls({"memcached": 1}, "strata"):
                assert cache.get_many(["a", "b"]) == {"a": 1, "b": 2}
            with assert_remote_calls(0, cache):  # the backend object works too
                assert cache.get("a") == 1  # request tier
            with assert_remote_calls({"memcached": 1}, "strata", kind="writes"):
                cache.set("c", 3)
            with assert_num_loads(1, "strata"):
                get_cache("strata").get_or_load("loaded", lambda: "v")
                get_cache("strata").get_or_load("loaded", lambda: "v")
            with pytest.raises(AssertionError, match="1 remote fetches"):
                cache.tiered.clear_local()
                scope.clear()
                with assert_remote_calls(0, "strata"):
                    cache.get("b")
        assert cache.get("a", "gone") == "gone"  # emptied again afterwards


def test_cache_isolation_mixin_on_a_backend_default_alias():
    from stratacache.testing import CacheIsolationMixin

    results = []

    class Tests(CacheIsolationMixin, unittest.TestCase):
        def test_one(self):
            results.append(caches["default"].get("left-over", "none"))
            caches["default"].set("left-over", "from test_one")
            with self.assertRemoteCalls({"memcached": 0}):
                self.assertEqual(caches["default"].get("left-over"), "from test_one")

        def test_two(self):
            results.append(caches["default"].get("left-over", "none"))
            caches["default"].set("left-over", "from test_two")

    with override_settings(CACHES={"default": backend(MEMCACHED, KEY_PREFIX="mix")}, STRATACACHE={}):
        outcome = unittest.TextTestRunner(stream=StringIO()).run(
            unittest.defaultTestLoader.loadTestsFromTestCase(Tests)
        )
        assert outcome.wasSuccessful(), outcome.failures + outcome.errors
        assert caches["default"].get("left-over", "none") == "none"
    assert results == ["none", "none"]


def test_stratacache_isolation_fixture_covers_a_backend_alias(stratacache_isolation):  # noqa: F811
    from stratacache.testing import clear_caches

    with caches_with(strata=backend(MEMCACHED, KEY_PREFIX="fx")):
        cache = caches["strata"]
        cache.set("k", 1)
        clear_caches()  # local and remote tiers of the alias emptied...
        assert cache.get("k") == 1  # ...the fixture's request scope still holds it
        stratacache_isolation.clear()
        assert cache.get("k", "gone") == "gone"


def test_stratacache_prune_covers_a_backend_alias_storage_tier(s3_bucket):
    """An expired entry in a backend alias's storage tier (OPTIONS
    TIERS_AFTER) is pruned, read with the alias's own signing keys; a live
    one is kept."""
    import time

    options = {
        "SIGNING_KEYS": [("dx1", "a backend-only signing secret, 32+ bytes long")],
        "TIERS_AFTER": [{"STORAGE": "stratacache", "PREFIX": "prune-dx"}],
    }
    with caches_with(strata=backend(MEMCACHED, KEY_PREFIX="prune", OPTIONS=options)):
        cache = caches["strata"]
        storage = next(t for t in cache.tiered.tiers if isinstance(t, StorageTier))
        storage.clear()
        cache.set("short", "gone soon", 1)
        cache.set("long", "kept", 3600)
        time.sleep(1.2)
        out = StringIO()
        call_command("stratacache_prune", "--json", stdout=out, stderr=StringIO())
        report = json.loads(out.getvalue())["strata/storage"]
        assert report["expired"] == 1 and report["unreadable"] == 0, report
        MemcachedTier(MEMCACHED).clear()
        cache.tiered.clear_local()
        assert cache.get("long") == "kept"  # from the storage tier
        storage.clear()


# -- the edx-compatible API ------------------------------------------------------


def test_edx_api_over_a_default_backend_alias_gets_chunking_signing_and_storage(s3_bucket):
    from stratacache.django.edx import TieredCache as EdxTieredCache
    from stratacache.scope import request_scope

    default = backend(MEMCACHED, KEY_PREFIX="edx", OPTIONS={"TIERS_AFTER": [{"STORAGE": "stratacache"}]})
    value = os.urandom(BIG)
    with override_settings(CACHES={"default": default}, STRATACACHE={}):
        with request_scope():
            EdxTieredCache.set_all_tiers("block_structure.v1.course", value, 3600)
        tiered = caches["default"].tiered
        assert tiered.signed
        tiered.clear_local()
        with request_scope():
            response = EdxTieredCache.get_cached_response("block_structure.v1.course")
        assert response.is_found and response.value == value
        stats = {t["name"]: t for t in tiered.stats()["tiers"]}
        assert stats["memcached"]["chunked_reads"] == 1  # chunked past memcached's 1 MiB
        # memcached emptied: the storage tier still serves it.
        MemcachedTier(MEMCACHED).clear()
        tiered.clear_local()
        with request_scope():
            response = EdxTieredCache.get_cached_response("block_structure.v1.course")
        assert response.is_found and response.value == value
        assert {t["name"]: t for t in tiered.stats()["tiers"]}["storage"]["hits"] == 1
        storage = next(t for t in tiered.tiers if isinstance(t, StorageTier))
        storage.clear()


def test_edx_cache_naming_a_backend_alias_reads_the_backend_keys():
    from stratacache.django.edx import TieredCache as EdxTieredCache
    from stratacache.django.edx import edx_django_cache

    with (
        caches_with(strata=backend(MEMCACHED, KEY_PREFIX="edxa")),
        override_settings(STRATACACHE={"EDX_CACHE": "strata", "LOCAL_ONLY": True}),
    ):
        assert edx_django_cache() is caches["strata"]
        EdxTieredCache.set_all_tiers("k", "v", 60)
        assert caches["strata"].get("k") == "v"


# -- django-waffle ---------------------------------------------------------------


@pytest.mark.django_db
def test_waffle_flags_switches_and_samples_read_through_the_backend(
    django_assert_num_queries, django_capture_on_commit_callbacks
):
    from django.contrib.auth.models import AnonymousUser
    from waffle import flag_is_active, sample_is_active, switch_is_active
    from waffle.models import Flag, Sample, Switch

    from stratacache.scope import request_scope

    with override_settings(CACHES={"default": backend(MEMCACHED, KEY_PREFIX="waffle")}, STRATACACHE={}):
        Flag.objects.create(name="new-outline", everyone=True)
        Switch.objects.create(name="blocks", active=True)
        Sample.objects.create(name="all", percent=100)
        request = RequestFactory().get("/")
        request.user = AnonymousUser()

        def read():
            with request_scope():  # a new request
                return (
                    flag_is_active(request, "new-outline"),
                    switch_is_active("blocks"),
                    sample_is_active("all"),
                )

        assert read() == (True, True, True)  # from the database, then cached
        with django_assert_num_queries(0):
            assert read() == (True, True, True)  # served by the backend (memcached)
        hits = {t["name"]: t["hits"] for t in caches["default"].tiered.stats()["tiers"]}
        assert hits["memcached"] >= 3
        # Saving invalidates through the backend (waffle deletes its keys on
        # commit): the next read sees the change.
        with django_capture_on_commit_callbacks(execute=True):
            switch = Switch.objects.get(name="blocks")
            switch.active = False
            switch.save()
            flag = Flag.objects.get(name="new-outline")
            flag.everyone = False
            flag.save()
        assert read()[:2] == (False, False)


# -- STRATACACHE['NAMED'] and the deprecated 'CACHES' key ----------------------------


def test_named_caches_and_the_deprecated_key():
    from stratacache.django.checks import check_settings

    named = {
        "TIERS": [{"CACHE": "memcached"}],
        "NAMED": {"blocks": {"TIERS": [], "LOCAL": {"MAX_ENTRIES": 5}}},
    }
    with override_settings(STRATACACHE=named):
        assert get_cache("blocks").tiers == []
        assert not [m for m in check_settings() if m.id in ("stratacache.W005", "stratacache.E009")]
    old = {
        "TIERS": [{"CACHE": "memcached"}],
        "CACHES": {"blocks": {"TIERS": [], "LOCAL": {"MAX_ENTRIES": 5}}},
    }
    with override_settings(STRATACACHE=old):
        assert get_cache("blocks").tiers == []  # still read
        warnings = [m for m in check_settings() if m.id == "stratacache.W005"]
        assert len(warnings) == 1 and "'NAMED'" in warnings[0].hint
    both = {**named, "CACHES": {"other": {}}}
    with override_settings(STRATACACHE=both):
        assert [m.id for m in check_settings() if m.id == "stratacache.E009"] == ["stratacache.E009"]
        with pytest.raises(Exception, match="no stratacache named 'other'"):
            get_cache("other")
