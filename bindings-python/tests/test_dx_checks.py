"""Loud configuration mistakes (issue 17, item 4): a missing configuration is
a check warning, ``check --deploy`` and ``stratacache_check`` connect to each
tier once over the real servers, and a tier failing every call logs one
line a window with the count."""

import io
import json
import logging
import socket

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from stratacache import TieredCache
from stratacache._ratelog import TierFailureLog
from stratacache.django import reset_caches
from stratacache.django.checks import check_connections, check_settings
from stratacache.tiers import MemcachedTier

#: Pickle caches over remote tiers need signing keys (unsigned pickles are refused).
SIGNED = {"signing_keys": [("test", b"a test secret of 32 bytes......!")]}


@pytest.fixture(autouse=True)
def clean(s3_bucket):
    reset_caches()
    yield
    reset_caches()


def dead_address() -> str:
    """A loopback port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"127.0.0.1:{port}"


def ids(messages):
    return [m.id for m in messages]


@pytest.mark.parametrize("stratacache", [None, {}, {"TIERS": []}])
def test_missing_or_empty_configuration_is_a_warning(stratacache):
    with override_settings(STRATACACHE=stratacache):
        messages = check_settings()
    assert "stratacache.W004" in ids(messages)
    w004 = next(m for m in messages if m.id == "stratacache.W004")
    assert "local-only" in w004.msg and "TIERS" in w004.hint


def test_local_only_on_purpose_is_not_a_warning():
    with override_settings(STRATACACHE={"TIERS": [], "LOCAL_ONLY": True}):
        assert "stratacache.W004" not in ids(check_settings())


def test_configured_tiers_are_not_a_warning():
    assert "stratacache.W004" not in ids(check_settings())


def test_deploy_check_connects_to_every_tier_and_passes_on_the_real_servers():
    assert check_connections() == []


def test_deploy_check_reports_a_dead_tier():
    dead = dead_address()
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "dead": {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache", "LOCATION": dead},
    }
    with override_settings(CACHES=caches, STRATACACHE={"TIERS": [{"CACHE": "dead"}]}):
        messages = check_connections()
        out = io.StringIO()
        with pytest.raises(CommandError, match="1 of 1 tier"):
            call_command("stratacache_check", stdout=out)
    assert ids(messages) == ["stratacache.E008"]
    assert "'dead'" in messages[0].msg and "memcached" in messages[0].msg
    assert "FAILED" in out.getvalue() and "dead" in out.getvalue()


def test_check_deploy_runs_the_connection_check():
    dead = dead_address()
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "dead": {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache", "LOCATION": dead},
    }
    from django.core.management.base import SystemCheckError

    with override_settings(CACHES=caches, STRATACACHE={"TIERS": [{"CACHE": "dead"}]}):
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())  # not without --deploy
        with pytest.raises(SystemCheckError, match=r"stratacache\.E008"):
            call_command("check", "--deploy", stdout=io.StringIO(), stderr=io.StringIO())


def test_check_command_lists_every_tier_as_json():
    out = io.StringIO()
    call_command("stratacache_check", "--json", stdout=out)
    rows = json.loads(out.getvalue())
    kinds = {(r["cache"], r["kind"]) for r in rows}
    assert {("default", "memcached"), ("default", "redis"), ("default", "storage")} <= kinds
    assert all(r["ok"] for r in rows)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_failure_log_sums_up_a_failing_tier_once_a_window():
    clock = FakeClock()
    logger = logging.getLogger("stratacache.test-ratelog")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        flog = TierFailureLog(window=60, clock=clock, logger=logger)
        for i in range(1000):  # 1000 calls over 70 s
            clock.now = 1000 + i * 0.07
            flog.failed("memcached", "get" if i % 2 else "set", "ConnectionRefusedError")
    finally:
        logger.removeHandler(handler)
    assert [r.levelname for r in records] == ["WARNING", "ERROR"]
    message = records[1].getMessage()
    assert "'memcached' failed" in message and "in the last 60 s" in message
    count = int(message.split("failed ")[1].split(" calls")[0])
    assert 850 <= count <= 860  # the calls of the first minute, counted, not logged
    assert "get" in message and "set" in message
    assert flog.failing() == {"memcached": 1000}
    clock.now += 61
    assert flog.failing() == {}


def test_dead_memcached_tier_logs_one_line_not_one_per_read(caplog):
    cache = TieredCache(
        [MemcachedTier(dead_address(), connect_timeout=0.05)], local=None, cooldown=(1000, 0.01), **SIGNED
    )
    with caplog.at_level(logging.WARNING, logger="stratacache"):
        for i in range(50):
            assert cache.get_or_load(f"k{i}", lambda: "loaded") == "loaded"
    lines = [r for r in caplog.records if r.name == "stratacache"]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert "memcached" in lines[0].getMessage() and "summed up" in lines[0].getMessage()
    assert cache.stats()["tiers"][0]["errors"] >= 50


def test_a_tier_failing_every_call_for_a_minute_logs_one_error_with_the_count(caplog):
    # A real TieredCache over a memcached that refuses every connection, one
    # read a second for 70 s of the cache's clock: one WARNING when the tier
    # starts failing, one ERROR after the minute giving the count of failed
    # calls, nothing per call.
    clock = FakeClock()
    cache = TieredCache(
        [MemcachedTier(dead_address(), connect_timeout=0.05)],
        local=None,
        cooldown=(1000, 0.01),
        clock=clock,
        **SIGNED,
    )
    errors_before_the_minute = None
    with caplog.at_level(logging.WARNING, logger="stratacache"):
        for i in range(70):
            clock.now = 1000.0 + i
            assert cache.get_or_load(f"k{i}", lambda: "loaded") == "loaded"
            if i == 59:
                errors_before_the_minute = cache.stats()["tiers"][0]["errors"]
    lines = [r for r in caplog.records if r.name == "stratacache"]
    assert [r.levelname for r in lines] == ["WARNING", "ERROR"], [r.getMessage() for r in lines]
    message = lines[1].getMessage()
    assert "tier 'memcached' failed" in message and "in the last 60 s" in message, message
    count = int(message.split(" failed ")[1].split(" calls")[0])
    # Every failed call of the first minute (a get, then the store of the
    # loaded value, each second), counted by the log as by the stats, plus the
    # get 60 s on whose failure the line is written.
    assert errors_before_the_minute == 120
    assert count == errors_before_the_minute + 1, message
    assert "(get 61, set 60;" in message, message
    assert cache.stats()["tiers"][0]["errors"] > count  # later failures: counted, not logged yet


def test_a_caches_alias_on_the_stratacache_backend_counts_as_configured():
    caches = {
        "default": {"BACKEND": "stratacache.django.backend.TieredCacheBackend", "LOCATION": "x"},
    }
    with override_settings(CACHES=caches, STRATACACHE=None):
        assert "stratacache.W004" not in ids(check_settings())
