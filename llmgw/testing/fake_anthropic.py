"""A fake Anthropic upstream: a real aiohttp server speaking Anthropic's Messages API wire format.

:class:`FakeAnthropic` is a real aiohttp server on 127.0.0.1 that speaks Anthropic's wire format closely enough
for the official ``anthropic`` SDK (and the gateway's provider code) to talk to it unchanged:

* ``POST /v1/messages`` -- a whole ``message`` object or a stream of named SSE events (``message_start``,
  ``ping``, ``content_block_start`` / ``content_block_delta`` / ``content_block_stop`` per block,
  ``message_delta``, ``message_stop``), honouring ``max_tokens``, ``stop_sequences``, ``system`` and
  ``thinking``; text answers, ``thinking`` blocks and ``tool_use`` blocks.
* ``POST /v1/messages/count_tokens`` -- ``{"input_tokens": N}``.
* ``GET /v1/models`` (paginated with ``limit``/``after_id``/``before_id``) and ``GET /v1/models/{id}``.
* Every error in Anthropic's body, ``{"type": "error", "error": {"type", "message"}, "request_id"}``, and in a
  stream as an ``event: error``; every response carries a ``request-id`` header.

The answers are deterministic, so tests can predict them with :func:`anthropic_answer_for` and
:func:`anthropic_input_tokens_for`.

Run it as a process (for benchmarks)::

    python -m llmgw.testing.fake_anthropic --port 8002

The shapes below follow Anthropic's API reference ("Messages", "Streaming Messages", "Errors", "List Models",
"Count tokens") and are what the fake reproduces field for field (values differ). They are strings so that
nothing at module level is mutable; tests parse them to compare shapes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import math
import os
import re
from collections import deque
from types import MappingProxyType
from typing import Any, Final, NamedTuple

import orjson
from aiohttp import web

from .answers import split_words as _split_words
from .server import FakeServer, run_cli
from .wire import RecordedHeaders as _Headers

__all__ = [
    "ANTHROPIC_COUNT_TOKENS_SAMPLE",
    "ANTHROPIC_ERROR_SAMPLE",
    "ANTHROPIC_MESSAGE_SAMPLE",
    "ANTHROPIC_MODELS_SAMPLE",
    "ANTHROPIC_STREAM_ERROR_SAMPLE",
    "ANTHROPIC_STREAM_SAMPLE",
    "FakeAnthropic",
    "anthropic_answer_for",
    "anthropic_input_tokens_for",
    "make_fake_anthropic_app",
]

# ----------------------------------------------------------------------------------------------------------
# Recorded shapes (Anthropic API reference: "Create a Message", "Streaming Messages" -- the stream with a
# tool_use block --, "Errors", "List Models", "Count tokens in a Message").
# ----------------------------------------------------------------------------------------------------------

ANTHROPIC_MESSAGE_SAMPLE: Final = """{
  "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
  "type": "message",
  "role": "assistant",
  "model": "claude-sonnet-4-5-20250929",
  "content": [
    {"type": "text", "text": "Hello! How can I help you today?"}
  ],
  "stop_reason": "end_turn",
  "stop_sequence": null,
  "usage": {
    "input_tokens": 12,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
    "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
    "output_tokens": 10,
    "service_tier": "standard"
  }
}"""

# A whole stream: a text block, then a tool_use block whose input arrives as input_json_delta fragments
# (the first one empty), then the message_delta with the stop reason and the cumulative usage.
ANTHROPIC_STREAM_SAMPLE: Final = (
    "event: message_start\n"
    'data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message",'
    '"role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,'
    '"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,'
    '"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":2,'
    '"service_tier":"standard"}}}\n\n'
    "event: content_block_start\n"
    'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    "event: ping\n"
    'data: {"type":"ping"}\n\n'
    "event: content_block_delta\n"
    'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me check"}}\n\n'
    "event: content_block_delta\n"
    'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" the weather."}}\n\n'
    "event: content_block_stop\n"
    'data: {"type":"content_block_stop","index":0}\n\n'
    "event: content_block_start\n"
    'data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use",'
    '"id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}\n\n'
    "event: content_block_delta\n"
    'data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}\n\n'
    "event: content_block_delta\n"
    'data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta",'
    '"partial_json":"{\\"location\\": \\"Pa"}}\n\n'
    "event: content_block_delta\n"
    'data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ris\\"}"}}\n\n'
    "event: content_block_stop\n"
    'data: {"type":"content_block_stop","index":1}\n\n'
    "event: message_delta\n"
    'data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},'
    '"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":89}}\n\n'
    "event: message_stop\n"
    'data: {"type":"message_stop"}\n\n'
)

# An error sent inside a stream that had already answered 200 (HTTP 529 outside a stream).
ANTHROPIC_STREAM_ERROR_SAMPLE: Final = """event: error
data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}

