"""Drives the core's sans-I/O read machine: the core says what to do next
(fetch these keys from tier N, decode these payloads, load these keys, store
these entries, wait for another reader), this module does it and reports
back. No caching rule lives here; see ``core/src/tiered``.

There is one driver, :func:`_steps`: a generator that answers the core and
*yields* each piece of I/O it needs as an effect (call a tier's method, run
the loader, wait for another reader, sleep). Two runners perform the
effects: :meth:`Driver.run` on the calling thread, :meth:`Driver.arun` with
``await`` (a tier's ``aget_many``... when it has them, else its sync method
in a worker thread), so neither blocks an event loop.

The tier adapter contract for ``get_many(keys)``: a list with one ``bytes``
or ``None`` (not found) per key, in order. When some keys could not be
answered (one memcached server of several is down), it may return a tuple
``(values, failed)`` instead, where ``failed`` is a collection of the keys
that failed: those keys go on to the next tier (or the loader) and the
others are kept. Raising fails the whole batch.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Generator, Sequence
from typing import Any, Callable, Optional

log = logging.getLogger("stratacache")

#: A loader for the driver: given the core's keys, returns one entry per key:
#: ``(value, codec_name, payload, weight)`` or an error message (str).
LoadFn = Callable[[list], list]
ALoadFn = Callable[[list], Awaitable[list]]

#: The effects the driver yields to its runner, and what the runner sends
#: back: ``("call", tier, method, arg)`` → ``(ok, result_or_exception)``;
#: ``("load", keys)`` → the loader's list; ``("wait", ids)`` → None;
#: ``("sleep", seconds)`` → None.
Effect = tuple
Steps = Generator[Effect, Any, Any]


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


def _steps(cache: Any, read: Any, scope: Any, user_keys: Optional[list], native: bool) -> Steps:
    """The one driver. With ``native``, ``read.advance`` does in the
    extension what needs no Python (fetches and stores of tiers with a
    native client, blocking with the GIL released; decoding in the cache's
    codec); without it (async), every step comes here."""
    if native:
        natives = cache._natives
        codec = cache._codec
        loads = codec.decoder if cache._fast_decoder else codec.loads
        codec_name = codec.name
    writer = cache._writer  # background writes: this read's stores are queued
    # Handed to the writer when the read ends, waits or fails, so its thread
    # does not compete with the rest of this read for the GIL.
    deferred: list = []
    try:
        while True:
            deferring = writer is not None
            step = read.advance(natives, loads, codec_name, deferring) if native else read.next(deferring)
            kind = step[0]
            if kind == "done":
                return read.finish(scope, user_keys)
            if deferring and kind in ("store", "delete", "seal"):
                deferred.append(step)  # lease releases stay behind their stores
                continue
            if deferred and kind in ("wait", "sleep"):
                writer.submit_steps(deferred)
                deferred = []
            effects = HANDLERS[kind](cache, read, step)  # a handler doing I/O yields effects
            if effects is not None:
                yield from effects
    finally:
        if deferred:
            writer.submit_steps(deferred)


def _on_fetch(cache: Any, read: Any, step: tuple) -> Steps:
    _, tier, keys = step
    # A tier that tells failed keys apart (a server of several down)
    # answers with ``(values, failed_keys)``: the others are kept.
    ok, values = yield ("call", tier, _fetch_method(cache._tiers[tier]), keys)
    if ok:
        _fetched(cache, read, tier, keys, values)
    else:
        read.failed(tier, describe(values), cache._now())


def _on_tier_error(cache: Any, read: Any, step: tuple) -> None:
    """A native fetch or store failed (the read knows a fetch failed)."""
    _, tier, op, exc = step
    cache._tier_error(tier, op, exc)
    if op != "get":
        cache._core.tier_failed(tier, cache._now())


def _on_decode_errors(cache: Any, read: Any, step: tuple) -> None:
    for key, message in step[1]:
        log.warning("stratacache: could not decode the value of %r: %s", key, message)


def _on_load(cache: Any, read: Any, step: tuple) -> Steps:
    start = time.perf_counter()
    out = yield ("load", step[1])
    read.loaded(out, int((time.perf_counter() - start) * 1000))


def _on_write(cache: Any, read: Any, step: tuple) -> Steps:
    kind, tier, items = step
    yield from _write(cache, kind, tier, items, strict=False)


def _on_seal(cache: Any, read: Any, step: tuple) -> Steps:
    # Unsealed writes come only to a background writer; sealed here if not.
    for job in step[1]:
        for kind, tier, entries in job.seal():
            yield from _write(cache, kind, tier, entries, strict=False)


def _on_wait(cache: Any, read: Any, step: tuple) -> Steps:
    yield ("wait", step[1])
    read.woke()


def _on_lease(cache: Any, read: Any, step: tuple) -> Steps:
    _, tier, items = step
    ok, taken = yield ("call", tier, "add_many", items)
    if ok:
        read.leased(list(taken))
    else:
        read.failed(tier, describe(taken), cache._now())


def _on_sleep(cache: Any, read: Any, step: tuple) -> Steps:
    yield ("sleep", step[1] / 1000)
    read.slept(cache._now())


#: One handler per step tag but ``done`` (which ends :func:`_steps`; a
#: handler that does I/O is a generator of effects); the
#: tags are the core's (``_core.STEP_KINDS``, from ``Step::KINDS``), and a
#: test checks this table covers exactly them.
HANDLERS: dict = {
    "fetch": _on_fetch,
    "tier_error": _on_tier_error,
    "decode": lambda cache, read, step: read.decoded(cache._decode(step[1])),
    "decode_errors": _on_decode_errors,
    "load": _on_load,
    "store": _on_write,
    "delete": _on_write,
    "seal": _on_seal,
    "notify": lambda cache, read, step: cache._waiters.notify(step[1]),
    "wait": _on_wait,
    "lease": _on_lease,
    "sleep": _on_sleep,
}


def _fetch_method(tier: Any) -> str:
    """``get_many_outcome`` where the tier's class pairs it with its own
    ``get_many`` (and ``aget_many``); a subclass that overrides only those
    is called as written."""
    cls = type(tier)
    for owner in cls.__mro__:
        if "get_many_outcome" in owner.__dict__:
            same = all(getattr(cls, m, None) is getattr(owner, m, None) for m in ("get_many", "aget_many"))
            return "get_many_outcome" if same else "get_many"
    return "get_many"


def _write(cache: Any, kind: str, tier: int, items: list, strict: bool) -> Steps:
    """Issues one write (a store or delete step): the one place writes go
    out, for reads (back-fills, write-through, lease releases) and for
    ``set``/``delete``. A failure is logged and counted against the tier."""
    method = "set_many" if kind == "store" else "delete_many"
    ok, exc = yield ("call", tier, method, items)
    if not ok:
        cache._tier_error(tier, "set" if kind == "store" else kind, exc)
        cache._core.tier_failed(tier, cache._now())
        if strict and cache.strict:
            raise _core_tier_error(cache, tier, exc) from exc


def _writes(cache: Any, steps: list) -> Steps:
    for kind, tier, items in steps:
        yield from _write(cache, kind, tier, items, strict=True)


class Driver:
    """Runs the driver's effects for one cache: synchronously (:meth:`run`)
    or with ``await`` (:meth:`arun`). Both go through one runner,
    :func:`_run`; only the way an effect is performed differs."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache

    def _failed_call(self, tier: int, method: str, exc: Exception) -> tuple:
        if method in ("get_many", "get_many_outcome", "add_many"):  # writes log in `_write`
            self.cache._tier_error(tier, "add" if method == "add_many" else "get", exc)
        return (False, exc)

    async def _perform(self, effect: Effect, load: Optional[LoadFn]) -> Any:
        """Performs an effect on this thread (this coroutine never suspends)."""
        cache = self.cache
        kind = effect[0]
        if kind == "call":
            _, tier, method, arg = effect
            try:
                return (True, getattr(cache._tiers[tier], method)(arg))
            except Exception as exc:
                return self._failed_call(tier, method, exc)
        if kind == "load":
            return _loader(load)(effect[1])
        if kind == "wait":
            return cache._waiters.wait(effect[1], cache.wait_timeout)
        return time.sleep(effect[1])

    async def _aperform(self, effect: Effect, load: Optional[ALoadFn]) -> Any:
        """Performs an effect with ``await``."""
        cache = self.cache
        kind = effect[0]
        if kind == "call":
            _, tier, method, arg = effect
            try:
                return (True, await _call(cache._tiers[tier], method, arg))
            except Exception as exc:
                return self._failed_call(tier, method, exc)
        if kind == "load":
            return await _loader(load)(effect[1])
        if kind == "wait":
            return await cache._waiters.wait_async(effect[1], cache.wait_timeout)
        return await asyncio.sleep(effect[1])

    def run(self, read: Any, scope: Any, load: Optional[LoadFn], user_keys: Optional[list] = None) -> Any:
        """Drives ``read`` to the end; returns ``read.finish(scope, user_keys)``."""
        steps = _steps(self.cache, read, scope, user_keys, True)
        return _complete(_run(self.cache, steps, lambda e: self._perform(e, load), read))

    async def arun(
        self, read: Any, scope: Any, load: Optional[ALoadFn], user_keys: Optional[list] = None
    ) -> Any:
        """Async :meth:`run`."""
        steps = _steps(self.cache, read, scope, user_keys, False)
        return await _run(self.cache, steps, lambda e: self._aperform(e, load), read)

    def run_writes(self, steps: list) -> None:
        """Runs the core's write steps (``set_all_tiers``, ``delete_all_tiers``)."""
        _complete(_run(self.cache, _writes(self.cache, steps), lambda e: self._perform(e, None)))

    async def arun_writes(self, steps: list) -> None:
        """Async :meth:`run_writes`."""
        await _run(self.cache, _writes(self.cache, steps), lambda e: self._aperform(e, None))


