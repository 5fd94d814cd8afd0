"""stratacache.django: settings, middleware (sync and async), checks, commands,
and stratacache.django.edx over the real servers."""

import asyncio
import io
from unittest import mock

import pytest
import warmers
from django.core.cache import caches
from django.core.management import CommandError, call_command
from django.test import AsyncClient, Client, RequestFactory, override_settings

from stratacache import MISSING, RequestCache, cached, current_scope
from stratacache.django import get_cache, reset_caches
from stratacache.django.checks import check_middleware, check_settings
from stratacache.django.middleware import ForceCacheMissMiddleware, RequestCacheMiddleware
from stratacache.tiers import MemcachedTier, RedisTier, StorageTier


@pytest.fixture(autouse=True)
def clean(s3_bucket):
    reset_caches()
    caches["memcached"].clear()
    caches["redis"].clear()
    yield
    reset_caches()


def test_memcached_tier_timeouts_from_settings():
    from stratacache.django import tier_from_settings

    tier = tier_from_settings({"CACHE": "memcached", "TIMEOUT": 0.2, "CONNECT_TIMEOUT": 0.1})
    assert (tier.client.timeout, tier.client.connect_timeout) == (0.2, 0.1)
    assert tier.client.key_prefix == ":1:"  # the alias's key space
    default = tier_from_settings({"CACHE": "memcached"})
    assert (default.client.timeout, default.client.connect_timeout) == (0.5, 0.25)


def test_cache_from_settings_has_the_configured_tiers_and_signs():
    cache = get_cache()
    assert [type(t) for t in cache.tiers] == [MemcachedTier, RedisTier, StorageTier]
    assert len(cache.tiers[0].servers) == 2  # both memcached instances of the alias
    assert cache.signed  # keys derived from SECRET_KEY
    assert get_cache() is cache
    assert get_cache("local_only").tiers == []
    cache.set_all_tiers("from-settings", [1, 2, 3])
    reset_caches()
    assert get_cache().get("from-settings") == [1, 2, 3]


def test_sync_middleware_gives_each_request_its_own_scope():
    client = Client()
    first = client.get("/sync/?tag=one").json()
    second = client.get("/sync/?tag=two").json()
    assert first["before"] is None and second["before"] is None
    assert current_scope() is None  # nothing leaks into the test's context


def test_async_middleware_isolates_concurrent_requests():
    client = AsyncClient()

    async def main():
        return await asyncio.gather(*(client.get(f"/async/?tag={i}") for i in range(50)))

    responses = asyncio.run(main())
    assert all(r.json()["before"] is None for r in responses)
    assert len({r.json()["scope_id"] for r in responses}) >= 1


def test_force_cache_miss_only_for_active_staff():
    seen = []

    def view(request):
        seen.append(current_scope().force_cache_miss)
        return "response"

    chain = RequestCacheMiddleware(ForceCacheMissMiddleware(view))
    for staff, active, expected in [(True, True, True), (False, True, False), (True, False, False)]:
        request = RequestFactory().get("/?force_cache_miss=tRuE")
        request.user = mock.Mock(is_staff=staff, is_active=active)
        chain(request)
        assert seen[-1] is expected
    request = RequestFactory().get("/")
    request.user = mock.Mock(is_staff=True, is_active=True)
    chain(request)
    assert seen[-1] is False


def test_view_reads_through_the_settings_cache():
    client = Client()
    assert client.get("/loader/").json() == {"value": "fresh", "loaded": True}
    assert client.get("/loader/").json() == {"value": "fresh", "loaded": False}


def test_checks_pass_on_a_good_configuration():
    assert [m.id for m in check_settings()] == []
    assert check_middleware() == []


@pytest.mark.parametrize(
    "stratacache, expected",
    [
        ({"TIERS": [{"CACHE": "nope"}]}, "stratacache.E002"),
        ({"TIERS": [{"CACHE": "memcached", "ITEM_LIMIT": 8 * 1024 * 1024}]}, "stratacache.E003"),
        ({"TIERS": [{"CACHE": "redis"}], "SIGNING_KEYS": False}, "stratacache.E004"),
        ({"TIERS": [], "CODEC": "yaml"}, "stratacache.E005"),
        ({"TIERS": [{"STORAGE": "no.such.Storage"}]}, "stratacache.E002"),
        ("not a dict", "stratacache.E001"),
    ],
)
def test_checks_report_misconfiguration_with_advice(stratacache, expected):
    with override_settings(STRATACACHE=stratacache):
        messages = check_settings()
    assert expected in [m.id for m in messages]
    message = next(m for m in messages if m.id == expected)
    assert message.msg and (message.hint or "STRATACACHE" in message.msg)


def test_signing_off_with_json_codec_is_fine():
    with override_settings(
        STRATACACHE={"TIERS": [{"CACHE": "redis"}], "SIGNING_KEYS": False, "CODEC": "json"}
    ):
        assert "stratacache.E004" not in [m.id for m in check_settings()]


