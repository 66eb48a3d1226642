"""The OpenAI Chat Completions (and Embeddings) client format — also the gateway's canonical form.

Contract (see :class:`~llmgw.formats.base.WireFormat`):
- ``parse`` validates only what the gateway relies on (400 naming the field, nothing changed); unknown fields pass
  through untouched. The client's body *is* the canonical body.
- Texts: every message's ``name``, content (string, text and refusal parts), ``refusal``, ``reasoning_content``,
  tool-call and function-call arguments (JSON keys and string values one by one); the tools' descriptions and
  parameter schemas, ``prediction``, ``user``, ``metadata``, the response format's schema, ``stop``; embeddings
  ``input`` and ``user``. Answers: the same fields of each choice's message.
- ``render_reply`` answers with the upstream's own bytes when they are in this format, else serialises once.
- ``render_stream`` forwards each event as it arrives, hides the usage chunk from clients that did not ask for it,
  ends with ``[DONE]`` only when the upstream finished, and on a mid-stream failure sends an error event instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ..errors import GatewayError
from ..exchange import CANONICAL, Exchange, StreamEvent, Usage
from ..providers.base import UpstreamFailure
from ..sse import encode_data
from .base import Route, WireFormat
from .streaming import forward_stream
from .texts import TextFn, content_text, json_text_at, schema_texts, text_at, visit_value
from .validate import check_model, invalid_field, is_int, is_number

if TYPE_CHECKING:
    from ..guardrails.stream import StreamGuard

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_NUMERIC_RANGES = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
_POSITIVE_INTS = ("max_tokens", "max_completion_tokens", "n", "top_logprobs")


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be a boolean"


def _stream_options(value: Any) -> str | None:
    if value is None or (isinstance(value, dict) and isinstance(value.get("include_usage", False), bool)):
        return None
    return "must be an object like {\"include_usage\": true}"


def _in_range(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value is None or (is_number(value) and low <= value <= high):
            return None
        return f"must be a number between {low:g} and {high:g}"
    return check


def _at_least(least: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value is None or (is_int(value) and value >= least) else "must be a positive integer"
    return check


def _stop(value: Any) -> str | None:
    if value is None or isinstance(value, str) or (isinstance(value, list) and all(isinstance(s, str) for s in value)):
        return None
    return "must be a string or an array of strings"


def _tools(value: Any) -> str | None:
    if value is None or (isinstance(value, list) and all(isinstance(t, dict) for t in value)):
        return None
    return "must be an array of tool objects"


# The optional fields the gateway checks, each with what is wrong with its value (None: nothing); a body is
# checked for the ones it has (most bodies have one or two of them), in alphabetical order.
_FIELD_CHECKS: Mapping[str, Callable[[Any], str | None]] = MappingProxyType({
    "stream": _boolean, "logprobs": _boolean, "parallel_tool_calls": _boolean,
    "stream_options": _stream_options,
    **{name: _in_range(low, high) for name, (low, high) in _NUMERIC_RANGES.items()},
    **{name: _at_least(0 if name == "top_logprobs" else 1) for name in _POSITIVE_INTS},
    "stop": _stop, "tools": _tools,
})
JSON_TYPE = "application/json"
_DONE = encode_data(b"[DONE]")
_DELTA_TEXTS = ("reasoning_content", "reasoning", "content", "refusal")   # a delta's text channels


def validate_chat(body: Mapping[str, Any]) -> None:
    """Check the fields the gateway relies on; everything else is the upstream's to judge."""
    check_model(body)
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
    for name in sorted(_FIELD_CHECKS.keys() & body.keys()):
        problem = _FIELD_CHECKS[name](body[name])
        if problem is not None:
            raise invalid_field(name, problem)


def validate_embeddings(body: Mapping[str, Any]) -> None:
    check_model(body)
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


# --- texts ------------------------------------------------------------------------------------------------------


def _parts_texts(holder: dict[str, Any], key: str, where: str, fn: TextFn) -> None:
    """A string, or text and refusal parts (adjacent parts are read as one text: ``…[j].text``)."""
    content = holder.get(key)
    if isinstance(content, str):
        text_at(holder, key, f"{where}.{key}", fn)
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict):
                continue
            if part.get("type") in ("text", "input_text", "output_text") and "text" in part:
                text_at(part, "text", f"{where}.{key}[{j}].text", fn)
            elif part.get("type") == "refusal" and "refusal" in part:
                text_at(part, "refusal", f"{where}.{key}[{j}].refusal", fn)


_PLAIN_MESSAGE = frozenset({"role", "content"})
# Request members other than the messages that hold texts: most requests have none of them.
_REQUEST_TEXT_MEMBERS = frozenset({"tools", "prediction", "user", "stop", "metadata", "response_format"})


