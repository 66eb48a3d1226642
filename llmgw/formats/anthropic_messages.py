"""The Anthropic Messages client format (``/v1/messages`` and ``/v1/messages/count_tokens``).

Contract (see :class:`~llmgw.formats.base.WireFormat`):
- ``parse`` validates the fields the gateway relies on (400 naming the field, nothing changed), keeps the client's
  body for Anthropic upstreams, and prepares the canonical translation for the others — a translation problem
  becomes the exchange's ``translation_error``, raised only if a target of another format is tried.
- Texts: ``system`` and every message's text blocks whatever its role (``system`` messages included) with their
  citations, ``tool_use`` input (keys and values), the content of ``tool_result``, ``mcp_tool_result``,
  ``search_result`` (its title and source too) and ``compaction`` blocks, documents (title, context, text); the
  tools' descriptions and input schemas, ``metadata`` (``user_id``), ``stop_sequences``; in answers, thinking too.
  Other block types are left alone (signed thinking in requests, server tool results, images, files, types newer
  than this walk).
- Answers from an Anthropic upstream are forwarded as they came (bytes and events); canonical answers are
  translated. Streams always report usage in ``message_start``/``message_delta``; an upstream failure after the
  first byte ends the stream with an ``error`` event, never with ``message_stop``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ..errors import GatewayError, InvalidRequest
from ..exchange import Exchange, StreamEvent, Usage
from ..providers.base import UpstreamFailure
from ..sse import encode_data
from ..translate import anthropic as tr
from ..translate.anthropic_client import anthropic_request_to_openai
from ..translate.anthropic_stream import OpenAIStreamToAnthropic, error_event
from .base import Route, WireFormat
from .streaming import forward_stream
from .texts import TextFn, schema_texts, text_at, visit_value
from .validate import invalid_field, is_int, is_number

if TYPE_CHECKING:
    from ..guardrails.stream import StreamGuard

JSON_TYPE = "application/json"
NAME = "anthropic"
API_VERSION = "2023-06-01"
# Anthropic's error types for each status (https://docs.anthropic.com/en/api/errors).
_ERROR_TYPES = MappingProxyType({
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "api_error",
    529: "overloaded_error",
})


def error_type(status: int) -> str:
    """Anthropic's error ``type`` for an HTTP status."""
    return _ERROR_TYPES.get(status, "api_error")


def validate_messages(body: Mapping[str, Any], *, count_only: bool = False) -> None:
    """Check an Anthropic Messages request (or a count_tokens request with ``count_only``).

    Only what the gateway itself relies on is checked — the alias (``model``), the shape of the messages and their
    texts (guardrails, the cache), ``stream``, ``max_tokens`` (budgets) and the types of the fields it translates —
    each a 400 naming the field. Everything else passes: a role other than ``user``/``assistant`` (``system``
    messages at any position, roles newer than this gateway), unknown block types and unknown fields are the
    upstream's to judge. A ``user``/``assistant`` message needs a ``content``; other roles may leave it out (a
    ``system`` message may carry only ``output_config``). Numbers are type-checked, never range-checked here: a
    foreign target's parameter table says which values it accepts.
    """
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_field("model", "required: a non-empty string (the model alias to call)")
    if not count_only:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise invalid_field("max_tokens", "required (a non-negative integer)")
        if not is_int(max_tokens) or max_tokens < 0:
            raise invalid_field("max_tokens", "must be a non-negative integer")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_field("messages", "required: a non-empty array of messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid_field(f"messages.{i}", "must be an object")
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise invalid_field(f"messages.{i}.role", "required: a string ('user', 'assistant', 'system', ...)")
        content = message.get("content")
        if isinstance(content, list):
            for j, block in enumerate(content):
                if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                    raise invalid_field(f"messages.{i}.content.{j}", "must be a content block with a 'type'")
        elif not isinstance(content, str) and (content is not None or role in ("user", "assistant")):
            raise invalid_field(f"messages.{i}.content", "must be a string or an array of content blocks")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise invalid_field("system", "must be a string or an array of text blocks")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise invalid_field("stream", "must be a boolean")
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and not is_number(value):
            raise invalid_field(name, "must be a number")
    if body.get("top_k") is not None and (not is_int(body["top_k"]) or body["top_k"] < 0):
        raise invalid_field("top_k", "must be a non-negative integer")
    stops = body.get("stop_sequences")
    if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) for s in stops)):
        raise invalid_field("stop_sequences", "must be an array of strings")
    tools = body.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
        raise invalid_field("tools", "must be an array of tool objects")
    choice = body.get("tool_choice")
    if choice is not None and not (isinstance(choice, dict) and isinstance(choice.get("type"), str)):
        raise invalid_field("tool_choice", "must be an object with a 'type' (auto, any, tool, none, ...)")


# --- texts ------------------------------------------------------------------------------------------------------


