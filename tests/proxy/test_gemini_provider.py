"""The Gemini adapter (llmgw.providers.gemini) against the fake Gemini upstream (llmgw.testing.fake_gemini)."""

from __future__ import annotations

import base64
import random
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from llmgw.errors import InvalidRequest
from llmgw.exchange import Exchange, StreamEvent, Usage
from llmgw.profile import ProviderConfig
from llmgw.providers.base import ProviderContext, UpstreamFailure
from llmgw.providers.gemini import GeminiProvider
from llmgw.testing.fake_gemini import FakeGemini, gemini_answer_for, gemini_prompt_tokens_for

KEY = "AIza-test-key-canary-0123456789"
MODEL = "gemini-2.5-flash"
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "hello there big world"},
]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False, "$schema": "http://json-schema.org/draft-07/schema#"}}}


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    async with FakeGemini(api_key=KEY) as up:
        yield up


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def provider(session: aiohttp.ClientSession, base_url: str, *, key: str | None = KEY, timeout_s: float = 10.0,
             **config: Any) -> GeminiProvider:
    cfg = ProviderConfig(name="g", kind="gemini", base_url=base_url, **config)
    return GeminiProvider(ProviderContext(cfg, session, key, random.Random(0), idle_timeout_s=timeout_s))


@pytest.fixture
def gemini(fake: FakeGemini, session: aiohttp.ClientSession) -> GeminiProvider:
    return provider(session, fake.base_url)


def chat_ex() -> Exchange:
    return Exchange("openai", "chat")


async def collect(events: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in events]


def expected_contents() -> list[dict[str, Any]]:
    return [{"role": "user", "parts": [{"text": "hello there big world"}]}]


# --- whole answers -------------------------------------------------------------------------------------------------


async def test_chat_sends_the_translated_request_with_the_key_in_a_header(fake: FakeGemini,
                                                                          gemini: GeminiProvider) -> None:
    ex = chat_ex()
    body = {"model": "alias", "messages": MESSAGES, "temperature": 0.3, "max_tokens": 100, "stop": ["\n\n"],
            "user": "u-7", "stream_options": None}
    reply = await gemini.chat(ex, body, MODEL)

    [request] = fake.requests
    assert request["method"] == "POST"
    assert request["path"] == f"/v1beta/models/{MODEL}:generateContent"
    assert request["query"] == {}
    assert request["headers"]["x-goog-api-key"] == KEY
    assert request["headers"]["content-type"] == "application/json"
    assert "authorization" not in request["headers"]
    assert request["body"] == {
        "contents": expected_contents(),
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "generationConfig": {"temperature": 0.3, "maxOutputTokens": 100, "stopSequences": ["\n\n"]},
    }
    assert ex.dropped_params == ["user"]

    text = gemini_answer_for(expected_contents())
    prompt = gemini_prompt_tokens_for(expected_contents(), {"parts": [{"text": "You are terse."}]})
    assert reply.raw is None and reply.format == "openai"
    assert reply.usage == Usage(input_tokens=prompt, output_tokens=len(text.split()))
    out = reply.body
    assert out["object"] == "chat.completion"
    assert out["id"].startswith("chatcmpl-")
    assert out["model"] == MODEL
    assert out["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": text, "refusal": None}}]
    assert out["usage"] == reply.usage.to_openai()

    await gemini.chat(ex, body, MODEL)  # a retry on the same exchange names each dropped hint once
    assert ex.dropped_params == ["user"]


async def test_length_and_fixed_answers(fake: FakeGemini, gemini: GeminiProvider) -> None:
    fake.set_answer("one two three four five")
    reply = await gemini.chat(chat_ex(), {"messages": MESSAGES, "max_completion_tokens": 2}, MODEL)
    assert reply.body["choices"][0]["message"]["content"] == "one two"
    assert reply.body["choices"][0]["finish_reason"] == "length"
    assert reply.usage is not None and reply.usage.output_tokens == 2


async def test_model_names_and_base_urls(fake: FakeGemini, session: aiohttp.ClientSession) -> None:
    await provider(session, fake.base_url + "/v1beta/").chat(chat_ex(), {"messages": MESSAGES}, "models/" + MODEL)
    assert fake.requests[-1]["path"] == f"/v1beta/models/{MODEL}:generateContent"


async def test_no_key_configured_sends_no_key(fake: FakeGemini, session: aiohttp.ClientSession) -> None:
    with pytest.raises(UpstreamFailure) as info:
        await provider(session, fake.base_url, key=None).chat(chat_ex(), {"messages": MESSAGES}, MODEL)
    assert info.value.status == 403 and not info.value.retryable
    assert "x-goog-api-key" not in fake.requests[-1]["headers"]


