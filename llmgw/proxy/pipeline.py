"""The pipeline: small stages around the router, run in order on the way in and in reverse on the way out.

Contract:
- ``start(ex)`` runs each stage's ``request(ex)``; a stage short-circuits by setting ``ex.error`` (a block, a 429)
  or ``ex.reply`` (a cache hit), after which later stages and the router are skipped. Otherwise the router
  answers. ``start`` never raises a :class:`GatewayError`: it records it with ``ex.fail``.
- ``finish(ex)`` runs every stage's ``response(ex)`` in reverse order — also for short-circuited and failed
  exchanges, so every request is metered and logged. A stage that raises in ``finish`` is logged and skipped; it
  never stops the stages after it.
- Replay and smoke tests send exchanges through the same pipeline: there is no second code path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from ..errors import GatewayError
from ..exchange import Exchange
from ..stages.route import Router

log = logging.getLogger("llmgw.proxy.pipeline")


class Stage(Protocol):
    """One concern (auth, limits, guardrails, cache, meter) with a request and a response phase."""

    async def request(self, ex: Exchange) -> None: ...

    async def response(self, ex: Exchange) -> None: ...


class Pipeline:
    def __init__(self, stages: Sequence[Stage], router: Router) -> None:
        self.stages = tuple(stages)
        self._reversed = tuple(reversed(self.stages))
        self.router = router
        # Optional hooks: after_route(ex) (async, before rendering: restore or scan an answer, wrap a stream) and
        # after_render(ex) (sync, first thing in finish).
        self._after_route = tuple(s.after_route for s in self.stages if hasattr(s, "after_route"))
        self._after_render = tuple(s.after_render for s in self.stages if hasattr(s, "after_render"))

    async def start(self, ex: Exchange) -> None:
        """Request phase: stages, then the router. Leaves ``ex.reply``, ``ex.events`` or ``ex.error`` set."""
        try:
            for stage in self.stages:
                await stage.request(ex)
                if ex.error is not None:
                    return
                if ex.reply is not None or ex.first_event is not None:  # answered by a stage (a cache hit)
                    break
            else:
                await self.router.route(ex)
                if ex.reply is not None and ex.reply.usage is not None:
                    ex.usage = ex.reply.usage
            for hook in self._after_route:
                await hook(ex)
                if ex.error is not None:
                    return
        except GatewayError as error:
            ex.fail(error)

    async def finish(self, ex: Exchange) -> None:
        """Response phase, in reverse stage order; always completes. First the router hears how a stream ended."""
        self.router.stream_ended(ex)
        for hook in self._after_render:
            try:
                hook(ex)
            except Exception:
                log.exception("after_render failed for %s", ex.id)
        for stage in self._reversed:
            try:
                await stage.response(ex)
            except Exception:
                log.exception("stage %s failed in its response phase for %s", type(stage).__name__, ex.id)
