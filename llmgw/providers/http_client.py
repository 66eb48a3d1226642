"""The upstream HTTP/1.1 client: pooled keep-alive connections, responses parsed by llhttp (through httptools).

Every request the gateway forwards is one upstream POST, so this client is on the hot path of every answer. It
does what the adapters need and no more, at about a third of the CPU aiohttp's client spends per request (no cookie
jar, no redirects, no proxies, no compression, no per-request tracing machinery).

Contract:
- ``post(url, data=…, headers=…, timeout=…)`` is an async context manager that sends ``data`` (bytes) and gives an
  :class:`UpstreamResponse` once the status line and headers are in: ``status``; ``headers`` (case-insensitive,
  every value kept); ``await read()`` (the whole body); ``content.iter_any()`` (the body as it arrives: each piece
  is all that was buffered, never empty); ``content.at_eof()`` (the body is complete and all of it was taken).
  ``timeout`` is an ``aiohttp.ClientTimeout``: ``sock_connect`` bounds opening a connection, ``sock_read`` each
  wait for the next bytes (headers or body); ``total`` is not used (deadlines are the router's).
- ``read()`` refuses a body over ``max_body_bytes`` (:data:`MAX_BODY_BYTES`) with ``ClientPayloadError`` and closes
  the connection; a stream read with ``iter_any()`` is bounded by its reader.
- A new connection tries each address of the host in turn (:mod:`.http_address`: a lookup is kept for 300 s).
- Leaving the context puts the connection back in the pool when its response was read to the end and both sides
  keep it alive; otherwise the connection is closed. An idle connection is reused newest first, and dropped when the
  server closed it or it sat idle longer than ``keepalive_s``.
- Sent headers are the caller's plus ``Host``, ``Content-Length`` and ``User-Agent`` (unless the caller gave one);
  a caller's ``Host``, ``Content-Length``, ``Transfer-Encoding`` or ``Connection`` is not sent. A header name or
  value with a CR, LF or NUL raises ``ValueError`` before anything is sent (no header injection).
  ``Accept-Encoding: gzip, deflate`` is always sent (a caller's is not), and such answers are inflated as they
  arrive (``deflate`` as zlib data or raw, as some servers send it); another encoding, a body that does not
  inflate, or one network read that inflates too far (:mod:`.http_encoding`), is a ``ClientPayloadError``.
- Failures raise aiohttp's exception types, so adapters catch one family: ``ClientOSError`` (connecting failed),
  ``ServerDisconnectedError`` (the connection closed before the response was complete), ``ClientPayloadError``
  (a response llhttp cannot parse, or a header block over :data:`MAX_HEADER_BYTES`), ``ServerTimeoutError`` (a
  ``sock_read`` wait ran out; also a ``TimeoutError``), and ``TimeoutError`` for ``sock_connect``.
- ``on_request`` (optional) may add headers to each request's copy of them before it is sent (trace context).
- Flow control: a body buffered beyond :data:`READ_HIGH_WATER` pauses reading from the socket until the reader
  takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Mapping
from functools import partial

import aiohttp
import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from .. import __version__
from .http_address import Destination, Resolver
from .http_encoding import Inflater, inflater_for

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 256 * 1024 * 1024   # the most read() takes: a hostile upstream cannot fill the gateway's memory
READ_HIGH_WATER = 256 * 1024
KEEPALIVE_S = 60.0
USER_AGENT = f"llmgw/{__version__}"
_NOT_SENT = frozenset({"host", "content-length", "transfer-encoding", "connection", "accept-encoding"})
_CONTENT_ENCODING = b"content-encoding"
_TARGETS_KEPT = 1024       # parsed URLs remembered (providers post to a few fixed URLs each)

RequestHook = Callable[[dict[str, str]], None]


class UpstreamResponse:
    """One upstream answer, read as it arrives (see the module contract). ``content`` is the response itself."""

    __slots__ = ("_conn", "_eof", "_exc", "_headers", "_inflater", "_keep_alive", "_loop", "_max_body", "_paused",
                 "_pieces", "_raw_headers", "_read_timeout", "_size", "_waiter", "status")

    def __init__(self, conn: _Connection, loop: asyncio.AbstractEventLoop, read_timeout: float | None,
                 max_body: int = MAX_BODY_BYTES) -> None:
        self._conn = conn
        self._max_body = max_body
        self._loop = loop
        self._read_timeout = read_timeout
        self.status = 0
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._headers: CIMultiDictProxy[str] | None = None
        self._pieces: list[bytes] = []
        self._size = 0
        self._eof = False
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._keep_alive = False
        self._inflater: Inflater | None = None
        self._paused = False

    # --- what the reader sees ---

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        if self._headers is None:
            self._headers = CIMultiDictProxy(CIMultiDict(
                (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
                for name, value in self._raw_headers))
        return self._headers

    @property
    def content(self) -> UpstreamResponse:
        return self

    def at_eof(self) -> bool:
        return self._eof and not self._pieces

    def iter_any(self) -> _Pieces:
        return _Pieces(self)

    async def read(self) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            if self._pieces:   # taken as it comes, so that a long body never stops the socket being read
                parts.append(self._take())
                size += len(parts[-1])
                if size > self._max_body:
                    self._conn.close()
                    raise aiohttp.ClientPayloadError(f"the upstream's answer is over {self._max_body} bytes")
            if self._eof:
                return parts[0] if len(parts) == 1 else b"".join(parts)
            if self._exc is not None:
                raise self._exc
            await self._wait()

    @property
    def complete(self) -> bool:
        """The whole response is in (what the reader has not taken yet included)."""
        return self._eof

    # --- fed by the connection ---

    def _headers_in(self, status: int, headers: list[tuple[bytes, bytes]], keep_alive: bool,
                    encoding: bytes) -> None:
        self.status = status
        self._raw_headers = headers
        self._keep_alive = keep_alive
        try:
            self._inflater = inflater_for(encoding)
        except ValueError as exc:
            self._fail(aiohttp.ClientPayloadError(f"the upstream answered in an encoding not asked for: {exc}"))
        self._wake()

    def _ends_with_connection(self) -> bool:
        """Whether only the connection's end delimits this answer's body (no length, not chunked)."""
        if self.status in (204, 304):
            return False
        return not any(name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self._raw_headers)

    def _feed(self, body: bytes) -> None:
        if self._exc is not None:
            return
        if self._inflater is not None:
            try:
                body = self._inflater.inflate(body)
            except zlib.error as exc:
                self._fail(aiohttp.ClientPayloadError(f"the upstream's compressed answer is broken: {exc}"))
                return
            if not body:
                return
        self._pieces.append(body)
        self._size += len(body)
        if self._size > READ_HIGH_WATER and not self._paused and self._conn.transport is not None:
            self._paused = True
            self._conn.transport.pause_reading()
        self._wake()

    def _finish(self) -> None:
        if self._exc is not None:   # a body that broke never completes: the reader gets the error
            self._wake()
            return
        if self._inflater is not None:
            try:
                tail = self._inflater.flush()
            except zlib.error as exc:
                self._fail(aiohttp.ClientPayloadError(f"the upstream's compressed answer is broken: {exc}"))
                return
            if tail:
                self._pieces.append(tail)
        self._eof = True
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if not self._eof and self._exc is None:
            self._exc = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _take(self) -> bytes:
        pieces = self._pieces
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        pieces.clear()
        self._size = 0
        if self._paused:
            self._paused = False
            if self._conn.transport is not None:
                self._conn.transport.resume_reading()
        return data

    async def _wait(self) -> None:
        """Until the connection has news for this response (bounded by the read timeout)."""
        waiter = self._waiter = self._loop.create_future()
        timer = None if self._read_timeout is None else self._loop.call_later(self._read_timeout, self._timed_out,
                                                                             waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _timed_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(aiohttp.ServerTimeoutError("timeout reading from the upstream"))


class _Pieces:
    """``async for piece in response.content.iter_any()``: each piece is everything buffered when it is taken."""

    __slots__ = ("_response",)

    def __init__(self, response: UpstreamResponse) -> None:
        self._response = response

    def __aiter__(self) -> _Pieces:
        return self

    async def __anext__(self) -> bytes:
        response = self._response
        while not response._pieces:
            if response._eof:
                raise StopAsyncIteration
            if response._exc is not None:
                raise response._exc
            await response._wait()
        return response._take()


class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses what arrives for the response it is serving."""

    def __init__(self, key: tuple[str, int, bool], loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        self.loop = loop   # the loop it was opened on: its responses wait there
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.response: UpstreamResponse | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._encoding = b""
        self._informational = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]   # uvloop's transports are not asyncio's classes
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, httptools.HttpParserError):   # raised by a callback here: its own words
                exc = exc.__context__
            self._broken(aiohttp.ClientPayloadError(f"the upstream's response is not valid HTTP: {exc}"))

    def eof_received(self) -> bool:
        return False   # close the transport; connection_lost ends a response read until the end

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self.response
        if response is None or response.complete:
            return
        if response.status and exc is None and response._ends_with_connection():
            response._finish()
        elif response.status:
            response._fail(aiohttp.ClientPayloadError("the upstream closed the connection mid-answer"))
        else:
            response._fail(aiohttp.ServerDisconnectedError())

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _broken(self, exc: BaseException) -> None:
        if self.response is not None:
            self.response._fail(exc)
        self.close()

    # --- llhttp's callbacks ---

    def on_message_begin(self) -> None:
        self._headers = []
        self._header_bytes = 0
        self._encoding = b""
        self._informational = False
        if self.response is None or self.response.status:   # bytes nobody asked for
            raise httptools.HttpParserError("unexpected response")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise httptools.HttpParserError(f"header block over {MAX_HEADER_BYTES} bytes")
        self._headers.append((name, value))
        if len(name) == 16 and name.lower() == _CONTENT_ENCODING:
            self._encoding = value.strip().lower()

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:      # 100 Continue, 103 Early Hints: the real answer follows
            self._informational = True
            return
        assert self.response is not None
        # llhttp keeps alive no answer that only the connection's end can delimit
        self.response._headers_in(status, self._headers, self._parser.should_keep_alive(), self._encoding)

    def on_body(self, body: bytes) -> None:
        if self.response is not None and not self._informational:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        if self._informational:
            return
        if self.response is not None:
            self.response._finish()


