"""The OpenAI Responses API client format (``/v1/responses`` and ``/v1/responses/input_tokens``): what Codex CLI and
the ``openai`` SDK's ``client.responses`` speak.

Contract (see :class:`~llmgw.formats.base.WireFormat`):
- ``parse`` validates only what the gateway relies on — the alias (``model``), the shape of ``input`` and its items
  (texts for guardrails and the cache), ``instructions``, ``stream``, ``max_output_tokens`` (budgets) and the types
  of the fields it translates — each a 400 naming the field. Item types, roles, part types and fields it has never
  seen pass: an upstream that speaks the Responses API gets the client's body untouched but for ``model``. For the
  others the canonical translation is prepared (:mod:`llmgw.translate.responses`); what has none becomes the
  exchange's ``translation_error``, raised only if such a target is tried.
- Texts (the conventions of :meth:`~llmgw.formats.base.WireFormat.request_texts`): ``instructions``, every
  message's text and refusal parts, reasoning summaries and text, ``function_call`` arguments (JSON keys and values),
  ``custom_tool_call`` input, the output of ``*_call_output`` items, tools' descriptions and parameter schemas (a
  namespace's too), ``text.format``'s description and schema, ``user``, ``safety_identifier`` and ``metadata``.
  Encrypted reasoning, images and files are left alone.
- Answers from a Responses upstream are forwarded as they came (bytes and events; ``sequence_number`` s are
  renumbered only where the stream guard added events); canonical answers are translated
  (:mod:`llmgw.translate.responses_answer`, :mod:`llmgw.translate.responses_stream`). A stream ends with
  ``response.completed`` / ``response.incomplete``; an upstream failure after the first byte ends it with an
  ``error`` event and ``response.failed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ..errors import GatewayError, InvalidRequest
from ..exchange import Exchange, StreamEvent, Usage
from ..providers.base import UpstreamFailure
from ..translate import responses as tr
from ..translate.responses_answer import finish_of, openai_response_to_responses, responses_response_to_openai
from ..translate.responses_stream import OpenAIStreamToResponses, failure_events, sse_event
from . import responses_guard as guarding
from .base import Route, WireFormat
from .streaming import forward_stream
from .texts import TextFn, json_text_at, schema_texts, text_at, visit_value
from .validate import check_model, invalid_field, is_int, is_number

if TYPE_CHECKING:
    from ..guardrails.stream import StreamGuard

NAME = tr.RESPONSES
JSON_TYPE = "application/json"
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
# What the canonical body carries whole; everything else partitions the cache (cache_params).
_MAPPED = frozenset({"model", "input", "instructions", "stream", "max_output_tokens", "tools", "tool_choice",
                     "parallel_tool_calls", "temperature", "top_p", "user", "safety_identifier", "prompt_cache_key",
                     "service_tier"})
_CANONICAL_ITEMS = frozenset({"message", "function_call", "function_call_output"})
_TERMINAL = frozenset({"response.completed", "response.incomplete"})


def validate_responses(body: Mapping[str, Any], *, count_only: bool = False) -> None:
    """Check a Responses API request (or an ``input_tokens`` request with ``count_only``): see the module contract.
    Numbers are type-checked, never range-checked: the target judges their values."""
    check_model(body)
    source = body.get("input")
    if source is not None and not isinstance(source, str | list):
        raise invalid_field("input", "must be a string or an array of input items")
    if isinstance(source, list):
        _check_items(source, "input")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str | list):
        raise invalid_field("instructions", "must be a string")
    if isinstance(instructions, list):
        _check_items(instructions, "instructions")
    if not count_only and body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise invalid_field("stream", "must be a boolean")
    limit = body.get("max_output_tokens")
    if limit is not None and (not is_int(limit) or limit < 0):
        raise invalid_field("max_output_tokens", "must be a non-negative integer")
    for name in ("temperature", "top_p"):
        if body.get(name) is not None and not is_number(body[name]):
            raise invalid_field(name, "must be a number")
    tools = body.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
        raise invalid_field("tools", "must be an array of tool objects")
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, str | dict):
        raise invalid_field("tool_choice", "must be a string (auto, none, required) or a tool choice object")


def _check_items(items: list[Any], where: str) -> None:
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise invalid_field(at, "must be an input item (an object)")
        if item.get("type") is not None and not isinstance(item["type"], str):
            raise invalid_field(f"{at}.type", "must be a string")
        if tr.item_kind(item) != "message":
            continue
        if not isinstance(item.get("role"), str):
            raise invalid_field(f"{at}.role", "required: a string ('user', 'assistant', 'system', 'developer')")
        content = item.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise invalid_field(f"{at}.content[{j}]", "must be a content part with a 'type'")
        elif not isinstance(content, str):
            raise invalid_field(f"{at}.content", "required: a string or an array of content parts")


# --- texts ------------------------------------------------------------------------------------------------------


def _parts_texts(parts: list[Any], where: str, fn: TextFn) -> None:
    for j, part in enumerate(parts):
        if not isinstance(part, dict):
            continue
        if part.get("type") in _TEXT_PARTS and "text" in part:
            text_at(part, "text", f"{where}[{j}].text", fn)
        elif part.get("type") == "refusal" and "refusal" in part:
            text_at(part, "refusal", f"{where}[{j}].refusal", fn)


def _content_texts(item: dict[str, Any], key: str, where: str, fn: TextFn) -> None:
    value = item.get(key)
    if isinstance(value, str):
        text_at(item, key, f"{where}.{key}", fn)
    elif isinstance(value, list):
        _parts_texts(value, f"{where}.{key}", fn)


def items_texts(items: list[Any], where: str, fn: TextFn) -> None:
    """Every text of a list of input or output items, in place."""
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        kind, at = tr.item_kind(item), f"{where}[{i}]"
        if kind == "message":
            _content_texts(item, "content", at, fn)
        elif kind == "reasoning":
            for key in ("summary", "content"):
                for j, part in enumerate(item.get(key) or []):
                    if isinstance(part, dict) and "text" in part:
                        text_at(part, "text", f"{at}.{key}[{j}].text", fn)
        elif kind == "function_call":
            json_text_at(item, "arguments", f"{at}.arguments", fn)
        elif kind == "custom_tool_call":
            _content_texts(item, "input", at, fn)
        elif isinstance(kind, str) and kind.endswith("_call_output"):
            _content_texts(item, "output", at, fn)


def tools_texts(tools: list[Any], where: str, fn: TextFn) -> None:
    """What tools say in words: descriptions and parameter schemas, a namespace's tools too."""
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            continue
        at = f"{where}[{i}]"
        if isinstance(tool.get("description"), str):
            text_at(tool, "description", f"{at}.description", fn)
        if isinstance(tool.get("parameters"), dict):
            schema_texts(tool["parameters"], f"{at}.parameters", fn)
        if isinstance(tool.get("tools"), list):
            tools_texts(tool["tools"], f"{at}.tools", fn)


