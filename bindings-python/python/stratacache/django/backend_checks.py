"""System checks of ``TieredCacheBackend`` aliases (``manage.py check``):
each ``CACHES`` entry served by the backend is built once, and every
problem is reported with the change that fixes it.

::

    $ python manage.py check
    ERRORS:
    ?: (stratacache.E101) CACHES['default']: unknown OPTIONS 'LOCAL_TTL' for
       stratacache.django.backend.TieredCacheBackend (known: TIERS, ...)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from .._errors import ConfigurationError
from ..codecs import get_codec
from .backend import BACKEND_PATH, CLEAR_MODES, build_tiered_cache


def check_backend_paths(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``BACKEND`` paths that look like stratacache's but are not the backend."""
    messages: list[CheckMessage] = []
    for alias, conf in getattr(settings, "CACHES", {}).items():
        backend = str(conf.get("BACKEND", ""))
        top = backend.split(".", 1)[0]
        if top in ("stratacache", "tiercache") and backend != BACKEND_PATH:
            messages.append(
                Error(
                    f"CACHES[{alias!r}]['BACKEND'] is {backend!r}, which is not a Django cache backend",
                    hint=f"Use 'BACKEND': '{BACKEND_PATH}'.",
                    id="stratacache.E100",
                )
            )
    return messages


def check_backend_options(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Builds every ``TieredCacheBackend`` alias from its settings."""
    messages: list[CheckMessage] = []
    for alias, conf in getattr(settings, "CACHES", {}).items():
        if conf.get("BACKEND") != BACKEND_PATH:
            continue
        where = f"CACHES[{alias!r}]"
        options = conf.get("OPTIONS") or {}
        if not isinstance(options, Mapping):
            messages.append(Error(f"{where}['OPTIONS'] must be a dict", id="stratacache.E101"))
            continue
        options = {str(k).upper(): v for k, v in options.items()}
        if not conf.get("LOCATION") and not options.get("TIERS"):
            messages.append(
                Error(
                    f"{where} has no LOCATION and no OPTIONS['TIERS']: it would cache nothing across processes",
                    hint="Set 'LOCATION' to memcached servers (['host:11211']) or a Redis URL "
                    "('redis://host:6379/0').",
                    id="stratacache.E102",
                )
            )
        clear = options.get("CLEAR", "prefix")
        if clear not in CLEAR_MODES:
            messages.append(
                Error(
                    f"{where}['OPTIONS']['CLEAR'] is {clear!r}",
                    hint="Use 'prefix' (this cache's keys), 'flush' (empty the servers) or 'local'.",
                    id="stratacache.E103",
                )
            )
        elif clear == "prefix" and not conf.get("KEY_PREFIX") and not conf.get("KEY_FUNCTION"):
            messages.append(
                Warning(
                    f"{where} has no KEY_PREFIX: cache.clear() deletes every key of the form ':<version>:...' "
                    "on its servers, including other Django caches without a prefix",
                    hint="Set a 'KEY_PREFIX' unique to this cache on shared servers.",
                    id="stratacache.W101",
                )
            )
        local = options.get("LOCAL")
        if local and not isinstance(local, Mapping):
            messages.append(
                Error(
                    f"{where}['OPTIONS']['LOCAL'] must be a dict such as {{'MAX_ENTRIES': 10000, 'TTL': 5}}",
                    id="stratacache.E104",
                )
            )
            continue
        if local:
            ttl = {str(k).upper(): v for k, v in local.items()}.get("TTL", 5)
            if not isinstance(ttl, (int, float)) or ttl <= 0:
                messages.append(
                    Error(
                        f"{where}['OPTIONS']['LOCAL']['TTL'] is {ttl!r}: it must be a positive number of seconds "
                        "(it bounds how long another process's change may go unseen)",
                        id="stratacache.E105",
                    )
                )
                continue
        try:
            codec = get_codec(options.get("CODEC", "pickle"))
        except (TypeError, ValueError) as exc:
            messages.append(Error(f"{where}['OPTIONS']['CODEC']: {exc}", id="stratacache.E106"))
            continue
        if codec.name == "pickle" and options.get("SIGNING_KEYS") is False:
            messages.append(
                Error(
                    f"{where}: values are pickled and stored unsigned: anyone who can write to its servers can "
                    "run code in this app through a forged pickle",
                    hint="Remove 'SIGNING_KEYS': False (keys are then derived from SECRET_KEY), or use "
                    "'CODEC': 'json'.",
                    id="stratacache.E107",
                )
            )
        try:
            built = build_tiered_cache(conf.get("LOCATION"), options, alias)
        except (ConfigurationError, TypeError, ValueError) as exc:
            messages.append(Error(f"{where}: {exc}", id="stratacache.E101"))
            continue
        except Exception as exc:
            messages.append(
                Error(f"{where} cannot be built: {type(exc).__name__}: {exc}", id="stratacache.E108")
            )
            continue
        for tier in built.tiers:
            size_max = getattr(tier, "server_item_size_max", None)
            server_max = size_max() if size_max is not None else None
            if server_max is not None and tier.item_limit > server_max - 1024:
                messages.append(
                    Error(
                        f"{where}: ITEM_LIMIT is {tier.item_limit} bytes but its memcached servers store items of "
                        f"at most {server_max} bytes (item_size_max): larger values would never be cached",
                        hint=f"Set OPTIONS['ITEM_LIMIT'] to at most {server_max - 4096}; larger values are "
                        "chunked automatically.",
                        id="stratacache.E109",
                    )
                )
    return messages
