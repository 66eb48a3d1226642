"""FakeOpenAI's Responses API, read by the official ``openai`` SDK: whole and streamed answers, tool calls, usage
with cached and reasoning tokens, errors on cue and mid-stream failures."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from llmgw.sse import SSEDecoder
from llmgw.testing import FakeOpenAI
from llmgw.testing.fake_openai_responses import responses_answer_for, responses_input_tokens_for

TOOLS: list[Any] = [{"type": "function", "name": "get_weather", "strict": False,
                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]


@pytest.fixture
async def up() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key="sk-fake") as fake:
        yield fake


@pytest.fixture
async def sdk(up: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=up.base_url, api_key="sk-fake", max_retries=0)
    yield client
    await client.close()


def test_the_answer_and_token_count_are_predictable() -> None:
    body = {"instructions": "Be terse.", "input": [
        {"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "second"},
                                                        {"type": "input_text", "text": "turn"}]},
        {"type": "function_call_output", "call_id": "c", "output": "18C"}]}
    assert responses_answer_for(body) == "Echo: second turn"
    assert responses_input_tokens_for(body) == (3 + 3) + (2 + 3) + (1 + 3) + (3 + 3) + (1 + 3)
    assert responses_answer_for({"input": "just this"}) == "Echo: just this"


async def test_a_whole_answer(sdk: openai.AsyncOpenAI, up: FakeOpenAI) -> None:
    response = await sdk.responses.create(model="gpt-5", input="Hello there", instructions="Be terse.")
    assert response.output_text == "Echo: Hello there" and response.status == "completed"
    assert response.model == "gpt-5" and response.id.startswith("resp_") and response.instructions == "Be terse."
    assert response.usage is not None and response.usage.output_tokens == 3
    assert response.usage.input_tokens == responses_input_tokens_for({"input": "Hello there",
                                                                      "instructions": "Be terse."})
    assert up.requests[-1]["path"] == "/v1/responses"


async def test_a_stream_is_the_apis_typed_events(sdk: openai.AsyncOpenAI) -> None:
    async with sdk.responses.stream(model="gpt-5", input="stream these words") as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Echo: stream these words"
    assert final.output_text == "Echo: stream these words"


async def test_tool_calls_whole_and_streamed(sdk: openai.AsyncOpenAI, up: FakeOpenAI) -> None:
    up.set_tool_calls([{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_p"},
                       {"name": "get_weather", "arguments": {"city": "Lyon"}}])
    response = await sdk.responses.create(model="gpt-5", input="Paris?", tools=TOOLS)
    assert [(o.type, o.name, json.loads(o.arguments)) for o in response.output] == [
        ("function_call", "get_weather", {"city": "Paris"}), ("function_call", "get_weather", {"city": "Lyon"})]
    assert response.output[0].call_id == "call_p"
    async with sdk.responses.stream(model="gpt-5", input="Paris?", tools=TOOLS) as stream:
        kinds = [e.type async for e in stream]
        final = await stream.get_final_response()
    assert kinds.count("response.function_call_arguments.delta") > 2
    assert [json.loads(o.arguments) for o in final.output] == [{"city": "Paris"}, {"city": "Lyon"}]


async def test_usage_reports_cached_and_reasoning_tokens_with_a_reasoning_item(sdk: openai.AsyncOpenAI,
                                                                                up: FakeOpenAI) -> None:
    up.set_usage(cached=4, reasoning=7)
    response = await sdk.responses.create(model="gpt-5", input="think about it",
                                          include=["reasoning.encrypted_content"])
    assert [o.type for o in response.output] == ["reasoning", "message"]
    assert response.output[0].encrypted_content
    assert response.usage is not None and response.usage.input_tokens_details.cached_tokens == 4
    assert response.usage.output_tokens_details.reasoning_tokens == 7
    assert response.usage.output_tokens == 7 + 4   # "Echo: think about it": four words
    chat = await sdk.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    assert chat.usage is not None and chat.usage.prompt_tokens_details is not None
    assert chat.usage.prompt_tokens_details.cached_tokens == 4
    assert chat.usage.completion_tokens_details is not None
    assert chat.usage.completion_tokens_details.reasoning_tokens == 7


async def test_max_output_tokens_cuts_the_answer_and_has_the_apis_minimum(sdk: openai.AsyncOpenAI) -> None:
    words = " ".join(f"w{i}" for i in range(30))
    response = await sdk.responses.create(model="gpt-5", input=words, max_output_tokens=16)
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert len(response.output_text.split()) == 16
    with pytest.raises(openai.BadRequestError) as info:
        await sdk.responses.create(model="gpt-5", input="hi", max_output_tokens=3)
    assert info.value.body["param"] == "max_output_tokens"  # type: ignore[index]


async def test_errors_on_cue_and_a_bad_request(sdk: openai.AsyncOpenAI, up: FakeOpenAI) -> None:
    up.fail_next(429, retry_after=2)
    with pytest.raises(openai.RateLimitError) as info:
        await sdk.responses.create(model="gpt-5", input="hi")
    assert info.value.response.headers["retry-after"] == "2"
    up.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        await sdk.responses.create(model="gpt-5", input="hi", stream=True)
    with pytest.raises(openai.BadRequestError) as bad:
        await sdk.responses.create(model="gpt-5", input=42)  # type: ignore[arg-type]
    assert bad.value.body["param"] == "input"  # type: ignore[index]


async def test_a_stream_broken_mid_way_ends_with_an_error_event(up: FakeOpenAI) -> None:
    up.fail_mid_stream(after_events=3, code="server_error", message="boom")
    async with aiohttp.ClientSession() as session, session.post(
            up.base_url + "/responses", json={"model": "gpt-5", "input": "hi", "stream": True},
            headers={"Authorization": "Bearer sk-fake"}) as resp:
        raw = await resp.read()
    events = [json.loads(m.data) for m in SSEDecoder().feed(raw)]
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.output_item.added",
                                           "error"]
    assert events[-1] == {"type": "error", "code": "server_error", "message": "boom", "param": None,
                          "sequence_number": 3}


async def test_input_tokens_counts_like_the_answers_usage(sdk: openai.AsyncOpenAI) -> None:
    counted = await sdk.responses.input_tokens.count(model="gpt-5", input="count me", instructions="x")
    assert counted.input_tokens == responses_input_tokens_for({"input": "count me", "instructions": "x"})
