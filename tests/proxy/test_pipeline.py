"""The pipeline on its own: phases run over the stages that declare them, in order on the way in and in reverse
on the way out; short-circuits skip later stages; every response phase runs, even after a failing one."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from llmgw.errors import GatewayError, RateLimited
from llmgw.exchange import Exchange, UpstreamReply
from llmgw.proxy.pipeline import Pipeline
from llmgw.stages.base import Stage
from llmgw.testing.exchanges import make_exchange


class Recorder(Stage):
    """Notes every phase it is given in a shared journal; can fail, answer or raise on the way in."""

    def __init__(self, name: str, journal: list[str], *, fail: bool = False, answer: bool = False,
                 raise_in_response: bool = False) -> None:
        self.name, self.journal = name, journal
        self.fail, self.answer, self.raise_in_response = fail, answer, raise_in_response

    async def request(self, ex: Exchange) -> None:
        self.journal.append(f"{self.name}.request")
        if self.fail:
            raise RateLimited("slow down", retry_after=1.0)
        if self.answer:
            ex.reply = UpstreamReply({"choices": []})

    async def after_route(self, ex: Exchange) -> None:
        self.journal.append(f"{self.name}.after_route")

    def after_answer(self, ex: Exchange) -> None:
        self.journal.append(f"{self.name}.after_answer")

    async def response(self, ex: Exchange) -> None:
        self.journal.append(f"{self.name}.response")
        if self.raise_in_response:
            raise RuntimeError("boom")


class RequestOnly(Stage):
    async def request(self, ex: Exchange) -> None:
        return None


def test_phases_are_the_overridden_methods() -> None:
    assert Recorder.phases() == ("request", "after_route", "after_answer", "response")
    assert RequestOnly.phases() == ("request",)
    assert Stage.phases() == ()


async def test_order_in_and_out() -> None:
    journal: list[str] = []
    pipeline = Pipeline([Recorder("a", journal), Recorder("b", journal), Recorder("route", journal, answer=True)])
    ex = make_exchange()
    await pipeline.start(ex)
    await pipeline.finish(ex)
    assert journal == ["a.request", "b.request", "route.request", "a.after_route", "b.after_route",
                       "route.after_route", "a.after_answer", "b.after_answer", "route.after_answer",
                       "route.response", "b.response", "a.response"]


async def test_an_answer_skips_the_later_stages_but_not_the_way_out() -> None:
    journal: list[str] = []
    pipeline = Pipeline([Recorder("a", journal), Recorder("cache", journal, answer=True), Recorder("route", journal)])
    ex = make_exchange()
    await pipeline.start(ex)
    await pipeline.finish(ex)
    assert "route.request" not in journal and "route.after_route" in journal and journal[-1] == "a.response"


async def test_a_refusal_is_recorded_skips_routing_and_is_still_logged() -> None:
    journal: list[str] = []
    pipeline = Pipeline([Recorder("meter", journal), Recorder("limits", journal, fail=True),
                         Recorder("route", journal)])
    ex = make_exchange()
    await pipeline.start(ex)   # never raises a GatewayError
    assert isinstance(ex.error, GatewayError) and ex.status == 429
    await pipeline.finish(ex)
    assert journal == ["meter.request", "limits.request", "meter.after_answer", "limits.after_answer",
                       "route.after_answer", "route.response", "limits.response", "meter.response"]


async def test_a_stage_failing_on_the_way_out_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    journal: list[str] = []
    pipeline = Pipeline([Recorder("meter", journal), Recorder("cache", journal, raise_in_response=True),
                         Recorder("route", journal, answer=True)])
    ex = make_exchange()
    await pipeline.start(ex)
    with caplog.at_level(logging.ERROR, logger="llmgw.proxy.pipeline"):
        await pipeline.finish(ex)
    assert journal[-1] == "meter.response"
    assert "Recorder" in caplog.text and ex.id in caplog.text


async def test_only_declared_phases_are_called() -> None:
    pipeline = Pipeline([RequestOnly(), RequestOnly()])
    assert len(pipeline._request) == 2 and pipeline._after_route == pipeline._after_answer == pipeline._response == ()


def test_the_way_out_suspends_only_when_a_stage_may_wait_in_it(tmp_path: Path) -> None:
    """The handler pays for a task of its own around ``finish`` only when a response phase can wait on I/O: a
    stage that does not say otherwise, or limits on a shared store; never for the in-process state."""
    from llmgw.pricing import PriceTable
    from llmgw.stages.limits import LimitsStage
    from llmgw.store.shared import MemoryState
    from llmgw.store.shared_sqlite import SQLiteState

    class Quiet(Recorder):
        response_suspends = False

    journal: list[str] = []
    in_process = LimitsStage(MemoryState(), PriceTable({}), {})
    shared = LimitsStage(SQLiteState(tmp_path / "shared-state.db"), PriceTable({}), {})
    assert not Pipeline([Quiet("a", journal), in_process]).finish_suspends
    assert Pipeline([Quiet("a", journal), shared]).finish_suspends
    assert Pipeline([Recorder("b", journal)]).finish_suspends        # unknown: assume it waits
    assert not Pipeline([Stage()]).finish_suspends                   # no response phase at all
