"""Meter: prices each exchange from its normalised usage and hands its log row to the writer and listeners.

Contract: ``response(ex)`` sets ``ex.cost_usd`` and ``ex.latency_ms`` and queues exactly one log row per
exchange, whatever happened to it (answered, refused, failed, client gone). It never blocks: the row goes to the
batching :class:`~llmgw.store.log.LogWriter` and to each listener (e.g. live event streams) synchronously.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..exchange import Exchange
from ..pricing import PriceTable
from ..store.log import LogWriter

RowListener = Callable[[dict[str, Any]], None]


class MeterStage:
    def __init__(self, prices: PriceTable, writer: LogWriter, listeners: list[RowListener] | None = None) -> None:
        self.prices = prices
        self.writer = writer
        self.listeners = listeners if listeners is not None else []

    def price(self, ex: Exchange) -> float:
        """Compute and store the exchange's cost in USD from its usage (0 for cache hits and failures)."""
        if ex.target is None or ex.cache != "miss":
            ex.cost_usd = 0.0
        else:
            ex.cost_usd = self.prices.cost(ex.target, ex.usage)
        return ex.cost_usd

    async def request(self, ex: Exchange) -> None:
        return None

    async def response(self, ex: Exchange) -> None:
        self.price(ex)
        ex.latency_ms = ex.elapsed_ms()
        row = ex.log_row()
        self.writer.write(row)
        for listener in self.listeners:
            listener(row)
