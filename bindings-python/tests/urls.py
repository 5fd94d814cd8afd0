"""Views the middleware tests request."""

import asyncio

from django.http import JsonResponse
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


urlpatterns = [
    path("sync/", sync_view),
    path("async/", async_view),
    path("loader/", loader_view),
]
