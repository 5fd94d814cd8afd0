"""Redis passwords (URL, ``password=``, an ACL user, django-redis's
``OPTIONS``) and TLS (``rediss://``, ``ssl_ca_certs``, ``ssl_cert_reqs``)
over real servers started by scripts/servers.sh: ``redis-auth`` (requirepass
and an ACL user), ``redis-tls`` (TLS only, its certificate signed by a CA
made at start), ``redis-mtls`` (the same, asking for a client certificate),
and a three-master cluster with a password (a refused one shows per node
in ``health()``, as a single node's does). Bad settings are a ``ValueError`` at construction; a
password or certificate the other side refuses is a counted failure of the
tier (the loader serves), raised only in strict mode."""

from __future__ import annotations

import asyncio
import os
import time
from unittest import mock

import pytest
from fleet_support import Fleet

from stratacache import TieredCache, TierError
from stratacache.django.backend import build_tiered_cache
from stratacache.tiers import RedisTier


@pytest.fixture(scope="module")
def servers():
    f = Fleet("redis-auth", "redis-tls", "redis-mtls")
    yield f
    f.stop()


def auth_url(servers: Fleet, userinfo: str = "") -> str:
    url = servers.vars["STRATACACHE_REDIS_AUTH_URL"]
    return url.replace("redis://", f"redis://{userinfo}@") if userinfo else url


def round_trip(tier: RedisTier, key: str = "k") -> list:
    tier.set_many([(key, b"v-" + key.encode(), 60_000)])
    return tier.get_many([key])


def test_password_in_the_url_and_no_password_in_names(servers):
    pw = servers.vars["STRATACACHE_REDIS_AUTH_PASSWORD"]
    tier = RedisTier(auth_url(servers, f":{pw}"))
    assert round_trip(tier, "url") == [b"v-url"]
    names = list(tier.health())
    assert names == [auth_url(servers)]
    assert pw not in repr(tier.health())


def test_acl_user_in_the_url_or_as_arguments(servers):
    user = servers.vars["STRATACACHE_REDIS_AUTH_USER"]
    pw = servers.vars["STRATACACHE_REDIS_AUTH_USER_PASSWORD"]
    assert round_trip(RedisTier(auth_url(servers, f"{user}:{pw}")), "acl-url") == [b"v-acl-url"]
    assert round_trip(RedisTier(auth_url(servers), username=user, password=pw), "acl-args") == [b"v-acl-args"]
    assert list(RedisTier(auth_url(servers, f"{user}:{pw}")).health()) == [auth_url(servers, user)]


def test_password_argument_and_the_url_winning(servers):
    pw = servers.vars["STRATACACHE_REDIS_AUTH_PASSWORD"]
    assert round_trip(RedisTier(auth_url(servers), password=pw), "arg") == [b"v-arg"]
    # As redis-py's from_url and django-redis: the URL's own password wins.
    assert round_trip(RedisTier(auth_url(servers, f":{pw}"), password="not-this-one"), "both") == [b"v-both"]


@pytest.mark.parametrize("password", [None, "wrong"])
def test_a_refused_or_missing_password_is_a_counted_failure(servers, password):
    tier = RedisTier(auth_url(servers), password=password, retry_after=0.1)
    cache = TieredCache([tier], local=None, codec="json")
    assert cache.get_or_load("k", lambda: "loaded") == "loaded"  # no exception
    cache.set("other", 1)  # nor here
    assert cache.stats()["tiers"][0]["errors"] >= 1
    (health,) = tier.health().values()
    assert not health["up"]
    # The redis crate's words for WRONGPASS; the server's for NOAUTH.
    assert ("Password authentication failed" if password else "NOAUTH") in health["last_error"], health
    assert "wrong" not in health["last_error"]
    strict = TieredCache(
        [RedisTier(auth_url(servers), password=password)], local=None, codec="json", strict=True
    )
    with pytest.raises(TierError):
        strict.get("k")


def test_a_url_that_does_not_parse_is_a_clear_error_without_the_password():
    with pytest.raises(ValueError, match="redis URL") as info:
        RedisTier("redis://:s3cret@127.0.0.1:notaport/0")
    assert "s3cret" not in str(info.value)


