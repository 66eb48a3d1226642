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


# --- usage an upstream did not report, or reported as nonsense -----------------------------------------------------


def streamed(ex: Any, *texts: str) -> None:
    from llmgw.exchange import Attempt, StreamEvent

    ex.stream, ex.target = True, PRICED.targets[0]
    ex.attempts.append(Attempt(1, PRICED.targets[0].name, 200, 1.0))
    ex.first_event = StreamEvent({"choices": []})
    ex.streamed_text.extend(texts)


async def test_nonsense_usage_is_clamped_and_estimated_never_negative() -> None:
    stage, rows, _ = meter()
    ex = make_exchange(model=PRICED)
    streamed(ex, "x" * 400)
    ex.usage = Usage(input_tokens=-10**12, output_tokens=-5, cached_tokens=10**15, reasoning_tokens=7)
    stage.after_answer(ex)
    await stage.response(ex)
    row = rows.rows[0]
    assert row["cost_usd"] > 0 and row["usage_estimated"] is True
    assert row["input_tokens"] == ex.estimated_input_tokens() and row["output_tokens"] == 100
    assert row["cached_tokens"] == 0 and row["reasoning_tokens"] <= row["output_tokens"]


async def test_a_stream_without_usage_bills_the_prompt_and_what_was_streamed() -> None:
    stage, rows, _ = meter()
    ex = make_exchange({"messages": [{"role": "user", "content": "y" * 40_000}]}, model=PRICED)
    streamed(ex, "a" * 40, "b" * 40)
    stage.after_answer(ex)
    await stage.response(ex)
    row = rows.rows[0]
    assert row["input_tokens"] >= 10_000 and row["output_tokens"] == 20 and row["usage_estimated"] is True
    assert row["cost_usd"] == PRICES.cost(PRICED.targets[0], Usage(row["input_tokens"], 20))


async def test_a_client_that_leaves_is_billed_at_least_what_it_received() -> None:
    stage, rows, _ = meter()
    ex = make_exchange(model=PRICED)
    streamed(ex, "z" * 4000)
    ex.usage = Usage(input_tokens=50, output_tokens=1)   # message_start said so; the client left after that
    ex.client_gone()
    stage.after_answer(ex)
    await stage.response(ex)
    row = rows.rows[0]
    assert (row["input_tokens"], row["output_tokens"], row["usage_estimated"]) == (50, 1000, True)


async def test_reported_usage_is_kept_and_a_refused_attempt_costs_nothing() -> None:
    from llmgw.exchange import Attempt

    stage, rows, _ = meter()
    ok = make_exchange(model=PRICED)
    streamed(ok, "a" * 4000)
    ok.usage = Usage(input_tokens=10, output_tokens=3)   # complete stream: the upstream's word stands
    failed = make_exchange(model=PRICED)
    failed.target = PRICED.targets[0]
    failed.attempts.append(Attempt(1, PRICED.targets[0].name, 500, 1.0, "HTTP 500"))
    failed.fail(RateLimited("every target failed", retry_after=1.0))
    for ex in (ok, failed):
        stage.after_answer(ex)
        await stage.response(ex)
    assert [(r["input_tokens"], r["output_tokens"], r["usage_estimated"]) for r in rows.rows] == [
        (10, 3, False), (0, 0, False)]
    assert rows.rows[1]["cost_usd"] == 0.0



def test_clamp_quick_check_agrees_with_the_count_by_count_checks() -> None:
    """Sane and insane counts in every field: the quick check changes neither the problems reported nor the
    counts left."""
    import dataclasses
    import itertools

    from llmgw.exchange import MAX_SANE_TOKENS, Usage

    fields = [f.name for f in dataclasses.fields(Usage)]
    odd = [MAX_SANE_TOKENS, MAX_SANE_TOKENS + 1, -1, 2.0, 2.5, True, float("nan"), "3", None]
    for base in itertools.product([0, 1, 5, 10], repeat=4):
        counts = dict(zip(fields, (*base, 0, 0), strict=True))
        for field, value in itertools.chain([(None, None)], itertools.product(fields, odd)):
            given = {**counts, field: value} if field else counts
            quick, each = Usage(**given), Usage(**given)   # type: ignore[arg-type]
            assert quick.clamp() == each.clamp_each(), given
            assert dataclasses.astuple(quick) == dataclasses.astuple(each), given


async def test_a_complete_answer_with_reported_usage_is_not_measured_again(monkeypatch: Any) -> None:
    """The answer's text is only measured when the upstream's count may fall short (none reported, or the answer cut
    short): a whole answer's text is not walked again for nothing."""
    from llmgw.exchange import UpstreamReply
    from llmgw.stages import meter as module

    measured: list[str] = []
    real = module._delivered_tokens
    monkeypatch.setattr(module, "_delivered_tokens", lambda ex: measured.append(ex.id) or real(ex))
    stage, rows, _ = meter()
    whole, cut, silent = (make_exchange(model=PRICED) for _ in range(3))
    for ex in (whole, cut, silent):
        ex.reply = UpstreamReply({"choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * 400}}]},
                                 None, None)
    whole.usage = Usage(input_tokens=10, output_tokens=3)
    cut.usage = Usage(input_tokens=10, output_tokens=3)
    cut.client_gone()
    silent.usage = Usage(input_tokens=10, output_tokens=0)
    for ex in (whole, cut, silent):
        ex.target = PRICED.targets[0]
        stage.after_answer(ex)
        await stage.response(ex)
    assert measured == [cut.id, silent.id]
    assert [r["output_tokens"] for r in rows.rows] == [3, 100, 100]
