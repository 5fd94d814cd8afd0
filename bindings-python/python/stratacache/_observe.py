"""Read observers: while at least one is registered, every read of every
``TieredCache`` (sync and async, single and batched) is timed and reported
as a :class:`ReadEvent` (keys, tiers consulted, where the keys came from,
duration). The Django Debug Toolbar panel and the latency histograms of
``stratacache.metrics`` use it; with no observer, reads run unwrapped.

::

    from stratacache._observe import observe
    with observe(events.append):
        cache.get_many(keys)
    events[0].sources   # {"local": 3, "memcached": 7}
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable

from .tiered import TieredCache

#: The read methods wrapped, and the argument holding their key(s).
READ_METHODS = {
    "get_cached_response": "key",
    "get": "key",
    "get_many": "keys",
    "get_or_load": "key",
    "get_many_or_load": "keys",
    "prefetch": "keys",
    "refresh": "key",
    "lookup_many": "keys",
    "aget_cached_response": "key",
    "aget": "key",
    "aget_many": "keys",
    "aget_or_load": "key",
    "aget_many_or_load": "keys",
    "aprefetch": "keys",
    "alookup_many": "keys",
}


@dataclass
class ReadEvent:
    """One read: ``cache`` name, ``method``, ``keys``, the remote tiers
    ``consulted`` (batched fetches per tier name), ``sources`` (keys answered
    per source: request, local, a tier name, loader; ``miss`` for none),
    ``seconds``, and the ``error`` it raised, if any. Counted from the
    cache's counters around the call: reads running at the same time in
    other threads can add to them."""

    cache: str
    method: str
    keys: list
    seconds: float
    consulted: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)
    bytes_read: int = 0
    error: str = ""

    @property
    def source(self) -> str:
        """Where the slowest key of the read came from: ``loader`` if any key
        was loaded, else ``miss`` if any key was found nowhere (every tier
        was asked), else the last remote tier that answered, ``local``,
        ``request``."""
        order = [
            "loader",
            "miss",
            *reversed([k for k in self.sources if k not in _FIXED]),
            "local",
            "request",
        ]
        for name in order:
            if self.sources.get(name):
                return name
        return "miss"


_FIXED = {"loader", "local", "request", "miss"}
_lock = threading.Lock()
_observers: list = []
_originals: dict = {}
#: Set inside an observed read: the calls it makes (``get`` calls
#: ``get_cached_response``) are part of it, not reads of their own.
_inside: contextvars.ContextVar = contextvars.ContextVar("stratacache_observed_read", default=False)


def _snapshot(cache: TieredCache) -> tuple:
    stats = cache.stats()
    reads = stats["reads"]
    return (
        reads["request_hits"],
        reads["local_hits"],
        reads["loads"],
        reads["keys"],
        [(t["name"], t["fetches"], t["hits"], t["bytes_read"]) for t in stats["tiers"]],
    )


def _event(
    cache: TieredCache, method: str, keys: list, before: tuple, seconds: float, error: str
) -> ReadEvent:
    after = _snapshot(cache)
    sources = {
        "request": after[0] - before[0],
        "local": after[1] - before[1],
        "loader": after[2] - before[2],
    }
    consulted = {}
    bytes_read = 0
    answered = sources["request"] + sources["local"] + sources["loader"]
    for (name, f0, h0, b0), (_, f1, h1, b1) in zip(before[4], after[4]):
        if f1 > f0:
            consulted[name] = f1 - f0
        if h1 > h0:
            sources[name] = h1 - h0
            answered += h1 - h0
        bytes_read += b1 - b0
    sources["miss"] = max(0, (after[3] - before[3]) - answered)
    return ReadEvent(
        cache=cache.name,
        method=method,
        keys=keys,
        seconds=seconds,
        consulted=consulted,
        sources={k: v for k, v in sources.items() if v},
        bytes_read=bytes_read,
        error=error,
    )


def _keys_of(arg: Any, plural: bool) -> list:
    if not plural:
        return [arg]
    try:
        return list(arg)
    except TypeError:
        return []


def _emit(event: ReadEvent) -> None:
    for observer in list(_observers):
        try:
            observer(event)
        except Exception:  # an observer never breaks a read
            pass


@contextlib.contextmanager
def _observed(cache: TieredCache, method: str, keys: list) -> Iterator[None]:
    """Times the read in the block and emits its event (also when it raises);
    the calls the read makes inside are not reads of their own."""
    token = _inside.set(True)
    before = _snapshot(cache)
    start = time.perf_counter()
    error = ""
    try:
        yield
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        _inside.reset(token)
        _emit(_event(cache, method, keys, before, time.perf_counter() - start, error))


def _wrap(name: str, original: Callable, plural: bool) -> Callable:
    # One wrapper per kind of method (an async one must await inside the
    # block); both delegate the observing to _observed. A plural argument is
    # listed once, so an iterator given by the caller is not consumed twice.
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def awrapper(self: TieredCache, first: Any, *args: Any, **kwargs: Any) -> Any:
            if _inside.get():
                return await original(self, first, *args, **kwargs)
            keys = _keys_of(first, plural)
            with _observed(self, name, keys):
                return await original(self, keys if plural else first, *args, **kwargs)

        return awrapper

    @functools.wraps(original)
    def wrapper(self: TieredCache, first: Any, *args: Any, **kwargs: Any) -> Any:
        if _inside.get():
            return original(self, first, *args, **kwargs)
        keys = _keys_of(first, plural)
        with _observed(self, name, keys):
            return original(self, keys if plural else first, *args, **kwargs)

    return wrapper


def add_observer(observer: Callable[[ReadEvent], None]) -> None:
    """Calls ``observer(event)`` after every read until removed."""
    with _lock:
        _observers.append(observer)
        if _originals:
            return
        for name, arg in READ_METHODS.items():
            original = TieredCache.__dict__[name]
            _originals[name] = original
            setattr(TieredCache, name, _wrap(name, original, arg == "keys"))


def remove_observer(observer: Callable[[ReadEvent], None]) -> None:
    """Stops calling ``observer``; the last one removed unwraps the reads."""
    with _lock:
        if observer in _observers:
            _observers.remove(observer)
        if _observers or not _originals:
            return
        for name, original in _originals.items():
            setattr(TieredCache, name, original)
        _originals.clear()


@contextlib.contextmanager
def observe(observer: Callable[[ReadEvent], None]) -> Iterator[None]:
    """Calls ``observer(event)`` after every read inside the block."""
    add_observer(observer)
    try:
        yield
    finally:
        remove_observer(observer)