def test_from_django_reads_django_redis_password_options(servers, settings):
    pw = servers.vars["STRATACACHE_REDIS_AUTH_PASSWORD"]
    settings.CACHES = {
        **settings.CACHES,
        "pw": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": auth_url(servers),
            "OPTIONS": {"PASSWORD": pw},
        },
        "pool": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": auth_url(servers),
            "OPTIONS": {
                "CONNECTION_POOL_KWARGS": {
                    "username": servers.vars["STRATACACHE_REDIS_AUTH_USER"],
                    "password": servers.vars["STRATACACHE_REDIS_AUTH_USER_PASSWORD"],
                    "max_connections": 50,  # pool tuning: ignored
                }
            },
        },
        "mtls": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": servers.vars["STRATACACHE_REDIS_MTLS_URL"],
            "OPTIONS": {
                "CONNECTION_POOL_KWARGS": {
                    "ssl_ca_certs": servers.vars["STRATACACHE_REDIS_TLS_CA"],
                    "ssl_certfile": servers.vars["STRATACACHE_REDIS_TLS_CLIENT_CERT"],
                    "ssl_keyfile": servers.vars["STRATACACHE_REDIS_TLS_CLIENT_KEY"],
                }
            },
        },
    }
    assert round_trip(RedisTier.from_django("pw"), "dj") == [b"v-dj"]
    assert round_trip(RedisTier.from_django("pool"), "dj-pool") == [b"v-dj-pool"]
    assert round_trip(RedisTier.from_django("mtls"), "dj-mtls") == [b"v-dj-mtls"]


def test_backend_location_with_a_password_sync_and_async(servers):
    pw = servers.vars["STRATACACHE_REDIS_AUTH_PASSWORD"]
    cache = build_tiered_cache(
        auth_url(servers), {"PASSWORD": pw, "CODEC": "json", "SIGNING_KEYS": False}, "auth-backend"
    )
    cache.set("page", {"a": 1})
    assert cache.get("page") == {"a": 1}
    assert cache.stats()["tiers"][0]["errors"] == 0
    (tier,) = cache.tiers

    async def async_round_trip():  # through redis-py (the backend's async path)
        await tier.aset_many([("async", b"x", 60_000)])
        return await tier.aget_many(["async"])

    assert asyncio.run(async_round_trip()) == [b"x"]
    with pytest.raises(ValueError, match="for a Redis LOCATION"):
        build_tiered_cache(["127.0.0.1:11211"], {"PASSWORD": pw}, "memcached-pw")


def test_tls_with_the_test_ca(servers):
    url, ca = servers.vars["STRATACACHE_REDIS_TLS_URL"], servers.vars["STRATACACHE_REDIS_TLS_CA"]
    tier = RedisTier(url, ssl_ca_certs=ca)
    assert round_trip(tier, "tls") == [b"v-tls"]
    assert tier.server_stats()["redis_version"]
    # The certificate names localhost too.
    assert RedisTier(url.replace("127.0.0.1", "localhost"), ssl_ca_certs=ca).get_many(["tls"]) == [b"v-tls"]

    async def async_read():  # redis-py with the same options
        from stratacache.django.aio import AsyncRedisTier

        return await AsyncRedisTier(url, ssl_ca_certs=ca).aget_many(["tls"])

    assert asyncio.run(async_read()) == [b"v-tls"]


def test_tls_insecure_accepts_an_unknown_ca(servers):
    url = servers.vars["STRATACACHE_REDIS_TLS_URL"]
    assert round_trip(RedisTier(url, ssl_cert_reqs="none"), "insecure") == [b"v-insecure"]
    import ssl

    assert RedisTier(url, ssl_cert_reqs=ssl.CERT_NONE).get_many(["insecure"]) == [b"v-insecure"]


def test_tls_with_an_unknown_ca_is_a_counted_failure(servers):
    tier = RedisTier(servers.vars["STRATACACHE_REDIS_TLS_URL"])  # the system's roots
    cache = TieredCache([tier], local=None, codec="json")
    assert cache.get_or_load("k", lambda: "loaded") == "loaded"
    assert cache.stats()["tiers"][0]["errors"] >= 1
    (health,) = tier.health().values()
    assert "certificate" in health["last_error"].lower(), health


