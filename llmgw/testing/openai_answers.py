"""What the fake OpenAI upstream (:mod:`llmgw.testing.fake_openai`) answers, kept apart from its server: the
deterministic answers (:func:`answer_for`, :func:`prompt_tokens_for`), OpenAI's usage and error bodies, the
models it lists, and a streamed answer's ``chat.completion.chunk`` events (:func:`stream_chunks`)."""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType
from typing import Any, Final

import orjson
from aiohttp import web

from .answers import content_text, last_user_text, message_tokens
from .wire import json_response, sse

SYSTEM_FINGERPRINT: Final = "fp_f4ce0a1e5b"
MODEL_CREATED: Final = 1721172741
DEFAULT_MODELS: Final = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "text-embedding-3-small")
DEFAULT_EMBEDDING_DIMENSIONS: Final = 8
SSE_DONE: Final = b"data: [DONE]\n\n"

# OpenAI's error ``type`` and ``code`` for each status fail_next may be asked for; other 4xx get
# invalid_request_error, other 5xx server_error.
ERROR_KINDS: Final = MappingProxyType(
    {
        400: ("invalid_request_error", None),
        401: ("invalid_request_error", "invalid_api_key"),
        403: ("request_forbidden", None),
        404: ("invalid_request_error", "model_not_found"),
        409: ("invalid_request_error", None),
        422: ("invalid_request_error", None),
        429: ("requests", "rate_limit_exceeded"),
        500: ("server_error", None),
        502: ("server_error", None),
        503: ("server_error", None),
        504: ("server_error", None),
    }
)


def _message_text(message: dict[str, Any]) -> str:
    """The text of one chat message: a string content, or its ``text`` parts joined by single spaces."""
    return content_text(message.get("content")) if isinstance(message, dict) else ""


def answer_for(messages: list[dict[str, Any]]) -> str:
    """The answer the fake gives when no fixed answer is set: ``"Echo: " + <text of the last user message>``.

    The text of a message is its ``content`` when that is a string, or its ``text`` parts joined by single
    spaces when it is a list of parts; with no user message the text is empty (answer ``"Echo: "``).
    """
    return f"Echo: {last_user_text(messages, _message_text)}"


def prompt_tokens_for(messages: list[dict[str, Any]]) -> int:
    """The fake's ``usage.prompt_tokens``: ``ceil(len(text) / 4) + 3`` summed over messages (text as in
    :func:`answer_for`)."""
    return message_tokens(map(_message_text, messages))


def usage_object(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def error_response(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """OpenAI's error body, ``{"error": {"message", "type", "param", "code"}}``."""
    error = {"message": message, "type": type_, "param": param, "code": code}
    return json_response({"error": error}, status=status, headers=headers)


def redact_key(key: str) -> str:
    """Redact a key as OpenAI does in its 401 message, never echoing it whole."""
    return f"{key[:3]}{'*' * max(len(key) - 7, 3)}{key[-4:]}" if len(key) > 8 else "*" * len(key)


def int_param(body: dict[str, Any], name: str) -> int | web.Response | None:
    """A positive integer parameter, None when absent, or the 400 OpenAI answers a bad one with."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        return error_response(400, f"Invalid type for '{name}': expected an integer.", param=name, code="invalid_type")
    if value < 1:
        return error_response(
            400,
            f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    return value


def model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": "system"}


def tool_call_deltas(calls: list[dict[str, str]], fragments: list[list[str]]) -> Iterable[dict[str, Any]]:
    """The stream deltas for tool calls, as OpenAI sends them."""
    for index, (call, pieces) in enumerate(zip(calls, fragments, strict=True)):
        head = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": ""},
        }
        if index == 0:
            yield {"role": "assistant", "content": None, "tool_calls": [head], "refusal": None}
        else:
            yield {"tool_calls": [head]}
        for piece in pieces:
            yield {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}


def stream_chunks(
    completion_id: str,
    created: int,
    model: str,
    deltas: list[dict[str, Any]],
    finish_reason: str,
    usage: dict[str, Any] | None,
) -> list[bytes]:
    """``deltas`` as ``chat.completion.chunk`` events, then the finish chunk, and the usage chunk when ``usage`` is
    given (with ``"usage": null`` on every other chunk)."""
    head = orjson.dumps(
        {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
    )[:-1]
    open_choice = head + b',"choices":[{"index":0,"delta":'
    tail = b"}]" + (b',"usage":null' if usage is not None else b"") + b"}"
    mid = b',"logprobs":null,"finish_reason":null' + tail
    events = [sse(open_choice + orjson.dumps(delta) + mid) for delta in deltas]
    events.append(sse(open_choice + b'{},"logprobs":null,"finish_reason":"' + finish_reason.encode() + b'"' + tail))
    if usage is not None:
        events.append(sse(head + b',"choices":[],"usage":' + orjson.dumps(usage) + b"}"))
    return events
