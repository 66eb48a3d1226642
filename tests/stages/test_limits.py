"""LimitsStage on its own, over the in-process shared state: rpm, tpm and budgets reserved before routing and
settled from the exchange's own cost after it; every reservation lives on the exchange and is released once."""

from __future__ import annotations

import asyncio
import time

import pytest

from llmgw.errors import GatewayError, RateLimited
from llmgw.exchange import Usage
from llmgw.pricing import PriceTable
from llmgw.profile import Budget, ModelConfig, Price, Target, TeamConfig
from llmgw.stages.limits import LimitsStage, budget_counter, periods
from llmgw.store.keys import KeyRecord
from llmgw.store.shared import MemoryState, StateUnavailable
from llmgw.testing.exchanges import make_exchange

PRICED = ModelConfig("priced", (Target("mock", "priced"),))
PRICES = PriceTable({}, overrides={"mock/priced": Price(input=1.0, output=1.0)})   # $1 per million tokens


def stage(state: MemoryState | None = None, **team: object) -> LimitsStage:
    return LimitsStage(state or MemoryState(), PRICES, {"search": TeamConfig("search", **team)})  # type: ignore[arg-type]


async def settle(limits: LimitsStage, ex, *, tokens: int = 0, cost: float = 0.0) -> None:
    ex.usage = Usage(input_tokens=tokens)
    ex.cost_usd, ex.priced = cost, True
    await limits.response(ex)


async def test_an_open_proxy_is_not_limited() -> None:
    ex = make_exchange()
    await stage(rpm=0).request(ex)
    assert ex.reservation is None and ex.error is None


async def test_rpm_admits_exactly_the_limit_under_concurrency() -> None:
    limits = stage(rpm=5)
    key = KeyRecord("ci", "search")
    exchanges = [make_exchange(key=key) for _ in range(20)]
    results = await asyncio.gather(*(limits.request(ex) for ex in exchanges), return_exceptions=True)
    refused = [r for r in results if isinstance(r, RateLimited)]
    assert len(refused) == 15 and all(r.status == 429 and r.retry_after >= 1 for r in refused)
    assert sum(ex.reservation is not None for ex in exchanges) == 5


async def test_tpm_is_settled_with_the_real_tokens() -> None:
    limits = stage(tpm=1000)
    key = KeyRecord("ci", "search")
    first = make_exchange(max_tokens=500, key=key)
    await limits.request(first)
    with pytest.raises(RateLimited):                       # 500 reserved + this one's 500 > 1000
        await limits.request(make_exchange(max_tokens=600, key=key))
    await settle(limits, first, tokens=10)                 # it used 10: the rest comes back
    await limits.request(make_exchange(max_tokens=600, key=key))
    assert first.reservation is None


async def test_budget_hold_is_the_dearest_case_and_settles_to_the_cost() -> None:
    state = MemoryState()
    limits = stage(state, budget=Budget(daily=0.01))
    key = KeyRecord("ci", "search")
    ex = make_exchange(max_tokens=4000, model=PRICED, key=key)
    await limits.request(ex)
    day = periods(time.time())[0][1]
    held = await state.spent(budget_counter("team:search", day))
    assert held >= 4000 / 1e6   # the whole max_tokens at the dearest target
    await settle(limits, ex, tokens=100, cost=0.0001)
    assert await state.spent(budget_counter("team:search", day)) == pytest.approx(0.0001)


async def test_missing_max_tokens_reserves_the_default_and_sends_it() -> None:
    limits = stage(tpm=4200)
    key = KeyRecord("ci", "search")
    first = make_exchange(max_tokens=None, key=key)
    await limits.request(first)   # prompt + 4,096 by default
    assert first.body["max_completion_tokens"] == 4096 and first.client_body is first.body
    with pytest.raises(RateLimited):
        await limits.request(make_exchange(max_tokens=None, key=key))


async def test_the_default_cap_follows_the_profile_and_each_format_field() -> None:
    limits = LimitsStage(MemoryState(), PRICES, {"search": TeamConfig("search", budget=Budget(daily=1.0))},
                         default_max_tokens=300)
    key = KeyRecord("ci", "search")
    openai = make_exchange(max_tokens=None, model=PRICED, key=key)
    await limits.request(openai)
    assert openai.body["max_completion_tokens"] == 300 and openai.reservation.holds[0].amount == pytest.approx(
        (openai.estimated_input_tokens() + 300) / 1e6)
    own = make_exchange(max_tokens=50, model=PRICED, key=key)   # the client's own limit stands, unchanged
    await limits.request(own)
    assert "max_completion_tokens" not in own.body and own.reservation.cap is None
    anthropic = make_exchange(client_format="anthropic", max_tokens=20, model=PRICED, key=key)
    await limits.request(anthropic)
    assert anthropic.client_body["max_tokens"] == 20 and anthropic.reservation.cap is None
    rpm_only = LimitsStage(MemoryState(), PRICES, {"search": TeamConfig("search", rpm=10)})
    free = make_exchange(max_tokens=None, key=key)
    await rpm_only.request(free)   # nothing reserved for the answer: nothing to enforce upstream
    assert "max_completion_tokens" not in free.body


async def test_count_tokens_counts_against_rpm_only() -> None:
    limits = stage(rpm=2, tpm=1, budget=Budget(daily=0.0))
    key = KeyRecord("ci", "search")
    ex = make_exchange(client_format="anthropic", endpoint="count_tokens", key=key)
    await limits.request(ex)
    assert [w.kind for w in ex.reservation.windows] == ["rpm"] and ex.reservation.holds == []


class Down(MemoryState):
    async def acquire(self, *args: object, **kwargs: object):  # type: ignore[override]
        raise StateUnavailable("connection refused")


async def test_state_down_budgets_fail_closed_rate_limits_open() -> None:
    key = KeyRecord("ci", "search")
    with pytest.raises(GatewayError) as info:
        await stage(Down(), budget=Budget(daily=1.0)).request(make_exchange(model=PRICED, key=key))
    assert info.value.status == 503
    open_limits = stage(Down(), rpm=1)
    ex = make_exchange(key=key)
    await open_limits.request(ex)
    assert ex.reservation is None and open_limits.open_on_error == 1


async def test_a_negative_or_nonsense_cost_settles_as_nothing_used() -> None:
    state = MemoryState()
    limits = stage(state, budget=Budget(daily=0.01), tpm=10_000)
    key = KeyRecord("ci", "search")
    ex = make_exchange(max_tokens=100, model=PRICED, key=key)
    await limits.request(ex)
    ex.usage, ex.cost_usd, ex.priced = Usage(input_tokens=-10**9), -1000.0, True
    await limits.response(ex)
    day = periods(time.time())[0][1]
    assert await state.spent(budget_counter("team:search", day)) == 0.0
    nan = make_exchange(max_tokens=100, model=PRICED, key=key)
    await limits.request(nan)
    nan.cost_usd, nan.priced = float("nan"), True
    await limits.response(nan)
    assert await state.spent(budget_counter("team:search", day)) == 0.0
