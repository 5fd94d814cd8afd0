"""Redis Sentinel with passwords and reads from replicas, over real
processes started by scripts/servers.sh (`sentinel`: a primary, its replica
and three sentinels) with STRATACACHE_REDIS_PASSWORD (the data nodes) and
STRATACACHE_SENTINEL_PASSWORD (the sentinels) set: django-redis's
``OPTIONS["PASSWORD"]`` and ``SENTINEL_KWARGS``. With ``read_from_replicas``
reads go to the replica the sentinels list, writes to the primary, and when
the replica dies its reads go to the primary. The same topology on TLS
only (STRATACACHE_SENTINEL_TLS): ``rediss://<service>/<db>`` and
``SENTINEL_KWARGS={"ssl": True}``."""

from __future__ import annotations

import os
import time
from unittest import mock

import pytest
from fleet_support import Fleet

from stratacache import TieredCache
from stratacache.tiers import RedisTier

SERVICE = "stratacache"
DATA_PW = "data-pw"
SENTINEL_PW = "sentinel-pw"


@pytest.fixture(scope="module")
def fleet():
    with mock.patch.dict(
        os.environ, {"STRATACACHE_REDIS_PASSWORD": DATA_PW, "STRATACACHE_SENTINEL_PASSWORD": SENTINEL_PW}
    ):
        f = Fleet("sentinel")
    yield f
    f.stop()


def tier(fleet: Fleet, **kwargs) -> RedisTier:
    kwargs.setdefault("password", DATA_PW)
    kwargs.setdefault("sentinel_kwargs", {"password": SENTINEL_PW})
    return RedisTier(f"redis://{SERVICE}/0", sentinels=fleet.sentinels, retry_after=0.2, **kwargs)


def mget_calls(fleet: Fleet, port: int) -> int:
    """How many MGETs the server at ``port`` has run (INFO commandstats)."""
    stat = fleet.info(port, "commandstats", password=DATA_PW).get("cmdstat_mget", "calls=0")
    return int(stat.split("calls=", 1)[1].split(",", 1)[0])


def test_both_passwords_reach_the_primary(fleet):
    t = tier(fleet)
    t.set_many([("k", b"v", 60_000)])
    assert t.get_many(["k"]) == [b"v"]
    assert list(t.health()) == [f"redis://127.0.0.1:{fleet.base + 10}/0"]
    # The URL's own password, as django-redis's LOCATION may carry it.
    url_pw = RedisTier(
        f"redis://:{DATA_PW}@{SERVICE}/0",
        sentinels=fleet.sentinels,
        sentinel_kwargs={"password": SENTINEL_PW},
    )
    assert url_pw.get_many(["k"]) == [b"v"]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"sentinel_kwargs": {"password": "wrong"}}, "Password authentication failed"),
        ({"sentinel_kwargs": None}, "NOAUTH"),
        ({"password": "wrong"}, "Password authentication failed"),
    ],
)
def test_a_refused_password_is_a_counted_failure(fleet, kwargs, words):
    t = tier(fleet, **kwargs)
    cache = TieredCache([t], local=None, codec="json")
    assert cache.get_or_load("k", lambda: "loaded") == "loaded"  # no exception
    assert cache.stats()["tiers"][0]["errors"] >= 1
    errors = " ".join(h["last_error"] or "" for h in t.health().values())
    assert words in errors, t.health()
    assert "wrong" not in errors


def test_sentinel_kwargs_beyond_credentials_are_refused(fleet):
    with pytest.raises(ValueError, match="retry_on_timeout"):
        tier(fleet, sentinel_kwargs={"password": SENTINEL_PW, "retry_on_timeout": True})
    assert tier(fleet, sentinel_kwargs={"password": SENTINEL_PW, "socket_timeout": 1}).get_many(["k"]) == [
        b"v"
    ]


def test_from_django_with_django_redis_sentinel_options(fleet, settings):
    settings.CACHES = {
        **settings.CACHES,
        "sentinel-auth": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://{SERVICE}/0",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.SentinelClient",
                "SENTINELS": fleet.sentinels,
                "SENTINEL_KWARGS": {"password": SENTINEL_PW},
                "PASSWORD": DATA_PW,
            },
        },
        "sentinel-primary-only": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://{SERVICE}/0?is_master=1",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.SentinelClient",
                "SENTINELS": fleet.sentinels,
                "SENTINEL_KWARGS": {"password": SENTINEL_PW},
                "PASSWORD": DATA_PW,
            },
        },
    }
    t = RedisTier.from_django("sentinel-auth")
    t.set_many([("dj", b"1", 60_000)])
    fleet.replicated(password=DATA_PW)
    assert t.get_many(["dj"]) == [b"1"]
    # django-redis's SentinelClient reads from the replicas: so does the tier.
    assert f"redis://127.0.0.1:{fleet.base + 11}/0" in t.health()
    primary_only = RedisTier.from_django("sentinel-primary-only")
    assert primary_only.get_many(["dj"]) == [b"1"]
    assert list(primary_only.health()) == [f"redis://127.0.0.1:{fleet.base + 10}/0"]


