"""The conformance matrix's Responses column: the official ``openai`` SDK's ``client.responses`` (the API Codex CLI
speaks) as the client, through the gateway, to every upstream kind (see matrix.py and docs/compatibility.md). An
OpenAI upstream gets the Responses request itself; the others its Chat Completions translation."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.types.responses import Response

from .conftest import World
from .matrix import FEATURES, UPSTREAMS
from .test_matrix import (
    TOOL_SCHEMA,
    arm_tool_calls,
    expected_answer,
    expected_calls,
    last_request,
    sent_roles,
    sent_system,
    sent_tool_names,
)

TOOLS: list[Any] = [{"type": "function", "name": "get_weather", "parameters": TOOL_SCHEMA, "strict": False}]
LONG = " ".join(f"word{i}" for i in range(24))   # more words than the smallest max_output_tokens the API takes


def native(upstream: str) -> bool:
    """Whether the upstream speaks the Responses API itself (it then gets the client's request untranslated)."""
    return upstream == "openai"


def sdk(world: World) -> Any:
    return world.sdk("openai")


async def ask(world: World, upstream: str, messages: list[dict[str, str]], **extra: Any) -> Response:
    if extra.pop("tools", False):
        extra["tools"] = TOOLS
    response: Response = await sdk(world).responses.create(model=upstream, input=messages, **extra)
    return response


async def ask_stream(world: World, upstream: str, messages: list[dict[str, str]],
                     **extra: Any) -> tuple[list[str], Response]:
    """One streamed call: (text pieces, the final response as the SDK assembled it)."""
    if extra.pop("tools", False):
        extra["tools"] = TOOLS
    async with sdk(world).responses.stream(model=upstream, input=messages, **extra) as stream:
        pieces = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    return pieces, final


def calls_of(response: Response) -> list[tuple[str, dict[str, Any]]]:
    return [(o.name, json.loads(o.arguments)) for o in response.output if o.type == "function_call"]


# --- the features ---------------------------------------------------------------------------------------------


async def check_text(world: World, upstream: str) -> None:
    answer = await ask(world, upstream, [{"role": "user", "content": "Hello gateway"}])
    assert answer.output_text == expected_answer(upstream, "Hello gateway") and answer.status == "completed"


async def check_system(world: World, upstream: str) -> None:
    answer = await ask(world, upstream, [{"role": "user", "content": "Hi"}], instructions="You are terse.")
    assert answer.output_text == expected_answer(upstream, "Hi")
    body = last_request(world, upstream)
    if body is not None:
        assert (body["instructions"] if native(upstream) else sent_system(upstream, body)) == "You are terse."


async def check_multi_turn(world: World, upstream: str) -> None:
    messages = [{"role": "user", "content": "First question"}, {"role": "assistant", "content": "First answer"},
                {"role": "user", "content": "Second question"}]
    answer = await ask(world, upstream, messages)
    assert answer.output_text == expected_answer(upstream, "Second question")
    body = last_request(world, upstream)
    if body is not None:
        roles = [i["role"] for i in body["input"]] if native(upstream) else sent_roles(upstream, body)
        assert roles == ["user", "model" if upstream == "gemini" else "assistant", "user"]


async def check_stream(world: World, upstream: str) -> None:
    pieces, final = await ask_stream(world, upstream, [{"role": "user", "content": "stream these words to me please"}])
    assert len(pieces) >= 2
    assert "".join(pieces) == final.output_text == expected_answer(upstream, "stream these words to me please")


async def check_tools(world: World, upstream: str) -> None:
    arm_tool_calls(world, upstream)
    answer = await ask(world, upstream, [{"role": "user", "content": "Paris"}], tools=True)
    assert calls_of(answer) == expected_calls(upstream) and answer.status == "completed"
    assert all(o.call_id for o in answer.output if o.type == "function_call")
    body = last_request(world, upstream)
    if body is not None:
        names = [t["name"] for t in body["tools"]] if native(upstream) else sent_tool_names(upstream, body)
        assert names == ["get_weather"]


async def check_streamed_tools(world: World, upstream: str) -> None:
    arm_tool_calls(world, upstream)
    _, final = await ask_stream(world, upstream, [{"role": "user", "content": "Paris"}], tools=True)
    assert calls_of(final) == expected_calls(upstream) and final.status == "completed"


async def check_stop_reason(world: World, upstream: str) -> None:
    answer = await ask(world, upstream, [{"role": "user", "content": LONG}], max_output_tokens=16)
    assert expected_answer(upstream, LONG).startswith(answer.output_text) and answer.output_text
    assert answer.status == "incomplete" and answer.incomplete_details is not None
    assert answer.incomplete_details.reason == "max_output_tokens"


async def check_usage(world: World, upstream: str) -> None:
    answer = await ask(world, upstream, [{"role": "user", "content": "count my tokens"}])
    _, final = await ask_stream(world, upstream, [{"role": "user", "content": "count these too"}])
    told = []
    for response in (answer, final):
        assert response.usage is not None
        assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
        told.append((response.usage.input_tokens, response.usage.output_tokens))
    logged = [(r["input_tokens"], r["output_tokens"]) for r in await world.rows()]
    assert logged == told
    assert all(i > 0 and o > 0 for i, o in told)


async def check_error(world: World, upstream: str) -> None:
    fake = world.fake(upstream)
    alias = "mock-error" if upstream == "mock" else upstream
    if fake is not None:
        fake.fail_next(429)
    with pytest.raises(openai.RateLimitError) as info:
        await ask(world, alias, [{"role": "user", "content": "hi"}])
    assert info.value.status_code == 429
    assert int(info.value.response.headers["retry-after"]) >= 1
    assert info.value.response.json()["error"]["type"] == "rate_limit_error"


CHECKS = {
    "text": check_text, "system": check_system, "multi-turn": check_multi_turn, "stream": check_stream,
    "tools": check_tools, "streamed tools": check_streamed_tools, "stop reason": check_stop_reason,
    "usage": check_usage, "error": check_error,
}
CELLS = [(u, f) for u in UPSTREAMS for f in FEATURES]


@pytest.mark.parametrize(("upstream", "feature"), CELLS, ids=["-".join(c) for c in CELLS])
async def test_cell(world: World, upstream: str, feature: str) -> None:
    await CHECKS[feature](world, upstream)


def test_every_feature_has_a_check() -> None:
    assert set(CHECKS) == set(FEATURES)
