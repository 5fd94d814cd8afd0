"""Tiers with native async reads and writes for ``TieredCacheBackend``'s
async methods (``aget``, ``aget_many``, ``aset``, ``aset_many``, ``aadd``,
``aincr``/``adecr`` and their lock, ``atouch``, ``adelete``,
``adelete_many``, ``aclear``): the backend and the ``TieredCache`` async driver await
them on the event loop instead of running the sync client in a worker
thread.

- ``AsyncMemcachedTier``: the memcached text protocol over asyncio streams
  (``get k1 k2 ...`` to every server a batch touches, at once; pipelined
  ``set``/``delete``), keys placed on the servers by the same hashing as the
  sync client (``MemcachedClient.server_for``).
- ``AsyncRedisTier``: ``redis.asyncio`` (``MGET``, pipelined ``SET PX``).

Connections belong to one event loop; each loop gets its own.

::

    tier = AsyncMemcachedTier(["127.0.0.1:11211"])
    values = await tier.aget_many(["a", "b"])     # [bytes or None, ...]
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections.abc import Sequence
from typing import Any, Optional

from ..tiers import MemcachedTier, RedisTier

__all__ = ["AsyncMemcachedTier", "AsyncRedisTier"]

#: memcached reads an expiry above 30 days as a Unix time.
_RELATIVE_EXPIRY_MAX = 30 * 24 * 3600


def _expiry(ttl_ms: Optional[int]) -> int:
    if ttl_ms is None:
        return 0
    seconds = max(1, math.ceil(ttl_ms / 1000))
    return seconds if seconds <= _RELATIVE_EXPIRY_MAX else int(time.time()) + seconds


class _Pool:
    """Idle connections to one server, for one event loop."""

    def __init__(self, host: str, port: Optional[int], timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.idle: list = []

    async def take(self) -> tuple:
        if self.idle:
            return self.idle.pop()
        if self.port is None:
            opening = asyncio.open_unix_connection(self.host)
        else:
            opening = asyncio.open_connection(self.host, self.port)
        return await asyncio.wait_for(opening, self.timeout)

    def give(self, conn: tuple) -> None:
        if len(self.idle) < 8:
            self.idle.append(conn)
        else:
            conn[1].close()


class AsyncMemcachedTier(MemcachedTier):
    """``MemcachedTier`` whose async methods speak memcached on the event loop
    (the sync ones stay on the Rust client)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._nodes = {node: (host, port) for node, host, port in self.servers}
        self._pools: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _pool(self, node: str) -> _Pool:
        loop = asyncio.get_running_loop()
        pools = self._pools.get(loop)
        if pools is None:
            pools = self._pools[loop] = {}
        pool = pools.get(node)
        if pool is None:
            host, port = self._nodes[node]
            pool = pools[node] = _Pool(host, port, max(self.client.connect_timeout, self.client.timeout))
        return pool

    def _by_node(self, keys: Sequence[str]) -> dict:
        out: dict = {}
        for i, key in enumerate(keys):
            out.setdefault(self.client.server_for(key), []).append(i)
        return out

    async def _exchange(self, node: str, request: bytes, reply: Any) -> Any:
        pool = self._pool(node)
        conn = await pool.take()
        try:
            conn[1].write(request)
            result = await asyncio.wait_for(reply(conn[0]), self.client.timeout)
        except BaseException:
            conn[1].close()
            raise
        pool.give(conn)
        return result

    async def aget_many(self, keys: Sequence[str]) -> list:
        keys = list(keys)
        out: list = [None] * len(keys)
        prefix = self.key_prefix

        async def one(node: str, indexes: list) -> None:
            wire = {(prefix + keys[i]).encode(): i for i in indexes}

            async def reply(reader: asyncio.StreamReader) -> None:
                while True:
                    line = await reader.readline()
                    if line == b"END\r\n":
                        return
                    parts = line.split()
                    if len(parts) < 4 or parts[0] != b"VALUE":
                        raise OSError(f"memcached {node}: unexpected reply {line[:80]!r}")
                    data = await reader.readexactly(int(parts[3]) + 2)
                    index = wire.get(parts[1])
                    if index is not None:
                        out[index] = data[:-2]

            await self._exchange(node, b"get " + b" ".join(wire) + b"\r\n", reply)

        await asyncio.gather(*(one(node, idx) for node, idx in self._by_node(keys).items()))
        return out

    async def _store(self, command: bytes, entries: Sequence[Any]) -> list:
        entries = list(entries)
        replies: list = [None] * len(entries)
        prefix = self.key_prefix

        async def one(node: str, indexes: list) -> None:
            request = bytearray()
            for i in indexes:
                key, value, ttl_ms = entries[i]
                request += b"%s %s 0 %d %d\r\n" % (
                    command,
                    (prefix + key).encode(),
                    _expiry(ttl_ms),
                    len(value),
                )
                request += value + b"\r\n"

            async def reply(reader: asyncio.StreamReader) -> None:
                for i in indexes:
                    replies[i] = (await reader.readline()).strip()

            await self._exchange(node, bytes(request), reply)

        await asyncio.gather(
            *(one(node, idx) for node, idx in self._by_node([e[0] for e in entries]).items())
        )
        return replies

    async def aset_many(self, entries: Sequence[Any]) -> None:
        replies = await self._store(b"set", entries)
        failed = [e[0] for e, r in zip(entries, replies) if r != b"STORED"]
        if failed:
            raise OSError(f"memcached did not store {len(failed)} item(s), e.g. {failed[0]!r}")

    async def aadd_many(self, items: Sequence[Any]) -> list:
        return [r == b"STORED" for r in await self._store(b"add", items)]

    async def adelete_many(self, keys: Sequence[str]) -> None:
        keys = list(keys)
        prefix = self.key_prefix

        async def one(node: str, indexes: list) -> None:
            request = b"".join(b"delete %s\r\n" % (prefix + keys[i]).encode() for i in indexes)

            async def reply(reader: asyncio.StreamReader) -> None:
                for _ in indexes:
                    await reader.readline()

            await self._exchange(node, request, reply)

        await asyncio.gather(*(one(node, idx) for node, idx in self._by_node(keys).items()))

    async def aflush_all(self) -> None:
        """``clear()`` on the event loop: ``flush_all`` to every server at
        once (``await tier.aflush_all()``)."""

        async def reply(reader: asyncio.StreamReader) -> None:
            line = await reader.readline()
            if line != b"OK\r\n":
                raise OSError(f"memcached refused flush_all: {line[:80]!r}")

        await asyncio.gather(*(self._exchange(node, b"flush_all\r\n", reply) for node in self._nodes))


