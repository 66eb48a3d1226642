"""The fake Anthropic upstream (llmgw.testing.fake_anthropic), driven by the real anthropic SDK and by raw HTTP."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest
from anthropic import AsyncAnthropic
from multidict import CIMultiDict

from llmgw.testing.fake_anthropic import (
    ANTHROPIC_COUNT_TOKENS_SAMPLE,
    ANTHROPIC_ERROR_SAMPLE,
    ANTHROPIC_MESSAGE_SAMPLE,
    ANTHROPIC_MODELS_SAMPLE,
    ANTHROPIC_STREAM_ERROR_SAMPLE,
    ANTHROPIC_STREAM_SAMPLE,
    FakeAnthropic,
    anthropic_answer_for,
    anthropic_input_tokens_for,
    make_fake_anthropic_app,
)

KEY = "sk-ant-test-123456"
MODEL = "claude-sonnet-4-6"
MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "hello there big world"}]
WEATHER = {"name": "get_weather", "input": {"city": "Paris", "unit": "celsius"}}
VERSION = {"anthropic-version": "2023-06-01"}


@pytest.fixture
async def up() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(api_key=KEY) as fake:
        yield fake


@pytest.fixture
async def client(up: FakeAnthropic) -> AsyncIterator[AsyncAnthropic]:
    async with AsyncAnthropic(base_url=up.base_url, api_key=KEY, max_retries=0) as sdk:
        yield sdk


def shape(value: Any) -> Any:
    """Keys (recursively) and JSON kinds, ignoring values; a list's shape is its first item's."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def body_of(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 100, "messages": MESSAGES, **fields}


