"""LimitsStage refuses a budgeted request to an alias with an unpriced target, before reserving anything, and
decides "is this target priced" once per target, not once per request."""

from __future__ import annotations

import pytest

from llmgw.errors import PermissionDenied
from llmgw.pricing import PriceTable
from llmgw.profile import Budget, ModelConfig, Price, Target, TeamConfig
from llmgw.stages.limits import LimitsStage
from llmgw.store.keys import KeyRecord
from llmgw.store.shared import MemoryState
from llmgw.testing.exchanges import make_exchange

MIXED = ModelConfig("mixed", (Target("up", "gpt-4o-mini"), Target("up", "house-model")))
FREE = ModelConfig("free", (Target("mock", "m"),))


class Counting(PriceTable):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.resolved = 0

    def _resolve(self, provider: str, model: str) -> Price | None:
        self.resolved += 1
        return super()._resolve(provider, model)


def limits(prices: PriceTable, **team: object) -> LimitsStage:
    return LimitsStage(MemoryState(), prices, {"search": TeamConfig("search", **team)})  # type: ignore[arg-type]


async def test_a_fallback_to_an_unpriced_target_is_refused_and_nothing_is_reserved() -> None:
    prices = Counting({"gpt-4o-mini": Price(0.15, 0.60)}, free={"mock"})
    stage = limits(prices, budget=Budget(monthly=10.0), rpm=1_000)
    key = KeyRecord("ci", "search")
    for _ in range(50):
        ex = make_exchange(model=MIXED, key=key)
        with pytest.raises(PermissionDenied) as info:
            await stage.request(ex)
        assert ex.reservation is None
    error = info.value
    assert error.status == 403 and error.code == "unpriced_model"
    assert "team search monthly budget cannot be kept on model 'mixed'" in error.message
    assert 'up/house-model has no price; add [prices] "up/house-model"' in error.message
    assert prices.resolved == 2           # one lookup per target, however many requests
    free = make_exchange(model=FREE, key=key)
    await stage.request(free)             # the mock is free: priced at zero, its budget holds nothing
    assert free.reservation is not None and free.reservation.holds[0].amount == 0.0


async def test_without_a_budget_an_unpriced_model_is_not_refused() -> None:
    stage = limits(PriceTable({}), rpm=10)
    ex = make_exchange(model=MIXED, key=KeyRecord("ci", "search"))
    await stage.request(ex)
    assert ex.reservation is not None and ex.reservation.holds == []


async def test_a_price_lifts_the_refusal() -> None:
    prices = PriceTable({"gpt-4o-mini": Price(0.15, 0.60)}, {"up/house-model": Price(1.0, 2.0)})
    stage = limits(prices, budget=Budget(daily=1.0))
    ex = make_exchange(model=MIXED, key=KeyRecord("ci", "search"), max_tokens=1_000)
    await stage.request(ex)
    # the dearest target is reserved: house-model at $2 per 1M output tokens
    assert ex.reservation.holds[0].amount == pytest.approx((ex.estimated_input_tokens() * 1.0 + 1_000 * 2.0) / 1e6)
