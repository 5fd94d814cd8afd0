"""Settings of the course-outline example.

The tiers, fastest first: request → local (in-process) → memcached →
storage (S3) → loader (the slow modulestore). Everything is chosen by
environment variables, so one settings module serves the demo, the tests and
a developer's shell:

``DEMO_MODE``
    ``stratacache`` (default), ``edx`` (edx-django-utils' ``TieredCache``
    over the same memcached, with a storage backing written by hand as
    edx-platform's block structures do) or ``none`` (no caching).
``STRATACACHE_MEMCACHED``
    ``host:port,host:port``: use these memcached servers. Unset: an
    in-process stand-in (:class:`outline_site.backends.EmbeddedCache`), so
    the example needs no server. ``DEMO_SHARED_CACHE=redis`` with
    ``STRATACACHE_REDIS_URL`` uses Redis instead.
``STRATACACHE_S3_ENDPOINT``, ``STRATACACHE_S3_BUCKET`` (and ``AWS_*``)
    Use this S3 server for the storage tier. Unset: a directory under
    ``DEMO_VAR``.

``eval "$(bash scripts/servers.sh env)"`` sets the ``STRATACACHE_*`` variables
for the servers the project's scripts start. Other knobs: ``DEMO_VAR``
(runtime files), ``DEMO_MODULESTORE`` (the SQLite file),
``DEMO_QUERY_DELAY_MS`` (per modulestore query, default 1),
``DEMO_KEY_PREFIX`` (cache key prefix, so runs never share entries),
``DEMO_LOCAL_TTL`` (seconds an entry lives in the local, in-process tier,
default 60; the fault-injection runs lower it so the shared tier keeps
working), ``DEMO_S3_TIMEOUT`` (seconds: connect and read timeout of the S3
client, with one retry; default 5; ``0``: botocore's defaults, 60 s and 4
retries, with which a hung S3 blocks every thread that reads it for
minutes: stratacache cannot skip a tier whose calls never fail),
``DEMO_EMBEDDED_RTT_MS`` / ``DEMO_EMBEDDED_STORAGE_MS`` (simulated latency
of the embedded stand-ins), ``DEMO_SIGNING_SECRET`` and ``DEMO_EDGE_TOKEN``
(shared with the edge worker).

To keep your own settings in a file instead, write a module that starts with
``from outline_site.settings import *`` and point ``DJANGO_SETTINGS_MODULE``
at it.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

env = os.environ.get

DEMO_MODE = env("DEMO_MODE", "stratacache")
if DEMO_MODE not in ("none", "edx", "stratacache"):
    raise RuntimeError(f"DEMO_MODE is {DEMO_MODE!r}: use stratacache, edx or none")

DEMO_VAR = Path(env("DEMO_VAR", str(BASE_DIR / "var")))
DEMO_MODULESTORE = Path(env("DEMO_MODULESTORE", str(DEMO_VAR / "modulestore.sqlite3")))
DEMO_QUERY_DELAY_MS = float(env("DEMO_QUERY_DELAY_MS", "1"))
DEMO_COURSES = int(env("DEMO_COURSES", "200"))
DEMO_KEY_PREFIX = env("DEMO_KEY_PREFIX", "outline")
# Versioned keys never go stale: an entry lives a day, or until evicted.
DEMO_CACHE_TTL = int(env("DEMO_CACHE_TTL", str(24 * 3600)))

MEMCACHED = [s for s in env("STRATACACHE_MEMCACHED", "").split(",") if s]
REDIS_URL = env("STRATACACHE_REDIS_URL", "")
DEMO_SHARED_CACHE = env("DEMO_SHARED_CACHE") or ("memcached" if MEMCACHED else "embedded")
S3_ENDPOINT = env("STRATACACHE_S3_ENDPOINT", "")
S3_BUCKET = env("STRATACACHE_S3_BUCKET", "stratacache-demo")
DEMO_STORAGE = env("DEMO_STORAGE") or ("s3" if S3_ENDPOINT else "filesystem")

SECRET_KEY = env("DJANGO_SECRET_KEY", "outline-example-not-a-secret")
DEBUG = env("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "outline_site.urls"
WSGI_APPLICATION = "outline_site.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The modulestore is its own SQLite file (courses.modulestore); the site
# itself keeps no rows.
DATABASES: dict = {}

INSTALLED_APPS = [
    "stratacache.django",
    "courses",
]

MIDDLEWARE = [
    # One request scope per request: stratacache's request tier...
    "stratacache.django.middleware.RequestCacheMiddleware",
    # ...and edx-django-utils' thread-local request cache (DEMO_MODE=edx).
    "edx_django_utils.cache.middleware.RequestCacheMiddleware",
    "django.middleware.common.CommonMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]

# -- the shared cache tier: memcached, Redis, or the in-process stand-in ------

if DEMO_SHARED_CACHE == "memcached":
    if not MEMCACHED:
        raise RuntimeError("DEMO_SHARED_CACHE=memcached needs STRATACACHE_MEMCACHED=host:port[,host:port]")
    SHARED_CACHE = {
        "BACKEND": "outline_site.backends.CountingPyMemcacheCache",
        "LOCATION": MEMCACHED,
        # Any string key is a valid memcached key (stratacache.safe_key).
        "KEY_FUNCTION": "stratacache.django.safe_key_function",
        # As Open edX configures it: a failed set (an item over 1 MiB) is silent.
        "OPTIONS": {"ignore_exc": True, "no_delay": True, "connect_timeout": 0.5, "timeout": 0.5},
    }
elif DEMO_SHARED_CACHE == "redis":
    if not REDIS_URL:
        raise RuntimeError("DEMO_SHARED_CACHE=redis needs STRATACACHE_REDIS_URL=redis://host:port/db")
    SHARED_CACHE = {"BACKEND": "outline_site.backends.CountingRedisCache", "LOCATION": REDIS_URL}
elif DEMO_SHARED_CACHE == "embedded":
    SHARED_CACHE = {
        "BACKEND": "outline_site.backends.EmbeddedCache",
        "LOCATION": "shared",
        "OPTIONS": {"ROUND_TRIP_MS": float(env("DEMO_EMBEDDED_RTT_MS", "0.25")), "MAX_ENTRIES": 100_000},
    }
else:
    raise RuntimeError(f"DEMO_SHARED_CACHE is {DEMO_SHARED_CACHE!r}: use memcached, redis or embedded")

# -- the storage tier: S3, or a directory standing in for it ------------------

if DEMO_STORAGE == "s3":
    BLOCKS_STORAGE = {
        "BACKEND": "outline_site.backends.CountingS3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": S3_ENDPOINT or None,
            "access_key": env("AWS_ACCESS_KEY_ID"),
            "secret_key": env("AWS_SECRET_ACCESS_KEY"),
            "region_name": env("AWS_DEFAULT_REGION", "us-east-1"),
            "file_overwrite": True,
        },
    }
    _s3_timeout = float(env("DEMO_S3_TIMEOUT") or "5")
    if _s3_timeout > 0:
        from botocore.config import Config as _BotoConfig

        BLOCKS_STORAGE["OPTIONS"]["client_config"] = _BotoConfig(
            connect_timeout=_s3_timeout,
            read_timeout=_s3_timeout,
            retries={"max_attempts": 2, "mode": "standard"},
        )
else:
    BLOCKS_STORAGE = {
        "BACKEND": "outline_site.backends.EmbeddedStorage",
        "OPTIONS": {
            "location": str(DEMO_VAR / "storage"),
            "request_ms": float(env("DEMO_EMBEDDED_STORAGE_MS", "5")),
        },
    }

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "blocks": BLOCKS_STORAGE,
}

# -- stratacache ---------------------------------------------------------------

# The edge worker reads what Django writes: same keys, JSON envelopes signed
# with this shared secret.
DEMO_SIGNING_SECRET = env("DEMO_SIGNING_SECRET", "outline demo: secret shared with the edge worker")
# The edge worker sends it to read raw entries (/edge/entries).
DEMO_EDGE_TOKEN = env("DEMO_EDGE_TOKEN", "outline-demo-edge-token")


def cache_settings(prefix: str) -> tuple:
    """``(CACHES, STRATACACHE)`` with every key (memcached, S3) under ``prefix``,
    so that runs and tests never share entries."""
    caches = {"default": {**SHARED_CACHE, "KEY_PREFIX": prefix, "TIMEOUT": DEMO_CACHE_TTL}}
    shared_tier: dict = {"CACHE": "default", "NAME": "redis" if DEMO_SHARED_CACHE == "redis" else "memcached"}
    if DEMO_SHARED_CACHE == "embedded":
        # Chunk values over memcached's item size, as the real tier would.
        shared_tier["ITEM_LIMIT"] = 1024 * 1024 - 1024
    common = {
        "CODEC": "json",  # the edge worker reads these values too
        "SIGNING_KEYS": [("demo1", DEMO_SIGNING_SECRET)],
        "DEFAULT_TTL": DEMO_CACHE_TTL,
        "LOCAL": {"MAX_ENTRIES": 10_000, "MAX_BYTES": 256 << 20, "TTL": float(env("DEMO_LOCAL_TTL", "60"))},
    }
    stratacache = {
        # Course overviews: request → local → memcached → loader.
        "TIERS": [shared_tier],
        **common,
        "NAMED": {
            # Course outlines: request → local → memcached → storage (S3) → loader.
            "outlines": {
                "TIERS": [
                    shared_tier,
                    {"STORAGE": "blocks", "PREFIX": f"{prefix}/stratacache", "NAME": "storage"},
                ],
                **common,
            },
        },
    }
    return caches, stratacache


CACHES, STRATACACHE = cache_settings(DEMO_KEY_PREFIX)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "stratacache": {"handlers": ["console"], "level": "WARNING"},
        # Server errors with their tracebacks in the server's log (the demo shows it).
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
