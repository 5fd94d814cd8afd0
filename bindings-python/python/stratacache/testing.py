"""Test helpers: isolate the request, local and remote tiers between tests,
and assert how many loads and remote calls a block makes (the way Django's
``assertNumQueries`` asserts queries).

unittest / Django ``TestCase``::

    from django.test import TestCase
    from stratacache.testing import CacheIsolationMixin

    class OutlineTests(CacheIsolationMixin, TestCase):
        def test_outline_is_cached(self):
            with self.assertNumLoads(1):
                get_outline("course-v1:edX+DemoX+Demo")
                get_outline("course-v1:edX+DemoX+Demo")   # served by the local tier
            with self.assertRemoteCalls({"memcached": 0}):
                get_outline("course-v1:edX+DemoX+Demo")

pytest (``conftest.py``: ``from stratacache.testing import stratacache_isolation``)::

    def test_outline(stratacache_isolation):
        with assert_num_loads(1):
            get_outline(course_id)
            get_outline(course_id)

Isolation clears, before and after each test: the request scope (a fresh
one is set for the test), the local tier of every stratacache cache, and,
unless ``remote=False`` (``isolate_remote = False`` on the mixin), what the
remote tiers hold (``tier.clear()``: ``flush_all`` on memcached,
``FLUSHDB`` on Redis, every object under a storage tier's prefix): point the
test settings at servers of their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Optional, Union

from .scope import SCOPE_VAR, RequestScope
from .tiered import TieredCache

__all__ = [
    "CacheIsolationMixin",
    "CacheIsolationTestCase",
    "CallCounts",
    "assert_num_loads",
    "assert_remote_calls",
    "clear_caches",
    "isolated_caches",
    "resolve_cache",
    "stratacache_isolation",
]


def _known_caches(extra: Iterable[TieredCache] = ()) -> list:
    """The caches a test touches: every built ``stratacache.django`` cache,
    the process-wide ``@cached`` default, and ``extra``."""
    caches = [resolve_cache(c) for c in extra]
    try:
        from django.conf import settings

        if settings.configured:
            from .django import _caches, get_cache, named_caches_setting

            # Build the configured caches, so a test's first use finds their
            # remote tiers emptied too.
            for name in ["default", *named_caches_setting()]:
                try:
                    get_cache(name)
                except Exception:  # a misconfigured cache fails in the test, not here
                    pass
            caches.extend(_caches.values())
            from .django.checks import backend_tiered_caches

            caches.extend(backend_tiered_caches().values())
    except ImportError:
        pass
    from . import decorators

    if decorators._default is not None:
        caches.append(decorators._default)
    out: list = []
    for cache in caches:
        if all(cache is not c for c in out):
            out.append(cache)
    return out


#: What the helpers accept as a cache: a ``TieredCache``, a Django cache
#: backend over one (``caches["default"]`` on ``TieredCacheBackend``), or a
#: name (a ``CACHES`` alias on the backend, else a ``get_cache`` name).
CacheLike = Union[TieredCache, str, Any]


def resolve_cache(cache: CacheLike) -> TieredCache:
    """The ``TieredCache`` behind ``cache``: itself, a backend's ``.tiered``,
    or the cache a name stands for (a ``CACHES`` alias served by
    ``TieredCacheBackend``, else ``stratacache.django.get_cache(name)``).

    >>> resolve_cache(TieredCache([], name="doc")).name
    'doc'
    """
    if isinstance(cache, TieredCache):
        return cache
    if isinstance(cache, str):
        from .django import backend_aliases, get_cache

        if cache in backend_aliases():
            from django.core.cache import caches

            return caches[cache].tiered
        return get_cache(cache)
    tiered = getattr(cache, "tiered", None)
    if isinstance(tiered, TieredCache):
        return tiered
    raise TypeError(
        f"{cache!r} is not a stratacache cache: pass a TieredCache, a CACHES alias served by "
        "stratacache.django.backend.TieredCacheBackend, or django.core.cache.caches[alias] of one"
    )


def _default(cache: Optional[CacheLike]) -> TieredCache:
    if cache is not None:
        return resolve_cache(cache)
    from .decorators import default_cache

    return default_cache()


def clear_caches(caches: Iterable[TieredCache] = (), *, remote: bool = True) -> None:
    """Empties the local tier (and with ``remote``, every remote tier) of
    ``caches`` and of every cache stratacache built.

    >>> clear_caches(remote=False)
    """
    seen_tiers: list = []
    for cache in _known_caches(caches):
        cache.clear_local()
        if not remote:
            continue
        for tier in cache.tiers:
            if any(tier is t for t in seen_tiers):
                continue
            seen_tiers.append(tier)
            tier.clear()


@contextlib.contextmanager
def isolated_caches(caches: Iterable[TieredCache] = (), *, remote: bool = True) -> Iterator[RequestScope]:
    """Runs the block in a fresh request scope with emptied local (and
    remote) tiers, and empties them again afterwards.

    >>> with isolated_caches(remote=False) as scope:
    ...     pass
    """
    caches = list(caches)
    clear_caches(caches, remote=remote)
    scope = RequestScope()
    token = SCOPE_VAR.set(scope)
    try:
        yield scope
    finally:
        SCOPE_VAR.reset(token)
        scope.clear()
        clear_caches(caches, remote=remote)


class CallCounts:
    """What a block did, filled in when it ends: ``loads`` (keys loaded by
    loaders), ``fetches``/``writes`` per remote tier name (batched calls), and
    ``sources`` reads per source (request, local, remote, loader)."""

    def __init__(self) -> None:
        self.loads = 0
        self.fetches: dict = {}
        self.writes: dict = {}
        self.reads: dict = {}

    def __repr__(self) -> str:
        return f"<CallCounts loads={self.loads} fetches={self.fetches} writes={self.writes}>"


def _snapshot(cache: TieredCache) -> dict:
    out: dict = {"loads": 0, "reads": {}, "fetches": {}, "writes": {}}
    # A backend alias reads through a sibling cache without the local tier
    # for add/incr/touch: its counters are the alias's too.
    for one in (cache, *getattr(cache, "_stratacache_siblings", ())):
        stats = one.stats()
        out["loads"] += stats["reads"]["loads"]
        for name, value in stats["reads"].items():
            out["reads"][name] = out["reads"].get(name, 0) + value
        for t in stats["tiers"]:
            out["fetches"][t["name"]] = out["fetches"].get(t["name"], 0) + t["fetches"]
            out["writes"][t["name"]] = out["writes"].get(t["name"], 0) + t["writes"]
    return out


@contextlib.contextmanager
def _counting(cache: Optional[CacheLike]) -> Iterator[CallCounts]:
    cache = _default(cache)
    before = _snapshot(cache)
    counts = CallCounts()
    yield counts
    after = _snapshot(cache)
    counts.loads = after["loads"] - before["loads"]
    counts.fetches = {n: after["fetches"][n] - before["fetches"].get(n, 0) for n in after["fetches"]}
    counts.writes = {n: after["writes"][n] - before["writes"].get(n, 0) for n in after["writes"]}
    counts.reads = {k: after["reads"][k] - before["reads"].get(k, 0) for k in after["reads"]}


@contextlib.contextmanager
def assert_num_loads(expected: int, cache: Optional[CacheLike] = None) -> Iterator[CallCounts]:
    """Fails unless the block loads exactly ``expected`` keys (loader calls
    per key, after every tier missed) through ``cache`` (default: the
    ``@cached`` default, i.e. ``get_cache()`` under Django; a ``CACHES``
    alias on the backend, or ``caches[alias]``, counts that alias).

    >>> with assert_num_loads(1, cache):  # doctest: +SKIP
    ...     cache.get_or_load("k", lambda: 1)
    ...     cache.get_or_load("k", lambda: 1)
    """
    with _counting(cache) as counts:
        yield counts
    if counts.loads != expected:
        raise AssertionError(f"{counts.loads} key(s) loaded, {expected} expected")


@contextlib.contextmanager
def assert_remote_calls(
    expected: Union[int, Mapping[str, int]],
    cache: Optional[CacheLike] = None,
    *,
    kind: str = "fetches",
) -> Iterator[CallCounts]:
    """Fails unless the block makes exactly the ``expected`` number of
    batched remote calls: an int for every tier together, or ``{tier name:
    count}`` for the tiers named. ``kind``: ``"fetches"`` (reads, the
    default) or ``"writes"``. A batch of 50 keys is one call.

    >>> with assert_remote_calls({"memcached": 1, "redis": 0}, cache):  # doctest: +SKIP
    ...     cache.get_many(keys)
    """
    if kind not in ("fetches", "writes"):
        raise ValueError("kind must be 'fetches' or 'writes'")
    with _counting(cache) as counts:
        yield counts
    got = getattr(counts, kind)
    if isinstance(expected, Mapping):
        unknown = [n for n in expected if n not in got]
        if unknown:
            raise AssertionError(f"no tier named {', '.join(map(repr, unknown))} (tiers: {', '.join(got)})")
        wrong = {n: got[n] for n in expected if got[n] != expected[n]}
        if wrong:
            raise AssertionError(
                f"remote {kind} per tier: {dict((n, got[n]) for n in expected)}, expected {dict(expected)}"
            )
    elif sum(got.values()) != expected:
        raise AssertionError(f"{sum(got.values())} remote {kind} ({got}), {expected} expected")


class CacheIsolationMixin:
    """A ``unittest.TestCase`` mixin: every test runs in a fresh request
    scope with emptied local and remote tiers (``isolate_remote = False``
    keeps the remote tiers), and gets ``assertNumLoads`` and
    ``assertRemoteCalls``. ``stratacache_caches``: extra ``TieredCache``
    objects (or ``CACHES`` aliases on the backend) to isolate; the ones
    Django settings configure, backend aliases included, always are."""

    isolate_remote = True
    stratacache_caches: tuple = ()

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        cm = isolated_caches(self.stratacache_caches, remote=self.isolate_remote)
        cm.__enter__()
        self.addCleanup(cm.__exit__, None, None, None)  # type: ignore[attr-defined]

    def assertNumLoads(self, expected: int, cache: Optional[CacheLike] = None) -> Any:
        """See :func:`assert_num_loads`."""
        return assert_num_loads(expected, cache)

    def assertRemoteCalls(
        self,
        expected: Union[int, Mapping[str, int]],
        cache: Optional[CacheLike] = None,
        kind: str = "fetches",
    ) -> Any:
        """See :func:`assert_remote_calls`."""
        return assert_remote_calls(expected, cache, kind=kind)


#: The edx-django-utils name of the same mixin (``CacheIsolationTestCase``
#: there is a TestCase; here mix it into yours).
CacheIsolationTestCase = CacheIsolationMixin

try:
    import pytest

    @pytest.fixture
    def stratacache_isolation() -> Iterator[RequestScope]:
        """A pytest fixture: the test runs in a fresh request scope with
        emptied local and remote tiers. Import it into ``conftest.py``."""
        with isolated_caches() as scope:
            yield scope

except ImportError:  # pragma: no cover - pytest is only for tests

    def stratacache_isolation() -> Any:  # type: ignore[misc]
        raise RuntimeError("stratacache_isolation is a pytest fixture: install pytest")