async def _run(cache: Any, steps: Steps, perform: Callable, read: Any = None) -> Any:
    """The one runner: sends each effect's outcome back into the driver.
    A read abandoned by an exception releases its single-flight claims."""
    answer: Any = None
    try:
        while True:
            answer = await perform(steps.send(answer))
    except StopIteration as stop:
        return stop.value
    except BaseException:
        steps.close()  # the driver hands its queued writes over
        if read is not None:
            cache._waiters.notify(read.cancel())
        raise


def _complete(coro: Any) -> Any:
    """Runs a coroutine that never suspends (the sync runner) to its end."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("stratacache: the sync driver was asked to await")


def _loader(load: Any) -> Any:
    if load is None:
        raise RuntimeError("the core asked to load without a loader")
    return load


def _fetched(cache: Any, read: Any, tier: int, keys: list, values: Any) -> None:
    """Hands a tier's answer to the core: one ``bytes`` or ``None`` per key,
    or ``(values, failed_keys)`` when some keys failed. An answer of another
    shape (an adapter bug) is a failure of that tier, not an exception for
    the caller."""
    failed = None
    if isinstance(values, tuple) and len(values) == 2:
        values, failed_keys = values
        failed_keys = set(failed_keys)
        failed = [i for i, key in enumerate(keys) if key in failed_keys]
        if failed:
            log.warning(
                "stratacache: tier %r could not answer %d key(s)", cache._tiers[tier].name, len(failed)
            )
    try:
        read.fetched(tier, values, failed)
    except (TypeError, ValueError) as exc:
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
