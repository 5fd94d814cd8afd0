"""``stratacache.django.backend.TieredCacheBackend`` over the real servers:
Django's own cache tests, sessions, ``cache_page``, ``{% cache %}``, two
aliases over the same servers, a 3 MiB value across processes, atomic
``add``/``incr``, ``clear()`` by prefix, async methods, wrong ``BACKEND``
paths and ``manage.py check``."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory, override_settings

from stratacache.django.backend import BACKEND_PATH
from stratacache.tiers import MemcachedTier, RedisTier

HERE = Path(__file__).resolve().parent
MEMCACHED = os.environ.get("STRATACACHE_MEMCACHED", "").split(",")
REDIS_URL = os.environ.get("STRATACACHE_REDIS_URL", "")


def backend(location, **extra):
    return {"BACKEND": BACKEND_PATH, "LOCATION": location, **extra}


def caches_with(**aliases):
    from django.conf import settings

    return override_settings(CACHES={**settings.CACHES, **aliases})


@pytest.fixture
def flushed():
    MemcachedTier(MEMCACHED).clear()
    RedisTier(REDIS_URL).clear()


# -- Django's own BaseCacheTests ---------------------------------------------


@pytest.mark.parametrize("server", ["memcached", "redis"])
def test_django_base_cache_tests_pass(server):
    """Django's BaseCacheTests (tests/cache/tests.py of its sdist) against
    the backend; the few that conflict with a stratacache guarantee are
    skipped in django_cache_suite.SKIPPED (see docs/django-backend.md)."""
    run = subprocess.run(
        [sys.executable, str(HERE / "django_cache_suite.py"), server],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=900,
    )
    tail = (run.stdout + run.stderr)[-4000:]
    assert run.returncode == 0, tail
    assert " 0 failures, 0 errors" in run.stdout, tail


# -- integrations ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ["cache", "cached_db"])
def test_sessions(engine, flushed):
    from importlib import import_module

    with (
        caches_with(strata=backend(MEMCACHED, KEY_PREFIX="sess")),
        override_settings(
            SESSION_ENGINE=f"django.contrib.sessions.backends.{engine}", SESSION_CACHE_ALIAS="strata"
        ),
    ):
        store_cls = import_module(f"django.contrib.sessions.backends.{engine}").SessionStore
        session = store_cls()
        session["user"] = 7
        session["cart"] = [1, 2, None]
        session.save()
        again = store_cls(session.session_key)
        assert again["user"] == 7 and again["cart"] == [1, 2, None]
        assert caches["strata"].has_key(again.cache_key)
        again.delete()
        assert store_cls(session.session_key).get("user") is None


def test_cache_page(flushed):
    from django.http import HttpResponse
    from django.views.decorators.cache import cache_page

    calls = []

    @cache_page(60, cache="strata", key_prefix="pages")
    def view(request):
        calls.append(1)
        return HttpResponse(f"rendered {len(calls)}")

    with caches_with(strata=backend(REDIS_URL, KEY_PREFIX="pages")):
        first = view(RequestFactory().get("/outline"))
        second = view(RequestFactory().get("/outline"))
    assert first.content == second.content == b"rendered 1"
    assert len(calls) == 1


def test_template_fragment_cache(flushed):
    from django.template import Context, Engine

    template = Engine(libraries={"cache": "django.templatetags.cache"}).from_string(
        "{% load cache %}{% cache 60 sidebar using='strata' %}n={{ n }}{% endcache %}"
    )
    with caches_with(strata=backend(MEMCACHED, KEY_PREFIX="frag")):
        assert template.render(Context({"n": 1})) == "n=1"
        assert template.render(Context({"n": 2})) == "n=1"  # served from the cache


def test_two_aliases_local_tier_staleness_bound(flushed):
    """Two aliases over the same servers stand for two processes: a local
    tier serves the old value at most its TTL after another process's set."""
    # Aliases with identical settings share one TieredCache in a process;
    # these differ (MAX_ENTRIES), so each has its own local tier.
    with caches_with(
        a=backend(MEMCACHED, KEY_PREFIX="two", OPTIONS={"LOCAL": {"MAX_ENTRIES": 100, "TTL": 1}}),
        b=backend(MEMCACHED, KEY_PREFIX="two", OPTIONS={"LOCAL": {"MAX_ENTRIES": 101, "TTL": 1}}),
    ):
        a, b = caches["a"], caches["b"]
        a.set("flag", "old")
        assert b.get("flag") == "old"  # now in b's local tier
        a.set("flag", "new")
        assert a.get("flag") == "new"  # the writer sees its own write
        assert b.get("flag") == "old"  # b: stale, within the bound
        time.sleep(1.2)
        assert b.get("flag") == "new"  # past the local TTL: fresh


