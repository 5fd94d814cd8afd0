"""Where ``notify`` steps of one read wake the ``wait`` steps of others,
across threads and asyncio tasks (single-flight within a process): the
driver's (``stratacache._driver``) one piece of shared state."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence


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
