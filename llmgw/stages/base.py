"""The stage contract: one concern of the request's way, with the phases it declares.

A stage is a class derived from :class:`Stage` that overrides the phases it takes part in; the pipeline
(:class:`llmgw.proxy.pipeline.Pipeline`) calls only those, in this order:

0. ``headers(ex)`` — before the request's body is read, in stage order, on what the HTTP request's line and
   headers gave the exchange (``credential``, ``tags``, ``route_params``; no body, no alias yet). A stage refuses
   by failing the exchange (``ex.fail``, or raising a :class:`~llmgw.errors.GatewayError`): the body is then never
   read and the stages' ``request`` phases never run, but ``after_answer`` and ``response`` still do (a refused
   request is logged, without a body). Authentication lives here, so an unauthenticated client cannot make the
   gateway read, parse, validate or log what it sends.
1. ``request(ex)`` — on the way in, in stage order. A stage short-circuits by failing the exchange
   (``ex.fail``, or raising a :class:`~llmgw.errors.GatewayError`) or by answering it (``ex.reply``, or
   ``ex.first_event``/``ex.events`` for a stream: a cache hit); the stages after it are then skipped. Routing is
   the last stage (:class:`llmgw.stages.route.Router`).
2. ``after_route(ex)`` — once an answer is there (from the router or a stage), before it is rendered, in stage
   order: restore or check the answer, wrap the stream. A failure here replaces the answer.
3. ``after_answer(ex)`` — synchronous, once the answer has been written (or has failed, or the client left), in
   stage order: usage is final; price it, take back what must not outlive the client's view.
4. ``response(ex)`` — in reverse stage order, always, for every exchange (refused, failed, answered): settle,
   store, log. A stage that raises here is logged and skipped; the others still run. A stage whose ``response``
   never awaits anything that suspends says so with ``response_suspends = False``: when no stage's does, the
   handler runs the way out inline instead of in a task of its own (see :mod:`llmgw.proxy.handlers`).

Stages keep per-request state only on the :class:`~llmgw.exchange.Exchange` and talk to each other only through
it; never through callbacks into one another.
"""

from __future__ import annotations

from ..exchange import Exchange

PHASES = ("headers", "request", "after_route", "after_answer", "response")


class Stage:
    """The base of every stage; each phase does nothing unless overridden (see the module contract)."""

    response_suspends: bool = True   # whether ``response`` may wait on I/O (the safe assumption)

    async def headers(self, ex: Exchange) -> None:
        return None

    async def request(self, ex: Exchange) -> None:
        return None

    async def after_route(self, ex: Exchange) -> None:
        return None

    def after_answer(self, ex: Exchange) -> None:
        return None

    async def response(self, ex: Exchange) -> None:
        return None

    @classmethod
    def phases(cls) -> tuple[str, ...]:
        """The phases this stage takes part in: those it overrides."""
        return tuple(p for p in PHASES if getattr(cls, p) is not getattr(Stage, p))