def _block_texts(blocks: list[Any], where: str, fn: TextFn, *, answer: bool = False) -> None:
    """Text, tool input (keys and values), results (title and source of a search result too), documents (title,
    context, text); in answers, thinking as well. Citations' quoted text and titles."""
    for j, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        kind, at = block.get("type"), f"{where}[{j}]"
        if kind == "text" and "text" in block:
            text_at(block, "text", f"{at}.text", fn)
            for k, citation in enumerate(block.get("citations") or []):
                for name in ("cited_text", "document_title", "title"):
                    if isinstance(citation, dict) and isinstance(citation.get(name), str):
                        text_at(citation, name, f"{at}.citations[{k}].{name}", fn)
        elif kind == "thinking" and answer and "thinking" in block:
            text_at(block, "thinking", f"{at}.thinking", fn)
        elif kind in ("tool_use", "server_tool_use", "mcp_tool_use") and "input" in block:
            block["input"] = visit_value(block["input"], f"{at}.input", fn)
        elif kind in ("tool_result", "mcp_tool_result", "search_result", "compaction"):
            for name in ("title", "source"):
                if kind == "search_result" and isinstance(block.get(name), str):
                    text_at(block, name, f"{at}.{name}", fn)
            content = block.get("content")
            if isinstance(content, str):
                text_at(block, "content", f"{at}.content", fn)
            elif isinstance(content, list):
                _block_texts(content, f"{at}.content", fn)
        elif kind == "document":
            for name in ("title", "context"):
                if isinstance(block.get(name), str):
                    text_at(block, name, f"{at}.{name}", fn)
            source = block.get("source")
            if isinstance(source, dict) and source.get("type") == "text" and "data" in source:
                text_at(source, "data", f"{at}.source.data", fn)
            elif isinstance(source, dict) and source.get("type") == "content" and isinstance(source.get("content"),
                                                                                              list):
                _block_texts(source["content"], f"{at}.source.content", fn)


# --- the format -------------------------------------------------------------------------------------------------