"""

ANTHROPIC_ERROR_SAMPLE: Final = """{
  "type": "error",
  "error": {
    "type": "not_found_error",
    "message": "The requested resource could not be found."
  },
  "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"
}"""

ANTHROPIC_MODELS_SAMPLE: Final = """{
  "data": [
    {
      "type": "model",
      "id": "claude-sonnet-4-5-20250929",
      "display_name": "Claude Sonnet 4.5",
      "created_at": "2025-09-29T00:00:00Z"
    }
  ],
  "has_more": false,
  "first_id": "claude-sonnet-4-5-20250929",
  "last_id": "claude-sonnet-4-5-20250929"
}"""

ANTHROPIC_COUNT_TOKENS_SAMPLE: Final = """{"input_tokens": 2095}"""

# ----------------------------------------------------------------------------------------------------------
# Constants and deterministic helpers
# ----------------------------------------------------------------------------------------------------------

# (id, display_name, created_at, max_input_tokens, max_tokens), most recently released first as the API lists.
_DEFAULT_MODELS: Final = (
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z", 200_000, 64_000),
    ("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z", 200_000, 128_000),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z", 200_000, 64_000),
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z", 200_000, 64_000),
)
_MAX_REQUEST_BYTES: Final = 32 * 1024 * 1024  # the Messages API's documented request size limit
_MIN_THINKING_BUDGET: Final = 1024
_FRAGMENT_RE: Final = re.compile(r"\w+|\s+|[^\w\s]+")

_SSE_HEADERS: Final = (
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-cache"),
)

# Anthropic's error ``type`` for each HTTP status; other 4xx are invalid_request_error, other 5xx api_error.
_ERROR_TYPES: Final = MappingProxyType(
    {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "billing_error",
        403: "permission_error",
        404: "not_found_error",
        409: "conflict_error",
        413: "request_too_large",
        429: "rate_limit_error",
        500: "api_error",
        504: "timeout_error",
        529: "overloaded_error",
    }
)

# The message an ``event: error`` carries when fail_mid_stream is not given one.
_STREAM_ERROR_MESSAGES: Final = MappingProxyType(
    {
        "overloaded_error": "Overloaded",
        "api_error": "Internal server error",
        "rate_limit_error": "Rate limited",
        "timeout_error": "Request timed out",
    }
)


def _blocks_text(blocks: list[Any], kind: str) -> list[str]:
    """The ``text`` of each block of type ``kind`` (``"text"``) in ``blocks``."""
    return [
        b["text"] for b in blocks if isinstance(b, dict) and b.get("type") == kind and isinstance(b.get("text"), str)
    ]


def _tool_result_text(block: dict[str, Any]) -> str:
    """The text of a ``tool_result`` block: its string content, or its text blocks joined by single spaces."""
    content = block.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(_blocks_text(content, "text"))
    return ""


def _user_text(message: dict[str, Any]) -> str:
    """The text of a message as :func:`anthropic_answer_for` reads it."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = _blocks_text(content, "text")
    if texts:
        return " ".join(texts)
    return " ".join(_tool_result_text(b) for b in content if isinstance(b, dict) and b.get("type") == "tool_result")


def _system_text(system: Any) -> str:
    """A ``system`` prompt's text: the string, or its text blocks joined by single spaces."""
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return " ".join(_blocks_text(system, "text"))
    return ""


