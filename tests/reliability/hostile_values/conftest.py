"""Raw access to every remote tier's server, so a test can corrupt what a
tier adapter stored: pymemcache, redis-py and boto3 clients of their own,
and Django's LocMemCache dict. Servers come from scripts/servers.sh (via
scripts/test-reliability.sh, or ``eval "$(bash scripts/servers.sh env)"``).
"""

from __future__ import annotations

import os
import pickle
import time
from typing import Optional

import pytest
from hv_support import RUN

from stratacache.tiers import DjangoCacheTier, MemcachedTier, RedisTier, StorageTier, storage_name


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(
            f"{name} is not set: run through scripts/test-reliability.sh, or start the servers with "
            'STRATACACHE_PORT_BASE=22300 bash scripts/servers.sh start && eval "$(bash scripts/servers.sh env)"'
        )
    return value


def _memcached_servers() -> list:
    return [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in _env("STRATACACHE_MEMCACHED").split(","))]


def _redis_url(db: int) -> str:
    return _env("STRATACACHE_REDIS_URL").rsplit("/", 1)[0] + f"/{db}"


def _django_caches() -> dict:
    return {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "hv-default"},
        "hv_memcached": {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": [f"{h}:{p}" for h, p in _memcached_servers()],
            "KEY_PREFIX": "hvdj",
        },
        "hv_redis": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _redis_url(3)},
        "hv_locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "hv-locmem"},
    }


@pytest.fixture(scope="session")
def django_ready():
    """Django settings with our cache aliases and S3 options (configured here
    if nobody did; overridden for this session otherwise)."""
    import django
    from django.conf import settings
    from django.test.utils import override_settings

    if not settings.configured:
        settings.configure(
            SECRET_KEY="hostile-values", INSTALLED_APPS=[], USE_TZ=True, CACHES=_django_caches()
        )
        django.setup()
    with override_settings(CACHES=_django_caches()):
        yield


class Target:
    """One remote tier adapter and a raw client of its server."""

    name = "?"
    #: the server stores pickles of its own (Django backends): the side
    #: effect test of a native pickle applies
    native_pickle = True

    def tier(self, **kwargs):
        raise NotImplementedError

    def raw_get(self, key: str) -> Optional[bytes]:
        """The bytes the adapter would hand to the core for ``key``."""
        raise NotImplementedError

    def raw_put(self, key: str, data: bytes) -> None:
        """Stores ``data`` so that the adapter hands exactly it to the core."""
        raise NotImplementedError

    def raw_delete(self, key: str) -> None:
        raise NotImplementedError

    def native_pickle_put(self, key: str, evil: bytes) -> None:
        """Stores a pickle in the server's own format for pickled values
        (memcached flag 1, a Django backend's pickle framing, ...)."""
        raise NotImplementedError


class Memcached(Target):
    name = "memcached"

    def __init__(self, item_limit: Optional[int] = None) -> None:
        from pymemcache.client.hash import HashClient

        self.item_limit = item_limit
        self.raw = HashClient(_memcached_servers(), default_noreply=False)

    def tier(self, **kwargs):
        if self.item_limit:
            kwargs["item_limit"] = self.item_limit
        return MemcachedTier(_env("STRATACACHE_MEMCACHED"), **kwargs)

    def raw_get(self, key):
        return self.raw.get(key)

    def raw_put(self, key, data):
        assert self.raw.set(key, data, expire=120, flags=0)

    def raw_delete(self, key):
        self.raw.delete(key)

    def native_pickle_put(self, key, evil):
        assert self.raw.set(key, evil, expire=120, flags=1)  # pymemcache's FLAG_PICKLE


class Redis(Target):
    name = "redis"

    def __init__(self) -> None:
        import redis

        self.raw = redis.Redis.from_url(_redis_url(2))

    def tier(self, **kwargs):
        return RedisTier(_redis_url(2), **kwargs)

    def raw_get(self, key):
        return self.raw.get(key)

    def raw_put(self, key, data):
        self.raw.set(key, data, ex=120)

    def raw_delete(self, key):
        self.raw.delete(key)

    def native_pickle_put(self, key, evil):
        self.raw.set(key, evil, ex=120)


