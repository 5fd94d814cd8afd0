"""Django integration: caches built from ``settings.STRATACACHE``, middleware,
system checks and management commands.

::

    INSTALLED_APPS = [..., "stratacache.django"]
    MIDDLEWARE = [
        "stratacache.django.middleware.RequestCacheMiddleware",   # early
        ...,
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "stratacache.django.middleware.ForceCacheMissMiddleware",  # after auth
    ]
    STRATACACHE = {
        "TIERS": [
            {"CACHE": "memcached"},                          # a CACHES alias
            {"CACHE": "redis"},
            {"STORAGE": "stratacache", "PREFIX": "blocks"},    # a STORAGES alias
        ],
        "DEFAULT_TTL": 300,
        # "NAMED": {"blocks": {"TIERS": [...]}},   get_cache("blocks")
        # "SIGNING_KEYS": [("2025a", "...")],   default: derived from SECRET_KEY
        # "INVALIDATION": {"URL": "redis://...", "CHANNEL": "myapp:invalidate"},
        # "BACKGROUND_WRITES": True,            see docs/fleet.md
    }

    from stratacache.django import get_cache
    cache = get_cache()
"""

import threading
from collections.abc import Mapping
from typing import Any, Optional

from .._errors import ConfigurationError
from ..keys import safe_key
from ..tiered import UNSET, LeasePolicy, LocalTier, TieredCache, signing_keys_from_secret
from ..tiers import DjangoCacheTier, MemcachedTier, RedisTier, StorageTier

__all__ = [
    "backend_aliases",
    "build_cache",
    "get_cache",
    "named_caches_setting",
    "reset_caches",
    "safe_key_function",
    "stratacache_settings",
]

_lock = threading.Lock()
_caches: dict = {}

MEMCACHED_BACKENDS = ("PyMemcacheCache", "PyLibMCCache", "MemcachedCache")
REDIS_BACKENDS = ("RedisCache",)


def safe_key_function(key: str, key_prefix: str, version: Any) -> str:
    """A Django ``KEY_FUNCTION`` that accepts any string key (spaces,
    Unicode, control characters, 10 KB) on memcached, by passing it through
    stratacache's ``safe_key``. Set it on the cache aliases that code using
    ``stratacache.django.edx`` (or Django's cache API) reaches with arbitrary
    keys::

        CACHES = {"default": {..., "KEY_FUNCTION": "stratacache.django.safe_key_function"}}
    """
    return f"{key_prefix}:{version}:{safe_key(str(key))}"


def stratacache_settings() -> dict:
    """``settings.STRATACACHE`` with upper-case keys (empty dict if unset)."""
    from django.conf import settings

    raw = getattr(settings, "STRATACACHE", None) or {}
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            "settings.STRATACACHE must be a dict, such as {'TIERS': [{'CACHE': 'default'}]}"
        )
    return {str(k).upper(): v for k, v in raw.items()}


#: The key of ``STRATACACHE`` that names further caches (``get_cache(name)``).
NAMED_KEY = "NAMED"
#: Its old name, still read (a check warns): it reused Django's word ``CACHES``.
DEPRECATED_NAMED_KEY = "CACHES"


def named_caches_setting(conf: Optional[Mapping] = None) -> dict:
    """``STRATACACHE["NAMED"]``: ``{name: settings}`` of the caches other
    than ``"default"`` (the deprecated key ``"CACHES"`` is read when
    ``"NAMED"`` is absent)::

        STRATACACHE = {"TIERS": [...], "NAMED": {"local_only": {"TIERS": []}}}
        named_caches_setting()   # {"local_only": {"TIERS": []}}
    """
    conf = stratacache_settings() if conf is None else conf
    named = conf.get(NAMED_KEY)
    if named is None:
        named = conf.get(DEPRECATED_NAMED_KEY)
    return dict(named or {})


def cache_config(name: str = "default") -> dict:
    """The settings of cache ``name``: the top level of ``STRATACACHE`` for
    ``"default"``, ``STRATACACHE["NAMED"][name]`` for the others."""
    conf = stratacache_settings()
    if name == "default":
        return {k: v for k, v in conf.items() if k not in (NAMED_KEY, DEPRECATED_NAMED_KEY)}
    named = named_caches_setting(conf)
    if name not in named:
        raise ConfigurationError(
            f"no stratacache named {name!r}: add it to settings.STRATACACHE['{NAMED_KEY}'] "
            f"(known: {', '.join(['default', *named])})"
        )
    return {str(k).upper(): v for k, v in named[name].items()}


