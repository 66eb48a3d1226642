"""Streamed answers: placeholders restored across chunk boundaries, response rules with hold-back, blocking."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from llmgw.exchange import StreamEvent
from llmgw.guardrails.engine import Scan
from llmgw.guardrails.redact import Placeholders
from llmgw.guardrails.rules import parse_rules
from llmgw.guardrails.stream import GuardedEvents, StreamGuard, pipe_factory
from llmgw.providers.base import UpstreamFailure

HOLD = 300    # a little more than the default PII rule holds back (its longest short value, an e-mail address)
ANSWER = "Dear <EMAIL_1>, we will call <PHONE_1> today. Regards, <NAME_1> <EMAIL_1>"


def table() -> Placeholders:
    t = Placeholders()
    t.token("EMAIL", "jane@example.com", restorable=True)
    t.token("PHONE", "+1 415 555 2671", restorable=True)
    return t


def chunk(content: str | None = None, finish: str | None = None, **delta: Any) -> StreamEvent:
    d: dict[str, Any] = dict(delta)
    if content is not None:
        d["content"] = content
    data = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}
    return StreamEvent(data, raw=b"data: " + orjson.dumps(data) + b"\n\n")


def usage_chunk() -> StreamEvent:
    return StreamEvent({"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": {}}, raw=b"x")


def openai_text(events: list[StreamEvent]) -> str:
    return "".join((c.get("delta") or {}).get("content") or "" for e in events for c in e.data.get("choices") or [])


def run_guard(guard: StreamGuard, events: list[StreamEvent]) -> list[StreamEvent]:
    out = [e for event in events for e in guard.process(event)]
    return out + guard.finish()


def pieces(text: str, cuts: tuple[int, ...]) -> list[str]:
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def test_openai_chunks_split_at_every_offset() -> None:
    t = table()
    expected = t.restore(ANSWER)
    for a, b in itertools.combinations(range(len(ANSWER) + 1), 2):
        make = pipe_factory(t, None)
        assert make is not None
        events = [chunk(p) for p in pieces(ANSWER, (a, b))] + [chunk(finish="stop"), usage_chunk()]
        out = run_guard(StreamGuard(make), events)
        assert openai_text(out) == expected, (a, b)
        assert out[-1].data["choices"] == [] and out[-2].data["choices"][0]["finish_reason"] == "stop"


def test_changed_events_lose_their_raw_bytes() -> None:
    make = pipe_factory(table(), None)
    assert make is not None
    guard = StreamGuard(make)
    plain, with_placeholder = chunk("hello "), chunk("<EMAIL_1>")
    out = guard.process(plain) + guard.process(with_placeholder)
    assert out[1].raw is None and out[1].data["choices"][0]["delta"]["content"] == "jane@example.com"


def test_held_text_goes_out_before_the_usage_chunk_without_a_finish() -> None:
    make = pipe_factory(table(), None)
    assert make is not None
    out = run_guard(StreamGuard(make), [chunk("bye <EMA"), usage_chunk()])
    assert openai_text(out) == "bye <EMA"
    assert out[-1].data["choices"] == [] and out[-2].flush is False


def test_stream_end_flushes_held_text() -> None:
    make = pipe_factory(table(), None)
    assert make is not None
    out = run_guard(StreamGuard(make), [chunk("x <EMAIL_")])
    assert openai_text(out) == "x <EMAIL_"
    assert out[-1].flush is True


@pytest.mark.parametrize("cut", range(0, 45))
def test_tool_call_arguments_restored_as_json(cut: int) -> None:
    t = Placeholders()
    t.token("EMAIL", 'q"uote@x.io', restorable=True)
    args = '{"to": "<EMAIL_1>", "n": 1}'
    make = pipe_factory(t, None)
    assert make is not None
    events = [chunk(tool_calls=[{"index": 0, "id": "call_1", "function": {"name": "send", "arguments": ""}}])]
    events += [chunk(tool_calls=[{"index": 0, "function": {"arguments": p}}]) for p in pieces(args, (cut,))]
    events.append(chunk(finish="tool_calls"))
    out = run_guard(StreamGuard(make), events)
    text = "".join(call["function"].get("arguments") or "" for e in out for c in e.data["choices"]
                   for call in (c.get("delta") or {}).get("tool_calls") or [])
    assert orjson.loads(text) == {"to": 'q"uote@x.io', "n": 1}


def anthropic_events(text: str, cuts: tuple[int, ...]) -> list[StreamEvent]:
    def ev(data: dict[str, Any]) -> StreamEvent:
        return StreamEvent(data, raw=b"event: x\ndata: " + orjson.dumps(data) + b"\n\n", format="anthropic")
    out = [ev({"type": "message_start", "message": {"id": "msg_1"}}),
           ev({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})]
    out += [ev({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})
            for p in pieces(text, cuts)]
    out += [ev({"type": "content_block_stop", "index": 0}),
            ev({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}), ev({"type": "message_stop"})]
    return out


def anthropic_text(events: list[StreamEvent]) -> str:
    return "".join(e.data["delta"].get("text", "") for e in events if e.data.get("type") == "content_block_delta")


def test_anthropic_events_split_at_every_offset() -> None:
    t = table()
    expected = t.restore(ANSWER)
    for a, b in itertools.combinations(range(len(ANSWER) + 1), 2):
        make = pipe_factory(t, None)
        assert make is not None
        out = run_guard(StreamGuard(make), anthropic_events(ANSWER, (a, b)))
        assert anthropic_text(out) == expected, (a, b)
        kinds = [e.data["type"] for e in out]
        assert kinds.index("content_block_stop") > max(i for i, k in enumerate(kinds) if k == "content_block_delta")
        assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def response_scan(rules: list[dict[str, Any]], t: Placeholders | None = None) -> Scan:
    t = t or Placeholders()
    return Scan(tuple(parse_rules(rules)), "response", t, allow=frozenset(t.restorable.values()), restoring=False)


def test_response_redaction_holds_back_and_redacts_across_chunks() -> None:
    scan = response_scan([{"kind": "pii", "applies_to": "response"}])
    make = pipe_factory(Placeholders(), scan)
    assert make is not None
    text = "x" * (HOLD + 50) + " reach me at new.person@example.org or 4111 1111 1111 1111 " + "y" * (HOLD + 80)
    for cut in (HOLD + 55, HOLD + 70, HOLD + 97, HOLD + 100):
        scan.findings.clear()
        out = run_guard(StreamGuard(make), [chunk(p) for p in pieces(text, (cut,))] + [chunk(finish="stop")])
        got = openai_text(out)
        assert "new.person@example.org" not in got and "4111" not in got
        assert "<EMAIL_1>" in got and "<CREDIT_CARD_1>" in got
        assert [f["entity"] for f in scan.findings] == ["email", "credit_card"]


def test_restored_values_are_not_redacted_again_by_response_rules() -> None:
    t = table()
    scan = response_scan([{"kind": "pii", "applies_to": "both"}], t)
    make = pipe_factory(t, scan)
    assert make is not None
    out = run_guard(StreamGuard(make), [chunk("to <EMAIL_1> and other@example.org"), chunk(finish="stop")])
    assert openai_text(out) == "to jane@example.com and <EMAIL_2>"


async def _aiter(events: list[StreamEvent], closed: list[bool]) -> AsyncIterator[StreamEvent]:
    try:
        for event in events:
            yield event
    finally:
        closed.append(True)


async def test_response_block_ends_the_stream_before_the_term_is_sent() -> None:
    scan = response_scan([{"kind": "denylist", "name": "codenames", "terms": ["project zeus"],
                           "applies_to": "response"}])
    make = pipe_factory(Placeholders(), scan)
    assert make is not None
    text = "a" * (HOLD + 10) + " the plan is Project Zeus, launching soon " + "b" * (2 * HOLD)
    closed: list[bool] = []
    blocked: list[Any] = []
    events = GuardedEvents(StreamGuard(make), [], _aiter([chunk(p) for p in pieces(text, (HOLD, HOLD + 30))],
                                                         closed), blocked.append)
    sent = []
    with pytest.raises(UpstreamFailure) as info:
        async for event in events:
            sent.append(event)
    await events.aclose()
    assert "zeus" not in openai_text(sent).lower()
    assert info.value.status == 403 and "guardrail 'codenames' (denylist)" in info.value.message
    assert blocked and "denied term 'project zeus'" in blocked[0].message
    assert closed == [True]


async def test_closing_an_unstarted_stream_closes_the_upstream() -> None:
    closed: list[bool] = []
    inner = _aiter([chunk("a")], closed)
    await anext(inner)   # started, as the router leaves it after taking the first event
    make = pipe_factory(table(), None)
    assert make is not None
    events = GuardedEvents(StreamGuard(make), [], inner, lambda why: None)
    await events.aclose()
    assert closed == [True]


def test_nothing_to_do_means_no_wrapping() -> None:
    assert pipe_factory(Placeholders(), None) is None
    assert pipe_factory(Placeholders(), Scan((), "response", Placeholders())) is None
