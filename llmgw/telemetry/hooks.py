"""Where traces meet the server: the incoming request, its upstream attempts, and its end.

Contract (all of it exists only when ``[telemetry]`` is configured; without it the app has none of these hooks):
- :func:`trace_middleware` reads the client's ``traceparent``/``tracestate`` into a :class:`RequestTrace` held in
  the request's context (:data:`CURRENT`) for the handler's life, and removes it after.
- :class:`TraceStage` is the pipeline's first stage: ``headers`` binds the exchange to that trace; ``after_answer``
  marks it settled; ``response`` — the very last phase, after the meter has priced and logged the exchange — hands
  the exchange, its trace and its end time to ``emit`` (which builds and queues the spans; it must not block).
- :func:`add_trace_headers` is the upstream client's request hook: a request that goes out
  while an exchange is routing (it has a target and is not settled) carries the ``traceparent`` of the attempt it
  belongs to (``len(ex.attempts) + 1``: an attempt is recorded when it ends) and the client's ``tracestate``; a
  request made outside an exchange (or before routing, or after the answer) is left alone.
- The trace lives in a context variable, not on the exchange, because the HTTP client's hooks see no exchange:
  each request handler runs in its own task, so one request's trace never leaks into another's.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

from aiohttp import web

from ..exchange import Exchange
from ..stages.base import Stage
from .context import RequestTrace

CURRENT: ContextVar[RequestTrace | None] = ContextVar("llmgw_request_trace", default=None)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Emit = Callable[[Exchange, RequestTrace, float], None]


def trace_middleware(sample_ratio: float) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The middleware that gives each request its :class:`RequestTrace` (see the module contract)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        headers = request.headers
        trace = RequestTrace.incoming(headers.get("traceparent"), ",".join(headers.getall("tracestate", ())),
                                      sample_ratio)
        token = CURRENT.set(trace)
        try:
            return await handler(request)
        finally:
            CURRENT.reset(token)

    return middleware


class TraceStage(Stage):
    """The first stage of a traced pipeline (see the module contract)."""

    response_suspends = False   # its response phase never waits on I/O

    def __init__(self, emit: Emit) -> None:
        self.emit = emit

    async def headers(self, ex: Exchange) -> None:
        trace = CURRENT.get()
        if trace is not None:
            trace.exchange = ex

    def after_answer(self, ex: Exchange) -> None:
        trace = CURRENT.get()
        if trace is not None:
            trace.settled = True

    async def response(self, ex: Exchange) -> None:
        trace = CURRENT.get()
        if trace is not None and trace.exchange is ex:
            trace.settled = True
            self.emit(ex, trace, time.perf_counter())


def add_trace_headers(headers: dict[str, str]) -> None:
    """The upstream client's request hook (see the module contract): adds the attempt's ``traceparent`` and the
    client's ``tracestate`` to ``headers`` while an exchange is routing; leaves them alone otherwise."""
    trace = CURRENT.get()
    if trace is None or trace.settled:
        return
    ex = trace.exchange
    if ex is None or ex.target is None:
        return
    headers["traceparent"] = trace.attempt_traceparent(len(ex.attempts) + 1)
    if trace.tracestate:
        headers["tracestate"] = trace.tracestate
