"""`llmgw serve` as a real process, driven by the official openai SDK's Responses API (what Codex CLI speaks), in
front of a fake OpenAI upstream: passed through to an ``openai`` provider, translated for an OpenAI-compatible one."""

from __future__ import annotations

import sqlite3
from typing import Any

import openai
import pytest

from llmgw.testing import FakeOpenAI
from tests.conftest import CANARY

pytestmark = pytest.mark.e2e

TOOLS: list[Any] = [{"type": "function", "name": "shell", "strict": False, "description": "Runs a command",
                     "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                                    "required": ["command"]}}]


def profile(upstream_url: str) -> dict[str, Any]:
    return {
        "server": {"log_bodies": True},
        "providers": {"openai": {"kind": "openai", "api_key": "env:E2E_OPENAI_KEY", "base_url": upstream_url},
                      "vllm": {"kind": "openai-compatible", "api_key": "env:E2E_OPENAI_KEY",
                               "base_url": upstream_url}},
        "models": {"gpt": {"targets": ["openai/gpt-5"]}, "local": {"targets": ["vllm/llama"]}},
    }


def rows(db: Any) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    out = conn.execute("SELECT * FROM requests ORDER BY time").fetchall()
    conn.close()
    return out


async def test_the_responses_api_against_llmgw_serve(serve: Any) -> None:
    async with FakeOpenAI(api_key=CANARY) as upstream:
        upstream.set_usage(cached=3, reasoning=2)
        server = serve(profile(upstream.base_url), env={"E2E_OPENAI_KEY": CANARY})
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="anything", max_retries=0)

        raw = await client.responses.with_raw_response.create(model="gpt", input="What is a gateway?",
                                                              instructions="Be brief.", store=False)
        response = raw.parse()
        assert response.output_text == "Echo: What is a gateway?"
        assert raw.headers["x-llmgw-target"] == "openai/gpt-5"
        assert upstream.requests[-1]["path"] == "/v1/responses"
        assert upstream.requests[-1]["body"]["store"] is False

        upstream.set_tool_calls([{"name": "shell", "arguments": {"command": "ls"}}], times=1)
        async with client.responses.stream(model="gpt", input="list files", tools=TOOLS) as stream:
            final = await stream.get_final_response()
        [call] = [o for o in final.output if o.type == "function_call"]
        second = await client.responses.create(model="gpt", tools=TOOLS, input=[
            {"role": "user", "content": "list files"},
            {"type": "function_call", "call_id": call.call_id, "name": "shell", "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "a.txt b.txt"},
            {"role": "user", "content": "thanks"}])
        assert second.output_text == "Echo: thanks"

        async with client.responses.stream(model="local", input="stream through vllm") as stream:
            pieces = [e.delta async for e in stream if e.type == "response.output_text.delta"]
            translated = await stream.get_final_response()
        assert len(pieces) > 1 and "".join(pieces) == translated.output_text == "Echo: stream through vllm"
        assert upstream.requests[-1]["path"] == "/v1/chat/completions"

        with pytest.raises(openai.BadRequestError) as info:
            await client.responses.create(model="local", input="again", previous_response_id=response.id)
        assert info.value.body["param"] == "previous_response_id"  # type: ignore[index]
        upstream.fail_next(500)
        with pytest.raises(openai.APIStatusError) as failed:
            await client.responses.create(model="gpt", input="hi")
        assert failed.value.status_code == 502
        await client.close()

    assert server.stop() == 0
    logged = rows(server.db)
    assert [(r["client_format"], r["status"]) for r in logged] == [("responses", s) for s in
                                                                  (200, 200, 200, 200, 400, 502)]
    assert (logged[0]["cached_tokens"], logged[0]["reasoning_tokens"]) == (3, 2)
    assert logged[1]["stream"] == 1 and logged[1]["output_tokens"] > 0
    everything = "".join(server.output) + "".join(str(tuple(r)) for r in logged)
    assert CANARY not in everything
