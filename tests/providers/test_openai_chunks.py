"""Runs of plain-text chunks from one upstream read travel as one event, their bytes unchanged."""

from __future__ import annotations

import orjson

from llmgw.exchange import StreamEvent
from llmgw.providers.openai_chunks import merge_text_runs, run_text
from llmgw.sse import encode_data


def chunk(content: str | None = None, *, role: str | None = None, finish: str | None = None, id: str = "c1",
          **delta_extra: object) -> StreamEvent:
    delta: dict[str, object] = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    delta.update(delta_extra)
    data = {"id": id, "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return StreamEvent(data, encode_data(orjson.dumps(data)))


def test_a_run_of_text_becomes_one_event_with_the_same_bytes_and_text() -> None:
    events = [chunk("", role="assistant"), chunk("Hel"), chunk("lo "), chunk("world"), chunk(finish="stop")]
    merged = list(merge_text_runs(events))
    assert len(merged) == 2
    assert merged[0].raw == b"".join(e.raw or b"" for e in events[:4])          # the client gets the same bytes
    assert merged[0].data["choices"][0]["delta"] == {"role": "assistant", "content": "Hello world"}
    assert merged[1] is events[4]                                               # the finish stays its own event
    assert events[1].data["choices"][0]["delta"] == {"content": "Hel"}          # the inputs are not changed


def test_anything_but_plain_text_breaks_the_run_and_keeps_its_order() -> None:
    tool = chunk(tool_calls=[{"index": 0, "function": {"arguments": "{"}}])
    refusal = chunk(refusal="no")
    other_id = chunk("x", id="c2")
    usage = StreamEvent({"id": "c1", "choices": [], "usage": {"prompt_tokens": 1}}, b"data: {}\n\n")
    logprobs = chunk("y")
    logprobs.data["choices"][0]["logprobs"] = {"content": []}
    two_choices = chunk("z")
    two_choices.data["choices"].append({"index": 1, "delta": {"content": "w"}, "finish_reason": None})
    events = [chunk("a"), chunk("b"), tool, chunk("c"), refusal, chunk("d"), other_id, usage, logprobs, two_choices]
    merged = list(merge_text_runs(events))
    texts = [m.data["choices"][0]["delta"].get("content") if m.data.get("choices") else None for m in merged]
    assert texts == ["ab", None, "c", None, "d", "x", None, "y", "z"]
    assert b"".join(m.raw or b"" for m in merged) == b"".join(e.raw or b"" for e in events)


def test_run_text_refuses_odd_shapes() -> None:
    assert run_text({"choices": [{"index": 0, "delta": {"content": 5}}]}) is None
    assert run_text({"choices": [{"index": 0, "delta": "text"}]}) is None
    assert run_text({"choices": ["x"]}) is None
    assert run_text({"choices": [{"index": 2, "delta": {"content": "a"}}]}) is None
    assert run_text({"choices": [{"index": 0, "delta": {"content": "a"}}], "usage": {"x": 1}}) is None
    assert run_text({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}) == ""