def _upper(d: Mapping) -> dict:
    return {str(k).upper(): v for k, v in d.items()}


def tier_from_settings(spec: Any, index: int = 0) -> Any:
    """A tier adapter from one entry of ``STRATACACHE['TIERS']``: ``{"CACHE":
    alias, "ITEM_LIMIT": ..., "REPLICAS": ..., "LEASES": ...}``, ``{"STORAGE":
    alias or dotted path, "OPTIONS": {...}, "PREFIX": ...}``, or an adapter."""
    from django.conf import settings

    if hasattr(spec, "tier_config"):
        return spec
    if isinstance(spec, str):
        spec = {"CACHE": spec}
    if not isinstance(spec, Mapping):
        raise ConfigurationError(
            f"STRATACACHE['TIERS'][{index}] must be a dict such as {{'CACHE': 'memcached'}} "
            f"or {{'STORAGE': 'stratacache'}}, not {spec!r}"
        )
    spec = _upper(spec)
    extra: dict = {}
    if "ITEM_LIMIT" in spec:
        extra["item_limit"] = int(spec["ITEM_LIMIT"])
    if "NAME" in spec:
        extra["name"] = spec["NAME"]
    if "CACHE" in spec:
        alias = spec["CACHE"]
        if alias not in settings.CACHES:
            raise ConfigurationError(
                f"STRATACACHE['TIERS'][{index}] names cache {alias!r}, which is not in settings.CACHES "
                f"(known: {', '.join(settings.CACHES)}): add it to CACHES or fix the name"
            )
        backend = settings.CACHES[alias].get("BACKEND", "")
        if backend.endswith(MEMCACHED_BACKENDS):
            for key, arg in (
                ("REPLICAS", "replicas"),
                ("LEASES", "leases"),
                ("BACKFILL", "backfill"),
                ("TIMEOUT", "timeout"),
                ("CONNECT_TIMEOUT", "connect_timeout"),
            ):
                if key in spec:
                    extra[arg] = spec[key]
            return MemcachedTier.from_django(alias, **extra)
        if backend.endswith(REDIS_BACKENDS):
            for key, arg in (("LEASES", "leases"), ("BACKFILL", "backfill")):
                if key in spec:
                    extra[arg] = spec[key]
            return RedisTier.from_django(alias, **extra)
        return DjangoCacheTier(alias, **extra)
    if "STORAGE" in spec:
        storage = spec["STORAGE"]
        if isinstance(storage, str):
            from django.core.files.storage import storages
            from django.utils.module_loading import import_string

            if storage in getattr(settings, "STORAGES", {}):
                storage = storages[storage]
            else:
                try:
                    storage = import_string(storage)(**(spec.get("OPTIONS") or {}))
                except ImportError as exc:
                    raise ConfigurationError(
                        f"STRATACACHE['TIERS'][{index}]['STORAGE'] is {storage!r}: it is neither a key of "
                        f"settings.STORAGES nor an importable Storage class ({exc})"
                    ) from exc
        kwargs = {"prefix": spec.get("PREFIX", "stratacache")}
        kwargs.update(extra)
        return StorageTier(storage, **kwargs)
    raise ConfigurationError(
        f"STRATACACHE['TIERS'][{index}] has neither 'CACHE' nor 'STORAGE': {dict(spec)!r}"
    )


def signing_keys_from_settings(conf: Mapping) -> Any:
    """``SIGNING_KEYS`` from the settings; by default derived from
    ``SECRET_KEY`` (``False`` turns signing off)."""
    from django.conf import settings

    keys = conf.get("SIGNING_KEYS", None)
    if keys is False:
        return None
    if keys is None:
        secret = getattr(settings, "SECRET_KEY", "")
        if not secret:
            return None
        return signing_keys_from_secret(secret, "django")
    return keys


