"""Django settings of the test suite: real memcached (two instances behind one
alias), Redis and an S3-compatible server, as started by scripts/servers.sh
(scripts/test-python.sh exports their addresses)."""

import os

REQUIRED = (
    "STRATACACHE_MEMCACHED",
    "STRATACACHE_REDIS_URL",
    "STRATACACHE_S3_ENDPOINT",
    "STRATACACHE_S3_BUCKET",
)
missing = [name for name in REQUIRED if not os.environ.get(name)]
if missing:
    raise RuntimeError(
        f"{', '.join(missing)} not set: run the suite with `bash scripts/test-python.sh`, or start the "
        'servers with `bash scripts/servers.sh start` and `eval "$(bash scripts/servers.sh env)"`'
    )

MEMCACHED = os.environ["STRATACACHE_MEMCACHED"].split(",")
REDIS_URL = os.environ["STRATACACHE_REDIS_URL"]
S3_ENDPOINT = os.environ["STRATACACHE_S3_ENDPOINT"]
S3_BUCKET = os.environ["STRATACACHE_S3_BUCKET"]

SECRET_KEY = "stratacache-tests-not-a-secret"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "urls"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "stratacache.django",
    "django.contrib.staticfiles",
    "debug_toolbar",
    "waffle",
]
STATIC_URL = "/static/"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
# The Debug Toolbar is only in the MIDDLEWARE of the panel test (test_debug_toolbar_panel.py).
DEBUG_TOOLBAR_CONFIG = {"SHOW_TOOLBAR_CALLBACK": lambda request: True, "IS_RUNNING_TESTS": False}
DEBUG_TOOLBAR_PANELS = ["stratacache.django.panels.StratacachePanel"]
MIDDLEWARE = [
    "stratacache.django.middleware.RequestCacheMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "stratacache.django.middleware.ForceCacheMissMiddleware",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

_memcached = {
    "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
    "LOCATION": MEMCACHED,
    "KEY_FUNCTION": "stratacache.django.safe_key_function",
    "OPTIONS": {"connect_timeout": 0.5, "timeout": 1.0},
}
CACHES = {
    "default": dict(_memcached),
    "memcached": dict(_memcached),
    "redis": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL},
    "locmem": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "stratacache-tests",
    },
}
S3_OPTIONS = {
    "bucket_name": S3_BUCKET,
    "endpoint_url": S3_ENDPOINT,
    "access_key": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
    "secret_key": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    "region_name": "us-east-1",
    "file_overwrite": True,
}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "stratacache": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": S3_OPTIONS},
}
STRATACACHE = {
    "TIERS": [
        {"CACHE": "memcached"},
        {"CACHE": "redis"},
        {"STORAGE": "stratacache", "PREFIX": "blocks"},
    ],
    "DEFAULT_TTL": 300,
    "COOLDOWN": (3, 0.2),
    "NAMED": {
        "local_only": {"TIERS": [], "LOCAL": {"MAX_ENTRIES": 100}},
    },
}
