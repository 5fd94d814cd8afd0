"""The edx-django-utils cache API (``edx_django_utils.cache``), with the same
names, signatures and behaviour, so Open edX code switches by changing an
import::

    # from edx_django_utils.cache import RequestCache, TieredCache
    from stratacache.django.edx import RequestCache, TieredCache

Which cache ``TieredCache`` reads and writes below the request cache:

* by default ``django.core.cache.cache``, exactly as edx-django-utils does.
  When ``CACHES["default"]`` is the stratacache backend
  (``stratacache.django.backend.TieredCacheBackend``), that *is* the tiered
  cache: edx code gets the local tier, chunking, signing and the storage tier
  without changes;
* with ``STRATACACHE["EDX_CACHE"] = "default"`` (a name of a cache of
  ``settings.STRATACACHE``), that ``stratacache.TieredCache`` directly, whatever
  ``CACHES["default"]`` is; an alias of ``settings.CACHES`` works too.

What differs from edx-django-utils (also in docs/python.md):
the request cache lives in a ``ContextVar`` set per request by the
middleware, not in a thread-local, so it is correct under ASGI and asyncio
(two requests served by one thread, or 200 tasks interleaved, never see
each other's values). Through a stratacache cache, keys are any string
(mapped by ``safe_key``; on a plain memcached alias set its
``KEY_FUNCTION`` to ``stratacache.django.safe_key_function``), a
``django_cache_timeout`` of 0 deletes the entry (Django's backends store it
already expired: the same for readers), and ``dangerous_clear_all_tiers``
empties the local tier and every remote tier of that cache.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.cache import cache as django_cache
from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.utils.deprecation import MiddlewareMixin
from django.utils.encoding import force_str

from .._core import CachedResponse
from .._errors import CachedResponseError
from ..scope import SCOPE_VAR, RequestScope, current_scope

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_REQUEST_CACHE",
    "DEFAULT_REQUEST_CACHE_NAMESPACE",
    "FORCE_CACHE_MISS_PARAM",
    "SHOULD_FORCE_CACHE_MISS_KEY",
    "CachedResponse",
    "CachedResponseError",
    "RequestCache",
    "RequestCacheMiddleware",
    "TieredCache",
    "TieredCacheMiddleware",
    "edx_django_cache",
    "get_cache_key",
]

FORCE_CACHE_MISS_PARAM = "force_cache_miss"
DEFAULT_NAMESPACE = "edx_django_utils.cache"
DEFAULT_REQUEST_CACHE_NAMESPACE = f"{DEFAULT_NAMESPACE}.default"
SHOULD_FORCE_CACHE_MISS_KEY = "edx_django_utils.cache.should_force_cache_miss"

_CACHE_MISS = object()


def get_cache_key(**kwargs: Any) -> str:
    """MD5 of ``key1:value1__key2:value2...`` over the sorted keyword
    arguments (values through ``force_str``), as edx-django-utils builds it."""
    key = "__".join([f"{k}:{force_str(v)}" for k, v in sorted(kwargs.items())])
    return hashlib.md5(key.encode("utf-8")).hexdigest()


class RequestCache:
    """A namespaced cache for the current request. ``data`` is the live dict
    of the namespace (code that mutates it keeps working)."""

    def __init__(self, namespace: Any = None) -> None:
        assert namespace != DEFAULT_REQUEST_CACHE_NAMESPACE, (
            f"Optional namespace can not be {DEFAULT_REQUEST_CACHE_NAMESPACE}."
        )
        self.namespace = namespace or DEFAULT_REQUEST_CACHE_NAMESPACE

    @classmethod
    def clear_all_namespaces(cls) -> None:
        """Clears the data for all namespaces of the current request."""
        scope = current_scope()
        if scope is not None:
            scope.clear()

    @property
    def data(self) -> dict:
        """The namespaced cached key/value pairs as a dict."""
        assert self.namespace
        namespaces = current_scope(create=True).edx_data
        data = namespaces.get(self.namespace)
        if data is None:
            data = namespaces[self.namespace] = {}
        return data

    def clear(self) -> None:
        """Clears data for the namespaced request cache."""
        self.data.clear()

    def get_cached_response(self, key: Any) -> CachedResponse:
        """A ``CachedResponse`` with ``is_found`` and, for a hit, ``value``."""
        cached_value = self.data.get(key, _CACHE_MISS)
        is_found = cached_value is not _CACHE_MISS
        return CachedResponse(is_found, key, cached_value)

    def set(self, key: Any, value: Any) -> None:
        """Caches ``value`` for ``key``."""
        self.data[key] = value

    def setdefault(self, key: Any, value: Any) -> None:
        """Sets ``key`` to ``value`` unless it is set."""
        self.data.setdefault(key, value)

    def delete(self, key: Any) -> None:
        """Deletes ``key``; a missing key is not an error."""
        if key in self.data:
            del self.data[key]

    def __repr__(self) -> str:
        return f"<edx RequestCache namespace={self.namespace!r}>"


DEFAULT_REQUEST_CACHE = RequestCache()


class _StratacacheAsDjangoCache:
    """The four calls edx's ``TieredCache`` makes of a Django cache, served
    by a ``stratacache.TieredCache`` (``STRATACACHE["EDX_CACHE"]``)."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache

    def get(self, key: Any, default: Any = None) -> Any:
        return self.cache.get(key, default)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT) -> None:
        from ..tiered import DEFAULT_TTL

        self.cache.set_all_tiers(key, value, DEFAULT_TTL if timeout is DEFAULT_TIMEOUT else timeout)

    def delete(self, key: Any) -> None:
        self.cache.delete_all_tiers(key)

    def clear(self) -> None:
        self.cache.clear_local()
        for tier in self.cache.tiers:
            tier.clear()


