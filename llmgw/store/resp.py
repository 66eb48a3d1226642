"""A lean Redis client for the shared state's hot path: one pipelined connection, replies parsed by hiredis.

Contracts:
- :class:`RespClient` sends every command over one connection, opened on first use and again on the first use
  after a failure. Replies come back in the order the commands went out, so any number of callers can have a
  command in flight at once: the commands of one event-loop turn leave in one write, without a pool to check
  connections in and out of.
- :meth:`RespClient.call` returns the reply (bytes, int, a list, or None for nil). An error reply raises
  :class:`RespError` with Redis's message; it leaves the connection usable. A failed connection raises
  :class:`ConnectionError` for every command in flight on it. The caller bounds each call with its own deadline
  and calls :meth:`RespClient.reset` when it passes: a command without an answer makes the connection's order
  unknowable, so it is closed (failing the rest in flight) and the next call opens a new one.
- URLs: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://…`` (TLS, verified against the system's CAs,
  or ``?ssl_ca_certs=/path/ca.pem``; ``?ssl_cert_reqs=none`` turns verification off, as redis-py spells it) and
  ``unix://[[user]:password@]/path[?db=N]``; a password (percent-decoded) is sent with ``AUTH``, a database other
  than 0 with ``SELECT``, before any other command.
- :meth:`RespClient.close` returns once the connection is closed (a TLS connection says goodbye to the server
  first), or after ``CLOSE_WAIT_S``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

CLOSE_WAIT_S = 1.0   # how long close() waits for the connection to be gone


class RespError(Exception):
    """An error reply from Redis (``NOSCRIPT …``, ``READONLY …``, ``OOM …``)."""


class RespUrl:
    """Where and how to connect, read from a redis://, rediss:// or unix:// URL (see the module contract)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got scheme {parts.scheme!r}")
        self.tls = parts.scheme == "rediss"
        self.path = unquote(parts.path) if parts.scheme == "unix" else None
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password is not None else None
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        db = query.get("db", "")
        if not db and parts.scheme != "unix":
            db = parts.path.lstrip("/")
        self.db = int(db) if db else 0
        self.verify = query.get("ssl_cert_reqs", "required").lower() != "none"
        self.ca_file = query.get("ssl_ca_certs")

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context of a rediss:// URL (None for the others)."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def handshake(self) -> list[tuple[Any, ...]]:
        """The commands that open a connection: AUTH and SELECT, where the URL asks for them."""
        commands: list[tuple[Any, ...]] = []
        if self.password is not None:
            commands.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if self.db:
            commands.append(("SELECT", self.db))
        return commands


def encode(args: Sequence[Any]) -> bytes:
    """One command in RESP: an array of bulk strings (str and numbers are sent as their text)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Connection(asyncio.Protocol):
    """One connection: the futures of the commands in flight, resolved in order as replies are parsed."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader(replyError=RespError)
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.failed: BaseException | None = None
        self.lost = asyncio.Event()     # set once the transport is gone

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]   # uvloop's transports do not derive from asyncio's

    def data_received(self, data: bytes) -> None:
        reader, waiting = self.reader, self.waiting
        try:
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                if not waiting:
                    raise hiredis.ProtocolError("a reply nobody asked for")
                future = waiting.popleft()
                if future.done():   # its caller gave up (its deadline passed): the reply keeps the order
                    continue
                if isinstance(reply, RespError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except hiredis.ProtocolError as exc:
            self.close(ConnectionError(f"redis sent something that is not RESP: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.close(ConnectionError(f"redis closed the connection{f': {exc}' if exc else ''}"))
        self.lost.set()

    def send(self, command: bytes) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.failed is not None or self.transport is None:
            future.set_exception(ConnectionError(f"redis connection failed: {self.failed}"))
            return future
        self.waiting.append(future)
        self.transport.write(command)
        return future

    def close(self, reason: BaseException) -> None:
        """Fail everything in flight with ``reason`` and close; later sends fail at once."""
        if self.failed is None:
            self.failed = reason
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(ConnectionError(str(reason)))
        if self.transport is not None:
            self.transport.close()


class RespClient:
    """See the module contract. ``connect_timeout_s`` bounds opening a connection, handshake included."""

    def __init__(self, url: str, *, connect_timeout_s: float = 2.0) -> None:
        self.url = RespUrl(url)
        self.connect_timeout_s = connect_timeout_s
        self._connection: _Connection | None = None
        self._opening: asyncio.Lock | None = None

    async def call(self, *args: Any) -> Any:
        connection = self._connection
        if connection is None or connection.failed is not None:
            connection = await self._open()
        return await connection.send(encode(args))

    def reset(self, reason: str = "a command went unanswered") -> None:
        """Close the connection, failing what is in flight with ``reason``; the next call opens a new one."""
        if self._connection is not None:
            self._connection.close(ConnectionError(reason))
            self._connection = None

    async def close(self) -> None:
        """Close the connection (see the module contract)."""
        connection = self._connection
        self.reset("the client was closed")
        if connection is not None and connection.transport is not None:
            try:
                async with asyncio.timeout(CLOSE_WAIT_S):
                    await connection.lost.wait()
            except TimeoutError:
                connection.transport.abort()

    async def _open(self) -> _Connection:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:   # callers arriving meanwhile wait for the same connection
            if self._connection is not None and self._connection.failed is None:
                return self._connection
            async with asyncio.timeout(self.connect_timeout_s):
                connection = await self._connect()
                try:
                    for command in self.url.handshake():
                        await connection.send(encode(command))
                except BaseException as exc:
                    connection.close(exc)
                    raise
            self._connection = connection
            return connection

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        url = self.url
        if url.path is not None:
            _, connection = await loop.create_unix_connection(_Connection, url.path)
        else:
            _, connection = await loop.create_connection(_Connection, url.host, url.port, ssl=url.tls_context())
        return connection