def test_middleware_checks():
    with override_settings(MIDDLEWARE=[]):
        assert [m.id for m in check_middleware()] == ["stratacache.W001"]
    order = [
        "stratacache.django.middleware.RequestCacheMiddleware",
        "stratacache.django.middleware.ForceCacheMissMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ]
    with override_settings(MIDDLEWARE=order):
        assert [m.id for m in check_middleware()] == ["stratacache.E007"]


def test_memcached_default_without_safe_key_function_warns():
    caches_setting = {
        "default": {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache", "LOCATION": "x:1"}
    }
    with override_settings(CACHES=caches_setting, STRATACACHE={"TIERS": []}):
        assert "stratacache.W002" in [m.id for m in check_settings()]


def test_stats_command_prints_a_table_per_tier():
    get_cache().get_or_load("k", lambda: "v")
    out = io.StringIO()
    call_command("stratacache_stats", "--cache", "default", stdout=out)
    text = out.getvalue()
    for name in ("tier memcached", "tier redis", "tier storage", "fetches", "curr_items", "redis_version"):
        assert name in text
    out = io.StringIO()
    call_command("stratacache_stats", "--json", "--no-server", stdout=out)
    assert '"local_only"' in out.getvalue()


def test_warm_command_fills_every_tier_with_a_progress_bar():
    warmers.CALLS.clear()
    out, err = io.StringIO(), io.StringIO()
    call_command("stratacache_warm", "warmers.outlines", stdout=out, stderr=err)
    assert "warmed 25 key(s)" in out.getvalue()
    assert "warming: 25key" in err.getvalue() and "warmed=25" in err.getvalue()  # tqdm bar
    assert len(warmers.CALLS) == 25
    reset_caches()
    memcached_only = get_cache()
    assert memcached_only.get("outline:7") == {"course": 7}
    out = io.StringIO()
    call_command("stratacache_warm", "warmers.outlines", "--missing-only", "--no-progress", stdout=out)
    assert "warmed 0 key(s), skipped 25" in out.getvalue()


def test_warm_command_reports_failures_and_keeps_the_rest():
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="1 loader"):
        call_command("stratacache_warm", "warmers.some_fail", "--no-progress", stdout=out, stderr=err)
    assert "course store unavailable" in err.getvalue()
    assert get_cache().get("also good") == "ok"
    with pytest.raises(CommandError, match="yield \\(key, loader\\)"):
        call_command("stratacache_warm", "warmers.not_pairs", "--no-progress", stdout=io.StringIO())
    with pytest.raises(CommandError, match="cannot import"):
        call_command("stratacache_warm", "warmers.nothing_here", stdout=io.StringIO())


def test_edx_layer_over_real_memcached_accepts_any_key():
    from stratacache.django.edx import RequestCache as EdxRequestCache
    from stratacache.django.edx import TieredCache as EdxTieredCache

    keys = ["with spaces", "ünïcödé", "ctrl\x00\n", "x" * 10 * 1024]
    for i, key in enumerate(keys):
        EdxTieredCache.set_all_tiers(key, i, 60)
    EdxRequestCache.clear_all_namespaces()
    for i, key in enumerate(keys):
        response = EdxTieredCache.get_cached_response(key)
        assert response.is_found and response.value == i
    assert caches["default"].get("with spaces") == 0  # really in memcached


def test_edx_data_is_a_live_dict():
    from stratacache.django.edx import RequestCache as EdxRequestCache

    data = EdxRequestCache("live").data
    data["k"] = "set through .data"
    assert EdxRequestCache("live").get_cached_response("k").value == "set through .data"


def test_cached_decorator_sync_and_async():
    calls = []

    @cached(ttl=60, cache=get_cache, version=3)
    def outline(course_id, depth=2):
        calls.append((course_id, depth))
        return {"course": course_id, "depth": depth}

    assert outline("course-v1:edX+DemoX", 2) == {"course": "course-v1:edX+DemoX", "depth": 2}
    assert outline("course-v1:edX+DemoX", depth=2) == {"course": "course-v1:edX+DemoX", "depth": 2}
    assert calls == [("course-v1:edX+DemoX", 2)]
    assert outline.key_for("c", 1).endswith("|v3|c|#1")
    outline.refresh("course-v1:edX+DemoX", 2)
    assert len(calls) == 2

    @cached(ttl=60, cache=get_cache)
    async def grades(user_id):
        calls.append(user_id)
        return user_id * 2

    async def main():
        return [await grades(21), await grades(21)]

    assert asyncio.run(main()) == [42, 42]
    assert calls.count(21) == 1
    with pytest.raises(TypeError, match="cannot put argument"):
        outline(object())


def test_request_cache_in_views_is_gone_after_the_request():
    Client().get("/sync/?tag=x")
    assert RequestCache("views").get("seen") is MISSING