def _message_texts(message: dict[str, Any], where: str, fn: TextFn) -> None:
    if message.keys() <= _PLAIN_MESSAGE:   # the common message: its content is its only text
        _parts_texts(message, "content", where, fn)
        return
    if isinstance(message.get("name"), str):
        text_at(message, "name", f"{where}.name", fn)
    _parts_texts(message, "content", where, fn)
    for name in ("refusal", "reasoning_content", "reasoning"):
        if isinstance(message.get(name), str):
            text_at(message, name, f"{where}.{name}", fn)
    for k, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            json_text_at(function, "arguments", f"{where}.tool_calls[{k}].function.arguments", fn)
    function_call = message.get("function_call")
    if isinstance(function_call, dict):
        json_text_at(function_call, "arguments", f"{where}.function_call.arguments", fn)


def chat_request_texts(body: dict[str, Any], fn: TextFn) -> None:
    """A Chat Completions request: every message's name, content (string, text and refusal parts), refusal and
    reasoning, tool-call arguments (keys and values); the tools' descriptions and parameter schemas, the
    prediction, ``user``, ``metadata`` (keys and values), the response format's description and schema, ``stop``."""
    for i, message in enumerate(body.get("messages") or []):
        if isinstance(message, dict):
            _message_texts(message, f"messages[{i}]", fn)
    if _REQUEST_TEXT_MEMBERS.isdisjoint(body):
        return
    for i, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict):
            if isinstance(function.get("description"), str):
                text_at(function, "description", f"tools[{i}].function.description", fn)
            schema_texts(function.get("parameters"), f"tools[{i}].function.parameters", fn)
    if isinstance(body.get("prediction"), dict):
        _parts_texts(body["prediction"], "content", "prediction", fn)
    for name in ("user", "stop", "metadata"):
        if name in body:
            body[name] = visit_value(body[name], name, fn)
    response_format = body.get("response_format")
    schema = response_format.get("json_schema") if isinstance(response_format, dict) else None
    if isinstance(schema, dict):
        if isinstance(schema.get("description"), str):
            text_at(schema, "description", "response_format.json_schema.description", fn)
        schema_texts(schema.get("schema"), "response_format.json_schema.schema", fn)


def _embeddings_texts(body: dict[str, Any], fn: TextFn) -> None:
    if isinstance(body.get("user"), str):
        text_at(body, "user", "user", fn)
    value = body.get("input")
    if isinstance(value, str):
        text_at(body, "input", "input", fn)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                text_at(value, i, f"input[{i}]", fn)


# --- the format -------------------------------------------------------------------------------------------------