class AnthropicMessages(WireFormat):
    """Anthropic Messages, as clients send it (see the module contract)."""

    name = NAME
    routes = (Route("/v1/messages", "chat"), Route("/v1/messages/count_tokens", "count_tokens"))
    forward_headers = ("anthropic-version", "anthropic-beta")
    replay_headers = MappingProxyType({"anthropic-version": API_VERSION})

    def parse(self, ex: Exchange, body: dict[str, Any]) -> None:
        count_only = ex.endpoint == "count_tokens"
        validate_messages(body, count_only=count_only)
        ex.client_body = body
        ex.alias = body["model"]
        if count_only:
            return
        ex.stream = body.get("stream") is True
        ex.include_usage = True
        try:
            ex.body, ex.translation_dropped = anthropic_request_to_openai(body)
        except InvalidRequest as error:
            ex.body = {"model": ex.alias, "messages": []}
            ex.translation_error = error

    def output_cap(self, ex: Exchange) -> int | None:
        """``max_tokens`` (required by :func:`validate_messages`, so always there for a chat request)."""
        value = ex.client_body.get("max_tokens")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def set_output_cap(self, ex: Exchange, tokens: int) -> None:
        ex.client_body["max_tokens"] = tokens

    def request_texts(self, endpoint: str, body: dict[str, Any], fn: TextFn) -> None:
        system = body.get("system")
        if isinstance(system, str):
            text_at(body, "system", "system", fn)
        elif isinstance(system, list):
            _block_texts(system, "system", fn)
        for i, message in enumerate(body.get("messages") or []):
            if not isinstance(message, dict):
                continue
            content = message.get("content")
            if isinstance(content, str):
                text_at(message, "content", f"messages[{i}].content", fn)
            elif isinstance(content, list):
                _block_texts(content, f"messages[{i}].content", fn)
        for i, tool in enumerate(body.get("tools") or []):
            if isinstance(tool, dict):
                if isinstance(tool.get("description"), str):
                    text_at(tool, "description", f"tools[{i}].description", fn)
                schema_texts(tool.get("input_schema"), f"tools[{i}].input_schema", fn)
        for name in ("metadata", "stop_sequences"):
            if name in body:
                body[name] = visit_value(body[name], name, fn)

    def cache_params(self, ex: Exchange) -> dict[str, Any] | None:
        """Everything the canonical body does not carry (``thinking``, ``metadata``, ``cache_control``...)."""
        return {k: v for k, v in ex.client_body.items() if k not in _MAPPED}

    def estimate_input_tokens(self, body: Mapping[str, Any]) -> int:
        """About four characters a token, plus framing."""
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

    def count_tokens_answer(self, input_tokens: int) -> dict[str, Any]:
        return {"input_tokens": input_tokens}

    # --- answers ---

    def answer_texts(self, body: dict[str, Any], fn: TextFn) -> None:
        content = body.get("content")
        if isinstance(content, list):
            _block_texts(content, "content", fn, answer=True)

    def canonical_answer(self, body: dict[str, Any]) -> dict[str, Any]:
        return tr.anthropic_response_to_openai(body)[0]

    def answer_text(self, body: Any) -> str | None:
        if not isinstance(body, dict) or body.get("type") != "message" or not isinstance(body.get("content"), list):
            return None
        parts = []
        for block in body["content"]:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            elif block.get("type") == "tool_use":
                parts.append(f"{block.get('name', '')}({orjson.dumps(block.get('input')).decode()})")
        return "\n".join(p for p in parts if p)

    def answer_usage(self, body: Any) -> Usage | None:
        usage = body.get("usage") if isinstance(body, dict) else None
        if isinstance(usage, dict) and ("input_tokens" in usage or "output_tokens" in usage):
            return tr.usage_from_anthropic(usage)
        return None

    # --- streams ---

    def event_delta(self, data: dict[str, Any]) -> tuple[str | None, str | None]:
        kind = data.get("type")
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                return delta.get("text", ""), None
        elif kind == "message_delta":
            reason = (data.get("delta") or {}).get("stop_reason")
            if reason:
                return None, tr.STOP_TO_OPENAI.get(reason, reason)
        return None, None

    def guard_event(self, guard: StreamGuard, event: StreamEvent) -> list[StreamEvent]:
        data = event.data
        kind = data.get("type")
        if kind == "content_block_delta":
            index = data.get("index", 0)
            delta = data.get("delta") or {}
            if delta.get("type") == "signature_delta":   # the thinking is over: what it held goes out first
                held = guard.flush([k for k in guard.channels() if k == ("thinking", index)])
                return [*(self.held_text_event(guard, key, text, False) for key, text in held.items()), event]
            channel = _DELTA_CHANNELS.get(delta.get("type"))
            if channel is None:
                return [event]
            field, name = channel
            key, where = (name, index), f"content[{index}].{'input' if name == 'json' else field}"
            text = delta.get(field)
            if isinstance(text, str) and text:
                out = guard.pipe(key, where, name == "json").feed(text)
                if out != text:
                    delta[field] = out
                    event.raw = None
            return [event]
        if kind == "content_block_stop":
            keys = [k for k in guard.channels() if k[1] == data.get("index", 0)]
        elif kind in ("message_delta", "message_stop"):
            keys = guard.channels()
        else:
            return [event]
        held = guard.flush(keys)
        return [*(self.held_text_event(guard, key, text, False) for key, text in held.items()), event]

    def held_text_event(self, guard: StreamGuard, key: tuple[Any, ...], text: str, flush: bool) -> StreamEvent:
        if key[0] == "json":
            delta = {"type": "input_json_delta", "partial_json": text}
        elif key[0] == "thinking":
            delta = {"type": "thinking_delta", "thinking": text}
        else:
            delta = {"type": "text_delta", "text": text}
        return StreamEvent({"type": "content_block_delta", "index": key[1], "delta": delta}, None, format=NAME,
                           flush=flush)

    # --- rendering ---

    def error_body(self, error: GatewayError) -> dict[str, Any]:
        """``{"type": "error", "error": {"type", "message"}}``, the type chosen by the status."""
        return {"type": "error", "error": {"type": error_type(error.status), "message": error.message}}

    def render_error(self, error: GatewayError, headers: Mapping[str, str] | None = None) -> web.Response:
        return web.Response(body=orjson.dumps(self.error_body(error)), status=error.status, content_type=JSON_TYPE,
                            headers={**(headers or {}), **error.headers()})

    def render_reply(self, ex: Exchange, headers: dict[str, str]) -> web.Response:
        assert ex.reply is not None
        reply = ex.reply
        if reply.format == NAME:
            raw = reply.raw if reply.raw is not None else orjson.dumps(reply.body)
        else:
            raw = orjson.dumps(tr.openai_response_to_anthropic(reply.body, ex.usage))
        return web.Response(body=raw, status=200, content_type=JSON_TYPE, headers=headers)

    async def render_stream(self, request: web.Request, ex: Exchange, headers: dict[str, str],
                            record: Callable[[StreamEvent], None]) -> web.StreamResponse:
        """Forward ``ex``'s stream as Anthropic SSE: native events as they came, canonical ones translated."""
        converter = OpenAIStreamToAnthropic(ex.alias)
        native = ex.first_event is not None and ex.first_event.format == NAME

        def encode(event: StreamEvent) -> bytes | None:
            if event.format == NAME:
                return event.raw or encode_data(orjson.dumps(event.data), event.data.get("type") or "message")
            return b"".join(converter.feed(event.data, event.usage))

        def finish() -> bytes:
            return b"" if native else b"".join(converter.finish())

        def error(failed: GatewayError, failure: UpstreamFailure) -> bytes:
            return error_event("overloaded_error" if failure.status in (503, 529) else "api_error", failed.message)

        return await forward_stream(request, ex, headers, encode, finish, error, record)


# a content-block delta's text: type -> (field, channel)
_DELTA_CHANNELS = MappingProxyType({"text_delta": ("text", "block"), "input_json_delta": ("partial_json", "json"),
                                    "thinking_delta": ("thinking", "thinking")})
_MAPPED = frozenset({"messages", "system", "stream", "model"})   # what the canonical body carries
