"""Views the middleware tests request."""

import asyncio

from django.http import HttpResponse, JsonResponse
from django.urls import path

from stratacache import RequestCache, current_scope
from stratacache.django import get_cache

notes = RequestCache("views")


def _payload(request, value):
    scope = current_scope()
    return {
        "before": value,
        "force_cache_miss": bool(scope and scope.force_cache_miss),
        "scope_id": id(scope) if scope else None,
    }


def sync_view(request):
    before = notes.get("seen", None)
    notes.set("seen", request.GET.get("tag"))
    return JsonResponse(_payload(request, before))


async def async_view(request):
    before = notes.get("seen", None)
    notes.set("seen", request.GET.get("tag"))
    await asyncio.sleep(0)
    return JsonResponse(_payload(request, before))


def loader_view(request):
    calls = []
    value = get_cache().get_or_load("view-key", lambda: calls.append(1) or "fresh", ttl=60)
    return JsonResponse({"value": value, "loaded": bool(calls)})


def outline_view(request):
    """An HTML page that reads through the tiers (the Debug Toolbar panel test)."""
    cache = get_cache()
    cache.get_or_load("course-v1:edX+DemoX+Demo outline", lambda: {"blocks": 3}, ttl=60)
    found = cache.get_many([f"block-{i}" for i in range(8)])
    return HttpResponse(f"<html><body><h1>outline</h1><p>{len(found)} blocks</p></body></html>")


def backend_view(request):
    """Reads and writes through ``caches["strata"]`` (a TieredCacheBackend alias)."""
    from django.core.cache import caches

    cache = caches["strata"]
    cache.set("page-key", "page-value", 60)
    found = cache.get("page-key")
    many = cache.get_many(["page-key", "page-absent"])
    return HttpResponse(f"<html><body><p>{found} {sorted(many)}</p></body></html>")


urlpatterns = [
    path("backend/", backend_view),
    path("sync/", sync_view),
    path("async/", async_view),
    path("loader/", loader_view),
    path("outline/", outline_view),
]

try:  # the Debug Toolbar panel tests (django-debug-toolbar is a test requirement)
    import debug_toolbar.urls  # noqa: F401
    from django.urls import include

    # Not debug_toolbar_urls(): it returns nothing when DEBUG is off at import
    # time, and a check run by an earlier test may import this module then.
    urlpatterns += [path("__debug__/", include("debug_toolbar.urls"))]
except ImportError:  # pragma: no cover
    pass
