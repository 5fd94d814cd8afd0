"""A look inside (issue 17, items 7 and 8): which tier answered, metrics for
Prometheus and OpenTelemetry over the real servers, ``stats()`` shaped like
``stratacache_stats --json``, and no accidental exports."""

import asyncio
import importlib
import io
import json
import os
import pkgutil

import pytest
from django.core.management import call_command
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import stratacache
from stratacache import LocalCache, ReadResult, TieredCache, request_scope
from stratacache.django import get_cache, reset_caches
from stratacache.metrics import register_opentelemetry, register_prometheus, snapshot
from stratacache.testing import clear_caches
from stratacache.tiers import MemcachedTier

#: Pickle caches over remote tiers need signing keys (unsigned pickles are refused).
SIGNED = {"signing_keys": [("test", b"a test secret of 32 bytes......!")]}


@pytest.fixture(autouse=True)
def fresh(s3_bucket):
    reset_caches()
    clear_caches()  # empty tiers, and no request scope: the local tier answers
    yield
    reset_caches()


def test_results_say_which_tier_answered():
    cache = get_cache()
    cache.set_all_tiers("where", 1)
    assert cache.lookup("where") == ReadResult("where", True, 1, "local")
    cache.clear_local()
    assert cache.lookup("where").source == "memcached"
    with request_scope():
        cache.get("where")
        assert cache.lookup("where").source == "request"
    cache.tiers[0].clear()
    cache.tiers[1].clear()
    cache.clear_local()
    results = cache.lookup_many(["where", "nowhere"])
    assert [(r.hit, r.source) for r in results] == [(True, "storage"), (False, None)]
    cache.clear_local()
    assert asyncio.run(cache.alookup_many(["where"]))[0].source == "memcached"  # back-filled


def samples(registry):
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_prometheus_export_per_tier_local_and_latency():
    registry = CollectorRegistry()
    collector = register_prometheus(registry=registry)
    try:
        cache = get_cache()
        cache.get_or_load("p", lambda: "v")  # misses everywhere, loads, writes every tier
        cache.get("p")  # local hit
        cache.clear_local()
        cache.get("p")  # memcached hit
        got = samples(registry)
    finally:
        collector.close()
    mc = (("cache", "default"), ("tier", "memcached"))
    assert got[("stratacache_tier_hits_total", mc)] == 1
    assert got[("stratacache_tier_misses_total", mc)] == 1
    assert got[("stratacache_tier_writes_total", mc)] == 1
    assert got[("stratacache_tier_bytes_read_total", mc)] > 0
    assert got[("stratacache_tier_errors_total", mc)] == 0
    assert ("stratacache_tier_chunked_reads_total", mc) in got
    assert got[("stratacache_tier_cooling_down", mc)] == 0
    assert ("stratacache_tier_skipped_cooling_down_total", mc) in got
    local = (("cache", "default"),)
    assert got[("stratacache_local_hits_total", local)] == 1
    assert got[("stratacache_local_inserts_total", local)] >= 1  # admissions
    assert ("stratacache_local_evictions_total", local) in got
    assert 0 < got[("stratacache_local_hit_ratio", local)] < 1
    assert got[("stratacache_reads_loads_total", local)] == 1
    hist = {k[1]: v for k, v in got.items() if k[0] == "stratacache_read_duration_seconds_count"}
    assert hist[(("cache", "default"), ("source", "loader"))] == 1
    assert hist[(("cache", "default"), ("source", "local"))] == 1
    assert hist[(("cache", "default"), ("source", "memcached"))] == 1


def test_prometheus_counts_errors_and_cool_downs_of_a_dead_tier():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"127.0.0.1:{s.getsockname()[1]}"
    s.close()
    cache = TieredCache(
        [MemcachedTier(dead, name="dead", connect_timeout=0.05)], cooldown=(2, 60), name="d", **SIGNED
    )
    registry = CollectorRegistry()
    collector = register_prometheus([cache], registry=registry, latency=False)
    try:
        for i in range(5):
            cache.get_or_load(f"k{i}", lambda: 1)
        got = samples(registry)
    finally:
        collector.close()
    labels = (("cache", "d"), ("tier", "dead"))
    assert got[("stratacache_tier_errors_total", labels)] >= 2
    assert got[("stratacache_tier_skipped_cooling_down_total", labels)] >= 1
    assert got[("stratacache_tier_cooling_down", labels)] == 1