class AsyncRedisTier(RedisTier):
    """``RedisTier`` whose async methods use ``redis.asyncio`` (one client
    per event loop)."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.url = url
        self._timeout = kwargs.get("timeout", 0.5)
        self._aclients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _aclient(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            import redis.asyncio

            client = self._aclients[loop] = redis.asyncio.Redis.from_url(
                self.url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                **self._redis_py_kwargs,  # password, username, ssl_* as RedisTier got them
            )
        return client

    async def aget_many(self, keys: Sequence[str]) -> list:
        return await self._aclient().mget([self.key_prefix + k for k in keys])

    async def aset_many(self, entries: Sequence[Any]) -> None:
        pipe = self._aclient().pipeline(transaction=False)
        for key, value, ttl_ms in entries:
            pipe.set(self.key_prefix + key, value, px=ttl_ms)
        await pipe.execute()

    async def aadd_many(self, items: Sequence[Any]) -> list:
        pipe = self._aclient().pipeline(transaction=False)
        for key, value, ttl_ms in items:
            pipe.set(self.key_prefix + key, value, px=ttl_ms, nx=True)
        return [bool(r) for r in await pipe.execute()]

    async def adelete_many(self, keys: Sequence[str]) -> None:
        if keys:
            await self._aclient().delete(*[self.key_prefix + k for k in keys])

    async def aflush(self) -> None:
        """``clear()`` on the event loop: ``FLUSHDB`` (``await tier.aflush()``)."""
        await self._aclient().flushdb()
