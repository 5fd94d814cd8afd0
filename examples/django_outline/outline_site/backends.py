"""Cache and storage backends of the example: the embedded stand-ins that
need no server, and thin counting subclasses of Django's memcached and
Redis caches and of django-storages' S3 storage.

Every call that would reach a server is counted (:mod:`courses.counters`),
so the demo can report remote round trips per request whatever the tiers
are. The embedded stand-ins also behave like the servers they replace where
it matters to the demo:

- :class:`EmbeddedCache` (in place of memcached): an in-process
  ``LocMemCache`` that refuses values over memcached's 1 MiB item size,
  silently, as memcached behind Django's ``PyMemcacheCache`` with
  ``ignore_exc`` does, and waits ``ROUND_TRIP_MS`` per call (default 0.25 ms,
  a round trip on a LAN), since a call to memcached is never free.
- :class:`EmbeddedStorage` (in place of S3): a ``FileSystemStorage`` that
  waits ``REQUEST_MS`` per request (default 5 ms; S3 is slower than that).
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import threading
import time
from typing import Any, Callable

from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.memcached import PyMemcacheCache
from django.core.cache.backends.redis import RedisCache
from django.core.files.storage import FileSystemStorage

from courses import counters

MEMCACHED_ITEM_SIZE_MAX = 1024 * 1024


def _remote(method: Callable) -> Callable:
    """Counts a call of ``method`` as one call that reaches the cache server
    (and, on an embedded stand-in, waits its round trip). Calls made inside
    another counted call (``get_many`` looping over ``get``) are not counted
    again."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        local = self._calls_local
        if getattr(local, "inside", False):
            return method(self, *args, **kwargs)
        counters.add(counters.CACHE_CALLS)
        delay = getattr(self, "round_trip", 0.0)
        if delay:
            time.sleep(delay)
        local.inside = True
        try:
            return method(self, *args, **kwargs)
        finally:
            local.inside = False

    return wrapper


def counted(base: type) -> Callable[[type], type]:
    """A class decorator: the subclass of ``base`` it decorates counts every
    call of ``get``, ``get_many``, ``set``, ``set_many``, ``add``,
    ``delete``, ``delete_many``, ``touch``, ``has_key``, ``incr`` and
    ``clear`` as one round trip."""

    def decorate(cls: type) -> type:
        for name in (
            "get",
            "get_many",
            "set",
            "set_many",
            "add",
            "delete",
            "delete_many",
            "touch",
            "has_key",
            "incr",
            "clear",
        ):
            if name in vars(cls):
                continue
            setattr(cls, name, _remote(getattr(base, name)))
        cls._calls_local = property(
            lambda self: self.__dict__.get("_tl") or self.__dict__.setdefault("_tl", threading.local())
        )
        return cls

    return decorate


@counted(LocMemCache)
class EmbeddedCache(LocMemCache):
    """An in-process stand-in for memcached (see the module docs).

    ``OPTIONS``: ``ROUND_TRIP_MS`` (simulated round trip per call, default
    0.25), ``ITEM_SIZE_MAX`` (bytes, default 1 MiB)."""

    def __init__(self, name: str, params: dict) -> None:
        options = dict(params.get("OPTIONS") or {})
        self.round_trip = float(options.pop("ROUND_TRIP_MS", 0.25)) / 1000.0
        self.item_size_max = int(options.pop("ITEM_SIZE_MAX", MEMCACHED_ITEM_SIZE_MAX))
        super().__init__(name, {**params, "OPTIONS": options})

    def _set(self, key: str, value: bytes, timeout: Any = None) -> None:
        # `value` is the pickled value; memcached refuses an item whose key,
        # value and header do not fit in one slab page.
        if len(key) + len(value) + 64 > self.item_size_max:
            self._delete(key)
            return
        super()._set(key, value, timeout)


@counted(PyMemcacheCache)
class CountingPyMemcacheCache(PyMemcacheCache):
    """Django's ``PyMemcacheCache``, counting the calls it makes."""


@counted(RedisCache)
class CountingRedisCache(RedisCache):
    """Django's ``RedisCache``, counting the calls it makes."""


class _CountedStorage:
    """Mixin: each request a storage makes (open, save, exists, delete,
    listdir) counted as one call."""

    request_delay = 0.0

    def _request(self) -> None:
        counters.add(counters.STORAGE_CALLS)
        if self.request_delay:
            time.sleep(self.request_delay)

    def _open(self, name: str, mode: str = "rb") -> Any:
        self._request()
        return super()._open(name, mode)

    def _save(self, name: str, content: Any) -> str:
        self._request()
        return super()._save(name, content)

    def exists(self, name: str) -> bool:
        self._request()
        return super().exists(name)

    def delete(self, name: str) -> None:
        self._request()
        super().delete(name)

    def listdir(self, path: str) -> Any:
        self._request()
        return super().listdir(path)


class EmbeddedStorage(_CountedStorage, FileSystemStorage):
    """The filesystem in place of S3, waiting ``request_ms`` (default 5) per
    request. As on S3, a save replaces the object of that name atomically: a
    reader sees the old file or the new one, never half of one (the new file
    is written aside, then renamed over the old)."""

    file_overwrite = True  # as S3Storage: stratacache's StorageTier then writes with one request

    def __init__(self, *args: Any, request_ms: float = 5.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_delay = float(request_ms) / 1000.0

    def get_available_name(self, name: str, max_length: Any = None) -> str:
        return name  # overwrite, as S3 does

    def _save(self, name: str, content: Any) -> str:
        self._request()
        full_path = self.path(name)
        directory = os.path.dirname(full_path)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in content.chunks():
                    f.write(chunk)
            os.replace(tmp, full_path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return name


try:
    from storages.backends.s3 import S3Storage

    class CountingS3Storage(_CountedStorage, S3Storage):
        """django-storages' ``S3Storage``, counting its requests."""

except ImportError:  # pragma: no cover - django-storages is optional for the embedded default
    CountingS3Storage = None  # type: ignore[assignment,misc]