def _counted_text(content: Any) -> str:
    """Everything :func:`anthropic_input_tokens_for` counts in a message's content: text, thinking, tool_use
    inputs (as compact JSON) and tool_result texts, joined by single spaces."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            parts.append(block["thinking"])
        elif kind == "tool_use":
            parts.append(orjson.dumps(block.get("input", {})).decode())
        elif kind == "tool_result":
            parts.append(_tool_result_text(block))
    return " ".join(parts)


def anthropic_answer_for(messages: list[dict[str, Any]], system: str | list[Any] | None = None) -> str:
    """The answer the fake gives when no fixed answer is set: ``"Echo: " + <text of the last user message>``.

    The text of a message is its ``content`` when that is a string; when it is a list of blocks, its ``text``
    blocks joined by single spaces, or -- when it has no text block -- its ``tool_result`` blocks' texts (a
    string content, or text blocks) joined by single spaces. With no user message the text is empty (answer
    ``"Echo: "``). ``system`` is accepted so that a request's fields can be passed through, and does not change
    the answer.
    """
    del system
    return f"Echo: {_last_user_text(messages)}"


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _user_text(message)
    return ""


def anthropic_input_tokens_for(body: dict[str, Any]) -> int:
    """The fake's ``usage.input_tokens`` and ``count_tokens`` answer for a request body.

    ``sum(ceil(len(text) / 4) + 3)`` over ``messages`` -- a message's text being its string content, or its
    text, thinking, tool_use input (compact JSON) and tool_result texts joined by single spaces -- plus
    ``ceil(len(system text) / 4)`` (a string, or text blocks joined by single spaces) plus
    ``ceil(len(compact JSON of tools) / 4)`` when ``tools`` is given. Cache tokens (:meth:`FakeAnthropic.set_usage`)
    are reported on top of this, never subtracted from it.
    """
    messages = body.get("messages")
    total = 0
    if isinstance(messages, list):
        total += sum(math.ceil(len(_counted_text(m.get("content"))) / 4) + 3 for m in messages if isinstance(m, dict))
    total += math.ceil(len(_system_text(body.get("system"))) / 4)
    tools = body.get("tools")
    if tools:
        total += math.ceil(len(orjson.dumps(tools)) / 4)
    return total


def _thinking_for(messages: list[dict[str, Any]]) -> str:
    """The text of the fake's ``thinking`` block, when the request enables thinking."""
    return f"The user wrote: {_last_user_text(messages)}. I will echo it."


def _signature_for(thinking: str) -> str:
    """A deterministic stand-in for a thinking block's opaque signature."""
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest() * 2).decode()


