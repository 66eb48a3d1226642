"""MeterStage fills cost_breakdown (adding up to cost_usd exactly), marks unpriced exchanges only when they billed
tokens, and tells the story of an unpriced or long-context price."""

from __future__ import annotations

from typing import Any

from llmgw.errors import UpstreamError
from llmgw.exchange import Attempt, StreamEvent, Usage
from llmgw.pricing import PriceTable
from llmgw.profile import LongContext, ModelConfig, Price, Target
from llmgw.stages.meter import MeterStage
from llmgw.testing.exchanges import make_exchange

HOUSE = ModelConfig("house", (Target("up", "house-model"),))
PRICED = ModelConfig("priced", (Target("up", "priced"),))
FREE = ModelConfig("free", (Target("mock", "anything"),))
PRICES = PriceTable({}, {"up/priced": Price(3.0, 15.0, 0.3, cache_write=3.75, cache_write_1h=6.0,
                                            long_context=LongContext(1000, 6.0, 22.5))}, free={"mock"})


class Rows:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)


async def run(model: ModelConfig, usage: Usage, *, answered: bool = True) -> dict[str, Any]:
    rows = Rows()
    stage = MeterStage(PRICES, rows)  # type: ignore[arg-type]
    ex = make_exchange(model=model)
    ex.target, ex.usage = model.targets[0], usage
    if answered:
        ex.attempts.append(Attempt(1, ex.target.name, 200, 1.0))
        ex.first_event = StreamEvent({"choices": []})
        ex.streamed_text.append("x" * 40)
    else:
        ex.attempts.append(Attempt(1, ex.target.name, 500, 1.0, "boom"))
        ex.fail(UpstreamError("every target failed", status=502))
    stage.after_answer(ex)
    await stage.response(ex)
    return rows.rows[0]


async def test_the_breakdown_adds_up_to_the_cost_exactly() -> None:
    usage = Usage(input_tokens=900, output_tokens=100, cached_tokens=300, cache_write_tokens=200,
                  cache_write_1h_tokens=50, reasoning_tokens=30)
    row = await run(PRICED, usage)
    # fresh 400 x 3 = 1,200; cached 300 x 0.3 = 90; 5m 150 x 3.75 = 562.5; 1h 50 x 6 = 300; output 70 x 15 = 1,050;
    # reasoning 30 x 15 = 450 -> 3,652.5 micro-dollars.
    assert row["cost_breakdown"] == {"input": 0.0012, "cached_input": 0.00009, "cache_write": 0.0005625,
                                     "cache_write_1h": 0.0003, "output": 0.00105, "reasoning": 0.00045}
    assert sum(row["cost_breakdown"].values()) == row["cost_usd"]
    assert abs(row["cost_usd"] - 0.0036525) < 1e-15 and row["unpriced"] is False
    assert not [s for s in row["story"] if s["stage"] == "meter"]


async def test_a_long_prompt_is_noted_in_the_story() -> None:
    row = await run(PRICED, Usage(input_tokens=2_000, output_tokens=100))
    # 2,000 x 6 + 100 x 22.5 = 14,250 micro-dollars
    assert abs(row["cost_usd"] - 0.01425) < 1e-15
    [note] = [s for s in row["story"] if s["stage"] == "meter"]
    assert note["event"] == "long_context" and note["above"] == 1000 and note["input_tokens"] == 2_000


async def test_unpriced_only_when_tokens_were_billed() -> None:
    billed = await run(HOUSE, Usage(input_tokens=100, output_tokens=10))
    assert billed["unpriced"] is True and billed["cost_usd"] == 0.0 and billed["cost_breakdown"] == {}
    assert [s["event"] for s in billed["story"] if s["stage"] == "meter"] == ["unpriced"]
    failed = await run(HOUSE, Usage(), answered=False)
    assert failed["unpriced"] is False and failed["cost_usd"] == 0.0
    free = await run(FREE, Usage(input_tokens=100, output_tokens=10))
    assert free["unpriced"] is False and free["cost_usd"] == 0.0 and free["cost_breakdown"] == {}
