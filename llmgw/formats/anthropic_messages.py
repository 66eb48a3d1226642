"""The Anthropic Messages client format: validating requests, rendering answers, streams and errors.

Contract:
- ``AnthropicFormat.parse`` validates the fields the gateway relies on (400 naming the field, nothing changed),
  keeps the client's body for Anthropic upstreams, and prepares the canonical translation for the others — a
  translation problem becomes the exchange's ``translation_error``, raised only if a non-Anthropic target is
  tried.
- Answers from an Anthropic upstream are forwarded as they came (bytes and events); canonical answers are
  translated. Streams always report usage in ``message_start``/``message_delta``; an upstream failure after the
  first byte ends the stream with an ``error`` event, never with ``message_stop``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from ..errors import GatewayError, InvalidRequest
from ..exchange import Exchange, StreamEvent
from ..providers.base import UpstreamFailure
from ..translate import anthropic as tr
from ..translate.anthropic_stream import OpenAIStreamToAnthropic, error_event, sse_bytes
from .openai_chat import JSON_TYPE, check_depth, invalid_field, is_int, is_number
from .streaming import forward_stream


def validate_messages(body: Mapping[str, Any], *, count_only: bool = False) -> None:
    """Check an Anthropic Messages request (or a count_tokens request with ``count_only``)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_field("model", "required: a non-empty string (the model alias to call)")
    if not count_only:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise invalid_field("max_tokens", "required (a positive integer)")
        if not is_int(max_tokens) or max_tokens < 1:
            raise invalid_field("max_tokens", "must be a positive integer")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_field("messages", "required: a non-empty array of messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid_field(f"messages.{i}", "must be an object")
        if message.get("role") not in ("user", "assistant"):
            raise invalid_field(f"messages.{i}.role", "must be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, list):
            for j, block in enumerate(content):
                if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                    raise invalid_field(f"messages.{i}.content.{j}", "must be a content block with a 'type'")
        elif not isinstance(content, str):
            raise invalid_field(f"messages.{i}.content", "must be a string or an array of content blocks")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise invalid_field("system", "must be a string or an array of text blocks")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise invalid_field("stream", "must be a boolean")
    for name, high in (("temperature", 1.0), ("top_p", 1.0)):
        value = body.get(name)
        if value is not None and (not is_number(value) or not 0 <= value <= high):
            raise invalid_field(name, f"must be a number between 0 and {high:g}")
    if body.get("top_k") is not None and (not is_int(body["top_k"]) or body["top_k"] < 0):
        raise invalid_field("top_k", "must be a non-negative integer")
    stops = body.get("stop_sequences")
    if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) for s in stops)):
        raise invalid_field("stop_sequences", "must be an array of strings")
    tools = body.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
        raise invalid_field("tools", "must be an array of tool objects")
    choice = body.get("tool_choice")
    if choice is not None and not (isinstance(choice, dict) and choice.get("type") in ("auto", "any", "tool", "none")):
        raise invalid_field("tool_choice", "must be an object with type auto, any, tool or none")
    check_depth(body)


def estimate_input_tokens(body: Mapping[str, Any]) -> int:
    """A local estimate of a request's input tokens (about four characters a token, plus framing)."""
    chars = 0
    for message in body.get("messages") or []:
        content = message.get("content")
        chars += len(content) if isinstance(content, str) else len(orjson.dumps(content or []))
        chars += 12
    system = body.get("system")
    if system:
        chars += len(system) if isinstance(system, str) else len(orjson.dumps(system))
    if body.get("tools"):
        chars += len(orjson.dumps(body["tools"]))
    return max(1, math.ceil(chars / 4))


def render_error(error: GatewayError, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(error.anthropic_body()), status=error.status, content_type=JSON_TYPE,
                        headers={**(headers or {}), **error.headers()})


def render_reply(ex: Exchange, headers: dict[str, str]) -> web.Response:
    assert ex.reply is not None
    reply = ex.reply
    if reply.format == "anthropic":
        raw = reply.raw if reply.raw is not None else orjson.dumps(reply.body)
    else:
        raw = orjson.dumps(tr.openai_response_to_anthropic(reply.body, ex.usage))
    return web.Response(body=raw, status=200, content_type=JSON_TYPE, headers=headers)


def _note_native(ex: Exchange, data: dict[str, Any]) -> None:
    """Record the answer's text and stop reason from a native Anthropic event, for the log."""
    kind = data.get("type")
    if kind == "content_block_delta":
        delta = data.get("delta") or {}
        if delta.get("type") == "text_delta":
            ex.streamed_text.append(delta.get("text", ""))
    elif kind == "message_delta":
        reason = (data.get("delta") or {}).get("stop_reason")
        if reason:
            ex.finish_reason = tr.STOP_TO_OPENAI.get(reason, reason)


async def render_stream(request: web.Request, ex: Exchange, headers: dict[str, str]) -> web.StreamResponse:
    """Forward ``ex``'s stream as Anthropic SSE: native events as they came, canonical ones translated."""
    converter = OpenAIStreamToAnthropic(ex.alias)

    def encode(event: StreamEvent) -> bytes | None:
        if event.format == "anthropic":
            _note_native(ex, event.data)
            return event.raw or sse_bytes(event.data)
        for choice in event.data.get("choices") or []:
            content = (choice.get("delta") or {}).get("content")
            if content:
                ex.streamed_text.append(content)
            if choice.get("finish_reason"):
                ex.finish_reason = choice["finish_reason"]
        return b"".join(converter.feed(event.data, event.usage))

    def finish() -> bytes:
        native = ex.first_event is not None and ex.first_event.format == "anthropic"
        return b"" if native else b"".join(converter.finish())

    def error(failed: GatewayError, failure: UpstreamFailure) -> bytes:
        return error_event("overloaded_error" if failure.status in (503, 529) else "api_error", failed.message)

    return await forward_stream(request, ex, headers, encode, finish, error)


class AnthropicFormat:
    """The Anthropic Messages client format, as the server's handlers use it."""

    name = "anthropic"

    def parse(self, ex: Exchange, body: dict[str, Any]) -> None:
        validate_messages(body)
        ex.client_body = body
        ex.alias = body["model"]
        ex.stream = body.get("stream") is True
        ex.include_usage = True
        try:
            ex.body, ex.translation_dropped = tr.anthropic_request_to_openai(body)
        except InvalidRequest as error:
            ex.body = {"model": ex.alias, "messages": []}
            ex.translation_error = error

    render_reply = staticmethod(render_reply)
    render_stream = staticmethod(render_stream)
    render_error = staticmethod(render_error)
