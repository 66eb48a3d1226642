"""The response cache on the OpenAI Responses API format, in the real app: a repeated request is answered from the
cache in the Responses format (whole or streamed), whether the first answer came from an OpenAI upstream (passed
through) or a translated one; what the canonical body does not carry (reasoning items, settings) partitions it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from llmgw.profile import parse_profile
from llmgw.proxy.app import make_app
from llmgw.sse import SSEDecoder
from llmgw.testing import FakeOpenAI


@pytest.fixture
async def setup(aiohttp_client: Any, tmp_path: Path) -> AsyncIterator[tuple[TestClient, FakeOpenAI]]:
    async with FakeOpenAI() as oa:
        profile = parse_profile({
            "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
            "providers": {"oa": {"kind": "openai", "base_url": oa.base_url, "api_key": "sk-up"},
                          "vllm": {"kind": "openai-compatible", "base_url": oa.base_url}},
            "models": {"gpt": {"targets": ["oa/gpt-5"]}, "local": {"targets": ["vllm/llama"]}},
            "cache": {"semantic": False}})
        client = await aiohttp_client(make_app(profile))
        yield client, oa
        await client.close()


def body(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "instructions": "Be terse.",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "What is a gateway?"}]}], **extra}


@pytest.mark.parametrize("model", ["gpt", "local"])
async def test_a_repeat_is_answered_from_the_cache_in_the_responses_format(
        setup: tuple[TestClient, FakeOpenAI], model: str) -> None:
    client, oa = setup
    first = await client.post("/v1/responses", json=body(model))
    assert first.headers["x-llmgw-cache"] == "miss"
    asked = len(oa.requests)
    again = await client.post("/v1/responses", json=body(model))
    assert again.headers["x-llmgw-cache"] == "hit" and len(oa.requests) == asked
    answer = await again.json()
    assert answer["object"] == "response" and answer["status"] == "completed"
    assert answer["output"][0]["content"][0]["text"] == "Echo: What is a gateway?"
    assert answer["usage"]["input_tokens"] == (await first.json())["usage"]["input_tokens"]
    streamed = await client.post("/v1/responses", json=body(model, stream=True))
    assert streamed.headers["x-llmgw-cache"] == "hit" and len(oa.requests) == asked
    events = [orjson.loads(m.data) for m in SSEDecoder().feed(await streamed.read())]
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == \
        "Echo: What is a gateway?"
    assert events[-1]["type"] == "response.completed"


async def test_a_function_call_answer_is_replayed_as_a_function_call(setup: tuple[TestClient, FakeOpenAI]) -> None:
    client, oa = setup
    oa.set_tool_calls([{"name": "lookup", "arguments": {"q": "gateway"}, "id": "call_9"}])
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
    await client.post("/v1/responses", json=body("gpt", tools=tools))
    again = await client.post("/v1/responses", json=body("gpt", tools=tools))
    assert again.headers["x-llmgw-cache"] == "hit"
    [call] = (await again.json())["output"]
    assert (call["type"], call["call_id"], orjson.loads(call["arguments"])) == ("function_call", "call_9",
                                                                                 {"q": "gateway"})


@pytest.mark.parametrize("extra", [
    {"reasoning": {"effort": "high"}},
    {"input": [{"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA-other"},
               *body("gpt")["input"]]},
    {"previous_response_id": "resp_1"},
])
async def test_what_the_canonical_body_leaves_out_partitions_the_cache(setup: tuple[TestClient, FakeOpenAI],
                                                                       extra: dict[str, Any]) -> None:
    client, _ = setup
    await client.post("/v1/responses", json=body("gpt"))
    other = await client.post("/v1/responses", json={**body("gpt"), **extra})
    assert other.headers["x-llmgw-cache"] == "miss"
