"""``stratacache.django.backend.TieredCacheBackend``: Django's cache API
(``django.core.cache``) over a stratacache ``TieredCache``.

::

    CACHES = {
        "default": {
            "BACKEND": "stratacache.django.backend.TieredCacheBackend",
            "LOCATION": ["10.0.0.1:11211", "10.0.0.2:11211"],   # or "redis://10.0.0.3:6379/0"
            "KEY_PREFIX": "lms",
            "OPTIONS": {
                "LOCAL": {"MAX_ENTRIES": 10_000, "TTL": 5},   # off unless configured
                "TIERS_AFTER": [{"STORAGE": "stratacache"}],  # a STORAGES alias, for values past 1 MiB
            },
        }
    }

Every ``django.core.cache`` caller (sessions, ``cache_page``, ``{% cache %}``,
waffle, block structures) then reads through the request tier, the local
tier (when configured) and the remote tiers of ``LOCATION``, with values
signed (keys derived from ``SECRET_KEY``), chunked past memcached's item size
and ``get_many`` in one round trip per tier. See docs/django-backend.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import socket
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator, Mapping
from typing import Any, Optional, Sequence

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache, default_key_func
from django.core.exceptions import ImproperlyConfigured

from .. import _core
from .._driver import _complete
from .._errors import ConfigurationError
from ..keys import normalize_key
from ..scope import current_scope
from ..tiered import UNSET, LeasePolicy, LocalTier, TieredCache, _keyring
from ..tiers import _django_redis_auth
from .aio import AsyncMemcachedTier, AsyncRedisTier

__all__ = ["BACKEND_PATH", "OPTION_NAMES", "TieredCacheBackend", "build_tiered_cache"]

#: The one ``BACKEND`` path of this backend.
BACKEND_PATH = "stratacache.django.backend.TieredCacheBackend"

#: The ``OPTIONS`` this backend reads (upper case; lower case is accepted).
OPTION_NAMES = (
    "TIERS",
    "TIERS_AFTER",
    "LOCAL",
    "SIGNING_KEYS",
    "ITEM_LIMIT",
    "LEASES",
    "STALE_TTL",
    "CODEC",
    "COMPRESS_AT",
    "TTL_JITTER",
    "COOLDOWN",
    "STRICT",
    "CLEAR",
    "TIMEOUT",
    "CONNECT_TIMEOUT",
    "LOCK_TIMEOUT",
    "INVALIDATION",
    "BACKGROUND_WRITES",
    # Redis LOCATION, django-redis's names: see docs/django-backend.md.
    "PASSWORD",
    "CONNECTION_POOL_KWARGS",
)
CLEAR_MODES = ("prefix", "flush", "local")
#: Chunks of a large value live under this prefix and their main key
#: (wire format, docs/key-format.md): ``clear()`` matches them too.
CHUNK_PREFIX = _core.CHUNK_KEY_PREFIX
_LOCK_SUFFIX = "\x00stratacache.lock"


def _upper(d: Mapping) -> dict:
    return {str(k).upper(): v for k, v in d.items()}


def _is_redis_url(text: Any) -> bool:
    return isinstance(text, str) and text.split("://", 1)[0] in ("redis", "rediss", "unix")


def _location_tiers(location: Any, options: Mapping) -> list:
    """The remote tiers of ``LOCATION``: one ``RedisTier`` per Redis URL, or
    one ``MemcachedTier`` over all the memcached servers."""
    if not location:
        return []
    items = location if isinstance(location, (list, tuple)) else [location]
    if isinstance(location, str) and not _is_redis_url(location):
        items = [location]
    redis_urls = [i for i in items if _is_redis_url(i)]
    if redis_urls and len(redis_urls) != len(items):
        raise ConfigurationError(
            "LOCATION mixes Redis URLs and memcached servers: list the extra tiers in OPTIONS['TIERS_AFTER'] "
            "(e.g. [{'REDIS': 'redis://host:6379/0'}])"
        )
    extra: dict = {}
    if "ITEM_LIMIT" in options:
        extra["item_limit"] = int(options["ITEM_LIMIT"])
    if "TIMEOUT" in options:
        extra["timeout"] = float(options["TIMEOUT"])
    redis_auth = {k: v for k, v in options.items() if k in ("PASSWORD", "CONNECTION_POOL_KWARGS")}
    if redis_urls:
        try:
            extra.update(_django_redis_auth(redis_auth))
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        return [
            AsyncRedisTier(url, name="redis" if len(redis_urls) == 1 else f"redis{i}", **extra)
            for i, url in enumerate(redis_urls)
        ]
    if redis_auth:
        raise ConfigurationError(
            f"OPTIONS {', '.join(sorted(redis_auth))} are for a Redis LOCATION (redis:// or rediss:// URLs)"
        )
    if "CONNECT_TIMEOUT" in options:
        extra["connect_timeout"] = float(options["CONNECT_TIMEOUT"])
    return [AsyncMemcachedTier(location, **extra)]


def _tier(spec: Any, index: int, where: str) -> Any:
    """One entry of ``OPTIONS['TIERS']`` / ``['TIERS_AFTER']``: ``{"MEMCACHED":
    servers}``, ``{"REDIS": url}``, ``{"STORAGE": alias}``, ``{"CACHE": alias}``
    or a tier adapter."""
    from . import tier_from_settings

    if hasattr(spec, "tier_config"):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigurationError(
            f"{where}[{index}] must be a dict such as {{'MEMCACHED': ['host:11211']}}, "
            f"{{'REDIS': 'redis://host:6379/0'}} or {{'STORAGE': 'alias'}}, not {spec!r}"
        )
    spec = _upper(spec)
    extra: dict = {}
    for key, arg in (("ITEM_LIMIT", "item_limit"), ("NAME", "name"), ("TIMEOUT", "timeout")):
        if key in spec:
            extra[arg] = spec[key]
    if "MEMCACHED" in spec:
        return AsyncMemcachedTier(spec["MEMCACHED"], **extra)
    if "REDIS" in spec:
        return AsyncRedisTier(spec["REDIS"], **extra)
    if "STORAGE" in spec or "CACHE" in spec:
        try:
            return tier_from_settings(spec, index)
        except ConfigurationError as exc:
            raise ConfigurationError(str(exc).replace("STRATACACHE['TIERS']", where)) from None
    raise ConfigurationError(
        f"{where}[{index}] names no tier: use one of 'MEMCACHED', 'REDIS', 'STORAGE' or 'CACHE' ({dict(spec)!r})"
    )


def _signing_keys(options: Mapping) -> Any:
    from django.conf import settings

    from . import signing_keys_from_secret

    keys = options.get("SIGNING_KEYS")
    if keys is False:
        return None
    if keys is None:
        secret = getattr(settings, "SECRET_KEY", "")
        return signing_keys_from_secret(secret, "django") if secret else None
    return keys


def build_tiered_cache(
    location: Any, options: Mapping, name: str = "default", local: bool = True
) -> TieredCache:
    """The ``TieredCache`` a ``TieredCacheBackend`` with these ``LOCATION``
    and ``OPTIONS`` uses (``local=False``: without the local tier)::

        build_tiered_cache("redis://127.0.0.1:6379/0", {"LOCAL": {"TTL": 5}})
    """
    options = _upper(options)
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise ConfigurationError(
            f"unknown OPTIONS {', '.join(map(repr, unknown))} for {BACKEND_PATH} "
            f"(known: {', '.join(OPTION_NAMES)})"
        )
    if "TIERS" in options:
        tiers = [_tier(s, i, "OPTIONS['TIERS']") for i, s in enumerate(options["TIERS"] or [])]
    else:
        tiers = _location_tiers(location, options)
    tiers += [_tier(s, i, "OPTIONS['TIERS_AFTER']") for i, s in enumerate(options.get("TIERS_AFTER") or [])]
    local_conf = options.get("LOCAL")
    local_tier = None
    if local and local_conf:
        local_conf = _upper(local_conf if isinstance(local_conf, Mapping) else {})
        local_tier = LocalTier(
            max_entries=local_conf.get("MAX_ENTRIES"),
            max_bytes=local_conf.get("MAX_BYTES"),
            ttl=float(local_conf.get("TTL", 5)),  # Django's own: shorter than the core's 60 s
        )
    leases = options.get("LEASES", False)
    if isinstance(leases, Mapping):
        leases = LeasePolicy(**{str(k).lower(): v for k, v in leases.items()})
    return TieredCache(
        tiers,
        local=local_tier,
        signing_keys=_signing_keys(options),
        codec=options.get("CODEC", "pickle"),
        default_ttl=None,
        stale_ttl=options.get("STALE_TTL"),
        ttl_jitter=float(options.get("TTL_JITTER", 0)),
        xfetch_beta=0.0,
        leases=leases,
        cooldown=options.get("COOLDOWN"),
        strict=bool(options.get("STRICT", False)),
        compress_at=options.get("COMPRESS_AT", UNSET),
        name=name,
        # docs/fleet.md: {"URL": "redis://...", "CHANNEL": "..."}; True or {"MAX_BYTES": ...}
        # The remote-only twin (``local=False``) reads and never writes.
        invalidation=options.get("INVALIDATION") if local else None,
        background_writes=_lower(options.get("BACKGROUND_WRITES", False)) if local else False,
    )


def _lower(option: Any) -> Any:
    return {str(k).lower(): v for k, v in option.items()} if isinstance(option, Mapping) else option


class TieredCacheBackend(BaseCache):
    """A Django cache backend (``BACKEND``:
    ``"stratacache.django.backend.TieredCacheBackend"``) over stratacache's
    tiers: a request tier, an optional local tier and the remote tiers of
    ``LOCATION`` (memcached servers or Redis URLs), plus ``TIERS_AFTER``
    (a storage tier for values past memcached's item size, say).

    ::

        from django.core.cache import cache
        cache.set("outline", outline, 3600)        # chunked past 1 MiB, signed
        cache.get_many(["a", "b", "c"])            # one round trip per tier

    Django's semantics hold: a stored ``None`` is a hit, ``timeout=None``
    keeps a value forever, ``0`` or negative stores nothing, ``add`` /
    ``incr`` / ``decr`` are atomic across processes (through the first
    memcached or Redis tier), ``clear()`` deletes this cache's keys only
    (``OPTIONS['CLEAR']``).
    """

    def __init__(self, server: Any, params: Mapping) -> None:
        super().__init__(params)
        self._location = server
        self._options = _upper(params.get("OPTIONS") or {})
        self.alias = params.get("ALIAS") or _alias_of(params)
        clear = self._options.get("CLEAR", "prefix")
        if clear not in CLEAR_MODES:
            raise ImproperlyConfigured(
                f"OPTIONS['CLEAR'] is {clear!r}: use 'prefix' (delete this cache's keys), 'flush' (empty the "
                "servers) or 'local' (this process's tiers only)"
            )
        self.clear_mode = clear
        self.lock_timeout = float(self._options.get("LOCK_TIMEOUT", 5))
        self._tiered: Optional[TieredCache] = None
        self._remote: Optional[TieredCache] = None
        # Keys made by Django's default key function are made in the
        # extension (one call per get/get_many); a KEY_FUNCTION, or a
        # subclass making keys its own way, keeps the Python path.
        cls = type(self)
        self._native_keys = (
            cls.make_key is BaseCache.make_key
            and cls._key is TieredCacheBackend._key
            and cls.validate_key is TieredCacheBackend.validate_key
        )
        self._prefixes: dict = {}

    # -- the TieredCache ----------------------------------------------------

    @property
    def tiered(self) -> TieredCache:
        """The ``TieredCache`` under this backend (built on first use), also
        what ``stratacache.django.get_cache(alias)`` returns. Django makes a
        backend per thread; they all share one ``TieredCache`` per alias and
        configuration, so the local tier is per process."""
        if self._tiered is None:
            self._tiered, self._remote = _shared(self.alias, self._location, self._options)
        return self._tiered

    def _atomic_tier(self) -> Any:
        """The first memcached or Redis tier: where ``add``, ``incr`` and
        ``decr`` are made atomic."""
        for tier in self.tiered.tiers:
            if tier.kind in ("memcached", "redis"):
                return tier
        return None

    def _ttl(self, timeout: Any) -> Any:
        """Django's timeout as the TieredCache TTL (None: forever; 0 or
        negative: store nothing, which the core decides)."""
        return self.default_timeout if timeout is DEFAULT_TIMEOUT else timeout

    def _key(self, key: Any, version: Optional[int]) -> str:
        return self.make_key(key, version)

    def _prefix(self, version: Any) -> Optional[str]:
        """``"{KEY_PREFIX}:{version}:"``, what Django's default key function
        puts before a key, or None when keys are made another way."""
        if not self._native_keys or self.key_func is not default_key_func:
            return None
        if version is None:
            version = self.version
        try:
            return self._prefixes[version]
        except KeyError:
            # %s as Django's default_key_func formats (str(), not format()).
            prefix = self._prefixes[version] = "%s:%s:" % (self.key_prefix, version)  # noqa: UP031
            return prefix
        except TypeError:  # an unhashable version
            return "%s:%s:" % (self.key_prefix, version)  # noqa: UP031

    def validate_key(self, key: Any) -> None:
        """Nothing to warn about: every key is made valid for memcached
        (``stratacache.safe_key``: escaped, long keys digested)."""

    def _plan(self, cache: TieredCache, key: str, value: Any, ttl: Any, remote: bool = False) -> list:
        """The core's write steps of ``set_all_tiers`` (``remote``: outside
        any request tier, for ``add``'s atomic write)."""
        return TieredCache._set_plan(_Unscoped(cache) if remote else cache, key, value, ttl)

    # -- reads --------------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: Optional[int] = None) -> Any:
        """The value of ``key`` (a stored ``None`` included), else ``default``:
        ``cache.get("outline", default=MISSING)``."""
        cache = self.tiered
        prefix = self._prefix(version)
        if prefix is None or TieredCache.get is not _TIERED_GET:
            # TieredCache.get (not get_cached_response): the read shows up as
            # a "get" in the Debug Toolbar panel and the read events (which
            # wrap TieredCache's methods while they observe).
            return cache.get(self._key(key, version), default)
        # One call: the key made, read from every tier, the value decoded.
        found = cache._core.get_made(_read_host(cache), key, prefix, default)
        if type(found) is _Read:
            return cache._driver.run(found, current_scope(False), None)
        return found

    def has_key(self, key: Any, version: Optional[int] = None) -> bool:
        """True if some tier has ``key``: ``cache.has_key("outline")``."""
        return self.tiered.get_cached_response(self._key(key, version)).is_found

    def get_many(self, keys: Iterable[Any], version: Optional[int] = None) -> dict:
        """``{key: value}`` for the keys found, one round trip per tier:
        ``cache.get_many(["a", "b"])``."""
        cache = self.tiered
        prefix = self._prefix(version)
        if prefix is not None and TieredCache.get_many is _TIERED_GET_MANY:
            # One call for the batch: keys made and mapped, every tier read,
            # values decoded, the dict built, all in the extension.
            found = cache._core.get_many_made(_read_host(cache), keys, prefix)
            if type(found) is _Read:
                return cache._driver.run(found, current_scope(False), None)
            return found
        back = {self._key(k, version): k for k in keys}
        if not back:
            return {}
        found = self.tiered.get_many(list(back))
        return {back[k]: v for k, v in found.items()}

    # -- writes -------------------------------------------------------------

    def set(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None
    ) -> None:
        """Writes ``value`` to every tier (``timeout``: seconds, None forever, 0 none): ``cache.set("a", 1, 60)``."""
        with _pickle_errors():
            self.tiered.set_all_tiers(self._key(key, version), value, self._ttl(timeout))

    def set_many(self, data: Mapping, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> list:
        """Sets every key in one batch per tier; returns the keys the first
        remote tier did not store."""
        return _run(self._set_many(data, timeout, version))

    def _set_many(self, data: Mapping, timeout: Any, version: Optional[int]) -> _Ops:
        with _pickle_errors():
            cache = self.tiered
            ttl = self._ttl(timeout)
            merged: dict = {}
            back: dict = {}
            for key, value in data.items():
                made = self._key(key, version)
                back[normalize_key(made)] = key
                for kind, tier, items in self._plan(cache, made, value, ttl):
                    merged.setdefault((kind, tier), []).extend(items)
        steps = [(kind, tier, items) for (kind, tier), items in merged.items()]
        return (yield from self._write_steps(steps, back, [self._key(k, version) for k in data]))

    def _write_steps(self, steps: list, back: dict, published: Sequence = ()) -> _Ops:
        """Writes the core's steps, one batch per tier; the keys (by ``back``)
        the first tier did not store. ``published``: the keys other
        processes' local tiers must drop (the invalidation channel)."""
        cache = self.tiered
        cache._explicit_writes(steps)
        failed: list = []
        for kind, tier, items in steps:
            try:
                adapter = cache._tiers[tier]
                if kind == "store":
                    missed = yield ("store", adapter, items)
                    if tier == 0 and missed:
                        failed.extend(back[k] for k in missed if k in back)
                else:
                    yield ("call", adapter, "delete_many", (items,))
                cache._wrote(tier, kind)
            except Exception as exc:
                cache._wrote(tier, kind, exc)
                if cache.strict:
                    raise
                if tier == 0 and kind == "store":
                    failed.extend(back[e[0]] for e in items if e[0] in back)
        cache._published(list(published))
        return failed

    def delete(self, key: Any, version: Optional[int] = None) -> bool:
        """Removes ``key`` from every tier; True if it was there:
        ``cache.delete("outline")``."""
        return _run(self._delete(key, version))

    def _delete(self, key: Any, version: Optional[int]) -> _Ops:
        existed = yield from self._has_key(key, version)
        yield ("call", self.tiered, "delete_all_tiers", (self._key(key, version),))
        return existed

    def _has_key(self, key: Any, version: Optional[int]) -> _Ops:
        response = yield ("call", self.tiered, "get_cached_response", (self._key(key, version),))
        return response.is_found

    def delete_many(self, keys: Iterable[Any], version: Optional[int] = None) -> None:
        """Removes the keys from every tier, one batch per tier:
        ``cache.delete_many(["a", "b"])``."""
        _run(self._delete_many(keys, version))

    def _delete_many(self, keys: Iterable[Any], version: Optional[int]) -> _Ops:
        cache = self.tiered
        merged: dict = {}
        made = [self._key(key, version) for key in keys]
        for key in made:
            for kind, tier, items in cache._delete_plan(key):
                merged.setdefault((kind, tier), []).extend(items)
        yield from self._write_steps([(k, t, i) for (k, t), i in merged.items()], {}, made)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> bool:
        """Gives ``key`` a new timeout (a read and a write: the expiry is also
        inside the signed envelope)."""
        return _run(self._touch(key, timeout, version))

    def _touch(self, key: Any, timeout: Any, version: Optional[int]) -> _Ops:
        made = self._key(key, version)
        response = yield ("call", self._remote_cache(), "get_cached_response", (made,))
        if not response.is_found:
            return False
        yield ("call", self.tiered, "set_all_tiers", (made, response.value, self._ttl(timeout)))
        return True

    def _remote_cache(self) -> TieredCache:
        self.tiered  # noqa: B018 - builds both caches
        assert self._remote is not None
        return self._remote

    def add(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None
    ) -> bool:
        """Stores ``value`` only if ``key`` has no value: atomic across
        processes through memcached ``add`` / Redis ``SET NX`` on the first
        such tier. True if it was stored."""
        with _pickle_errors():
            return _run(self._add(key, value, timeout, version, retry=True))

    def _add(self, key: Any, value: Any, timeout: Any, version: Optional[int], retry: bool) -> _Ops:
        made = self._key(key, version)
        ttl = self._ttl(timeout)
        cache = self.tiered
        tier_index, tier = next(
            ((i, t) for i, t in enumerate(cache.tiers) if t.kind in ("memcached", "redis")), (None, None)
        )
        if tier is None:  # no atomic tier: check, then set (one process only)
            if (yield from self._has_key(key, version)):
                return False
            yield ("call", cache, "set_all_tiers", (made, value, ttl))
            return True
        if ttl == 0:
            return not (yield from self._has_key(key, version))
        main = normalize_key(made)
        remote = self._remote_cache()
        added = False
        for _kind, index, items in self._plan(remote, made, value, ttl, remote=True):
            if index != tier_index:
                continue
            chunks = [e for e in items if e[0] != main]
            head = [e for e in items if e[0] == main]
            try:
                if chunks:
                    yield ("call", tier, "set_many", (chunks,))
                added = bool((yield ("call", tier, "add_many", (head,)))[0])
                cache._wrote(tier_index, "add")
            except Exception as exc:  # a dead server: nothing added, counted
                cache._wrote(tier_index, "add", exc)
                if cache.strict:
                    raise
                return False
        if not added:
            # A value that cannot be served (its envelope expired, or it is
            # not ours) does not count as present: remove it, try once more.
            if retry and not (yield ("call", remote, "get_cached_response", (made,))).is_found:
                yield ("call", cache, "delete_all_tiers", (made,))
                return (yield from self._add(key, value, timeout, version, retry=False))
            return False
        # The request and local tiers, and the tiers after the atomic one.
        others = [s for s in self._plan(cache, made, value, ttl) if s[1] != tier_index]
        yield from self._write_steps(others, {}, [made])
        return True

    def get_or_set(
        self, key: Any, default: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None
    ) -> Any:
        """The value of ``key``, else ``default`` (called if callable) added atomically: ``cache.get_or_set("a", build, 60)``."""
        with _pickle_errors():
            return _run(self._get_or_set(key, default, timeout, version))

    def _get_or_set(self, key: Any, default: Any, timeout: Any, version: Optional[int]) -> _Ops:
        made = self._key(key, version)
        response = yield ("call", self.tiered, "get_cached_response", (made,))
        if response.is_found:
            return response.value
        if callable(default):
            default = default()
        yield from self._add(key, default, timeout, version, retry=True)
        # The value some other process may have added first wins, as in Django.
        return (yield ("call", self.tiered, "get", (made, default)))

    def incr(self, key: Any, delta: int = 1, version: Optional[int] = None) -> int:
        """Adds ``delta`` to an integer value; ``ValueError`` if the key is
        missing. Atomic across processes: a lock through memcached ``add`` /
        Redis ``SET NX`` serializes every ``incr`` and ``decr`` of the key."""
        return _run(self._incr(key, delta, version))

    def decr(self, key: Any, delta: int = 1, version: Optional[int] = None) -> int:
        """``incr`` by ``-delta`` (may go below zero, as with Redis)."""
        return self.incr(key, -delta, version)

    def _incr(self, key: Any, delta: int, version: Optional[int]) -> _Ops:
        made = self._key(key, version)
        cache = self.tiered
        remote = self._remote_cache()
        tier = self._atomic_tier()
        lock = normalize_key(made + _LOCK_SUFFIX)
        if tier is not None:
            yield from self._lock(tier, lock, os.urandom(8))
        try:
            response = yield ("call", remote, "get_cached_response", (made,))
            if not response.is_found:
                yield ("call", cache, "delete_all_tiers", (made,))  # nothing stale left locally
                raise ValueError(f"Key '{key}' not found")
            value = response.value
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"the value of {key!r} is a {type(value).__name__}, not an integer")
            new = value + delta
            ttl = yield from self._remaining_ttl(made)
            yield ("call", cache, "set_all_tiers", (made, new, ttl))
            return new
        finally:
            if tier is not None:
                yield ("call", tier, "delete_many", ([lock],))

    def _lock(self, tier: Any, lock: str, token: bytes) -> _Ops:
        deadline = time.monotonic() + self.lock_timeout
        ttl_ms = max(1000, int(self.lock_timeout * 1000))
        while True:
            try:
                if (yield ("call", tier, "add_many", ([(lock, token, ttl_ms)],)))[0]:
                    return
            except Exception as exc:
                raise ConnectionError(f"cannot take the counter lock on {tier.name!r}: {exc}") from exc
            if time.monotonic() > deadline:
                raise TimeoutError(f"the counter lock {lock!r} is held for over {self.lock_timeout}s")
            yield ("sleep", 0.001)

    def _remaining_ttl(self, made: str) -> _Ops:
        """What is left of the stored value's lifetime (incr keeps it, as
        memcached and Redis do)."""
        tier = self._atomic_tier()
        if tier is None:
            return self._ttl(DEFAULT_TIMEOUT)
        raw = yield ("call", tier, "get_many", ([normalize_key(made)],))
        return self._ttl_left(made, raw[0])

    def _ttl_left(self, made: str, raw: Any) -> Any:
        """The lifetime left in a stored envelope (its signed hard expiry)."""
        cache = self.tiered
        if raw is None:
            return self._ttl(DEFAULT_TIMEOUT)
        ring = _keyring(_signing_keys(self._options))
        try:
            header = _core.decode_envelope(
                raw, signing_keys=ring, require_signature=cache.signed, key=normalize_key(made)
            )["header"]
        except Exception:
            return self._ttl(DEFAULT_TIMEOUT)
        hard = header.get("hard_expiry_ms")
        if hard is None:
            return None
        return max(0.001, (hard - _core.now_ms()) / 1000)

    def clear(self) -> None:
        """Deletes this cache's keys (``OPTIONS['CLEAR']``): ``"prefix"``
        (default) deletes the keys under this cache's ``KEY_PREFIX`` on each
        server and leaves other users' keys alone; ``"flush"`` empties the
        servers (what Django's memcached and Redis backends do);
        ``"local"`` empties this process's request and local tiers only."""
        for tier in self._clear_local_tiers():
            self._clear_tier(tier)

    def _clear_local_tiers(self) -> list:
        """Empties this process's request and local tiers; returns the
        remote tiers ``clear`` goes on to (none in ``"local"`` mode)."""
        cache = self.tiered
        cache.clear_local()
        scope = cache._scope()
        if scope is not None:
            scope.clear()
        return [] if self.clear_mode == "local" else list(cache.tiers)

    def _clear_tier(self, tier: Any) -> None:
        if tier.kind == "storage" or self.clear_mode == "flush":
            tier.clear()
        elif tier.kind == "memcached":
            _clear_memcached_prefix(tier, self._clear_prefixes())
        elif tier.kind == "redis":
            _clear_redis_prefix(tier, self._clear_prefixes())
        else:
            tier.clear()

    async def aclear(self) -> None:
        """Async ``clear`` (the same ``OPTIONS['CLEAR']`` modes): memcached
        and Redis tiers are flushed or scanned and deleted on the event loop;
        only a tier with no async client (storage) runs in a worker thread.
        ``await cache.aclear()``."""
        flush = self.clear_mode == "flush"
        for tier in self._clear_local_tiers():
            if isinstance(tier, AsyncMemcachedTier):
                await (tier.aflush_all() if flush else _aclear_memcached_prefix(tier, self._clear_prefixes()))
            elif isinstance(tier, AsyncRedisTier):
                await (tier.aflush() if flush else _aclear_redis_prefix(tier, self._clear_prefixes()))
            else:
                await asyncio.to_thread(self._clear_tier, tier)

    def _clear_prefixes(self) -> list:
        """What every remote key of this cache starts with, whatever its
        version (the common start of two made keys, as stored)."""
        a = normalize_key(self.make_key("a", 1))
        b = normalize_key(self.make_key("b", 2))
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        prefix = a[:n]
        return [prefix, CHUNK_PREFIX + prefix]

    def close(self, **kwargs: Any) -> None:
        """Nothing to close per request: connections are pooled per process."""

    # -- async: the TieredCache's own async API, no thread per call -----------

    async def aget(self, key: Any, default: Any = None, version: Optional[int] = None) -> Any:
        """Async ``get``: ``await cache.aget("a")``."""
        cache = self.tiered
        prefix = self._prefix(version)
        if prefix is None or TieredCache.aget is not _TIERED_AGET:
            return await cache.aget(self._key(key, version), default)
        found = cache._core.get_made(_read_host(cache, aio=True), key, prefix, default)
        if type(found) is _Read:
            return await cache._driver.arun(found, current_scope(False), None)
        return found

    async def ahas_key(self, key: Any, version: Optional[int] = None) -> bool:
        """Async ``has_key``: ``await cache.ahas_key("a")``."""
        return (await self.tiered.aget_cached_response(self._key(key, version))).is_found

    async def aget_many(self, keys: Iterable[Any], version: Optional[int] = None) -> dict:
        """Async ``get_many``: ``await cache.aget_many(["a", "b"])``."""
        cache = self.tiered
        prefix = self._prefix(version)
        if prefix is not None and TieredCache.aget_many is _TIERED_AGET_MANY:
            found = cache._core.get_many_made(_read_host(cache, aio=True), keys, prefix)
            if type(found) is _Read:
                return await cache._driver.arun(found, current_scope(False), None)
            return found
        back = {self._key(k, version): k for k in keys}
        if not back:
            return {}
        found = await self.tiered.aget_many(list(back))
        return {back[k]: v for k, v in found.items()}

    async def aset(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None
    ) -> None:
        """Async ``set``: ``await cache.aset("a", 1, 60)``."""
        await self.tiered.aset_all_tiers(self._key(key, version), value, self._ttl(timeout))

    async def aset_many(
        self, data: Mapping, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None
    ) -> list:
        """Async ``set_many`` (returns the keys not stored): ``await cache.aset_many({"a": 1})``."""
        return await _arun(self._set_many(data, timeout, version))

    async def adelete_many(self, keys: Iterable[Any], version: Optional[int] = None) -> None:
        """Async ``delete_many``: ``await cache.adelete_many(["a", "b"])``."""
        await _arun(self._delete_many(keys, version))

    async def atouch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> bool:
        """Async ``touch``: ``await cache.atouch("a", 60)``."""
        return await _arun(self._touch(key, timeout, version))

    async def aadd(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None
    ) -> bool:
        """Async ``add`` (atomic through the first memcached or Redis tier):
        ``await cache.aadd("a", 1, 60)``."""
        with _pickle_errors():
            return await _arun(self._add(key, value, timeout, version, retry=True))

    async def aincr(self, key: Any, delta: int = 1, version: Optional[int] = None) -> int:
        """Async ``incr`` (the same lock as ``incr``, taken and released on the
        event loop): ``await cache.aincr("hits")``."""
        return await _arun(self._incr(key, delta, version))

    async def adecr(self, key: Any, delta: int = 1, version: Optional[int] = None) -> int:
        """Async ``decr``: ``await cache.adecr("hits")``."""
        return await self.aincr(key, -delta, version)

    async def adelete(self, key: Any, version: Optional[int] = None) -> bool:
        """Async ``delete``: ``await cache.adelete("a")``."""
        return await _arun(self._delete(key, version))

    async def aget_or_set(
        self, key: Any, default: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None
    ) -> Any:
        """Async ``get_or_set``: ``await cache.aget_or_set("a", 1)``."""
        with _pickle_errors():
            return await _arun(self._get_or_set(key, default, timeout, version))

    async def aclose(self, **kwargs: Any) -> None:
        """Nothing to close (see ``close``)."""

    # -- introspection ------------------------------------------------------

    def stats(self) -> dict:
        """The TieredCache counters (``stratacache_stats`` prints them)."""
        return self.tiered.stats()

    def __repr__(self) -> str:
        return f"<TieredCacheBackend {self.alias!r}: {self.tiered!r}>"