def build_cache(conf: Mapping, name: str = "default") -> TieredCache:
    """A ``TieredCache`` from a settings dict (see the module docs)."""
    conf = _upper(conf)
    tiers = [tier_from_settings(spec, i) for i, spec in enumerate(conf.get("TIERS") or [])]
    local: Optional[LocalTier]
    local_conf = conf.get("LOCAL", {})
    if local_conf is None or local_conf is False:
        local = None
    else:
        local_conf = _upper(local_conf)
        local = LocalTier(local_conf.get("MAX_ENTRIES"), local_conf.get("MAX_BYTES"), local_conf.get("TTL"))
    leases = conf.get("LEASES", False)
    if isinstance(leases, Mapping):
        leases = LeasePolicy(**{k.lower(): v for k, v in leases.items()})
    return TieredCache(
        tiers,
        local=local,
        signing_keys=signing_keys_from_settings(conf),
        codec=conf.get("CODEC", "pickle"),
        # Unset options are the core's defaults.
        default_ttl=conf.get("DEFAULT_TTL", UNSET),
        stale_ttl=conf.get("STALE_TTL"),
        ttl_jitter=conf.get("TTL_JITTER"),
        xfetch_beta=conf.get("XFETCH_BETA"),
        leases=leases,
        cooldown=conf.get("COOLDOWN"),
        strict=bool(conf.get("STRICT", False)),
        compress_at=conf.get("COMPRESS_AT", UNSET),
        name=name,
        # docs/fleet.md: {"URL": "redis://...", "CHANNEL": "..."} and True/{"MAX_BYTES": ...}
        invalidation=conf.get("INVALIDATION"),
        background_writes=_lower_keys(conf.get("BACKGROUND_WRITES", False)),
    )


def backend_aliases() -> list:
    """The ``CACHES`` aliases served by ``TieredCacheBackend``."""
    from django.conf import settings

    from .backend import BACKEND_PATH

    return [a for a, c in getattr(settings, "CACHES", {}).items() if c.get("BACKEND") == BACKEND_PATH]


def _configured_in_stratacache(name: str) -> bool:
    conf = stratacache_settings()
    if name == "default":
        return bool(conf.get("TIERS")) or "LOCAL" in conf
    return name in named_caches_setting(conf)


def _lower_keys(option: Any) -> Any:
    return {str(k).lower(): v for k, v in option.items()} if isinstance(option, Mapping) else option


def get_cache(name: str = "default") -> TieredCache:
    """The process-wide ``TieredCache`` named ``name``: a ``CACHES`` alias
    served by ``TieredCacheBackend`` (the one place to configure it; its
    ``TieredCache`` is returned, so ``get_or_load`` and ``cache.get`` share
    tiers), else ``settings.STRATACACHE`` (built on first use, rebuilt when
    the settings change in tests)::

        get_cache("default").get_or_load(Key("outline", 3)(course_id), build)
    """
    if name in backend_aliases() and not _configured_in_stratacache(name):
        from django.core.cache import caches

        return caches[name].tiered
    cache = _caches.get(name)
    if cache is None:
        with _lock:
            cache = _caches.get(name)
            if cache is None:
                cache = _caches[name] = build_cache(cache_config(name), name)
    return cache


def reset_caches() -> None:
    """Forgets the built caches (the next ``get_cache`` rebuilds them)."""
    with _lock:
        for cache in _caches.values():
            cache.close()  # its writer thread and invalidation subscriber
        _caches.clear()
    from . import backend

    backend.forget_shared()


def _on_setting_changed(setting: str, **kwargs: Any) -> None:
    if setting in ("STRATACACHE", "CACHES", "STORAGES", "SECRET_KEY"):
        reset_caches()


try:  # pragma: no branch
    from django.core.signals import setting_changed

    setting_changed.connect(_on_setting_changed, dispatch_uid="stratacache.reset_caches")
except ImportError:  # pragma: no cover - Django is optional for the core package
    pass

default_app_config = "stratacache.django.apps.StratacacheConfig"

from . import backend_paths as _backend_paths  # noqa: E402

_backend_paths.install()


def __getattr__(name: str) -> Any:
    # "BACKEND": "stratacache.django.TieredCacheBackend" and the like: a
    # class whose instantiation names the right path.
    if name in _backend_paths.NEAR_NAMES:
        return _backend_paths.wrong_name_class(__name__, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
