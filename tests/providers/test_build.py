"""Each adapter's pure ``build``: the upstream payload and the dropped names, without HTTP and without touching
the exchange or the request; and what chat/stream do with it (record dropped once, send what was built from the
body they are given)."""

from __future__ import annotations

import copy
import random
from typing import Any

import orjson
import pytest

from llmgw.errors import InvalidRequest
from llmgw.exchange import Exchange
from llmgw.profile import ProviderConfig
from llmgw.providers.anthropic import AnthropicProvider
from llmgw.providers.base import ProviderBase, ProviderContext
from llmgw.providers.gemini import GeminiProvider
from llmgw.providers.mock import MockProvider
from llmgw.providers.openai import OpenAIProvider
from llmgw.sse import SSEDecoder, encode_data
from llmgw.translate.anthropic_stream import sse_bytes

HI = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]


def make(cls: type[ProviderBase], kind: str, **config: Any) -> Any:
    cfg = ProviderConfig(name="p", kind=kind, base_url=config.pop("base_url", None), **config)
    return cls(ProviderContext(cfg, None, "key", random.Random(0)))  # type: ignore[arg-type]  # no HTTP here


def frozen(value: Any) -> Any:
    return copy.deepcopy(value)


# --- OpenAI-format upstreams -------------------------------------------------------------------------------------


def test_openai_build_replaces_the_model_asks_streams_for_usage_and_drops_listed_fields() -> None:
    provider = make(OpenAIProvider, "openai-compatible", base_url="http://h/v1",
                    drop_params=("parallel_tool_calls", "stream_options", "seed"))
    body = {"model": "alias", "messages": HI, "parallel_tool_calls": False, "seed": None}
    before = frozen(body)
    payload, dropped = provider.build(body, "gpt-x")
    assert payload == {"model": "gpt-x", "messages": HI}
    assert dropped == ["parallel_tool_calls"]   # the client sent it; seed was null, stream_options absent
    payload, dropped = provider.build(body, "gpt-x", stream=True)
    assert payload == {"model": "gpt-x", "messages": HI, "stream": True}   # stream_options listed: not sent
    assert dropped == ["parallel_tool_calls"]
    assert body == before
    plain = make(OpenAIProvider, "openai")
    payload, dropped = plain.build({"messages": HI, "stream_options": {"x": 1}}, "m", stream=True)
    assert payload["stream_options"] == {"x": 1, "include_usage": True} and dropped == []
    assert plain.base_url == "https://api.openai.com/v1" and plain.native_format == "openai"


def test_openai_embeddings_build() -> None:
    provider = make(OpenAIProvider, "openai", drop_params=("user",))
    assert provider.build_embeddings({"model": "a", "input": "x", "user": "u"}, "emb") == (
        {"model": "emb", "input": "x"}, ["user"])


# --- Anthropic ---------------------------------------------------------------------------------------------------