_Read = _core.Read
# The read methods as defined (read observers wrap them while they observe:
# the backend then calls them, so the Debug Toolbar panel sees its reads).
_TIERED_GET = getattr(TieredCache.get, "__wrapped__", TieredCache.get)
_TIERED_GET_MANY = getattr(TieredCache.get_many, "__wrapped__", TieredCache.get_many)
_TIERED_AGET = getattr(TieredCache.aget, "__wrapped__", TieredCache.aget)
_TIERED_AGET_MANY = getattr(TieredCache.aget_many, "__wrapped__", TieredCache.aget_many)


def _read_host(cache: TieredCache, aio: bool = False) -> Any:
    """What a read of ``cache`` run in the extension needs (built once per
    cache): see ``TieredCache._read_host``."""
    return cache._read_host(aio)


@contextlib.contextmanager
def _pickle_errors() -> Iterator[None]:
    """Django's backends let ``pickle.PickleError`` out of ``set``; the
    TieredCache wraps it in a TypeError that says what to do."""
    try:
        yield
    except TypeError as exc:
        if isinstance(exc.__cause__, pickle.PickleError):
            raise exc.__cause__ from exc
        raise


_shared_lock = threading.Lock()
_shared_caches: dict = {}


def _shared(alias: str, location: Any, options: Mapping) -> tuple:
    """``(tiered, remote)`` for an alias and configuration, built once per
    process: ``remote`` has no local tier and shares ``tiered``'s adapters
    (and their connection pools)."""
    key = (alias, repr(location), repr(sorted(options.items(), key=lambda kv: kv[0])))
    found = _shared_caches.get(key)
    if found is not None:
        return found
    with _shared_lock:
        found = _shared_caches.get(key)
        if found is None:
            try:
                tiered = build_tiered_cache(location, options, alias)
                remote = build_tiered_cache(location, options, alias, local=False)
            except ConfigurationError as exc:
                raise ImproperlyConfigured(f"CACHES[{alias!r}]: {exc}") from None
            remote._tiers = tiered._tiers
            remote._natives = tiered._natives
            # The test helpers count the remote reads of add/incr/touch
            # (made through ``remote``) as reads of the alias.
            tiered._stratacache_siblings = (remote,)
            found = _shared_caches[key] = (tiered, remote)
    return found


