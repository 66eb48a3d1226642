"""Anthropic streams <-> canonical (OpenAI ``chat.completion.chunk``) streams, both ways.

Contract: small state machines, no I/O. :class:`AnthropicStreamToOpenAI` turns parsed Anthropic SSE events into
canonical chunks (usage normalised with :func:`~llmgw.translate.anthropic.usage_from_anthropic`);
:class:`OpenAIStreamToAnthropic` turns canonical chunks into Anthropic SSE event bytes.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from ..exchange import StreamEvent, Usage
from ..sse import encode_data
from .anthropic import FINISH_TO_ANTHROPIC, STOP_TO_OPENAI, message_id, usage_from_anthropic, usage_to_anthropic


class AnthropicStreamToOpenAI:
    """Anthropic SSE events (parsed) in, canonical ``chat.completion.chunk`` events out.

    ``feed(name, data)`` returns the chunks for one event; an ``error`` event is returned by :attr:`error`
    for the adapter to raise. The last chunk, on ``message_stop``, carries only the usage.
    """

    def __init__(self) -> None:
        self.usage = Usage()
        self._raw_usage: dict[str, Any] = {}
        self._id = "chatcmpl-" + uuid.uuid4().hex
        self._model: str | None = None
        self._created = int(time.time())
        self._tool_index: dict[int, int] = {}
        self.error: dict[str, Any] | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> StreamEvent:
        return StreamEvent({"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                            "model": self._model, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                               "finish_reason": finish}]})

    def _merge_usage(self, usage: dict[str, Any] | None) -> None:
        if usage:
            self._raw_usage.update({k: v for k, v in usage.items() if v is not None})
            self.usage = usage_from_anthropic(self._raw_usage)

    def feed(self, name: str | None, data: dict[str, Any]) -> list[StreamEvent]:
        kind = data.get("type") or name
        if kind == "message_start":
            message = data.get("message") or {}
            self._id = message.get("id") or self._id
            self._model = message.get("model")
            self._merge_usage(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = len(self._tool_index)
                self._tool_index[data.get("index", 0)] = index
                return [self._chunk({"tool_calls": [{"index": index, "id": block.get("id"), "type": "function",
                                                     "function": {"name": block.get("name"), "arguments": ""}}]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                index = self._tool_index.get(data.get("index", 0), 0)
                return [self._chunk({"tool_calls": [{"index": index,
                                                     "function": {"arguments": delta.get("partial_json", "")}}]})]
            return []
        if kind == "message_delta":
            self._merge_usage(data.get("usage"))
            reason = (data.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, STOP_TO_OPENAI.get(reason, "stop"))] if reason else []
        if kind == "message_stop":
            event = StreamEvent({"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                                 "model": self._model, "choices": [], "usage": self.usage.to_openai()},
                                usage=self.usage)
            return [event]
        if kind == "error":
            self.error = data.get("error") or {"type": "api_error", "message": "stream error"}
        return []


def sse_bytes(data: dict[str, Any], name: str | None = None) -> bytes:
    """One Anthropic SSE event (``event:`` line named after the event's type unless ``name`` is given)."""
    return encode_data(orjson.dumps(data), name or data.get("type") or "message")


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return sse_bytes(data, name)


class OpenAIStreamToAnthropic:
    """Canonical chunks in, Anthropic SSE event bytes out (``feed`` per chunk, ``finish`` at the end).

    The stop reason and the usage arrive in separate canonical chunks; both go out together in ``message_delta``
    at :meth:`finish`, which the renderer calls only when the upstream finished normally.
    """

    def __init__(self, model: str) -> None:
        self._model = model
        self.started = False
        self._block: int = -1
        self._open: str | None = None           # "text" or "tool"
        self._tool_blocks: dict[int, int] = {}  # canonical tool-call index -> block index
        self.stop_reason: str | None = None
        self.usage = Usage()

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        self.started = True
        message = {"id": message_id(chunk.get("id")), "type": "message", "role": "assistant", "content": [],
                   "model": chunk.get("model") or self._model, "stop_reason": None, "stop_sequence": None,
                   "usage": usage_to_anthropic(self.usage)}
        return [_sse("message_start", {"type": "message_start", "message": message}),
                _sse("ping", {"type": "ping"})]

    def _close_block(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [_sse("content_block_stop", {"type": "content_block_stop", "index": self._block})]

    def _open_block(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        out = self._close_block()
        self._block += 1
        self._open = kind
        out.append(_sse("content_block_start", {"type": "content_block_start", "index": self._block,
                                                "content_block": block}))
        return out

    def feed(self, chunk: dict[str, Any], usage: Usage | None = None) -> list[bytes]:
        out = [] if self.started else self._start(chunk)
        if usage is not None:
            self.usage = usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if self._open != "text":
                    out += self._open_block("text", {"type": "text", "text": ""})
                out.append(_sse("content_block_delta", {"type": "content_block_delta", "index": self._block,
                                                        "delta": {"type": "text_delta", "text": text}}))
            for call in delta.get("tool_calls") or []:
                out += self._tool_delta(call)
            if choice.get("finish_reason"):
                self.stop_reason = FINISH_TO_ANTHROPIC.get(choice["finish_reason"], "end_turn")
        return out

    def _tool_delta(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        index = call.get("index", 0)
        function = call.get("function") or {}
        if index not in self._tool_blocks:
            call_id = call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}"
            out += self._open_block("tool", {"type": "tool_use", "id": call_id, "name": function.get("name"),
                                             "input": {}})
            self._tool_blocks[index] = self._block
        arguments = function.get("arguments")
        if arguments:
            out.append(_sse("content_block_delta", {"type": "content_block_delta", "index": self._tool_blocks[index],
                                                    "delta": {"type": "input_json_delta", "partial_json": arguments}}))
        return out

    def finish(self) -> list[bytes]:
        out = [] if self.started else self._start({})
        out += self._close_block()
        out.append(_sse("message_delta", {"type": "message_delta",
                                          "delta": {"stop_reason": self.stop_reason or "end_turn",
                                                    "stop_sequence": None},
                                          "usage": usage_to_anthropic(self.usage)}))
        out.append(_sse("message_stop", {"type": "message_stop"}))
        return out


def error_event(error_type: str, message: str) -> bytes:
    """An Anthropic ``error`` SSE event."""
    return _sse("error", {"type": "error", "error": {"type": error_type, "message": message}})