def test_anthropic_build_translates_the_canonical_body() -> None:
    provider = make(AnthropicProvider, "anthropic", drop_params=("logprobs",))
    body = {"model": "alias", "messages": HI, "temperature": 0.5, "seed": 3, "logprobs": True, "stream": True}
    before = frozen(body)
    payload, dropped = provider.build(body, "claude-x")
    assert payload == {"model": "claude-x", "system": "Be brief.", "max_tokens": 4096, "temperature": 0.5,
                       "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    assert dropped == ["logprobs", "seed"]
    assert provider.build(body, "claude-x", stream=True)[0]["stream"] is True
    assert body == before


def test_anthropic_build_refuses_a_temperature_above_one() -> None:
    provider = make(AnthropicProvider, "anthropic")
    with pytest.raises(InvalidRequest) as info:
        provider.build({"messages": HI, "temperature": 1.4}, "claude-x")
    assert info.value.status == 400 and info.value.param == "temperature"
    assert "Anthropic targets, which accept 0 to 1" in info.value.message


def test_anthropic_build_passes_a_native_body_through_with_model_replaced_and_drop_params_removed() -> None:
    provider = make(AnthropicProvider, "anthropic", drop_params=("context_management",))
    native = {"model": "alias", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
              "thinking": {"type": "enabled", "budget_tokens": 1024}, "context_management": {"edits": []},
              "temperature": 1}
    payload, dropped = provider.build({"messages": HI, "temperature": 7}, "claude-x", native=native)
    assert payload == {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
                       "thinking": {"type": "enabled", "budget_tokens": 1024}, "temperature": 1}
    assert dropped == ["context_management"]


class Capture:
    """Stands in for ``ProviderBase.post``: records what would be sent, answers ``answer``."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.sent: list[dict[str, Any]] = []

    async def __call__(self, url: str, payload: bytes, headers: Any) -> bytes:
        self.sent.append(orjson.loads(payload))
        return orjson.dumps(self.answer)


ANTHROPIC_ANSWER = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                    "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                    "usage": {"input_tokens": 3, "output_tokens": 1}}


async def test_anthropic_chat_translates_the_body_it_is_given_not_the_exchanges(
        monkeypatch: pytest.MonkeyPatch) -> None:
    provider = make(AnthropicProvider, "anthropic")
    post = Capture(ANTHROPIC_ANSWER)
    monkeypatch.setattr(provider, "post", post)
    ex = Exchange("openai", "chat", body={"messages": [{"role": "user", "content": "from the exchange"}]})
    reply = await provider.chat(ex, {"messages": [{"role": "user", "content": "given"}], "seed": 1}, "claude-x")
    assert post.sent[0]["messages"] == [{"role": "user", "content": [{"type": "text", "text": "given"}]}]
    assert reply.format == "openai" and reply.body["choices"][0]["message"]["content"] == "ok"
    await provider.chat(ex, {"messages": HI, "seed": 1}, "claude-x")
    assert ex.dropped_params == ["seed"]   # recorded once across attempts


async def test_anthropic_chat_passes_an_anthropic_clients_own_body_through(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = make(AnthropicProvider, "anthropic")
    post = Capture(ANTHROPIC_ANSWER)
    monkeypatch.setattr(provider, "post", post)
    client = {"model": "alias", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "top_k": 3}
    ex = Exchange("anthropic", "chat", client_body=client)
    reply = await provider.chat(ex, {"messages": HI}, "claude-x")
    assert post.sent == [{**client, "model": "claude-x"}]
    assert reply.format == "anthropic" and reply.body == ANTHROPIC_ANSWER


# --- Gemini and the mock ------------------------------------------------------------------------------------------


def test_gemini_build_is_the_translation_with_its_dropped_hints() -> None:
    provider = make(GeminiProvider, "gemini", drop_params=("logprobs",))
    body = {"model": "alias", "messages": HI, "user": "u", "logprobs": True, "temperature": 1.5}
    before = frozen(body)
    payload, dropped = provider.build(body, "gemini-x")
    assert payload == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                       "systemInstruction": {"parts": [{"text": "Be brief."}]},
                       "generationConfig": {"temperature": 1.5}}
    assert dropped == ["logprobs", "user"]
    assert body == before
    assert provider.build_embeddings({"input": "x", "dimensions": 8, "user": "u"}, "emb") == (
        {"requests": [{"model": "models/emb", "content": {"parts": [{"text": "x"}]}, "outputDimensionality": 8}]},
        ["user"])


async def test_mock_answers_the_request_without_its_drop_params() -> None:
    provider = make(MockProvider, "mock", drop_params=("tools",))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    body = {"messages": [{"role": "user", "content": "hi"}], "tools": tools}
    assert provider.build(body, "m") == ({"messages": [{"role": "user", "content": "hi"}]}, ["tools"])
    ex = Exchange("openai", "chat")
    reply = await provider.chat(ex, body, "m")
    assert reply.body["choices"][0]["message"]["content"] == "Mock answer: hi"   # no tool call: tools were dropped
    assert ex.dropped_params == ["tools"]


@pytest.mark.parametrize(("cls", "kind"), [(OpenAIProvider, "openai"), (GeminiProvider, "gemini"),
                                          (MockProvider, "mock")])
async def test_count_tokens_defaults_to_none_meaning_estimate_locally(cls: type[ProviderBase], kind: str) -> None:
    assert await make(cls, kind).count_tokens(Exchange("anthropic", "count_tokens"), "m") is None


def test_native_formats_come_from_the_registry() -> None:
    assert make(AnthropicProvider, "anthropic").native_format == "anthropic"
    assert make(GeminiProvider, "gemini").native_format == "gemini"
    assert make(MockProvider, "mock").native_format == "openai"
    with pytest.raises(ValueError, match="base_url: required"):
        make(OpenAIProvider, "openai-compatible")


# --- one SSE encoder ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", [None, "message_delta"])
@pytest.mark.parametrize("data", [b'{"a":1}', b"line one\nline two", b"", b"\n"])
def test_encode_data_round_trips_through_the_decoder(data: bytes, event: str | None) -> None:
    [message] = SSEDecoder().feed(encode_data(data, event) if data else encode_data(b"x", event))
    assert (message.event, message.data) == (event, data or b"x")


def test_anthropic_event_bytes_are_what_they_were() -> None:
    assert sse_bytes({"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert sse_bytes({"type": "x"}, "error") == b'event: error\ndata: {"type":"x"}\n\n'
    assert encode_data(b"{}") == b"data: {}\n\n"