def forget_shared() -> None:
    """Forgets the built caches (settings changed, in tests)."""
    with _shared_lock:
        for tiered, remote in _shared_caches.values():
            tiered.close()  # its writer thread and invalidation subscriber
            remote.close()
        _shared_caches.clear()


def _alias_of(params: Mapping) -> str:
    from django.conf import settings

    # Django hands a backend a copy of its settings less BACKEND and
    # LOCATION, not its alias: the first alias with those settings names it.
    for alias, conf in getattr(settings, "CACHES", {}).items():
        if {k: v for k, v in conf.items() if k not in ("BACKEND", "LOCATION")} == dict(params):
            return alias
    return "default"


# -- clear() by prefix ---------------------------------------------------------


def _clear_redis_prefix(tier: Any, prefixes: list) -> None:
    # SCAN is an admin command the tier's own (Rust) client does not offer:
    # redis-py over the tier's URL does it.
    import redis

    url = getattr(tier, "url", None)
    if not isinstance(url, str):
        raise ImproperlyConfigured(
            f"clear() by prefix needs the Redis URL of tier {tier.name!r} (a cluster cannot be scanned here): "
            "use OPTIONS['CLEAR'] = 'local' or 'flush'"
        )
    client = redis.Redis.from_url(url, socket_timeout=5)
    for prefix in prefixes:
        pattern = _redis_glob_escape(tier.key_prefix + prefix) + "*"
        batch = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.delete(*batch)
                batch = []
        if batch:
            client.delete(*batch)


