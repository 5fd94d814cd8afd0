"""The one driver of the core's sans-I/O read machine (``core/src/tiered``;
no caching rule lives here): :func:`_steps` answers the core and yields
each piece of I/O as an effect, ``("call", tier, method, arg)`` →
``(ok, result_or_exception)``, ``("load", keys)``, ``("wait", ids,
timeout)`` or ``("sleep", seconds)``; one runner, :func:`_run`, performs
them on the calling thread or with ``await``."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Generator, Iterable
from typing import Any, Callable, Optional

from ._errors import TierError, describe

log = logging.getLogger("stratacache")

#: A loader for the driver: given the core's keys, returns one entry per key:
#: ``(value, codec_name, payload, weight)`` or an error message (str).
LoadFn = Callable[[list], Any]
Steps = Generator[tuple, Any, Any]


def _steps(cache: Any, read: Any, scope: Any, user_keys: Optional[list], native: bool) -> Steps:
    """The one driver. With ``native`` (sync), ``read.advance`` does in the
    extension what needs no Python: native clients' fetches and stores with
    the GIL released, decoding in the cache's codec."""
    codec, writer = cache._codec, cache._writer  # with a writer, this read's stores are queued
    native_args = (cache._natives, codec.decoder if cache._fast_decoder else codec.loads, codec.name)
    deferring = writer is not None
    # Handed to the writer when the read ends, waits or fails, so its thread
    # does not compete with the rest of this read for the GIL.
    deferred: list = []
    try:
        while True:
            step = read.advance(*native_args, deferring) if native else read.next(deferring)
            kind = step[0]
            if kind == "done":
                return read.finish(scope, user_keys)
            if deferring and kind in ("store", "delete", "seal"):
                deferred.append(step)  # lease releases stay behind their stores
                continue
            if deferred and kind in ("wait", "sleep"):
                writer.submit_steps(deferred)
                deferred = []
            yield from _answer(cache, read, step)
    finally:
        if deferred:
            writer.submit_steps(deferred)


#: The step tags :func:`_answer` handles: the core's (``_core.STEP_KINDS``)
#: but ``done``, which ends :func:`_steps` (a test checks they match).
HANDLED = ("fetch", "decode", "load", "store", "delete", "seal", "notify", "wait", "lease", "sleep")
HANDLED += ("tier_error", "decode_errors")  # from ``advance``


def _answer(cache: Any, read: Any, step: tuple) -> Steps:
    """Answers one step; yields the I/O it needs as effects."""
    kind = step[0]
    if kind == "fetch":
        _, tier, keys = step
        ok, values = yield ("call", tier, _fetch_method(cache._tiers[tier]), keys)
        failed = None
        # (values, failed keys): the others are kept. Values are bytes or
        # None, so a tuple of two values is an answer, not an outcome.
        if ok and type(values) is tuple and len(values) == 2 and isinstance(values[0], (list, tuple)):
            values, failed_keys = values[0], set(values[1])
            failed = [i for i, key in enumerate(keys) if key in failed_keys]
            if failed:
                log.warning(
                    "stratacache: tier %r could not answer %d key(s)", cache._tiers[tier].name, len(failed)
                )
        try:
            if ok:
                return read.fetched(tier, values, failed)
        except (TypeError, ValueError) as exc:  # an adapter bug fails the tier, not the caller
            values = TypeError(f"get_many must return one bytes or None per key: {describe(exc)}")
            cache._tier_error(tier, "get", values)
        read.failed(tier, describe(values), cache._now())
    elif kind == "decode":
        read.decoded(cache._decode(step[1]))
    elif kind == "load":
        start = time.perf_counter()
        out = yield ("load", step[1])
        read.loaded(out, int((time.perf_counter() - start) * 1000))
    elif kind in ("store", "delete"):
        yield from _writes(cache, [step], strict=False)
    elif kind == "seal":  # unsealed writes come only to a background writer; sealed here if not
        yield from _writes(cache, (w for job in step[1] for w in job.seal()), strict=False)
    elif kind == "notify":
        cache._waiters.notify(step[1])
    elif kind == "wait":
        yield ("wait", step[1], cache.wait_timeout)
        read.woke()
    elif kind == "lease":
        ok, taken = yield ("call", step[1], "add_many", step[2])
        if ok:
            read.leased(list(taken))
        else:
            read.failed(step[1], describe(taken), cache._now())
    elif kind == "sleep":
        yield ("sleep", step[1] / 1000)
        read.slept(cache._now())
    elif kind == "tier_error":  # a native fetch or store failed (the read knows a fetch failed)
        _, tier, op, exc = step
        if op == "get":
            cache._tier_error(tier, op, exc)
        else:
            cache._wrote(tier, op, exc)
    elif kind == "decode_errors":
        for key, message in step[1]:
            log.warning("stratacache: could not decode the value of %r: %s", key, message)
    else:
        raise RuntimeError(f"stratacache: the driver got an unknown step {kind!r}")


