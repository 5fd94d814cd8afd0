"""Metrics for Prometheus (``prometheus_client``) and OpenTelemetry (the
``opentelemetry-api`` package), read from the counters every cache keeps
(:meth:`TieredCache.stats`), plus a read-latency histogram.

Prometheus, one line (then serve ``prometheus_client``'s ``/metrics`` as usual)::

    from stratacache.metrics import register_prometheus
    register_prometheus()

OpenTelemetry (any SDK or exporter configured by the application)::

    from stratacache.metrics import register_opentelemetry
    register_opentelemetry()

What is exported, with labels ``cache`` and ``tier``:

* per remote tier: ``stratacache_tier_<counter>_total`` for every tier
  counter: hits, misses, errors, fetches (batched calls), writes,
  bytes_read, bytes_written, chunked_reads, chunk_misses, rejected,
  stale_served, expired, early_refreshes, lock_waits, skipped_cooling_down
  (reads that skipped the tier in its cool-down); ``stratacache_tier_cooling_down``
  (1 while the tier is skipped after repeated failures);
* local tier: ``stratacache_local_<counter>_total`` (hits, misses, inserts
  = admissions, rejected = refused admissions, updates, evictions,
  expirations), gauges ``stratacache_local_entries``, ``stratacache_local_weight_bytes``
  and ``stratacache_local_hit_ratio``;
* reads: ``stratacache_reads_<counter>_total`` (reads, keys, request_hits,
  local_hits, remote_hits, loads, load_errors, misses, ...);
* latency: the histogram ``stratacache_read_duration_seconds`` with labels
  ``cache`` and ``source`` (the slowest source that answered the read:
  ``request``, ``local``, a tier's name, ``loader``, ``miss``): the time a
  read spent, by the tier it had to reach. Enabled by ``latency=True``
  (the default); it times every read of every cache (a few microseconds).

The names are the OpenTelemetry ones with ``.`` for ``_`` and without
``_total`` (``stratacache.tier.hits``), with the same attributes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable, Optional, Union

from . import _core
from ._observe import ReadEvent, add_observer, remove_observer
from .tiered import TieredCache

__all__ = [
    "LATENCY_BUCKETS",
    "PrometheusCollector",
    "register_opentelemetry",
    "register_prometheus",
    "snapshot",
]

#: Histogram buckets (seconds): from a local hit to a slow loader.
LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
    5.0,
)

Caches = Union[None, Iterable[TieredCache], Callable[[], Iterable[TieredCache]]]


def _caches(caches: Caches) -> list:
    if caches is None:
        from .testing import _known_caches

        return _known_caches()
    if callable(caches):
        return list(caches())
    return list(caches)


def snapshot(cache: TieredCache) -> dict:
    """``cache.stats()`` with each tier's ``kind`` and ``cooling_down`` added
    and the local ``hit_ratio``: the shape ``stratacache_stats --json`` prints
    per cache (plus its ``server`` part).

    >>> snapshot(TieredCache([]))["local"]["hit_ratio"]
    0.0
    """
    stats = cache.stats()
    now = _core.now_ms()
    for i, (tier, counters) in enumerate(zip(cache.tiers, stats["tiers"])):
        counters["kind"] = tier.kind
        counters["cooling_down"] = bool(cache._core.is_cooling_down(i, now))
    local = stats.get("local")
    if local:
        asked = local["hits"] + local["misses"]
        local["hit_ratio"] = local["hits"] / asked if asked else 0.0
    return stats


_TIER_SKIP = {"name", "kind", "cooling_down"}
_LOCAL_GAUGES = {"entries", "weight", "hit_ratio"}


def _samples(caches: Caches) -> Iterable[tuple]:
    """``(kind, name, labels, value)``: kind is counter or gauge."""
    for cache in _caches(caches):
        stats = snapshot(cache)
        for tier in stats["tiers"]:
            labels = {"cache": cache.name, "tier": tier["name"]}
            for name, value in tier.items():
                if name not in _TIER_SKIP:
                    yield "counter", f"tier_{name}", labels, value
            yield "gauge", "tier_cooling_down", labels, int(tier["cooling_down"])
        for name, value in stats["reads"].items():
            yield "counter", f"reads_{name}", {"cache": cache.name}, value
        local = stats.get("local")
        if local:
            for name, value in local.items():
                if name in _LOCAL_GAUGES:
                    gauge = "local_weight_bytes" if name == "weight" else f"local_{name}"
                    yield "gauge", gauge, {"cache": cache.name}, value
                else:
                    yield "counter", f"local_{name}", {"cache": cache.name}, value


class PrometheusCollector:
    """A ``prometheus_client`` collector over the caches' counters (read at
    each scrape) and, with ``latency``, the read-latency histogram.

    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> registry = CollectorRegistry()
    >>> collector = PrometheusCollector([TieredCache([], name="doc")], registry=registry)
    >>> b"stratacache_reads_reads_total" in generate_latest(registry)
    True
    """

    def __init__(self, caches: Caches = None, *, registry: Any = None, latency: bool = True) -> None:
        from prometheus_client import REGISTRY, Histogram

        self._caches = caches
        registry = REGISTRY if registry is None else registry
        self.histogram = None
        self._observer: Optional[Callable] = None
        if latency:
            self.histogram = Histogram(
                "stratacache_read_duration_seconds",
                "Time of a stratacache read, by the slowest source that answered it",
                ["cache", "source"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            )

            def observe(event: ReadEvent) -> None:
                self.histogram.labels(event.cache, event.source).observe(event.seconds)

            self._observer = observe
            add_observer(observe)
        registry.register(self)
        self._registry = registry

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        families: dict = {}
        for kind, name, labels, value in _samples(self._caches):
            family = families.get(name)
            if family is None:
                full = f"stratacache_{name}"
                doc = f"stratacache {name.replace('_', ' ')}"
                cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                family = families[name] = cls(full, doc, labels=list(labels))
            family.add_metric(list(labels.values()), value)
        yield from families.values()

    def describe(self) -> list:
        return []  # families depend on the caches: no up-front description

    def close(self) -> None:
        """Unregisters the collector and stops timing reads."""
        self._registry.unregister(self)
        if self.histogram is not None:
            self._registry.unregister(self.histogram)
        if self._observer is not None:
            remove_observer(self._observer)


def register_prometheus(
    caches: Caches = None, *, registry: Any = None, latency: bool = True
) -> PrometheusCollector:
    """Exports every stratacache cache (default: those built from Django
    settings and the ``@cached`` default; or ``caches``, a list or a callable
    returning one) to ``prometheus_client``'s default registry (or
    ``registry``).

    >>> collector = register_prometheus()  # doctest: +SKIP
    """
    return PrometheusCollector(caches, registry=registry, latency=latency)


class _OtelExport:
    def __init__(self, caches: Caches, meter: Any, latency: bool) -> None:
        self._caches = caches
        self._meter = meter
        self._observer: Optional[Callable] = None
        self._instruments: dict = {}
        names = {(kind, name) for kind, name, _labels, _value in _samples(caches)}
        for kind, name in sorted(names):
            self._instrument(kind, name)
        self.histogram = None
        if latency:
            self.histogram = meter.create_histogram(
                "stratacache.read.duration",
                unit="s",
                description="Time of a stratacache read, by the slowest source that answered it",
            )

            def observe(event: ReadEvent) -> None:
                self.histogram.record(event.seconds, {"cache": event.cache, "source": event.source})

            self._observer = observe
            add_observer(observe)

    def _instrument(self, kind: str, name: str) -> None:
        from opentelemetry.metrics import Observation

        def callback(options: Any) -> Iterable[Any]:
            return [Observation(v, labels) for k, n, labels, v in _samples(self._caches) if n == name]

        otel_name = "stratacache." + name.replace("_", ".", 1)
        if kind == "counter":
            self._instruments[name] = self._meter.create_observable_counter(otel_name, callbacks=[callback])
        else:
            self._instruments[name] = self._meter.create_observable_gauge(otel_name, callbacks=[callback])

    def close(self) -> None:
        if self._observer is not None:
            remove_observer(self._observer)


def register_opentelemetry(caches: Caches = None, *, meter_provider: Any = None, latency: bool = True) -> Any:
    """Exports the same metrics through the OpenTelemetry API: observable
    counters and gauges (``stratacache.tier.hits`` with attributes ``cache``
    and ``tier``, ...) and the histogram ``stratacache.read.duration``. Uses
    the global meter provider unless ``meter_provider`` is given. The
    instruments are those of the caches that exist now (register after the
    caches are built, e.g. in ``AppConfig.ready`` after ``get_cache()``).

    >>> export = register_opentelemetry()  # doctest: +SKIP
    """
    from opentelemetry import metrics

    provider = meter_provider or metrics.get_meter_provider()
    meter = provider.get_meter("stratacache", _core.__version__)
    return _OtelExport(caches, meter, latency)