def _error_body(type_: str, message: str, request_id: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": type_, "message": message}, "request_id": request_id})


def _count_words(pieces: list[str]) -> int:
    return sum(1 for p in pieces if p.strip())


class _Block(NamedTuple):
    """One content block: as ``content_block_start`` announces it, its deltas, and as a whole message has it."""

    start: dict[str, Any]
    deltas: list[dict[str, Any]]
    final: dict[str, Any]


class _Answer(NamedTuple):
    blocks: list[_Block]
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int


# ----------------------------------------------------------------------------------------------------------
# The fake
# ----------------------------------------------------------------------------------------------------------


class FakeAnthropic(FakeServer):
    """A fake Anthropic upstream served by aiohttp on a free port of 127.0.0.1.

    Use it as an async context manager::

        async with FakeAnthropic(api_key="sk-ant-test") as up:
            client = AsyncAnthropic(base_url=up.base_url, api_key="sk-ant-test")  # http://127.0.0.1:PORT

    Contracts:

    * ``base_url`` is the API root, ``http://HOST:PORT`` (no ``/v1``: Anthropic's SDKs append ``/v1/...``).
    * ``api_key``: when set, a request must carry ``x-api-key: <api_key>`` or ``Authorization: Bearer <api_key>``
      or it gets 401 ``authentication_error`` (the key is never echoed); when None, any or no key is accepted.
    * Every ``/v1`` request must carry an ``anthropic-version`` header, else 400 ``invalid_request_error``
      (checked after the key).
    * ``chunk_delay_s``: a stream sleeps this long before each event; a whole answer sleeps as long as its
      stream would in total. With 0 a stream is written in one go. May be changed between requests.
    * ``requests``: every request that reaches the fake, in arrival order, as
      ``{"method", "path", "headers", "body"}``; ``headers`` is a dict with lower-cased keys whose lookups ignore
      case (a header sent several times, such as ``anthropic-beta``, is joined with ``", "``), ``body`` the
      parsed JSON (None for GET or a body that is not JSON). Not recorded when ``record_requests`` is False.
    * The answer is a text block with :func:`anthropic_answer_for` of the messages unless :meth:`set_answer`
      fixed the text; :meth:`set_tool_uses` makes every answer tool_use blocks instead. Both stay in force until
      reset with None. A request with ``thinking`` of type ``enabled`` or ``adaptive`` gets a ``thinking``
      block (with a signature) before the other blocks.
    * ``stop_sequences`` cut the text before the first one the text completes (``stop_reason``
      ``"stop_sequence"``, ``stop_sequence`` set); then ``max_tokens`` cuts it to that many words (``stop_reason``
      ``"max_tokens"``). Otherwise ``stop_reason`` is ``"end_turn"`` (``"tool_use"`` for tool uses). An empty
      text gives no text block.
    * ``usage``: ``input_tokens`` is :func:`anthropic_input_tokens_for` of the body; ``output_tokens`` counts
      the words sent (thinking and text) plus, for tool uses, the non-empty ``partial_json`` fragments;
      ``cache_read_input_tokens``/``cache_creation_input_tokens`` are what :meth:`set_usage` set (0 by default).
      In a stream, ``message_start`` carries the full usage but a placeholder ``output_tokens`` of 1, and
      ``message_delta`` the cumulative ``input_tokens``, cache counts and final ``output_tokens`` (as the API
      does: a client must overwrite, not add).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        chunk_delay_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        record_requests: bool = True,
    ) -> None:
        self.api_key = api_key
        self.chunk_delay_s = chunk_delay_s
        self.record_requests = record_requests
        self.requests: list[dict[str, Any]] = []
        self._answer: str | None = None
        self._tool_uses: list[dict[str, Any]] | None = None
        self._cache_read = 0
        self._cache_write = 0
        self._stream_failures: deque[tuple[str, str, int]] = deque()
        self._ids = itertools.count(1)
        self._id_base = os.urandom(5).hex()
        super().__init__(api_key=api_key, chunk_delay_s=chunk_delay_s, host=host, port=port,
                         record_requests=record_requests)

    # -- configuration --------------------------------------------------------------------------------------

    def fail_next(
        self, status: int, *, times: int = 1, message: str = "fake failure", retry_after: float | None = None
    ) -> None:
        """Make the next ``times`` messages/count_tokens calls answer ``status`` with Anthropic's error body.

        The body's ``error.type`` is Anthropic's for that status: 400 ``invalid_request_error``, 401
        ``authentication_error``, 402 ``billing_error``, 403 ``permission_error``, 404 ``not_found_error``, 409
        ``conflict_error``, 413 ``request_too_large``, 429 ``rate_limit_error``, 500 ``api_error``, 504
        ``timeout_error``, 529 ``overloaded_error``; other 4xx ``invalid_request_error``, other 5xx ``api_error``.

        ``retry_after`` adds a ``retry-after`` header (seconds, ``%g``-formatted). Calls queue up first in,
        first out, after any failures already queued. Streaming calls fail before any event is sent. A failure
        is taken after the key and version are checked and before the body is.
        """
        self.queue_failures(status, times, message, retry_after)

    def fail_mid_stream(
        self, error_type: str = "overloaded_error", *, after_events: int = 0, message: str | None = None
    ) -> None:
        """Make the next streaming messages call answer 200, send ``after_events`` events of its normal stream,
        then an ``event: error`` (``{"type": "error", "error": {"type": error_type, "message": ...}}``) and end
        the response, closing the connection.

        ``after_events=0`` makes the error the very first event (not even ``message_start`` is sent). The normal
        stream's last event, ``message_stop``, is never sent: a larger ``after_events`` sends all events but that
        one. ``message`` defaults to Anthropic's usual text for the type (``"Overloaded"`` for overloaded_error).
        Queued first in, first out; whole (non-streaming) calls are not affected and leave it queued.
        """
        if after_events < 0:
            raise ValueError("after_events must not be negative")
        if message is None:
            message = _STREAM_ERROR_MESSAGES.get(error_type, "fake failure")
        self._stream_failures.append((error_type, message, after_events))

    def set_answer(self, text: str | None) -> None:
        """Answer every messages call with ``text``; None goes back to :func:`anthropic_answer_for`.

        While tool uses are set (:meth:`set_tool_uses`), a non-empty fixed text is sent as a text block before
        the tool_use blocks, as Claude often does, without ``stop_sequences``/``max_tokens`` applied.
        """
        self._answer = text

    def set_tool_uses(self, uses: list[dict[str, Any]] | None) -> None:
        """Answer every messages call with one ``tool_use`` block per use (``stop_reason`` ``"tool_use"``); None
        goes back to text.

        Each use is ``{"name": str, "input": dict}`` (``input`` defaults to ``{}``) with an optional ``"id"``
        (default ``toolu_...``, generated per response). Streamed as Anthropic does: ``content_block_start`` with
        ``"input": {}``, an ``input_json_delta`` with an empty ``partial_json``, then the compact JSON of the
        input in several ``partial_json`` fragments, then ``content_block_stop``. ``stop_sequences`` and
        ``max_tokens`` do not apply to tool uses.
        """
        if uses is None:
            self._tool_uses = None
            return
        normalised = []
        for i, use in enumerate(uses):
            name = use.get("name")
            if not isinstance(name, str) or not name:
                raise ValueError(f"tool use {i} needs a name")
            tool_input = use.get("input", {})
            if not isinstance(tool_input, dict):
                raise ValueError(f"tool use {i}: input must be a dict")
            normalised.append(
                {"id": str(use.get("id") or ""), "name": name, "input": orjson.loads(orjson.dumps(tool_input))}
            )
        self._tool_uses = normalised

    def set_usage(self, *, cache_read: int = 0, cache_write: int = 0) -> None:
        """Report ``cache_read`` as ``cache_read_input_tokens`` and ``cache_write`` as
        ``cache_creation_input_tokens`` (and ``cache_creation.ephemeral_5m_input_tokens``) in every messages
        response from now on, on top of ``input_tokens``; both 0 by default."""
        if cache_read < 0 or cache_write < 0:
            raise ValueError("cache token counts must not be negative")
        self._cache_read = cache_read
        self._cache_write = cache_write

    # -- lifecycle -------------------------------------------------------------------------------------------

    url_suffix = ""

    def make_app(self) -> web.Application:
        return make_fake_anthropic_app(self)

    # -- used by the app ------------------------------------------------------------------------------------

    def _next_id(self) -> str:
        """24 characters, like the part after ``msg_``/``toolu_``/``req_`` in Anthropic's ids."""
        return f"01{self._id_base}{next(self._ids):012d}"


    def _take_stream_failure(self) -> tuple[str, str, int] | None:
        return self._stream_failures.popleft() if self._stream_failures else None

    def _usage(self, input_tokens: int, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": self._cache_write,
            "cache_read_input_tokens": self._cache_read,
            "cache_creation": {"ephemeral_5m_input_tokens": self._cache_write, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }


_FAKE_KEY: Final = web.AppKey("llmgw_fake_anthropic", FakeAnthropic)


def _error_response(
    state: FakeAnthropic, status: int, message: str, type_: str | None = None, *, retry_after: float | None = None
) -> web.Response:
    """Anthropic's error body for ``status`` (``type_`` defaults to the status's type), with ``request-id``."""
    if type_ is None:
        type_ = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    request_id = f"req_{state._next_id()}"
    headers = {"request-id": request_id}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    return web.Response(
        status=status, body=_error_body(type_, message, request_id), content_type="application/json", headers=headers
    )


def _json_response(state: FakeAnthropic, payload: Any) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), content_type="application/json", headers={"request-id": f"req_{state._next_id()}"}
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(body: Any, *, generation: bool) -> str | None:
    """The 400 message Anthropic answers an invalid messages (``generation``) or count_tokens body with, or None.

    Messages follow the API's pydantic-style wording (``"max_tokens: Field required"``).
    """
    if not isinstance(body, dict):
        return "Input should be a valid dictionary"
    if "model" not in body:
        return "model: Field required"
    if not isinstance(body["model"], str) or not body["model"]:
        return "model: Input should be a valid string"
    max_tokens = body.get("max_tokens")
    if generation:
        if "max_tokens" not in body:
            return "max_tokens: Field required"
        if not _is_int(max_tokens):
            return "max_tokens: Input should be a valid integer"
        if max_tokens < 1:
            return "max_tokens: Input should be greater than or equal to 1"
    if "messages" not in body:
        return "messages: Field required"
    messages = body["messages"]
    if not isinstance(messages, list):
        return "messages: Input should be a valid list"
    if not messages:
        return "messages: at least one message is required"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages.{i}: Input should be a valid dictionary"
        if message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if "content" not in message:
            return f"messages.{i}.content: Field required"
        content = message["content"]
        if isinstance(content, list):
            for j, block in enumerate(content):
                if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                    return f"messages.{i}.content.{j}: Input should be a valid dictionary with a 'type'"
        elif not isinstance(content, str):
            return f"messages.{i}.content: Input should be a valid string or list"
    if messages[0]["role"] != "user":
        return 'messages: first message must use the "user" role'
    system = body.get("system")
    system_ok = system is None or isinstance(system, str)
    if not system_ok and isinstance(system, list):
        system_ok = all(
            isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) for b in system
        )
    if not system_ok:
        return "system: Input should be a valid string or a list of text blocks"
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        return "stop_sequences: Input should be a valid list of strings"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "stream: Input should be a valid boolean"
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        return "tools: Input should be a valid list"
    thinking = body.get("thinking")
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind not in ("enabled", "disabled", "adaptive"):
            return (
                f"thinking: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
                "'enabled', 'disabled', 'adaptive'"
            )
        if kind == "enabled":
            budget = thinking.get("budget_tokens")
            if not _is_int(budget):
                return "thinking.enabled.budget_tokens: Field required"
            if budget < _MIN_THINKING_BUDGET:
                return (
                    f"thinking.enabled.budget_tokens: Input should be greater than or equal to {_MIN_THINKING_BUDGET}"
                )
            if generation and max_tokens <= budget:
                return "`max_tokens` must be greater than `thinking.budget_tokens`"
    return None