async def test_tool_calls_whole_and_the_follow_up_turn(fake: FakeGemini, gemini: GeminiProvider) -> None:
    fake.set_function_calls([{"name": "get_weather", "args": {"city": "Paris"}, "thoughtSignature": "c2lnLTE="},
                             {"name": "get_weather", "args": {"city": "Oslo"}}])
    body = {"messages": [{"role": "user", "content": "Weather in Paris and Oslo?"}], "tools": [WEATHER],
            "tool_choice": "required", "parallel_tool_calls": True}
    ex = chat_ex()
    reply = await gemini.chat(ex, body, MODEL)
    assert fake.requests[-1]["body"]["tools"] == [{"functionDeclarations": [{
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}]
    assert fake.requests[-1]["body"]["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert ex.dropped_params == ["parallel_tool_calls"]

    choice = reply.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None
    assert [c["function"] for c in message["tool_calls"]] == [
        {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"name": "get_weather", "arguments": '{"city":"Oslo"}'}]
    assert message["tool_calls"][0]["extra_content"] == {"google": {"thought_signature": "c2lnLTE="}}

    fake.set_function_calls(None)
    follow_up = {**body, "tool_choice": "auto", "messages": [
        *body["messages"], message,
        {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": '{"temp_c": 21}'},
        {"role": "tool", "tool_call_id": message["tool_calls"][1]["id"], "content": "cold"},
    ]}
    reply = await gemini.chat(chat_ex(), follow_up, MODEL)
    assert fake.requests[-1]["body"]["contents"][1:] == [
        {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLTE="},
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
            {"functionResponse": {"name": "get_weather", "response": {"content": "cold"}}}]},
    ]
    assert reply.body["choices"][0]["message"]["content"] == "Echo: "
    assert reply.body["choices"][0]["finish_reason"] == "stop"


async def test_images_and_json_schema_reach_gemini(fake: FakeGemini, gemini: GeminiProvider) -> None:
    png = base64.b64encode(b"png-bytes").decode()
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Describe"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}]}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "d", "schema": {
            "type": "object", "properties": {"d": {"type": "string"}}}}}}
    await gemini.chat(chat_ex(), body, MODEL)
    sent = fake.requests[-1]["body"]
    assert sent["contents"][0]["parts"][1:] == [
        {"inlineData": {"mimeType": "image/png", "data": png}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/a.jpg"}}]
    assert sent["generationConfig"] == {"responseMimeType": "application/json", "responseJsonSchema": {
        "type": "object", "properties": {"d": {"type": "string"}}}}


async def test_untranslatable_request_fails_before_any_http(fake: FakeGemini, gemini: GeminiProvider) -> None:
    with pytest.raises(InvalidRequest) as info:
        await gemini.chat(chat_ex(), {"messages": MESSAGES, "logprobs": True}, MODEL)
    assert info.value.param == "logprobs"
    with pytest.raises(InvalidRequest):
        await collect(gemini.stream(chat_ex(), {"messages": MESSAGES, "n": 3, "stream": True}, MODEL))
    assert fake.requests == []


async def test_drop_params_from_the_profile(fake: FakeGemini, session: aiohttp.ClientSession) -> None:
    gem = provider(session, fake.base_url, drop_params=("logprobs", "top_logprobs"))
    ex = chat_ex()
    reply = await gem.chat(ex, {"messages": MESSAGES, "logprobs": True, "top_logprobs": 2}, MODEL)
    assert ex.dropped_params == ["logprobs", "top_logprobs"]
    assert "generationConfig" not in fake.requests[-1]["body"]
    assert reply.body["choices"][0]["finish_reason"] == "stop"


# --- streams -------------------------------------------------------------------------------------------------------


async def test_stream_text(fake: FakeGemini, gemini: GeminiProvider) -> None:
    ex = chat_ex()
    body = {"messages": MESSAGES, "stream": True, "stream_options": {"include_usage": False}, "user": "u"}
    events = await collect(gemini.stream(ex, body, MODEL))

    request = fake.requests[-1]
    assert request["path"] == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert request["query"] == {"alt": "sse"}
    assert request["headers"]["x-goog-api-key"] == KEY
    assert request["body"] == {"contents": expected_contents(),
                               "systemInstruction": {"parts": [{"text": "You are terse."}]}}
    assert ex.dropped_params == ["user"]

    text = gemini_answer_for(expected_contents())
    chunks = [e.data for e in events]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == MODEL for c in chunks)
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"] == "chatcmpl-" + ex.id[4:]
    assert all(e.raw is None and e.format == "openai" for e in events)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    contents = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert len(contents) == 3  # 5 words, 2 per event
    assert "".join(contents) == text
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert chunks[-1]["choices"] == []
    prompt = gemini_prompt_tokens_for(expected_contents(), {"parts": [{"text": "You are terse."}]})
    assert events[-1].usage == Usage(input_tokens=prompt, output_tokens=5)
    assert chunks[-1]["usage"] == events[-1].usage.to_openai()


async def test_function_calls_for_a_number_of_answers_then_text(fake: FakeGemini, gemini: GeminiProvider) -> None:
    fake.set_function_calls([{"name": "get_weather", "args": {"city": "Paris"}}], times=1)
    body = {"messages": MESSAGES, "tools": [WEATHER]}
    first = await gemini.chat(chat_ex(), body, MODEL)
    second = await gemini.chat(chat_ex(), body, MODEL)
    assert first.body["choices"][0]["finish_reason"] == "tool_calls"
    assert second.body["choices"][0]["message"]["content"].startswith("Echo: ")


async def test_stream_tool_calls(fake: FakeGemini, gemini: GeminiProvider) -> None:
    fake.set_function_calls([{"name": "get_weather", "args": {"city": "Paris"}},
                             {"name": "get_weather", "args": {"city": "Rome"}}])
    events = await collect(gemini.stream(chat_ex(), {"messages": MESSAGES, "tools": [WEATHER], "stream": True},
                                         MODEL))
    deltas = [e.data["choices"][0]["delta"] for e in events if e.data["choices"]]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert [(c["index"], c["type"], c["function"]) for c in calls] == [
        (0, "function", {"name": "get_weather", "arguments": '{"city":"Paris"}'}),
        (1, "function", {"name": "get_weather", "arguments": '{"city":"Rome"}'})]
    assert all(c["id"].startswith("call_") for c in calls)
    assert events[-2].data["choices"][0]["finish_reason"] == "tool_calls"
    assert events[-1].usage is not None and events[-1].usage.output_tokens == 10


async def test_stream_refused_before_any_event(fake: FakeGemini, gemini: GeminiProvider) -> None:
    fake.fail_next(503, message="The model is overloaded. Please try again later.")
    events = gemini.stream(chat_ex(), {"messages": MESSAGES, "stream": True}, MODEL)
    with pytest.raises(UpstreamFailure) as info:
        await anext(events)
    assert info.value.status == 503 and info.value.retryable
    assert info.value.message == "The model is overloaded. Please try again later."
    assert info.value.body == {"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                                         "status": "UNAVAILABLE"}}


async def test_stream_breaking_midway(fake: FakeGemini, gemini: GeminiProvider) -> None:
    fake.break_next_stream(after_events=1, status=500, message="An internal error has occurred.")
    seen: list[StreamEvent] = []
    with pytest.raises(UpstreamFailure) as info:
        async for event in gemini.stream(chat_ex(), {"messages": MESSAGES, "stream": True}, MODEL):
            seen.append(event)
    assert info.value.status == 500
    assert "An internal error has occurred." in info.value.message
    assert [e.data["choices"][0]["delta"] for e in seen] == [{"role": "assistant", "content": ""},
                                                              {"content": "Echo: hello"}]


# --- failures --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "name", "retryable"), [
    (429, "RESOURCE_EXHAUSTED", True), (503, "UNAVAILABLE", True), (500, "INTERNAL", True),
    (504, "DEADLINE_EXCEEDED", True), (400, "INVALID_ARGUMENT", False), (404, "NOT_FOUND", False),
    (403, "PERMISSION_DENIED", False),
])
async def test_error_statuses(fake: FakeGemini, gemini: GeminiProvider, status: int, name: str,
                              retryable: bool) -> None:
    fake.fail_next(status, message=f"boom {status}")
    with pytest.raises(UpstreamFailure) as info:
        await gemini.chat(chat_ex(), {"messages": MESSAGES}, MODEL)
    failure = info.value
    assert (failure.status, failure.retryable, failure.message) == (status, retryable, f"boom {status}")
    assert failure.body is not None and failure.body["error"]["status"] == name
    assert not failure.timeout