async def _aclear_redis_prefix(tier: AsyncRedisTier, prefixes: list) -> None:
    """``_clear_redis_prefix`` on the event loop (``redis.asyncio``)."""
    client = tier._aclient()
    for prefix in prefixes:
        pattern = _redis_glob_escape(tier.key_prefix + prefix) + "*"
        batch = []
        async for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.delete(*batch)
                batch = []
        if batch:
            await client.delete(*batch)


def _redis_glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _clear_memcached_prefix(tier: Any, prefixes: list) -> None:
    """Deletes the keys under ``prefixes`` on each server (``lru_crawler
    metadump all`` lists them; memcached ≥ 1.4.31)."""
    full = [tier.key_prefix + p for p in prefixes]
    for _node, host, port in tier.servers:
        keys = [k for k in _metadump(host, port, tier.client.timeout) if k.startswith(tuple(full))]
        for i in range(0, len(keys), 500):
            tier.client.delete_many([k[len(tier.key_prefix) :] for k in keys[i : i + 500]])


async def _aclear_memcached_prefix(tier: AsyncMemcachedTier, prefixes: list) -> None:
    """``_clear_memcached_prefix`` on the event loop (asyncio streams)."""
    full = tuple(tier.key_prefix + p for p in prefixes)
    for _node, host, port in tier.servers:
        keys = [k for k in await _ametadump(host, port, tier.client.timeout) if k.startswith(full)]
        for i in range(0, len(keys), 500):
            await tier.adelete_many([k[len(tier.key_prefix) :] for k in keys[i : i + 500]])