def test_two_aliases_with_invalidation_drop_stale_local_entries(flushed):
    """OPTIONS['INVALIDATION']: a set or delete through one alias drops the
    key from the other's local tier, long before the local TTL (60 s)."""
    channel = {"URL": REDIS_URL, "CHANNEL": "backend-invalidation-test"}
    with caches_with(
        a=backend(
            MEMCACHED,
            KEY_PREFIX="inv",
            OPTIONS={"LOCAL": {"MAX_ENTRIES": 100, "TTL": 60}, "INVALIDATION": channel},
        ),
        b=backend(
            MEMCACHED,
            KEY_PREFIX="inv",
            OPTIONS={"LOCAL": {"MAX_ENTRIES": 101, "TTL": 60}, "INVALIDATION": channel},
        ),
    ):
        a, b = caches["a"], caches["b"]
        a.set("flag", "old")
        assert b.get("flag") == "old"  # now in b's local tier
        time.sleep(0.3)  # both subscribers are listening
        a.set_many({"flag": "new"})
        deadline = time.monotonic() + 5
        while b.get("flag") != "new" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert b.get("flag") == "new"
        a.delete_many(["flag"])
        deadline = time.monotonic() + 5
        while b.get("flag", "gone") != "gone" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert b.get("flag", "gone") == "gone"
        assert b.tiered.stats()["invalidation"]["received"] >= 2


def test_two_aliases_without_local_tier_see_each_other_at_once(flushed):
    with caches_with(a=backend(REDIS_URL, KEY_PREFIX="two"), b=backend(REDIS_URL, KEY_PREFIX="two")):
        a, b = caches["a"], caches["b"]
        a.set("flag", "old")
        assert b.get("flag") == "old"
        a.set("flag", "new")
        assert b.get("flag") == "new"
        a.delete("flag")
        assert b.get("flag", "gone") == "gone"


CHILD = r"""
import hashlib, json, os, sys
import django
from django.conf import settings
conf = json.loads(os.environ["CHILD_CACHES"])
settings.configure(SECRET_KEY="stratacache-tests-not-a-secret", CACHES=conf["CACHES"], STORAGES=conf["STORAGES"],
                   INSTALLED_APPS=["stratacache.django"])
django.setup()
from django.core.cache import caches
cache = caches["blocks"]
value = cache.get("block_structure:course-v1:edX+Big+2025")
stats = cache.stats()
print(json.dumps({
    "digest": None if value is None else hashlib.sha256(value).hexdigest(),
    "tier_hits": [t["hits"] for t in stats["tiers"]],
}))
"""


def _child(conf):
    env = {**os.environ, "CHILD_CACHES": json.dumps(conf)}
    run = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_3mib_value_served_from_memcached_then_storage_in_new_processes(tmp_path, flushed):
    """background/000: a block structure over memcached's 1 MiB item size,
    set through cache.set, is read back whole in another process; after
    memcached is flushed, from the storage tier."""
    from django.conf import settings

    storages = {
        **settings.STORAGES,
        "blocks": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    caches_conf = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "blocks": backend(
            MEMCACHED,
            KEY_PREFIX="bs",
            OPTIONS={"TIERS_AFTER": [{"STORAGE": "blocks", "PREFIX": "blocks"}]},
        ),
    }
    value = os.urandom(3 * 1024 * 1024)
    with override_settings(CACHES=caches_conf, STORAGES=storages):
        caches["blocks"].set("block_structure:course-v1:edX+Big+2025", value, None)
    child_conf = {"CACHES": caches_conf, "STORAGES": {"blocks": storages["blocks"]}}
    digest = hashlib.sha256(value).hexdigest()

    first = _child(child_conf)
    assert first["digest"] == digest
    assert first["tier_hits"][0] == 1 and first["tier_hits"][1] == 0  # memcached

    MemcachedTier(MEMCACHED).clear()
    second = _child(child_conf)
    assert second["digest"] == digest
    assert second["tier_hits"][1] == 1  # the storage tier


