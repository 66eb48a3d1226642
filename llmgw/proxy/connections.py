"""Client connections of a running server: a cap on how many are open, a deadline for a request's headers, and
the process's file limit.

Contracts:
- :class:`ConnectionGuard` wraps the server's protocol factory (aiohttp's request handler), one wrapper per
  accepted connection. At most ``max_connections`` are served at once; a connection beyond the cap gets a
  ``503`` (JSON body in OpenAI's error format, ``Retry-After: 1``, ``Connection: close``) as soon as it sends
  something, or after :data:`REFUSE_AFTER_S`, and is closed: it never reaches the application, and a full server
  says so instead of hanging new clients. Every served connection must have sent its first request's headers
  (up to the blank line) within ``header_timeout_s``, or it is answered ``408`` and closed; later requests on a
  kept-alive connection are bounded by aiohttp's ``keepalive_timeout`` (idle) and the handler's body timeout.
- :func:`raise_fd_limit` raises the process's soft ``RLIMIT_NOFILE`` to its hard limit at start;
  :func:`connection_cap` keeps the cap below what that limit allows (each proxied request may hold an upstream
  connection too), so the server refuses with a 503 before ``accept`` fails for want of descriptors and
  ``/health`` goes dark.
- Counters (``open``, ``refused``, ``timed_out``) live on the guard, one per process; all of it runs on the event
  loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

log = logging.getLogger("llmgw.proxy.connections")

REFUSE_AFTER_S = 1.0
FD_RESERVE = 256          # descriptors kept for the log, the key store, shared state, DNS and the like
_BUSY = orjson.dumps({"error": {
    "message": "the gateway is serving as many connections as it may (server.max_connections); retry shortly",
    "type": "server_error", "param": None, "code": "too_many_connections"}})
BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                 b"Connection: close\r\nContent-Length: " + str(len(_BUSY)).encode() + b"\r\n\r\n" + _BUSY)
_SLOW = orjson.dumps({"error": {
    "message": "the request's headers did not arrive within server.header_timeout_s",
    "type": "invalid_request_error", "param": None, "code": "header_timeout"}})
SLOW_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
                 b"Content-Length: " + str(len(_SLOW)).encode() + b"\r\n\r\n" + _SLOW)


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard limit (where the platform allows it); the soft limit now in
    force, or 0 where there is none to read."""
    try:
        import resource
    except ImportError:   # not a POSIX system
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    elif hard == resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY:
        for target in (1 << 20, 65536, 10240):   # what the kernel accepts for "unlimited" varies
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
                break
            except (ValueError, OSError):
                continue
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 1 << 30 if soft == resource.RLIM_INFINITY else int(soft)


def connection_cap(max_connections: int, fd_limit: int) -> int:
    """``max_connections``, lowered to what ``fd_limit`` open files allow (two per proxied connection, and
    :data:`FD_RESERVE` for the rest); at least 16."""
    if fd_limit <= 0:
        return max_connections
    return max(16, min(max_connections, (fd_limit - FD_RESERVE) // 2))


class ConnectionGuard:
    """The connection cap and header deadline of one server process (see the module contract)."""

    def __init__(self, max_connections: int, header_timeout_s: float) -> None:
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.open = 0
        self.refused = 0
        self.timed_out = 0

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` that guards the protocols ``inner`` makes."""
        return lambda: _Guarded(self, inner)


class _Guarded(asyncio.Protocol):
    """One accepted connection: passed to aiohttp's protocol once admitted, answered 503 otherwise."""

    __slots__ = ("_admitted", "_guard", "_inner", "_inner_factory", "_tail", "_timer", "_transport")

    def __init__(self, guard: ConnectionGuard, inner: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._inner_factory = inner
        self._inner: Any = None
        self._admitted = False
        self._tail = b""
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        self._transport = transport  # type: ignore[assignment]
        loop = asyncio.get_running_loop()
        if guard.open >= guard.max_connections:
            guard.refused += 1
            self._timer = loop.call_later(REFUSE_AFTER_S, self._refuse)
            return
        guard.open += 1
        self._admitted = True
        self._timer = loop.call_later(guard.header_timeout_s, self._too_slow)
        self._inner = self._inner_factory()
        self._inner.connection_made(transport)

    def _refuse(self) -> None:
        self._cancel_timer()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(BUSY_RESPONSE)
            transport.close()

    def _too_slow(self) -> None:
        self._timer = None
        self._guard.timed_out += 1
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(SLOW_RESPONSE)
            transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            self._refuse()
            return
        if self._timer is not None:   # still waiting for the end of the first request's headers
            window = self._tail + data
            # find(), not `in`: bytes.__contains__ tries the needle as an int first and makes (and drops) a TypeError
            if window.find(b"\r\n\r\n") != -1 or window.find(b"\n\n") != -1:
                self._cancel_timer()
                self._tail = b""
            else:
                self._tail = window[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is None:
            return None
        return self._inner.eof_received()  # type: ignore[no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._transport = None
        if self._admitted:
            self._admitted = False
            self._guard.open -= 1
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class GuardedSite(web.SockSite):
    """aiohttp's :class:`~aiohttp.web.SockSite` whose connections go through ``guard`` first."""

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, guard: ConnectionGuard, *,
                 backlog: int = 128) -> None:
        super().__init__(runner, sock, backlog=backlog)
        self.guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)   # registers the site with its runner, as SockSite.start does
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self.guard.factory(server), sock=self._sock, backlog=self._backlog)
