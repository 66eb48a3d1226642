"""MeterStage on its own: the cost is computed once per exchange and is what the log row carries; one row per
exchange whatever happened to it."""

from __future__ import annotations

from typing import Any

from llmgw.errors import RateLimited
from llmgw.exchange import Usage
from llmgw.pricing import PriceTable
from llmgw.profile import ModelConfig, Price, Target
from llmgw.stages.meter import MeterStage
from llmgw.testing.exchanges import make_exchange

PRICED = ModelConfig("priced", (Target("mock", "priced"),))
PRICES = PriceTable({}, overrides={"mock/priced": Price(input=2.0, output=10.0)})


class Rows:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)


def meter() -> tuple[MeterStage, Rows, list[dict[str, Any]]]:
    rows, heard = Rows(), []
    return MeterStage(PRICES, rows, listeners=[heard.append]), rows, heard  # type: ignore[arg-type]


async def test_priced_once_and_logged_once() -> None:
    stage, rows, heard = meter()
    ex = make_exchange(model=PRICED)
    ex.target, ex.usage = PRICED.targets[0], Usage(input_tokens=1_000_000, output_tokens=100_000)
    stage.after_answer(ex)
    assert ex.cost_usd == 3.0 and ex.priced
    ex.usage = Usage(input_tokens=1)   # later stages cannot change the figure the budget and the log read
    await stage.response(ex)
    assert rows.rows == heard and len(rows.rows) == 1 and rows.rows[0]["cost_usd"] == 3.0


async def test_cache_hits_refusals_and_counts_cost_nothing() -> None:
    stage, rows, _ = meter()
    hit, refused, counted = make_exchange(model=PRICED), make_exchange(model=PRICED), make_exchange(
        client_format="anthropic", endpoint="count_tokens", model=PRICED)
    hit.target, hit.cache, hit.usage = PRICED.targets[0], "hit", Usage(input_tokens=10**6)
    refused.fail(RateLimited("slow down", retry_after=1.0))
    counted.target, counted.usage = PRICED.targets[0], Usage(input_tokens=10**6)
    for ex in (hit, refused, counted):
        stage.after_answer(ex)
        await stage.response(ex)
    assert [r["cost_usd"] for r in rows.rows] == [0.0, 0.0, 0.0]
    assert [r["status"] for r in rows.rows] == [200, 429, 200]