# -- atomicity and clear() ---------------------------------------------------


@pytest.mark.parametrize("server", ["memcached", "redis"])
def test_add_and_incr_are_atomic_across_clients(server, flushed):
    """Separate backend instances (separate connections, as separate
    processes have) racing on one key."""
    location = MEMCACHED if server == "memcached" else REDIS_URL
    conf = backend(location, KEY_PREFIX="race")
    with caches_with(**{f"c{i}": dict(conf) for i in range(4)}):
        clients = [caches[f"c{i}"] for i in range(4)]
        clients[0].set("counter", 0)
        wins = []

        def work(cache):
            wins.append(cache.add("winner", id(cache)))
            for _ in range(25):
                cache.incr("counter")

        threads = [threading.Thread(target=work, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert wins.count(True) == 1
        assert clients[3].get("counter") == 100
        assert clients[1].decr("counter", 10) == 90
        with pytest.raises(ValueError):
            clients[0].incr("no-such-counter")


@pytest.mark.parametrize("server", ["memcached", "redis"])
def test_clear_leaves_other_users_keys(server, flushed):
    location = MEMCACHED if server == "memcached" else REDIS_URL
    tier = MemcachedTier(MEMCACHED) if server == "memcached" else RedisTier(REDIS_URL)
    tier.set_many([("someone-else:1:key", b"theirs", None)])
    with caches_with(mine=backend(location, KEY_PREFIX="mine"), other=backend(location, KEY_PREFIX="other")):
        caches["mine"].set_many({"a": 1, "big": b"x" * (2 * 1024 * 1024)})
        caches["other"].set("a", 2)
        caches["mine"].clear()
        assert caches["mine"].get_many(["a", "big"]) == {}
        assert caches["other"].get("a") == 2
    assert tier.get_many(["someone-else:1:key"]) == [b"theirs"]


def test_clear_flush_mode_empties_the_server(flushed):
    tier = RedisTier(REDIS_URL)
    tier.set_many([("someone-else:1:key", b"theirs", None)])
    with caches_with(mine=backend(REDIS_URL, KEY_PREFIX="mine", OPTIONS={"CLEAR": "flush"})):
        caches["mine"].set("a", 1)
        caches["mine"].clear()
        assert caches["mine"].get("a") is None
    assert tier.get_many(["someone-else:1:key"]) == [None]


# -- async -------------------------------------------------------------------


def test_async_methods(flushed):
    with caches_with(strata=backend(MEMCACHED, KEY_PREFIX="async")):
        cache = caches["strata"]

        async def main():
            await cache.aset("a", {"x": 1})
            await cache.aset("none", None)
            assert await cache.aget("a") == {"x": 1}
            assert await cache.aget("none", "default") is None  # a stored None is a hit
            assert await cache.aget("missing", "default") == "default"
            assert await cache.aset_many({"b": 2, "c": 3}) == []
            assert await cache.aget_many(["a", "b", "c", "d"]) == {"a": {"x": 1}, "b": 2, "c": 3}
            assert await cache.aadd("a", 9) is False
            assert await cache.aincr("b", 5) == 7
            assert await cache.adelete("a") is True
            assert await cache.ahas_key("a") is False
            assert await cache.aget_or_set("e", lambda: 5) == 5

        asyncio.run(main())


@pytest.mark.parametrize("server", ["memcached", "redis"])
def test_async_methods_do_not_hop_to_a_thread(server, flushed, monkeypatch):
    """Remote round trips of aget/aget_many/aset/aset_many/adelete/aadd/
    aincr/adecr/atouch/adelete_many/aget_or_set/aincr_version are awaited on
    the event loop (the tiers have native async methods): neither
    asyncio.to_thread nor sync_to_async's run_in_executor is called."""
    location = MEMCACHED if server == "memcached" else REDIS_URL

    async def no_thread(*args, **kwargs):
        raise AssertionError("asyncio.to_thread called")

    def no_executor(*args, **kwargs):  # what sync_to_async (BaseCache's a* methods) uses
        raise AssertionError("loop.run_in_executor called")

    with caches_with(strata=backend(location, KEY_PREFIX="aio")):
        cache = caches["strata"]
        cache.set("big", b"x" * (3 * 1024 * 1024))  # chunked on memcached

        async def main():
            monkeypatch.setattr(asyncio, "to_thread", no_thread)
            monkeypatch.setattr(asyncio.get_running_loop(), "run_in_executor", no_executor)
            await cache.aset("a", 1)
            assert await cache.aset_many({f"k{i}": i for i in range(50)}) == []
            assert await cache.aget("a") == 1
            assert await cache.aget_many([f"k{i}" for i in range(50)]) == {f"k{i}": i for i in range(50)}
            assert await cache.aget("big") == b"x" * (3 * 1024 * 1024)
            assert await cache.adelete("a") is True
            assert await cache.aget("a", "gone") == "gone"
            # add, incr/decr (their lock too), touch, delete_many, get_or_set,
            # versions: every remote call awaited on the loop.
            assert await cache.aadd("n", 10) is True
            assert await cache.aadd("n", 11) is False
            assert await cache.aadd("big2", b"y" * (2 * 1024 * 1024)) is True
            assert await cache.aincr("n", 5) == 15
            assert await cache.adecr("n", 3) == 12
            with pytest.raises(ValueError):
                await cache.aincr("missing")
            assert await cache.atouch("n", 600) is True
            assert await cache.atouch("missing", 600) is False
            assert await cache.aget_or_set("gos", lambda: "made") == "made"
            assert await cache.aincr_version("n") == 2
            assert await cache.aget("n", version=2) == 12
            await cache.adelete_many([f"k{i}" for i in range(10)])
            assert await cache.aget_many([f"k{i}" for i in range(12)]) == {"k10": 10, "k11": 11}
            monkeypatch.undo()

        asyncio.run(main())
        assert cache.get_many(["k1", "k49"]) == {"k49": 49}  # k1 deleted by adelete_many
        assert cache.get_many(["k11", "k49"]) == {"k11": 11, "k49": 49}  # the sync client reads them
        assert cache.get("n", version=2) == 12 and cache.get("big2") == b"y" * (2 * 1024 * 1024)


@pytest.mark.parametrize("server", ["memcached", "redis"])
def test_concurrent_aincr_and_aadd_on_one_loop_are_atomic(server, flushed):
    """40 ``aincr`` tasks at once on one loop lose no update (the counter
    lock is awaited, not blocking the loop); of 10 ``aadd`` of one key,
    exactly one wins."""
    location = MEMCACHED if server == "memcached" else REDIS_URL
    with caches_with(strata=backend(location, KEY_PREFIX="aconc")):
        cache = caches["strata"]

        async def main():
            await cache.aset("hits", 0)
            await asyncio.gather(*(cache.aincr("hits") for _ in range(40)))
            added = await asyncio.gather(*(cache.aadd("once", i) for i in range(10)))
            return await cache.aget("hits"), added

        hits, added = asyncio.run(main())
        assert hits == 40
        assert sum(added) == 1
        assert cache.get("hits") == 40


def test_set_many_returns_failed_keys_when_the_server_is_down():
    with caches_with(strata=backend(["127.0.0.1:1"], OPTIONS={"CONNECT_TIMEOUT": 0.1})):
        assert sorted(caches["strata"].set_many({"a": 1, "b": 2})) == ["a", "b"]
        assert caches["strata"].get("a", "fallback") == "fallback"  # degrades, never raises
        assert caches["strata"].add("a", 1) is False
        assert caches["strata"].get_many(["a", "b"]) == {}


def test_get_cache_returns_the_backend_tiered_cache(flushed):
    from stratacache.django import get_cache

    with caches_with(strata=backend(MEMCACHED, KEY_PREFIX="gc")):
        assert get_cache("strata") is caches["strata"].tiered
        assert get_cache("strata").get_or_load("k", lambda: 41) == 41


def test_stats_command_covers_backend_aliases(flushed):
    from io import StringIO

    from django.core.management import call_command

    with caches_with(strata=backend(MEMCACHED, KEY_PREFIX="st")):
        caches["strata"].set("a", 1)
        out = StringIO()
        call_command("stratacache_stats", "--json", "--no-server", stdout=out)
        report = json.loads(out.getvalue())
    assert "strata" in report
    assert report["strata"]["tiers"][0]["kind"] == "memcached"


# -- wrong BACKEND paths and checks ------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "stratacache.django.TieredCache",
        "stratacache.TieredCache",
        "stratacache.django.edx.TieredCache",
        "stratacache.django.backend.TieredCache",
        "stratacache.django.TieredCacheBackend",
        "stratacache.TieredCacheBackend",
        "stratacache.django.backends.TieredCacheBackend",
        "stratacache.backend.TieredCacheBackend",
        "tiercache.django.backend.TieredCacheBackend",
        "tiercache.django.TieredCache",
    ],
)
def test_wrong_backend_paths_name_the_right_one(path):
    with override_settings(CACHES={"default": {"BACKEND": path, "LOCATION": MEMCACHED}}):
        with pytest.raises((ImproperlyConfigured, ImportError)) as info:
            caches["default"]
    assert BACKEND_PATH in str(info.value)


