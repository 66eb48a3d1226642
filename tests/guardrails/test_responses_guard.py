"""Guardrails on the OpenAI Responses API format, in the real app: a redact rule redacts the texts of input items,
``instructions``, function-call arguments (JSON values), function outputs and tool descriptions before any upstream
sees them; the answer is restored — whole and streamed, passed through to an OpenAI upstream (native events: deltas,
``.done`` events, items and the final response alike) and translated from a Chat Completions one — and the log
keeps no value."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from llmgw.exchange import StreamEvent
from llmgw.formats import named
from llmgw.guardrails.redact import Placeholders
from llmgw.guardrails.stream import StreamGuard, pipe_factory
from llmgw.profile import parse_profile
from llmgw.proxy.app import make_app
from llmgw.sse import SSEDecoder
from llmgw.testing import FakeOpenAI

EMAIL, OTHER = "jane.doe@example.com", "bob.smith@example.org"
RULES = [{"name": "pii", "kind": "pii", "entities": ["email"], "action": "redact", "restore": True},
         {"name": "codenames", "kind": "denylist", "terms": ["project zeus"], "action": "block"}]


def body_with_pii(model: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "instructions": f"Reply to {EMAIL} only.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": f"Write to {OTHER}"}]},
            {"type": "function_call", "call_id": "call_1", "name": "send",
             "arguments": orjson.dumps({"to": OTHER, "cc": [EMAIL]}).decode()},
            {"type": "function_call_output", "call_id": "call_1", "output": f"sent to {OTHER}"},
            {"role": "user", "content": f"Now {EMAIL}"},
        ],
        "tools": [{"type": "function", "name": "send", "description": f"Sends mail as {EMAIL}",
                   "parameters": {"type": "object", "properties": {"to": {"type": "string"}}}}],
        **extra,
    }


@dataclass
class World:
    client: TestClient
    openai: FakeOpenAI
    db: Path

    async def rows(self) -> list[dict[str, Any]]:
        await self.client.close()
        conn = sqlite3.connect(self.db)
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM requests ORDER BY time")]
        conn.close()
        return rows


@pytest.fixture
async def world(aiohttp_client: Any, tmp_path: Path) -> AsyncIterator[World]:
    async with FakeOpenAI() as oa:
        profile = parse_profile({
            "server": {"log_bodies": True}, "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
            "providers": {"oa": {"kind": "openai", "base_url": oa.base_url, "api_key": "sk-up"},
                          "vllm": {"kind": "openai-compatible", "base_url": oa.base_url}},
            "models": {"gpt": {"targets": ["oa/gpt-5"]}, "local": {"targets": ["vllm/llama"]}},
            "guardrails": RULES})
        client = await aiohttp_client(make_app(profile))
        yield World(client, oa, tmp_path / "llmgw.db")


def events_of(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(m.data) for m in SSEDecoder().feed(raw)]


@pytest.mark.parametrize("model", ["gpt", "local"])
async def test_every_text_is_redacted_before_the_upstream_and_the_answer_is_restored(world: World,
                                                                                     model: str) -> None:
    resp = await world.client.post("/v1/responses", json=body_with_pii(model))
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert answer["output"][0]["content"][0]["text"] == f"Echo: Now {EMAIL}"
    sent = orjson.dumps(world.openai.requests[-1]["body"]).decode()
    assert EMAIL not in sent and OTHER not in sent and "<EMAIL_1>" in sent and "<EMAIL_2>" in sent
    body = world.openai.requests[-1]["body"]
    if model == "gpt":   # the Responses request itself, redacted in place
        assert body["instructions"] == "Reply to <EMAIL_1> only."
        assert orjson.loads(body["input"][1]["arguments"]) == {"to": "<EMAIL_2>", "cc": ["<EMAIL_1>"]}
        assert body["input"][2]["output"] == "sent to <EMAIL_2>"
        assert body["tools"][0]["description"] == "Sends mail as <EMAIL_1>"
    else:                # its Chat Completions translation
        assert body["messages"][0]["content"] == "Reply to <EMAIL_1> only."
        assert body["tools"][0]["function"]["description"] == "Sends mail as <EMAIL_1>"
    [row] = await world.rows()
    assert EMAIL not in row["request"] + row["response"] and OTHER not in row["request"] + row["response"]
    assert {f["where"] for f in orjson.loads(row["findings"])} >= {"instructions", "input[0].content[0].text",
                                                                   "input[1].arguments.to", "input[2].output",
                                                                   "tools[0].description"}


@pytest.mark.parametrize("model", ["gpt", "local"])
async def test_a_streamed_answer_is_restored_in_every_event(world: World, model: str) -> None:
    world.openai.set_answer("Mail <EMAIL_1> and <EMAIL_2> today")
    resp = await world.client.post("/v1/responses", json=body_with_pii(model, stream=True))
    events = events_of(await resp.read())
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    expected = f"Mail {EMAIL} and {OTHER} today"
    assert text == expected
    done = next(e for e in events if e["type"] == "response.output_text.done")
    part = next(e for e in events if e["type"] == "response.content_part.done")
    item = next(e for e in events if e["type"] == "response.output_item.done")
    assert done["text"] == part["part"]["text"] == item["item"]["content"][0]["text"] == expected
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == expected
    [row] = await world.rows()
    assert EMAIL not in (row["response"] or "")


async def test_streamed_function_call_arguments_are_restored(world: World) -> None:
    world.openai.set_tool_calls([{"name": "send", "arguments": {"to": "<EMAIL_2>"}}], times=1)
    resp = await world.client.post("/v1/responses", json=body_with_pii("gpt", stream=True))
    events = events_of(await resp.read())
    arguments = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    assert orjson.loads(arguments) == {"to": OTHER}
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert orjson.loads(done["arguments"]) == {"to": OTHER}
    assert orjson.loads(events[-1]["response"]["output"][0]["arguments"]) == {"to": OTHER}


async def test_a_blocked_request_never_reaches_the_upstream(world: World) -> None:
    resp = await world.client.post("/v1/responses", json={"model": "gpt", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "about project zeus"}]}]})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "guardrail_blocked"
    assert world.openai.requests == []


def test_native_events_are_restored_channel_by_channel_fed_one_by_one() -> None:
    """The format's guard on native events alone: text split across deltas, held back and flushed before the
    ``.done`` events, which then say exactly what the deltas said."""
    table = Placeholders()
    placeholder = table.token("EMAIL", EMAIL, restorable=True)
    make = pipe_factory(table, None)
    assert make is not None
    guard = StreamGuard(make)
    half = len(placeholder) // 2
    feed = [
        {"type": "response.output_item.added", "output_index": 0,
         "item": {"id": "msg_1", "type": "message", "content": []}},
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "item_id": "msg_1",
         "delta": "Hi " + placeholder[:half]},
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "item_id": "msg_1",
         "delta": placeholder[half:]},
        {"type": "response.output_text.done", "output_index": 0, "content_index": 0, "item_id": "msg_1",
         "text": "Hi " + placeholder},
        {"type": "response.completed", "response": {"output": [
            {"id": "msg_1", "type": "message", "content": [{"type": "output_text", "text": "Hi " + placeholder}]}]}},
    ]
    out: list[StreamEvent] = []
    for data in feed:
        out += guard.process(StreamEvent(data, b"raw", format="responses"))
    out += guard.finish()
    deltas = [e.data["delta"] for e in out if e.data["type"] == "response.output_text.delta"]
    assert "".join(deltas) == f"Hi {EMAIL}"
    done = next(e for e in out if e.data["type"] == "response.output_text.done")
    assert done.data["text"] == f"Hi {EMAIL}" and done.raw is None
    assert out[-1].data["response"]["output"][0]["content"][0]["text"] == f"Hi {EMAIL}"


def test_every_text_of_a_request_is_visited_in_document_order() -> None:
    body = {
        "model": "gpt", "instructions": "sys", "user": "u-1", "safety_identifier": "s-1", "metadata": {"run": "r"},
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"},
                                         {"type": "input_image", "image_url": "https://x/y.png"}]},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thought"}],
             "encrypted_content": "gAAAA"},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": '{"to": "x"}'},
            {"type": "function_call_output", "call_id": "c", "output": [{"type": "input_text", "text": "out"}]},
            {"type": "custom_tool_call", "call_id": "d", "name": "apply_patch", "input": "patch"},
            {"type": "custom_tool_call_output", "call_id": "d", "output": "done"},
            {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
        ],
        "tools": [{"type": "function", "name": "f", "description": "desc",
                   "parameters": {"type": "object", "properties": {"to": {"type": "string", "description": "who"}}}},
                  {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "g",
                                                                 "description": "inner"}]}],
        "text": {"format": {"type": "json_schema", "name": "o", "description": "fmt",
                            "schema": {"type": "object", "description": "shape"}}},
    }
    seen: list[str] = []
    named("responses").request_texts("chat", body, lambda text, where: seen.append(where) or text)
    assert seen == [
        "instructions", "input[0].content[0].text", "input[0].content[1].text", "input[1].summary[0].text",
        "input[2].arguments{key 0}", "input[2].arguments.to", "input[3].output[0].text", "input[4].input",
        "input[5].output", "input[6].content[0].refusal", "tools[0].description",
        "tools[0].parameters.properties.to.description", "tools[1].tools[0].description",
        "text.format.description", "text.format.schema.description", "user", "safety_identifier", "metadata{key 0}",
        "metadata.run",
    ]


def test_reasoning_summaries_are_restored_in_deltas_parts_and_items() -> None:
    table = Placeholders()
    placeholder = table.token("EMAIL", EMAIL, restorable=True)
    make = pipe_factory(table, None)
    assert make is not None
    guard = StreamGuard(make)
    where = {"item_id": "rs_1", "output_index": 0, "summary_index": 0}
    feed = [
        {"type": "response.output_item.added", "output_index": 0, "item": {"id": "rs_1", "type": "reasoning"}},
        {"type": "response.reasoning_summary_text.delta", **where, "delta": "Mail " + placeholder},
        {"type": "response.reasoning_summary_text.done", **where, "text": "Mail " + placeholder},
        {"type": "response.reasoning_summary_part.done", **where,
         "part": {"type": "summary_text", "text": "Mail " + placeholder}},
        {"type": "response.output_item.done", "output_index": 0,
         "item": {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text",
                                                                  "text": "Mail " + placeholder}]}},
    ]
    out: list[StreamEvent] = []
    for data in feed:
        out += guard.process(StreamEvent(data, b"raw", format="responses"))
    text = "".join(e.data["delta"] for e in out if e.data["type"] == "response.reasoning_summary_text.delta")
    assert text == f"Mail {EMAIL}"
    by_type = {e.data["type"]: e.data for e in out}
    assert by_type["response.reasoning_summary_text.done"]["text"] == f"Mail {EMAIL}"
    assert by_type["response.reasoning_summary_part.done"]["part"]["text"] == f"Mail {EMAIL}"
    assert by_type["response.output_item.done"]["item"]["summary"][0]["text"] == f"Mail {EMAIL}"