_METADUMP = b"lru_crawler metadump all\r\n"


def _metadump_done(data: bytes) -> bool:
    return data.endswith(b"END\r\n") or data.startswith(b"ERROR") or data.startswith(b"BUSY")


def _metadump_keys(host: str, port: Optional[int], data: bytes) -> list:
    if not data.endswith(b"END\r\n"):
        raise OSError(f"memcached {host}:{port} cannot list its keys: {data[:80]!r}")
    keys = []
    for line in data.splitlines():
        if line.startswith(b"key="):
            raw = line.split(b" ", 1)[0][4:].decode("ascii")
            keys.append(urllib.parse.unquote(raw))
    return keys


async def _ametadump(host: str, port: Optional[int], timeout: float) -> list:
    """``_metadump`` over an asyncio stream of its own."""
    opening = asyncio.open_unix_connection(host) if port is None else asyncio.open_connection(host, port)
    reader, writer = await asyncio.wait_for(opening, max(timeout, 2.0))
    try:
        writer.write(_METADUMP)
        data = b""
        while not _metadump_done(data):
            chunk = await asyncio.wait_for(reader.read(1 << 16), max(timeout, 2.0))
            if not chunk:
                break
            data += chunk
    finally:
        writer.close()
    return _metadump_keys(host, port, data)


