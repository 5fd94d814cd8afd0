"""RequestCache, CachedResponse and request scopes (contextvars)."""

import asyncio
import threading

import pytest

from stratacache import (
    MISSING,
    CachedResponse,
    CachedResponseError,
    CachedResponseMissError,
    RequestCache,
    current_scope,
    request_scope,
)


def test_hit_miss_and_stored_none(scope):
    cache = RequestCache("grades")
    assert not cache.get_cached_response("user:7").is_found
    cache.set("user:7", None)
    response = cache.get_cached_response("user:7")
    assert response.is_found and response.value is None
    assert cache.get("user:7") is None
    assert cache.get("other") is MISSING
    assert cache.get("other", 3) == 3
    assert "user:7" in cache and len(cache) == 1


def test_namespaces_are_separate_and_clear(scope):
    a, b = RequestCache("a"), RequestCache("b")
    a.set("k", 1)
    b.set("k", 2)
    assert (a.get("k"), b.get("k")) == (1, 2)
    a.clear()
    assert a.get("k") is MISSING and b.get("k") == 2
    RequestCache.clear_all_namespaces()
    assert b.get("k") is MISSING


def test_setdefault_and_delete(scope):
    cache = RequestCache()
    assert cache.namespace == "_default"
    assert cache.setdefault("k", 1) == 1
    assert cache.setdefault("k", 2) == 1
    assert cache.delete("k") is True
    assert cache.delete("k") is False  # a missing key is not an error
    assert cache.get_cached_response("k").is_found is False


def test_miss_value_raises_attribute_error_with_advice():
    response = RequestCache("x").get_cached_response("nothing")
    with pytest.raises(CachedResponseMissError) as info:
        response.value  # noqa: B018
    assert isinstance(info.value, AttributeError)
    assert "is_found" in str(info.value) and "get_value_or_default" in str(info.value)
    assert response.get_value_or_default("d") == "d"


def test_cached_response_refuses_bool_and_foreign_comparison():
    response = CachedResponse(True, "k", 1)
    with pytest.raises(CachedResponseError):
        bool(response)
    with pytest.raises(CachedResponseError):
        response == object()  # noqa: B015
    assert response == CachedResponse(True, "k", 1)
    assert response != CachedResponse(True, "k", 2)
    assert CachedResponse(False, "k", 1) == CachedResponse(False, "k", 2)
    assert repr(response) == "CachedResponse(is_found=True, key=k, value='*****')"


def test_invalid_namespace_and_key_errors_say_what_to_do():
    with pytest.raises(ValueError, match="printable ASCII"):
        RequestCache("has space")
    with pytest.raises(ValueError, match="reserved"):
        RequestCache("tiercache.internal")
    with pytest.raises(TypeError, match="must be a str"):
        RequestCache("ok").get_cached_response(42)


def test_scope_ends_with_the_block():
    cache = RequestCache("scoped")
    with request_scope() as s:
        cache.set("k", "v")
        assert current_scope() is s and len(s) == 1
    assert current_scope() is None
    assert cache.get("k") is MISSING


def test_threads_have_their_own_scope(scope):
    cache = RequestCache("threads")
    cache.set("k", "main")
    seen = []

    def worker(i):
        seen.append(cache.get("k"))
        cache.set("k", f"thread {i}")
        RequestCache.clear_all_namespaces()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [MISSING] * 8
    assert cache.get("k") == "main"


def test_200_interleaved_asyncio_tasks_never_see_each_other():
    cache = RequestCache("tasks")
    leaks = []

    async def request(i):
        with request_scope():
            cache.set("user", i)
            for _ in range(5):
                await asyncio.sleep(0)  # every other task runs here
                if cache.get("user") != i:
                    leaks.append((i, cache.get("user")))
                cache.set("user", i)

    async def main():
        await asyncio.gather(*(request(i) for i in range(200)))

    asyncio.run(main())
    assert leaks == []


def test_edx_thread_local_request_cache_fails_the_same_test():
    """The peer: edx-django-utils' thread-local cache leaks between tasks."""
    from edx_django_utils.cache import RequestCache as EdxRequestCache

    cache = EdxRequestCache("tasks")
    leaks = []

    async def request(i):
        EdxRequestCache.clear_all_namespaces()
        cache.set("user", i)
        for _ in range(5):
            await asyncio.sleep(0)
            if cache.get_cached_response("user").value != i:
                leaks.append(i)
            cache.set("user", i)

    async def main():
        await asyncio.gather(*(request(i) for i in range(200)))

    asyncio.run(main())
    assert len(leaks) > 100


def test_tasks_started_inside_a_request_share_it(scope):
    cache = RequestCache("shared")
    cache.set("k", "request value")

    async def child():
        return cache.get("k")

    async def main():
        return await asyncio.gather(*(asyncio.create_task(child()) for _ in range(3)))

    assert asyncio.run(main()) == ["request value"] * 3
