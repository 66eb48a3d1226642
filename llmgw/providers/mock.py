"""The built-in mock provider: deterministic answers, usage, streaming, and injectable latency and failures.

Contract: the answer is a pure function of the request (the last user message, ``max_tokens``, ``stop``,
``tools``), so tests and offline demos can predict it: offered tools are called (:func:`mock_tool_calls`), else
the text is "Mock answer: " and the user's words. Usage is estimated from the text (about four characters a
token). A stream carries the answer in several chunks, then a finish chunk, then a usage chunk. ``latency_ms``
delays the answer (the first chunk of a stream); ``fail_rate`` makes that share of calls fail with
``fail_status``. The request is read as :meth:`MockProvider.build` leaves it: screened by the mock's parameter
table like any provider's (what it cannot honour is a 400 naming it) and without the provider's ``drop_params``.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..exchange import Exchange, StreamEvent, UpstreamReply, Usage
from .base import ProviderBase, UpstreamFailure, record_dropped

_MAX_WORDS = 64


def estimate_tokens(text: str) -> int:
    """A rough token count: one token per four characters, at least one for non-empty text."""
    return math.ceil(len(text) / 4) if text else 0


def message_text(message: dict[str, Any]) -> str:
    """The text of one chat message, whatever shape its ``content`` has."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def mock_answer(body: dict[str, Any]) -> tuple[str, str]:
    """``(text, finish_reason)`` for a chat request: the mock's deterministic answer."""
    messages = body.get("messages") or []
    last_user = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    words = ["Mock", "answer:", *last_user.split()][:_MAX_WORDS]
    finish = "stop"
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and 0 < limit < len(words):
        words, finish = words[:limit], "length"
    text = " ".join(words)
    stops = body.get("stop")
    for stop in [stops] if isinstance(stops, str) else (stops or []):
        if isinstance(stop, str) and stop and stop in text:
            text, finish = text[: text.index(stop)], "stop"
    return text, finish


def _value_for(schema: dict[str, Any], text: str) -> Any:
    kind = schema.get("type")
    if schema.get("enum"):
        return schema["enum"][0]
    return {"integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}.get(kind, text)


def mock_tool_calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool calls the mock makes: when tools are offered and the last message is not a tool result, it calls
    the chosen tool (or the first) with arguments filled from the schema's required properties."""
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    messages = body.get("messages") or []
    choice = body.get("tool_choice")
    if not tools or choice == "none" or (messages and messages[-1].get("role") == "tool"):
        return []
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        tools = [t for t in tools if t["function"].get("name") == name] or tools
    function = tools[0]["function"]
    schema = function.get("parameters") or {}
    last_user = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    arguments = {key: _value_for((schema.get("properties") or {}).get(key) or {}, last_user)
                 for key in schema.get("required") or list(schema.get("properties") or {})[:1]}
    digest = hashlib.sha256(orjson.dumps(arguments) + function["name"].encode()).hexdigest()[:24]
    return [{"id": f"call_{digest}", "type": "function",
             "function": {"name": function["name"], "arguments": orjson.dumps(arguments).decode()}}]


def _prompt_tokens(body: dict[str, Any]) -> int:
    return sum(estimate_tokens(message_text(m)) + 3 for m in body.get("messages") or []) + 3


class MockProvider(ProviderBase):
    def build(self, body: dict[str, Any], model: str, *, stream: bool = False) -> tuple[dict[str, Any], list[str]]:
        """The request the mock answers (pure): ``body`` screened by the mock's parameter table
        (:data:`llmgw.providers.spec.MOCK_PARAMS`: ``n > 1``, ``response_format``, ``logprobs``, … are a 400
        unless ``drop_params`` lists them) and without the fields ``drop_params`` lists (the model it answers as
        is ``model``)."""
        return self.spec.params.screen(body, self.config.drop_params)

    def _request(self, ex: Exchange, body: dict[str, Any], model: str) -> dict[str, Any]:
        request, dropped = self.build(body, model)
        record_dropped(ex, dropped)
        return request

    async def _maybe_fail(self) -> None:
        if self.config.latency_ms:
            await asyncio.sleep(self.config.latency_ms / 1000.0)
        if self.config.fail_rate and self.ctx.rng.random() < self.config.fail_rate:
            raise UpstreamFailure(self.config.fail_status, f"mock failure (fail_rate={self.config.fail_rate})")

    async def chat(self, ex: Exchange, body: dict[str, Any], model: str) -> UpstreamReply:
        body = self._request(ex, body, model)
        await self._maybe_fail()
        calls = mock_tool_calls(body)
        text, finish = ("", "tool_calls") if calls else mock_answer(body)
        usage = Usage(input_tokens=_prompt_tokens(body),
                      output_tokens=estimate_tokens(text) + sum(len(c["function"]["arguments"]) // 4 + 1
                                                                for c in calls))
        message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        return UpstreamReply({
            "id": "chatcmpl-mock-" + ex.id[4:],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage.to_openai(),
        }, usage=usage)

    async def stream(self, ex: Exchange, body: dict[str, Any], model: str) -> AsyncIterator[StreamEvent]:
        body = self._request(ex, body, model)
        await self._maybe_fail()
        text, finish = mock_answer(body)
        base = {"id": "chatcmpl-mock-" + ex.id[4:], "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model}

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> StreamEvent:
            return StreamEvent({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                    "finish_reason": finish_reason}]})

        calls = mock_tool_calls(body)
        text, finish = ("", "tool_calls") if calls else mock_answer(body)
        yield chunk({"role": "assistant", "content": ""})
        if calls:
            for index, call in enumerate(calls):
                arguments = call["function"]["arguments"]
                yield chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                             "function": {"name": call["function"]["name"], "arguments": ""}}]})
                half = len(arguments) // 2
                for piece in (arguments[:half], arguments[half:]):
                    yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        else:
            words = text.split(" ")
            step = max(1, math.ceil(len(words) / 4))
            for i in range(0, len(words), step):
                piece = " ".join(words[i:i + step])
                yield chunk({"content": piece if i == 0 else " " + piece})
        yield chunk({}, finish)
        usage = Usage(input_tokens=_prompt_tokens(body),
                      output_tokens=estimate_tokens(text) + sum(len(c["function"]["arguments"]) // 4 + 1
                                                                for c in calls))
        yield StreamEvent({**base, "choices": [], "usage": usage.to_openai()}, usage=usage)

    async def embeddings(self, ex: Exchange, body: dict[str, Any], model: str) -> UpstreamReply:
        body = self._request(ex, body, model)
        await self._maybe_fail()
        inputs = body["input"]
        texts = [inputs] if isinstance(inputs, str) else [str(x) for x in inputs]
        dims = body.get("dimensions") or 16
        data = [{"object": "embedding", "index": i, "embedding": _vector(t, dims)} for i, t in enumerate(texts)]
        tokens = sum(estimate_tokens(t) for t in texts)
        return UpstreamReply({"object": "list", "data": data, "model": model,
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
                             usage=Usage(input_tokens=tokens))


def _vector(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for ``text``."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [(digest[i % len(digest)] - 127.5) / 127.5 for i in range(dims)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]