def test_plain_redis_refuses_to_speak_to_a_tls_port(servers):
    plain = servers.vars["STRATACACHE_REDIS_TLS_URL"].replace("rediss://", "redis://")
    tier = RedisTier(plain, timeout=0.3)
    cache = TieredCache([tier], local=None, codec="json")
    assert cache.get_or_load("k", lambda: "loaded") == "loaded"
    assert cache.stats()["tiers"][0]["errors"] >= 1


def test_bad_tls_settings_are_clear_errors(servers, tmp_path):
    url, ca = servers.vars["STRATACACHE_REDIS_TLS_URL"], servers.vars["STRATACACHE_REDIS_TLS_CA"]
    with pytest.raises(ValueError, match="rediss://"):
        RedisTier("redis://127.0.0.1:6379/0", ssl_ca_certs=ca)
    with pytest.raises(ValueError, match="cannot be read"):
        RedisTier(url, ssl_ca_certs=str(tmp_path / "missing.pem"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
    with pytest.raises(ValueError, match="certificate"):
        RedisTier(url, ssl_ca_certs=str(garbage))
    with pytest.raises(ValueError, match="ssl_cert_reqs"):
        RedisTier(url, ssl_cert_reqs="sometimes")
    with pytest.raises(ValueError, match="rediss://"):
        RedisTier("redis://mymaster/0", sentinels=[("127.0.0.1", 1)], ssl_ca_certs=ca)


@pytest.fixture(scope="module")
def cluster():
    with mock.patch.dict(os.environ, {"STRATACACHE_REDIS_PASSWORD": "cluster-pw"}):
        f = Fleet("redis-cluster")
    yield f
    f.stop()


def test_a_cluster_with_a_password(cluster):
    keys = [f"c{i}" for i in range(30)]  # across the three masters' slots
    tier = RedisTier(cluster.redis_cluster, cluster=True, password="cluster-pw")
    tier.set_many([(k, k.encode(), 60_000) for k in keys])
    assert tier.get_many(keys) == [k.encode() for k in keys]
    assert len(tier.health()) == 3
    in_url = RedisTier(
        [u.replace("redis://", "redis://:cluster-pw@") for u in cluster.redis_cluster], cluster=True
    )
    assert in_url.get_many(keys[:5]) == [k.encode() for k in keys[:5]]
    # A refused password: every key fails over to the loader, counted.
    cache = TieredCache(
        [RedisTier(cluster.redis_cluster, cluster=True, password="wrong")], local=None, codec="json"
    )
    assert cache.get_or_load("k", lambda: "loaded") == "loaded"
    assert cache.stats()["tiers"][0]["errors"] >= 1


CLUSTER_KEYS = [f"ops:{i}" for i in range(10)]


@pytest.mark.parametrize("password", ["wrong-pw", None])
def test_a_refused_cluster_password_shows_per_node_in_health(cluster, password):
    urls = cluster.redis_cluster
    tier = RedisTier(urls, cluster=True, password=password, retry_after=60)
    assert tier.health() == {}  # nothing tried yet
    cache = TieredCache([tier], local=None, codec="json")
    assert cache.get_many_or_load(CLUSTER_KEYS[:10], lambda ks: {k: 0 for k in ks}) == {
        k: 0 for k in CLUSTER_KEYS[:10]
    }
    assert cache.stats()["tiers"][0]["errors"] >= 1
    health = tier.health()
    # Each seed node, named as the cluster names its masters (host:port).
    assert sorted(health) == sorted(u.removeprefix("redis://") for u in urls), health
    for name, h in health.items():
        assert not h["up"], h
        # The read's 10 keys (the slots' owners are unknown: each seed counts
        # them), and the loaded values' write-back.
        assert h["failures"] == 1 and h["failed_keys"] == 20, h
        # The redis crate's words for WRONGPASS; the server's for NOAUTH.
        want = "Password authentication failed" if password else "NOAUTH"
        assert want in h["last_error"] and name in h["last_error"], h
        assert "wrong-pw" not in h["last_error"] and "cluster-pw" not in h["last_error"]
    # While every seed is down, batches fail at once (no connection tried,
    # so no new failure), their keys counted, until a probe is due.
    values, failed = tier.get_many_outcome(CLUSTER_KEYS[:5])
    assert values == [None] * 5 and list(failed) == CLUSTER_KEYS[:5]
    after = tier.health()
    assert all(h["failures"] == 1 and h["failed_keys"] == 25 for h in after.values()), after
    assert "wrong-pw" not in repr(after) and "cluster-pw" not in repr(after)
    strict = TieredCache(
        [RedisTier(urls, cluster=True, password=password)], local=None, codec="json", strict=True
    )
    with pytest.raises(TierError):
        strict.get("k")


def test_a_refused_cluster_password_is_probed_again_after_retry_after(cluster):
    urls = cluster.redis_cluster
    tier = RedisTier(urls, cluster=True, password="wrong-pw", retry_after=0.2)
    tier.get_many_outcome(CLUSTER_KEYS[:3])
    time.sleep(0.25)
    tier.get_many_outcome(CLUSTER_KEYS[:3])  # the probe: refused again
    assert all(h["failures"] == 2 and not h["up"] for h in tier.health().values()), tier.health()


def test_tls_checks_the_host_name_unless_told_not_to(servers):
    ca = servers.vars["STRATACACHE_REDIS_TLS_CA"]
    # The server also listens on 127.0.0.2, which its certificate does not name.
    other_name = servers.vars["STRATACACHE_REDIS_TLS_URL"].replace("127.0.0.1", "127.0.0.2")
    tier = RedisTier(other_name, ssl_ca_certs=ca)
    cache = TieredCache([tier], local=None, codec="json")
    assert cache.get_or_load("k", lambda: "loaded") == "loaded"
    assert cache.stats()["tiers"][0]["errors"] >= 1
    (health,) = tier.health().values()
    assert "certificate" in health["last_error"].lower() or "name" in health["last_error"].lower(), health
    assert round_trip(RedisTier(other_name, ssl_ca_certs=ca, ssl_check_hostname=False), "any-name") == [
        b"v-any-name"
    ]


def test_a_client_certificate_for_a_server_that_asks(servers):
    url, ca = servers.vars["STRATACACHE_REDIS_MTLS_URL"], servers.vars["STRATACACHE_REDIS_TLS_CA"]
    cert, key = (
        servers.vars["STRATACACHE_REDIS_TLS_CLIENT_CERT"],
        servers.vars["STRATACACHE_REDIS_TLS_CLIENT_KEY"],
    )
    tier = RedisTier(url, ssl_ca_certs=ca, ssl_certfile=cert, ssl_keyfile=key)
    assert round_trip(tier, "mtls") == [b"v-mtls"]

    async def async_read():  # redis-py with the same options
        from stratacache.django.aio import AsyncRedisTier

        return await AsyncRedisTier(url, ssl_ca_certs=ca, ssl_certfile=cert, ssl_keyfile=key).aget_many(
            ["mtls"]
        )

    assert asyncio.run(async_read()) == [b"v-mtls"]
    # Without one, the server hangs up: a counted failure.
    cache = TieredCache([RedisTier(url, ssl_ca_certs=ca)], local=None, codec="json")
    assert cache.get_or_load("k", lambda: "loaded") == "loaded"
    assert cache.stats()["tiers"][0]["errors"] >= 1


def test_bad_client_certificate_settings_are_clear_errors(servers, tmp_path):
    url, key = servers.vars["STRATACACHE_REDIS_MTLS_URL"], servers.vars["STRATACACHE_REDIS_TLS_CLIENT_KEY"]
    with pytest.raises(ValueError, match="needs ssl_certfile"):
        RedisTier(url, ssl_keyfile=key)
    not_a_key = tmp_path / "key.pem"
    not_a_key.write_text("no key here\n")
    with pytest.raises(ValueError, match="key"):
        RedisTier(
            url, ssl_certfile=servers.vars["STRATACACHE_REDIS_TLS_CLIENT_CERT"], ssl_keyfile=str(not_a_key)
        )