async def test_rate_limit_retry_delay(fake: FakeGemini, gemini: GeminiProvider) -> None:
    fake.fail_next(429, message="You exceeded your current quota.", retry_after=37)
    with pytest.raises(UpstreamFailure) as info:
        await gemini.chat(chat_ex(), {"messages": MESSAGES}, MODEL)
    assert info.value.status == 429 and info.value.retry_after == 37.0


async def test_bad_key_is_reported_as_401_and_never_in_the_url(fake: FakeGemini,
                                                                session: aiohttp.ClientSession) -> None:
    wrong = "AIza-wrong-key-canary-987"
    with pytest.raises(UpstreamFailure) as info:
        await provider(session, fake.base_url, key=wrong).chat(chat_ex(), {"messages": MESSAGES}, MODEL)
    assert info.value.status == 401 and not info.value.retryable
    assert info.value.message == "API key not valid. Please pass a valid API key."
    assert wrong not in str(info.value)
    request = fake.requests[-1]
    assert request["headers"]["x-goog-api-key"] == wrong
    assert wrong not in request["path"] and request["query"] == {}


async def test_key_never_in_urls(fake: FakeGemini, gemini: GeminiProvider) -> None:
    await gemini.chat(chat_ex(), {"messages": MESSAGES}, MODEL)
    await collect(gemini.stream(chat_ex(), {"messages": MESSAGES, "stream": True}, MODEL))
    await gemini.embeddings(Exchange("openai", "embeddings"), {"input": "x"}, "gemini-embedding-001")
    assert len(fake.requests) == 3
    for request in fake.requests:
        assert KEY not in request["path"] and KEY not in str(request["query"]) and "key" not in request["query"]


