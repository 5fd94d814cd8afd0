"""Coherent local tiers across processes (opt-in): an invalidation channel
over Redis pub/sub, and a "current version" helper.

Each process keeps its own local tier. Without a channel, a value changed
by another process is served from the local tier until the local TTL
(``LocalTier.ttl``, 60 s by default) runs out. With a channel, a
``set``/``delete``/``delete_many`` in one process publishes the keys after
its remote writes, and every other process subscribed to the channel drops
them from its local tier (the next read goes to memcached and finds the new
value)::

    from stratacache import TieredCache
    from stratacache.invalidation import Invalidation
    from stratacache.tiers import MemcachedTier

    cache = TieredCache(
        [MemcachedTier(servers)],
        invalidation=Invalidation("redis://10.0.0.5:6379/0", channel="myapp:invalidate"),
    )
    cache.set(key, value)   # other processes stop serving their old copy within milliseconds

Django: ``STRATACACHE = {..., "INVALIDATION": {"URL": "redis://...", "CHANNEL": "..."}}``
(the intended spelling for the cache backend is
``CACHES[alias]["OPTIONS"]["INVALIDATION"] = {"url": ..., "channel": ...}``).

Bounds, measured in ``bench/bench_coherence.py``: a subscriber drops a key
as soon as the message arrives (sub-millisecond on a LAN), and once more
``redrop_after`` seconds later, so that a read which fetched the old value
from memcached just before the change and stored it locally just after the
message is corrected too.

When the channel is down (Redis stopped or unreachable), reads and writes go
on: publishing fails fast and is counted (``publish_errors``, then
``publish_skipped`` for ``retry_after`` seconds), the subscriber reconnects
by itself, and until it does, staleness is bounded by the local tier's TTL
again. After a reconnect the local tier is cleared (messages sent while the
subscriber was away are lost). Each outage is logged once.
Counters: ``cache.stats()["invalidation"]``.

Edge workers have no pub/sub: a worker's local tier is bounded by its TTL
only (see docs/fleet.md).
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ._driver import describe
from .keys import Key, normalize_key

__all__ = ["CurrentVersion", "Invalidation", "InvalidationChannel"]

log = logging.getLogger("stratacache")


@dataclass(frozen=True)
class Invalidation:
    """Where a cache publishes and hears invalidations.

    ``url``: a Redis URL (``redis://host:6379/0``); ``channel``: the pub/sub
    channel (every process sharing remote tiers uses the same one);
    ``redrop_after``: seconds after a message when its keys are dropped a
    second time (0: never); ``retry_after``: seconds publishing is skipped
    after a failure; ``socket_timeout``: seconds for a Redis call (publish,
    connect, health check).

    ::

        Invalidation("redis://127.0.0.1:6379/0", channel="myapp:invalidate")
    """

    url: str
    channel: str = "stratacache:invalidate"
    redrop_after: float = 0.05
    retry_after: float = 1.0
    socket_timeout: float = 0.5


def invalidation_config(option: Any) -> Optional[Invalidation]:
    """An ``Invalidation`` from ``TieredCache(invalidation=...)``: None, an
    ``Invalidation``, a Redis URL, or a dict ``{"url": ..., "channel": ...}``
    (keys in any case, as Django settings spell them)."""
    if option is None or option is False:
        return None
    if isinstance(option, Invalidation):
        return option
    if isinstance(option, str):
        return Invalidation(option)
    if isinstance(option, dict):
        fields = {str(k).lower(): v for k, v in option.items()}
        if "url" not in fields:
            raise ValueError("invalidation needs a Redis 'url', such as {'url': 'redis://127.0.0.1:6379/0'}")
        try:
            return Invalidation(**fields)
        except TypeError as exc:
            raise ValueError(f"invalidation options: {exc}") from None
    raise TypeError(
        f"invalidation must be a Redis URL, a dict or an Invalidation, not {type(option).__name__}"
    )


class InvalidationChannel:
    """One cache's publisher and subscriber (a daemon thread) on a Redis
    pub/sub channel. Built by ``TieredCache(invalidation=...)``; reach it as
    ``cache.invalidation``.

    ::

        cache.invalidation.wait_connected(2.0)   # True once subscribed
        cache.invalidation.publish(["some-key"])  # what set/delete do for you
        cache.invalidation.stats()["received"]
    """

    def __init__(self, cache: Any, config: Invalidation) -> None:
        try:
            import redis
        except ImportError:  # pragma: no cover - redis is in the "redis" extra
            raise ImportError(
                "an invalidation channel needs redis-py: pip install 'stratacache[redis]'"
            ) from None
        self.config = config
        self._cache = weakref.ref(cache)
        # Own messages are skipped: this process's tiers are already right.
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        timeout = config.socket_timeout
        self._publisher = redis.Redis.from_url(
            config.url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._subscriber = redis.Redis.from_url(
            config.url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=1,
        )
        self._lock = threading.Lock()
        self._counts = {
            "published": 0,
            "publish_errors": 0,
            "publish_skipped": 0,
            "received": 0,
            "dropped": 0,
            "redropped": 0,
            "disconnects": 0,
            "reconnects": 0,
            "local_clears": 0,
        }
        self._publish_down_until = 0.0
        self._publish_down_logged = False
        self._connected = threading.Event()
        self._closed = threading.Event()
        self._redrops: list = []  # heap of (due, keys)
        self._thread = threading.Thread(
            target=self._run, name=f"stratacache-invalidation-{cache.name}", daemon=True
        )
        self._thread.start()

    # -- publishing ---------------------------------------------------------

    def publish(self, keys: Iterable[str]) -> bool:
        """Tells the other processes to drop ``keys`` (cache keys as the
        core sees them: ``normalize_key`` of what the caller passed). Never
        raises; False if the channel is down."""
        keys = list(keys)
        if not keys:
            return True
        now = time.monotonic()
        if now < self._publish_down_until:
            with self._lock:
                self._counts["publish_skipped"] += 1
            return False
        message = json.dumps({"o": self.origin, "k": keys}, separators=(",", ":"))
        try:
            self._publisher.publish(self.config.channel, message)
        except Exception as exc:
            with self._lock:
                self._counts["publish_errors"] += 1
                self._publish_down_until = time.monotonic() + self.config.retry_after
                first = not self._publish_down_logged
                self._publish_down_logged = True
            if first:
                log.warning(
                    "stratacache: the invalidation channel %r is down (%s): other processes keep "
                    "their local copies up to the local tier's TTL; retrying every %.1f s",
                    self.config.channel,
                    describe(exc),
                    self.config.retry_after,
                )
            return False
        with self._lock:
            self._counts["published"] += 1
            recovered = self._publish_down_logged
            self._publish_down_logged = False
        if recovered:
            log.warning("stratacache: the invalidation channel %r is back", self.config.channel)
        return True

    # -- subscribing --------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.05
        was_down = False
        logged_down = False
        while not self._closed.is_set():
            pubsub = None
            try:
                pubsub = self._subscriber.pubsub()
                pubsub.subscribe(self.config.channel)
                # The subscription is live once Redis confirms it.
                deadline = time.monotonic() + max(1.0, self.config.socket_timeout * 4)
                while True:
                    msg = pubsub.get_message(timeout=0.1)
                    if msg is not None and msg.get("type") == "subscribe":
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError("no subscribe confirmation")
                if was_down:
                    # Messages sent while we were away are lost: forget
                    # everything that may have changed meanwhile.
                    self._clear_local()
                    with self._lock:
                        self._counts["reconnects"] += 1
                    log.warning(
                        "stratacache: invalidation channel %r reconnected; local tier cleared",
                        self.config.channel,
                    )
                was_down = False
                logged_down = False
                backoff = 0.05
                self._connected.set()
                while not self._closed.is_set():
                    if self._cache() is None:  # the cache was collected
                        self._closed.set()
                        break
                    msg = pubsub.get_message(timeout=self._next_wait())
                    if msg is not None and msg.get("type") == "message":
                        self._handle(msg.get("data"))
                    self._run_redrops()
            except Exception as exc:
                if self._closed.is_set():
                    break
                self._connected.clear()
                with self._lock:
                    if not was_down:
                        self._counts["disconnects"] += 1
                was_down = True
                if not logged_down:
                    logged_down = True
                    log.warning(
                        "stratacache: invalidation channel %r unavailable (%s): local tiers are "
                        "bounded by their TTL until it is back",
                        self.config.channel,
                        describe(exc),
                    )
                self._closed.wait(backoff)
                backoff = min(backoff * 2, 1.0)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        pass

    def _next_wait(self) -> float:
        if not self._redrops:
            return 0.2
        return max(0.0, min(0.2, self._redrops[0][0] - time.monotonic()))

    def _handle(self, data: Any) -> None:
        try:
            message = json.loads(data)
            origin = message["o"]
            keys = [str(k) for k in message["k"]]
        except Exception as exc:
            log.warning("stratacache: ignored a malformed invalidation message: %s", describe(exc))
            return
        if origin == self.origin:
            return
        dropped = self._drop(keys)
        with self._lock:
            self._counts["received"] += 1
            self._counts["dropped"] += dropped
        if self.config.redrop_after > 0:
            heapq.heappush(self._redrops, (time.monotonic() + self.config.redrop_after, keys))

    def _run_redrops(self) -> None:
        now = time.monotonic()
        while self._redrops and self._redrops[0][0] <= now:
            _, keys = heapq.heappop(self._redrops)
            redropped = self._drop(keys)
            if redropped:
                with self._lock:
                    self._counts["redropped"] += redropped

    def _drop(self, keys: list) -> int:
        cache = self._cache()
        if cache is None:
            self._closed.set()
            return 0
        return cache._core.delete_local(keys)

    def _clear_local(self) -> None:
        cache = self._cache()
        if cache is not None:
            cache.clear_local()
            with self._lock:
                self._counts["local_clears"] += 1

    # -- lifecycle and introspection ----------------------------------------

    @property
    def connected(self) -> bool:
        """True while the subscriber is subscribed."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Waits up to ``timeout`` seconds for the subscription; True if live."""
        return self._connected.wait(timeout)

    def close(self) -> None:
        """Stops the subscriber thread and closes the connections."""
        self._closed.set()
        self._thread.join(timeout=2.0)
        for client in (self._publisher, self._subscriber):
            try:
                client.close()
            except Exception:
                pass

    def stats(self) -> dict:
        """``published``, ``publish_errors``, ``publish_skipped``,
        ``received`` (messages from other processes), ``dropped``/``redropped``
        (local entries removed), ``disconnects``, ``reconnects``,
        ``local_clears`` and ``connected`` (0/1)."""
        with self._lock:
            out = dict(self._counts)
        out["connected"] = int(self.connected)
        return out


class CurrentVersion:
    """The current version of an object, read through the request tier on
    every request: the pattern of edx-platform's course outlines, where the
    outline is cached under ``(course, published_version)`` and only the
    version is looked up per request ("a query to LearningContext to check
    the current published version").

    The version itself is cached: in the request tier (one lookup per
    request, consistent for the whole request), the local tier (no round
    trip at all) and the remote tiers; ``loader(obj_id)`` (the database)
    runs only when no tier has it. With an invalidation channel on the
    cache, ``published`` drops the old version from every process's local
    tier at once; without one, processes see it within the local TTL.

    ::

        outline_version = CurrentVersion(
            cache, "course_outline.version",
            lambda course_key: LearningContext.objects.get(context_key=course_key).published_version,
        )
        outline_key = Key("course_outline", 3)

        def get_course_outline(course_key):
            version = outline_version.get(course_key)
            return cache.get_or_load(outline_key(course_key, version), lambda: build(course_key))

        # when a course is published:
        outline_version.published(course_key, new_version)
    """

    def __init__(
        self,
        cache: Any,
        namespace: str,
        loader: Callable[[Any], Any],
        *,
        ttl: Any = None,
        key_version: int = 1,
    ) -> None:
        from .tiered import DEFAULT_TTL

        self.cache = cache
        self.loader = loader
        self.ttl = DEFAULT_TTL if ttl is None else ttl
        self._key = Key(namespace, key_version)

    def key(self, obj_id: Any) -> str:
        """The cache key holding ``obj_id``'s version."""
        return self._key(obj_id if isinstance(obj_id, (str, int, bytes)) else str(obj_id))

    def get(self, obj_id: Any) -> Any:
        """``obj_id``'s current version (request tier, local tier, remote
        tiers, then ``loader``)."""
        return self.cache.get_or_load(self.key(obj_id), lambda: self.loader(obj_id), self.ttl)

    def published(self, obj_id: Any, version: Any = None) -> None:
        """Records a new version: written to every tier (or, with
        ``version=None``, deleted so the next read asks ``loader``), and
        every other process's local copy dropped through the cache's
        invalidation channel."""
        if version is None:
            self.cache.delete_all_tiers(self.key(obj_id))
        else:
            self.cache.set_all_tiers(self.key(obj_id), version, self.ttl)


def keys_for(keys: Iterable[str]) -> list:
    """The cache keys an invalidation message carries for user ``keys``."""
    return [normalize_key(k) for k in keys]
