"""The OpenAI Responses API client format through the real app: the same-format policy against an OpenAI upstream
(a request newer than the gateway reaches it untouched, its bytes and events come back as they were), validation
that names the field, translation to Chat Completions upstreams (hints named in the log row, what only the
Responses API can serve refused before any upstream is called), errors, counting and replay."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from llmgw.profile import parse_profile
from llmgw.proxy.app import make_app
from llmgw.sse import SSEDecoder
from llmgw.testing import FakeOpenAI
from llmgw.testing.fake_anthropic import FakeAnthropic
from llmgw.testing.fake_openai_responses import responses_input_tokens_for
from llmgw.tools.replay import Original, ReplayTarget, answer_text, answer_usage, replay_request

# What Codex CLI sends, plus items, roles and fields no table lists.
NEWER: dict[str, Any] = {
    "model": "gpt",
    "instructions": "You are a coding agent.",
    "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "cwd: /src"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Fix the test"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAB-opaque"},
        {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": '{"command":["ls"]}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "test_x.py"},
        {"type": "hologram_2031", "frames": [1, 2, 3]},
        {"type": "message", "role": "narrator", "content": "Meanwhile"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Go on"}]},
    ],
    "tools": [{"type": "function", "name": "shell", "description": "Runs a command", "strict": False,
               "parameters": {"type": "object", "properties": {"command": {"type": "array"}}}},
              {"type": "custom", "name": "apply_patch", "format": {"type": "grammar", "syntax": "lark",
                                                                   "definition": "start: /.+/"}}],
    "tool_choice": "auto", "parallel_tool_calls": False, "reasoning": {"effort": "medium", "summary": "auto"},
    "store": False, "stream": False, "include": ["reasoning.encrypted_content"], "prompt_cache_key": "conv-1",
    "text": {"verbosity": "low"}, "future_knob_2031": {"on": True},
}
HEADERS = {"OpenAI-Beta": "responses=experimental", "session_id": "sess-1"}


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
async def world(aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    monkeypatch.setenv("RESPONSES_UP_KEY", "sk-up")
    async with FakeOpenAI(api_key="sk-up") as oa:
        profile = parse_profile({
            "server": {"log_bodies": True}, "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
            "providers": {"oa": {"kind": "openai", "base_url": oa.base_url, "api_key": "env:RESPONSES_UP_KEY"},
                          "vllm": {"kind": "openai-compatible", "base_url": oa.base_url,
                                   "api_key": "env:RESPONSES_UP_KEY"},
                          "mock": {"kind": "mock"}},
            "models": {"gpt": {"targets": ["oa/gpt-5"]}, "local": {"targets": ["vllm/llama"]},
                       "mock": {"targets": ["mock/mock-model"]},
                       "either": {"targets": ["vllm/llama", "oa/gpt-5"]},
                       "resilient": {"targets": ["oa/gpt-5", "mock/mock-model"], "retries": 0}}})
        client = await aiohttp_client(make_app(profile))
        yield World(client, oa, tmp_path / "llmgw.db")


def events_of(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(m.data) for m in SSEDecoder().feed(raw)]


# --- same format: untouched ------------------------------------------------------------------------------------


async def test_a_newer_request_reaches_an_openai_upstream_untouched_and_its_answer_comes_back_as_sent(
        world: World) -> None:
    world.openai.set_usage(cached=5, reasoning=3)
    resp = await world.client.post("/v1/responses", json=NEWER, headers=HEADERS)
    assert resp.status == 200, await resp.text()
    sent = world.openai.requests[-1]
    assert sent["path"] == "/v1/responses"
    assert sent["body"] == {**NEWER, "model": "gpt-5"}
    assert sent["headers"]["openai-beta"] == "responses=experimental" and sent["headers"]["session_id"] == "sess-1"
    assert sent["headers"]["authorization"] == "Bearer sk-up"
    answer = await resp.json()
    assert answer["object"] == "response" and answer["model"] == "gpt-5" and answer["id"].startswith("resp_")
    assert [o["type"] for o in answer["output"]] == ["reasoning", "message"]
    assert answer["output"][1]["content"][0]["text"] == "Echo: Go on"
    assert resp.headers["x-llmgw-target"] == "oa/gpt-5"
    [row] = await world.rows()
    assert row["client_format"] == "responses" and row["status"] == 200
    assert orjson.loads(row["dropped_params"]) == []
    assert (row["input_tokens"], row["cached_tokens"], row["reasoning_tokens"]) == (
        responses_input_tokens_for(NEWER), 5, 3)
    assert row["output_tokens"] == 3 + 3


async def test_a_stream_passes_the_upstreams_events_through(world: World) -> None:
    world.openai.set_tool_calls([{"name": "shell", "arguments": {"command": ["pytest"]}}], times=1)
    resp = await world.client.post("/v1/responses", json={**NEWER, "stream": True})
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    events = events_of(await resp.read())
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-1]["type"] == "response.completed"
    calls = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert calls[0]["type"] == "function_call" and orjson.loads(calls[0]["arguments"]) == {"command": ["pytest"]}
    [row] = await world.rows()
    assert row["stream"] == 1 and row["output_tokens"] == events[-1]["response"]["usage"]["output_tokens"]


async def test_previous_response_id_goes_to_an_openai_upstream_and_is_refused_for_others(world: World) -> None:
    body = {"model": "gpt", "input": "And then?", "previous_response_id": "resp_abc"}
    resp = await world.client.post("/v1/responses", json=body)
    assert resp.status == 200
    assert world.openai.requests[-1]["body"]["previous_response_id"] == "resp_abc"
    asked = len(world.openai.requests)
    refused = await world.client.post("/v1/responses", json={**body, "model": "local"})
    error = (await refused.json())["error"]
    assert refused.status == 400 and error["param"] == "previous_response_id"
    assert error["message"].startswith("previous_response_id: ")
    assert len(world.openai.requests) == asked, "nothing reached the upstream"


async def test_an_untranslatable_request_is_refused_at_the_first_target_that_needs_the_translation(
        world: World) -> None:
    # "either" tries the Chat Completions target first: the translation error was deferred to it and ends routing.
    resp = await world.client.post("/v1/responses", json={**NEWER, "model": "either"})
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "input[5].type"


# --- validation -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "hi"}, "model"),
    ({"model": "", "input": "hi"}, "model"),
    ({"model": "gpt", "input": 42}, "input"),
    ({"model": "gpt", "input": ["hi"]}, "input[0]"),
    ({"model": "gpt", "input": [{"type": 7}]}, "input[0].type"),
    ({"model": "gpt", "input": [{"type": "message", "content": "hi"}]}, "input[0].role"),
    ({"model": "gpt", "input": [{"role": "user", "content": 5}]}, "input[0].content"),
    ({"model": "gpt", "input": [{"role": "user", "content": ["hi"]}]}, "input[0].content[0]"),
    ({"model": "gpt", "input": "hi", "instructions": 3}, "instructions"),
    ({"model": "gpt", "input": "hi", "stream": "yes"}, "stream"),
    ({"model": "gpt", "input": "hi", "max_output_tokens": -1}, "max_output_tokens"),
    ({"model": "gpt", "input": "hi", "max_output_tokens": 2.5}, "max_output_tokens"),
    ({"model": "gpt", "input": "hi", "temperature": "warm"}, "temperature"),
    ({"model": "gpt", "input": "hi", "tools": {"type": "function"}}, "tools"),
    ({"model": "gpt", "input": "hi", "tool_choice": 1}, "tool_choice"),
])
async def test_what_the_gateway_needs_is_validated_naming_the_field(world: World, body: dict[str, Any],
                                                                     param: str) -> None:
    resp = await world.client.post("/v1/responses", json=body)
    error = (await resp.json())["error"]
    assert resp.status == 400 and error["param"] == param and error["type"] == "invalid_request_error"
    assert error["message"].startswith(param + ":")
    assert world.openai.requests == []


# --- across formats ---------------------------------------------------------------------------------------------


async def test_a_chat_completions_target_gets_the_translation_and_the_hints_are_named(world: World) -> None:
    body = {**{k: v for k, v in NEWER.items() if k != "tools"},
            "input": [i for i in NEWER["input"] if i["type"] not in ("hologram_2031",) and i.get("role") != "narrator"],
            "tools": NEWER["tools"][:1], "model": "local", "max_output_tokens": 100}
    resp = await world.client.post("/v1/responses", json=body)
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert answer["object"] == "response" and answer["output"][0]["content"][0]["text"] == "Echo: Go on"
    assert answer["usage"]["total_tokens"] == answer["usage"]["input_tokens"] + answer["usage"]["output_tokens"]
    sent = world.openai.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and "openai-beta" not in sent["headers"]
    assert [(m["role"], m.get("content")) for m in sent["body"]["messages"]] == [
        ("system", "You are a coding agent."), ("system", "cwd: /src"), ("user", "Fix the test"),
        ("assistant", None), ("tool", "test_x.py"), ("user", "Go on")]
    assert sent["body"]["max_tokens"] == 100 and sent["body"]["reasoning_effort"] == "medium"
    assert sent["body"]["tools"][0]["function"]["name"] == "shell"
    [row] = await world.rows()
    assert orjson.loads(row["dropped_params"]) == ["reasoning", "reasoning.summary", "store", "future_knob_2031",
                                                   "include"]


@pytest.mark.parametrize(("extra", "param"), [
    ({"tools": [{"type": "local_shell"}]}, "tools[0]"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
    ({"background": True}, "background"),
    ({"text": {"format": {"type": "grammar"}}}, "text.format"),
])
async def test_what_only_the_responses_api_serves_is_a_400_for_others(world: World, extra: dict[str, Any],
                                                                       param: str) -> None:
    resp = await world.client.post("/v1/responses", json={"model": "mock", "input": "hi", **extra})
    error = (await resp.json())["error"]
    assert resp.status == 400 and error["param"] == param
    [row] = await world.rows()
    assert row["status"] == 400 and row["client_format"] == "responses"


async def test_a_translated_stream_is_the_apis_events(world: World) -> None:
    resp = await world.client.post("/v1/responses", json={"model": "mock", "input": "stream to me", "stream": True})
    events = events_of(await resp.read())
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "Mock answer: stream to me" == events[-1]["response"]["output"][0]["content"][0]["text"]
    [row] = await world.rows()
    assert row["output_tokens"] == events[-1]["response"]["usage"]["output_tokens"] > 0


# --- errors -----------------------------------------------------------------------------------------------------


async def test_an_upstream_429_is_the_clients_rate_limit_error(world: World) -> None:
    world.openai.fail_next(429, retry_after=3)
    resp = await world.client.post("/v1/responses", json={"model": "gpt", "input": "hi"})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    assert (await resp.json())["error"]["type"] == "rate_limit_error"


async def test_an_unknown_alias_is_a_404_in_the_openai_error_shape(world: World) -> None:
    resp = await world.client.post("/responses", json={"model": "nope", "input": "hi"})
    body = await resp.json()
    assert resp.status == 404 and set(body["error"]) == {"message", "type", "param", "code"}


async def test_a_stream_broken_mid_way_ends_with_error_and_response_failed(world: World) -> None:
    world.openai.fail_mid_stream(after_events=4)
    resp = await world.client.post("/v1/responses", json={"model": "gpt", "input": "hi there", "stream": True})
    events = events_of(await resp.read())
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-1]["response"]["id"] == events[0]["response"]["id"]
    assert events[-1]["response"]["status"] == "failed"
    [row] = await world.rows()
    assert row["status"] == 502


async def test_a_stream_that_fails_right_after_response_created_falls_over_to_the_next_target(world: World) -> None:
    world.openai.fail_mid_stream(after_events=2)   # response.created, response.in_progress, then an error event
    resp = await world.client.post("/v1/responses", json={"model": "resilient", "input": "hi", "stream": True})
    events = events_of(await resp.read())
    assert resp.headers["x-llmgw-target"] == "mock/mock-model"
    assert [e["type"] for e in events].count("response.created") == 1 and events[-1]["type"] == "response.completed"
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "Mock answer: hi"
    [row] = await world.rows()
    assert [a["status"] for a in orjson.loads(row["attempts_json"])] == [502, 200]


# --- counting and replay ----------------------------------------------------------------------------------------


async def test_input_tokens_are_counted_by_an_openai_upstream_or_estimated(world: World) -> None:
    body = {"model": "gpt", "input": "count these words", "instructions": "Be terse."}
    resp = await world.client.post("/v1/responses/input_tokens", json=body)
    assert await resp.json() == {"object": "response.input_tokens",
                                 "input_tokens": responses_input_tokens_for(body)}
    assert world.openai.requests[-1]["path"] == "/v1/responses/input_tokens"
    estimated = await world.client.post("/v1/responses/input_tokens", json={**body, "model": "mock"})
    assert (await estimated.json())["input_tokens"] > 0


async def test_a_logged_responses_request_replays_to_its_own_path() -> None:
    original = Original("req_1", "responses", {"model": "gpt", "input": "hi", "stream": True}, "gpt", "oa/gpt-5",
                        200, "Echo: hi", 5, 2, 0.0, 1.0)
    request = replay_request(original, ReplayTarget("local", "local"), None)
    assert request.path == "/v1/responses" and request.body == {"model": "local", "input": "hi", "stream": False}
    answer = {"object": "response", "output": [
        {"type": "message", "content": [{"type": "output_text", "text": "Echo: hi"}]},
        {"type": "function_call", "name": "shell", "arguments": '{"command":["ls"]}'}],
        "usage": {"input_tokens": 9, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 2}}
    assert answer_text(answer) == 'Echo: hi\nshell({"command":["ls"]})'
    usage = answer_usage(answer)
    assert (usage.input_tokens, usage.output_tokens) == (9, 2)


async def test_headers_meant_for_the_responses_api_never_reach_an_upstream_of_another_format(
        aiohttp_client: Any, tmp_path: Path) -> None:
    async with FakeAnthropic(api_key="sk-ant") as an:
        profile = parse_profile({
            "state": {"url": f"sqlite:///{tmp_path / 'other.db'}"},
            "providers": {"an": {"kind": "anthropic", "base_url": an.base_url, "api_key": "sk-ant"}},
            "models": {"claude": {"targets": ["an/claude-sonnet-4-6"]}}})
        client = await aiohttp_client(make_app(profile))
        resp = await client.post("/v1/responses", json={"model": "claude", "input": "hi"}, headers=HEADERS)
        assert resp.status == 200
        sent = an.requests[-1]["headers"]
        assert "openai-beta" not in sent and "session_id" not in sent