async def test_connection_refused_is_status_0(session: aiohttp.ClientSession) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gem = provider(session, f"http://127.0.0.1:{port}")
    with pytest.raises(UpstreamFailure) as info:
        await gem.chat(chat_ex(), {"messages": MESSAGES}, MODEL)
    assert info.value.status == 0 and info.value.retryable
    assert KEY not in info.value.message and "127.0.0.1" not in info.value.message
    with pytest.raises(UpstreamFailure) as info:
        await collect(gem.stream(chat_ex(), {"messages": MESSAGES, "stream": True}, MODEL))
    assert info.value.status == 0


async def test_stream_idle_timeout(fake: FakeGemini, session: aiohttp.ClientSession) -> None:
    """Whole answers are bounded by the router's attempt deadline; streams by the idle time between reads."""
    fake.chunk_delay_s = 0.5
    gem = provider(session, fake.base_url, timeout_s=0.2)
    with pytest.raises(UpstreamFailure) as info:
        await collect(gem.stream(chat_ex(), {"messages": MESSAGES, "stream": True}, MODEL))
    assert info.value.timeout


# --- embeddings ------------------------------------------------------------------------------------------------------


async def test_embeddings(fake: FakeGemini, gemini: GeminiProvider) -> None:
    ex = Exchange("openai", "embeddings")
    reply = await gemini.embeddings(ex, {"model": "alias", "input": ["alpha", "beta"], "dimensions": 4, "user": "u"},
                                    "gemini-embedding-001")
    request = fake.requests[-1]
    assert request["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert request["headers"]["x-goog-api-key"] == KEY
    assert request["body"] == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": t}]}, "outputDimensionality": 4}
        for t in ("alpha", "beta")]}
    assert ex.dropped_params == ["user"]
    body = reply.body
    assert body["object"] == "list" and body["model"] == "gemini-embedding-001"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(len(d["embedding"]) == 4 and d["object"] == "embedding" for d in body["data"])
    assert sum(v * v for v in body["data"][0]["embedding"]) == pytest.approx(1.0)
    assert body["usage"] == {"prompt_tokens": 0, "total_tokens": 0}
    assert reply.usage == Usage()

    again = await gemini.embeddings(ex, {"input": "alpha", "dimensions": 4, "encoding_format": "base64"},
                                    "gemini-embedding-001")
    packed = base64.b64decode(again.body["data"][0]["embedding"])
    assert struct.unpack("<4f", packed) == pytest.approx(body["data"][0]["embedding"], rel=1e-6)


async def test_embeddings_errors(fake: FakeGemini, gemini: GeminiProvider) -> None:
    with pytest.raises(InvalidRequest):
        await gemini.embeddings(Exchange("openai", "embeddings"), {"input": [[1, 2]]}, "gemini-embedding-001")
    fake.fail_next(429, message="quota")
    with pytest.raises(UpstreamFailure) as info:
        await gemini.embeddings(Exchange("openai", "embeddings"), {"input": "x"}, "gemini-embedding-001")
    assert info.value.status == 429


# --- the fake itself, where it guards the translation ----------------------------------------------------------


async def test_fake_refuses_what_gemini_refuses(fake: FakeGemini, session: aiohttp.ClientSession) -> None:
    url = f"{fake.base_url}/v1beta/models/{MODEL}:generateContent"
    headers = {"x-goog-api-key": KEY}
    cases = [
        ({"model": MODEL, "contents": [{"role": "user", "parts": [{"text": "x"}]}]}, 'Unknown name "model"'),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "user", "parts": [{"text": "x"}]}], "generationConfig": {"max_tokens": 3}},
         'Unknown name "max_tokens"'),
        ({"contents": [{"role": "user", "parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [
            {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}},
                                         "additionalProperties": False}}]}]},
         'Unknown name "additionalProperties"'),
    ]
    for body, message in cases:
        async with session.post(url, json=body, headers=headers) as resp:
            assert resp.status == 400
            error = (await resp.json())["error"]
            assert error["status"] == "INVALID_ARGUMENT" and message in error["message"], body
    async with session.post(url, json=cases[0][0]) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"]["status"] == "PERMISSION_DENIED"