class _Exchange:
    """``async with client.post(…) as response``: sends on enter, releases or closes the connection on exit."""

    __slots__ = ("_client", "_data", "_headers", "_response", "_timeout", "_url")

    def __init__(self, client: UpstreamClient, url: str, data: bytes, headers: Mapping[str, str],
                 timeout: aiohttp.ClientTimeout | None) -> None:
        self._client, self._url, self._data, self._headers, self._timeout = client, url, data, headers, timeout
        self._response: UpstreamResponse | None = None

    async def __aenter__(self) -> UpstreamResponse:
        self._response = await self._client._send(self._url, self._data, self._headers, self._timeout)
        return self._response

    async def __aexit__(self, *exc_info: object) -> None:
        response = self._response
        if response is not None:
            self._client._release(response)


class UpstreamClient:
    """Pooled HTTP/1.1 connections to upstreams (see the module contract)."""

    def __init__(self, *, keepalive_s: float = KEEPALIVE_S, ssl_context: ssl.SSLContext | None = None,
                 on_request: RequestHook | None = None, max_body_bytes: int = MAX_BODY_BYTES,
                 resolver: Resolver | None = None) -> None:
        self.keepalive_s = keepalive_s
        self.max_body_bytes = max_body_bytes
        self._ssl = ssl_context
        self.on_request = on_request
        self._targets: dict[str, Destination] = {}
        self._idle: dict[tuple[str, int, bool], list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._resolver = resolver or Resolver()
        self.connections_made = 0
        """How many connections were opened (for tests and diagnostics)."""

    @property
    def open_connections(self) -> int:
        """Connections held, idle or serving a response (for tests and diagnostics)."""
        return len(self._open)

    def post(self, url: str, *, data: bytes, headers: Mapping[str, str],
             timeout: aiohttp.ClientTimeout | None = None) -> _Exchange:
        return _Exchange(self, url, data, headers, timeout)

    async def close(self) -> None:
        """Close every connection, idle or not."""
        for conn in list(self._open):
            conn.close()
        self._idle.clear()
        self._open.clear()
        await asyncio.sleep(0)   # let the transports finish closing

    # --- internals ---

    def _target(self, url: str) -> Destination:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= _TARGETS_KEPT:
                self._targets.clear()
            target = self._targets[url] = Destination(url)
        return target

    def _head(self, target: Destination, headers: Mapping[str, str], size: int) -> bytes:
        if self.on_request is not None:
            headers = dict(headers)
            self.on_request(headers)
        lines = [f"{name}: {value}\r\n" for name, value in headers.items() if name.lower() not in _NOT_SENT]
        block = "".join(lines)
        if block.count("\n") != len(lines) or block.count("\r") != len(lines) or "\x00" in block:
            raise ValueError("a header name or value holds a line break or NUL")
        if "user-agent" not in (name.lower() for name in headers):
            block += f"User-Agent: {USER_AGENT}\r\n"
        return target.head + f"{block}Accept-Encoding: gzip, deflate\r\nContent-Length: {size}\r\n\r\n".encode()

    async def _send(self, url: str, data: bytes, headers: Mapping[str, str],
                    timeout: aiohttp.ClientTimeout | None) -> UpstreamResponse:
        target = self._target(url)
        head = self._head(target, headers, len(data))
        conn = self._checkout(target.key)
        if conn is None:
            conn = await self._connect(target, timeout.sock_connect if timeout is not None else None)
        response = UpstreamResponse(conn, conn.loop, timeout.sock_read if timeout is not None else None,
                                    self.max_body_bytes)
        conn.response = response
        assert conn.transport is not None
        conn.transport.writelines([head, data])
        try:
            while not response.status:
                if response._exc is not None:
                    raise response._exc
                await response._wait()
        except BaseException:
            conn.response = None
            self._forget(conn)
            raise
        return response

    def _checkout(self, key: tuple[str, int, bool]) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if self._stale(conn, now):
                self._forget(conn)
                continue
            return conn
        return None

    async def _connect(self, target: Destination, timeout_s: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        if target.tls and self._ssl is None:   # the system's CA store, loaded on first use (it takes milliseconds)
            self._ssl = ssl.create_default_context()
        tls = self._ssl if target.tls else None
        try:
            async with asyncio.timeout(timeout_s):
                addresses = await self._resolver.addresses(target.host, target.port)
                for number, (family, address) in enumerate(addresses, 1):
                    try:   # each address in the resolver's order, until one answers
                        _, conn = await loop.create_connection(
                            partial(_Connection, target.key, loop), address, target.port, family=family, ssl=tls,
                            server_hostname=target.host if tls is not None else None)
                        break
                    except OSError as exc:
                        if number == len(addresses) or isinstance(exc, TimeoutError):
                            raise
        except TimeoutError:     # an OSError too, but a timeout to the caller
            raise
        except OSError as exc:   # ssl.SSLError and socket.gaierror are OSErrors too
            raise aiohttp.ClientOSError(exc.errno, f"cannot connect to {target.host}:{target.port}: {exc}") \
                from None
        self.connections_made += 1
        self._open.add(conn)
        return conn

    def _release(self, response: UpstreamResponse) -> None:
        conn = response._conn
        conn.response = None
        if not (response.complete and response._keep_alive) or conn.closed \
                or response._exc is not None:
            self._forget(conn)
            return
        now = time.monotonic()
        conn.idle_since = now
        idle = self._idle.setdefault(conn.key, [])
        if idle and self._stale(idle[0], now):   # the oldest expires first; checkout drops any other found closed
            for stale in [c for c in idle if self._stale(c, now)]:
                idle.remove(stale)
                self._forget(stale)
        idle.append(conn)

    def _stale(self, conn: _Connection, now: float) -> bool:
        """An idle connection not to be reused: closed (by either side) or idle longer than ``keepalive_s``."""
        return conn.closed or conn.transport is None or conn.transport.is_closing() \
            or now - conn.idle_since > self.keepalive_s

    def _forget(self, conn: _Connection) -> None:
        conn.close()
        self._open.discard(conn)
