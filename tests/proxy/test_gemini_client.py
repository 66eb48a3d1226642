"""Gemini clients (Gemini CLI, the google-genai SDKs) through the real app: same-format requests reach a Gemini
upstream untouched, across formats they are translated or refused naming the field, keys come from
``x-goog-api-key`` or ``?key=``, every stage (auth, guardrails, cache, the log, replay) works with them, and errors
are Google's."""

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
from llmgw.store import log as request_log
from llmgw.testing import FakeOpenAI
from llmgw.testing.fake_gemini import FakeGemini
from llmgw.tools.replay import resolve_targets, run_replay, select_by_ids, served_profile

UP_KEY = "AIza-upstream-key-for-tests"
CLIENT_KEY = "sk-llmgw-gemini-client-key-0123456789"
EMAIL = "jane.doe@example.com"
GEN = "/v1beta/models/{}:generateContent"
STREAM = "/v1beta/models/{}:streamGenerateContent"
COUNT = "/v1beta/models/{}:countTokens"


def user(text: str) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


# Parts, fields and settings Gemini knows and the gateway has no use for (the fake accepts them, like Gemini).
NEWER = {
    "systemInstruction": {"parts": [{"text": "You are a coding agent."}]},
    "contents": [
        {"role": "user", "parts": [{"text": "Run it"}]},
        {"role": "model", "parts": [{"text": "planning", "thought": True, "thoughtSignature": "c2ln"},
                                    {"executableCode": {"language": "PYTHON", "code": "print(1)"}},
                                    {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1"}}]},
        {"role": "user", "parts": [{"text": "Go on"}, {"videoMetadata": {"fps": 2}, "fileData": {
            "mimeType": "video/mp4", "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/x"}}]},
    ],
    "cachedContent": "cachedContents/abc",
    "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    "generationConfig": {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": -1},
                         "mediaResolution": "MEDIA_RESOLUTION_LOW", "maxOutputTokens": 64},
}


@dataclass
class World:
    client: TestClient
    gemini: FakeGemini
    openai: FakeOpenAI
    db: Path
    profile: Any

    async def rows(self) -> list[dict[str, Any]]:
        await self.client.close()
        conn = sqlite3.connect(self.db)
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM requests ORDER BY time")]
        conn.close()
        return rows


def profile_data(tmp_path: Path, ge: FakeGemini, oa: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {
        "server": {"log_bodies": True}, "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
        "providers": {"ge": {"kind": "gemini", "base_url": ge.base_url, "api_key": "env:GEMINI_CLIENT_UP_KEY"},
                      "oa": {"kind": "openai-compatible", "base_url": oa.base_url}, "mock": {"kind": "mock"}},
        "models": {"gemini-pro": {"targets": ["ge/gemini-2.5-pro"]}, "gpt": {"targets": ["oa/gpt-4o-mini"]},
                   "local": {"targets": ["mock/mock-model"]}},
        **extra}


@pytest.fixture
async def make_world(aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    monkeypatch.setenv("GEMINI_CLIENT_UP_KEY", UP_KEY)
    monkeypatch.setenv("GEMINI_CLIENT_KEY", CLIENT_KEY)
    async with FakeGemini(api_key=UP_KEY) as ge, FakeOpenAI() as oa:
        async def make(**extra: Any) -> World:
            profile = parse_profile(profile_data(tmp_path, ge, oa, **extra))
            return World(await aiohttp_client(make_app(profile)), ge, oa, tmp_path / "llmgw.db", profile)

        yield make


@pytest.fixture
async def world(make_world: Any) -> World:
    world: World = await make_world()
    return world


def sse_chunks(raw: bytes) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    return [orjson.loads(m.data) for m in [*decoder.feed(raw), *decoder.close()]]


def streamed_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(p.get("text", "") for c in chunks for cand in c.get("candidates", [])
                   for p in cand.get("content", {}).get("parts", []))


# --- same format: untouched -------------------------------------------------------------------------------------


async def test_a_newer_request_reaches_a_gemini_upstream_untouched(world: World) -> None:
    resp = await world.client.post(GEN.format("gemini-pro"), json=NEWER, headers={"x-goog-api-key": "whatever"})
    assert resp.status == 200, await resp.text()
    sent = world.gemini.requests[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert sent["body"] == NEWER
    assert sent["headers"]["x-goog-api-key"] == UP_KEY          # the provider's key, never the client's
    answer = await resp.json()
    assert answer["candidates"][0]["content"]["parts"] == [{"text": "Echo: Go on"}]
    assert answer["modelVersion"] == "gemini-2.5-pro"           # Gemini's own answer, as it sent it
    [row] = await world.rows()
    assert (row["client_format"], row["status"], row["target"]) == ("gemini", 200, "ge/gemini-2.5-pro")
    assert orjson.loads(row["dropped_params"]) == []
    assert row["input_tokens"] > 0 and row["output_tokens"] == 3


async def test_an_unknown_field_is_the_upstreams_to_judge(world: World) -> None:
    body = {**user("hi"), "futureKnob2031": {"on": True}}
    resp = await world.client.post(GEN.format("gemini-pro"), json=body)
    assert world.gemini.requests[-1]["body"] == body            # it reached the upstream as sent
    error = (await resp.json())["error"]
    assert resp.status == 400 and error["status"] == "INVALID_ARGUMENT"
    assert error["message"].startswith("upstream ge/gemini-2.5-pro rejected the request: ")


async def test_a_stream_passes_through_event_by_event(world: World) -> None:
    resp = await world.client.post(STREAM.format("gemini-pro"), params={"alt": "sse"},
                                   json=user("stream these words please"))
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    chunks = sse_chunks(await resp.read())
    assert len(chunks) == 3 and streamed_text(chunks) == "Echo: stream these words please"
    assert all(c["modelVersion"] == "gemini-2.5-pro" for c in chunks)
    assert world.gemini.requests[-1]["query"] == {"alt": "sse"}
    [row] = await world.rows()
    assert row["stream"] == 1 and row["output_tokens"] == 5


@pytest.mark.parametrize("alias", ["gemini-pro", "gpt"])
async def test_without_alt_sse_a_stream_is_one_json_array(world: World, alias: str) -> None:
    resp = await world.client.post(STREAM.format(alias), json=user("one two three"))
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/json")
    chunks = await resp.json()
    assert isinstance(chunks, list) and len(chunks) >= 2
    assert streamed_text(chunks) == "Echo: one two three"
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP" and chunks[-1]["usageMetadata"]


async def test_a_stream_broken_midway_ends_with_googles_error(world: World) -> None:
    world.gemini.break_next_stream(after_events=1)
    resp = await world.client.post(STREAM.format("gemini-pro") + "?alt=sse", json=user("a b c d e f"))
    chunks = sse_chunks(await resp.read())
    assert chunks[0]["candidates"] and chunks[-1]["error"]["code"] == 502
    assert chunks[-1]["error"]["status"] == "UNAVAILABLE"


async def test_count_tokens_asks_a_gemini_upstream_and_estimates_for_others(world: World) -> None:
    resp = await world.client.post(COUNT.format("gemini-pro"), json=user("count me please"))
    assert resp.status == 200 and (await resp.json())["totalTokens"] == 7
    assert world.gemini.requests[-1]["path"] == "/v1beta/models/gemini-2.5-pro:countTokens"
    wrapped = {"generateContentRequest": {"model": "models/gemini-pro", **user("count me please")}}
    resp = await world.client.post(COUNT.format("gemini-pro"), json=wrapped)
    assert resp.status == 200, await resp.text()
    assert world.gemini.requests[-1]["body"]["generateContentRequest"]["model"] == "models/gemini-2.5-pro"
    calls = len(world.openai.requests)
    resp = await world.client.post(COUNT.format("gpt"), json=user("count me please"))
    assert resp.status == 200 and (await resp.json())["totalTokens"] > 0 and len(world.openai.requests) == calls
    rows = await world.rows()
    assert [r["endpoint"] for r in rows] == ["count_tokens"] * 3 and all(r["cost_usd"] == 0 for r in rows)


# --- across formats ---------------------------------------------------------------------------------------------


async def test_across_formats_hints_are_dropped_and_named(world: World) -> None:
    body = {**user("Hello"), "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "safetySettings": NEWER["safetySettings"],
            "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}, "topK": 3, "maxOutputTokens": 50}}
    resp = await world.client.post(GEN.format("gpt"), json=body)
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert answer["candidates"][0]["content"] == {"role": "model", "parts": [{"text": "Echo: Hello"}]}
    assert answer["usageMetadata"]["promptTokenCount"] > 0
    sent = world.openai.requests[-1]["body"]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    assert sent["max_tokens"] == 50
    [row] = await world.rows()
    assert orjson.loads(row["dropped_params"]) == ["generationConfig.thinkingConfig", "generationConfig.topK",
                                                   "safetySettings"]


async def test_across_formats_what_would_change_the_answer_is_refused(world: World) -> None:
    resp = await world.client.post(GEN.format("gpt"), json=NEWER)
    error = (await resp.json())["error"]
    assert resp.status == 400 and error["status"] == "INVALID_ARGUMENT"
    assert error["message"].startswith("cachedContent: ")
    violation = next(d for d in error["details"] if d["@type"].endswith("google.rpc.BadRequest"))
    assert violation["fieldViolations"][0]["field"] == "cachedContent"
    assert world.openai.requests == []


@pytest.mark.parametrize(("body", "field"), [
    ({"contents": []}, "contents"),
    ({}, "contents"),
    ({"contents": [{"role": "user", "parts": [{"text": 3}]}]}, "contents[0].parts[0].text"),
    ({"contents": [{"parts": "hi"}]}, "contents[0].parts"),
    ({**user("hi"), "generationConfig": {"maxOutputTokens": "many"}}, "generationConfig.maxOutputTokens"),
    ({**user("hi"), "generation_config": {"temperature": "hot"}}, "generationConfig.temperature"),
    ({**user("hi"), "systemInstruction": {"parts": [{"text": None}, 5]}}, "systemInstruction.parts[1]"),
    ({**user("hi"), "tools": {"functionDeclarations": []}}, "tools"),
])
async def test_a_bad_request_is_a_400_naming_the_field(world: World, body: dict[str, Any], field: str) -> None:
    resp = await world.client.post(GEN.format("gemini-pro"), json=body)
    answer = await resp.json()
    assert resp.status == 400, answer
    assert answer["error"]["code"] == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
    assert answer["error"]["message"].startswith(field + ": ")
    assert world.gemini.requests == []


async def test_not_json_and_an_unknown_alias_answer_in_googles_shape(world: World) -> None:
    resp = await world.client.post(GEN.format("gemini-pro"), data=b"{not json")
    assert resp.status == 400 and (await resp.json())["error"]["status"] == "INVALID_ARGUMENT"
    resp = await world.client.post(GEN.format("gemini-prp"), json=user("hi"))
    error = (await resp.json())["error"]
    assert resp.status == 404 and error["status"] == "NOT_FOUND" and "did you mean 'gemini-pro'" in error["message"]


# --- keys, guardrails, cache, replay ----------------------------------------------------------------------------


async def test_a_virtual_key_in_the_query_or_header_and_the_one_401(make_world: Any) -> None:
    world: World = await make_world(teams={"agents": {}},
                                    keys={"cli": {"key": "env:GEMINI_CLIENT_KEY", "team": "agents"}})
    ok = await world.client.post(GEN.format("local"), params={"key": CLIENT_KEY}, json=user("by query"))
    assert ok.status == 200, await ok.text()
    ok = await world.client.post(STREAM.format("local"), params={"alt": "sse"}, json=user("by header"),
                                 headers={"x-goog-api-key": CLIENT_KEY})
    assert ok.status == 200 and streamed_text(sse_chunks(await ok.read())).startswith("Mock answer")
    for params, headers in (({"key": "sk-wrong"}, {}), ({}, {"x-goog-api-key": "sk-wrong"}), ({}, {})):
        bad = await world.client.post(GEN.format("local"), params=params, headers=headers, json=user("no"))
        error = (await bad.json())["error"]
        assert bad.status == 401 and error["status"] == "UNAUTHENTICATED" and error["code"] == 401
    rows = await world.rows()
    assert [(r["status"], r["key"]) for r in rows] == [(200, "cli"), (200, "cli"), (401, ""), (401, ""), (401, "")]
    assert CLIENT_KEY not in repr(rows) and "sk-wrong" not in repr(rows)


@pytest.mark.parametrize("alias", ["gemini-pro", "gpt"])
async def test_a_redact_rule_redacts_the_system_instruction_and_the_contents(make_world: Any, alias: str) -> None:
    world: World = await make_world(guardrails=[{"name": "pii", "kind": "pii", "entities": ["email"],
                                                 "action": "redact", "restore": True}])
    body = {"systemInstruction": {"parts": [{"text": f"The user is {EMAIL}."}]},
            "contents": [{"role": "user", "parts": [{"text": "hello"}]},
                         {"role": "model", "parts": [{"functionCall": {"name": "mail", "args": {"to": EMAIL}}}]},
                         {"role": "user", "parts": [{"functionResponse": {"name": "mail", "response": {
                             "sent": EMAIL}}}, {"text": f"write to {EMAIL}"}]}]}
    resp = await world.client.post(GEN.format(alias), json=body)
    assert resp.status == 200, await resp.text()
    upstream = world.gemini if alias == "gemini-pro" else world.openai
    sent = orjson.dumps(upstream.requests[-1]["body"]).decode()
    assert EMAIL not in sent and sent.count("<EMAIL_1>") == 4
    assert (await resp.json())["candidates"][0]["content"]["parts"][0]["text"] == f"Echo: write to {EMAIL}"
    stream = await world.client.post(STREAM.format(alias), params={"alt": "sse"}, json=body)
    assert streamed_text(sse_chunks(await stream.read())) == f"Echo: write to {EMAIL}"   # restored in the stream
    rows = await world.rows()
    assert all(EMAIL not in repr(r) for r in rows)
    assert [orjson.loads(r["findings"])[0]["rule"] for r in rows] == ["pii", "pii"]


@pytest.mark.parametrize("alias", ["gemini-pro", "gpt"])
async def test_the_cache_answers_a_gemini_client_in_its_format(make_world: Any, alias: str) -> None:
    world: World = await make_world(cache={"exact": True})
    body = {**user("cache me"), "generationConfig": {"temperature": 0}}
    first = await world.client.post(GEN.format(alias), json=body)
    again = await world.client.post(GEN.format(alias), json=body)
    assert (first.headers["x-llmgw-cache"], again.headers["x-llmgw-cache"]) == ("miss", "hit")
    answer = await again.json()
    assert answer["candidates"][0]["content"]["parts"] == [{"text": "Echo: cache me"}]
    counts = ("promptTokenCount", "candidatesTokenCount", "totalTokenCount")
    told = (await first.json())["usageMetadata"]
    assert [answer["usageMetadata"][k] for k in counts] == [told[k] for k in counts]   # the original's usage
    streamed = await world.client.post(STREAM.format(alias), params={"alt": "sse"}, json=body)
    assert streamed.headers["x-llmgw-cache"] == "hit"
    assert streamed_text(sse_chunks(await streamed.read())) == "Echo: cache me"
    other = await world.client.post(GEN.format(alias), json={**body, "safetySettings": NEWER["safetySettings"]})
    assert other.headers["x-llmgw-cache"] == "miss"    # a setting the canonical body lacks partitions the cache


async def test_a_logged_gemini_request_replays(world: World) -> None:
    resp = await world.client.post(GEN.format("local"), json={**user("replay me"), "safetySettings": []})
    request_id = resp.headers["x-llmgw-request-id"]
    await world.client.close()
    conn = request_log.connect(world.db, readonly=True)
    selection = select_by_ids(conn, [request_id])
    conn.close()
    [original] = selection.originals
    assert original.client_format == "gemini" and original.output == "Mock answer: replay me"
    targets = resolve_targets(world.profile, ["local", "mock/mock-model"])
    results = await run_replay(served_profile(world.profile, targets), selection.originals, targets)
    assert [(r.status, r.output, r.error) for r in results] == [(200, "Mock answer: replay me", None)] * 2
    assert all(r.similarity == 1.0 and r.input_tokens > 0 for r in results)


async def test_a_count_is_redacted_before_it_leaves(make_world: Any) -> None:
    world: World = await make_world(guardrails=[{"name": "pii", "kind": "pii", "entities": ["email"],
                                                 "action": "redact"}])
    wrapped = {"generateContentRequest": {"model": "models/gemini-pro", **user(f"mail {EMAIL}"),
                                          "systemInstruction": {"parts": [{"text": f"owner {EMAIL}"}]}}}
    resp = await world.client.post(COUNT.format("gemini-pro"), json=wrapped)
    assert resp.status == 200 and (await resp.json())["totalTokens"] > 0
    sent = orjson.dumps(world.gemini.requests[-1]["body"]).decode()
    assert EMAIL not in sent and sent.count("<EMAIL_1>") == 2