def edx_django_cache() -> Any:
    """The cache edx's ``TieredCache`` uses below the request cache:
    ``STRATACACHE["EDX_CACHE"]`` (a stratacache cache name, or a CACHES
    alias such as one served by the stratacache backend) if set, else
    ``django.core.cache.cache``.

    >>> edx_django_cache()  # doctest: +SKIP
    <stratacache.django.edx._StratacacheAsDjangoCache object ...>
    """
    from django.conf import settings

    from . import (
        _configured_in_stratacache,
        backend_aliases,
        get_cache,
        named_caches_setting,
        stratacache_settings,
    )

    name = stratacache_settings().get("EDX_CACHE")
    if name is None:
        return django_cache
    named = named_caches_setting()
    if name in backend_aliases() and not _configured_in_stratacache(name):
        # A CACHES alias on the backend: through the backend itself, so edx
        # code and ``caches[name]`` read the same (prefixed, versioned) keys.
        return caches[name]
    if name == "default" or name in named:
        return _StratacacheAsDjangoCache(get_cache(name))
    if name in settings.CACHES:
        return caches[name]
    from .._errors import ConfigurationError

    raise ConfigurationError(
        f"STRATACACHE['EDX_CACHE'] is {name!r}: neither a stratacache cache ('default', "
        f"{', '.join(map(repr, named)) or 'no others'}) nor a CACHES alias ({', '.join(settings.CACHES)})"
    )


