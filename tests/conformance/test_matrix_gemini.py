"""The conformance matrix's Gemini column: the official google-genai SDK (what Gemini CLI's own SDK mirrors) as the
client, through the gateway, to every upstream kind (see matrix.py and docs/compatibility.md)."""

from __future__ import annotations

from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from .conftest import World
from .matrix import FEATURES, UPSTREAMS
from .test_matrix import (
    arm_tool_calls,
    expected_answer,
    expected_calls,
    last_request,
    sent_roles,
    sent_system,
    sent_tool_names,
)

CLIENT = "gemini"
# Gemini's own Schema dialect (upper-case types): a foreign target gets it as a JSON schema.
WEATHER = types.FunctionDeclaration(name="get_weather", parameters={
    "type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]})


def sdk(world: World) -> genai.Client:
    """A google-genai client pointed at the gateway, closed with the world's other SDK clients."""
    client = genai.Client(api_key="client-key", http_options=types.HttpOptions(base_url=world.url))
    world.sdks.append(_Closer(client))
    return client


class _Closer:
    def __init__(self, client: genai.Client) -> None:
        self.client = client

    async def close(self) -> None:
        await self.client.aio.aclose()


def contents(messages: list[dict[str, str]]) -> list[types.Content]:
    return [types.Content(role="model" if m["role"] == "assistant" else "user", parts=[types.Part(text=m["content"])])
            for m in messages]


def config(*, system: str | None = None, tools: bool = False, max_tokens: int | None = None
           ) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(system_instruction=system, max_output_tokens=max_tokens,
                                       tools=[types.Tool(function_declarations=[WEATHER])] if tools else None)


async def ask(world: World, upstream: str, messages: list[dict[str, str]], **options: Any
              ) -> types.GenerateContentResponse:
    return await sdk(world).aio.models.generate_content(model=upstream, contents=contents(messages),
                                                        config=config(**options))


async def ask_stream(world: World, upstream: str, messages: list[dict[str, str]], **options: Any
                     ) -> list[types.GenerateContentResponse]:
    stream = await sdk(world).aio.models.generate_content_stream(model=upstream, contents=contents(messages),
                                                                 config=config(**options))
    return [chunk async for chunk in stream]


def calls_of(chunks: list[types.GenerateContentResponse]) -> list[tuple[str, dict[str, Any]]]:
    return [(c.name or "", dict(c.args or {})) for chunk in chunks for c in chunk.function_calls or []]


def told(usage: types.GenerateContentResponseUsageMetadata | None) -> tuple[int, int]:
    assert usage is not None
    return usage.prompt_token_count or 0, (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)


# --- the features ---------------------------------------------------------------------------------------------


async def check_text(world: World, upstream: str) -> None:
    answer = await ask(world, upstream, [{"role": "user", "content": "Hello gateway"}])
    assert answer.text == expected_answer(upstream, "Hello gateway")


async def check_system(world: World, upstream: str) -> None:
    answer = await ask(world, upstream, [{"role": "user", "content": "Hi"}], system="You are terse.")
    assert answer.text == expected_answer(upstream, "Hi")
    body = last_request(world, upstream)
    if body is not None:
        assert sent_system(upstream, body) == "You are terse."


async def check_multi_turn(world: World, upstream: str) -> None:
    messages = [{"role": "user", "content": "First question"}, {"role": "assistant", "content": "First answer"},
                {"role": "user", "content": "Second question"}]
    answer = await ask(world, upstream, messages)
    assert answer.text == expected_answer(upstream, "Second question")
    body = last_request(world, upstream)
    if body is not None:
        assert sent_roles(upstream, body) == ["user", "model" if upstream == "gemini" else "assistant", "user"]


async def check_stream(world: World, upstream: str) -> None:
    chunks = await ask_stream(world, upstream, [{"role": "user", "content": "stream these words to me please"}])
    pieces = [c.text for c in chunks if c.text]
    assert len(pieces) >= 2
    assert "".join(pieces) == expected_answer(upstream, "stream these words to me please")


async def check_tools(world: World, upstream: str) -> None:
    arm_tool_calls(world, upstream)
    answer = await ask(world, upstream, [{"role": "user", "content": "Paris"}], tools=True)
    assert calls_of([answer]) == expected_calls(upstream)
    assert answer.candidates and answer.candidates[0].finish_reason == types.FinishReason.STOP
    body = last_request(world, upstream)
    if body is not None:
        assert sent_tool_names(upstream, body) == ["get_weather"]


async def check_streamed_tools(world: World, upstream: str) -> None:
    arm_tool_calls(world, upstream)
    chunks = await ask_stream(world, upstream, [{"role": "user", "content": "Paris"}], tools=True)
    assert calls_of(chunks) == expected_calls(upstream)
    last = chunks[-1].candidates
    assert last and last[0].finish_reason == types.FinishReason.STOP


async def check_stop_reason(world: World, upstream: str) -> None:
    answer = await ask(world, upstream, [{"role": "user", "content": "one two three four five six"}], max_tokens=3)
    text = answer.text or ""
    assert expected_answer(upstream, "one two three four five six").startswith(text) and text
    assert answer.candidates and answer.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS


async def check_usage(world: World, upstream: str) -> None:
    answer = await ask(world, upstream, [{"role": "user", "content": "count my tokens"}])
    chunks = await ask_stream(world, upstream, [{"role": "user", "content": "count these too"}])
    reported = [told(answer.usage_metadata), told(chunks[-1].usage_metadata)]
    logged = [(r["input_tokens"], r["output_tokens"]) for r in await world.rows()]
    assert logged == reported
    assert all(i > 0 and o > 0 for i, o in reported)


async def check_error(world: World, upstream: str) -> None:
    fake = world.fake(upstream)
    alias = "mock-error" if upstream == "mock" else upstream
    if fake is not None:
        fake.fail_next(429)
    with pytest.raises(errors.ClientError) as info:
        await ask(world, alias, [{"role": "user", "content": "hi"}])
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    assert int(info.value.response.headers["retry-after"]) >= 1
    retry = [d for d in info.value.details["error"]["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
    assert retry and retry[0]["retryDelay"].endswith("s")


CHECKS = {
    "text": check_text, "system": check_system, "multi-turn": check_multi_turn, "stream": check_stream,
    "tools": check_tools, "streamed tools": check_streamed_tools, "stop reason": check_stop_reason,
    "usage": check_usage, "error": check_error,
}
CELLS = [(u, f) for u in UPSTREAMS for f in FEATURES]


@pytest.mark.parametrize(("upstream", "feature"), CELLS, ids=[f"{CLIENT}-{u}-{f}" for u, f in CELLS])
async def test_cell(world: World, upstream: str, feature: str) -> None:
    await CHECKS[feature](world, upstream)


def test_every_feature_has_a_check() -> None:
    assert set(CHECKS) == set(FEATURES)
