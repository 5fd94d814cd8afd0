"""Writes off the request path: back-fill and load-then-store writes of a
``TieredCache`` go to a bounded queue that one daemon thread drains, so the
first read of a cold key returns after its loader, not after its writes.

::

    cache = TieredCache(
        [MemcachedTier(servers), StorageTier(s3)],
        background_writes=True,                 # or BackgroundWrites(max_bytes=...)
    )
    cache.get_or_load(key, build)   # returns once loaded; memcached/S3 written behind
    cache.flush_writes()            # waits for the queue (tests, management commands)
    cache.close()                   # drains and stops the thread (atexit does it too)

What goes to the queue: the ``store`` steps of reads (values found in a
lower tier written to the tiers above, and loaded values written to every
tier), handed out unsealed (``SealJob``): the writer thread signs,
compresses and chunks them, so a large value's envelope costs the request
nothing (its codec's ``dumps`` still runs on the caller's thread). What never does: ``set_all_tiers``/``set``, ``delete_all_tiers`` and
``delete_many`` (explicit writes stay synchronous). An explicit write of a
key supersedes queued writes of that key: they are skipped, and a queued
write already on the wire finishes first, so an older value never lands
after a newer one.

The queue is bounded by steps (``max_steps``) and by bytes (``max_bytes``):
a write that does not fit is dropped and counted (the value is still in the
local tier of this process; other processes load it or find it in a lower
tier). Counters: ``cache.stats()["background_writes"]``.
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Optional

from ._driver import describe

__all__ = ["BackgroundWriter", "BackgroundWrites"]

log = logging.getLogger("stratacache")


@dataclass(frozen=True)
class BackgroundWrites:
    """Bounds of a cache's background write queue.

    ``max_steps``: queued store batches (one per tier per read);
    ``max_bytes``: queued value bytes (a 3 MiB value queued for two tiers
    counts 6 MiB); ``drain_timeout``: seconds ``close()`` (and the exit
    handler) waits for the queue to empty.

    ::

        TieredCache(tiers, background_writes=BackgroundWrites(max_bytes=128 * 1024 * 1024))
    """

    max_steps: int = 1000
    max_bytes: int = 64 * 1024 * 1024
    drain_timeout: float = 5.0


_MERGE_BYTES = 4 * 1024 * 1024
_MERGE_ENTRIES = 500


def _entry_bytes(entries: Any) -> int:
    return sum(len(e[1]) for e in entries)


class BackgroundWriter:
    """One cache's queue of store steps and the daemon thread that writes
    them, in order, through the tier adapters' ``set_many``.

    ::

        writer = BackgroundWriter(cache, BackgroundWrites())
        writer.submit(0, [("key", b"envelope", 60_000)])
        writer.flush(timeout=1.0)
        writer.stats()["written"]   # 1
    """

    def __init__(self, cache: Any, config: BackgroundWrites) -> None:
        self._cache = weakref.proxy(cache)
        self.config = config
        self._cond = threading.Condition()
        self._queue: collections.deque = collections.deque()
        self._bytes = 0
        self._seq = 0
        # key -> seq of the explicit write that superseded queued writes.
        self._superseded: dict = {}
        self._inflight: frozenset = frozenset()
        self._busy = False
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        self._dropped_logged_at = -1e9
        self._counts = {
            "queued": 0,
            "written": 0,
            "dropped": 0,
            "failed": 0,
            "superseded": 0,
            "deletes_queued": 0,
        }
        _register(self)

    # -- the request path ---------------------------------------------------

    def submit(self, tier: int, entries: list) -> bool:
        """Queues one store step (``entries``: ``(key, bytes, ttl_ms)``);
        False if it was dropped (queue full, or the writer is closed)."""
        return self._submit("store", tier, entries, _entry_bytes(entries))

    def submit_delete(self, tier: int, keys: list) -> bool:
        """Queues the delete step of a read (the release of its leases), so
        it happens after the read's stores: a process waiting on a lease
        finds the value once the lease is gone. Never dropped for the
        bounds (it is a few bytes); dropped only after ``close()``."""
        return self._submit("delete", tier, keys, 0)

    def submit_job(self, job: Any) -> bool:
        """Queues the writes of one value not yet sealed (a ``SealJob`` of
        the extension): the writer thread signs, compresses and chunks it,
        then writes its stores in order. False if it was dropped."""
        return self._submit("job", -1, [job], job.size)

    def submit_steps(self, steps: list) -> None:
        """Queues a read's ``("store", tier, entries)``,
        ``("seal", [SealJob, ...])`` and ``("delete", tier, keys)`` steps,
        in order."""
        for step in steps:
            kind = step[0]
            if kind == "seal":
                for job in step[1]:
                    self.submit_job(job)
            elif kind == "store":
                self.submit(step[1], step[2])
            else:
                self.submit_delete(step[1], step[2])

    def after_writes(self, fn: Any) -> bool:
        """Runs ``fn()`` on the writer thread once the writes queued so far
        are done (an invalidation message that must follow them)."""
        return self._submit("call", -1, [fn], 0)

    def _submit(self, kind: str, tier: int, items: list, size: int) -> bool:
        entries = items
        with self._cond:
            full = self._closed or (
                kind in ("store", "job")
                and (
                    len(self._queue) >= self.config.max_steps
                    or (self._bytes + size > self.config.max_bytes and bool(self._queue))
                )
            )
            if full:
                if kind in ("store", "job"):
                    self._counts["dropped"] += len(entries)
                now = time.monotonic()
                log_it = now - self._dropped_logged_at >= 10
                if log_it:
                    self._dropped_logged_at = now
            else:
                self._seq += 1
                self._queue.append((self._seq, kind, tier, entries, size))
                self._bytes += size
                if kind != "call":
                    self._counts["deletes_queued" if kind == "delete" else "queued"] += len(entries)
                self._start()
                self._cond.notify_all()
                return True
        if log_it:
            log.warning(
                "stratacache: background write queue full (%d steps, %d bytes) or closed: "
                "dropped %d write(s); see stats()['background_writes']",
                self.config.max_steps,
                self.config.max_bytes,
                len(entries),
            )
        return False

    def supersede(self, steps: list) -> None:
        """Called before an explicit write or delete (``steps``: the core's
        write plan): queued writes of the same keys are skipped, and a write
        of them already on the wire finishes before this returns."""
        keys = set()
        for step in steps:
            items = step[2]
            for item in items:
                keys.add(item[0] if isinstance(item, tuple) else item)
        if not keys:
            return
        with self._cond:
            if not self._queue and not self._busy:
                return
            for key in keys:
                self._superseded[key] = self._seq
            self._cond.wait_for(lambda: not (self._inflight & keys), self.config.drain_timeout)

    # -- the writer thread --------------------------------------------------

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name=f"stratacache-writer-{self._cache.name}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._busy = False
                    self._superseded.clear()  # nothing queued is older than them
                    self._cond.notify_all()
                    if self._closed or not self._cache_alive():
                        return
                    self._cond.wait(1.0)
                seq, kind, tier, entries, size = self._queue.popleft()
                self._bytes -= size
                self._busy = True
                if kind == "store":
                    keep = self._fresh(seq, entries)
                    # Consecutive stores to the same tier go out as one batch
                    # (one round trip), in order, up to a few MiB.
                    batch_bytes = size
                    while (
                        self._queue
                        and self._queue[0][1] == "store"
                        and self._queue[0][2] == tier
                        and batch_bytes + self._queue[0][4] <= _MERGE_BYTES
                        and len(keep) < _MERGE_ENTRIES
                    ):
                        seq2, _, _, entries2, size2 = self._queue.popleft()
                        self._bytes -= size2
                        batch_bytes += size2
                        keep.extend(self._fresh(seq2, entries2))
                    self._inflight = frozenset(e[0] for e in keep)
                elif kind == "job":
                    keep = [job for job in entries if self._superseded.get(job.key, 0) < seq]
                    self._counts["superseded"] += len(entries) - len(keep)
                    self._inflight = frozenset(job.key for job in keep)
                else:
                    keep = entries
            try:
                if keep and kind == "store":
                    self._write(tier, keep)
                elif keep and kind == "job":
                    self._seal_and_write(keep[0])
                elif kind == "call":
                    try:
                        keep[0]()
                    except Exception as exc:  # pragma: no cover - publish never raises
                        log.warning("stratacache: a background call failed: %s", describe(exc))
                elif keep:
                    self._delete(tier, keep)
            finally:
                with self._cond:
                    self._inflight = frozenset()
                    self._cond.notify_all()

    def _fresh(self, seq: int, entries: list) -> list:
        """The entries of step ``seq`` no explicit write has superseded."""
        keep = [e for e in entries if self._superseded.get(e[0], 0) < seq]
        self._counts["superseded"] += len(entries) - len(keep)
        return keep

    def _cache_alive(self) -> bool:
        try:
            self._cache.name  # noqa: B018 - a dead proxy raises
        except ReferenceError:  # the cache was collected: the thread ends
            return False
        return True

    def _write(self, tier: int, entries: list) -> None:
        try:
            cache = self._cache
            cache._tiers[tier].set_many(entries)
            cache._wrote(tier, "set")
        except ReferenceError:  # the cache is gone: nothing to write to
            with self._cond:
                self._counts["failed"] += len(entries)
            return
        except Exception as exc:
            with self._cond:
                self._counts["failed"] += len(entries)
            try:
                cache._wrote(tier, "set", exc)
            except Exception:  # pragma: no cover - logging must not kill the writer
                log.warning("stratacache: background write failed: %s", describe(exc))
            return
        with self._cond:
            self._counts["written"] += len(entries)

    def _seal_and_write(self, job: Any) -> None:
        """Seals one value here, off the request path, and writes its
        stores in order (tiers in order, chunks before their manifest);
        counted as one entry: written if every tier took it."""
        try:
            stores = job.seal()
        except Exception as exc:  # pragma: no cover - sealing never fails
            with self._cond:
                self._counts["failed"] += 1
            log.warning("stratacache: sealing a background write failed: %s", describe(exc))
            return
        with self._cond:
            self._counts["queued"] -= 1  # counted again per store entry below
            self._counts["queued"] += sum(len(entries) for _, _, entries in stores)
        for _, tier, entries in stores:
            self._write(tier, entries)

    def _delete(self, tier: int, keys: list) -> None:
        try:
            cache = self._cache
            cache._tiers[tier].delete_many(keys)
            cache._wrote(tier, "delete")
        except ReferenceError:
            return
        except Exception as exc:
            try:
                cache._wrote(tier, "delete", exc)
            except Exception:  # pragma: no cover
                log.warning("stratacache: background delete failed: %s", describe(exc))

    # -- shutdown and introspection -----------------------------------------

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every queued write is done; False on timeout."""
        timeout = self.config.drain_timeout if timeout is None else timeout
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self, timeout: Optional[float] = None) -> bool:
        """Drains the queue (up to ``timeout`` seconds) and stops the thread;
        later submissions are dropped (counted). True if the queue emptied."""
        drained = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        return drained

    def stats(self) -> dict:
        """``queued``, ``written``, ``dropped``, ``failed``, ``superseded``
        (counted in entries; a value queued unsealed counts one until it is
        sealed, then its entries), ``deletes_queued`` (lease releases), and
        ``pending`` steps / ``pending_bytes`` now."""
        with self._cond:
            out = dict(self._counts)
            out["pending"] = len(self._queue)
            out["pending_bytes"] = self._bytes
        return out


_writers: weakref.WeakSet = weakref.WeakSet()
_registered = False
_register_lock = threading.Lock()


def _register(writer: BackgroundWriter) -> None:
    global _registered
    with _register_lock:
        _writers.add(writer)
        if not _registered:
            atexit.register(_drain_all)
            _registered = True


def _drain_all() -> None:
    """At interpreter exit: drains every writer still open (daemon threads
    would otherwise die with their queues)."""
    for writer in list(_writers):
        try:
            writer.close()
        except Exception:  # pragma: no cover
            pass


def background_writer(cache: Any, option: Any) -> Optional[BackgroundWriter]:
    """The writer for ``TieredCache(background_writes=option)``: False/None
    (off), True (default bounds), a ``BackgroundWrites`` or a dict of its
    fields."""
    if option is None or option is False:
        return None
    if option is True:
        option = BackgroundWrites()
    elif isinstance(option, dict):
        option = BackgroundWrites(**option)
    if not isinstance(option, BackgroundWrites):
        raise TypeError(
            f"background_writes must be True, False, a BackgroundWrites or a dict, not {type(option).__name__}"
        )
    return BackgroundWriter(cache, option)
