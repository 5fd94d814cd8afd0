"""Coherent local tiers across processes: the Redis pub/sub invalidation
channel over real memcached and Redis (scripts/servers.sh), the channel
going down and coming back, and the current-version helper."""

import logging
import os
import threading
import time
import uuid

import pytest
from conftest import servers
from fleet_workers import run_coherence

from stratacache import Key, LocalTier, TieredCache, request_scope
from stratacache.invalidation import CurrentVersion, Invalidation
from stratacache.tiers import MemcachedTier

#: Pickle caches over remote tiers need signing keys (unsigned pickles are refused).
SIGNED = {"signing_keys": [("test", b"a test secret of 32 bytes......!")]}

MEMCACHED = os.environ.get("STRATACACHE_MEMCACHED", "")
REDIS_URL = os.environ.get("STRATACACHE_REDIS_URL", "")


def channel() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def until(predicate, timeout: float, step: float = 0.01) -> float:
    """Seconds until ``predicate()`` held (fails the test after ``timeout``)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(step)
    return time.monotonic() - start


@pytest.fixture(autouse=True)
def close_caches(monkeypatch):
    """Closes every cache a test built (their subscriber threads would
    otherwise outlive the test and log about later outages)."""
    built = []
    init = TieredCache.__init__

    def tracking_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(TieredCache, "__init__", tracking_init)
    yield
    for cache in built:
        cache.close()


def pair(memcached, name: str, local_ttl: float = 60, **kwargs):
    """Two caches as two processes would have them: same memcached and
    channel, own local tiers, own subscribers."""
    caches = [
        TieredCache(
            [memcached],
            local=LocalTier(ttl=local_ttl),
            invalidation=Invalidation(REDIS_URL, channel=name, **kwargs),
            cooldown=(3, 0.2),
            name=f"p{i}",
            **SIGNED,
        )
        for i in range(2)
    ]
    for cache in caches:
        assert cache.invalidation.wait_connected(5)
    return caches


def test_four_processes_stop_serving_the_old_value_after_a_set(memcached):
    """One writer and three reader processes with local tiers (60 s TTL):
    after each set the readers are served the new value within 2 s (the
    bench measures the p99; without the channel they would serve the old
    value for 60 s)."""
    out = run_coherence(MEMCACHED, REDIS_URL, rounds=10, readers=3)
    missed = [(r, i) for r, lags in enumerate(out["lags"], 1) for i, lag in enumerate(lags) if lag is None]
    assert not missed, f"readers still served the old value 2 s after the set: {missed}"
    assert len(out["readers"]) == 3
    for stats in out["readers"].values():
        assert stats["reads"]["local_hits"] > 100  # they were serving from their local tier
        assert stats["invalidation"]["received"] >= 10
        assert stats["invalidation"]["dropped"] >= 5  # (a key already re-dropped is not counted)
    assert out["writer"]["invalidation"]["published"] >= 11  # value 0, then one per round


def test_without_the_channel_a_local_tier_keeps_the_old_value(memcached):
    """The control: the same set is not seen by another local tier."""
    a = TieredCache([memcached], local=LocalTier(ttl=60), name="a", **SIGNED)
    b = TieredCache([memcached], local=LocalTier(ttl=60), name="b", **SIGNED)
    a.set("course", 1)
    assert b.get("course") == 1
    a.set("course", 2)
    time.sleep(0.2)
    assert b.get("course") == 1


def test_delete_and_delete_many_drop_the_keys_elsewhere(memcached):
    a, b = pair(memcached, channel())
    for k in ("x", "y", "z"):
        a.set(k, k.upper())
        assert b.get(k) == k.upper()
    a.delete("x")
    until(lambda: b.get("x", None) is None, 2)
    a.delete_many(["y", "z"])
    until(lambda: b.get("y", None) is None and b.get("z", None) is None, 2)
    assert a.stats()["invalidation"]["published"] == 5  # 3 sets, 1 delete, 1 delete_many
    # (b may miss y and z before the last message arrives: the set messages'
    # drops already removed them locally, and memcached no longer has them.)
    until(lambda: b.stats()["invalidation"]["received"] == 5, 2)
    a.close()
    b.close()


def test_own_messages_leave_the_own_local_tier_alone(memcached):
    a, b = pair(memcached, channel())
    a.set("mine", "v1")
    until(lambda: b.stats()["invalidation"]["received"] == 1, 2)
    time.sleep(0.1)
    assert a.stats()["invalidation"]["received"] == 0
    assert a.get("mine") == "v1"
    assert a.stats()["reads"]["local_hits"] == 1
    a.close()
    b.close()


class SlowReads(MemcachedTier):
    """memcached whose answers arrive late: the read fetched the old value
    before a set elsewhere, and stores it locally after the message."""

    fetched: threading.Event

    def get_many(self, keys):
        values = super().get_many(keys)
        self.fetched.set()
        time.sleep(0.05)
        return values


@pytest.mark.parametrize("redrop_after", [0.3, 0])
def test_a_read_racing_the_set_is_corrected_by_the_second_drop(memcached, redrop_after):
    name = channel()
    a = TieredCache([memcached], invalidation=Invalidation(REDIS_URL, channel=name), name="a", **SIGNED)
    slow = SlowReads(MEMCACHED)
    slow.fetched = threading.Event()
    b = TieredCache(
        [slow],
        local=LocalTier(ttl=60),
        invalidation=Invalidation(REDIS_URL, channel=name, redrop_after=redrop_after),
        name="b",
        **SIGNED,
    )
    assert a.invalidation.wait_connected(5) and b.invalidation.wait_connected(5)
    a.set("race", "old")
    until(lambda: b.stats()["invalidation"]["received"] == 1, 2)
    reader = threading.Thread(target=b.get, args=("race",))
    reader.start()
    assert slow.fetched.wait(2)
    a.set("race", "new")  # published while b's read is on its way back
    until(lambda: b.stats()["invalidation"]["received"] == 2, 2)
    reader.join()
    assert b.get("race") == "old"  # the racing read stored the old value
    if redrop_after:
        until(lambda: b.get("race") == "new", 2)
        assert b.stats()["invalidation"]["redropped"] == 1
    else:
        time.sleep(0.6)
        assert b.get("race") == "old"  # only the local TTL would end it
    a.close()
    b.close()


def test_the_channel_going_down_degrades_to_the_ttl_and_comes_back(memcached, caplog):
    """Redis stopped: sets and reads go on, publishing is counted as failed,
    the other process serves its local copy up to the local TTL (1 s here),
    the outage is logged once; Redis back: the subscriber reconnects by
    itself, clears its local tier and invalidations flow again."""
    caplog.set_level(logging.WARNING, logger="stratacache")
    a, b = pair(memcached, channel(), local_ttl=2.0, retry_after=0.2)
    a.set("outline", "v1")
    servers("stop", "redis")
    try:
        until(lambda: not b.invalidation.connected, 5)
        assert b.get("outline") == "v1"  # in b's local tier for 2 s
        a.set("outline", "v2")  # publishing fails: counted, never raised
        assert a.get("outline") == "v2"
        assert b.get("outline") == "v1"  # stale, from b's local tier ...
        waited = until(lambda: b.get("outline") == "v2", 4)  # ... until its TTL
        assert waited > 0.5
        time.sleep(0.5)  # several failed reconnect attempts
        a.set("outline", "v3")
        stats_a = a.stats()["invalidation"]
        stats_b = b.stats()["invalidation"]
        assert stats_a["publish_errors"] >= 1
        assert stats_a["publish_errors"] + stats_a["publish_skipped"] == 2
        assert stats_b["disconnects"] == 1 and stats_b["connected"] == 0
        down = [r for r in caplog.records if "unavailable" in r.getMessage()]
        assert len(down) == 2  # once per subscriber (a and b), not once per attempt
        assert len([r for r in caplog.records if "is down" in r.getMessage()]) == 1
    finally:
        servers("start", "redis")
    assert b.invalidation.wait_connected(10)
    until(lambda: b.stats()["invalidation"]["reconnects"] == 1, 5)
    assert b.stats()["invalidation"]["local_clears"] == 1
    assert b.get("outline") == "v3"
    time.sleep(0.3)  # past a's retry_after
    a.set("outline", "v4")
    until(lambda: b.get("outline") == "v4", 0.5)
    assert a.stats()["invalidation"]["published"] >= 2
    a.close()
    b.close()


def test_current_version_is_read_through_the_request_tier_and_invalidated(memcached):
    """background/003's pattern: the version is looked up once per request
    (a database query only when no tier has it); publishing a new version in
    one process is seen by the next request of another."""
    db = {"course-v1:edX+Demo": 1}
    queries = []

    def published_version(course_key):
        queries.append(course_key)
        return db[course_key]

    a, b = pair(memcached, channel())
    versions_a = CurrentVersion(a, "course_outline.version", published_version)
    versions_b = CurrentVersion(b, "course_outline.version", published_version)
    outline = Key("course_outline", 3)
    course = "course-v1:edX+Demo"

    def view(cache, versions):
        with request_scope():
            version = versions.get(course)
            for _ in range(50):  # deep in the view: the request tier answers
                assert versions.get(course) == version
            return cache.get_or_load(outline(course, version), lambda: f"outline v{version}")

    assert view(b, versions_b) == "outline v1"
    assert view(b, versions_b) == "outline v1"
    assert queries == [course]  # one database query for two requests
    assert b.stats()["reads"]["request_hits"] >= 100
    db[course] = 2
    versions_a.published(course, 2)
    until(lambda: view(b, versions_b) == "outline v2", 2)
    assert queries == [course]  # the new version came with the write, not from the database
    versions_a.published(course)  # unknown: the next reader asks the database
    until(lambda: b.get(versions_b.key(course), None) is None, 2)
    assert view(b, versions_b) == "outline v2"
    assert queries == [course, course]
    a.close()
    b.close()


def test_bad_invalidation_options_are_clear_errors(memcached):
    with pytest.raises(ValueError, match="url"):
        TieredCache([memcached], invalidation={"channel": "x"}, **SIGNED)
    with pytest.raises(ValueError, match=r"unexpected keyword|invalidation options"):
        TieredCache([memcached], invalidation={"url": REDIS_URL, "chanel": "x"}, **SIGNED)
    with pytest.raises(TypeError, match="invalidation must be"):
        TieredCache([memcached], invalidation=42, **SIGNED)


def test_django_settings_turn_the_channel_on(memcached, settings):
    from stratacache.django import build_cache

    cache = build_cache(
        {
            "TIERS": [{"CACHE": "memcached"}],
            "INVALIDATION": {"URL": REDIS_URL, "CHANNEL": "django-test"},
            "BACKGROUND_WRITES": {"MAX_STEPS": 10},
        }
    )
    try:
        assert cache.invalidation.config.channel == "django-test"
        assert cache.invalidation.wait_connected(5)
        assert cache.stats()["background_writes"]["queued"] == 0
    finally:
        cache.close()


def test_refresh_publishes_after_its_background_writes(memcached):
    """``refresh`` stores a new value: the others are told once it is in
    memcached (with background writes, by the writer thread after the store)."""
    name = channel()
    a = TieredCache(
        [memcached],
        invalidation=Invalidation(REDIS_URL, channel=name),
        background_writes=True,
        name="a",
        **SIGNED,
    )
    b = TieredCache(
        [memcached], local=LocalTier(ttl=60), invalidation=Invalidation(REDIS_URL, channel=name), **SIGNED
    )
    assert a.invalidation.wait_connected(5) and b.invalidation.wait_connected(5)
    a.set("report", "old")
    until(lambda: b.get("report") == "old", 2)
    assert a.refresh("report", lambda: "new") == "new"
    until(lambda: b.get("report") == "new", 2)
    assert a.stats()["invalidation"]["published"] == 2
    assert a.stats()["background_writes"]["written"] == 1


class _Clock:
    """A settable clock (seconds), shared by the caches of a test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_an_early_refresh_publishes_like_other_writes(memcached):
    """An XFetch early refresh writes a new value: the others' local tiers
    drop the old one (as after ``set`` or ``refresh``), not after their TTL."""
    name = channel()
    clock = _Clock()
    a = TieredCache(
        [memcached],
        local=None,
        invalidation=Invalidation(REDIS_URL, channel=name),
        xfetch_beta=1e6,
        default_ttl=100,
        ttl_jitter=0,
        clock=clock,
        name="a",
        **SIGNED,
    )
    b = TieredCache(
        [memcached],
        local=LocalTier(ttl=300),
        invalidation=Invalidation(REDIS_URL, channel=name),
        xfetch_beta=0,
        clock=clock,
        **SIGNED,
    )
    assert a.invalidation.wait_connected(5) and b.invalidation.wait_connected(5)
    key = f"xfetch|v1|{uuid.uuid4().hex}"

    def slow_v1():
        time.sleep(0.05)  # the recompute cost XFetch weighs
        return "v1"

    assert a.get_or_load(key, slow_v1) == "v1"
    assert b.get(key) == "v1"  # now in b's local tier, good for 100 s
    published = a.stats()["invalidation"]["published"]
    clock.now += 99  # one second before expiry: a refreshes early
    assert a.get_or_load(key, lambda: "v2") == "v1"
    until(lambda: b.get(key) == "v2", 2)
    assert a.stats()["invalidation"]["published"] == published + 1
    a.close()
    b.close()
