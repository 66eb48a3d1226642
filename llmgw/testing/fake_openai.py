"""A fake OpenAI upstream: a real aiohttp server speaking OpenAI's wire format.

:class:`FakeOpenAI` is a real aiohttp server on 127.0.0.1 that speaks OpenAI's wire format closely enough for
the official ``openai`` SDK (and the gateway's provider code) to talk to it unchanged:

* ``POST /v1/chat/completions`` -- whole (``chat.completion``) or streamed (``chat.completion.chunk`` SSE
  events ending in ``data: [DONE]``), honouring ``max_tokens``/``max_completion_tokens``, ``stop`` and
  ``stream_options.include_usage``; text answers or tool calls.
* ``POST /v1/embeddings`` -- deterministic unit vectors, ``float`` or ``base64`` encoded.
* ``GET /v1/models`` and ``GET /v1/models/{id}``.
* Every error in OpenAI's body: ``{"error": {"message", "type", "param", "code"}}``.

The answers are deterministic, so tests can predict them with :func:`answer_for` and
:func:`prompt_tokens_for`.

Run it as a process (for benchmarks)::

    python -m llmgw.testing --port 8001

The shapes below were recorded from OpenAI's API reference and are what the fake reproduces field for field
(values differ). They are strings so that nothing at module level is mutable; tests parse them to compare
shapes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import math
import os
import re
import struct
import time
from collections.abc import Iterable
from typing import Any, Final

import orjson
from aiohttp import web

from .server import FakeServer, run_cli

__all__ = [
    "CHAT_COMPLETION_CHUNK_SAMPLE",
    "CHAT_COMPLETION_SAMPLE",
    "EMBEDDINGS_SAMPLE",
    "ERROR_SAMPLE",
    "MODELS_SAMPLE",
    "USAGE_CHUNK_SAMPLE",
    "FakeOpenAI",
    "answer_for",
    "main",
    "make_fake_openai_app",
    "prompt_tokens_for",
]

# ----------------------------------------------------------------------------------------------------------
# Recorded shapes (OpenAI API reference: "The chat completion object", "The chat completion chunk object",
# "The embedding object", "List models", "Error codes").
# ----------------------------------------------------------------------------------------------------------

CHAT_COMPLETION_SAMPLE: Final = """{
  "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
  "object": "chat.completion",
  "created": 1741570283,
  "model": "gpt-4o-2024-08-06",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": "The image shows a wooden boardwalk path running through a lush green field or meadow.",
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 1117,
    "completion_tokens": 46,
    "total_tokens": 1163,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
      "reasoning_tokens": 0,
      "audio_tokens": 0,
      "accepted_prediction_tokens": 0,
      "rejected_prediction_tokens": 0
    }
  },
  "service_tier": "default",
  "system_fingerprint": "fp_fc9f1d7035"
}"""

CHAT_COMPLETION_CHUNK_SAMPLE: Final = """{
  "id": "chatcmpl-123",
  "object": "chat.completion.chunk",
  "created": 1694268190,
  "model": "gpt-4o-mini",
  "service_tier": "default",
  "system_fingerprint": "fp_44709d6fcb",
  "choices": [
    {"index": 0, "delta": {"role": "assistant", "content": "", "refusal": null}, "logprobs": null,
     "finish_reason": null}
  ]
}"""

# The extra chunk sent before ``data: [DONE]`` when ``stream_options.include_usage`` is true.
USAGE_CHUNK_SAMPLE: Final = """{
  "id": "chatcmpl-123",
  "object": "chat.completion.chunk",
  "created": 1694268190,
  "model": "gpt-4o-mini",
  "service_tier": "default",
  "system_fingerprint": "fp_44709d6fcb",
  "choices": [],
  "usage": {
    "prompt_tokens": 9,
    "completion_tokens": 12,
    "total_tokens": 21,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
      "reasoning_tokens": 0,
      "audio_tokens": 0,
      "accepted_prediction_tokens": 0,
      "rejected_prediction_tokens": 0
    }
  }
}"""

EMBEDDINGS_SAMPLE: Final = """{
  "object": "list",
  "data": [{"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292, -0.0028842222]}],
  "model": "text-embedding-3-small",
  "usage": {"prompt_tokens": 8, "total_tokens": 8}
}"""

MODELS_SAMPLE: Final = """{
  "object": "list",
  "data": [
    {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"}
  ]
}"""

ERROR_SAMPLE: Final = """{
  "error": {
    "message": "Incorrect API key provided: sk-abc***xyz. You can find your API key at https://platform.openai.com/account/api-keys.",
    "type": "invalid_request_error",
    "param": null,
    "code": "invalid_api_key"
  }
}"""

# ----------------------------------------------------------------------------------------------------------
# Deterministic helpers
# ----------------------------------------------------------------------------------------------------------

_SYSTEM_FINGERPRINT: Final = "fp_f4ce0a1e5b"
_MODEL_CREATED: Final = 1721172741
_DEFAULT_MODELS: Final = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "text-embedding-3-small")
_DEFAULT_EMBEDDING_DIMENSIONS: Final = 8
_WORD_RE: Final = re.compile(r"\s*\S+")
_ARG_FRAGMENT_RE: Final = re.compile(r"\w+|\s+|[^\w\s]+")

_SSE_DONE: Final = b"data: [DONE]\n\n"
_SSE_HEADERS: Final = (
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-cache"),
)

# OpenAI's error ``type`` and ``code`` for each status fail_next may be asked for; other 4xx get
# invalid_request_error, other 5xx server_error.
_ERROR_KINDS: Final = {
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


def _message_text(message: dict[str, Any]) -> str:
    """The text of one chat message: a string content, or its ``text`` parts joined by single spaces."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    return ""


def answer_for(messages: list[dict[str, Any]]) -> str:
    """The answer the fake gives when no fixed answer is set: ``"Echo: " + <text of the last user message>``.

    The text of a message is its ``content`` when that is a string, or its ``text`` parts joined by single
    spaces when it is a list of parts; with no user message the text is empty (answer ``"Echo: "``).
    """
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return f"Echo: {_message_text(message)}"
    return "Echo: "


def prompt_tokens_for(messages: list[dict[str, Any]]) -> int:
    """The fake's ``usage.prompt_tokens``: ``ceil(len(text) / 4) + 3`` summed over messages (text as in
    :func:`answer_for`)."""
    return sum(math.ceil(len(_message_text(m)) / 4) + 3 for m in messages)


def _split_words(text: str) -> list[str]:
    """Split ``text`` into stream pieces: each word with the whitespace before it; ``"".join`` gives ``text``
    back (trailing whitespace rides on the last piece)."""
    pieces = _WORD_RE.findall(text)
    rest = len(text) - sum(map(len, pieces))
    if rest:
        if pieces:
            pieces[-1] += text[-rest:]
        else:
            pieces = [text]
    return pieces


def _embedding(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text``: SHAKE-256 bytes mapped to [-1, 1], then normalised."""
    raw = hashlib.shake_256(text.encode()).digest(2 * dimensions)
    values = [(int.from_bytes(raw[i : i + 2], "little") / 32767.5) - 1.0 for i in range(0, 2 * dimensions, 2)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
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


def _error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def _error_response(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        body=_error_body(message, type_, param, code),
        content_type="application/json",
        headers=headers,
    )


def _redact(key: str) -> str:
    """Redact a key as OpenAI does in its 401 message, never echoing it whole."""
    return f"{key[:3]}{'*' * max(len(key) - 7, 3)}{key[-4:]}" if len(key) > 8 else "*" * len(key)


class _Headers(dict[str, str]):
    """A plain dict of request headers with lower-cased keys whose lookups ignore case."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


# ----------------------------------------------------------------------------------------------------------
# The fake
# ----------------------------------------------------------------------------------------------------------


class FakeOpenAI(FakeServer):
    """A fake OpenAI upstream served by aiohttp on a free port of 127.0.0.1.

    Use it as an async context manager::

        async with FakeOpenAI(api_key="sk-test") as up:
            client = AsyncOpenAI(base_url=up.base_url, api_key="sk-test")  # up.base_url: http://127.0.0.1:PORT/v1

    Contracts:

    * ``api_key``: when set, every request whose ``Authorization`` header is not ``Bearer <api_key>`` gets 401
      with OpenAI's error body (``code`` ``"invalid_api_key"``); when None, any or no key is accepted.
    * ``model_prefix``: prepended to the request's ``model`` in responses and to the ids GET /v1/models
      lists; with the default ``""`` the response's ``model`` echoes the request's.
    * ``chunk_delay_s``: a stream sleeps this long before each chunk (content, finish and usage chunks); a
      whole answer sleeps as long as its stream would in total. With 0 a stream is written in one go.
      May be changed between requests.
    * ``requests``: every request that reaches the fake, in arrival order, as
      ``{"method", "path", "headers", "body"}``; ``headers`` is a dict with lower-cased keys whose lookups
      ignore case, ``body`` the parsed JSON (None for GET or a body that is not JSON). Not recorded when
      ``record_requests`` is False (long-running processes).
    * The answer text is :func:`answer_for` of the messages unless :meth:`set_answer` fixed one;
      :meth:`set_tool_calls` makes every answer tool calls instead. Both stay in force until reset with None.
    * ``usage``: ``prompt_tokens`` is :func:`prompt_tokens_for` of the messages; ``completion_tokens`` is the
      number of words of the answer sent (after ``stop`` and ``max_tokens``), or for tool calls the number of
      argument fragments plus one per call.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        model_prefix: str = "",
        chunk_delay_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        record_requests: bool = True,
    ) -> None:
        self.api_key = api_key
        self.model_prefix = model_prefix
        self.chunk_delay_s = chunk_delay_s
        self.record_requests = record_requests
        self.requests: list[dict[str, Any]] = []
        self._answer: str | None = None
        self._tool_calls: list[dict[str, str]] | None = None
        self._ids = itertools.count(1)
        self._id_base = os.urandom(5).hex()
        super().__init__(host=host, port=port)

    # -- configuration --------------------------------------------------------------------------------------

    def fail_next(
        self, status: int, *, times: int = 1, message: str = "fake failure", retry_after: float | None = None
    ) -> None:
        """Make the next ``times`` chat/embeddings calls answer ``status`` with OpenAI's error body.

        The body's ``type``/``code`` are OpenAI's for that status:

        * 429: ``"requests"`` / ``"rate_limit_exceeded"``;  5xx: ``"server_error"`` / null;
        * 401: ``"invalid_request_error"`` / ``"invalid_api_key"``;  403: ``"request_forbidden"`` / null;
        * 404: ``"invalid_request_error"`` / ``"model_not_found"``;  other 4xx: invalid_request_error / null.

        ``retry_after`` adds a ``Retry-After`` header (seconds, ``%g``-formatted). Calls queue up
        first in, first out, after any failures already queued. Streaming calls fail before any event is
        sent, as OpenAI's do. A failure is taken after the key is checked and before the body is.
        """
        self.queue_failures(status, times, message, retry_after)

    def set_answer(self, text: str | None) -> None:
        """Answer every chat call with ``text``; None goes back to :func:`answer_for` of the prompt."""
        self._answer = text

    def set_tool_calls(self, calls: list[dict[str, Any]] | None) -> None:
        """Answer every chat call with these tool calls (finish ``"tool_calls"``); None goes back to text.

        Each call is ``{"name": str, "arguments": str}`` (``arguments`` a JSON string; a dict is serialised),
        with an optional ``"id"`` (default ``call_...``). Streamed as OpenAI does: per call a first delta with
        ``index``, ``id``, ``type`` and ``function.name`` with empty ``arguments``, then argument fragments.
        """
        if calls is None:
            self._tool_calls = None
            return
        normalised = []
        for i, call in enumerate(calls):
            name = call.get("name")
            if not isinstance(name, str) or not name:
                raise ValueError(f"tool call {i} needs a name")
            arguments = call.get("arguments", "{}")
            if not isinstance(arguments, str):
                arguments = orjson.dumps(arguments).decode()
            normalised.append({"id": str(call.get("id") or ""), "name": name, "arguments": arguments})
        self._tool_calls = normalised

    # -- lifecycle -------------------------------------------------------------------------------------------

    url_suffix = "/v1"

    def make_app(self) -> web.Application:
        return make_fake_openai_app(self)

    # -- used by the app ------------------------------------------------------------------------------------

    def _next_id(self) -> str:
        return f"{self._id_base}{next(self._ids):019d}"



_FAKE_KEY: Final = web.AppKey("llmgw_fake_openai", FakeOpenAI)


def _failure_response(status: int, message: str, retry_after: float | None) -> web.Response:
    type_, code = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    return _error_response(status, message, type_, code=code, headers=headers)


def _int_param(body: dict[str, Any], name: str) -> int | web.Response | None:
    """A positive integer parameter, None when absent, or the 400 OpenAI answers a bad one with."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        return _error_response(
            400, f"Invalid type for '{name}': expected an integer.", param=name, code="invalid_type"
        )
    if value < 1:
        return _error_response(
            400,
            f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    return value


def make_fake_openai_app(state: FakeOpenAI) -> web.Application:
    """The fake's aiohttp application, serving ``/v1/...`` from ``state`` (its answers, failures, records).

    :class:`FakeOpenAI` serves it itself; tests can also mount it with ``aiohttp_client``.
    """

    async def prologue(request: web.Request, *, parse: bool) -> tuple[Any, web.Response | None]:
        """Read and record the request, check the key; returns (body, early response or None)."""
        body: Any = None
        parsed = True
        if parse:
            raw = await request.read()
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = False
        if state.record_requests:
            state.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "headers": _Headers((k.lower(), v) for k, v in request.headers.items()),
                    "body": body,
                }
            )
        if state.api_key is not None:
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or not auth[7:].strip():
                return body, _error_response(
                    401,
                    "You didn't provide an API key. You need to provide your API key in an Authorization "
                    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                )
            if auth[7:].strip() != state.api_key:
                return body, _error_response(
                    401,
                    f"Incorrect API key provided: {_redact(auth[7:].strip())}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    code="invalid_api_key",
                )
        if not parse:
            return body, None
        failure = state._take_failure()
        if failure is not None:
            return body, _failure_response(*failure)
        if not parsed:
            return body, _error_response(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent "
                "was not valid JSON.)",
            )
        if not isinstance(body, dict):
            return body, _error_response(400, "The request body must be a JSON object.")
        if not isinstance(body.get("model"), str) or not body["model"]:
            return body, _error_response(400, "you must provide a model parameter")
        return body, None

    async def chat_completions(request: web.Request) -> web.StreamResponse:
        body, early = await prologue(request, parse=True)
        if early is not None:
            return early
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return _error_response(400, "Invalid 'messages': expected an array of objects.", param="messages")
        if not messages:
            return _error_response(
                400,
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty "
                "array instead.",
                param="messages",
                code="empty_array",
            )
        stream = body.get("stream") is True
        stream_options = body.get("stream_options")
        if stream_options is not None and not stream:
            return _error_response(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        limit: int | None = None
        for name in ("max_tokens", "max_completion_tokens"):
            value = _int_param(body, name)
            if isinstance(value, web.Response):
                return value
            if value is not None:
                limit = value  # max_completion_tokens wins when both are given
        stop = body.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        stops = [s for s in stop if isinstance(s, str) and s] if isinstance(stop, list) else []

        model = state.model_prefix + body["model"]
        prompt_tokens = prompt_tokens_for(messages)
        completion_id = f"chatcmpl-{state._next_id()}"
        created = int(time.time())
        include_usage = (
            stream and isinstance(stream_options, dict) and stream_options.get("include_usage") is True
        )

        tool_calls = state._tool_calls
        if tool_calls is not None:
            calls = [
                {**call, "id": call["id"] or f"call_{state._next_id()}{i}"}
                for i, call in enumerate(tool_calls)
            ]
            fragments = [_ARG_FRAGMENT_RE.findall(call["arguments"]) for call in calls]
            completion_tokens = sum(len(f) + 1 for f in fragments)
            deltas = list(_tool_call_deltas(calls, fragments))
            if stream:
                return await _stream(
                    request,
                    state,
                    completion_id,
                    created,
                    model,
                    deltas,
                    "tool_calls",
                    _usage(prompt_tokens, completion_tokens) if include_usage else None,
                )
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": call["arguments"]},
                    }
                    for call in calls
                ],
                "refusal": None,
                "annotations": [],
            }
            finish_reason = "tool_calls"
            n_chunks = len(deltas) + 1
        else:
            text = state._answer if state._answer is not None else answer_for(messages)
            finish_reason = "stop"
            cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
            if cut >= 0:
                text = text[:cut]
            pieces = _split_words(text)
            if limit is not None and sum(1 for p in pieces if p.strip()) > limit:
                pieces = pieces[:limit]
                finish_reason = "length"
            completion_tokens = sum(1 for p in pieces if p.strip())
            if stream:
                deltas = [{"role": "assistant", "content": "", "refusal": None}]
                deltas.extend({"content": p} for p in pieces)
                return await _stream(
                    request,
                    state,
                    completion_id,
                    created,
                    model,
                    deltas,
                    finish_reason,
                    _usage(prompt_tokens, completion_tokens) if include_usage else None,
                )
            message = {"role": "assistant", "content": "".join(pieces), "refusal": None, "annotations": []}
            n_chunks = len(pieces) + 2

        if state.chunk_delay_s > 0:
            await asyncio.sleep(state.chunk_delay_s * n_chunks)
        payload = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
            "usage": _usage(prompt_tokens, completion_tokens),
            "service_tier": "default",
            "system_fingerprint": _SYSTEM_FINGERPRINT,
        }
        return web.Response(
            body=orjson.dumps(payload), content_type="application/json", headers=_request_id_header(state)
        )

    async def embeddings(request: web.Request) -> web.StreamResponse:
        body, early = await prologue(request, parse=True)
        if early is not None:
            return early
        raw_input = body.get("input")
        texts: list[str]
        if isinstance(raw_input, str):
            texts = [raw_input]
        elif isinstance(raw_input, list) and raw_input and all(isinstance(t, str) for t in raw_input):
            texts = raw_input
        elif isinstance(raw_input, list) and raw_input and all(isinstance(t, int) for t in raw_input):
            texts = [" ".join(map(str, raw_input))]  # one input given as token ids
        elif (
            isinstance(raw_input, list)
            and raw_input
            and all(isinstance(t, list) and all(isinstance(i, int) for i in t) for t in raw_input)
        ):
            texts = [" ".join(map(str, t)) for t in raw_input]
        else:
            return _error_response(
                400,
                "'input' must be a string, an array of strings, or an array of token arrays.",
                param="input",
            )
        dimensions = _int_param(body, "dimensions")
        if isinstance(dimensions, web.Response):
            return dimensions
        dimensions = dimensions or _DEFAULT_EMBEDDING_DIMENSIONS
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            return _error_response(
                400, "Invalid 'encoding_format': expected 'float' or 'base64'.", param="encoding_format"
            )
        data = []
        for index, text in enumerate(texts):
            vector: Any = _embedding(text, dimensions)
            if encoding == "base64":
                vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(math.ceil(len(t) / 4) for t in texts)
        payload = {
            "object": "list",
            "data": data,
            "model": state.model_prefix + body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return web.Response(
            body=orjson.dumps(payload), content_type="application/json", headers=_request_id_header(state)
        )

    async def list_models(request: web.Request) -> web.StreamResponse:
        _, early = await prologue(request, parse=False)
        if early is not None:
            return early
        payload = {"object": "list", "data": [_model_object(state.model_prefix + m) for m in _DEFAULT_MODELS]}
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    async def retrieve_model(request: web.Request) -> web.StreamResponse:
        _, early = await prologue(request, parse=False)
        if early is not None:
            return early
        return web.Response(
            body=orjson.dumps(_model_object(request.match_info["model"])), content_type="application/json"
        )

    async def unknown(request: web.Request) -> web.StreamResponse:
        _, early = await prologue(request, parse=False)
        if early is not None:
            return early
        return _error_response(404, f"Invalid URL ({request.method} {request.path})")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[_FAKE_KEY] = state
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", retrieve_model)
    app.router.add_route("*", "/{tail:.*}", unknown)
    return app


def _model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": _MODEL_CREATED, "owned_by": "system"}


def _request_id_header(state: FakeOpenAI) -> dict[str, str]:
    return {"x-request-id": f"req_{state._next_id()}"}


def _tool_call_deltas(calls: list[dict[str, str]], fragments: list[list[str]]) -> Iterable[dict[str, Any]]:
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


async def _stream(
    request: web.Request,
    state: FakeOpenAI,
    completion_id: str,
    created: int,
    model: str,
    deltas: list[dict[str, Any]],
    finish_reason: str,
    usage: dict[str, Any] | None,
) -> web.StreamResponse:
    """Send ``deltas`` as ``chat.completion.chunk`` events, then the finish chunk, the usage chunk when
    ``usage`` is given (and ``"usage": null`` on every other chunk), and ``data: [DONE]``."""
    head = orjson.dumps(
        {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": _SYSTEM_FINGERPRINT,
        }
    )[:-1]
    open_choice = b"data: " + head + b',"choices":[{"index":0,"delta":'
    tail = b"}]" + (b',"usage":null' if usage is not None else b"") + b"}\n\n"
    mid = b',"logprobs":null,"finish_reason":null' + tail
    events = [open_choice + orjson.dumps(delta) + mid for delta in deltas]
    finish = b'{},"logprobs":null,"finish_reason":"' + finish_reason.encode() + b'"'
    events.append(open_choice + finish + tail)
    if usage is not None:
        events.append(b"data: " + head + b',"choices":[],"usage":' + orjson.dumps(usage) + b"}\n\n")
    events.append(_SSE_DONE)

    response = web.StreamResponse(headers=_SSE_HEADERS)
    response.headers.update(_request_id_header(state))
    await response.prepare(request)
    delay = state.chunk_delay_s
    if delay > 0:
        for event in events[:-1]:
            await asyncio.sleep(delay)
            await response.write(event)
        await response.write(events[-1])
    else:
        await response.write(b"".join(events))
    await response.write_eof()
    return response


# ----------------------------------------------------------------------------------------------------------
# CLI: python -m llmgw.testing --port N
# ----------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Serve :class:`FakeOpenAI` until SIGINT/SIGTERM: ``python -m llmgw.testing --port N`` (see :func:`run_cli`)."""
    run_cli(FakeOpenAI, "OpenAI", "python -m llmgw.testing", argv)


if __name__ == "__main__":
    main()
