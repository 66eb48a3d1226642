"""Forwarding a stream to a client: the part every client format shares, and the one accumulator around it.

Contract (:func:`forward_stream`): events are taken from ``ex.first_event`` then ``ex.events`` as the upstream
sends them; each is first given to ``record`` (the proxy passes a :class:`StreamRecorder`, which notes usage, the
answer's text and its finish reason on the exchange: the renderers only render), then turned into bytes by the
format's ``encode``; bytes are written when an event is marked
``flush`` (the last one of an upstream network read), so one read from the upstream becomes one write to the
client; the status line and headers go out with the first write (alone only when the first read gave nothing to
write), so an answer that arrived in one read is written once. When the upstream finishes, ``finish()`` ends the
stream in the format's own way. When it fails mid-stream (a malformed event stream is a 502;
``ex.scrub_stream_failure``, when set, scrubs the failure's upstream text first: the router's),
``error(gateway_error, failure)`` is written instead and the exchange records the error. Any other exception
mid-stream is a fault of the gateway: logged, and the stream ends with an error event (500) all the same. When the
client goes away, the upstream request is closed and the exchange is marked ``client_disconnect`` — unless the
answer's finishing event was already written (``ex.delivered``: a client may hang up once it has read it, before the
stream's end, as Codex CLI does at ``response.completed``). What ``finish()`` or ``error`` gives goes out with the
chunked encoding's end, in one write. The upstream iterator is always closed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp import web

from ..deadline import Deadline
from ..errors import GatewayError, UpstreamError
from ..exchange import Exchange, StreamEvent
from ..providers.base import UpstreamFailure
from ..sse import SSEError
from .base import WireFormat


class StreamRecorder:
    """Records what a stream carried on its exchange, event by event: the latest ``usage``, the answer's text
    (``ex.streamed_text``) and its canonical ``finish_reason``, each read by the event's own format. A
    ``tool_calls`` finish stays once seen (Gemini streams a call, then may finish with a plain ``STOP``)."""

    __slots__ = ("_ex", "_format", "_lookup", "_name")

    def __init__(self, ex: Exchange, lookup: Callable[[str], WireFormat]) -> None:
        self._ex = ex
        self._lookup = lookup
        self._name = ""
        self._format: WireFormat | None = None

    def __call__(self, event: StreamEvent) -> None:
        ex = self._ex
        if event.usage is not None:
            ex.usage = event.usage
        if event.format != self._name:
            self._name, self._format = event.format, self._lookup(event.format)
        assert self._format is not None
        text, finish = self._format.event_delta(event.data)
        if text:
            ex.streamed_text.append(text)
        if finish and ex.finish_reason != "tool_calls":   # a later plain stop does not hide the tool calls
            ex.finish_reason = finish


class _HeadersWithFirstWrite(web.StreamResponse):
    """A stream response that sends its status line and headers with its first bytes instead of in a write of
    their own, as aiohttp's ``Response`` does (an aiohttp without the switch sends them at once, as before)."""

    _send_headers_immediately = False


log = logging.getLogger("llmgw.streaming")

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "Connection": "keep-alive"}


async def forward_stream(
    request: web.Request,
    ex: Exchange,
    headers: dict[str, str],
    encode: Callable[[StreamEvent], bytes | None],
    finish: Callable[[], bytes],
    error: Callable[[GatewayError, UpstreamFailure], bytes],
    record: Callable[[StreamEvent], None],
    *,
    content_type: str | None = None,
) -> web.StreamResponse:
    """See the module contract; ``content_type`` replaces SSE's for a format that streams another way (Gemini's
    JSON array)."""
    assert ex.events is not None and ex.first_event is not None
    sent = {**headers, **SSE_HEADERS}
    if content_type is not None:
        sent["Content-Type"] = content_type
    response = _HeadersWithFirstWrite(status=200, headers=sent)
    await response.prepare(request)
    events = ex.events
    pending: list[bytes] = []

    clock = time.perf_counter

    def take(event: StreamEvent) -> bool:
        record(event)
        out = encode(event)
        if out:
            pending.append(out)
        return event.flush

    async def write() -> None:
        await response.write(b"".join(pending))
        pending.clear()
        if ex.finish_reason is not None:   # the finishing event is written: the client has the whole answer
            ex.delivered = True

    try:
        try:
            # The request's total deadline holds across the stream: keep-alive comments do not extend it.
            with Deadline(ex.deadline):
                if take(ex.first_event):
                    await write()   # with nothing pending: the headers alone, so the client has the status now
                ready = clock()
                async for event in events:
                    arrived = clock()
                    ex.upstream_ms += (arrived - ready) * 1000.0   # waiting for the upstream is not overhead
                    if take(event) and pending:
                        await write()
                    ready = clock()
            pending.append(finish())
        except (UpstreamFailure, SSEError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                failure = UpstreamFailure(0, "the request's deadline (timeout_s) passed mid-stream", timeout=True)
            elif isinstance(exc, SSEError):
                failure = UpstreamFailure(502, f"upstream sent a malformed event stream: {exc}")
            else:
                failure = exc
            if ex.scrub_stream_failure is not None:
                failure = ex.scrub_stream_failure(failure)
            where = ex.target.name if ex.target else "upstream"
            failed = UpstreamError(f"upstream {where} failed mid-stream: {failure.message}",
                                   upstream_status=failure.status)
            ex.fail(failed)
            ex.outcome = "error"
            ex.estimate_partial_usage()
            pending.append(error(failed, failure))
        except ConnectionError:
            raise
        except Exception:   # a fault of the gateway's own: the stream still ends, with an error, never left open
            log.exception("request %s: unexpected error mid-stream", ex.id)
            failed = GatewayError("the gateway failed mid-stream (see its log)")
            ex.fail(failed)
            ex.outcome = "error"
            ex.estimate_partial_usage()
            pending.append(error(failed, UpstreamFailure(500, failed.message)))
        await response.write_eof(b"".join(pending))   # the end and the stream's terminator in one write
        if ex.error is None:
            ex.delivered = True
    except (ConnectionResetError, ConnectionError):
        ex.client_gone()
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    return response
