"""Every text-bearing field of every client format reaches the guard, requests and answers alike, and key paths
never carry a value: each field that once went through unscanned, found and redacted where it was sent."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
import pytest

from llmgw.exchange import StreamEvent, UpstreamReply
from llmgw.formats import named
from llmgw.guardrails.body import collect
from llmgw.guardrails.engine import Scan
from llmgw.guardrails.redact import Placeholders
from llmgw.guardrails.rules import parse_rules
from llmgw.guardrails.stream import StreamGuard, pipe_factory
from llmgw.stages.guardrails import GuardrailStage
from llmgw.testing.exchanges import make_exchange

MAIL, CARD = "jane.doe@example.com", "4111 1111 1111 1111"
PII = [{"name": "pii", "kind": "pii", "action": "redact", "applies_to": "both"}]


def visited(fmt: str, body: dict[str, Any], *, answer: bool = False) -> dict[str, str]:
    wire = named(fmt)
    items = collect(lambda fn: wire.answer_texts(body, fn) if answer else wire.request_texts("chat", body, fn))
    return {where: text for text, where in items}


OPENAI_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("messages[0].name", {"messages": [{"role": "user", "name": MAIL, "content": "hi"}]}, MAIL),
    ("messages[0].content[1].text", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "a"}, {"type": "text", "text": MAIL}]}]}, MAIL),
    ("messages[0].content[0].refusal", {"messages": [{"role": "assistant", "content": [
        {"type": "refusal", "refusal": MAIL}]}]}, MAIL),
    ("messages[0].reasoning_content", {"messages": [{"role": "assistant", "reasoning_content": MAIL}]}, MAIL),
    ("messages[0].tool_calls[0].function.arguments{key 0}", {"messages": [{"role": "assistant", "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": json.dumps({MAIL: 1})}}]}]}, MAIL),
    ("messages[0].tool_calls[0].function.arguments.to", {"messages": [{"role": "assistant", "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": json.dumps({"to": MAIL})}}]}]}, MAIL),
    ("tools[0].function.description", {"tools": [{"type": "function", "function": {
        "name": "f", "description": MAIL}}]}, MAIL),
    ("tools[0].function.parameters.properties.to.description", {"tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {"to": {"description": MAIL}}}}}]}, MAIL),
    ("tools[0].function.parameters.properties.to.enum[0]", {"tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"properties": {"to": {"enum": [MAIL]}}}}}]}, MAIL),
    ("prediction.content", {"prediction": {"type": "content", "content": MAIL}}, MAIL),
    ("user", {"user": MAIL}, MAIL),
    ("metadata.customer", {"metadata": {"customer": MAIL}}, MAIL),
    ("metadata{key 0}", {"metadata": {MAIL: "x"}}, MAIL),
    ("response_format.json_schema.description", {"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "description": MAIL}}}, MAIL),
    ("response_format.json_schema.schema.properties.a.description", {"response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"properties": {"a": {"description": MAIL}}}}}},
     MAIL),
    ("stop[0]", {"stop": [MAIL]}, MAIL),
]


@pytest.mark.parametrize(("where", "body", "value"), OPENAI_FIELDS, ids=[f[0] for f in OPENAI_FIELDS])
def test_openai_request_fields(where: str, body: dict[str, Any], value: str) -> None:
    full = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    assert visited("openai", full).get(where) == value, visited("openai", full)


ANTHROPIC_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("messages[0].content[0].title", {"messages": [{"role": "user", "content": [
        {"type": "search_result", "source": "s", "title": MAIL, "content": []}]}]}, MAIL),
    ("messages[0].content[0].source", {"messages": [{"role": "user", "content": [
        {"type": "search_result", "source": MAIL, "title": "t", "content": []}]}]}, MAIL),
    ("messages[0].content[0].content[0].content[0].text", {"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "search_result", "source": "s", "title": "t",
                                                                "content": [{"type": "text", "text": MAIL}]}]}]}]},
     MAIL),
    ("messages[0].content[0].title", {"messages": [{"role": "user", "content": [
        {"type": "document", "title": MAIL, "source": {"type": "text", "data": "x"}}]}]}, MAIL),
    ("messages[0].content[0].context", {"messages": [{"role": "user", "content": [
        {"type": "document", "context": MAIL, "source": {"type": "text", "data": "x"}}]}]}, MAIL),
    ("messages[0].content[0].input{key 0}", {"messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": {MAIL: 1}}]}]}, MAIL),
    ("messages[0].content[0].citations[0].cited_text", {"messages": [{"role": "assistant", "content": [
        {"type": "text", "text": "x", "citations": [{"type": "char_location", "cited_text": MAIL}]}]}]}, MAIL),
    ("tools[0].description", {"tools": [{"name": "t", "description": MAIL, "input_schema": {}}]}, MAIL),
    ("tools[0].input_schema.properties.a.description", {"tools": [{"name": "t", "input_schema": {
        "properties": {"a": {"description": MAIL}}}}]}, MAIL),
    ("metadata.user_id", {"metadata": {"user_id": MAIL}}, MAIL),
    ("stop_sequences[0]", {"stop_sequences": [MAIL]}, MAIL),
]


@pytest.mark.parametrize(("where", "body", "value"), ANTHROPIC_FIELDS, ids=[f[0] for f in ANTHROPIC_FIELDS])
def test_anthropic_request_fields(where: str, body: dict[str, Any], value: str) -> None:
    full = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], **body}
    assert visited("anthropic", full).get(where) == value, visited("anthropic", full)


def test_signed_thinking_in_a_request_is_left_alone_and_in_an_answer_is_read() -> None:
    block = {"type": "thinking", "thinking": MAIL, "signature": "sig"}
    request = {"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": [block]}]}
    assert MAIL not in visited("anthropic", request).values()
    assert visited("anthropic", {"content": [block]}, answer=True) == {"content[0].thinking": MAIL}


def test_paths_never_carry_a_key_that_is_not_a_plain_name() -> None:
    body = {"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "1", "type": "function",
            "function": {"name": "f", "arguments": json.dumps({MAIL: {"city": "x"}, "ghp_16C7e42F2": "y"})}}]}]}
    paths = visited("openai", body)
    assert all(MAIL not in where and "ghp_" not in where for where in paths), paths
    assert "messages[0].tool_calls[0].function.arguments{0}.city" in paths


def test_the_stage_redacts_a_tool_argument_key_and_a_tool_description() -> None:
    stage = GuardrailStage(parse_rules(PII), {}, {})
    ex = make_exchange({"tools": [{"type": "function", "function": {"name": "f", "description": f"cc {MAIL}"}}],
                        "messages": [{"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {
                            "name": "f", "arguments": json.dumps({MAIL: CARD})}}]}]})
    asyncio.run(stage.request(ex))
    sent = orjson.dumps(ex.body).decode()
    assert MAIL not in sent and "4111" not in sent
    arguments = json.loads(ex.body["messages"][0]["tool_calls"][0]["function"]["arguments"])
    assert arguments == {"<EMAIL_1>": "<CREDIT_CARD_1>"}


@pytest.mark.parametrize(("fmt", "reply"), [
    ("openai", {"id": "c", "object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "done", "reasoning_content": f"the card is {CARD}"}}]}),
    ("anthropic", {"id": "m", "type": "message", "role": "assistant", "content": [
        {"type": "thinking", "thinking": f"the card is {CARD}", "signature": "s"}, {"type": "text", "text": "ok"}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}}),
])
def test_reasoning_in_a_whole_answer_is_redacted(fmt: str, reply: dict[str, Any]) -> None:
    stage = GuardrailStage(parse_rules(PII), {}, {})
    ex = make_exchange({} if fmt == "openai" else {"max_tokens": 5}, client_format=fmt)
    asyncio.run(stage.request(ex))
    ex.reply = UpstreamReply(reply, orjson.dumps(reply), None, fmt)
    asyncio.run(stage.after_route(ex))
    out = orjson.dumps(ex.reply.body).decode()
    assert "4111" not in out and "<CREDIT_CARD_1>" in out
    assert ex.reply.raw is None and [f["entity"] for f in ex.findings] == ["credit_card"]


def _run(guard: StreamGuard, events: list[StreamEvent]) -> list[StreamEvent]:
    return [e for event in events for e in guard.process(event)] + guard.finish()


def test_streamed_reasoning_is_a_channel() -> None:
    rules = tuple(parse_rules(PII))
    make = pipe_factory(Placeholders(), Scan(rules, "response", Placeholders(), restoring=False))
    assert make is not None
    text = f"thinking about {CARD} now and more " + "x" * 400

    def chunk(**delta: Any) -> StreamEvent:
        return StreamEvent({"id": "c", "object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": delta, "finish_reason": None}]})

    events = [chunk(reasoning_content=text[i:i + 7]) for i in range(0, len(text), 7)]
    events += [chunk(content="answer"), StreamEvent({"id": "c", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {}, "finish_reason": "stop"}]})]
    out = _run(StreamGuard(make), events)
    deltas = [e.data["choices"][0]["delta"] for e in out]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    content = [d["content"] for d in deltas if d.get("content")]
    assert "4111" not in reasoning and "<CREDIT_CARD_1>" in reasoning and reasoning.endswith("x" * 400)
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    last_reasoning = max(i for i, d in enumerate(deltas) if d.get("reasoning_content"))
    assert content == ["answer"] and last_reasoning < first_content     # the reasoning is out before the answer


def test_streamed_thinking_is_a_channel() -> None:
    rules = tuple(parse_rules(PII))
    make = pipe_factory(Placeholders(), Scan(rules, "response", Placeholders(), restoring=False))
    assert make is not None
    text = f"the card is {CARD}, I will not repeat it"
    events = [StreamEvent({"type": "content_block_start", "index": 0,
                           "content_block": {"type": "thinking", "thinking": ""}}, format="anthropic")]
    events += [StreamEvent({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta",
                                                                                 "thinking": text[i:i + 5]}},
                           format="anthropic") for i in range(0, len(text), 5)]
    events += [StreamEvent({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta",
                                                                                 "signature": "s"}},
                           format="anthropic"),
               StreamEvent({"type": "content_block_stop", "index": 0}, format="anthropic")]
    out = _run(StreamGuard(make), events)
    deltas = [e.data["delta"] for e in out if e.data.get("type") == "content_block_delta"]
    thinking = "".join(d.get("thinking", "") for d in deltas)
    assert thinking == "the card is <CREDIT_CARD_1>, I will not repeat it"
    assert deltas[-1]["type"] == "signature_delta"      # the thinking is out before its signature


def test_text_held_back_comes_after_the_text_of_a_finishing_chunk() -> None:
    rules = tuple(parse_rules(PII))
    make = pipe_factory(Placeholders(), Scan(rules, "response", Placeholders(), restoring=False))
    assert make is not None

    def chunk(content: str, finish: str | None = None) -> StreamEvent:
        return StreamEvent({"id": "c", "object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": {"content": content}, "finish_reason": finish}]})

    # servers such as vLLM and Ollama send the last text in the chunk that finishes
    text = "Write to me at " + MAIL + " or call. " + "Then some more words. " * 40 + "The end."
    events = [chunk(text[:30]), chunk(text[30:], finish="stop")]   # long enough for some to pass, some held
    out = _run(StreamGuard(make), events)
    content = "".join(e.data["choices"][0]["delta"].get("content") or "" for e in out)
    assert content == text.replace(MAIL, "<EMAIL_1>")