# --- the format -------------------------------------------------------------------------------------------------


class OpenAIResponses(WireFormat):
    """The OpenAI Responses API, as clients send it (see the module contract)."""

    name = NAME
    routes = (Route("/v1/responses", "chat"), Route("/responses", "chat"),
              Route("/v1/responses/input_tokens", "count_tokens"), Route("/responses/input_tokens", "count_tokens"))
    forward_headers = ("openai-beta", "session_id", "conversation_id")

    def parse(self, ex: Exchange, body: dict[str, Any]) -> None:
        count_only = ex.endpoint == "count_tokens"
        validate_responses(body, count_only=count_only)
        ex.client_body = body
        ex.alias = body["model"]
        if count_only:
            return
        ex.stream = body.get("stream") is True
        ex.include_usage = True
        try:
            ex.body, ex.translation_dropped = tr.responses_request_to_openai(body)
        except InvalidRequest as error:
            ex.body = {"model": ex.alias, "messages": []}
            if body.get("max_output_tokens") is not None:
                ex.body["max_tokens"] = body["max_output_tokens"]
            ex.translation_error = error

    def output_cap(self, ex: Exchange) -> int | None:
        """``max_output_tokens``."""
        value = ex.client_body.get("max_output_tokens")
        return value if is_int(value) else None

    def set_output_cap(self, ex: Exchange, tokens: int) -> None:
        ex.client_body["max_output_tokens"] = tokens

    def request_texts(self, endpoint: str, body: dict[str, Any], fn: TextFn) -> None:
        for key in ("instructions", "input"):
            value = body.get(key)
            if isinstance(value, str):
                text_at(body, key, key, fn)
            elif isinstance(value, list):
                items_texts(value, key, fn)
        if isinstance(body.get("tools"), list):
            tools_texts(body["tools"], "tools", fn)
        fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
        if isinstance(fmt, dict):
            if isinstance(fmt.get("description"), str):
                text_at(fmt, "description", "text.format.description", fn)
            if isinstance(fmt.get("schema"), dict):
                schema_texts(fmt["schema"], "text.format.schema", fn)
        for key in ("user", "safety_identifier"):
            if isinstance(body.get(key), str):
                text_at(body, key, key, fn)
        if isinstance(body.get("metadata"), dict):
            body["metadata"] = visit_value(body["metadata"], "metadata", fn)

    def cache_params(self, ex: Exchange) -> dict[str, Any] | None:
        """The fields the canonical body does not carry whole (``text``, ``reasoning``, ``include``, ``store``...) and
        the input items it leaves out (reasoning items, ...)."""
        body = ex.client_body
        extra = {k: v for k, v in body.items() if k not in _MAPPED}
        source = body.get("input")
        if isinstance(source, list):
            items = [item for item in source if isinstance(item, dict) and tr.item_kind(item) not in _CANONICAL_ITEMS]
            if items:
                extra["input_items"] = items
        return extra

    def estimate_input_tokens(self, body: Mapping[str, Any]) -> int:
        """About four characters a token, plus framing."""
        chars = 12
        for key in ("instructions", "input", "tools"):
            value = body.get(key)
            if value:
                chars += len(value) if isinstance(value, str) else len(orjson.dumps(value))
        if isinstance(body.get("input"), list):
            chars += 12 * len(body["input"])
        return max(1, math.ceil(chars / 4))

    def count_tokens_answer(self, input_tokens: int) -> dict[str, Any]:
        return {"object": "response.input_tokens", "input_tokens": input_tokens}

    # --- answers ---

    def answer_texts(self, body: dict[str, Any], fn: TextFn) -> None:
        output = body.get("output")
        if isinstance(output, list):
            items_texts(output, "output", fn)

    def canonical_answer(self, body: dict[str, Any]) -> dict[str, Any]:
        return responses_response_to_openai(body)

    def answer_text(self, body: Any) -> str | None:
        if not isinstance(body, dict) or body.get("object") != "response" or not isinstance(body.get("output"), list):
            return None
        parts: list[str] = []
        for item in body["output"]:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "message":
                parts.extend(str(p.get("text", "")) for p in item.get("content") or []
                             if isinstance(p, dict) and p.get("type") == "output_text")
            elif kind == "function_call":
                parts.append(f"{item.get('name', '')}({item.get('arguments', '')})")
        return "\n".join(p for p in parts if p)

    def answer_usage(self, body: Any) -> Usage | None:
        if isinstance(body, dict) and body.get("object") == "response" and isinstance(body.get("usage"), dict):
            return tr.usage_from_responses(body["usage"])
        return None

    # --- streams ---

    def event_delta(self, data: dict[str, Any]) -> tuple[str | None, str | None]:
        kind = data.get("type")
        if kind == "response.output_text.delta":
            delta = data.get("delta")
            return (delta if isinstance(delta, str) else None), None
        if kind in _TERMINAL and isinstance(data.get("response"), dict):
            return None, finish_of(data["response"])
        return None, None

    def guard_event(self, guard: StreamGuard, event: StreamEvent) -> list[StreamEvent]:
        return guarding.guard_event(guard, event, self.held_text_event)

    def held_text_event(self, guard: StreamGuard, key: tuple[Any, ...], text: str, flush: bool) -> StreamEvent:
        return StreamEvent(guarding.held_delta(guard, key, text), None, format=NAME, flush=flush)

    # --- rendering ---

    def error_body(self, error: GatewayError) -> dict[str, Any]:
        """``{"error": {"message", "type", "param", "code"}}``, as every OpenAI API answers errors."""
        return {"error": error.as_dict()}

    def render_error(self, error: GatewayError, headers: Mapping[str, str] | None = None) -> web.Response:
        return web.Response(body=orjson.dumps(self.error_body(error)), status=error.status, content_type=JSON_TYPE,
                            headers={**(headers or {}), **error.headers()})

    def render_reply(self, ex: Exchange, headers: dict[str, str]) -> web.Response:
        assert ex.reply is not None
        reply = ex.reply
        if reply.format == NAME:
            raw = reply.raw if reply.raw is not None else orjson.dumps(reply.body)
        else:
            raw = orjson.dumps(openai_response_to_responses(reply.body, ex.usage, ex.client_body))
        return web.Response(body=raw, status=200, content_type=JSON_TYPE, headers=headers)

    async def render_stream(self, request: web.Request, ex: Exchange, headers: dict[str, str],
                            record: Callable[[StreamEvent], None]) -> web.StreamResponse:
        """Forward ``ex``'s stream as Responses SSE: native events as they came, canonical ones translated."""
        converter = OpenAIStreamToResponses(ex.client_body, ex.alias)
        native = ex.first_event is not None and ex.first_event.format == NAME
        numbering = guarding.Numbering()

        def encode(event: StreamEvent) -> bytes | None:
            if event.format == NAME:
                if numbering.renumber(event.data):
                    event.raw = None
                return event.raw or sse_event(event.data)
            return b"".join(converter.feed(event.data, event.usage))

        def finish() -> bytes:
            return b"" if native else b"".join(converter.finish())

        def error(failed: GatewayError, failure: UpstreamFailure) -> bytes:
            code = "rate_limit_exceeded" if failure.status == 429 else "server_error"
            if native:
                return failure_events(code, failed.message, numbering.next, numbering.response)
            return b"".join(converter.fail(code, failed.message))

        return await forward_stream(request, ex, headers, encode, finish, error, record)
