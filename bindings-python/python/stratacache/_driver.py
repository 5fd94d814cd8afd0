"""Drives the core's sans-I/O read machine: the core says what to do next
(fetch these keys from tier N, decode these payloads, load these keys, store
these entries, wait for another reader), this module does it and reports
back. No caching rule lives here; see ``core/src/tiered``.

The sync driver runs on the calling thread; the async driver awaits the
tiers' async methods (or runs their sync methods in a worker thread) and the
loader, so neither blocks an event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Sequence
from typing import Any, Callable, Optional

log = logging.getLogger("stratacache")

#: A loader for the driver: given the core's keys, returns one entry per key:
#: ``(value, codec_name, payload, weight)`` or an error message (str).
LoadFn = Callable[[list], list]
ALoadFn = Callable[[list], Awaitable[list]]


class Waiters:
    """Where ``notify`` steps of one read wake the ``wait`` steps of others,
    across threads and asyncio tasks (single-flight within a process)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._ready: set[int] = set()
        self._futures: dict[int, list] = {}

    def notify(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self._cond:
            self._ready.update(ids)
            if len(self._ready) > 100_000:  # ids of waiters that gave up
                self._ready.clear()
                self._ready.update(ids)
            wake = [self._futures.pop(i) for i in ids if i in self._futures]
            self._cond.notify_all()
        for futures in wake:
            for loop, future in futures:
                loop.call_soon_threadsafe(_resolve, future)

    def wait(self, ids: Sequence[int], timeout: float) -> bool:
        with self._cond:
            done = self._cond.wait_for(lambda: all(i in self._ready for i in ids), timeout)
            self._ready.difference_update(ids)
        return done

    async def wait_async(self, ids: Sequence[int], timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        futures = []
        with self._cond:
            for i in ids:
                if i not in self._ready:
                    future = loop.create_future()
                    self._futures.setdefault(i, []).append((loop, future))
                    futures.append(future)
        done = True
        if futures:
            try:
                await asyncio.wait_for(asyncio.gather(*futures), timeout)
            except asyncio.TimeoutError:
                done = False
        with self._cond:
            self._ready.difference_update(ids)
            for i in ids:
                self._futures.pop(i, None)
        return done


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Driver:
    """What a read needs from its cache: the tiers, codecs, waiters, clock,
    core and logging of tier failures."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache

    # -- sync ---------------------------------------------------------------

    def run(self, read: Any, scope: Any, load: Optional[LoadFn], user_keys: Optional[list] = None) -> Any:
        """Drives ``read`` to the end; returns ``read.finish(scope, user_keys)``.

        ``read.advance`` does in the extension what needs no Python: fetches
        and stores of tiers with a native client, decoding in the cache's
        codec. Everything else comes back here as a step."""
        cache = self.cache
        tiers = cache._tiers
        natives = cache._natives
        codec = cache._codec
        loads = codec.decoder if cache._fast_decoder else codec.loads
        codec_name = codec.name
        writer = cache._writer  # background writes: stores come back here to be queued
        # Handed to the writer when the read ends or waits, so its thread
        # does not compete with the rest of this read for the GIL.
        deferred: list = []
        try:
            while True:
                step = read.advance(natives, loads, codec_name, writer is not None)
                kind = step[0]
                if kind == "done":
                    result = read.finish(scope, user_keys)
                    if deferred:
                        writer.submit_steps(deferred)
                    return result
                if kind == "fetch":
                    _, tier, keys = step
                    try:
                        values = tiers[tier].get_many(keys)
                    except Exception as exc:
                        cache._tier_error(tier, "get", exc)
                        read.failed(tier, describe(exc), cache._now())
                    else:
                        _fetched(cache, read, tier, values)
                elif kind == "tier_error":  # a native fetch or store failed
                    _, tier, op, exc = step
                    cache._tier_error(tier, op, exc)
                    if op != "get":
                        cache._core.tier_failed(tier, cache._now())
                elif kind == "decode":
                    read.decoded(cache._decode(step[1]))
                elif kind == "decode_errors":
                    for key, message in step[1]:
                        log.warning("stratacache: could not decode the value of %r: %s", key, message)
                elif kind == "load":
                    if load is None:
                        raise RuntimeError("the core asked to load without a loader")
                    start = time.perf_counter()
                    out = load(step[1])
                    read.loaded(out, int((time.perf_counter() - start) * 1000))
                elif kind == "store":
                    _, tier, entries = step
                    if writer is not None:
                        deferred.append(step)
                        continue
                    try:
                        tiers[tier].set_many(entries)
                    except Exception as exc:
                        cache._tier_error(tier, "set", exc)
                        cache._core.tier_failed(tier, cache._now())
                elif kind == "notify":
                    cache._waiters.notify(step[1])
                elif kind == "wait":
                    if deferred:
                        writer.submit_steps(deferred)
                        deferred = []
                    cache._waiters.wait(step[1], cache.wait_timeout)
                    read.woke()
                elif kind == "lease":
                    _, tier, items = step
                    try:
                        taken = tiers[tier].add_many(items)
                    except Exception as exc:
                        cache._tier_error(tier, "add", exc)
                        read.failed(tier, describe(exc), cache._now())
                    else:
                        read.leased(list(taken))
                elif kind == "sleep":
                    if deferred:
                        writer.submit_steps(deferred)
                        deferred = []
                    time.sleep(step[1] / 1000)
                    read.slept(cache._now())
                elif kind == "delete":
                    _, tier, keys = step
                    if writer is not None:  # lease releases go after the queued stores
                        deferred.append(step)
                        continue
                    try:
                        tiers[tier].delete_many(keys)
                    except Exception as exc:
                        cache._tier_error(tier, "delete", exc)
                        cache._core.tier_failed(tier, cache._now())
                else:  # pragma: no cover - a core newer than this driver
                    raise RuntimeError(f"unknown step {kind!r} from the core")
        except BaseException:
            cache._waiters.notify(read.cancel())
            if deferred:
                writer.submit_steps(deferred)
            raise

    def run_writes(self, steps: list) -> None:
        cache = self.cache
        for step in steps:
            kind, tier, items = step
            try:
                if kind == "store":
                    cache._tiers[tier].set_many(items)
                else:
                    cache._tiers[tier].delete_many(items)
            except Exception as exc:
                cache._tier_error(tier, kind, exc)
                cache._core.tier_failed(tier, cache._now())
                if cache.strict:
                    raise _core_tier_error(cache, tier, exc) from exc

    # -- async --------------------------------------------------------------

    async def arun(
        self, read: Any, scope: Any, load: Optional[ALoadFn], user_keys: Optional[list] = None
    ) -> Any:
        cache = self.cache
        tiers = cache._tiers
        try:
            while True:
                step = read.next()
                kind = step[0]
                if kind == "fetch":
                    _, tier, keys = step
                    try:
                        values = await _call(tiers[tier], "get_many", keys)
                    except Exception as exc:
                        cache._tier_error(tier, "get", exc)
                        read.failed(tier, describe(exc), cache._now())
                    else:
                        _fetched(cache, read, tier, values)
                elif kind == "decode":
                    read.decoded(cache._decode(step[1]))
                elif kind == "load":
                    if load is None:
                        raise RuntimeError("the core asked to load without a loader")
                    start = time.perf_counter()
                    out = await load(step[1])
                    read.loaded(out, int((time.perf_counter() - start) * 1000))
                elif kind == "store":
                    _, tier, entries = step
                    if cache._writer is not None:
                        cache._writer.submit(tier, entries)
                        continue
                    try:
                        await _call(tiers[tier], "set_many", entries)
                    except Exception as exc:
                        cache._tier_error(tier, "set", exc)
                        cache._core.tier_failed(tier, cache._now())
                elif kind == "notify":
                    cache._waiters.notify(step[1])
                elif kind == "wait":
                    await cache._waiters.wait_async(step[1], cache.wait_timeout)
                    read.woke()
                elif kind == "lease":
                    _, tier, items = step
                    try:
                        taken = await _call(tiers[tier], "add_many", items)
                    except Exception as exc:
                        cache._tier_error(tier, "add", exc)
                        read.failed(tier, describe(exc), cache._now())
                    else:
                        read.leased(list(taken))
                elif kind == "sleep":
                    await asyncio.sleep(step[1] / 1000)
                    read.slept(cache._now())
                elif kind == "delete":
                    _, tier, keys = step
                    if cache._writer is not None:
                        cache._writer.submit_delete(tier, keys)
                        continue
                    try:
                        await _call(tiers[tier], "delete_many", keys)
                    except Exception as exc:
                        cache._tier_error(tier, "delete", exc)
                        cache._core.tier_failed(tier, cache._now())
                elif kind == "done":
                    return read.finish(scope, user_keys)
                else:  # pragma: no cover
                    raise RuntimeError(f"unknown step {kind!r} from the core")
        except BaseException:
            cache._waiters.notify(read.cancel())
            raise

    async def arun_writes(self, steps: list) -> None:
        cache = self.cache
        for kind, tier, items in steps:
            try:
                await _call(cache._tiers[tier], "set_many" if kind == "store" else "delete_many", items)
            except Exception as exc:
                cache._tier_error(tier, kind, exc)
                cache._core.tier_failed(tier, cache._now())
                if cache.strict:
                    raise _core_tier_error(cache, tier, exc) from exc


def _fetched(cache: Any, read: Any, tier: int, values: Any) -> None:
    """Hands a tier's answer to the core; an answer that is not one ``bytes``
    or ``None`` per key (an adapter bug) is a failure of that tier, not an
    exception for the caller."""
    try:
        read.fetched(tier, values)
    except TypeError as exc:
        exc = TypeError(f"get_many must return one bytes or None per key: {describe(exc)}")
        cache._tier_error(tier, "get", exc)
        read.failed(tier, describe(exc), cache._now())


async def _call(tier: Any, method: str, arg: Any) -> Any:
    """A tier's async method (``aget_many``, ...) if it has one, else its
    sync method in a worker thread."""
    amethod = getattr(tier, "a" + method, None)
    if amethod is not None and inspect.iscoroutinefunction(amethod):
        return await amethod(arg)
    return await asyncio.to_thread(getattr(tier, method), arg)


def _core_tier_error(cache: Any, tier: int, exc: BaseException) -> Exception:
    from ._errors import TierError

    return TierError(cache._tiers[tier].name, describe(exc))
