"""The Responses API upstream side, without HTTP: which kinds speak it, the pure ``build`` of a passed-through
request, and how upstream events are read (usage, failures, the opening events held for failover)."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from llmgw.exchange import Exchange, Usage
from llmgw.profile import ProviderConfig
from llmgw.providers.anthropic import AnthropicProvider
from llmgw.providers.base import ProviderBase, ProviderContext, UpstreamFailure
from llmgw.providers.gemini import GeminiProvider
from llmgw.providers.mock import MockProvider
from llmgw.providers.openai import OpenAIProvider
from llmgw.providers.responses_api import _Opening, stream_event
from llmgw.sse import SSEMessage


def make(cls: type[ProviderBase], kind: str, **config: Any) -> Any:
    cfg = ProviderConfig(name="p", kind=kind, base_url=config.pop("base_url", None), **config)
    return cls(ProviderContext(cfg, None, "key", random.Random(0)))  # type: ignore[arg-type]  # no HTTP here


def test_only_the_openai_kind_speaks_the_responses_api() -> None:
    openai = make(OpenAIProvider, "openai")
    assert openai.speaks("openai") and openai.speaks("responses") and openai.native_format == "openai"
    assert not make(OpenAIProvider, "openai-compatible", base_url="http://h/v1").speaks("responses")
    assert not make(MockProvider, "mock").speaks("responses")
    assert make(AnthropicProvider, "anthropic").speaks("anthropic")
    assert not make(GeminiProvider, "gemini").speaks("responses")


def test_a_responses_client_body_is_its_native_body_only_where_it_is_spoken() -> None:
    ex = Exchange("responses", "chat")
    ex.client_body = {"model": "alias", "input": "hi"}
    assert make(OpenAIProvider, "openai").responses_body(ex) is ex.client_body
    assert make(OpenAIProvider, "openai-compatible", base_url="http://h/v1").responses_body(ex) is None
    chat = Exchange("openai", "chat")
    assert make(OpenAIProvider, "openai").responses_body(chat) is None


def test_build_replaces_only_the_model_and_removes_drop_params() -> None:
    provider = make(OpenAIProvider, "openai", drop_params=("store", "include"))
    native = {"model": "alias", "input": [{"type": "hologram_2031"}], "store": False, "include": None,
              "future": {"x": 1}}
    payload, dropped = provider._responses.build(native, "gpt-5")
    assert payload == {"model": "gpt-5", "input": [{"type": "hologram_2031"}], "future": {"x": 1}}
    assert dropped == ["store"]    # include was null: nothing the client asked for was lost
    assert native["model"] == "alias"


def message(data: dict[str, Any]) -> SSEMessage:
    return SSEMessage(data["type"], orjson.dumps(data))


def test_final_events_carry_the_usage_and_keep_their_bytes() -> None:
    usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 5,
             "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 15}
    data = {"type": "response.completed", "response": {"id": "resp_1", "usage": usage}, "sequence_number": 9}
    event = stream_event("response.completed", orjson.dumps(data))
    assert event.format == "responses" and event.data == data
    assert event.usage == Usage(input_tokens=10, output_tokens=5, cached_tokens=4, reasoning_tokens=2)
    assert event.raw == b"event: response.completed\ndata: " + orjson.dumps(data) + b"\n\n"
    assert stream_event(None, orjson.dumps({"type": "response.output_text.delta", "delta": "x"})).usage is None


@pytest.mark.parametrize(("data", "status"), [
    ({"type": "error", "code": "rate_limit_exceeded", "message": "slow down", "param": None}, 429),
    ({"type": "error", "code": "server_error", "message": "boom", "param": None}, 502),
    ({"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}, 502),
    ({"type": "response.failed", "response": {"id": "r", "error": {"code": "server_error", "message": "x"}}}, 502),
])
def test_error_and_failed_events_are_upstream_failures(data: dict[str, Any], status: int) -> None:
    with pytest.raises(UpstreamFailure) as info:
        stream_event(None, orjson.dumps(data))
    assert info.value.status == status and info.value.body == data


def test_the_opening_events_wait_for_the_answer_and_a_failure_before_it_yields_nothing() -> None:
    created = {"type": "response.created", "response": {"id": "r"}}
    progress = {"type": "response.in_progress", "response": {"id": "r"}}
    added = {"type": "response.output_item.added", "output_index": 0, "item": {"id": "m", "type": "message"}}
    opening = _Opening()
    assert opening.ready([message(created), message(progress)]) == ([], None)
    events, failure = opening.ready([message(added), message({**progress, "late": True})])
    assert [e.data["type"] for e in events] == ["response.created", "response.in_progress",
                                                "response.output_item.added", "response.in_progress"]
    assert [e.flush for e in events] == [False, False, False, True] and failure is None
    failing = _Opening()
    events, failure = failing.ready([message(created), message({"type": "error", "code": "server_error",
                                                                "message": "down"})])
    assert events == [] and failure is not None and failure.retryable