def _text_block(pieces: list[str]) -> _Block:
    return _Block(
        {"type": "text", "text": ""},
        [{"type": "text_delta", "text": p} for p in pieces],
        {"type": "text", "text": "".join(pieces)},
    )


def _compose(state: FakeAnthropic, body: dict[str, Any]) -> _Answer:
    """The answer to a (valid) messages body under the fake's current settings."""
    messages = body["messages"]
    budget: int = body["max_tokens"]
    blocks: list[_Block] = []
    output_tokens = 0

    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        pieces = _split_words(_thinking_for(messages))
        truncated = _count_words(pieces) > budget
        if truncated:
            pieces = pieces[:budget]
        text = "".join(pieces)
        signature = _signature_for(text)
        deltas: list[dict[str, Any]] = [{"type": "thinking_delta", "thinking": p} for p in pieces]
        deltas.append({"type": "signature_delta", "signature": signature})
        blocks.append(
            _Block(
                {"type": "thinking", "thinking": "", "signature": ""},
                deltas,
                {"type": "thinking", "thinking": text, "signature": signature},
            )
        )
        output_tokens += _count_words(pieces)
        budget -= _count_words(pieces)
        if truncated:
            return _Answer(blocks, "max_tokens", None, output_tokens)

    if state._tool_uses is not None:
        if state._answer:
            pieces = _split_words(state._answer)
            blocks.append(_text_block(pieces))
            output_tokens += _count_words(pieces)
        for use in state._tool_uses:
            use_id = use["id"] or f"toolu_{state._next_id()}"
            fragments = _FRAGMENT_RE.findall(orjson.dumps(use["input"]).decode())
            blocks.append(
                _Block(
                    {"type": "tool_use", "id": use_id, "name": use["name"], "input": {}},
                    [{"type": "input_json_delta", "partial_json": f} for f in ["", *fragments]],
                    {"type": "tool_use", "id": use_id, "name": use["name"], "input": use["input"]},
                )
            )
            output_tokens += len(fragments)
        return _Answer(blocks, "tool_use", None, output_tokens)

    text = state._answer if state._answer is not None else anthropic_answer_for(messages, body.get("system"))
    stop_reason = "end_turn"
    stop_sequence: str | None = None
    # The stop sequence the text completes first wins; the text is cut where it starts.
    hits = [(i + len(s), i, s) for s in body.get("stop_sequences") or [] if s and (i := text.find(s)) >= 0]
    if hits:
        _, cut, stop_sequence = min(hits, key=lambda hit: (hit[0], hit[1]))
        text = text[:cut]
        stop_reason = "stop_sequence"
    pieces = _split_words(text)
    if _count_words(pieces) > budget:
        pieces = pieces[:budget]
        stop_reason, stop_sequence = "max_tokens", None
    if pieces:
        blocks.append(_text_block(pieces))
    return _Answer(blocks, stop_reason, stop_sequence, output_tokens + _count_words(pieces))