class TieredCache:
    """The request cache backed by ``django.core.cache.cache``, or by the
    cache ``STRATACACHE["EDX_CACHE"]`` names (see the module docs).

    ::

        response = TieredCache.get_cached_response(key)
        if not response.is_found:
            TieredCache.set_all_tiers(key, compute(), 3600)
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> TieredCache:
        # Named as a Django cache BACKEND by mistake: say which path is right.
        from .backend_paths import refuse_django_call

        refuse_django_call(cls, args)
        return super().__new__(cls)

    @classmethod
    def get_cached_response(cls, key: Any) -> CachedResponse:
        """The request cache's answer, else the Django cache's (which is then
        put in the request cache); a forced miss skips the Django cache."""
        request_cached_response = DEFAULT_REQUEST_CACHE.get_cached_response(key)
        if not request_cached_response.is_found:
            django_cached_response = cls._get_cached_response_from_django_cache(key)
            cls._set_request_cache_if_django_cache_hit(key, django_cached_response)
            return django_cached_response
        return request_cached_response

    @staticmethod
    def set_all_tiers(key: Any, value: Any, django_cache_timeout: Any = DEFAULT_TIMEOUT) -> None:
        """Caches ``value`` in the request cache and the Django cache
        (``django_cache_timeout`` seconds; 0 skips the Django cache)."""
        DEFAULT_REQUEST_CACHE.set(key, value)
        edx_django_cache().set(key, value, django_cache_timeout)

    @staticmethod
    def delete_all_tiers(key: Any) -> None:
        """Deletes ``key`` from the request cache and the Django cache."""
        DEFAULT_REQUEST_CACHE.delete(key)
        edx_django_cache().delete(key)

    @staticmethod
    def dangerous_clear_all_tiers() -> None:
        """Clears the default request cache and the whole Django cache (tests only)."""
        DEFAULT_REQUEST_CACHE.clear()
        edx_django_cache().clear()

    @staticmethod
    def _get_cached_response_from_django_cache(key: Any) -> CachedResponse:
        if TieredCache._should_force_django_cache_miss():
            return CachedResponse(is_found=False, key=key, value=None)
        cached_value = edx_django_cache().get(key, _CACHE_MISS)
        is_found = cached_value is not _CACHE_MISS
        return CachedResponse(is_found, key, cached_value)

    @staticmethod
    def _set_request_cache_if_django_cache_hit(key: Any, django_cached_response: CachedResponse) -> None:
        if django_cached_response.is_found:
            DEFAULT_REQUEST_CACHE.set(key, django_cached_response.value)

    @staticmethod
    def _get_and_set_force_cache_miss(request: Any) -> None:
        """Stores whether ``?force_cache_miss=true`` was given by an active
        staff user."""
        if not (request.user and request.user.is_active and request.user.is_staff):
            force_cache_miss = False
        else:
            force_cache_miss = request.GET.get(FORCE_CACHE_MISS_PARAM, "false").lower() == "true"
        DEFAULT_REQUEST_CACHE.set(SHOULD_FORCE_CACHE_MISS_KEY, force_cache_miss)

    @classmethod
    def _should_force_django_cache_miss(cls) -> bool:
        cached_response = DEFAULT_REQUEST_CACHE.get_cached_response(SHOULD_FORCE_CACHE_MISS_KEY)
        return False if not cached_response.is_found else cached_response.value


class RequestCacheMiddleware(MiddlewareMixin):
    """Runs each request in a fresh request scope, and clears the request
    cache before and after the request (as edx-django-utils does)."""

    def __call__(self, request: Any) -> Any:
        if self._is_coroutine:
            return self.__acall__(request)
        token = SCOPE_VAR.set(RequestScope())
        try:
            return super().__call__(request)
        finally:
            SCOPE_VAR.reset(token)

    async def __acall__(self, request: Any) -> Any:
        token = SCOPE_VAR.set(RequestScope())
        try:
            return await super().__acall__(request)
        finally:
            SCOPE_VAR.reset(token)

    def process_request(self, request: Any) -> None:
        RequestCache.clear_all_namespaces()

    def process_response(self, request: Any, response: Any) -> Any:
        RequestCache.clear_all_namespaces()
        return response


class TieredCacheMiddleware(MiddlewareMixin):
    """Stores whether the request forces Django cache misses (after
    authentication)."""

    def process_request(self, request: Any) -> None:
        TieredCache._get_and_set_force_cache_miss(request)
