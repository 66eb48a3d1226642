"""Live fan-out of finished requests: :class:`EventHub` and the ``GET /admin/events`` server-sent-events handler.

Contracts:
- :meth:`EventHub.publish` is a :class:`~llmgw.stages.meter.MeterStage` listener: synchronous, O(subscribers),
  never blocks and never raises for a slow subscriber. Each subscriber's queue is bounded by count
  (``queue_size``) and by bytes (``max_bytes``, the records' estimated size, bodies included for a subscriber that
  asked for them): to make room the *oldest* records are dropped for that subscriber only, and a record larger
  than ``max_bytes`` on its own is not queued; both are counted in :attr:`Subscription.dropped`, and
  ``/admin/events`` tells its reader with a ``: dropped N`` comment. So a stalled reader of ``?bodies=1`` holds at
  most ``max_bytes`` of the server's memory, however large the bodies.
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
- :meth:`EventHub.publish_alert` hands an alert record (:meth:`llmgw.alerts.Alert.record`) to every subscriber, queued
  like a request; ``/admin/events`` sends it as a distinct ``event: alert`` (requests stay unnamed ``data:`` events).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from ..errors import AuthenticationError
from ..formats import canonical
from ..sse import encode_data

BODY_FIELDS = ("request", "response")
MAX_HISTORY = 1000
MAX_SUBSCRIBER_BYTES = 16 * 1024 * 1024
ROW_BYTES = 1024   # what a record without bodies is counted as (its text fields added)
_TRUE = ("1", "true", "yes", "on")

log = logging.getLogger("llmgw.proxy.events")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
History = Callable[[int, bool], Awaitable[list[dict[str, Any]]]]   # (how many, with bodies) -> records


class AlertRecord(dict[str, Any]):
    """An alert's record on its way through a subscription: sent as ``event: alert``, never stripped of bodies."""


class Subscription:
    """One live subscriber: an async iterator of records, registered with its hub from creation until
    :meth:`close` (or the end of an ``async with`` / ``with`` block)."""

    def __init__(self, hub: EventHub, bodies: bool, queue_size: int,
                 max_bytes: int = MAX_SUBSCRIBER_BYTES) -> None:
        self.bodies = bodies
        self.dropped = 0
        self.queue_size = queue_size
        self.max_bytes = max_bytes
        self._hub = hub
        self._rows: deque[tuple[dict[str, Any], int]] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self._closed = False

    @property
    def queued_bytes(self) -> int:
        """The estimated size of the records waiting for the reader."""
        return self._bytes

    def offer(self, row: dict[str, Any], size: int = ROW_BYTES) -> bool:
        """Queue ``row`` (``size`` its estimated bytes), dropping the oldest records to make room; False (counted as
        dropped) when it is larger than ``max_bytes`` on its own. Never blocks."""
        if size > self.max_bytes:
            self.dropped += 1
            return False
        rows = self._rows
        while rows and (len(rows) >= self.queue_size or self._bytes + size > self.max_bytes):
            self._bytes -= rows.popleft()[1]
            self.dropped += 1
        rows.append((row, size))
        self._bytes += size
        self._ready.set()
        return True

    def end(self) -> None:
        """Wake the reader and make the iteration stop once it has taken what is queued (used by
        :meth:`EventHub.close`)."""
        self._closed = True
        self._ready.set()

    def close(self) -> None:
        """Unregister; the iteration stops."""
        self.end()
        self._hub.discard(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while not self._rows:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        row, size = self._rows.popleft()
        self._bytes -= size
        return row if self.bodies or isinstance(row, AlertRecord) else strip_bodies(row)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def row_bytes(row: dict[str, Any], bodies: bool) -> int:
    """The estimated size of a record as a subscriber holds it: :data:`ROW_BYTES` and its free-text fields, and
    with ``bodies`` the request and response (their JSON bytes, or their serialised size)."""
    size = ROW_BYTES + len(row.get("error_message") or "")
    if bodies:
        for name in BODY_FIELDS:
            value = row.get(name)
            if isinstance(value, bytes | bytearray | memoryview):
                size += len(value)
            elif value is not None:
                try:
                    size += len(orjson.dumps(value, default=_json_default))
                except TypeError:
                    size += ROW_BYTES
    return size


def strip_bodies(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` without the request/response bodies (a new dict; ``row`` itself is left alone)."""
    return {k: v for k, v in row.items() if k not in BODY_FIELDS}


class EventHub:
    """Fan-out of finished request records to live subscribers (see the module docstring)."""

    def __init__(self, queue_size: int = 1000, max_bytes: int = MAX_SUBSCRIBER_BYTES) -> None:
        self.queue_size = queue_size
        self.max_bytes = max_bytes
        self._subscribers: set[Subscription] = set()
        self._closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, row: dict[str, Any]) -> None:
        """Hand ``row`` to every subscriber (each makes room by dropping its oldest records)."""
        if not self._subscribers:
            return
        plain = full = -1
        for subscription in self._subscribers:
            if subscription.bodies:
                full = row_bytes(row, True) if full < 0 else full
                subscription.offer(row, full)
            else:
                plain = row_bytes(row, False) if plain < 0 else plain
                subscription.offer(row, plain)

    def publish_alert(self, record: dict[str, Any]) -> None:
        """Hand an alert's record to every subscriber (sent as ``event: alert``)."""
        alert = AlertRecord(record)
        for subscription in self._subscribers:
            subscription.offer(alert)

    def subscribe(self, bodies: bool = False) -> Subscription:
        """A new subscription, registered at once: it receives every record published from now on."""
        subscription = Subscription(self, bodies, self.queue_size, self.max_bytes)
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
    reported = 0
    while True:
        try:
            record = await asyncio.wait_for(anext(iterator), keepalive_s)
        except TimeoutError:
            await response.write(b": keep-alive\n\n")
            continue
        except StopAsyncIteration:
            return
        if subscription.dropped > reported:   # this reader fell behind: say how many records it missed
            reported = subscription.dropped
            await response.write(f": dropped {reported} records (this reader was too slow)\n\n".encode())
        if isinstance(record, AlertRecord):
            await response.write(encode_data(orjson.dumps(record, default=_json_default), event="alert"))
            continue
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