def test_reads_go_to_the_replica_and_fall_back_to_the_primary(fleet):
    primary_port, replica_port = fleet.base + 10, fleet.base + 11
    keys = [f"r{i}" for i in range(20)]
    plain = tier(fleet)
    plain.set_many([(k, k.encode(), 60_000) for k in keys])
    fleet.replicated(password=DATA_PW)

    # Without read_from_replicas: the primary only.
    before = mget_calls(fleet, replica_port)
    for _ in range(10):
        assert plain.get_many(keys) == [k.encode() for k in keys]
    assert mget_calls(fleet, replica_port) == before

    replicas = tier(fleet, read_from_replicas=True)
    cache = TieredCache([replicas], local=None, codec="json", name="replica-reads")
    for k in keys:
        cache.set(k, k)
    fleet.replicated(password=DATA_PW)
    on_primary, on_replica = mget_calls(fleet, primary_port), mget_calls(fleet, replica_port)
    for _ in range(10):
        assert cache.get_many(keys) == {k: k for k in keys}
    assert mget_calls(fleet, replica_port) - on_replica == 10
    assert mget_calls(fleet, primary_port) == on_primary
    replica = f"redis://127.0.0.1:{replica_port}/0"
    assert replica in replicas.health()

    # The replica dies: every read is still served (from the primary), no
    # exception, and the tier's keys never fail over to the loader.
    fleet.kill("redis-sr")
    on_primary = mget_calls(fleet, primary_port)
    loads = []
    for _ in range(20):
        got = cache.get_many_or_load(keys, lambda missing: loads.extend(missing) or {k: "" for k in missing})
        assert got == {k: k for k in keys}
        time.sleep(0.05)
    assert loads == []
    assert mget_calls(fleet, primary_port) - on_primary == 20
    health = replicas.health()
    assert replica not in health or not health[replica]["up"], health


@pytest.fixture(scope="module")
def tls_fleet():
    with mock.patch.dict(
        os.environ,
        {
            "STRATACACHE_REDIS_PASSWORD": DATA_PW,
            "STRATACACHE_SENTINEL_PASSWORD": SENTINEL_PW,
            "STRATACACHE_SENTINEL_TLS": "1",
        },
    ):
        f = Fleet("sentinel")
    yield f
    f.stop()


def test_sentinel_and_its_nodes_over_tls(tls_fleet):
    ca = tls_fleet.vars["STRATACACHE_REDIS_TLS_CA"]
    t = RedisTier(
        f"rediss://{SERVICE}/0",
        sentinels=tls_fleet.sentinels,
        password=DATA_PW,
        sentinel_kwargs={"password": SENTINEL_PW, "ssl": True},
        ssl_ca_certs=ca,
        read_from_replicas=True,
    )
    t.set_many([("tls", b"1", 60_000)])
    tls_fleet.replicated("--tls", "--cacert", ca, password=DATA_PW)
    assert t.get_many(["tls"]) == [b"1"]
    base = tls_fleet.base
    assert set(t.health()) == {f"rediss://127.0.0.1:{base + 10}/0", f"rediss://127.0.0.1:{base + 11}/0"}
    assert all(h["up"] for h in t.health().values())
    # Plain TCP to the TLS sentinels: no primary, counted, no exception.
    plain = RedisTier(
        f"rediss://{SERVICE}/0",
        sentinels=tls_fleet.sentinels,
        password=DATA_PW,
        sentinel_kwargs={"password": SENTINEL_PW},
        ssl_ca_certs=ca,
        timeout=0.3,
    )
    cache = TieredCache([plain], local=None, codec="json")
    assert cache.get_or_load("k", lambda: "loaded") == "loaded"
    assert cache.stats()["tiers"][0]["errors"] >= 1
    # TLS options with neither the nodes nor the sentinels on TLS: a clear error.
    with pytest.raises(ValueError, match="rediss://"):
        RedisTier(f"redis://{SERVICE}/0", sentinels=tls_fleet.sentinels, ssl_ca_certs=ca)
