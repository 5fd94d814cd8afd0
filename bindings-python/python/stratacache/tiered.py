"""``TieredCache``: request tier → local tier → remote tiers (memcached,
Redis, S3, ...) → loader, with the rules in the Rust core."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import random
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, NamedTuple, Optional, Union

from . import _core
from ._driver import Driver, describe
from ._errors import ConfigurationError, LoaderError
from ._ratelog import TierFailureLog
from ._waiters import Waiters
from .background import background_writer
from .codecs import Codec, JsonCodec, PickleCodec, get_codec
from .invalidation import InvalidationChannel, invalidation_config
from .keys import BuiltKey, normalize_key, signing_keys_from_secret
from .scope import current_scope

_normalize_keys = _core.normalize_keys

__all__ = [
    "DEFAULT_TTL",
    "MISSING",
    "LeasePolicy",
    "LocalTier",
    "ReadResult",
    "TieredCache",
    "signing_keys_from_secret",
]

log = logging.getLogger("stratacache")

MISSING = _core.MISSING
DEFAULT_TTL = _core.DEFAULT_TTL
CachedResponse = _core.CachedResponse

Ttl = Union[float, int, timedelta, None, Any]


#: "Not given": the core's default applies (where None means something else).
UNSET: Any = _core.DEFAULT_TTL


@dataclass(frozen=True)
class LocalTier:
    """Bounds of a tiered cache's in-process tier: entries, bytes (of the
    serialized payloads) and the longest time in seconds a value is kept
    locally (it is never kept past its own expiry). None: the core's default
    (10,000 entries, 64 MiB, 60 s)."""

    max_entries: Optional[int] = None
    max_bytes: Optional[int] = None
    ttl: Optional[float] = None


@dataclass(frozen=True)
class LeasePolicy:
    """Cross-process stampede control through a remote tier's ``add``: one
    process loads a cold key, the others wait up to ``max_wait`` seconds,
    re-reading every ``poll_interval``; the lease expires after ``ttl``.
    None: the core's default (10 s, 2 s, 0.1 s)."""

    ttl: Optional[float] = None
    max_wait: Optional[float] = None
    poll_interval: Optional[float] = None


class ReadResult(NamedTuple):
    """What :meth:`TieredCache.lookup` found for one key, and where:
    ``source`` is ``"request"``, ``"local"``, ``"loader"``, a remote tier's
    name, or None for a miss.

    >>> ReadResult("k", True, 1, "memcached").source
    'memcached'
    """

    key: Any
    hit: bool
    value: Any
    source: Optional[str]


def _keyring(signing_keys: Any) -> Optional[list]:
    if signing_keys is None or signing_keys is False:
        return None
    if isinstance(signing_keys, (str, bytes)):
        return signing_keys_from_secret(signing_keys)
    if isinstance(signing_keys, Mapping):
        signing_keys = list(signing_keys.items())
    ring = []
    for item in signing_keys:
        try:
            key_id, secret = item
        except (TypeError, ValueError):
            raise ConfigurationError(
                "signing_keys must be a list of (key_id, secret) pairs, newest first, or one secret string"
            ) from None
        ring.append((str(key_id), secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)))
    return ring or None