def _metadump(host: str, port: Optional[int], timeout: float) -> list:
    if port is None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(max(timeout, 2.0))
        sock.connect(host)
    else:
        sock = socket.create_connection((host, port), timeout=max(timeout, 2.0))
    with sock:
        sock.sendall(_METADUMP)
        data = b""
        while not _metadump_done(data):
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    return _metadump_keys(host, port, data)


def __getattr__(name: str) -> Any:
    # "BACKEND": "stratacache.django.backend.TieredCache" and the like.
    from . import backend_paths

    if name in backend_paths.NEAR_NAMES:
        return backend_paths.wrong_name_class(__name__, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- one implementation per operation, two runners -------------------------------
#
# Each operation with I/O is a generator that yields its effects (the same
# pattern as ``stratacache._driver``): ``("call", obj, name, args)`` runs
# ``obj.name(*args)`` or awaits ``obj.a<name>(*args)``; ``("store", tier,
# entries)`` writes a batch (sync: through the tier's native client when it
# has one); ``("sleep", seconds)``. An exception of the effect is thrown
# back into the generator.

_Ops = Generator[tuple, Any, Any]


class _Unscoped:
    """``cache`` seen outside any request scope: ``add`` plans its atomic
    write with ``TieredCache._set_plan`` without touching the request tier."""

    def __init__(self, cache: TieredCache) -> None:
        self._cache = cache

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cache, name)

    def _scope(self, create: bool = False) -> Any:
        return None


