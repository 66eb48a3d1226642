"""Live fan-out of finished requests: :class:`EventHub` and the ``GET /admin/events`` server-sent-events handler.

Contracts:
- :meth:`EventHub.publish` is a :class:`~llmgw.stages.meter.MeterStage` listener: synchronous, O(subscribers),
  never blocks and never raises for a slow subscriber. Each subscriber has a bounded queue; when it is full the
  record is dropped for that subscriber only (counted in :attr:`Subscription.dropped`).
- Records are the :meth:`Exchange.log_row` dicts as published (``time`` in UNIX seconds, ``attempts`` a list),
  without ``request``/``response`` unless the subscriber asked for bodies. Published dicts are never mutated.
- Everything runs on one event loop; the hub holds no locks.
- ``GET /admin/events``: ``text/event-stream``; one ``data: {json}`` event per finished request, a
  ``: keep-alive`` comment after every ``keepalive_s`` without one; ``?bodies=1`` adds the bodies. With an admin
  key set, the request needs ``Authorization: Bearer <key>`` or ``x-api-key: <key>`` (401 in OpenAI's error
  format otherwise; the key is never echoed). :meth:`EventHub.close` ends every stream (call it on shutdown so
  open streams do not hold up a graceful stop).
- ``?history=N`` (at most :data:`MAX_HISTORY`) first sends the newest N requests of the request log, oldest
  first, in the same shape; a request sent from the log is not sent again when it is published live.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from ..errors import AuthenticationError
from ..formats import canonical
from ..sse import encode_data

BODY_FIELDS = ("request", "response")
MAX_HISTORY = 1000
_TRUE = ("1", "true", "yes", "on")

log = logging.getLogger("llmgw.proxy.events")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
History = Callable[[int, bool], Awaitable[list[dict[str, Any]]]]   # (how many, with bodies) -> records


class Subscription:
    """One live subscriber: an async iterator of records, registered with its hub from creation until
    :meth:`close` (or the end of an ``async with`` / ``with`` block)."""

    def __init__(self, hub: EventHub, bodies: bool, queue_size: int) -> None:
        self.bodies = bodies
        self.dropped = 0
        self._hub = hub
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=queue_size)  # None: hub closed
        self._closed = False

    def offer(self, row: dict[str, Any]) -> bool:
        """Queue ``row`` if there is room; False (and counted as dropped) otherwise. Never blocks."""
        try:
            self._queue.put_nowait(row)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    def end(self) -> None:
        """Wake the reader and make the iteration stop (used by :meth:`EventHub.close`)."""
        self._closed = True
        with contextlib.suppress(asyncio.QueueFull):  # a full queue: the reader stops once it has drained it
            self._queue.put_nowait(None)

    def close(self) -> None:
        """Unregister; the iteration stops."""
        self._closed = True
        self._hub.discard(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        row = await self._queue.get()
        if row is None:
            raise StopAsyncIteration
        return row if self.bodies else strip_bodies(row)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def strip_bodies(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` without the request/response bodies (a new dict; ``row`` itself is left alone)."""
    return {k: v for k, v in row.items() if k not in BODY_FIELDS}


class EventHub:
    """Fan-out of finished request records to live subscribers (see the module docstring)."""

    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, row: dict[str, Any]) -> None:
        """Hand ``row`` to every subscriber; drops it for subscribers whose queue is full."""
        for subscription in self._subscribers:
            subscription.offer(row)

    def subscribe(self, bodies: bool = False) -> Subscription:
        """A new subscription, registered at once: it receives every record published from now on."""
        subscription = Subscription(self, bodies, self.queue_size)
        if self._closed:
            subscription.end()
        else:
            self._subscribers.add(subscription)
        return subscription

    def discard(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def close(self) -> None:
        """End every subscription; later subscriptions end at once and nothing more is delivered."""
        self._closed = True
        for subscription in list(self._subscribers):
            subscription.end()
        self._subscribers.clear()


# --- GET /admin/events -----------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    """Bodies may be kept as the JSON bytes they travelled as: embed them as JSON (text if they are not)."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw.decode("utf-8", "replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def encode_event(record: dict[str, Any]) -> bytes:
    """One SSE event: ``data: {json}\\n\\n`` (orjson never writes a raw newline, so one ``data:`` line)."""
    return encode_data(orjson.dumps(record, default=_json_default))


def presented_key(request: web.Request) -> str | None:
    """The key the request carries: ``Authorization: Bearer <key>`` or ``x-api-key``."""
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key") or None


def authorized(request: web.Request, admin_key: str | None) -> bool:
    """True when no admin key is set or the request presents it (constant-time comparison)."""
    if admin_key is None:
        return True
    given = presented_key(request)
    return given is not None and hmac.compare_digest(given.encode(), admin_key.encode())


def unauthorized() -> web.Response:
    """401 in OpenAI's error format; never mentions the key's value."""
    return canonical().render_error(AuthenticationError(
        "this endpoint needs the admin key: send 'Authorization: Bearer <admin key>' or 'x-api-key'",
        code="invalid_admin_key"))


async def _stream(response: web.StreamResponse, subscription: Subscription, keepalive_s: float,
                  already_sent: set[str]) -> None:
    iterator = aiter(subscription)
    while True:
        try:
            record = await asyncio.wait_for(anext(iterator), keepalive_s)
        except TimeoutError:
            await response.write(b": keep-alive\n\n")
            continue
        except StopAsyncIteration:
            return
        if already_sent and record.get("id") in already_sent:
            already_sent.discard(record["id"])  # sent from the log already; a request is published once
            continue
        await response.write(encode_event(record))


def _history_size(request: web.Request) -> int:
    """``?history=N`` as a number of records (0 when absent or not a number), at most :data:`MAX_HISTORY`."""
    try:
        return max(0, min(MAX_HISTORY, int(request.query.get("history", "0"))))
    except ValueError:
        return 0


async def _send_history(response: web.StreamResponse, history: History | None, size: int,
                        bodies: bool) -> set[str]:
    """Send the newest ``size`` logged requests; the ids sent."""
    if history is None or size == 0:
        return set()
    try:
        records = await history(size, bodies)
    except Exception as exc:  # the live stream matters more than the past: carry on without it
        log.warning("could not read the request log for /admin/events history: %s", exc)
        return set()
    for record in records:
        await response.write(encode_event(record))
    return {str(r["id"]) for r in records if r.get("id")}


def events_handler(hub: EventHub, admin_key: str | None, *, keepalive_s: float = 15.0,
                   history: History | None = None) -> Handler:
    """The ``GET /admin/events`` handler over ``hub`` (see the module docstring); ``history`` reads the newest
    logged requests for ``?history=N``."""

    async def events(request: web.Request) -> web.StreamResponse:
        if not authorized(request, admin_key):
            return unauthorized()
        bodies = request.query.get("bodies", "").lower() in _TRUE
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
        with hub.subscribe(bodies) as subscription:  # before reading the log: nothing finishes in between unseen
            await response.prepare(request)
            await response.write(b": connected\n\n")
            try:
                sent = await _send_history(response, history, _history_size(request), bodies)
                await _stream(response, subscription, keepalive_s, sent)
            except (ConnectionResetError, ConnectionError):
                return response  # the client went away
        return response

    return events