class OpenAIChat(WireFormat):
    """OpenAI Chat Completions and Embeddings, as clients send them (see the module contract)."""

    name = CANONICAL
    routes = (Route("/v1/chat/completions", "chat"), Route("/chat/completions", "chat"),
              Route("/v1/embeddings", "embeddings"), Route("/embeddings", "embeddings"))

    def parse(self, ex: Exchange, body: dict[str, Any]) -> None:
        if ex.endpoint == "embeddings":
            validate_embeddings(body)
        else:
            validate_chat(body)
            ex.stream = body.get("stream") is True
            ex.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        ex.body = ex.client_body = body
        ex.alias = body["model"]

    def set_output_cap(self, ex: Exchange, tokens: int) -> None:
        """``max_completion_tokens`` (OpenAI's reasoning models refuse ``max_tokens``); the client's body is the
        canonical one. ``output_cap`` is the base's: ``max_completion_tokens``, else ``max_tokens``."""
        ex.client_body["max_completion_tokens"] = tokens

    def request_texts(self, endpoint: str, body: dict[str, Any], fn: TextFn) -> None:
        if endpoint == "embeddings":
            _embeddings_texts(body, fn)
        else:
            chat_request_texts(body, fn)

    # --- answers ---

    def answer_texts(self, body: dict[str, Any], fn: TextFn) -> None:
        if body.get("object") == "list":   # embeddings answers carry no text
            return
        for i, choice in enumerate(body.get("choices") or []):
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict):
                _message_texts(message, f"choices[{i}].message", fn)

    def canonical_answer(self, body: dict[str, Any]) -> dict[str, Any]:
        return body

    def answer_text(self, body: Any) -> str | None:
        if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
            return None
        choices = body["choices"]
        message = (choices[0].get("message") if choices and isinstance(choices[0], dict) else None) or {}
        parts = [content_text(message.get("content"))]
        for call in message.get("tool_calls") or []:
            function = (call.get("function") or {}) if isinstance(call, dict) else {}
            parts.append(f"{function.get('name', '')}({function.get('arguments', '')})")
        return "\n".join(p for p in parts if p)

    def answer_usage(self, body: Any) -> Usage | None:
        usage = body.get("usage") if isinstance(body, dict) else None
        if isinstance(usage, dict) and ("prompt_tokens" in usage or "completion_tokens" in usage):
            return Usage.from_openai(usage)
        return None

    # --- streams ---

    def event_delta(self, data: dict[str, Any]) -> tuple[str | None, str | None]:
        choices = data.get("choices")
        if not choices:
            return None, None
        choice = choices[0]
        return (choice.get("delta") or {}).get("content"), choice.get("finish_reason")

    def guard_event(self, guard: StreamGuard, event: StreamEvent) -> list[StreamEvent]:
        data = event.data
        guard.context = {k: data.get(k) for k in ("id", "object", "created", "model")}
        choices = data.get("choices") or []
        changed = False
        extra: list[StreamEvent] = []
        for choice in choices:
            index = choice.get("index", 0)
            delta = choice.get("delta") or {}
            for name in _DELTA_TEXTS:
                text = delta.get(name)
                if not isinstance(text, str) or not text:
                    continue
                if name == "content":   # the reasoning is over: what it held goes out first
                    reasoning = [k for k in guard.channels() if k[0] == "delta" and k[1] == index]
                    extra += [self.held_text_event(guard, key, held, False)
                              for key, held in guard.flush(reasoning).items()]
                key = ("text", index) if name == "content" else ("delta", index, name)
                out = guard.pipe(key, f"choices[{index}].delta.{name}", False).feed(text)
                changed |= out != text
                delta[name] = out
            for call in delta.get("tool_calls") or []:
                function = call.get("function") or {}
                args = function.get("arguments")
                if isinstance(args, str) and args:
                    key = ("tool", index, call.get("index", 0))
                    where = f"choices[{index}].delta.tool_calls[{key[2]}].function.arguments"
                    out = guard.pipe(key, where, True).feed(args)
                    changed |= out != args
                    function["arguments"] = out
            if choice.get("finish_reason"):
                held = guard.flush([k for k in guard.channels() if k[1] == index])
                changed |= _put_back(choice, delta, held)
        if not choices and guard.channels():   # the usage chunk: everything must be out before it
            held = guard.flush(guard.channels())
            extra += [self.held_text_event(guard, key, text, False) for key, text in held.items()]
        if changed:
            event.raw = None
        return [*extra, event]

    def held_text_event(self, guard: StreamGuard, key: tuple[Any, ...], text: str, flush: bool) -> StreamEvent:
        delta: dict[str, Any] = ({"content": text} if key[0] == "text" else {key[2]: text} if key[0] == "delta"
                                 else {"tool_calls": [{"index": key[2], "function": {"arguments": text}}]})
        chunk = {**guard.context, "object": "chat.completion.chunk",
                 "choices": [{"index": key[1], "delta": delta, "finish_reason": None}]}
        return StreamEvent(chunk, None, flush=flush)

    # --- rendering ---

    def render_reply(self, ex: Exchange, headers: dict[str, str]) -> web.Response:
        assert ex.reply is not None
        raw = ex.reply.raw if ex.reply.raw is not None else orjson.dumps(ex.reply.body)
        return web.Response(body=raw, status=200, content_type=JSON_TYPE, headers=headers)

    def error_body(self, error: GatewayError) -> dict[str, Any]:
        """``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": error.as_dict()}

    def render_error(self, error: GatewayError, headers: Mapping[str, str] | None = None) -> web.Response:
        return web.Response(body=orjson.dumps(self.error_body(error)), status=error.status, content_type=JSON_TYPE,
                            headers={**(headers or {}), **error.headers()})

    async def render_stream(self, request: web.Request, ex: Exchange, headers: dict[str, str],
                            record: Callable[[StreamEvent], None]) -> web.StreamResponse:
        """Forward ``ex``'s stream as OpenAI SSE, as it arrives."""
        include_usage = ex.include_usage

        def encode(event: StreamEvent) -> bytes | None:
            if event.usage is not None and not include_usage and not event.data.get("choices"):
                return None  # the usage chunk the gateway asked for, not the client
            return event.raw or encode_data(orjson.dumps(event.data))

        def error(failed: GatewayError, failure: UpstreamFailure) -> bytes:
            return encode_data(orjson.dumps(self.error_body(failed)))

        return await forward_stream(request, ex, headers, encode, lambda: _DONE, error, record)


def _put_back(choice: dict[str, Any], delta: dict[str, Any], held: dict[tuple[Any, ...], str]) -> bool:
    """Put text held for a finishing choice into its last chunk."""
    for key, text in held.items():
        if key[0] in ("text", "delta"):
            name = "content" if key[0] == "text" else key[2]
            delta[name] = (delta.get(name) or "") + text   # what was held back ends the text
        else:
            delta.setdefault("tool_calls", []).append({"index": key[2], "function": {"arguments": text}})
    if held:
        choice["delta"] = delta
    return bool(held)