def test_opentelemetry_export_through_the_sdk_reader():
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    cache = get_cache()
    export = register_opentelemetry([cache], meter_provider=provider)
    try:
        cache.get_or_load("o", lambda: 1)
        cache.get("o")
        data = reader.get_metrics_data()
    finally:
        export.close()
    points = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    points[(metric.name, tuple(sorted(p.attributes.items())))] = p
    mc = (("cache", "default"), ("tier", "memcached"))
    assert points[("stratacache.tier.misses", mc)].value == 1
    assert points[("stratacache.tier.writes", mc)].value == 1
    assert points[("stratacache.local.hits", (("cache", "default"),))].value == 1
    assert points[("stratacache.local.hit_ratio", (("cache", "default"),))].value == 0.5
    assert points[("stratacache.read.duration", (("cache", "default"), ("source", "loader")))].count == 1


def test_stats_has_the_shape_of_the_stats_command_json():
    cache = get_cache()
    cache.get_or_load("s", lambda: 1)
    stats = cache.stats()
    out = io.StringIO()
    call_command("stratacache_stats", "--json", "--no-server", "--cache", "default", stdout=out)
    printed = json.loads(out.getvalue())["default"]
    assert set(stats) <= set(printed) and {"tiers", "reads", "local", "flights"} <= set(stats)
    for ours, theirs in zip(stats["tiers"], printed["tiers"]):
        assert set(ours) <= set(theirs)  # the command adds kind, cooling_down, server
        assert theirs["name"] == ours["name"] and isinstance(theirs["hits"], int)
    assert set(stats["reads"]) == set(printed["reads"])
    assert snapshot(cache)["tiers"][0]["kind"] == "memcached"


def _modules():
    yield stratacache
    for info in pkgutil.walk_packages(stratacache.__path__, "stratacache."):
        if info.name.endswith(("._core", ".panels")) or ".management.commands." in info.name:
            continue
        yield importlib.import_module(info.name)


def test_nothing_exported_by_accident():
    # A `from __future__ import annotations` in a package's __init__ leaks a
    # public attribute `annotations` (the issue's `tiercache.annotations`).
    import stratacache.django

    for package in (stratacache, stratacache.django):
        assert not hasattr(package, "annotations"), package.__name__
    for module in _modules():
        public = getattr(module, "__all__", None)
        if public is None:
            continue
        assert "annotations" not in public, module.__name__
        for name in public:
            assert hasattr(module, name), f"{module.__name__}.__all__ lists {name!r}, which it lacks"
    # `from stratacache import *` gives exactly the documented names.
    namespace: dict = {}
    exec("from stratacache import *", namespace)
    exported = {k for k in namespace if not k.startswith("__")}
    assert exported == set(stratacache.__all__)
    assert "annotations" not in exported
    assert {"ReadResult", "TieredCache", "LocalCache"} <= exported
    assert LocalCache is stratacache.LocalCache


def test_public_items_have_docstrings():
    for module in _modules():
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if callable(obj) and not isinstance(obj, type(os)):
                assert (obj.__doc__ or "").strip(), f"{module.__name__}.{name} has no docstring"


def test_read_observer_sees_each_read_once_sync_and_async():
    from stratacache._observe import _originals, observe

    cache = get_cache()
    events = []
    with observe(events.append):
        cache.get_or_load("ev", lambda: 1)  # calls get_many_or_load inside: one event
        cache.get("ev")  # calls get_cached_response inside: one event
        asyncio.run(cache.aget_many(["ev", "none"]))
    assert [e.method for e in events] == ["get_or_load", "get", "aget_many"]
    assert [e.source for e in events] == ["loader", "local", "miss"]
    assert events[0].consulted == {"memcached": 1, "redis": 1, "storage": 1}
    assert events[2].sources == {"local": 1, "miss": 1}
    assert all(e.seconds > 0 for e in events)
    assert not _originals  # unwrapped when the last observer leaves
    assert not hasattr(TieredCache.get, "__wrapped__")  # the original method again