def test_check_reports_bad_options_and_paths():
    from stratacache.django.backend_checks import check_backend_options, check_backend_paths

    with override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "typo": backend(MEMCACHED, KEY_PREFIX="x", OPTIONS={"LOCAL_TTL": 5}),
            "noloc": backend("", KEY_PREFIX="y"),
            "clear": backend(MEMCACHED, KEY_PREFIX="z", OPTIONS={"CLEAR": "everything"}),
            "ttl": backend(MEMCACHED, KEY_PREFIX="t", OPTIONS={"LOCAL": {"TTL": 0}}),
            "unsigned": backend(MEMCACHED, KEY_PREFIX="u", OPTIONS={"SIGNING_KEYS": False}),
            "noprefix": backend(MEMCACHED),
            "toobig": backend(MEMCACHED, KEY_PREFIX="b", OPTIONS={"ITEM_LIMIT": 4 * 1024 * 1024}),
            "old": {"BACKEND": "tiercache.django.TieredCache"},
        }
    ):
        by_id = {}
        for message in check_backend_options() + check_backend_paths():
            by_id.setdefault(message.id, []).append(message.msg)
    assert any("LOCAL_TTL" in m for m in by_id["stratacache.E101"])
    assert any("'noloc'" in m for m in by_id["stratacache.E102"])
    assert any("everything" in m for m in by_id["stratacache.E103"])
    assert any("TTL" in m for m in by_id["stratacache.E105"])
    assert any("unsigned" in m for m in by_id["stratacache.E107"])
    assert any("'noprefix'" in m for m in by_id["stratacache.W101"])
    assert any("tiercache.django.TieredCache" in m for m in by_id["stratacache.E100"])
    assert any("'toobig'" in m for m in by_id["stratacache.E109"])
    assert not any("'noprefix'" in m for m in by_id["stratacache.E109"])


def test_values_are_signed_with_a_key_derived_from_secret_key(flushed):
    """A value forged in the shared server (not signed with SECRET_KEY's
    derived key) is never unpickled: it reads as a miss."""
    import pickle

    from stratacache import _core
    from stratacache.keys import normalize_key

    with caches_with(strata=backend(MEMCACHED, KEY_PREFIX="sig")):
        cache = caches["strata"]
        cache.set("k", "genuine")
        assert cache.tiered.signed
        forged = _core.encode_envelope(pickle.dumps("forged"), codec="pickle", created_at_ms=_core.now_ms())
        MemcachedTier(MEMCACHED).set_many([(normalize_key(cache.make_key("k")), forged, None)])
        assert cache.get("k", "miss") == "miss"


def test_manage_py_check_runs_the_backend_checks():
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    with caches_with(bad=backend(MEMCACHED, KEY_PREFIX="x", OPTIONS={"LOCAL_TTL": 5})):
        with pytest.raises(SystemCheckError, match="LOCAL_TTL"):
            call_command("check")
