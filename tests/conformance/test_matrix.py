"""The conformance matrix: client SDK x upstream kind x feature (see matrix.py and docs/compatibility.md)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

from .conftest import World
from .matrix import CLIENTS, DOC, FEATURES, UPSTREAMS, render

TOOL_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CALLS = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Lyon"})]


def expected_answer(upstream: str, user_text: str) -> str:
    return ("Mock answer: " if upstream == "mock" else "Echo: ") + user_text


def expected_calls(upstream: str) -> list[tuple[str, dict[str, Any]]]:
    return CALLS[:1] if upstream == "mock" else CALLS  # the mock makes one call, built from the schema


def arm_tool_calls(world: World, upstream: str) -> None:
    fake = world.fake(upstream)
    if upstream in ("openai", "openai-compatible"):
        fake.set_tool_calls([{"name": n, "arguments": json.dumps(a)} for n, a in CALLS])
    elif upstream == "anthropic":
        fake.set_tool_uses([{"name": n, "input": a} for n, a in CALLS])
    elif upstream == "gemini":
        fake.set_function_calls([{"name": n, "args": a} for n, a in CALLS])


def last_request(world: World, upstream: str) -> dict[str, Any] | None:
    fake = world.fake(upstream)
    return None if fake is None else fake.requests[-1]["body"]


def sent_system(upstream: str, body: dict[str, Any]) -> str:
    if upstream in ("openai", "openai-compatible"):
        return next(m["content"] for m in body["messages"] if m["role"] == "system")
    if upstream == "anthropic":
        system = body["system"]
        return system if isinstance(system, str) else " ".join(b["text"] for b in system)
    return " ".join(p["text"] for p in body["systemInstruction"]["parts"])


def sent_roles(upstream: str, body: dict[str, Any]) -> list[str]:
    if upstream == "gemini":
        return [c["role"] for c in body["contents"]]
    return [m["role"] for m in body["messages"] if m["role"] != "system"]


def sent_tool_names(upstream: str, body: dict[str, Any]) -> list[str]:
    if upstream == "anthropic":
        return [t["name"] for t in body["tools"]]
    if upstream == "gemini":
        return [d["name"] for t in body["tools"] for d in t["functionDeclarations"]]
    return [t["function"]["name"] for t in body["tools"]]


async def ask(world: World, client: str, upstream: str, messages: list[dict[str, Any]], *,
              system: str | None = None, **extra: Any) -> Any:
    """One non-streamed call in the client's own SDK."""
    sdk = world.sdk(client)
    if client == "openai":
        if system is not None:
            messages = [{"role": "system", "content": system}, *messages]
        if "tools" in extra:
            extra["tools"] = [{"type": "function", "function": {"name": "get_weather", "parameters": TOOL_SCHEMA}}]
        return await sdk.chat.completions.create(model=upstream, messages=messages, **extra)
    if system is not None:
        extra["system"] = system
    if "tools" in extra:
        extra["tools"] = [{"name": "get_weather", "input_schema": TOOL_SCHEMA}]
    return await sdk.messages.create(model=upstream, messages=messages, max_tokens=extra.pop("max_tokens", 256),
                                     **extra)


async def ask_stream(world: World, client: str, upstream: str, messages: list[dict[str, Any]],
                     **extra: Any) -> tuple[list[str], Any]:
    """One streamed call: (text pieces, the final message as the SDK assembled it)."""
    sdk = world.sdk(client)
    if client == "openai":
        if "tools" in extra:
            extra["tools"] = [{"type": "function", "function": {"name": "get_weather", "parameters": TOOL_SCHEMA}}]
        stream = await sdk.chat.completions.create(model=upstream, messages=messages, stream=True,
                                                   stream_options={"include_usage": True}, **extra)
        pieces: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish = usage = None
        async for chunk in stream:
            usage = chunk.usage or usage
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                for call in choice.delta.tool_calls or []:
                    slot = calls.setdefault(call.index, {"name": "", "arguments": ""})
                    if call.function and call.function.name:
                        slot["name"] = call.function.name
                    if call.function and call.function.arguments:
                        slot["arguments"] += call.function.arguments
                finish = choice.finish_reason or finish
        return pieces, {"calls": [calls[i] for i in sorted(calls)], "finish": finish, "usage": usage}
    if "tools" in extra:
        extra["tools"] = [{"name": "get_weather", "input_schema": TOOL_SCHEMA}]
    async with sdk.messages.stream(model=upstream, messages=messages, max_tokens=256, **extra) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    return pieces, final


def text_of(client: str, answer: Any) -> str:
    if client == "openai":
        return answer.choices[0].message.content or ""
    return "".join(b.text for b in answer.content if b.type == "text")


def calls_of(client: str, answer: Any) -> list[tuple[str, dict[str, Any]]]:
    if client == "openai":
        return [(c.function.name, json.loads(c.function.arguments)) for c in answer.choices[0].message.tool_calls]
    return [(b.name, b.input) for b in answer.content if b.type == "tool_use"]


# --- the features ---------------------------------------------------------------------------------------------


async def check_text(world: World, client: str, upstream: str) -> None:
    answer = await ask(world, client, upstream, [{"role": "user", "content": "Hello gateway"}])
    assert text_of(client, answer) == expected_answer(upstream, "Hello gateway")