async def raw_request(
    up: FakeAnthropic,
    path: str,
    body: Any = None,
    *,
    method: str = "POST",
    key: str | None = KEY,
    headers: Mapping[str, str] | CIMultiDict[str] | None = None,
) -> tuple[int, Mapping[str, str], bytes]:
    sent: CIMultiDict[str] = CIMultiDict(VERSION)
    if key:
        sent["x-api-key"] = key
    if headers is not None:
        for name, value in headers.items():
            sent.add(name, value)
    data: Any = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
    if data is not None and len(data) > 1024 * 1024:
        data = io.BytesIO(data)  # aiohttp warns about large raw bodies
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, up.base_url + path, data=data, headers=sent) as resp,
    ):
        return resp.status, resp.headers.copy(), await resp.read()  # case-insensitive


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) for each event; every event is exactly an ``event:`` line and a ``data:`` line."""
    text = raw.decode()
    assert text.endswith("\n\n")
    events = []
    for chunk in text.split("\n\n")[:-1]:
        name_line, data_line = chunk.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        events.append((name_line[len("event: ") :], json.loads(data_line[len("data: ") :])))
    return events


def words(text: str) -> int:
    return len(text.split())


# -- messages, whole -----------------------------------------------------------------------------------------


async def test_create_text_via_sdk(up: FakeAnthropic, client: AsyncAnthropic) -> None:
    result = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]

    expected = anthropic_answer_for(MESSAGES)
    assert expected == "Echo: hello there big world"
    assert result.id.startswith("msg_") and len(result.id) == len("msg_") + 24
    assert result.type == "message" and result.role == "assistant" and result.model == MODEL
    assert len(result.content) == 1
    block = result.content[0]
    assert block.type == "text" and block.text == expected
    assert result.stop_reason == "end_turn" and result.stop_sequence is None
    assert result.usage.input_tokens == anthropic_input_tokens_for(body_of()) == 6 + 3
    assert result.usage.output_tokens == words(expected)
    assert result.usage.cache_read_input_tokens == 0 and result.usage.cache_creation_input_tokens == 0
    assert result._request_id is not None and result._request_id.startswith("req_")


async def test_message_has_the_recorded_shape(up: FakeAnthropic) -> None:
    status, headers, raw = await raw_request(up, "/v1/messages", body_of())
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert headers["request-id"].startswith("req_")
    body = orjson.loads(raw)
    assert shape(body) == shape(json.loads(ANTHROPIC_MESSAGE_SAMPLE))
    assert list(body) == list(json.loads(ANTHROPIC_MESSAGE_SAMPLE))


async def test_system_and_multi_turn(up: FakeAnthropic, client: AsyncAnthropic) -> None:
    turns: list[dict[str, Any]] = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": [{"type": "text", "text": "first answer"}]},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "question"}]},
    ]
    system = [{"type": "text", "text": "You are terse."}]
    result = await client.messages.create(model=MODEL, max_tokens=100, messages=turns, system=system)  # type: ignore[arg-type]
    assert result.content[0].type == "text"
    assert result.content[0].text == anthropic_answer_for(turns, system) == "Echo: second question"
    assert up.requests[-1]["body"]["system"] == system
    assert result.usage.input_tokens == anthropic_input_tokens_for({"messages": turns, "system": system})
    assert result.usage.input_tokens == (4 + 3) + (3 + 3) + (4 + 3) + 4

    result = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, system="Be brief.")  # type: ignore[arg-type]
    assert result.content[0].text == anthropic_answer_for(MESSAGES)  # type: ignore[union-attr]
    assert result.usage.input_tokens == 9 + 3


async def test_stop_sequences_cut_the_answer(client: AsyncAnthropic) -> None:
    result = await client.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=MESSAGES,  # type: ignore[arg-type]
        stop_sequences=["world", "there"],
    )
    assert result.content[0].text == "Echo: hello "  # type: ignore[union-attr]
    assert result.stop_reason == "stop_sequence" and result.stop_sequence == "there"
    assert result.usage.output_tokens == 2

    # The sequence the text completes first wins, even when another starts at the same place.
    result = await client.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=MESSAGES,  # type: ignore[arg-type]
        stop_sequences=["hello there", "hell"],
    )
    assert result.stop_sequence == "hell" and result.content[0].text == "Echo: "  # type: ignore[union-attr]

    # A sequence the answer never contains changes nothing.
    result = await client.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=MESSAGES,  # type: ignore[arg-type]
        stop_sequences=["absent"],
    )
    assert result.stop_reason == "end_turn" and result.stop_sequence is None


async def test_max_tokens_truncates_by_words(client: AsyncAnthropic) -> None:
    result = await client.messages.create(model=MODEL, max_tokens=2, messages=MESSAGES)  # type: ignore[arg-type]
    assert result.content[0].text == "Echo: hello"  # type: ignore[union-attr]
    assert result.stop_reason == "max_tokens" and result.stop_sequence is None
    assert result.usage.output_tokens == 2

    # max_tokens reached before the stop sequence: max_tokens wins.
    result = await client.messages.create(
        model=MODEL,
        max_tokens=2,
        messages=MESSAGES,  # type: ignore[arg-type]
        stop_sequences=["world"],
    )
    assert result.stop_reason == "max_tokens" and result.content[0].text == "Echo: hello"  # type: ignore[union-attr]

    # An answer that fits is untouched.
    result = await client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)  # type: ignore[arg-type]
    assert result.stop_reason == "end_turn" and result.content[0].text == anthropic_answer_for(MESSAGES)  # type: ignore[union-attr]


async def test_set_answer_and_empty_answer(up: FakeAnthropic, client: AsyncAnthropic) -> None:
    up.set_answer("fixed words here")
    result = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
    assert result.content[0].text == "fixed words here"  # type: ignore[union-attr]
    up.set_answer("")
    result = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
    assert result.content == [] and result.usage.output_tokens == 0
    up.set_answer(None)
    result = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
    assert result.content[0].text == anthropic_answer_for(MESSAGES)  # type: ignore[union-attr]


def test_answer_for_and_input_tokens_for() -> None:
    turns: list[dict[str, Any]] = [
        {"role": "user", "content": "first"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "cold"}]},
            ],
        },
    ]
    assert anthropic_answer_for(turns) == "Echo: sunny cold"
    with_text = [*turns[:2], {"role": "user", "content": [*turns[2]["content"], {"type": "text", "text": "why?"}]}]
    assert anthropic_answer_for(with_text) == "Echo: why?"
    assert anthropic_answer_for([{"role": "assistant", "content": "x"}]) == "Echo: "
    assert anthropic_answer_for(MESSAGES, "system prompts do not matter") == anthropic_answer_for(MESSAGES)

    # '{"a":1}' is 7 characters; "sunny cold" 10.
    assert anthropic_input_tokens_for({"messages": turns}) == (2 + 3) + (2 + 3) + (3 + 3)
    tools = [{"name": "f", "input_schema": {"type": "object"}}]  # 47 characters of compact JSON
    assert anthropic_input_tokens_for({"messages": turns, "system": "12345", "tools": tools}) == 16 + 2 + 12


# -- messages, streamed --------------------------------------------------------------------------------------


async def test_stream_via_sdk(up: FakeAnthropic, client: AsyncAnthropic) -> None:
    async with client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:  # type: ignore[arg-type]
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()

    expected = anthropic_answer_for(MESSAGES)
    assert "".join(texts) == expected
    assert len(texts) == words(expected)
    assert final.content[0].text == expected  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.stop_sequence is None
    assert final.usage.input_tokens == anthropic_input_tokens_for(body_of())
    assert final.usage.output_tokens == words(expected)
    assert final.id.startswith("msg_")


async def test_stream_wire_format(up: FakeAnthropic) -> None:
    status, headers, raw = await raw_request(up, "/v1/messages", body_of(stream=True, max_tokens=3))
    assert status == 200
    assert headers["Content-Type"].split(";")[0] == "text/event-stream"
    assert headers["request-id"].startswith("req_")
    events = sse_events(raw)
    assert all(name == data["type"] for name, data in events)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["stop_sequence"] is None
    assert start["usage"]["input_tokens"] == 9 and start["usage"]["output_tokens"] == 1
    sample = dict(sse_events(ANTHROPIC_STREAM_SAMPLE.encode()))
    assert shape(events[0][1]) == shape(sample["message_start"])
    assert events[2][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta") == "Echo: hello there"
    assert events[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
        "usage": {
            "input_tokens": 9,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 3,
        },
    }


async def test_stream_with_text_and_tool_use_matches_the_recorded_sample(up: FakeAnthropic) -> None:
    up.set_answer("Let me check the weather.")
    up.set_tool_uses([{"name": "get_weather", "input": {"location": "Paris"}}])
    _, _, raw = await raw_request(up, "/v1/messages", body_of(stream=True))
    events = sse_events(raw)
    sample = sse_events(ANTHROPIC_STREAM_SAMPLE.encode())

    def outline(stream: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, Any]]:
        """Event names and block indexes, runs of deltas collapsed, pings dropped (they may come anywhere)."""
        out: list[tuple[str, Any]] = []
        for name, data in stream:
            item = (name, data.get("index"))
            if name != "ping" and (not out or out[-1] != item or name != "content_block_delta"):
                out.append(item)
        return out

    assert outline(events) == outline(sample)
    sample_shapes = {
        (n, d.get("delta", {}).get("type"), d.get("content_block", {}).get("type")): shape(d) for n, d in sample
    }
    for name, data in events:
        key = (name, data.get("delta", {}).get("type"), data.get("content_block", {}).get("type"))
        assert shape(data) == sample_shapes[key], key


async def test_stream_chunk_delay_and_stop_sequence() -> None:
    async with (
        FakeAnthropic(chunk_delay_s=0.01) as fake,
        AsyncAnthropic(base_url=fake.base_url, api_key="x", max_retries=0) as sdk,
        sdk.messages.stream(
            model=MODEL,
            max_tokens=100,
            messages=MESSAGES,  # type: ignore[arg-type]
            stop_sequences=["big"],
        ) as stream,
    ):
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == "Echo: hello there "
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == "big"


# -- tool use and thinking -----------------------------------------------------------------------------------


async def test_tool_use_whole(up: FakeAnthropic, client: AsyncAnthropic) -> None:
    up.set_tool_uses([WEATHER, {"name": "get_time", "input": {}, "id": "toolu_fixed"}])
    result = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
    assert result.stop_reason == "tool_use"
    assert [b.type for b in result.content] == ["tool_use", "tool_use"]
    first, second = result.content
    assert first.type == "tool_use" and second.type == "tool_use"
    assert first.id.startswith("toolu_") and first.name == "get_weather"
    assert first.input == WEATHER["input"]
    assert second.id == "toolu_fixed" and second.name == "get_time" and second.input == {}
    # '{"city":"Paris","unit":"celsius"}' is 9 fragments, '{}' one.
    assert result.usage.output_tokens == 9 + 1

    up.set_tool_uses(None)
    result = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
    assert result.content[0].type == "text" and result.stop_reason == "end_turn"


async def test_tool_use_streamed(up: FakeAnthropic, client: AsyncAnthropic) -> None:
    nested = {"name": "search", "input": {"query": "a b", "filters": {"year": 2024, "tags": ["x", "y"]}}}
    up.set_tool_uses([WEATHER, nested])
    async with client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:  # type: ignore[arg-type]
        events = [event async for event in stream]
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "name", None)) for b in final.content] == [
        ("tool_use", "get_weather"),
        ("tool_use", "search"),
    ]
    assert final.content[0].input == WEATHER["input"]  # type: ignore[union-attr]
    assert final.content[1].input == nested["input"]  # type: ignore[union-attr]
    assert len({b.id for b in final.content}) == 2  # type: ignore[union-attr]

    fragments = [e.delta.partial_json for e in events if e.type == "content_block_delta" and e.index == 0]  # type: ignore[union-attr]
    assert fragments[0] == "" and len(fragments) > 3
    assert "".join(fragments) == '{"city":"Paris","unit":"celsius"}'
    assert final.usage.output_tokens == sum(
        1
        for e in events
        if e.type == "content_block_delta" and e.delta.partial_json  # type: ignore[union-attr]
    )


async def test_tool_uses_for_a_number_of_answers_then_text(up: FakeAnthropic, client: AsyncAnthropic) -> None:
    up.set_tool_uses([WEATHER], times=2)
    kinds = []
    for _ in range(3):
        result = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
        kinds.append((result.content[0].type, result.stop_reason))
    assert kinds == [("tool_use", "tool_use"), ("tool_use", "tool_use"), ("text", "end_turn")]
    with pytest.raises(ValueError, match="times"):
        up.set_tool_uses([WEATHER], times=0)


async def test_text_before_tool_use(up: FakeAnthropic, client: AsyncAnthropic) -> None:
    up.set_answer("Let me check.")
    up.set_tool_uses([WEATHER])
    result = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
    assert [b.type for b in result.content] == ["text", "tool_use"]
    assert result.content[0].text == "Let me check."  # type: ignore[union-attr]
    assert result.usage.output_tokens == 3 + 9


async def test_thinking(up: FakeAnthropic, client: AsyncAnthropic) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    result = await client.messages.create(model=MODEL, max_tokens=2048, messages=MESSAGES, thinking=thinking)  # type: ignore[arg-type]
    assert [b.type for b in result.content] == ["thinking", "text"]
    block = result.content[0]
    assert block.type == "thinking" and "hello there big world" in block.thinking and block.signature
    assert result.content[1].text == anthropic_answer_for(MESSAGES)  # type: ignore[union-attr]
    assert result.usage.output_tokens == words(block.thinking) + words(anthropic_answer_for(MESSAGES))

    async with client.messages.stream(
        model=MODEL,
        max_tokens=2048,
        messages=MESSAGES,  # type: ignore[arg-type]
        thinking=thinking,  # type: ignore[arg-type]
    ) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_message()
    assert final.content[0] == block
    delta_types = [e.delta.type for e in events if e.type == "content_block_delta" and e.index == 0]  # type: ignore[union-attr]
    assert delta_types[-1] == "signature_delta" and set(delta_types[:-1]) == {"thinking_delta"}

    # Adaptive thinking also thinks; disabled does not.
    _, _, raw = await raw_request(up, "/v1/messages", body_of(thinking={"type": "adaptive"}))
    assert [b["type"] for b in orjson.loads(raw)["content"]] == ["thinking", "text"]
    _, _, raw = await raw_request(up, "/v1/messages", body_of(thinking={"type": "disabled"}))
    assert [b["type"] for b in orjson.loads(raw)["content"]] == ["text"]

    for bad in (
        {"thinking": {"type": "enabled", "budget_tokens": 100}, "max_tokens": 2048},
        {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 1024},
        {"thinking": {"type": "sometimes"}},
    ):
        status, _, raw = await raw_request(up, "/v1/messages", body_of(**bad))
        assert status == 400 and "thinking" in orjson.loads(raw)["error"]["message"]


# -- failures, auth and validation ---------------------------------------------------------------------------


async def test_fail_next_maps_to_sdk_exceptions(up: FakeAnthropic, client: AsyncAnthropic) -> None:
    cases: list[tuple[int, type[anthropic.APIStatusError], str]] = [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (413, anthropic.APIStatusError, "request_too_large"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.InternalServerError, "overloaded_error"),
    ]
    for status, exc_class, error_type in cases:
        up.fail_next(status, message=f"boom {status}")
        with pytest.raises(exc_class) as caught:
            await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
        assert caught.value.status_code == status
        assert caught.value.type == error_type
        assert caught.value.api_message == f"boom {status}"
        assert caught.value.request_id is not None and caught.value.request_id.startswith("req_")
        assert caught.value.body == {
            "type": "error",
            "error": {"type": error_type, "message": f"boom {status}"},
            "request_id": caught.value.request_id,
        }
    overloaded = getattr(anthropic, "OverloadedError", None)
    if overloaded is not None:
        up.fail_next(529)
        with pytest.raises(overloaded):
            await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]

    up.fail_next(429, times=2, retry_after=1.5)
    for _ in range(2):
        with pytest.raises(anthropic.RateLimitError) as rate_limited:
            async with client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES):  # type: ignore[arg-type]
                pass
        assert rate_limited.value.response.headers["retry-after"] == "1.5"

    up.fail_next(503)
    with pytest.raises(anthropic.InternalServerError) as caught_503:
        await client.messages.count_tokens(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    assert caught_503.value.type == "api_error"

    # The queue is spent: the next call succeeds.
    result = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
    assert result.content[0].text == anthropic_answer_for(MESSAGES)  # type: ignore[union-attr]


async def test_sdk_retries_on_529(up: FakeAnthropic) -> None:
    up.fail_next(529, retry_after=0)
    async with AsyncAnthropic(base_url=up.base_url, api_key=KEY, max_retries=1) as sdk:
        result = await sdk.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
    assert result.content[0].text == anthropic_answer_for(MESSAGES)  # type: ignore[union-attr]
    assert len(up.requests) == 2


async def test_fail_mid_stream_raises_in_the_sdk_stream(up: FakeAnthropic, client: AsyncAnthropic) -> None:
    up.fail_mid_stream()
    texts: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:  # type: ignore[arg-type]
            async for text in stream.text_stream:
                texts.append(text)
    assert caught.value.type == "overloaded_error" and caught.value.api_message == "Overloaded"
    assert caught.value.body == json.loads(ANTHROPIC_STREAM_ERROR_SAMPLE.split("data: ", 1)[1])
    assert texts == []

    # After 5 events (message_start, ping, content_block_start, two text deltas) the error comes.
    up.fail_mid_stream("api_error", after_events=5)
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:  # type: ignore[arg-type]
            async for text in stream.text_stream:
                texts.append(text)
    assert caught.value.type == "api_error"
    assert "".join(texts) == "Echo: hello"

    # Whole calls leave it queued; on the wire it is a 200 stream ending in an error event.
    up.fail_mid_stream("overloaded_error", after_events=1000)
    result = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
    assert result.stop_reason == "end_turn"
    status, headers, raw = await raw_request(up, "/v1/messages", body_of(stream=True))
    assert status == 200 and headers.get("Connection", "").lower() == "close"
    events = sse_events(raw)
    assert events[-1] == ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert events[-2][0] == "message_delta"  # everything but message_stop came first

    # The next stream is whole again.
    _, _, raw = await raw_request(up, "/v1/messages", body_of(stream=True))
    assert sse_events(raw)[-1][0] == "message_stop"


async def test_auth(up: FakeAnthropic) -> None:
    async with AsyncAnthropic(base_url=up.base_url, api_key="sk-ant-wrong-0000", max_retries=0) as sdk:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            await sdk.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
        assert caught.value.type == "authentication_error"
        assert "sk-ant-wrong-0000" not in str(caught.value)
        with pytest.raises(anthropic.AuthenticationError):
            await sdk.models.list()

    status, _, raw = await raw_request(up, "/v1/messages", body_of(), key=None)
    assert status == 401 and orjson.loads(raw)["error"]["message"] == "x-api-key header is required"
    # Either header carries the key.
    status, _, _ = await raw_request(up, "/v1/messages", body_of())  # x-api-key
    assert status == 200
    status, _, _ = await raw_request(
        up, "/v1/messages", body_of(), key=None, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert status == 200

    async with FakeAnthropic() as open_fake:
        status, _, _ = await raw_request(open_fake, "/v1/messages", body_of(), key=None)
        assert status == 200


async def test_anthropic_version_is_required(up: FakeAnthropic) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(up.base_url + "/v1/messages", json=body_of(), headers={"x-api-key": KEY}) as resp,
    ):
        assert resp.status == 400
        assert resp.headers["request-id"].startswith("req_")
        body = await resp.json()
    assert body["error"] == {"type": "invalid_request_error", "message": "anthropic-version: header is required"}


async def test_invalid_bodies(up: FakeAnthropic) -> None:
    cases: list[tuple[Any, str]] = [
        ({"model": MODEL, "messages": MESSAGES}, "max_tokens: Field required"),
        (body_of(max_tokens=0), "max_tokens"),
        (body_of(max_tokens="5"), "max_tokens"),
        ({"max_tokens": 5, "messages": MESSAGES}, "model: Field required"),
        (body_of(messages=[]), "messages"),
        (body_of(messages=[{"role": "assistant", "content": "hi"}]), '"user" role'),
        (body_of(messages=[{"role": "narrator", "content": "hi"}]), "messages.0.role"),
        (body_of(messages=[{"role": "system", "content": "hi"}]), '"user" role'),
        (body_of(messages=[*MESSAGES, {"role": "system"}]), "messages.1"),
        (body_of(messages=[{"role": "user"}]), "messages.0.content"),
        (body_of(messages=[{"role": "user", "content": ["bare string"]}]), "messages.0.content.0"),
        (body_of(system=[{"type": "image"}]), "system"),
        (body_of(stop_sequences="stop"), "stop_sequences"),
        (body_of(stream="yes"), "stream"),
        (b"{not json", "JSON"),
    ]
    for body, fragment in cases:
        status, headers, raw = await raw_request(up, "/v1/messages", body)
        assert status == 400, body
        error = orjson.loads(raw)
        assert list(error) == list(json.loads(ANTHROPIC_ERROR_SAMPLE))
        assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
        assert fragment in error["error"]["message"], (body, error)
        assert error["request_id"] == headers["request-id"]

    # System-role messages are accepted at any position, with content or only output_config.
    with_system = [{"role": "system", "content": "Lead."}, *MESSAGES,
                   {"role": "system", "content": [{"type": "text", "text": "cwd: /src"}]},
                   {"role": "system", "output_config": {"effort": "low"}}]
    status, _, raw = await raw_request(up, "/v1/messages", body_of(messages=with_system))
    assert status == 200 and orjson.loads(raw)["content"][0]["text"] == anthropic_answer_for(MESSAGES)

    # Consecutive same-role turns are accepted (the API merges them).
    same_role = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    status, _, raw = await raw_request(up, "/v1/messages", body_of(messages=same_role))
    assert status == 200 and orjson.loads(raw)["content"][0]["text"] == "Echo: b"


async def test_unknown_path_and_too_large_body(up: FakeAnthropic) -> None:
    status, _, raw = await raw_request(up, "/v1/complete", {"prompt": "x"})
    assert status == 404
    assert shape(orjson.loads(raw)) == shape(json.loads(ANTHROPIC_ERROR_SAMPLE))
    assert orjson.loads(raw)["error"]["type"] == "not_found_error"

    huge = body_of(messages=[{"role": "user", "content": "x" * (33 * 1024 * 1024)}])
    status, _, raw = await raw_request(up, "/v1/messages", huge)
    assert status == 413 and orjson.loads(raw)["error"]["type"] == "request_too_large"


async def test_requests_are_recorded(up: FakeAnthropic, client: AsyncAnthropic) -> None:
    await client.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=MESSAGES,  # type: ignore[arg-type]
        extra_body={"temperature": 0.5},
    )
    await client.beta.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=MESSAGES,  # type: ignore[arg-type]
        betas=["context-1m-2025-08-07", "interleaved-thinking-2025-05-14"],
    )
    await client.models.list()
    assert [r["path"] for r in up.requests] == ["/v1/messages", "/v1/messages", "/v1/models"]
    first = up.requests[0]
    assert first["method"] == "POST"
    assert first["body"] == {"model": MODEL, "max_tokens": 100, "messages": MESSAGES, "temperature": 0.5}
    assert first["headers"]["anthropic-version"] and "Anthropic-Version" in first["headers"]
    assert "anthropic-beta" not in first["headers"]
    beta = up.requests[1]["headers"]["Anthropic-Beta"]
    assert beta.replace(" ", "").split(",") == ["context-1m-2025-08-07", "interleaved-thinking-2025-05-14"]
    assert up.requests[2]["body"] is None

    # A header sent several times is joined.
    repeated: CIMultiDict[str] = CIMultiDict([("anthropic-beta", "a-1"), ("anthropic-beta", "b-2")])
    await raw_request(up, "/v1/messages", body_of(), headers=repeated)
    assert up.requests[-1]["headers"]["anthropic-beta"] == "a-1, b-2"


# -- usage, count_tokens and models --------------------------------------------------------------------------


async def test_set_usage_reports_cache_tokens(up: FakeAnthropic, client: AsyncAnthropic) -> None:
    up.set_usage(cache_read=1200, cache_write=300)
    result = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
    assert result.usage.cache_read_input_tokens == 1200
    assert result.usage.cache_creation_input_tokens == 300
    assert result.usage.cache_creation is not None and result.usage.cache_creation.ephemeral_5m_input_tokens == 300
    assert result.usage.input_tokens == anthropic_input_tokens_for(body_of())

    async with client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:  # type: ignore[arg-type]
        final = await stream.get_final_message()
    assert final.usage.cache_read_input_tokens == 1200 and final.usage.cache_creation_input_tokens == 300

    up.set_usage()
    result = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
    assert result.usage.cache_read_input_tokens == 0 and result.usage.cache_creation_input_tokens == 0
    with pytest.raises(ValueError):
        up.set_usage(cache_read=-1)


async def test_count_tokens(up: FakeAnthropic, client: AsyncAnthropic) -> None:
    tools = [{"name": "get_weather", "description": "Weather.", "input_schema": {"type": "object", "properties": {}}}]
    result = await client.messages.count_tokens(model=MODEL, messages=MESSAGES, system="Be brief.", tools=tools)  # type: ignore[arg-type]
    expected = anthropic_input_tokens_for({"messages": MESSAGES, "system": "Be brief.", "tools": tools})
    assert result.input_tokens == expected
    assert up.requests[-1]["path"] == "/v1/messages/count_tokens"

    # The same body on messages reports the same input_tokens.
    whole = await client.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=MESSAGES,  # type: ignore[arg-type]
        system="Be brief.",
        tools=tools,  # type: ignore[arg-type]
    )
    assert whole.usage.input_tokens == expected

    status, _, raw = await raw_request(up, "/v1/messages/count_tokens", {"model": MODEL, "messages": MESSAGES})
    assert status == 200
    assert shape(orjson.loads(raw)) == shape(json.loads(ANTHROPIC_COUNT_TOKENS_SAMPLE))
    status, _, raw = await raw_request(up, "/v1/messages/count_tokens", {"model": MODEL})
    assert status == 400 and orjson.loads(raw)["error"]["message"] == "messages: Field required"


async def test_models(up: FakeAnthropic, client: AsyncAnthropic) -> None:
    page = await client.models.list()
    ids = [m.id for m in page.data]
    assert MODEL in ids and len(ids) == 4
    assert all(m.type == "model" and m.display_name and m.created_at.year >= 2024 for m in page.data)
    assert page.has_more is False and page.first_id == ids[0] and page.last_id == ids[-1]

    # Paginated: the SDK follows after_id through pages of 1.
    paged = [m.id async for m in client.models.list(limit=1)]
    assert paged == ids
    assert [r["path"] for r in up.requests].count("/v1/models") == 1 + 4

    model = await client.models.retrieve(MODEL)
    assert model.id == MODEL and model.display_name == "Claude Sonnet 4.6"
    other = await client.models.retrieve("claude-custom")
    assert other.id == "claude-custom"

    status, _, raw = await raw_request(up, "/v1/models?limit=2&before_id=" + ids[3], method="GET")
    body = orjson.loads(raw)
    assert status == 200 and [m["id"] for m in body["data"]] == ids[1:3] and body["has_more"] is True
    sample = json.loads(ANTHROPIC_MODELS_SAMPLE)
    assert set(body) == set(sample)
    assert set(sample["data"][0]) <= set(body["data"][0])


# -- mounting and the CLI ------------------------------------------------------------------------------------


async def test_app_mounts_with_aiohttp_client(aiohttp_client: Any) -> None:
    fake = FakeAnthropic()
    test_client = await aiohttp_client(make_fake_anthropic_app(fake))
    resp = await test_client.post("/v1/messages", json=body_of(), headers=VERSION)
    assert resp.status == 200
    assert (await resp.json())["content"][0]["text"] == anthropic_answer_for(MESSAGES)
    assert fake.requests[0]["path"] == "/v1/messages"


async def test_base_url_and_argument_checks() -> None:
    fake = FakeAnthropic()
    with pytest.raises(RuntimeError):
        _ = fake.base_url
    with pytest.raises(ValueError):
        fake.fail_next(99)
    with pytest.raises(ValueError):
        fake.fail_next(500, times=0)
    with pytest.raises(ValueError):
        fake.fail_mid_stream(after_events=-1)
    with pytest.raises(ValueError):
        fake.set_tool_uses([{"input": {}}])
    async with fake:
        assert fake.base_url == f"http://127.0.0.1:{fake.port}"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_cli_serves_until_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmgw.testing.fake_anthropic",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        base_url = line.rsplit(" ", 1)[-1].strip()
        assert base_url.startswith("http://127.0.0.1:") and not base_url.endswith("/v1")
        async with AsyncAnthropic(base_url=base_url, api_key="x", max_retries=0) as sdk:
            result = await sdk.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
        assert result.content[0].text == anthropic_answer_for(MESSAGES)  # type: ignore[union-attr]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
