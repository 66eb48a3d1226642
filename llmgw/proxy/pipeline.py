"""The pipeline: the stages of the request's way, each phase run over the stages that declare it.

Contract (the phases are drawn in :mod:`llmgw.stages.base`):
- ``admit(ex)`` runs the ``headers`` phases in order, before the body is read, until a stage fails the exchange;
  it never raises a :class:`GatewayError` (it records it with ``ex.fail``). The caller reads the body and calls
  ``start`` only when ``ex.error`` is still None.
- ``start(ex)`` runs the ``request`` phases in order until a stage fails the exchange (``ex.error``) or answers it
  (``ex.reply``, ``ex.first_event``); the last stage is the router. Then, if the exchange was answered, the
  ``after_route`` phases in order. ``start`` never raises a :class:`GatewayError`: it records it with ``ex.fail``.
- ``finish(ex)`` runs the ``after_answer`` phases in order and then the ``response`` phases in reverse order —
  for every exchange, short-circuited, failed or answered, so every request is metered and logged. A stage that
  raises in ``finish`` is logged and skipped; it never stops the stages after it. ``finish_suspends`` says
  whether any ``response`` phase may wait on I/O (a shared store's settle): only then can a cancellation land
  inside ``finish``.
- Replay and smoke tests send exchanges through the same pipeline: there is no second code path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..errors import GatewayError
from ..exchange import Exchange
from ..stages.base import Stage

log = logging.getLogger("llmgw.proxy.pipeline")


class Pipeline:
    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)
        phases = {stage: stage.phases() for stage in self.stages}
        self._headers = tuple(s.headers for s in self.stages if "headers" in phases[s])
        self._request = tuple(s.request for s in self.stages if "request" in phases[s])
        self._after_route = tuple(s.after_route for s in self.stages if "after_route" in phases[s])
        self._after_answer = tuple(s.after_answer for s in self.stages if "after_answer" in phases[s])
        self._response = tuple(s.response for s in reversed(self.stages) if "response" in phases[s])
        self.finish_suspends = any(s.response_suspends for s in self.stages if "response" in phases[s])

    async def admit(self, ex: Exchange) -> None:
        """Before the body: leaves ``ex.error`` set when a stage refuses the request."""
        try:
            for headers in self._headers:
                await headers(ex)
                if ex.error is not None:
                    return
        except GatewayError as error:
            ex.fail(error)

    async def start(self, ex: Exchange) -> None:
        """The way in: leaves ``ex.reply``, ``ex.first_event``/``ex.events`` or ``ex.error`` set."""
        try:
            for request in self._request:
                await request(ex)
                if ex.error is not None:
                    return
                if ex.reply is not None or ex.first_event is not None:
                    break
            for after_route in self._after_route:
                await after_route(ex)
                if ex.error is not None:
                    return
        except GatewayError as error:
            ex.fail(error)

    async def finish(self, ex: Exchange) -> None:
        """The way out; always completes."""
        for after_answer in self._after_answer:
            try:
                after_answer(ex)
            except Exception:
                log.exception("stage %s failed after the answer of %s", _name(after_answer), ex.id)
        for response in self._response:
            try:
                await response(ex)
            except Exception:
                log.exception("stage %s failed in its response phase for %s", _name(response), ex.id)


def _name(phase: object) -> str:
    return type(getattr(phase, "__self__", phase)).__name__
