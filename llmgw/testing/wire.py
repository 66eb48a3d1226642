"""The HTTP pieces every fake upstream writes the same way: JSON responses, recorded headers, SSE events.

Contracts:

* :func:`json_response` is a JSON body (``orjson``, compact) with ``Content-Type: application/json``.
* :class:`RecordedHeaders` is how a fake records a request's headers: lower-cased names, case-insensitive lookups,
  a header sent several times joined with ``", "`` (:func:`recorded_headers`).
* :func:`sse` frames one server-sent event; :func:`send_events` answers 200 with a list of them, paced by the
  fake's ``chunk_delay_s``.

Nothing here holds state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar

import orjson
from aiohttp import web

__all__ = [
    "SSE_CONTENT_TYPE",
    "RecordedHeaders",
    "bearer_token",
    "by_status",
    "json_response",
    "recorded_headers",
    "send_events",
    "sse",
]

SSE_CONTENT_TYPE: Final = "text/event-stream; charset=utf-8"
_T = TypeVar("_T")


class RecordedHeaders(dict[str, str]):
    """A plain dict of request headers with lower-cased keys whose lookups ignore case."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


def recorded_headers(request: web.Request) -> RecordedHeaders:
    """The request's headers as a fake records them: a header sent several times (such as ``anthropic-beta``)
    is joined with ``", "`` in the order sent."""
    headers = RecordedHeaders()
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def bearer_token(request: web.Request) -> str | None:
    """The stripped token of an ``Authorization: Bearer ...`` header; None without one (``""`` for an empty one)."""
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth.startswith("Bearer ") else None


def by_status(table: Mapping[int, _T], status: int, *, client_error: _T, server_error: _T) -> _T:
    """``table[status]``, else ``server_error`` for a 5xx status and ``client_error`` for any other."""
    return table.get(status, server_error if status >= 500 else client_error)


def json_response(payload: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """``payload`` as a compact JSON body with ``Content-Type: application/json`` (after ``headers``)."""
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json",
                        headers=headers)


def sse(data: bytes, event: str | None = None, *, crlf: bool = False) -> bytes:
    """One server-sent event: ``event: EVENT`` (when given), ``data: DATA``, a blank line; lines end in ``\\n``,
    or ``\\r\\n`` with ``crlf`` (as Gemini sends them)."""
    eol = b"\r\n" if crlf else b"\n"
    head = b"event: " + event.encode() + eol if event is not None else b""
    return head + b"data: " + data + eol + eol


async def send_events(
    request: web.Request,
    events: Sequence[bytes],
    *,
    delay: float,
    done: bytes = b"",
    content_type: str = SSE_CONTENT_TYPE,
    headers: Mapping[str, str] | None = None,
    close: bool = False,
) -> web.StreamResponse:
    """Answer 200 with ``events`` (and then ``done``), as an event stream.

    The response has ``Content-Type: content_type`` and ``Cache-Control: no-cache``, then ``headers``. With
    ``delay > 0`` it sleeps ``delay`` seconds before each event and writes each on its own; ``done`` (such as
    OpenAI's ``data: [DONE]``) follows the last event without a pause. With ``delay == 0`` everything is written
    in one go. ``close`` closes the connection after the response (a stream that broke off).
    """
    response = web.StreamResponse(headers=(("Content-Type", content_type), ("Cache-Control", "no-cache")))
    if headers:
        response.headers.update(headers)
    if close:
        response.force_close()
    await response.prepare(request)
    if delay > 0:
        for event in events:
            await asyncio.sleep(delay)
            await response.write(event)
        if done:
            await response.write(done)
    else:
        await response.write(b"".join(events) + done)
    await response.write_eof()
    return response
