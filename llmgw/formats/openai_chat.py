"""The OpenAI client format: validating Chat Completions and Embeddings requests, rendering answers and errors.

Contract:
- ``validate_chat`` / ``validate_embeddings`` raise :class:`InvalidRequest` naming the offending field (``param``)
  and change nothing; unknown fields pass through untouched.
- ``render_reply`` answers with the upstream's own bytes when it sent OpenAI's format, else serialises once.
- ``render_stream`` forwards each event as it arrives, records usage and the answer's text on the exchange, hides
  the usage chunk from clients that did not ask for it, ends with ``[DONE]`` only when the upstream finished,
  and on a mid-stream failure sends an OpenAI error event instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from ..errors import GatewayError, InvalidRequest
from ..exchange import Exchange, StreamEvent
from ..providers.base import UpstreamFailure
from .streaming import forward_stream

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MAX_DEPTH = 64


def invalid_field(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: {message}", param=param, code="invalid_value")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` levels (iterative; stops at the first offending branch)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise InvalidRequest(f"request body is nested deeper than {limit} levels", code="nesting_too_deep")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))


def _check_model(body: Mapping[str, Any]) -> None:
    model = body.get("model")
    if model is None:
        raise invalid_field("model", "required (the model alias to call)")
    if not isinstance(model, str) or not model:
        raise invalid_field("model", "must be a non-empty string")


_NUMERIC_RANGES = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
_POSITIVE_INTS = ("max_tokens", "max_completion_tokens", "n", "top_logprobs")


def validate_chat(body: Mapping[str, Any]) -> None:
    """Check the fields the gateway relies on; everything else is the upstream's to judge."""
    _check_model(body)
    messages = body.get("messages")
    if messages is None:
        raise invalid_field("messages", "required (a non-empty array of messages)")
    if not isinstance(messages, list) or not messages:
        raise invalid_field("messages", "must be a non-empty array")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid_field(f"messages[{i}]", "must be an object")
        role = message.get("role")
        if role not in _ROLES:
            raise invalid_field(f"messages[{i}].role", f"must be one of {', '.join(sorted(_ROLES))}")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise invalid_field(f"messages[{i}].content", "must be a string or an array of content parts")
        if content is None and role in ("user", "system", "developer"):
            raise invalid_field(f"messages[{i}].content", "required")
    for name in ("stream", "logprobs", "parallel_tool_calls"):
        if name in body and not isinstance(body[name], bool):
            raise invalid_field(name, "must be a boolean")
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, dict)
                                or not isinstance(options.get("include_usage", False), bool)):
        raise invalid_field("stream_options", "must be an object like {\"include_usage\": true}")
    for name, (low, high) in _NUMERIC_RANGES.items():
        value = body.get(name)
        if value is not None and (not is_number(value) or not low <= value <= high):
            raise invalid_field(name, f"must be a number between {low:g} and {high:g}")
    for name in _POSITIVE_INTS:
        value = body.get(name)
        if value is not None and (not is_int(value) or value < (0 if name == "top_logprobs" else 1)):
            raise invalid_field(name, "must be a positive integer")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise invalid_field("stop", "must be a string or an array of strings")
    tools = body.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
        raise invalid_field("tools", "must be an array of tool objects")
    check_depth(body)


def validate_embeddings(body: Mapping[str, Any]) -> None:
    _check_model(body)
    value = body.get("input")
    if value is None:
        raise invalid_field("input", "required (a string or an array of strings)")
    ok = (isinstance(value, str) and value) or (isinstance(value, list) and value and (
        all(isinstance(x, str) for x in value) or all(is_int(x) for x in value)
        or all(isinstance(x, list) and all(is_int(y) for y in x) for x in value)))
    if not ok:
        raise invalid_field("input", "must be a non-empty string, array of strings, or array of token arrays")
    dims = body.get("dimensions")
    if dims is not None and (not is_int(dims) or dims < 1):
        raise invalid_field("dimensions", "must be a positive integer")
    check_depth(body)


# --- rendering ------------------------------------------------------------------------------------------------

JSON_TYPE = "application/json"


def render_reply(ex: Exchange, headers: dict[str, str]) -> web.Response:
    assert ex.reply is not None
    raw = ex.reply.raw if ex.reply.raw is not None else orjson.dumps(ex.reply.body)
    return web.Response(body=raw, status=200, content_type=JSON_TYPE, headers=headers)


def render_error(error: GatewayError, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(error.openai_body()), status=error.status, content_type=JSON_TYPE,
                        headers={**(headers or {}), **error.headers()})


async def render_stream(request: web.Request, ex: Exchange, headers: dict[str, str]) -> web.StreamResponse:
    """Forward ``ex``'s stream as OpenAI SSE, as it arrives."""
    text = ex.streamed_text

    def encode(event: StreamEvent) -> bytes | None:
        data = event.data
        choices = data.get("choices")
        if choices:
            choice = choices[0]
            content = (choice.get("delta") or {}).get("content")
            if content:
                text.append(content)
            if choice.get("finish_reason"):
                ex.finish_reason = choice["finish_reason"]
        elif event.usage is not None and not ex.include_usage:
            return None  # the usage chunk the gateway asked for, not the client
        return event.raw or b"data: " + orjson.dumps(data) + b"\n\n"

    def error(failed: GatewayError, failure: UpstreamFailure) -> bytes:
        return b"data: " + orjson.dumps(failed.openai_body()) + b"\n\n"

    return await forward_stream(request, ex, headers, encode, lambda: b"data: [DONE]\n\n", error)


class OpenAIFormat:
    """The OpenAI Chat Completions client format, as the server's handlers use it."""

    name = "openai"

    def parse(self, ex: Exchange, body: dict[str, Any]) -> None:
        """Validate ``body`` and fill the exchange: alias, stream flags, canonical body (the body itself)."""
        validate_chat(body)
        ex.body = ex.client_body = body
        ex.alias = body["model"]
        ex.stream = body.get("stream") is True
        ex.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    render_reply = staticmethod(render_reply)
    render_stream = staticmethod(render_stream)
    render_error = staticmethod(render_error)
