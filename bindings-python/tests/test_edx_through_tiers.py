"""The edx-compatible API through the configured tiers (issue 17, item 6):
with ``STRATACACHE["EDX_CACHE"]``, unchanged edx code gets chunking, signing
and the storage tier, over the real memcached, Redis and S3 servers."""

import os

import pytest
from django.core.cache import caches
from django.test import override_settings

from stratacache.django import get_cache, reset_caches
from stratacache.django.edx import RequestCache, TieredCache, edx_django_cache


@pytest.fixture
def edx_over_tiers(s3_bucket, settings):
    settings.STRATACACHE = {**settings.STRATACACHE, "EDX_CACHE": "default"}
    reset_caches()
    TieredCache.dangerous_clear_all_tiers()
    yield get_cache()
    TieredCache.dangerous_clear_all_tiers()
    reset_caches()


def test_default_is_django_default_cache_as_in_edx():
    assert (
        edx_django_cache() is caches["default"]
        or edx_django_cache() is __import__("django.core.cache", fromlist=["cache"]).cache
    )


def test_edx_code_gets_chunking_signing_and_the_storage_tier(edx_over_tiers):
    cache = edx_over_tiers
    big = {"blocks": os.urandom(2_500_000)}  # incompressible, past 1 MiB: chunked in memcached
    TieredCache.set_all_tiers("course-v1:edX+DemoX+Demo blocks", big, 3600)
    RequestCache.clear_all_namespaces()
    cache.clear_local()
    response = TieredCache.get_cached_response("course-v1:edX+DemoX+Demo blocks")
    assert response.is_found and response.value == big
    stats = cache.stats()
    assert stats["tiers"][0]["chunked_reads"] == 1  # memcached answered, chunked
    assert cache.signed
    # A plain Django read of the same alias sees no pickle of the value: envelopes only.
    assert caches["memcached"].get("course-v1:edX+DemoX+Demo blocks") != big
    storage = cache.tiers[2]
    assert any("course-v1" in n for n in storage.names())  # the plain key, escaped
    # The storage tier alone serves it to a fresh process once memcached and Redis forget.
    caches["memcached"].clear()
    caches["redis"].clear()
    reset_caches()
    RequestCache.clear_all_namespaces()
    assert TieredCache.get_cached_response("course-v1:edX+DemoX+Demo blocks").value == big


def test_delete_and_timeouts_go_to_every_tier(edx_over_tiers):
    cache = edx_over_tiers
    TieredCache.set_all_tiers("k", 1)  # DEFAULT_TIMEOUT: the cache's DEFAULT_TTL
    RequestCache.clear_all_namespaces()
    cache.clear_local()
    assert TieredCache.get_cached_response("k").value == 1
    TieredCache.delete_all_tiers("k")
    cache.clear_local()
    assert not TieredCache.get_cached_response("k").is_found
    TieredCache.set_all_tiers("zero", 1, 0)  # 0: nothing is kept below the request cache
    RequestCache.clear_all_namespaces()
    assert not TieredCache.get_cached_response("zero").is_found


def test_unknown_edx_cache_is_a_clear_error(settings):
    from stratacache import ConfigurationError

    settings.STRATACACHE = {**settings.STRATACACHE, "EDX_CACHE": "nope"}
    with pytest.raises(ConfigurationError, match="EDX_CACHE"):
        TieredCache.get_cached_response("k")


def test_edx_cache_may_name_a_caches_alias():
    with override_settings(STRATACACHE={"TIERS": [{"CACHE": "redis"}], "EDX_CACHE": "locmem"}):
        assert edx_django_cache() is caches["locmem"]