def _run(ops: _Ops) -> Any:
    """Performs the effects of ``ops`` on the calling thread: the one loop of
    :func:`_arun` with effects that never suspend, so it ends at its first
    ``send``."""
    return _complete(_arun(ops, _do))


async def _do(effect: tuple) -> Any:
    if effect[0] == "call":
        _, obj, name, args = effect
        return getattr(obj, name)(*args)
    if effect[0] == "store":
        _, adapter, items = effect
        client = getattr(adapter, "native_client", None)
        return (client if client is not None else adapter).set_many(items)
    time.sleep(effect[1])
    return None


async def _ado(effect: tuple) -> Any:
    if effect[0] == "call":
        _, obj, name, args = effect
        return await getattr(obj, "a" + name)(*args)
    if effect[0] == "store":
        return await effect[1].aset_many(effect[2])
    await asyncio.sleep(effect[1])
    return None


async def _arun(ops: _Ops, do: Callable[[tuple], Awaitable[Any]] = _ado) -> Any:
    """Performs the effects of ``ops`` with ``do`` (by default awaiting the
    async methods: no worker thread); an effect's exception is thrown back
    into ``ops``."""
    result: Any = None
    error: Optional[BaseException] = None
    while True:
        try:
            effect = ops.throw(error) if error is not None else ops.send(result)
        except StopIteration as stop:
            return stop.value
        try:
            result, error = await do(effect), None
        except Exception as exc:
            result, error = None, exc
