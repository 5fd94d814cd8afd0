"""stratacache: request, local and remote (memcached, Redis, S3) caching with
one Rust core shared with the edge worker and Rust services.

The pieces::

    from stratacache import RequestCache, LocalCache, TieredCache, Key, cached
    from stratacache.tiers import MemcachedTier, RedisTier, StorageTier

Django: ``stratacache.django`` (settings, middleware, checks, commands) and
``stratacache.django.edx`` (a drop-in edx-django-utils cache API).
"""

from typing import Any as _Any

from . import _core
from ._core import CachedResponse, LocalCache, RequestCache, RequestScope
from ._errors import (
    CachedResponseError,
    CachedResponseMissError,
    ConfigurationError,
    EnvelopeError,
    LoaderError,
    StratacacheError,
    TierError,
)
from .codecs import JSON, PICKLE, RAW, Codec, JsonCodec, PickleCodec, RawCodec
from .decorators import cached, default_cache
from .keys import BuiltKey, Key, normalize_key, plain_key, safe_key
from .scope import current_scope, request_scope
from .tiered import (
    DEFAULT_TTL,
    MISSING,
    LeasePolicy,
    LocalTier,
    ReadResult,
    TieredCache,
    signing_keys_from_secret,
)

__version__ = _core.__version__

__all__ = [
    "DEFAULT_TTL",
    "JSON",
    "MISSING",
    "PICKLE",
    "RAW",
    "BuiltKey",
    "CachedResponse",
    "CachedResponseError",
    "CachedResponseMissError",
    "Codec",
    "ConfigurationError",
    "EnvelopeError",
    "JsonCodec",
    "Key",
    "LeasePolicy",
    "LoaderError",
    "LocalCache",
    "LocalTier",
    "PickleCodec",
    "RawCodec",
    "ReadResult",
    "RequestCache",
    "RequestScope",
    "StratacacheError",
    "TierError",
    "TieredCache",
    "cached",
    "current_scope",
    "default_cache",
    "normalize_key",
    "plain_key",
    "request_scope",
    "safe_key",
    "signing_keys_from_secret",
]


def __getattr__(name: str) -> _Any:
    # "BACKEND": "stratacache.TieredCacheBackend": name the right path.
    if name in ("TieredCacheBackend", "CacheBackend", "Backend", "StratacacheBackend"):
        from .django import backend_paths

        return backend_paths.wrong_name_class(__name__, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
