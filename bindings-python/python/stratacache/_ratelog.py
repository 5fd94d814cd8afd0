"""Rate-limited logging of tier failures: a tier that fails on every call
logs one line when it starts failing and then one ERROR per window with the
count, never a line per call.

::

    log = TierFailureLog(window=60.0)
    log.failed("memcached", "get", exc)   # WARNING at once: the first failure
    ...                                   # the next failures are counted, silently
    # after 60 s of failures, at the next failure: one ERROR
    # "stratacache: tier 'memcached' failed 5230 calls in the last 60 s (get 5000, set 230) ..."
    # a tier with no failure for a whole window starts a new episode
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

log = logging.getLogger("stratacache")


class _Episode:
    __slots__ = ("by_op", "count", "last", "last_error", "started", "total", "window_start")

    def __init__(self, now: float) -> None:
        self.started = now
        self.last = now
        self.window_start = now
        self.count = 0
        self.total = 0
        self.by_op: dict = {}
        self.last_error = ""


class TierFailureLog:
    """Counts tier failures per tier and logs them at a bounded rate.

    ``window``: seconds between two summary lines of one failing tier.
    ``clock``: seconds (``time.monotonic`` by default), for tests."""

    def __init__(
        self,
        window: float = 60.0,
        clock: Optional[Callable[[], float]] = None,
        logger: logging.Logger = log,
    ) -> None:
        self.window = window
        self._clock = clock or time.monotonic
        self._log = logger
        self._lock = threading.Lock()
        self._episodes: dict = {}

    def failed(self, tier: str, op: str, error: str) -> None:
        """Records one failed call of ``op`` on ``tier``."""
        now = self._clock()
        with self._lock:
            episode = self._episodes.get(tier)
            first = episode is None or now - episode.last >= self.window
            if first:
                episode = self._episodes[tier] = _Episode(now)
            episode.last = now
            episode.count += 1
            episode.total += 1
            episode.by_op[op] = episode.by_op.get(op, 0) + 1
            episode.last_error = error
            summary = None
            if not first and now - episode.window_start >= self.window:
                summary = (episode.count, dict(episode.by_op), now - episode.window_start, episode.total)
                episode.window_start = now
                episode.count = 0
                episode.by_op = {}
        if first:
            self._log.warning(
                "stratacache: %s on tier %r failed (%s); serving from the next tier or the loader "
                "(further failures are summed up every %d s)",
                op,
                tier,
                error,
                self.window,
            )
        elif summary is not None:
            count, by_op, span, total = summary
            ops = ", ".join(f"{k} {v}" for k, v in sorted(by_op.items()))
            self._log.error(
                "stratacache: tier %r failed %d calls in the last %d s (%s; %d since it started failing); "
                "last error: %s. Reads go on to the next tier or the loader: check the server and the "
                "tier's settings (manage.py stratacache_check)",
                tier,
                count,
                round(span),
                ops,
                total,
                error,
            )

    def failing(self) -> dict:
        """``{tier: failed calls since it started failing}`` of the tiers
        failed within the last window."""
        now = self._clock()
        with self._lock:
            return {name: e.total for name, e in self._episodes.items() if now - e.last < self.window}
