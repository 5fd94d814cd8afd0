"""Middleware for sync and async stacks."""

from __future__ import annotations

from typing import Any, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async

from ..scope import SCOPE_VAR, RequestScope, current_scope

FORCE_CACHE_MISS_PARAM = "force_cache_miss"


class RequestCacheMiddleware:
    """Gives every request its own request scope (``RequestCache``, the
    request tier of ``TieredCache``, ``stratacache.django.edx``), in a
    ``ContextVar``: correct under WSGI threads, ASGI and asyncio. Put it
    near the top of ``MIDDLEWARE``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        scope = RequestScope()
        token = SCOPE_VAR.set(scope)
        try:
            return self.get_response(request)
        finally:
            SCOPE_VAR.reset(token)
            scope.clear()

    async def __acall__(self, request: Any) -> Any:
        scope = RequestScope()
        token = SCOPE_VAR.set(scope)
        try:
            return await self.get_response(request)
        finally:
            SCOPE_VAR.reset(token)
            scope.clear()


def _wants_force_miss(request: Any) -> bool:
    return request.GET.get(FORCE_CACHE_MISS_PARAM, "false").lower() == "true"


def _is_active_staff(user: Any) -> bool:
    return bool(user and getattr(user, "is_active", False) and getattr(user, "is_staff", False))


class ForceCacheMissMiddleware:
    """``?force_cache_miss=true`` from an active staff user makes every
    tiered read of the request skip the local and remote tiers and reload
    (as edx-django-utils' ``TieredCacheMiddleware`` does). Put it after
    ``AuthenticationMiddleware``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        if _wants_force_miss(request) and _is_active_staff(getattr(request, "user", None)):
            current_scope(create=True).force_cache_miss = True
        return self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        if _wants_force_miss(request):
            auser = getattr(request, "auser", None)
            if auser is not None:
                user = await auser()
            else:
                user = await sync_to_async(lambda: getattr(request, "user", None))()
            if _is_active_staff(user):
                current_scope(create=True).force_cache_miss = True
        return await self.get_response(request)
