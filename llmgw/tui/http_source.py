"""The live source: ``GET {url}/admin/events`` on a running ``llmgw serve``, reconnecting with backoff.

Contract:
- :meth:`HttpEventSource.events` never ends on its own and never raises for a network or HTTP problem: it yields
  ``Status("connected", …)`` each time the stream opens, one record per ``data:`` event, and
  ``Status("disconnected", …)`` (saying "cannot reach the proxy at URL — retrying …", or why the proxy refused)
  each time a connection attempt fails or an open stream ends, then retries after a delay that doubles from
  ``retry_initial_s`` up to ``retry_max_s`` and starts over once a stream opens.
- ``key`` goes out only as ``Authorization: Bearer <key>`` and never appears in a status.
- A stream silent for longer than ``idle_timeout_s`` (the server sends a keep-alive every 15 s) counts as dropped.
  Events that are not JSON objects, and events larger than ``max_event_bytes``, are skipped. An ``event: alert``
  is yielded as an :class:`~.source.Alert` (never deduplicated as a request).
- Closing the iterator (or cancelling its consumer) closes the HTTP session.
- With ``history`` N, every connection asks for the newest N logged requests first (``?history=N``), so the
  view starts full and a reconnect fills the gap; a record whose ``id`` was already yielded (among the last
  ``remember`` ones) is not yielded again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

import aiohttp
import orjson

from ..sse import SSEDecoder, SSEMessage
from .source import Alert, Event, Record, Status


class _Refused(Exception):
    """The proxy answered, but not with an event stream; the message says why, for the status line."""


class HttpEventSource:
    """Records from ``{url}/admin/events`` (see the module docstring)."""

    def __init__(self, url: str, key: str | None = None, *, bodies: bool = True, retry_initial_s: float = 0.5,
                 retry_max_s: float = 10.0, connect_timeout_s: float = 5.0, idle_timeout_s: float = 45.0,
                 max_event_bytes: int = 32 * 1024 * 1024, history: int = 0, remember: int = 10_000) -> None:
        self.url = url.rstrip("/")
        self.bodies = bodies
        self.history = max(0, history)
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._remember = max(remember, self.history)
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_event_bytes = max_event_bytes
        self._key = key

    @property
    def label(self) -> str:
        return self.url

    @property
    def endpoint(self) -> str:
        query = [*(["bodies=1"] if self.bodies else []), *([f"history={self.history}"] if self.history else [])]
        return self.url + "/admin/events" + ("?" + "&".join(query) if query else "")

    def _first_time(self, record: Record) -> bool:
        """False for a record this source has yielded already (by ``id``; records without one always pass)."""
        rid = record.get("id")
        if not isinstance(rid, str):
            return True
        if rid in self._seen:
            return False
        self._seen.add(rid)
        self._seen_order.append(rid)
        if len(self._seen_order) > self._remember:
            self._seen.discard(self._seen_order.popleft())
        return True

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    async def events(self) -> AsyncIterator[Event]:
        timeout = aiohttp.ClientTimeout(total=None, connect=self.connect_timeout_s, sock_read=self.idle_timeout_s)
        delay = self.retry_initial_s
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                opened = False
                try:
                    async with session.get(self.endpoint, headers=self._headers()) as response:
                        _check(response, self.url)
                        opened = True
                        yield Status("connected", f"connected to {self.url}")
                        delay = self.retry_initial_s
                        async for record in self._records(response):
                            if isinstance(record, Alert) or self._first_time(record):
                                yield record
                    problem = f"the proxy at {self.url} closed the stream"
                except _Refused as exc:
                    problem = str(exc)
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    what = "lost the connection to" if opened else "cannot reach"
                    problem = f"{what} the proxy at {self.url} ({_reason(exc)})"
                yield Status("disconnected", f"{problem} — retrying in {delay:g}s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)

    async def _records(self, response: aiohttp.ClientResponse) -> AsyncIterator[Record | Alert]:
        decoder = SSEDecoder()
        async for chunk in response.content.iter_any():
            for message in decoder.feed(chunk):
                if (event := self._event(message)) is not None:
                    yield event
        for message in decoder.close():
            if (event := self._event(message)) is not None:
                yield event

    def _event(self, message: SSEMessage) -> Record | Alert | None:
        """A record, or an alert for ``event: alert``; None for what is skipped."""
        record = self._parse(message.data)
        if record is None:
            return None
        return Alert(record) if message.event == "alert" else record

    def _parse(self, data: bytes) -> Record | None:
        if not data or len(data) > self.max_event_bytes:
            return None
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None


def _check(response: aiohttp.ClientResponse, url: str) -> None:
    """Raise :class:`_Refused` unless ``response`` is an open event stream."""
    if response.status == 401:
        raise _Refused(f"the proxy at {url} needs its admin key (HTTP 401): pass --key or set $LLMGW_ADMIN_KEY")
    if response.status == 404:
        raise _Refused(f"{url} has no /admin/events (HTTP 404): is it an llmgw proxy, and recent enough?")
    if response.status != 200:
        raise _Refused(f"the proxy at {url} answered HTTP {response.status} to /admin/events")
    if not response.content_type.startswith("text/event-stream"):
        raise _Refused(f"{url}/admin/events is not an event stream ({response.content_type})")


def _reason(exc: BaseException) -> str:
    """A short reason for a failed connection, for the status line."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error.strerror:
        return exc.os_error.strerror.lower()
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the connection dropped"
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "…"
