"""A fault-injecting proxy for the fault-injection runs (issue 7).

One :class:`FaultProxy` listens on a loopback port and forwards to one
upstream server (memcached, Redis, or the S3 stand-in). Its mode can be
switched at run time, and it counts what it sees, per mode, so a run can tell
how many calls reached a tier while it was failing:

``pass``
    Forward everything (the proxy is invisible, apart from the counting).
``error``
    HTTP proxies answer every request ``503 SlowDown`` (an S3 error body),
    keeping the connection; TCP proxies behave as ``reset``.
``reset``
    Every new connection, and every request on an open one, is answered
    with a TCP reset (``SO_LINGER`` 0). A connection reset at once counts as
    one request.
``hang``
    Requests are read and never answered (a frozen server); the connection
    stays open until the client gives up or the mode changes (then it is
    closed).

A TCP proxy (``http=False``) counts one *request* each time the client
sends after a reply (or first on a connection): the memcached and Redis
clients send one request (one batch, one pipeline) per call and wait for its
reply, so this is the number of calls. An HTTP proxy parses
requests (``Content-Length`` and chunked bodies, ``Expect: 100-continue``)
and counts each one exactly. If the upstream refuses the connection (a
killed server behind a ``pass`` proxy), the client's connection is closed
and counted as ``upstream_refused``.

The proxy runs its own asyncio loop in a daemon thread: ``start()``,
``set_mode()``, ``counts()``, ``stop()`` are called from any thread.

Command line (a standalone proxy, the mode read from stdin lines)::

    python faultproxy.py --listen 22100 --upstream 127.0.0.1:22003 [--http]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import struct
import sys
import threading
from collections import Counter
from typing import Optional

MODES = ("pass", "error", "reset", "hang")

S3_503 = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
    b"<RequestId>faultproxy</RequestId></Error>"
)


class _Closed(Exception):
    """The peer closed the connection."""


def _rst(writer: asyncio.StreamWriter) -> None:
    """Closes with a TCP reset instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """See the module docs. ``upstream``: ``(host, port)``."""

    def __init__(
        self,
        upstream: tuple,
        *,
        http: bool = False,
        listen_port: int = 0,
        name: str = "proxy",
    ) -> None:
        self.upstream = (upstream[0], int(upstream[1]))
        self.http = http
        self.name = name
        self._listen_port = listen_port
        self.port = 0
        self._mode = "pass"
        self._counts: Counter = Counter()
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._server: Optional[asyncio.base_events.Server] = None
        self._mode_changed: Optional[asyncio.Event] = None
        self._writers: set = set()

    # -- control (any thread) ---------------------------------------------------

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def mode(self) -> str:
        return self._mode

    def start(self) -> FaultProxy:
        ready = threading.Event()
        failure: list = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._mode_changed = asyncio.Event()
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, "127.0.0.1", self._listen_port, backlog=512)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # reported to start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=f"faultproxy-{self.name}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: use one of {', '.join(MODES)}")
        assert self._loop is not None

        def switch() -> None:
            self._mode = mode
            assert self._mode_changed is not None
            self._mode_changed.set()
            self._mode_changed = asyncio.Event()

        done = threading.Event()
        self._loop.call_soon_threadsafe(lambda: (switch(), done.set()))
        done.wait(5)

    def counts(self) -> dict:
        """Counters so far: ``connections``, ``requests``, ``requests_<mode>``
        (requests that arrived while in that mode), ``upstream_refused``,
        ``answered_503``, ``resets``, ``hung``."""
        with self._lock:
            return dict(self._counts)

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._writers):
                with contextlib.suppress(Exception):
                    w.close()
            if self._server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._server.wait_closed(), 2)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the proxy (loop thread) ---------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def _request_seen(self) -> str:
        mode = self._mode
        with self._lock:
            self._counts["requests"] += 1
            self._counts[f"requests_{mode}"] += 1
        return mode

    async def _hang(self, reader: asyncio.StreamReader) -> None:
        """Reads and discards until the client closes or the mode changes."""
        self._count("hung")
        assert self._mode_changed is not None
        changed = asyncio.ensure_future(self._mode_changed.wait())
        try:
            while True:
                read = asyncio.ensure_future(reader.read(65536))
                done, _ = await asyncio.wait({read, changed}, return_when=asyncio.FIRST_COMPLETED)
                if changed in done:
                    read.cancel()
                    return
                if not read.result():
                    return
        finally:
            changed.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._count("connections")
        self._writers.add(writer)
        try:
            if self.http:
                await self._handle_http(reader, writer)
            else:
                await self._handle_tcp(reader, writer)
        except (_Closed, ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _connect_upstream(self) -> Optional[tuple]:
        try:
            return await asyncio.open_connection(*self.upstream)
        except OSError:
            self._count("upstream_refused")
            return None

    # TCP: memcached, Redis ----------------------------------------------------------

    async def _handle_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self._mode
        if mode in ("reset", "error"):
            self._request_seen()  # the connection attempt is the request
            self._count("resets")
            _rst(writer)
            return
        up: Optional[tuple] = None
        pump: Optional[asyncio.Task] = None
        # A request starts with the first bytes the client sends after a
        # reply (a large value arrives in several reads: one request).
        state = {"replied": True}
        mode = self._mode
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                if state["replied"]:
                    state["replied"] = False
                    mode = self._request_seen()
                else:
                    mode = self._mode
                if mode in ("reset", "error"):
                    self._count("resets")
                    _rst(writer)
                    return
                if mode == "hang":
                    await self._hang(reader)
                    return
                if up is None:
                    up = await self._connect_upstream()
                    if up is None:
                        _rst(writer)
                        return
                    pump = asyncio.ensure_future(self._pump(up[0], writer, state))
                up[1].write(data)
                await up[1].drain()
        finally:
            if pump is not None:
                pump.cancel()
            if up is not None:
                with contextlib.suppress(Exception):
                    up[1].close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: dict) -> None:
        """Upstream → client, dropped while the mode is not ``pass`` (a
        frozen server's replies never arrive)."""
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if self._mode != "pass":
                    continue
                state["replied"] = True
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        with contextlib.suppress(Exception):
            writer.close()

    # HTTP: S3 -----------------------------------------------------------------------

    async def _read_message(
        self, reader: asyncio.StreamReader, *, request: bool, method: str = "", client_writer=None
    ) -> tuple:
        """(head lines, raw head bytes, body bytes) of one HTTP message."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise _Closed() from exc
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if request and headers.get("expect", "").lower() == "100-continue" and client_writer is not None:
            client_writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await client_writer.drain()
        body = b""
        no_body = False
        if not request:
            status = int(lines[0].split()[1])
            no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        if no_body:
            pass
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            while True:
                size_line = await reader.readuntil(b"\r\n")
                parts.append(size_line)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    # trailers, up to an empty line
                    while True:
                        line = await reader.readuntil(b"\r\n")
                        parts.append(line)
                        if line == b"\r\n":
                            break
                    break
                parts.append(await reader.readexactly(size + 2))
            body = b"".join(parts)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif not request:
            body = await reader.read()  # until close
            headers["connection"] = "close"
        return lines, headers, head, body

    async def _handle_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._mode == "reset":
            self._request_seen()  # the connection attempt is the request
            self._count("resets")
            _rst(writer)
            return
        up: Optional[tuple] = None
        try:
            while True:
                lines, _headers, _head, body = await self._read_message(
                    reader, request=True, client_writer=writer
                )
                mode = self._request_seen()
                method = lines[0].split()[0] if lines[0] else "GET"
                if mode == "reset":
                    self._count("resets")
                    _rst(writer)
                    return
                if mode == "hang":
                    await self._hang(reader)
                    return
                if mode == "error":
                    self._count("answered_503")
                    payload = b"" if method == "HEAD" else S3_503
                    writer.write(
                        b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                        + f"Content-Length: {len(S3_503)}\r\nx-amz-request-id: faultproxy\r\n\r\n".encode()
                        + payload
                    )
                    await writer.drain()
                    continue
                if up is None:
                    up = await self._connect_upstream()
                    if up is None:
                        _rst(writer)
                        return
                # Forward without Expect (answered above; not a signed header).
                kept = [ln for ln in lines if ln and not ln.lower().startswith("expect:")]
                up[1].write(("\r\n".join(kept) + "\r\n\r\n").encode("latin-1") + body)
                await up[1].drain()
                _rlines, rheaders, rhead, rbody = await self._read_message(
                    up[0], request=False, method=method
                )
                if self._mode == "hang":  # froze while the request was upstream
                    await self._hang(reader)
                    return
                writer.write(rhead + rbody)
                await writer.drain()
                if rheaders.get("connection", "").lower() == "close":
                    return
        finally:
            if up is not None:
                with contextlib.suppress(Exception):
                    up[1].close()


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(
        description="A fault-injecting TCP/HTTP proxy (modes: pass, error, reset, hang)."
    )
    parser.add_argument("--listen", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--upstream", required=True, help="host:port to forward to")
    parser.add_argument("--http", action="store_true", help="parse HTTP (S3): count requests, answer 503s")
    args = parser.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    proxy = FaultProxy((host, int(port)), http=args.http, listen_port=args.listen, name="cli").start()
    print(f"listening on {proxy.address}; type a mode ({', '.join(MODES)}), 'counts' or 'quit'", flush=True)
    for line in sys.stdin:
        word = line.strip()
        if word in ("quit", "exit"):
            break
        if word == "counts":
            print(proxy.counts(), flush=True)
        elif word:
            try:
                proxy.set_mode(word)
                print(f"mode {word}", flush=True)
            except ValueError as exc:
                print(exc, flush=True)
    proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
