"""Turning HTTP into an Exchange and back: one handler for every route of every client format.

Contract (:func:`format_handler`):
- The pipeline's ``headers`` phases (authentication) run first, on the headers alone: a refused request is
  answered at once and its body is never read (nor parsed, validated or logged).
- The body is read once (size limit, orjson, at most ``MAX_DEPTH`` levels of nesting), the route's format validates
  it and fills the exchange, and the exchange goes through the whole pipeline — every endpoint alike (chat,
  embeddings, count_tokens): auth, limits, guardrails, cache, routing, meter.
- Whatever happens, ``Pipeline.finish`` runs to its end, so every request — refused, failed or answered — leaves
  exactly one log row and settles what it reserved. A bad request gets a precise 4xx in the client's format and
  never reaches a provider.
- The answer (a whole reply, an error, or a stream's end) is written to the client before ``Pipeline.finish``
  runs: the log row, the metrics, settling limits and storing the answer in the cache never delay it.
- A client that hangs up cancels the handler (and with it the upstream request); the exchange is marked
  ``client_disconnect``, as it is when the connection is gone by the time the answer is written. A hang-up while
  the exchange is being finished (a client closes the connection as soon as it has the answer, while budgets
  settle in a shared store) does not cut the finish short: it runs in its own task, which the handler waits for
  before it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from aiohttp import web

from ..errors import GatewayError, InvalidRequest, PayloadTooLarge
from ..exchange import Exchange
from ..formats import Route, WireFormat, named
from ..formats.streaming import StreamRecorder
from ..formats.validate import parse_counted
from ..profile import Profile
from ..uncancelled import to_the_end
from .pipeline import Pipeline

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_TAGS = 16


class Serving(Protocol):
    """What a request is served with: a profile and the pipeline built from it (a generation)."""

    @property
    def profile(self) -> Profile: ...

    @property
    def pipeline(self) -> Pipeline: ...


async def read_json(request: web.Request, max_bytes: int,
                    timeout_s: float | None = None) -> tuple[dict[str, Any], bytes, int | None]:
    """The request body as a JSON object nested at most ``MAX_DEPTH`` levels deep
    (:func:`~llmgw.formats.validate.parse_counted`), its bytes and the number of object keys the parse found (None:
    not counted), or a precise :class:`GatewayError`; a body still arriving after
    ``timeout_s`` is a 408 (``server.body_timeout_s``; aiohttp then reads what is left for at most its lingering
    time, and closes the connection)."""
    content = request.content
    try:
        if content.is_eof():   # all of it is here (it came with the headers): taken at once, no timer
            raw = content.read_nowait()
            size = len(raw)    # as read: a compressed body inflated
        else:
            raw, size = None, request.content_length
        if size is not None and size > max_bytes:
            raise PayloadTooLarge(f"request body is {size} bytes; the limit is {max_bytes} (server.max_body_mb)")
        if raw is None:   # still arriving: read within the body's deadline
            async with asyncio.timeout(timeout_s):
                raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"request body exceeds the limit of {max_bytes} bytes (server.max_body_mb)") from None
    except TimeoutError:
        raise GatewayError(f"the request body did not arrive within {timeout_s:g}s (server.body_timeout_s)",
                           status=408, code="body_timeout") from None
    if not raw:
        raise InvalidRequest("request body is empty; expected a JSON object", code="invalid_json")
    try:
        body, keys = parse_counted(raw)   # within the nesting limit
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    return body, raw, keys


def proxy_headers(ex: Exchange, *, with_cost: bool) -> dict[str, str]:
    """The ``x-llmgw-*`` headers of a proxied answer (the cost only where it is final: whole answers, with
    ``x-llmgw-unpriced`` naming a target without a price, whose cost of 0 means unknown), with the time spent in the
    gateway itself so far (``x-llmgw-overhead-ms``: all but waiting on upstreams)."""
    headers = {
        "x-llmgw-request-id": ex.id,
        "x-llmgw-target": ex.target.name if ex.target else "",
        "x-llmgw-attempts": str(len(ex.attempts)),
        "x-llmgw-cache": ex.cache,
    }
    if with_cost:
        headers["x-llmgw-cost-usd"] = f"{ex.cost_usd:.8f}"
        if ex.unpriced and ex.target is not None:   # 0 above means unknown, not free: say so
            headers["x-llmgw-unpriced"] = ex.target.name
    headers["x-llmgw-overhead-ms"] = f"{ex.overhead_ms():.3f}"
    return headers


def _tags(request: web.Request) -> tuple[str, ...]:
    raw = request.headers.get("x-llmgw-tags")
    if not raw:
        return ()
    return tuple(t.strip() for t in raw.split(",") if t.strip())[:MAX_TAGS]


def begin(request: web.Request, profile: Profile, wire: WireFormat, route: Route) -> Exchange:
    """A new exchange for ``request`` on ``route``: its id, deadline, tags, credential, the route's path
    parameters and stream flag, cache directives and the client headers its format forwards to an upstream of the
    same format."""
    ex = Exchange(wire.name, route.endpoint, log_bodies=profile.server.log_bodies)
    ex.stream = route.stream
    ex.deadline = ex.started + profile.server.timeout_s
    ex.tags = _tags(request)
    headers = request.headers
    ex.credential = wire.credential(request)
    if request.match_info:
        ex.route_params = dict(request.match_info)
    ex.cache_control = ", ".join(v for v in (headers.get("x-llmgw-cache"), headers.get("Cache-Control")) if v)
    if wire.forward_headers:
        ex.forward_headers = {h: v for h in wire.forward_headers if (v := headers.get(h))}
    return ex


def format_handler(wire: WireFormat, route: Route, serving: Callable[[web.Request], Serving],
                   max_bytes: int) -> Handler:
    """The POST handler of ``route``, one of ``wire``'s (see the module contract). ``serving(request)`` returns the
    profile and pipeline the request took when it arrived (:class:`llmgw.proxy.generation.Generation`), which it
    uses to its end whatever profile reloads happen meanwhile."""

    async def handle(request: web.Request) -> web.StreamResponse:
        held = serving(request)
        stages, profile = held.pipeline, held.profile
        ex = begin(request, profile, wire, route)
        try:
            await stages.admit(ex)
            if ex.error is not None:   # refused on its headers: the body is never read
                raise ex.error
            body, ex.raw_body, ex.raw_keys = await read_json(request, max_bytes, profile.server.body_timeout_s)
            wire.parse(ex, body)
            await stages.start(ex)
            if ex.error is not None:
                return await send(request, ex, wire.render_error(ex.error, proxy_headers(ex, with_cost=False)))
            if ex.events is not None:
                return await wire.render_stream(request, ex, proxy_headers(ex, with_cost=False),
                                                StreamRecorder(ex, named))
            return await send(request, ex, wire.render_reply(ex, proxy_headers(ex, with_cost=True)))
        except GatewayError as error:
            ex.fail(error)
            return await send(request, ex, wire.render_error(error, {"x-llmgw-request-id": ex.id,
                                                                     "x-llmgw-overhead-ms": f"{ex.overhead_ms():.3f}"}))
        except asyncio.CancelledError:
            ex.client_gone()
            raise
        finally:
            await finish(stages, ex)

    return handle


async def send(request: web.Request, ex: Exchange, response: web.Response) -> web.Response:
    """Write ``response`` whole now, before the way out's bookkeeping (see the module contract); aiohttp finds it
    written when the handler returns. A client already gone is recorded as such (``client_disconnect``)."""
    try:
        await response.prepare(request)
        await response.write_eof()
    except ConnectionError:   # the client hung up: nothing to write to
        ex.client_gone()
        return response
    if ex.error is None:
        ex.delivered = True
    return response


async def finish(stages: Pipeline, ex: Exchange) -> None:
    """``stages.finish(ex)`` to its end, even when the handler is cancelled meanwhile (see the module contract);
    the cancellation is passed on once it is done. A finish that cannot suspend runs inline: no cancellation can
    land inside it, and no task is paid for."""
    if stages.finish_suspends:
        await to_the_end(stages.finish(ex))
    else:
        await stages.finish(ex)