def _sse(event: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _stream_events(start_message: dict[str, Any], answer: _Answer, usage: dict[str, Any]) -> list[bytes]:
    """The whole event stream of an answer, one ``event:``/``data:`` pair per item."""
    events = [
        _sse("message_start", {"type": "message_start", "message": start_message}),
        _sse("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(answer.blocks):
        events.append(
            _sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": block.start})
        )
        events.extend(
            _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            for delta in block.deltas
        )
        events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta_usage = {
        "input_tokens": usage["input_tokens"],
        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
        "output_tokens": usage["output_tokens"],
    }
    events.append(
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": answer.stop_reason, "stop_sequence": answer.stop_sequence},
                "usage": delta_usage,
            },
        )
    )
    events.append(_sse("message_stop", {"type": "message_stop"}))
    return events


async def _write_stream(
    request: web.Request,
    state: FakeAnthropic,
    events: list[bytes],
    failure: tuple[str, str, int] | None,
) -> web.StreamResponse:
    """Send ``events`` as a 200 SSE response; with ``failure``, only the first events then an ``event: error``,
    closing the connection afterwards."""
    response = web.StreamResponse(headers=_SSE_HEADERS)
    response.headers["request-id"] = f"req_{state._next_id()}"
    if failure is not None:
        error_type, message, after = failure
        events = events[: min(after, len(events) - 1)]
        events.append(_sse("error", {"type": "error", "error": {"type": error_type, "message": message}}))
        response.force_close()
    await response.prepare(request)
    delay = state.chunk_delay_s
    if delay > 0:
        for event in events:
            await asyncio.sleep(delay)
            await response.write(event)
    else:
        await response.write(b"".join(events))
    await response.write_eof()
    return response


def _model_object(model_id: str) -> dict[str, Any]:
    """A model object: a known model's, or one made up for any other id (the fake serves every model)."""
    known = next((m for m in _DEFAULT_MODELS if m[0] == model_id), None)
    _, display_name, created_at, max_input, max_output = known or (
        model_id,
        model_id,
        "2025-01-01T00:00:00Z",
        200_000,
        8_192,
    )
    return {
        "type": "model",
        "id": model_id,
        "display_name": display_name,
        "created_at": created_at,
        "max_input_tokens": max_input,
        "max_tokens": max_output,
        "lifecycle": "active",
    }


def make_fake_anthropic_app(state: FakeAnthropic) -> web.Application:
    """The fake's aiohttp application, serving ``/v1/...`` from ``state`` (its answers, failures, records).

    :class:`FakeAnthropic` serves it itself; tests can also mount it with ``aiohttp_client``.
    """

    async def prologue(request: web.Request, *, parse: bool) -> tuple[Any, web.Response | None]:
        """Read and record the request, check the key and version; returns (body, early response or None)."""
        body: Any = None
        parsed = True
        too_large = False
        if parse:
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                too_large = True
            else:
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    parsed = False
        if state.record_requests:
            headers = _Headers()
            for name, value in request.headers.items():
                key = name.lower()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            state.requests.append({"method": request.method, "path": request.path, "headers": headers, "body": body})
        if too_large:
            return body, _error_response(state, 413, "Request exceeds the maximum allowed number of bytes.")
        if state.api_key is not None:
            api_key = request.headers.get("x-api-key")
            auth = request.headers.get("Authorization", "")
            if api_key is None and auth.startswith("Bearer "):
                api_key = auth[7:].strip()
            if not api_key:
                return body, _error_response(state, 401, "x-api-key header is required")
            if api_key != state.api_key:
                return body, _error_response(state, 401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return body, _error_response(state, 400, "anthropic-version: header is required")
        if not parse:
            return body, None
        failure = state._take_failure()
        if failure is not None:
            status, message, retry_after = failure
            return body, _error_response(state, status, message, retry_after=retry_after)
        if not parsed:
            return body, _error_response(state, 400, "There was an issue with the format of your request: invalid JSON")
        return body, None

    async def create_message(request: web.Request) -> web.StreamResponse:
        body, early = await prologue(request, parse=True)
        if early is not None:
            return early
        problem = _validate(body, generation=True)
        if problem is not None:
            return _error_response(state, 400, problem)
        answer = _compose(state, body)
        message_id = f"msg_{state._next_id()}"
        input_tokens = anthropic_input_tokens_for(body)
        usage = state._usage(input_tokens, answer.output_tokens)
        head = {"id": message_id, "type": "message", "role": "assistant", "model": body["model"]}
        if body.get("stream") is True:
            # message_start: empty content, no stop reason yet, a placeholder output count (as the API sends).
            start_message = {
                **head,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": state._usage(input_tokens, 1),
            }
            events = _stream_events(start_message, answer, usage)
            return await _write_stream(request, state, events, state._take_stream_failure())
        if state.chunk_delay_s > 0:
            n_events = 4 + sum(len(b.deltas) + 2 for b in answer.blocks)
            await asyncio.sleep(state.chunk_delay_s * n_events)
        payload = {
            **head,
            "content": [b.final for b in answer.blocks],
            "stop_reason": answer.stop_reason,
            "stop_sequence": answer.stop_sequence,
            "usage": usage,
        }
        return _json_response(state, payload)

    async def count_tokens(request: web.Request) -> web.StreamResponse:
        body, early = await prologue(request, parse=True)
        if early is not None:
            return early
        problem = _validate(body, generation=False)
        if problem is not None:
            return _error_response(state, 400, problem)
        return _json_response(state, {"input_tokens": anthropic_input_tokens_for(body)})

    async def list_models(request: web.Request) -> web.StreamResponse:
        _, early = await prologue(request, parse=False)
        if early is not None:
            return early
        ids = [m[0] for m in _DEFAULT_MODELS]
        raw_limit = request.query.get("limit", "20")
        try:
            limit = int(raw_limit)
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            return _error_response(state, 400, "limit: Input should be an integer between 1 and 1000")
        after_id, before_id = request.query.get("after_id"), request.query.get("before_id")
        for cursor in (after_id, before_id):
            if cursor is not None and cursor not in ids:
                return _error_response(state, 400, f"Invalid cursor: {cursor}")
        if before_id is not None:
            end = ids.index(before_id)
            page = ids[max(end - limit, 0) : end]
            has_more = end - limit > 0
        else:
            begin = ids.index(after_id) + 1 if after_id is not None else 0
            page = ids[begin : begin + limit]
            has_more = begin + limit < len(ids)
        payload = {
            "data": [_model_object(m) for m in page],
            "has_more": has_more,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        }
        return _json_response(state, payload)

    async def retrieve_model(request: web.Request) -> web.StreamResponse:
        _, early = await prologue(request, parse=False)
        if early is not None:
            return early
        return _json_response(state, _model_object(request.match_info["model"]))

    async def unknown(request: web.Request) -> web.StreamResponse:
        _, early = await prologue(request, parse=False)
        if early is not None:
            return early
        return _error_response(state, 404, "Not Found")

    app = web.Application(client_max_size=_MAX_REQUEST_BYTES)
    app[_FAKE_KEY] = state
    app.router.add_post("/v1/messages", create_message)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", retrieve_model)
    app.router.add_route("*", "/{tail:.*}", unknown)
    return app


# ----------------------------------------------------------------------------------------------------------
# CLI: python -m llmgw.testing.fake_anthropic --port N
# ----------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Serve :class:`FakeAnthropic` until SIGINT/SIGTERM: ``python -m llmgw.testing.fake_anthropic --port N``."""
    run_cli(FakeAnthropic, "Anthropic", "python -m llmgw.testing.fake_anthropic", argv)


if __name__ == "__main__":
    main()