class S3(Target):
    name = "s3"
    prefix = f"hv-{RUN}"

    def __init__(self) -> None:
        import boto3

        self.bucket = _env("STRATACACHE_S3_BUCKET")
        self.raw = boto3.client(
            "s3",
            endpoint_url=_env("STRATACACHE_S3_ENDPOINT"),
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
            region_name="us-east-1",
        )
        try:
            self.raw.create_bucket(Bucket=self.bucket)
        except self.raw.exceptions.BucketAlreadyOwnedByYou:
            pass
        except self.raw.exceptions.BucketAlreadyExists:
            pass
        self._storage = None

    def tier(self, **kwargs):
        from storages.backends.s3 import S3Storage

        if self._storage is None:
            self._storage = S3Storage(
                bucket_name=self.bucket,
                endpoint_url=_env("STRATACACHE_S3_ENDPOINT"),
                access_key=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
                region_name="us-east-1",
                file_overwrite=True,
            )
        kwargs.pop("timeout", None)
        return StorageTier(self._storage, prefix=self.prefix, **kwargs)

    def _name(self, key):
        return storage_name(self.prefix, key)

    def raw_get(self, key):
        try:
            return self.raw.get_object(Bucket=self.bucket, Key=self._name(key))["Body"].read()
        except self.raw.exceptions.NoSuchKey:
            return None

    def raw_put(self, key, data):
        self.raw.put_object(Bucket=self.bucket, Key=self._name(key), Body=data)

    def raw_delete(self, key):
        self.raw.delete_object(Bucket=self.bucket, Key=self._name(key))

    def native_pickle_put(self, key, evil):
        self.raw_put(key, evil)


class DjangoTarget(Target):
    alias = "?"

    def tier(self, **kwargs):
        kwargs.pop("timeout", None)
        return DjangoCacheTier(self.alias, **kwargs)

    def full_key(self, key):
        from django.core.cache import caches

        return caches[self.alias].make_key(key)


class DjangoMemcached(DjangoTarget):
    """Django's PyMemcacheCache: bytes are stored as they are (flag 0),
    anything else pickled (flag 1), by pymemcache's serde."""

    name = "django_pymemcache"
    alias = "hv_memcached"

    def __init__(self) -> None:
        self.mc = Memcached()

    def raw_get(self, key):
        return self.mc.raw_get(self.full_key(key))

    def raw_put(self, key, data):
        self.mc.raw_put(self.full_key(key), data)

    def raw_delete(self, key):
        self.mc.raw_delete(self.full_key(key))

    def native_pickle_put(self, key, evil):
        self.mc.native_pickle_put(self.full_key(key), evil)


class DjangoRedis(DjangoTarget):
    """Django's RedisCache: every value but an int is pickled by Django."""

    name = "django_redis"
    alias = "hv_redis"

    def __init__(self) -> None:
        import redis

        self.raw = redis.Redis.from_url(_redis_url(3))

    def raw_get(self, key):
        data = self.raw.get(self.full_key(key))
        return None if data is None else pickle.loads(data)  # our own bytes, framed by Django

    def raw_put(self, key, data):
        self.raw.set(self.full_key(key), pickle.dumps(data, pickle.HIGHEST_PROTOCOL), ex=120)

    def raw_delete(self, key):
        self.raw.delete(self.full_key(key))

    def native_pickle_put(self, key, evil):
        self.raw.set(self.full_key(key), evil, ex=120)


class DjangoLocMem(DjangoTarget):
    """Django's LocMemCache: a dict of pickles in this process (no one
    outside the process can write it, so there is no native-pickle attack)."""

    name = "django_locmem"
    alias = "hv_locmem"
    native_pickle = False

    @property
    def backend(self):
        from django.core.cache import caches

        return caches[self.alias]

    def raw_get(self, key):
        k = self.full_key(key)
        data = self.backend._cache.get(k)
        return None if data is None else pickle.loads(data)

    def raw_put(self, key, data):
        k = self.full_key(key)
        with self.backend._lock:
            self.backend._cache[k] = pickle.dumps(data, pickle.HIGHEST_PROTOCOL)
            self.backend._expire_info[k] = time.time() + 120

    def raw_delete(self, key):
        k = self.full_key(key)
        with self.backend._lock:
            self.backend._cache.pop(k, None)
            self.backend._expire_info.pop(k, None)


TARGETS = {
    "memcached": Memcached,
    "redis": Redis,
    "s3": S3,
    "django_pymemcache": DjangoMemcached,
    "django_redis": DjangoRedis,
    "django_locmem": DjangoLocMem,
}


@pytest.fixture(scope="session")
def targets(django_ready):
    made: dict = {}

    def get(name: str) -> Target:
        if name not in made:
            made[name] = TARGETS[name]() if name != "memcached_chunked" else Memcached(item_limit=2048)
        return made[name]

    return get


@pytest.fixture
def unpickled(monkeypatch):
    """Every argument ``pickle.loads`` was called with during the test."""
    seen: list = []
    real = pickle.loads

    def spy(data, *args, **kwargs):
        seen.append(bytes(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(pickle, "loads", spy)
    return seen