class TieredCache:
    """A read-through cache over the request tier, a local tier and remote
    tiers, fastest first.

    ::

        cache = TieredCache(
            tiers=[MemcachedTier(["127.0.0.1:11211"]), StorageTier(s3_storage)],
            signing_keys=[("2025a", secret)],
        )
        outline = cache.get_or_load(Key("outline", 3)(course_id), lambda: build(course_id), ttl=3600)
        grades = cache.get_many_or_load(keys, load_grades)   # one batch per tier

    Values are Python objects in the request and local tiers (as they are)
    and envelopes in the remote tiers (``codec`` bytes, compressed, signed,
    chunked when larger than a tier's item limit). A failing tier is counted
    and skipped (the read goes on to the next tier or the loader) unless
    ``strict`` is set. Within a process one loader runs per cold key
    (threads and asyncio tasks); across processes too with ``leases``.

    Arguments:
        tiers: remote tier adapters, fastest first (``stratacache.tiers``).
        local: a ``LocalTier`` (or dict of its fields), or None for no local tier.
        signing_keys: ``[(key_id, secret), ...]`` newest first, or one secret
            (see ``signing_keys_from_secret``). With keys, unsigned or badly
            signed values are never decoded. Required with remote tiers and
            the pickle codec.
        allow_unsigned_pickle: read and write unsigned pickles in remote
            tiers (only for tiers no one else can write to). Off: building a
            pickle cache with remote tiers and no keys fails, and an unsigned
            pickle read from a tier is rejected (counted), never unpickled.
        codec: ``"pickle"`` (default), ``"json"``, ``"raw"`` or a codec object.
        default_ttl: seconds a loaded value lives when a call does not say
            (None: forever).
        stale_ttl: seconds past its TTL a value may still be served while one
            reader refreshes it (stale-while-revalidate).
        ttl_jitter: spread TTLs by up to this fraction (0.1 = ±10%).
        xfetch_beta: XFetch early-refresh eagerness (0: off).
        leases: ``True`` or a ``LeasePolicy`` for cross-process stampede
            control (uses the first tier that supports ``add``).
        cooldown: ``(failures, seconds)``: after that many failures in a row a
            tier is skipped for that long, then probed.
        strict: raise ``TierError`` when a tier fails instead of degrading.
        wait_timeout: seconds a reader waits for another reader's load before
            loading itself.
        clock: a callable returning seconds (like ``time.time``), for tests.
        invalidation: a Redis URL, ``{"url": ..., "channel": ...}`` or an
            ``Invalidation``: sets and deletes drop the keys from other
            processes' local tiers (``stratacache.invalidation``).
        background_writes: ``True`` or a ``BackgroundWrites``: back-fill and
            load-then-store writes go to a bounded queue drained by a thread
            (``stratacache.background``); explicit sets stay synchronous.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> TieredCache:
        # Named as a Django cache BACKEND by mistake: say which path is right.
        if len(args) == 2 and isinstance(args[1], dict):
            from .django.backend_paths import refuse_django_call

            refuse_django_call(cls, args)
        return super().__new__(cls)

    def __init__(
        self,
        tiers: Sequence[Any] = (),
        *,
        local: Union[LocalTier, Mapping, None] = LocalTier(),
        signing_keys: Any = None,
        codec: Union[str, Codec] = "pickle",
        default_ttl: Ttl = UNSET,
        stale_ttl: Optional[float] = None,
        ttl_jitter: Optional[float] = None,
        xfetch_beta: Optional[float] = None,
        leases: Union[bool, LeasePolicy] = False,
        cooldown: Optional[tuple] = None,
        strict: bool = False,
        compress_at: Optional[int] = UNSET,
        max_payload_len: Optional[int] = None,
        refresh_in_background: bool = True,
        wait_timeout: float = 30.0,
        clock: Optional[Callable[[], float]] = None,
        name: str = "default",
        invalidation: Any = None,
        background_writes: Any = False,
        allow_unsigned_pickle: bool = False,
    ) -> None:
        self.name = name
        self._tiers = list(tiers)
        self._codec = get_codec(codec)
        # The driver calls pickle.loads / json.loads itself for the stock
        # codecs, and a tier's native client for its fetches and stores.
        self._fast_decoder = type(self._codec) in (PickleCodec, JsonCodec)
        self._natives = tuple(getattr(t, "native_client", None) for t in self._tiers)
        self.strict = strict
        self.wait_timeout = wait_timeout
        self.refresh_in_background = refresh_in_background
        self._clock = clock
        self._waiters = Waiters()
        self._driver = Driver(self)
        self._signed = signing_keys is not None and signing_keys is not False
        self._failure_log = TierFailureLog(clock=clock)  # the cache's clock, if given
        if isinstance(local, Mapping):
            local = LocalTier(**local)
        if isinstance(leases, LeasePolicy):
            leases = {"ttl": leases.ttl, "max_wait": leases.max_wait, "poll_interval": leases.poll_interval}
        tier_configs = []
        for i, tier in enumerate(self._tiers):
            config = getattr(tier, "tier_config", None)
            if config is None:
                raise ConfigurationError(
                    f"tier {i} ({tier!r}) is not a tier adapter: use MemcachedTier, RedisTier, "
                    "StorageTier or DjangoCacheTier from stratacache.tiers"
                )
            tier_configs.append(dict(config()))
        if isinstance(default_ttl, timedelta):
            default_ttl = default_ttl.total_seconds()
        # One value, deserialized by the core (stratacache::tiered::TieredSpec):
        # None or absent is "unset" and the core fills in its default.
        config = {
            "name": name,
            "tiers": tier_configs,
            "signing_keys": _keyring(signing_keys),
            "stale_ttl": stale_ttl,
            "ttl_jitter": ttl_jitter,
            "xfetch_beta": xfetch_beta,
            "lease": leases,
            "cooldown": cooldown,
            "strict": strict,
            "max_payload_len": max_payload_len,
            "codec": self._codec.name,
            "allow_unsigned_pickle": bool(allow_unsigned_pickle),
        }
        # Where None is a value of its own (no local tier, never expire, never compress).
        for key, value in (("local", local), ("default_ttl", default_ttl), ("compress_at", compress_at)):
            if value is not UNSET:
                config[key] = value.__dict__ if isinstance(value, LocalTier) else value
        try:
            self._core = _core.TieredCore(config)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        # Fleet options (docs/fleet.md): both off unless asked for.
        self._writer = background_writer(self, background_writes)
        inv = invalidation_config(invalidation)
        self.invalidation = None if inv is None else InvalidationChannel(self, inv)

    # -- helpers ------------------------------------------------------------

    def _now(self) -> int:
        if self._clock is None:
            return _core.now_ms()
        return int(self._clock() * 1000)

    def _tier_error(self, tier: int, op: str, exc: BaseException) -> None:
        # A dead tier logs one line when it starts failing, then one ERROR a
        # minute with the count (stratacache._ratelog), never a line per call.
        self._failure_log.failed(self._tiers[tier].name, op, describe(exc))

    def _wrote(self, tier: int, op: str, exc: Optional[BaseException] = None) -> None:
        """Reports a write's outcome to the core: a success ends the tier's
        cool-down (it answered); a failure is logged and counts toward one."""
        if exc is None:
            self._core.tier_succeeded(tier)
        else:
            self._tier_error(tier, op, exc)
            self._core.tier_failed(tier, self._now())

    def _decode(self, items: list) -> list:
        out = []
        for _index, key, codec_name, payload in items:
            codec = self._codec if codec_name == self._codec.name else get_codec(codec_name)
            try:
                out.append((codec.loads(payload), len(payload)))
            except Exception as exc:
                log.warning("stratacache: could not decode the value of %r: %s", key, describe(exc))
                out.append(f"could not decode: {describe(exc)}")
        return out

    def _encode(self, key: str, value: Any) -> tuple:
        try:
            payload = self._codec.dumps(value)
        except Exception as exc:
            raise TypeError(
                f"the value for key {key!r} cannot be serialized with the {self._codec.name} codec "
                f"({describe(exc)}): store picklable values, or choose another codec"
            ) from exc
        return (value, self._codec.name, payload, len(payload))

    def _read_host(self, aio: bool = False) -> Any:
        """What a read run in the extension needs (built once per cache):
        the tiers' native clients (none for async reads, whose fetches the
        driver awaits), the codec's ``loads`` and name, the clock."""
        attr = "_ahost" if aio else "_host"
        host = self.__dict__.get(attr)
        if host is None:
            codec = self._codec
            loads = codec.decoder if self._fast_decoder else codec.loads
            natives = () if aio else tuple(self._natives)
            host = _core.ReadHost(natives, loads, codec.name, self._writer is not None, self._clock)
            setattr(self, attr, host)
        return host

    def _scope(self, create: bool = False) -> Any:
        return current_scope(create)

    def _read(
        self, keys: list, scope: Any, load: bool, ttl: Ttl, force: bool = False, user_keys: Any = None
    ) -> Any:
        force_miss = force or (scope is not None and scope.force_cache_miss)
        return self._core.read(
            keys,
            scope,
            load,
            force_miss,
            ttl,
            scope is None,
            self._now(),
            random.getrandbits(64),
            user_keys,
        )

    def _norm(self, keys: Iterable[str]) -> tuple[list, dict]:
        """Core keys for user keys, and core key -> first user key."""
        core_keys = []
        back: dict = {}
        for key in keys:
            k = normalize_key(key)
            core_keys.append(k)
            back.setdefault(k, key)
        return core_keys, back

    def _loader_for(self, back: dict, batch_loader: Callable, errors: dict) -> Callable[[list], list]:
        def load(core_keys: list) -> list:
            user_keys = [back[k] for k in core_keys]
            try:
                produced = batch_loader(user_keys)
            except Exception as exc:
                for k in core_keys:
                    errors[k] = exc
                return [f"the loader raised {describe(exc)}"] * len(core_keys)
            return self._package(core_keys, user_keys, produced, errors)

        return load

    def _aloader_for(self, back: dict, batch_loader: Callable, errors: dict) -> Callable:
        async def load(core_keys: list) -> list:
            user_keys = [back[k] for k in core_keys]
            try:
                if inspect.iscoroutinefunction(batch_loader):
                    produced = await batch_loader(user_keys)
                else:
                    produced = await asyncio.to_thread(batch_loader, user_keys)
                    if inspect.isawaitable(produced):
                        produced = await produced
            except Exception as exc:
                for k in core_keys:
                    errors[k] = exc
                return [f"the loader raised {describe(exc)}"] * len(core_keys)
            return self._package(core_keys, user_keys, produced, errors)

        return load

    def _package(self, core_keys: list, user_keys: list, produced: Any, errors: dict) -> list:
        """The loader's values, shaped per key by the core, encoded (or an error message)."""
        out = []
        for core_key, user_key, (ok, value) in zip(
            core_keys, user_keys, _core.shape_loaded(user_keys, produced)
        ):
            try:
                if not ok:
                    raise LoaderError(value)
                out.append(self._encode(user_key, value))
            except (LoaderError, TypeError) as exc:
                errors[core_key] = exc
                out.append(str(exc))
        return out

    def _results(self, keys: list, back: dict, results: list, errors: dict, raise_errors: bool) -> dict:
        found = {}
        for key, (hit, value, _source, _refresh, error) in zip(keys, results):
            user_key = back[key]
            if hit:
                found[user_key] = value
            elif error is not None and raise_errors:
                exc = errors.get(key)
                if exc is not None:
                    raise exc
                raise LoaderError(f"loading {user_key!r} failed: {error}")
        return found

    def _schedule_refresh(
        self, keys: list, back: dict, results: list, batch_loader: Callable, ttl: Ttl
    ) -> None:
        due = [k for k, r in zip(keys, results) if r[3]]
        if not due or not self.refresh_in_background:
            return

        def refresh() -> None:
            errors: dict = {}
            try:
                read = self._read(due, None, True, ttl, force=True)
                if not isinstance(read, list):
                    self._driver.run(read, None, self._loader_for(back, batch_loader, errors))
                    # New values, as a refresh() or set makes: tell the others.
                    self._publish_after_writes([k for k in due if k not in errors])
            except Exception as exc:  # a failed refresh keeps the old value
                log.warning(
                    "stratacache: background refresh of %d key(s) failed: %s", len(due), describe(exc)
                )

        thread = threading.Thread(target=contextvars.Context().run, args=(refresh,), daemon=True)
        thread.start()

    # -- reads --------------------------------------------------------------

    def get_cached_response(self, key: str) -> CachedResponse:
        """A ``CachedResponse`` for ``key`` from the first tier that has it
        (request, local, then remote tiers, in one pass; nothing is loaded)."""
        k = normalize_key(key)
        scope = self._scope()
        read = self._read([k], scope, False, DEFAULT_TTL)
        results = read if isinstance(read, list) else self._driver.run(read, scope, None)
        hit, value = results[0][0], results[0][1]
        return CachedResponse(True, key, value) if hit else CachedResponse(False, key)

    def get(self, key: str, default: Any = MISSING) -> Any:
        """The cached value of ``key`` or ``default`` (``MISSING`` unless given)."""
        response = self.get_cached_response(key)
        return response.value if response.is_found else default

    def get_many(self, keys: Iterable[str]) -> dict:
        """``{key: value}`` for the keys some tier has: one batched round trip
        per tier for all the keys, however many."""
        # One call: keys mapped, every tier read, values decoded, the dict
        # built in the extension; the driver only for a step it cannot do.
        found = self._core.get_many_keys(self._read_host(), keys)
        return found if type(found) is dict else self._driver.run(found, current_scope(False), None)

    def _source_name(self, source: Any) -> Optional[str]:
        return self._tiers[source].name if isinstance(source, int) else source

    def lookup_many(self, keys: Iterable[str]) -> list:
        """One ``ReadResult(key, hit, value, source)`` per key, in order,
        where ``source`` says which tier answered: ``"request"``,
        ``"local"``, a remote tier's name (``"memcached"``), or None for a
        miss. One batch per tier, like :meth:`get_many` (the JS ``getMany``
        returns the same ``{key, hit, value, source}``).

        >>> [r.source for r in cache.lookup_many(["a", "b"])]  # doctest: +SKIP
        ['local', 'memcached']
        """
        keys = list(keys)
        core_keys, _ = self._norm(keys)
        scope = self._scope()
        read = self._read(core_keys, scope, False, DEFAULT_TTL)
        results = read if isinstance(read, list) else self._driver.run(read, scope, None)
        return [
            ReadResult(key, bool(r[0]), r[1] if r[0] else None, self._source_name(r[2]) if r[0] else None)
            for key, r in zip(keys, results)
        ]

    def lookup(self, key: str) -> ReadResult:
        """:meth:`lookup_many` for one key.

        >>> cache.lookup("outline").source  # doctest: +SKIP
        'redis'
        """
        return self.lookup_many([key])[0]

    async def alookup_many(self, keys: Iterable[str]) -> list:
        """Async :meth:`lookup_many`."""
        keys = list(keys)
        core_keys, _ = self._norm(keys)
        scope = self._scope()
        read = self._read(core_keys, scope, False, DEFAULT_TTL)
        results = read if isinstance(read, list) else await self._driver.arun(read, scope, None)
        return [
            ReadResult(key, bool(r[0]), r[1] if r[0] else None, self._source_name(r[2]) if r[0] else None)
            for key, r in zip(keys, results)
        ]

    def prefetch(self, keys: Iterable[str]) -> int:
        """Reads ``keys`` in one batch and leaves what was found in the
        request tier, so code deep in the view finds them there without a
        round trip. Returns how many were found."""
        scope = self._scope(create=True)
        core_keys, _ = self._norm(keys)
        read = self._read(core_keys, scope, False, DEFAULT_TTL)
        results = read if isinstance(read, list) else self._driver.run(read, scope, None)
        return sum(1 for r in results if r[0])

    def get_or_load(self, key: str, loader: Callable[[], Any], ttl: Ttl = DEFAULT_TTL) -> Any:
        """The cached value of ``key``; on a miss in every tier, ``loader()``
        runs (once per process, however many threads ask at once), and its
        value is written to every tier and returned. A loader exception
        propagates and nothing is stored."""
        return self.get_many_or_load([key], lambda keys: [loader()], ttl)[key]

    def get_many_or_load(
        self, keys: Iterable[str], batch_loader: Callable[[list], Any], ttl: Ttl = DEFAULT_TTL
    ) -> dict:
        """``{key: value}`` for every key: cached values from the fastest tier
        that has them, in one batch per tier; ``batch_loader(missing_keys)``
        once for the rest (return a dict or a list in key order)."""
        core_keys, back = self._norm(keys)
        scope = self._scope()
        errors: dict = {}
        read = self._read(core_keys, scope, True, ttl)
        if isinstance(read, list):
            results = read
        else:
            results = self._driver.run(read, scope, self._loader_for(back, batch_loader, errors))
        self._schedule_refresh(core_keys, back, results, batch_loader, ttl)
        return self._results(core_keys, back, results, errors, True)

    def refresh(self, key: str, loader: Callable[[], Any], ttl: Ttl = DEFAULT_TTL) -> Any:
        """Runs ``loader()`` and writes its value to every tier, whatever they
        hold (a forced miss)."""
        core_keys, back = self._norm([key])
        scope = self._scope()
        errors: dict = {}
        read = self._read(core_keys, scope, True, ttl, force=True)
        results = (
            read
            if isinstance(read, list)
            else self._driver.run(read, scope, self._loader_for(back, lambda keys: [loader()], errors))
        )
        value = self._results(core_keys, back, results, errors, True)[key]
        self._publish_after_writes(core_keys)  # a new value: after its writes, tell the others
        return value

    def _publish_after_writes(self, core_keys: list) -> None:
        """Publishes an invalidation of ``core_keys`` once their queued
        writes are done (at once when writes are synchronous)."""
        if self.invalidation is None or not core_keys:
            return
        publish = self.invalidation.publish
        if self._writer is None or not self._writer.after_writes(lambda: publish(core_keys)):
            publish(core_keys)

    # -- writes -------------------------------------------------------------

    def _set_plan(self, key: str, value: Any, ttl: Ttl) -> list:
        """The core's write steps for ``set_all_tiers`` (the request and
        local tiers are written by the core at once)."""
        _, codec, payload, weight = self._encode(key, value)
        scope = self._scope()  # the request tier only inside a request
        return self._core.set_all_tiers(
            normalize_key(key),
            value,
            codec,
            payload,
            weight,
            ttl,
            scope,
            self._now(),
            random.getrandbits(64),
        )

    def _delete_plan(self, key: str) -> list:
        """The core's delete steps for ``delete_all_tiers``."""
        return self._core.delete_all_tiers(normalize_key(key), self._scope(), self._now())

    def set_all_tiers(self, key: str, value: Any, ttl: Ttl = DEFAULT_TTL) -> None:
        """Writes ``value`` to the request, local and every remote tier
        (write-through). ``ttl``: seconds; None: forever; 0: delete."""
        steps = self._set_plan(key, value, ttl)
        self._explicit_writes(steps)
        self._driver.run_writes(steps)
        self._published([key])

    def set(self, key: str, value: Any, ttl: Ttl = DEFAULT_TTL) -> None:
        """Same as :meth:`set_all_tiers`."""
        self.set_all_tiers(key, value, ttl)

    def delete_all_tiers(self, key: str) -> None:
        """Removes ``key`` from every tier (versioned keys usually make this
        unnecessary: bump the version instead)."""
        steps = self._delete_plan(key)
        self._explicit_writes(steps)
        self._driver.run_writes(steps)
        self._published([key])

    delete = delete_all_tiers

    def delete_many(self, keys: Iterable[str]) -> None:
        """Removes ``keys`` from every tier (one invalidation message for all)."""
        keys = list(keys)
        for key in keys:
            steps = self._delete_plan(key)
            self._explicit_writes(steps)
            self._driver.run_writes(steps)
        self._published(keys)

    # -- fleet hooks (docs/fleet.md) ------------------------------------------

    def _explicit_writes(self, steps: list) -> None:
        # Queued background writes of these keys must not land after them.
        if self._writer is not None:
            self._writer.supersede(steps)

    def _published(self, keys: list) -> None:
        if self.invalidation is not None:
            self.invalidation.publish([normalize_key(k) for k in keys])

    def flush_writes(self, timeout: Optional[float] = None) -> bool:
        """Waits for queued background writes (True when none are left)."""
        return True if self._writer is None else self._writer.flush(timeout)

    def close(self, timeout: Optional[float] = None) -> None:
        """Drains queued background writes (up to ``timeout`` seconds) and
        stops the invalidation subscriber. The cache still reads and writes
        afterwards, synchronously and without invalidation messages."""
        if self._writer is not None:
            self._writer.close(timeout)
            self._writer = None
        if self.invalidation is not None:
            self.invalidation.close()
            self.invalidation = None

    def clear_local(self) -> None:
        """Empties this process's local tier (remote tiers are untouched)."""
        self._core.clear_local()

    # -- async --------------------------------------------------------------

    async def aget_cached_response(self, key: str) -> CachedResponse:
        """Async :meth:`get_cached_response`."""
        k = normalize_key(key)
        scope = self._scope()
        read = self._read([k], scope, False, DEFAULT_TTL)
        results = read if isinstance(read, list) else await self._driver.arun(read, scope, None)
        hit, value = results[0][0], results[0][1]
        return CachedResponse(True, key, value) if hit else CachedResponse(False, key)

    async def aget(self, key: str, default: Any = MISSING) -> Any:
        """Async :meth:`get`."""
        response = await self.aget_cached_response(key)
        return response.value if response.is_found else default

    async def aget_many(self, keys: Iterable[str]) -> dict:
        """Async :meth:`get_many`."""
        core_keys, user_keys = _normalize_keys(keys, BuiltKey)
        scope = current_scope(False)
        read = self._read(core_keys, scope, False, DEFAULT_TTL, user_keys=user_keys)
        return read if type(read) is dict else await self._driver.arun(read, scope, None, user_keys)

    async def aprefetch(self, keys: Iterable[str]) -> int:
        """Async :meth:`prefetch`."""
        scope = self._scope(create=True)
        core_keys, _ = self._norm(keys)
        read = self._read(core_keys, scope, False, DEFAULT_TTL)
        results = read if isinstance(read, list) else await self._driver.arun(read, scope, None)
        return sum(1 for r in results if r[0])

    async def aget_or_load(self, key: str, loader: Callable[[], Any], ttl: Ttl = DEFAULT_TTL) -> Any:
        """Async :meth:`get_or_load`; ``loader`` may be a coroutine function."""
        if inspect.iscoroutinefunction(loader):

            async def batch(keys: list) -> list:
                return [await loader()]
        else:

            def batch(keys: list) -> list:
                return [loader()]

        return (await self.aget_many_or_load([key], batch, ttl))[key]

    async def aget_many_or_load(
        self, keys: Iterable[str], batch_loader: Callable[[list], Any], ttl: Ttl = DEFAULT_TTL
    ) -> dict:
        """Async :meth:`get_many_or_load`; ``batch_loader`` may be a coroutine
        function."""
        core_keys, back = self._norm(keys)
        scope = self._scope()
        errors: dict = {}
        read = self._read(core_keys, scope, True, ttl)
        if isinstance(read, list):
            results = read
        else:
            results = await self._driver.arun(read, scope, self._aloader_for(back, batch_loader, errors))
        if any(r[3] for r in results) and not inspect.iscoroutinefunction(batch_loader):
            self._schedule_refresh(core_keys, back, results, batch_loader, ttl)
        return self._results(core_keys, back, results, errors, True)

    async def aset_all_tiers(self, key: str, value: Any, ttl: Ttl = DEFAULT_TTL) -> None:
        """Async :meth:`set_all_tiers`."""
        steps = self._set_plan(key, value, ttl)
        self._explicit_writes(steps)
        await self._driver.arun_writes(steps)
        self._published([key])

    async def adelete_all_tiers(self, key: str) -> None:
        """Async :meth:`delete_all_tiers`."""
        steps = self._delete_plan(key)
        self._explicit_writes(steps)
        await self._driver.arun_writes(steps)
        self._published([key])

    # -- introspection ------------------------------------------------------

    @property
    def tiers(self) -> list:
        """The remote tier adapters, fastest first."""
        return list(self._tiers)

    @property
    def codec(self) -> Codec:
        return self._codec

    @property
    def signed(self) -> bool:
        """True if values are signed and unsigned ones refused."""
        return self._core.signed

    def stats(self) -> dict:
        """Counters: ``tiers`` (one dict per remote tier: hits, misses,
        errors, fetches, writes, bytes, chunked reads, rejected values, ...),
        ``reads`` (request/local/remote hits, loads, misses, ...), ``local``
        and ``flights`` (single-flight); with the fleet options,
        ``invalidation`` and ``background_writes``."""
        stats = self._core.stats()
        if self.invalidation is not None:
            stats["invalidation"] = self.invalidation.stats()
        if self._writer is not None:
            stats["background_writes"] = self._writer.stats()
        return stats

    def __repr__(self) -> str:
        tiers = ", ".join(f"{t.name}" for t in self._tiers) or "no remote tiers"
        return (
            f"<TieredCache {self.name!r}: request → local → {tiers}; codec={self._codec.name}"
            f"{', signed' if self.signed else ''}{', strict' if self.strict else ''}>"
        )
