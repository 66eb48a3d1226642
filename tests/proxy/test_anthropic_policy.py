"""The Anthropic format's same-format policy through the real app: a request newer than the gateway (system-role
messages, roles, block types, fields and beta headers it has never seen) reaches an Anthropic upstream untouched;
across formats it is translated, its hints are named in the log row, and what only Anthropic can honour is a 400
naming the field that never reaches the upstream."""

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
from llmgw.testing import FakeOpenAI
from llmgw.testing.fake_anthropic import FakeAnthropic
from llmgw.testing.fake_gemini import FakeGemini

EMAIL = "jane.doe@example.com"
HEADERS = {"anthropic-version": "2023-06-01", "anthropic-beta": "per-turn-control-2026-07-01,future-beta-2031-01-01"}
# What current Claude Code sends (a system-role message after the first user turn), plus things no table lists.
NEWER = {
    "model": "claude",
    "max_tokens": 512,
    "system": [{"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Fix the failing test"}]},
        {"role": "system", "content": [{"type": "text", "text": "# Environment\ncwd: /src",
                                        "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Looking."},
                                          {"type": "hologram_2031", "frames": [1, 2, 3]}]},
        {"role": "system", "content": "From now on, be brief.", "output_config": {"effort": "low"},
         "clear_at": "never"},
        {"role": "user", "content": "Go on"},
    ],
    "thinking": {"type": "adaptive", "display": "omitted"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "medium"},
    "future_knob_2031": {"on": True},
}


@dataclass
class World:
    client: TestClient
    anthropic: FakeAnthropic
    openai: FakeOpenAI
    gemini: FakeGemini
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
    async with FakeAnthropic(api_key="sk-ant-up") as an, FakeOpenAI() as oa, FakeGemini(api_key="g-key") as ge:
        profile = parse_profile({
            "server": {"log_bodies": True}, "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
            "providers": {"an": {"kind": "anthropic", "base_url": an.base_url, "api_key": "env:POLICY_ANT_KEY"},
                          "oa": {"kind": "openai-compatible", "base_url": oa.base_url},
                          "ge": {"kind": "gemini", "base_url": ge.base_url, "api_key": "env:POLICY_GEMINI_KEY"}},
            "models": {"claude": {"targets": ["an/claude-sonnet-4-6"]}, "gpt": {"targets": ["oa/gpt-4o-mini"]},
                       "gemini": {"targets": ["ge/gemini-2.0-flash"]}},
            "guardrails": [{"name": "pii", "kind": "pii", "entities": ["email"], "action": "redact",
                            "restore": True}]})
        with pytest.MonkeyPatch.context() as env:
            env.setenv("POLICY_ANT_KEY", "sk-ant-up")
            env.setenv("POLICY_GEMINI_KEY", "g-key")
            client = await aiohttp_client(make_app(profile))
            yield World(client, an, oa, ge, tmp_path / "llmgw.db")


async def test_a_newer_request_reaches_an_anthropic_upstream_untouched(world: World) -> None:
    resp = await world.client.post("/v1/messages", json=NEWER, headers=HEADERS)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["content"][-1]["text"] == "Echo: Go on"
    sent = world.anthropic.requests[-1]
    assert sent["body"] == {**NEWER, "model": "claude-sonnet-4-6"}
    assert sent["headers"]["anthropic-beta"] == HEADERS["anthropic-beta"]

    count = await world.client.post("/v1/messages/count_tokens", headers=HEADERS,
                                    json={k: v for k, v in NEWER.items() if k != "max_tokens"})
    assert count.status == 200 and (await count.json())["input_tokens"] > 0
    assert world.anthropic.requests[-1]["body"]["future_knob_2031"] == {"on": True}
    assert world.anthropic.requests[-1]["body"]["messages"] == NEWER["messages"]
    [row, _] = await world.rows()
    assert row["status"] == 200 and orjson.loads(row["dropped_params"] or "[]") == []


async def test_an_unknown_role_is_the_upstreams_to_judge(world: World) -> None:
    body = {**NEWER, "messages": [*NEWER["messages"], {"role": "narrator", "content": "Meanwhile..."}]}
    resp = await world.client.post("/v1/messages", json=body, headers=HEADERS)
    assert world.anthropic.requests[-1]["body"]["messages"] == body["messages"]   # it reached the upstream as sent
    error = (await resp.json())["error"]
    assert resp.status == 400 and error["message"].startswith("upstream an/claude-sonnet-4-6 rejected the request: ")


async def test_a_system_message_keeps_its_position_for_an_openai_target(world: World) -> None:
    body = {**NEWER, "model": "gpt", "messages": [m for m in NEWER["messages"] if m["role"] != "assistant"]}
    resp = await world.client.post("/v1/messages", json=body, headers=HEADERS)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["content"][0]["text"] == "Echo: Go on"
    sent = world.openai.requests[-1]["body"]
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("system", "You are a coding agent."), ("user", "Fix the failing test"),
        ("system", "# Environment\ncwd: /src"), ("system", "From now on, be brief."), ("user", "Go on")]
    [row] = await world.rows()
    assert orjson.loads(row["dropped_params"]) == ["cache_control", "output_config", "thinking",
                                                   "context_management", "future_knob_2031"]


async def test_a_system_message_after_the_first_turn_is_a_marked_user_part_for_gemini(world: World) -> None:
    body = {**NEWER, "model": "gemini", "messages": [m for m in NEWER["messages"] if m["role"] != "assistant"]}
    resp = await world.client.post("/v1/messages", json=body, headers=HEADERS)
    assert resp.status == 200, await resp.text()
    sent = world.gemini.requests[-1]["body"]
    assert sent["systemInstruction"] == {"parts": [{"text": "You are a coding agent."}]}
    assert sent["contents"] == [{"role": "user", "parts": [
        {"text": "Fix the failing test"}, {"text": "<system>\n# Environment\ncwd: /src\n</system>"},
        {"text": "<system>\nFrom now on, be brief.\n</system>"}, {"text": "Go on"}]}]


async def test_a_block_only_anthropic_can_honour_is_a_400_naming_it_across_formats(world: World) -> None:
    resp = await world.client.post("/v1/messages", json={**NEWER, "model": "gpt"}, headers=HEADERS)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"] == "messages[2].content[1]: 'hologram_2031' blocks exist only on Anthropic targets"
    assert world.openai.requests == []


async def test_a_redact_rule_reads_system_messages(world: World) -> None:
    body = {**NEWER, "messages": [
        {"role": "user", "content": "Write to the owner"},
        {"role": "system", "content": [{"type": "text", "text": f"The owner is {EMAIL}."}]},
        {"role": "system", "content": f"Cc {EMAIL} too."},
    ]}
    resp = await world.client.post("/v1/messages", json=body, headers=HEADERS)
    assert resp.status == 200, await resp.text()
    sent = world.anthropic.requests[-1]["body"]
    assert EMAIL not in orjson.dumps(sent).decode()
    assert sent["messages"][1]["content"][0]["text"] == "The owner is <EMAIL_1>."
    assert sent["messages"][2]["content"] == "Cc <EMAIL_1> too."
    [row] = await world.rows()
    assert EMAIL not in row["request"]
