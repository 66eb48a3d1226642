"""`llmgw serve` as a process, driven by the official anthropic SDK the way Claude Code drives a gateway:
same-format requests pass through untouched (unknown fields and anthropic-beta included)."""

from __future__ import annotations

import sqlite3
from typing import Any

import anthropic
import pytest

from llmgw.testing.fake_anthropic import FakeAnthropic, anthropic_answer_for
from tests.conftest import CANARY

pytestmark = pytest.mark.e2e

UP_KEY = CANARY


@pytest.fixture
async def upstream() -> Any:
    async with FakeAnthropic(api_key=UP_KEY) as fake:
        yield fake


async def test_anthropic_sdk_against_llmgw_serve(serve: Any, upstream: FakeAnthropic) -> None:
    server = serve({"providers": {"claude": {"kind": "anthropic", "api_key": "env:E2E_ANT_KEY",
                                             "base_url": upstream.base_url},
                                  "mock": {"kind": "mock"}},
                    "models": {"sonnet": {"targets": ["claude/claude-sonnet-4-5"]},
                               "local": {"targets": ["mock/mock-model"]}}},
                   env={"E2E_ANT_KEY": UP_KEY})
    client = anthropic.AsyncAnthropic(base_url=server.url, api_key="client-key", max_retries=0)
    messages = [{"role": "user", "content": [{"type": "text", "text": "Explain gateways",
                                              "cache_control": {"type": "ephemeral"}}]}]
    message = await client.messages.create(
        model="sonnet", max_tokens=2048, messages=messages, system=[{"type": "text", "text": "Be brief."}],
        metadata={"user_id": "user-1"}, thinking={"type": "enabled", "budget_tokens": 1024},
        extra_body={"context_management": {"edits": []}},
        extra_headers={"anthropic-beta": "fine-grained-tool-streaming-2025-05-14"})
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[1].text == anthropic_answer_for(messages)
    sent = upstream.requests[-1]
    assert sent["body"]["model"] == "claude-sonnet-4-5"
    assert sent["body"]["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent["body"]["context_management"] == {"edits": []}
    assert sent["body"]["messages"] == messages and sent["body"]["metadata"] == {"user_id": "user-1"}
    assert sent["headers"]["anthropic-beta"] == "fine-grained-tool-streaming-2025-05-14"
    assert sent["headers"]["x-api-key"] == UP_KEY

    async with client.messages.stream(model="sonnet", max_tokens=64,
                                      messages=[{"role": "user", "content": "stream it"}]) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Echo: stream it" and final.usage.output_tokens == 3

    count = await client.messages.count_tokens(model="sonnet", messages=[{"role": "user", "content": "hi"}])
    assert count.input_tokens > 0 and upstream.requests[-1]["path"] == "/v1/messages/count_tokens"
    local = await client.messages.count_tokens(model="local", messages=[{"role": "user", "content": "hi"}])
    assert local.input_tokens > 0
    assert sorted([m.id async for m in client.models.list()]) == ["local", "sonnet"]

    upstream.fail_next(529)
    with pytest.raises(anthropic.APIStatusError) as info:
        await client.messages.create(model="sonnet", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502
    assert info.value.body["type"] == "error"
    await client.close()

    assert server.stop() == 0
    conn = sqlite3.connect(server.db)
    rows = conn.execute("SELECT status, client_format, output_tokens, endpoint, cost_usd FROM requests"
                        " ORDER BY time").fetchall()
    everything = "".join(server.output) + repr(conn.execute("SELECT * FROM requests").fetchall())
    conn.close()
    assert [(s, f, e) for s, f, _, e, _ in rows] == [
        (200, "anthropic", "chat"), (200, "anthropic", "chat"), (200, "anthropic", "count_tokens"),
        (200, "anthropic", "count_tokens"), (502, "anthropic", "chat")]
    assert rows[1][2] == 3
    assert rows[2][4] == rows[3][4] == 0.0   # counting tokens is logged, never billed
    assert UP_KEY not in everything


async def test_a_request_newer_than_the_gateway_passes_through_llmgw_serve(serve: Any,
                                                                            upstream: FakeAnthropic) -> None:
    """What current Claude Code sends — a system-role message after the first user turn, per-turn settings, beta
    headers — plus a block type and a field no table lists: the official SDK's request reaches the upstream as
    it was sent, and the streamed answer comes back."""
    server = serve({"providers": {"claude": {"kind": "anthropic", "api_key": "env:E2E_ANT_KEY",
                                             "base_url": upstream.base_url}},
                    "models": {"sonnet": {"targets": ["claude/claude-sonnet-4-6"]}}},
                   env={"E2E_ANT_KEY": UP_KEY})
    client = anthropic.AsyncAnthropic(base_url=server.url, api_key="client-key", max_retries=0)
    messages: list[Any] = [
        {"role": "user", "content": [{"type": "text", "text": "Fix the failing test"}]},
        {"role": "system", "content": [{"type": "text", "text": "# Environment\ncwd: /src",
                                        "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Looking."},
                                          {"type": "hologram_2031", "frames": [1, 2]}]},
        {"role": "system", "content": "Be brief.", "clear_at": "next_user_message"},
        {"role": "user", "content": "Go on"},
    ]
    extra = {"output_config": {"effort": "medium"}, "future_knob_2031": {"on": True}}
    async with client.messages.stream(
            model="sonnet", max_tokens=1024, messages=messages, thinking={"type": "adaptive"}, extra_body=extra,
            extra_headers={"anthropic-beta": "per-turn-control-2026-07-01"}) as stream:
        final = await stream.get_final_message()
    assert final.content[-1].type == "text" and final.content[-1].text == "Echo: Go on"
    sent = upstream.requests[-1]
    assert sent["body"]["messages"] == messages
    assert sent["body"]["output_config"] == extra["output_config"]
    assert sent["body"]["future_knob_2031"] == {"on": True}
    assert sent["headers"]["anthropic-beta"] == "per-turn-control-2026-07-01"
    await client.close()
    assert server.stop() == 0