async def check_system(world: World, client: str, upstream: str) -> None:
    answer = await ask(world, client, upstream, [{"role": "user", "content": "Hi"}], system="You are terse.")
    assert text_of(client, answer) == expected_answer(upstream, "Hi")
    body = last_request(world, upstream)
    if body is not None:
        assert sent_system(upstream, body) == "You are terse."


async def check_multi_turn(world: World, client: str, upstream: str) -> None:
    messages = [{"role": "user", "content": "First question"}, {"role": "assistant", "content": "First answer"},
                {"role": "user", "content": "Second question"}]
    answer = await ask(world, client, upstream, messages)
    assert text_of(client, answer) == expected_answer(upstream, "Second question")
    body = last_request(world, upstream)
    if body is not None:
        model_role = "model" if upstream == "gemini" else "assistant"
        assert sent_roles(upstream, body) == ["user", model_role, "user"]


async def check_stream(world: World, client: str, upstream: str) -> None:
    pieces, _ = await ask_stream(world, client, upstream,
                                 [{"role": "user", "content": "stream these words to me please"}])
    assert len(pieces) >= 2
    assert "".join(pieces) == expected_answer(upstream, "stream these words to me please")


async def check_tools(world: World, client: str, upstream: str) -> None:
    arm_tool_calls(world, upstream)
    answer = await ask(world, client, upstream, [{"role": "user", "content": "Paris"}], tools=True)
    assert calls_of(client, answer) == expected_calls(upstream)
    if client == "openai":
        assert answer.choices[0].finish_reason == "tool_calls"
    else:
        assert answer.stop_reason == "tool_use"
    body = last_request(world, upstream)
    if body is not None:
        assert sent_tool_names(upstream, body) == ["get_weather"]


async def check_streamed_tools(world: World, client: str, upstream: str) -> None:
    arm_tool_calls(world, upstream)
    _, final = await ask_stream(world, client, upstream, [{"role": "user", "content": "Paris"}], tools=True)
    if client == "openai":
        assert [(c["name"], json.loads(c["arguments"])) for c in final["calls"]] == expected_calls(upstream)
        assert final["finish"] == "tool_calls"
    else:
        assert [(b.name, b.input) for b in final.content if b.type == "tool_use"] == expected_calls(upstream)
        assert final.stop_reason == "tool_use"


async def check_stop_reason(world: World, client: str, upstream: str) -> None:
    answer = await ask(world, client, upstream, [{"role": "user", "content": "one two three four five six"}],
                       max_tokens=3)
    text = text_of(client, answer)
    assert expected_answer(upstream, "one two three four five six").startswith(text) and text
    if client == "openai":
        assert answer.choices[0].finish_reason == "length"
    else:
        assert answer.stop_reason == "max_tokens"


def _client_usage(client: str, usage: Any) -> tuple[int, int]:
    if client == "openai":
        return usage.prompt_tokens, usage.completion_tokens
    cached = (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)
    return usage.input_tokens + cached, usage.output_tokens


async def check_usage(world: World, client: str, upstream: str) -> None:
    answer = await ask(world, client, upstream, [{"role": "user", "content": "count my tokens"}])
    _, final = await ask_stream(world, client, upstream, [{"role": "user", "content": "count these too"}])
    told = [_client_usage(client, answer.usage),
            _client_usage(client, final["usage"] if client == "openai" else final.usage)]
    logged = [(r["input_tokens"], r["output_tokens"]) for r in await world.rows()]
    assert logged == told
    assert all(i > 0 and o > 0 for i, o in told)


async def check_error(world: World, client: str, upstream: str) -> None:
    fake = world.fake(upstream)
    alias = "mock-error" if upstream == "mock" else upstream
    if fake is not None:
        fake.fail_next(429)
    with pytest.raises((openai.RateLimitError, anthropic.RateLimitError)) as info:
        await ask(world, client, alias, [{"role": "user", "content": "hi"}])
    assert info.value.status_code == 429
    assert int(info.value.response.headers["retry-after"]) >= 1
    body = info.value.response.json()
    if client == "openai":
        assert body["error"]["type"] == "rate_limit_error"
    else:
        assert body == {"type": "error", "error": {"type": "rate_limit_error", "message": body["error"]["message"]}}


CHECKS = {
    "text": check_text, "system": check_system, "multi-turn": check_multi_turn, "stream": check_stream,
    "tools": check_tools, "streamed tools": check_streamed_tools, "stop reason": check_stop_reason,
    "usage": check_usage, "error": check_error,
}
CELLS = [(c, u, f) for c in CLIENTS if c in ("openai", "anthropic") for u in UPSTREAMS for f in FEATURES]
# (the other columns' cells: test_matrix_*.py)


@pytest.mark.parametrize(("client", "upstream", "feature"), CELLS, ids=["-".join(c) for c in CELLS])
async def test_cell(world: World, client: str, upstream: str, feature: str) -> None:
    await CHECKS[feature](world, client, upstream)


def test_every_feature_has_a_check() -> None:
    assert set(CHECKS) == set(FEATURES)


def test_compatibility_page_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), "run: python -m tests.conformance.matrix"
