"""The fake OpenAI upstream (llmgw.testing), driven by the real openai SDK and by raw HTTP."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from openai import AsyncOpenAI

from llmgw.testing import (
    CHAT_COMPLETION_CHUNK_SAMPLE,
    CHAT_COMPLETION_SAMPLE,
    EMBEDDINGS_SAMPLE,
    ERROR_SAMPLE,
    MODELS_SAMPLE,
    USAGE_CHUNK_SAMPLE,
    FakeOpenAI,
    answer_for,
    make_fake_openai_app,
    prompt_tokens_for,
)

KEY = "sk-test-123456"
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "hello there big world"},
]
WEATHER = {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}


@pytest.fixture
async def up() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=KEY) as fake:
        yield fake


@pytest.fixture
async def client(up: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=up.base_url, api_key=KEY, max_retries=0) as sdk:
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


async def raw_post(up: FakeOpenAI, path: str, body: Any, key: str | None = KEY) -> tuple[int, Mapping[str, str], bytes]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with (
        aiohttp.ClientSession() as session,
        session.post(up.base_url + path, data=data, headers=headers) as resp,
    ):
        return resp.status, resp.headers.copy(), await resp.read()  # case-insensitive


def sse_events(raw: bytes) -> list[str]:
    assert raw.endswith(b"data: [DONE]\n\n")
    events = raw.decode().split("\n\n")
    assert events[-1] == ""
    assert all(e.startswith("data: ") for e in events[:-1])
    return [e[len("data: ") :] for e in events[:-2]]  # without the final "[DONE]"


def words(text: str) -> int:
    return len(text.split())


# -- chat, whole ---------------------------------------------------------------------------------------------


async def test_chat_non_stream_via_sdk(up: FakeOpenAI, client: AsyncOpenAI) -> None:
    result = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]

    expected = answer_for(MESSAGES)
    assert expected == "Echo: hello there big world"
    assert result.object == "chat.completion"
    assert result.id.startswith("chatcmpl-")
    assert result.model == "gpt-4o-mini"
    assert result.system_fingerprint
    choice = result.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == expected
    assert choice.message.refusal is None
    assert choice.finish_reason == "stop"
    assert choice.logprobs is None
    assert result.usage is not None
    assert result.usage.prompt_tokens == prompt_tokens_for(MESSAGES) == (4 + 3) + (6 + 3)
    assert result.usage.completion_tokens == words(expected)
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert result.usage.prompt_tokens_details is not None
    assert result.usage.prompt_tokens_details.cached_tokens == 0
    assert result.usage.completion_tokens_details is not None
    assert result.usage.completion_tokens_details.reasoning_tokens == 0


async def test_chat_non_stream_has_the_recorded_shape(up: FakeOpenAI) -> None:
    status, headers, raw = await raw_post(up, "/chat/completions", {"model": "gpt-4o", "messages": MESSAGES})
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert headers["x-request-id"].startswith("req_")
    body = orjson.loads(raw)
    assert shape(body) == shape(json.loads(CHAT_COMPLETION_SAMPLE))
    assert list(body) == list(json.loads(CHAT_COMPLETION_SAMPLE))


async def test_max_tokens_truncates_by_words_with_length(client: AsyncOpenAI) -> None:
    for param in ("max_tokens", "max_completion_tokens"):
        result = await client.chat.completions.create(
            model="m",
            messages=MESSAGES,  # type: ignore[arg-type]
            **{param: 2},  # type: ignore[arg-type]
        )
        assert result.choices[0].message.content == "Echo: hello"
        assert result.choices[0].finish_reason == "length"
        assert result.usage is not None and result.usage.completion_tokens == 2
    # A limit the answer fits in changes nothing.
    result = await client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=50)  # type: ignore[arg-type]
    assert result.choices[0].finish_reason == "stop"
    assert result.choices[0].message.content == answer_for(MESSAGES)


async def test_stop_cuts_the_answer(client: AsyncOpenAI) -> None:
    result = await client.chat.completions.create(model="m", messages=MESSAGES, stop=["big", "there"])  # type: ignore[arg-type]
    assert result.choices[0].message.content == "Echo: hello "
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None and result.usage.completion_tokens == 2


async def test_set_answer_and_model_prefix() -> None:
    async with FakeOpenAI(model_prefix="up1/") as fake:
        fake.set_answer("fixed words here")
        async with AsyncOpenAI(base_url=fake.base_url, api_key="anything", max_retries=0) as sdk:
            result = await sdk.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
            assert result.choices[0].message.content == "fixed words here"
            assert result.model == "up1/m"
            fake.set_answer(None)
            result = await sdk.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
            assert result.choices[0].message.content == answer_for(MESSAGES)


def test_answer_for_and_prompt_tokens_for() -> None:
    parts = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": None},
        {
            "role": "user",
            "content": [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}],
        },
    ]
    assert answer_for(parts) == "Echo: a b"
    assert answer_for([{"role": "system", "content": "x"}]) == "Echo: "
    assert prompt_tokens_for(parts) == (2 + 3) + (0 + 3) + (1 + 3)


# -- chat, streamed ------------------------------------------------------------------------------------------


async def test_stream_without_include_usage_sends_no_usage(up: FakeOpenAI, client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    chunks = [chunk async for chunk in stream]

    assert len(chunks) == words(answer_for(MESSAGES)) + 2  # role chunk + one per word + finish chunk
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert all(c.usage is None for c in chunks)
    assert all(len(c.choices) == 1 for c in chunks)
    first = chunks[0].choices[0]
    assert first.delta.role == "assistant" and first.delta.content == "" and first.finish_reason is None
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == answer_for(MESSAGES)
    last = chunks[-1].choices[0]
    assert last.finish_reason == "stop"
    assert last.delta.content is None and last.delta.role is None

    # On the wire: no "usage" key at all, and the recorded chunk shape.
    status, headers, raw = await raw_post(up, "/chat/completions", {"model": "m", "messages": MESSAGES, "stream": True})
    assert status == 200
    assert headers["Content-Type"].split(";")[0] == "text/event-stream"
    events = [json.loads(e) for e in sse_events(raw)]
    assert all("usage" not in e for e in events)
    assert shape(events[0]) == shape(json.loads(CHAT_COMPLETION_CHUNK_SAMPLE))
    assert events[-1]["choices"][0]["delta"] == {}


async def test_stream_with_include_usage_sends_exactly_one_usage_chunk(up: FakeOpenAI, client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="m",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1]
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.prompt_tokens == prompt_tokens_for(MESSAGES)
    assert usage.completion_tokens == words(answer_for(MESSAGES))
    assert chunks[-2].choices[0].finish_reason == "stop"

    # On the wire: every other chunk carries "usage": null.
    body = {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    _, _, raw = await raw_post(up, "/chat/completions", body)
    events = [json.loads(e) for e in sse_events(raw)]
    assert all("usage" in e and e["usage"] is None for e in events[:-1])
    assert shape(events[-1]) == shape(json.loads(USAGE_CHUNK_SAMPLE))


async def test_stream_length_and_chunk_delay() -> None:
    async with (
        FakeOpenAI(chunk_delay_s=0.01) as fake,
        AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as sdk,
    ):
        stream = await sdk.chat.completions.create(model="m", messages=MESSAGES, stream=True, max_tokens=3)  # type: ignore[arg-type]
        chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: hello there"
    assert chunks[-1].choices[0].finish_reason == "length"


async def test_stream_options_without_stream_is_rejected(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model="m",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
    assert caught.value.param == "stream_options"


# -- tool calls ----------------------------------------------------------------------------------------------


async def test_tool_calls_whole(up: FakeOpenAI, client: AsyncOpenAI) -> None:
    up.set_tool_calls([WEATHER, {"name": "get_time", "arguments": {"tz": "UTC"}, "id": "call_fixed"}])
    result = await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 2
    assert calls[0].type == "function" and calls[0].id.startswith("call_")
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris", "unit": "celsius"}  # type: ignore[union-attr]
    assert calls[1].id == "call_fixed"
    assert json.loads(calls[1].function.arguments) == {"tz": "UTC"}  # type: ignore[union-attr]

    up.set_tool_calls(None)
    result = await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert result.choices[0].message.content == answer_for(MESSAGES)


async def test_tool_calls_for_a_number_of_answers_then_text(up: FakeOpenAI, client: AsyncOpenAI) -> None:
    up.set_tool_calls([WEATHER], times=1)
    first = await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    second = await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert first.choices[0].finish_reason == "tool_calls"
    assert second.choices[0].message.content == answer_for(MESSAGES)


async def test_tool_calls_streamed_like_openai(up: FakeOpenAI, client: AsyncOpenAI) -> None:
    up.set_tool_calls([WEATHER, {"name": "get_time", "arguments": "{}"}])
    stream = await client.chat.completions.create(
        model="m",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    first = chunks[0].choices[0].delta
    assert first.role == "assistant"
    assert first.tool_calls is not None
    head = first.tool_calls[0]
    assert head.index == 0 and head.id and head.type == "function"
    assert head.function is not None and head.function.name == "get_weather" and head.function.arguments == ""

    ids: dict[int, str] = {}
    names: dict[int, str] = {}
    args: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                if tc.id:
                    ids[tc.index] = tc.id
                    assert tc.function is not None and tc.function.arguments == ""
                if tc.function and tc.function.name:
                    names[tc.index] = tc.function.name
                if tc.function and tc.function.arguments:
                    args[tc.index] = args.get(tc.index, "") + tc.function.arguments
    assert names == {0: "get_weather", 1: "get_time"}
    assert len(set(ids.values())) == 2
    assert args[0] == WEATHER["arguments"] and args[1] == "{}"
    fragments = sum(1 for c in chunks for ch in c.choices for tc in ch.delta.tool_calls or [] if not tc.id)
    assert fragments > 2  # arguments arrive in pieces

    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == fragments + 2


# -- failures and auth ---------------------------------------------------------------------------------------


async def test_fail_next_maps_to_sdk_exceptions(up: FakeOpenAI, client: AsyncOpenAI) -> None:
    up.fail_next(500, message="boom")
    with pytest.raises(openai.InternalServerError) as server_error:
        await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert server_error.value.status_code == 500
    assert server_error.value.body == {"message": "boom", "type": "server_error", "param": None, "code": None}

    up.fail_next(429, times=2, retry_after=1.5, message="slow down")
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as rate_limited:
            await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        assert rate_limited.value.response.headers["retry-after"] == "1.5"
        assert rate_limited.value.code == "rate_limit_exceeded"

    up.fail_next(400)
    with pytest.raises(openai.BadRequestError) as bad:
        await client.embeddings.create(model="e", input="x")
    assert bad.value.type == "invalid_request_error"

    up.fail_next(503)
    up.fail_next(502)
    for status in (503, 502):
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
        assert caught.value.status_code == status

    # The queue is spent: the next call succeeds.
    result = await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert result.choices[0].message.content == answer_for(MESSAGES)


async def test_wrong_or_missing_key_is_401(up: FakeOpenAI) -> None:
    async with AsyncOpenAI(base_url=up.base_url, api_key="sk-wrong-key-0000", max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError) as caught:
            await sdk.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
        assert caught.value.code == "invalid_api_key"
        assert "sk-wrong-key-0000" not in str(caught.value)
        with pytest.raises(openai.AuthenticationError):
            await sdk.models.list()

    status, _, raw = await raw_post(up, "/chat/completions", {"model": "m", "messages": MESSAGES}, key=None)
    assert status == 401
    error = orjson.loads(raw)["error"]
    assert list(error) == list(json.loads(ERROR_SAMPLE)["error"])
    assert error["type"] == "invalid_request_error" and error["code"] is None
    assert "didn't provide an API key" in error["message"]


async def test_malformed_json_and_unknown_path(up: FakeOpenAI) -> None:
    status, headers, raw = await raw_post(up, "/chat/completions", b"{not json")
    assert status == 400
    assert headers["Content-Type"].startswith("application/json")
    error = orjson.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"

    status, _, raw = await raw_post(up, "/chat/completions", {"messages": MESSAGES})
    assert status == 400 and "model" in orjson.loads(raw)["error"]["message"]

    status, _, raw = await raw_post(up, "/assistants", {"model": "m"})
    assert status == 404 and orjson.loads(raw)["error"]["message"] == "Invalid URL (POST /v1/assistants)"


async def test_requests_are_recorded(up: FakeOpenAI, client: AsyncOpenAI) -> None:
    await client.chat.completions.create(model="m", messages=MESSAGES, temperature=0.5)  # type: ignore[arg-type]
    await client.models.list()
    assert [r["path"] for r in up.requests] == ["/v1/chat/completions", "/v1/models"]
    first = up.requests[0]
    assert first["method"] == "POST"
    assert first["body"] == {"model": "m", "messages": MESSAGES, "temperature": 0.5}
    assert first["headers"]["Authorization"] == f"Bearer {KEY}" == first["headers"]["authorization"]
    assert "content-type" in first["headers"] and "Content-Type" in first["headers"]
    assert up.requests[1]["body"] is None


# -- embeddings and models -----------------------------------------------------------------------------------


async def test_embeddings(up: FakeOpenAI, client: AsyncOpenAI) -> None:
    # The SDK asks for base64 unless told otherwise, and decodes it.
    result = await client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    assert result.object == "list" and result.model == "text-embedding-3-small"
    assert up.requests[-1]["body"]["encoding_format"] == "base64"
    assert [d.index for d in result.data] == [0, 1]
    a, b = (d.embedding for d in result.data)
    assert len(a) == 8 and a != b
    assert math.isclose(math.fsum(x * x for x in a), 1.0, rel_tol=1e-5)
    assert result.usage.prompt_tokens == result.usage.total_tokens == 2 + 1

    floats = await client.embeddings.create(model="e", input="alpha", dimensions=16, encoding_format="float")
    vector = floats.data[0].embedding
    assert len(vector) == 16
    assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-9)
    again = await client.embeddings.create(model="e", input="alpha", dimensions=16, encoding_format="float")
    assert again.data[0].embedding == vector  # deterministic

    status, _, raw = await raw_post(up, "/embeddings", {"model": "e", "input": "alpha", "encoding_format": "float"})
    assert status == 200
    body = orjson.loads(raw)
    assert shape(body) == shape(json.loads(EMBEDDINGS_SAMPLE))
    assert body["data"][0]["embedding"] == pytest.approx(a, abs=1e-6)


async def test_models(client: AsyncOpenAI) -> None:
    page = await client.models.list()
    ids = [m.id for m in page.data]
    assert "gpt-4o-mini" in ids
    assert all(m.object == "model" and m.owned_by for m in page.data)
    model = await client.models.retrieve("gpt-4o-mini")
    assert model.id == "gpt-4o-mini"


async def test_models_shape(up: FakeOpenAI) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(up.base_url + "/models", headers={"Authorization": f"Bearer {KEY}"}) as resp,
    ):
        assert shape(await resp.json()) == shape(json.loads(MODELS_SAMPLE))


# -- mounting and the CLI ------------------------------------------------------------------------------------


async def test_app_mounts_with_aiohttp_client(aiohttp_client: Any) -> None:
    fake = FakeOpenAI()
    test_client = await aiohttp_client(make_fake_openai_app(fake))
    resp = await test_client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert resp.status == 200
    assert (await resp.json())["choices"][0]["message"]["content"] == answer_for(MESSAGES)
    assert fake.requests[0]["path"] == "/v1/chat/completions"


async def test_base_url_before_start() -> None:
    with pytest.raises(RuntimeError):
        _ = FakeOpenAI().base_url


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_cli_serves_until_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmgw.testing",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        base_url = line.rsplit(" ", 1)[-1].strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        async with AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0) as sdk:
            result = await sdk.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
        assert result.choices[0].message.content == answer_for(MESSAGES)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
