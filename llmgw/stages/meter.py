"""Meter: prices each exchange once from its normalised usage and hands its log row to the writer and listeners.

Contract:
- The cost is computed once per exchange into ``ex.cost_usd`` (``ex.priced``), broken down by token type into
  ``ex.cost_breakdown`` (:meth:`~llmgw.pricing.PriceTable.quote`; ``sum(breakdown.values()) == cost_usd``
  exactly). A target without a price (and not of a free kind) that billed tokens costs 0 and sets ``ex.unpriced``
  (cost unknown); the story notes
  it, and a long-context tier when one applied. The cost is priced in ``after_route`` for a whole
  answer (so its ``x-llmgw-cost-usd`` header can say it), else in ``after_answer`` once a stream has ended or the
  request failed. Limits (settling budgets), the cache (what a hit saves) and the log read that one figure. Cache
  hits, failures before any target and count-tokens requests cost 0.
- Usage is made sane before it is priced (:meth:`~llmgw.exchange.Usage.clamp`: negative, fractional or absurd counts
  are unknown; an upstream that reports them is logged as a warning) and completed where the upstream did not say:
  an exchange whose target was called and produced (part of) an answer — or was being waited on when the client
  left — is billed the estimated prompt (:meth:`~llmgw.exchange.Exchange.estimated_input_tokens`) when no input was
  reported, and the output actually delivered (streamed text, or the whole answer's text, at about four characters
  a token) when the stream was cut short or no output was reported; ``ex.usage_estimated`` marks the row. A target
  that refused or failed before answering is not billed.
- ``response(ex)`` — the meter is the first stage, so its response phase runs last — sets ``ex.latency_ms`` and
  queues exactly one log row per exchange, whatever happened to it (answered, refused, failed, client gone). It
  never blocks: the row goes to the batching :class:`~llmgw.store.log.LogWriter` and to each listener (e.g. live
  event streams) synchronously. As a last line of defence the row's error message, its attempts' errors and an
  error response are scrubbed of secrets (the :class:`~llmgw.scrub.Scrubber` built at start-up) before anyone
  sees the row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..exchange import Exchange
from ..formats import FORMATS
from ..pricing import PriceTable
from ..scrub import Scrubber
from ..store.log import LogWriter
from .base import Stage

RowListener = Callable[[dict[str, Any]], None]

log = logging.getLogger("llmgw.meter")


class MeterStage(Stage):
    response_suspends = False   # its response phase never waits on I/O

    def __init__(self, prices: PriceTable, writer: LogWriter, listeners: list[RowListener] | None = None, *,
                 scrub: Scrubber | None = None) -> None:
        self.prices = prices
        self.writer = writer
        self.listeners = listeners if listeners is not None else []
        self.scrub = scrub or Scrubber()

    def price(self, ex: Exchange) -> float:
        """The exchange's cost in USD, computed on the first call and kept in ``ex.cost_usd``."""
        if not ex.priced:
            ex.priced = True
            if ex.target is None or ex.cache != "miss" or ex.endpoint == "count_tokens":
                ex.cost_usd = 0.0
            else:
                complete_usage(ex)
                quote = self.prices.quote(ex.target, ex.usage)
                if quote is not None:
                    ex.cost_breakdown = quote.breakdown
                    ex.cost_usd = quote.cost
                    if quote.long_context_above is not None:
                        ex.note("meter", "long_context", above=quote.long_context_above,
                                input_tokens=ex.usage.input_tokens)
                else:  # unknown price; a target that billed nothing (refused, failed) is not unpriced
                    ex.cost_usd = 0.0
                    ex.unpriced = ex.usage.input_tokens + ex.usage.output_tokens > 0
                    if ex.unpriced:
                        ex.note("meter", "unpriced", target=ex.target.name,
                                fix=f'add [prices] "{ex.target.name}" = {{ input = …, output = … }} to the profile')
        return ex.cost_usd

    async def after_route(self, ex: Exchange) -> None:
        if ex.reply is not None:
            self.price(ex)

    def after_answer(self, ex: Exchange) -> None:
        self.price(ex)

    async def response(self, ex: Exchange) -> None:
        self.price(ex)
        ex.latency_ms = ex.elapsed_ms()
        row = ex.log_row()
        if ex.error is not None or ex.attempts:
            self._scrub(row)
        self.writer.write(row)
        for listener in self.listeners:
            listener(row)


    def _scrub(self, row: dict[str, Any]) -> None:
        scrub = self.scrub
        if row["error_message"]:
            row["error_message"] = scrub(row["error_message"])
        for attempt in row["attempts"]:
            if attempt.get("error"):
                attempt["error"] = scrub(attempt["error"])
        if row["error"] is not None and isinstance(row.get("response"), dict):
            row["response"] = scrub.value(row["response"])


def complete_usage(ex: Exchange) -> None:
    """Make ``ex.usage`` sane and fill in what the upstream did not report (see the module contract)."""
    usage = ex.usage
    problems = usage.clamp()
    if problems:
        log.warning("upstream %s reported nonsensical usage for %s: %s", ex.target.name if ex.target else "?",
                    ex.id, "; ".join(problems))
        ex.usage_estimated = True
    answered = ex.reply is not None or ex.first_event is not None
    last = ex.attempts[-1] if ex.attempts else None
    waited = (ex.outcome == "client_disconnect" and last is not None and ex.target is not None
              and last.target == ex.target.name and last.status in (0, 200))
    if not answered and not waited:
        return
    if usage.input_tokens == 0:
        usage.input_tokens = ex.estimated_input_tokens()
        ex.usage_estimated = True
    interrupted = ex.outcome == "client_disconnect" or ex.error is not None
    if interrupted or usage.output_tokens == 0:   # else the upstream's count stands: the text is not measured
        delivered = _delivered_tokens(ex)
        if delivered > usage.output_tokens:
            usage.output_tokens = delivered
            ex.usage_estimated = True


def _delivered_tokens(ex: Exchange) -> int:
    """The output delivered so far, at about four characters a token: the streamed text, or the whole answer's."""
    if ex.streamed_text:
        return ex.streamed_tokens()
    wire = FORMATS.get(ex.reply.format) if ex.reply is not None else None
    if ex.reply is not None and wire is not None:
        text = wire.answer_text(ex.reply.body)
        return -(-len(text) // 4) if text else 0
    return 0
