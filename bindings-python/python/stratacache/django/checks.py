"""System checks: misconfigurations found at startup, each with the change
that fixes it (``python manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from .._errors import ConfigurationError
from ..codecs import get_codec


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from ..tiers import MemcachedTier, StorageTier
    from . import (
        DEPRECATED_NAMED_KEY,
        MEMCACHED_BACKENDS,
        NAMED_KEY,
        named_caches_setting,
        signing_keys_from_settings,
        stratacache_settings,
        tier_from_settings,
    )

    messages: list[CheckMessage] = []
    try:
        conf = stratacache_settings()
    except ConfigurationError as exc:
        return [Error(str(exc), id="stratacache.E001")]
    if not conf.get("TIERS") and not conf.get("LOCAL_ONLY") and not _backend_aliases():
        messages.append(
            Warning(
                "settings.STRATACACHE is missing or has no 'TIERS' (and no CACHES alias uses the "
                "stratacache backend): get_cache() is then a local-only cache, private to each process",
                hint="Add STRATACACHE = {'TIERS': [{'CACHE': 'memcached'}]} (a CACHES alias), or set "
                "'LOCAL_ONLY': True to say that a per-process cache is meant.",
                id="stratacache.W004",
            )
        )
    if DEPRECATED_NAMED_KEY in conf:
        if NAMED_KEY in conf:
            messages.append(
                Error(
                    f"settings.STRATACACHE has both '{NAMED_KEY}' and the deprecated '{DEPRECATED_NAMED_KEY}': "
                    f"only '{NAMED_KEY}' is read",
                    hint=f"Move the caches of STRATACACHE['{DEPRECATED_NAMED_KEY}'] into '{NAMED_KEY}'.",
                    id="stratacache.E009",
                )
            )
        else:
            messages.append(
                Warning(
                    f"settings.STRATACACHE['{DEPRECATED_NAMED_KEY}'] is deprecated: it names stratacache caches, "
                    "not Django's CACHES aliases",
                    hint=f"Rename the key to '{NAMED_KEY}' (same contents).",
                    id="stratacache.W005",
                )
            )
    configs = [("default", {k: v for k, v in conf.items() if k not in (NAMED_KEY, DEPRECATED_NAMED_KEY)})]
    for name, sub in named_caches_setting(conf).items():
        configs.append((name, {str(k).upper(): v for k, v in sub.items()}))
    for name, sub in configs:
        where = "STRATACACHE" if name == "default" else f"STRATACACHE['{NAMED_KEY}'][{name!r}]"
        codec_name = sub.get("CODEC", "pickle")
        try:
            codec = get_codec(codec_name)
        except (TypeError, ValueError) as exc:
            messages.append(Error(f"{where}['CODEC']: {exc}", id="stratacache.E005"))
            codec = None
        shared_tiers = []
        for i, spec in enumerate(sub.get("TIERS") or []):
            try:
                tier = tier_from_settings(spec, i)
            except ConfigurationError as exc:
                hint = None
                if "not in settings.CACHES" in str(exc):
                    hint = "Define the alias in CACHES, or name one of the aliases it lists."
                messages.append(Error(f"{where}: {exc}", hint=hint, id="stratacache.E002"))
                continue
            except Exception as exc:
                messages.append(Error(f"{where}['TIERS'][{i}] cannot be built: {exc}", id="stratacache.E006"))
                continue
            if not isinstance(spec, dict) or "CACHE" in {str(k).upper() for k in spec}:
                alias = (
                    spec if isinstance(spec, str) else {str(k).upper(): v for k, v in spec.items()}["CACHE"]
                )
                backend = settings.CACHES[alias].get("BACKEND", "")
                if not backend.endswith("LocMemCache") and not backend.endswith("DummyCache"):
                    shared_tiers.append(tier.name)
            else:
                shared_tiers.append(tier.name)
            if isinstance(tier, MemcachedTier):
                server_max = tier.server_item_size_max()
                if server_max is not None and tier.item_limit > server_max - 1024:
                    messages.append(
                        Error(
                            f"{where}['TIERS'][{i}]: ITEM_LIMIT is {tier.item_limit} bytes but the memcached "
                            f"servers of {tier.name!r} store items of at most {server_max} bytes (item_size_max, "
                            "less ~1 KiB of item overhead): larger values would be refused and never cached",
                            hint=f"Set 'ITEM_LIMIT' to at most {server_max - 4096}, or start memcached with a "
                            "larger -I; values above the limit are chunked automatically.",
                            id="stratacache.E003",
                        )
                    )
            if isinstance(tier, StorageTier) and not getattr(tier.storage, "file_overwrite", True):
                messages.append(
                    Warning(
                        f"{where}['TIERS'][{i}]: the storage does not overwrite files; stratacache deletes "
                        "before each write, which costs a round trip",
                        hint="Set file_overwrite=True on the storage.",
                        id="stratacache.W003",
                    )
                )
        if (
            codec is not None
            and codec.name == "pickle"
            and shared_tiers
            and signing_keys_from_settings(sub) is None
        ):
            messages.append(
                Error(
                    f"{where}: values are pickled and stored unsigned in shared tiers "
                    f"({', '.join(shared_tiers)}): anyone who can write to them can run code in this app "
                    "through a forged pickle",
                    hint="Remove 'SIGNING_KEYS': False (keys are then derived from SECRET_KEY), set "
                    "'SIGNING_KEYS': [('key-id', '<32 random bytes>')], or use 'CODEC': 'json'.",
                    id="stratacache.E004",
                )
            )
    default = settings.CACHES.get("default", {})
    if default.get("BACKEND", "").endswith(MEMCACHED_BACKENDS) and not default.get("KEY_FUNCTION"):
        messages.append(
            Warning(
                "CACHES['default'] is memcached with Django's key function: keys with spaces, control "
                "characters or over 250 bytes (which edx-django-utils callers pass) raise InvalidCacheKey",
                hint="Add 'KEY_FUNCTION': 'stratacache.django.safe_key_function' to CACHES['default'].",
                id="stratacache.W002",
            )
        )
    return messages


def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    ours = "stratacache.django.middleware.RequestCacheMiddleware"
    edx = "stratacache.django.edx.RequestCacheMiddleware"
    if ours not in middleware and edx not in middleware:
        return [
            Warning(
                "no stratacache request-scope middleware in MIDDLEWARE: request caches then live as long as "
                "the thread or task that made them, and are shared by the requests it serves",
                hint=f"Add '{ours}' near the top of MIDDLEWARE.",
                id="stratacache.W001",
            )
        ]
    messages = []
    force = "stratacache.django.middleware.ForceCacheMissMiddleware"
    auth = "django.contrib.auth.middleware.AuthenticationMiddleware"
    if force in middleware and auth in middleware and middleware.index(force) < middleware.index(auth):
        messages.append(
            Error(
                f"{force} comes before {auth}: it cannot tell staff users, so ?force_cache_miss=true is ignored",
                hint=f"Move '{force}' after '{auth}'.",
                id="stratacache.E007",
            )
        )
    return messages


def _backend_aliases() -> list:
    """The CACHES aliases served by the stratacache backend."""
    from . import backend_aliases

    return backend_aliases()


def backend_tiered_caches() -> dict:
    """``{alias: TieredCache}`` of the CACHES aliases served by
    ``stratacache.django.backend.TieredCacheBackend`` (each backend's
    ``.tiered``): the connection check, the metrics and the test helpers
    cover them next to the ``STRATACACHE`` caches. An alias that cannot be
    built is left out (``check_backend_options`` reports it).

    >>> backend_tiered_caches()  # doctest: +SKIP
    {'default': <TieredCache 'default': request → local → memcached; ...>}
    """
    from django.core.cache import caches

    from ..tiered import TieredCache

    out = {}
    for alias in _backend_aliases():
        try:
            tiered = caches[alias].tiered
        except Exception:  # a misconfigured alias: its own check reports it
            continue
        if isinstance(tiered, TieredCache):
            out[alias] = tiered
    return out


#: The key each tier is asked for by the connection check (never written).
PROBE_KEY = "stratacache-check|v1|probe"


def probe_tiers(names: Any = None) -> list:
    """Asks every remote tier of the configured caches for one key, once:
    ``[(cache, tier, kind, error or None, seconds)]``. What
    ``manage.py stratacache_check`` prints and ``check --deploy`` reports.

    ::

        for cache, tier, kind, error, seconds in probe_tiers():
            print(cache, tier, "OK" if error is None else error)
    """
    import time

    from django.core.cache import caches

    from . import get_cache

    conf = stratacache_settings_safe()
    aliases = _backend_aliases()
    if names is None:
        # The CACHES aliases on the backend first (named as such), then the
        # STRATACACHE caches that are not one of them.
        names = [f"CACHES[{a!r}]" for a in aliases] + ["default", *named_settings(conf)]
    out = []
    probed: list = []
    for name in names:
        label = name
        alias = name[8:-2] if name.startswith("CACHES[") and name.endswith("]") else None
        try:
            if alias is not None:
                cache = caches[alias].tiered
            else:
                cache = get_cache(name)
        except Exception as exc:
            out.append((label, "-", "-", f"cannot be built: {type(exc).__name__}: {exc}", 0.0))
            continue
        if any(cache is c for c in probed):
            continue  # get_cache(name) is a backend alias probed above
        probed.append(cache)
        for tier in cache.tiers:
            start = time.perf_counter()
            try:
                got = tier.get_many([PROBE_KEY])
                if not isinstance(got, (list, tuple)) or len(got) != 1:
                    raise TypeError(f"get_many returned {got!r} for one key")
                error = None
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            out.append((label, tier.name, tier.kind, error, time.perf_counter() - start))
    return out


def named_settings(conf: dict) -> dict:
    """The named caches of a ``STRATACACHE`` dict."""
    from . import named_caches_setting

    return named_caches_setting(conf)


def stratacache_settings_safe() -> dict:
    from . import stratacache_settings

    try:
        return stratacache_settings()
    except ConfigurationError:
        return {}


def check_connections(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``manage.py check --deploy``: every remote tier answers one read."""
    messages: list[CheckMessage] = []
    for cache, tier, kind, error, _seconds in probe_tiers():
        if error is not None:
            messages.append(
                Error(
                    f"stratacache cache {cache!r}, tier {tier!r} ({kind}) does not answer: {error}",
                    hint="Start the server or fix its address in CACHES/STORAGES; until then every read "
                    "skips this tier (manage.py stratacache_check probes again).",
                    id="stratacache.E008",
                )
            )
    return messages