def _fetch_method(tier: Any) -> str:
    """``get_many_outcome`` where the tier's class pairs it with its own
    ``get_many`` and ``aget_many``; a subclass that overrides only those is
    called as written."""
    cls = type(tier)
    owner = next((c for c in cls.__mro__ if "get_many_outcome" in c.__dict__), None)
    same = owner is not None and all(
        getattr(cls, m, 0) is getattr(owner, m, 0) for m in ("get_many", "aget_many")
    )
    return "get_many_outcome" if same else "get_many"


def _writes(cache: Any, steps: Iterable, strict: bool = True) -> Steps:
    """Issues store and delete steps: the one place writes go out, for reads
    (back-fills, write-through, lease releases) and for ``set``/``delete``.
    A failure is logged and counted against the tier; a success ends the
    tier's cool-down (it answered)."""
    for kind, tier, items in steps:
        ok, exc = yield ("call", tier, "set_many" if kind == "store" else "delete_many", items)
        cache._wrote(tier, "set" if kind == "store" else kind, None if ok else exc)
        if not ok and strict and cache.strict:
            raise TierError(cache._tiers[tier].name, describe(exc)) from exc


class Driver:
    """The runner for one cache: ``run*`` on the calling thread, ``arun*``
    with ``await``; all through :func:`_run`."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache

    def run(self, read: Any, scope: Any, load: Optional[LoadFn], user_keys: Optional[list] = None) -> Any:
        """Drives ``read`` to the end; returns ``read.finish(scope, user_keys)``."""
        return _complete(self.arun(read, scope, load, user_keys, aio=False))

    async def arun(
        self, read: Any, scope: Any, load: Optional[LoadFn], user_keys: Any = None, aio: bool = True
    ):
        """:meth:`run` with ``await``."""
        return await _run(self.cache, _steps(self.cache, read, scope, user_keys, not aio), aio, load, read)

    def run_writes(self, steps: list) -> None:
        """Runs the core's write steps (``set_all_tiers``, ``delete_all_tiers``)."""
        _complete(self.arun_writes(steps, aio=False))

    async def arun_writes(self, steps: list, aio: bool = True) -> None:
        """:meth:`run_writes` with ``await``."""
        await _run(self.cache, _writes(self.cache, steps), aio)


async def _run(cache: Any, steps: Steps, aio: bool, load: Optional[LoadFn] = None, read: Any = None) -> Any:
    """The one runner: performs each effect (with ``await`` if ``aio``, else
    on this thread, so the coroutine never suspends) and sends its outcome
    back into the driver. A read abandoned by an exception releases its
    single-flight claims."""
    answer: Any = None
    try:
        while True:
            kind, *args = steps.send(answer)
            if kind == "call":
                answer = await _call(cache, aio, *args)
                continue
            if kind == "load" and load is None:
                raise RuntimeError("the core asked to load without a loader")
            sync, asynchronous = {
                "load": (load, load),
                "wait": (cache._waiters.wait, cache._waiters.wait_async),
                "sleep": (time.sleep, asyncio.sleep),
            }[kind]
            answer = (await asynchronous(*args)) if aio else sync(*args)
    except StopIteration as stop:
        return stop.value
    except BaseException:
        steps.close()  # the driver hands its queued writes over
        if read is not None:
            cache._waiters.notify(read.cancel())
        raise


async def _call(cache: Any, aio: bool, tier: int, method: str, arg: Any) -> tuple:
    """``(True, result)`` of a tier's method, or ``(False, exception)``. With
    ``aio``, its ``a<method>`` if that is a coroutine function, else the
    method in a worker thread."""
    obj = cache._tiers[tier]
    try:
        if not aio:
            return (True, getattr(obj, method)(arg))
        amethod = getattr(obj, "a" + method, None)
        if amethod is not None and inspect.iscoroutinefunction(amethod):
            return (True, await amethod(arg))
        return (True, await asyncio.to_thread(getattr(obj, method), arg))
    except Exception as exc:
        if method in ("get_many", "get_many_outcome", "add_many"):  # writes log in `_writes`
            cache._tier_error(tier, "add" if method == "add_many" else "get", exc)
        return (False, exc)


def _complete(coro: Any) -> Any:
    """Runs a coroutine that never suspends (the sync runner) to its end."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("stratacache: the sync driver was asked to await")
