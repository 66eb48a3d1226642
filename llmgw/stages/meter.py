"""Meter: prices each exchange once from its normalised usage and hands its log row to the writer and listeners.

Contract:
- The cost is computed once per exchange into ``ex.cost_usd`` (``ex.priced``): in ``after_route`` for a whole
  answer (so its ``x-llmgw-cost-usd`` header can say it), else in ``after_answer`` once a stream has ended or the
  request failed. Limits (settling budgets), the cache (what a hit saves) and the log read that one figure. Cache
  hits, failures before any target and count-tokens requests cost 0.
- ``response(ex)`` — the meter is the first stage, so its response phase runs last — sets ``ex.latency_ms`` and
  queues exactly one log row per exchange, whatever happened to it (answered, refused, failed, client gone). It
  never blocks: the row goes to the batching :class:`~llmgw.store.log.LogWriter` and to each listener (e.g. live
  event streams) synchronously.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..exchange import Exchange
from ..pricing import PriceTable
from ..store.log import LogWriter
from .base import Stage

RowListener = Callable[[dict[str, Any]], None]


class MeterStage(Stage):
    def __init__(self, prices: PriceTable, writer: LogWriter, listeners: list[RowListener] | None = None) -> None:
        self.prices = prices
        self.writer = writer
        self.listeners = listeners if listeners is not None else []

    def price(self, ex: Exchange) -> float:
        """The exchange's cost in USD, computed on the first call and kept in ``ex.cost_usd``."""
        if not ex.priced:
            ex.priced = True
            if ex.target is None or ex.cache != "miss" or ex.endpoint == "count_tokens":
                ex.cost_usd = 0.0
            else:
                ex.cost_usd = self.prices.cost(ex.target, ex.usage)
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
        self.writer.write(row)
        for listener in self.listeners:
            listener(row)
