"""The Gemini ``generateContent`` client format (Gemini CLI, the google-genai SDKs): ``POST
/v1beta/models/{model}:generateContent``, ``:streamGenerateContent`` and ``:countTokens`` (and the same under
``/v1``, which google-genai uses by default). ``{model}`` is the alias.

Contract (see :class:`~llmgw.formats.base.WireFormat`):
- The key comes from ``x-goog-api-key`` or the ``key`` query parameter (as Gemini accepts it), else the usual
  headers; the query string is never logged.
- ``parse`` validates only what the gateway needs (the alias in the path, ``contents`` and their texts, token
  limits, the types of the fields it translates), each a 400 naming the field; unknown parts, fields and roles pass.
  The client's body goes untouched to a Gemini target (only the model in the URL replaced) and the upstream's own
  bytes and events come back; for other targets it is translated (:mod:`llmgw.translate.gemini_client`) and a
  translation problem becomes the exchange's ``translation_error``, raised only if such a target is tried.
- Streams: ``:streamGenerateContent?alt=sse`` answers with SSE (``data: <GenerateContentResponse>``); without
  ``alt=sse`` it answers, like Gemini, with one JSON array of the same chunks, written as they come.
- Texts (the conventions of :meth:`~llmgw.formats.base.WireFormat.request_texts`): ``systemInstruction`` and every
  part's ``text`` (thoughts included), ``functionCall.args`` and ``functionResponse.response`` (keys and values),
  function declarations' descriptions and what their schemas say in words, ``stopSequences`` and the response
  schema's words; in answers, the candidates' texts and function-call arguments. Other parts (media, signatures,
  code) are left alone.
- Errors are Google's: ``{"error": {"code", "message", "status", "details"}}``, with ``BadRequest`` field
  violations naming the field and ``RetryInfo`` for a 429.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson
from aiohttp import web

from ..errors import GatewayError, InvalidRequest
from ..exchange import Exchange, StreamEvent, Usage
from ..providers.base import UpstreamFailure
from ..sse import encode_data
from ..translate import gemini_client as tr
from ..translate.gemini import FINISH_TO_OPENAI, gemini_to_openai, usage_from_gemini
from ..translate.gemini_client import get, key_of
from ..translate.gemini_client_stream import OpenAIStreamToGemini, openai_response_to_gemini
from .base import Route, WireFormat
from .gemini_checks import validate_generate
from .streaming import forward_stream
from .texts import TextFn, schema_texts, text_at, visit_value
from .validate import is_int

if TYPE_CHECKING:
    from ..guardrails.stream import StreamGuard

NAME = "gemini"
JSON_TYPE = "application/json"
# google.rpc.Code names for the statuses the gateway answers with.
_STATUS_NAMES = MappingProxyType({
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 502: "UNAVAILABLE",
    503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
})
_CARRIED = frozenset({"contents", "systemInstruction", "system_instruction"})   # what the canonical body holds


def status_name(status: int) -> str:
    """Google's ``status`` name for an HTTP status."""
    return _STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")


def _routes() -> tuple[Route, ...]:
    routes = []
    for version in ("v1beta", "v1"):
        base = f"/{version}/models/{{model}}"
        routes += [Route(f"{base}:generateContent", "chat"), Route(f"{base}:streamGenerateContent", "chat", True),
                   Route(f"{base}:countTokens", "count_tokens")]
    return tuple(routes)


# --- texts ------------------------------------------------------------------------------------------------------


def _parts_texts(parts: Any, where: str, fn: TextFn) -> None:
    for j, part in enumerate(parts if isinstance(parts, list) else []):
        if not isinstance(part, dict):
            continue
        at = f"{where}[{j}]"
        key = key_of(part, "text")
        if key is not None:
            text_at(part, key, f"{at}.text", fn)
        for name, field in (("functionCall", "args"), ("functionResponse", "response")):
            holder = get(part, name)
            inner = key_of(holder, field) if isinstance(holder, dict) else None
            if inner is not None:
                holder[inner] = visit_value(holder[inner], f"{at}.{name}.{field}", fn)


def _content_texts(content: Any, where: str, fn: TextFn) -> None:
    if isinstance(content, dict):
        _parts_texts(get(content, "parts"), f"{where}.parts", fn)


def _request_texts(body: dict[str, Any], fn: TextFn) -> None:
    key = key_of(body, "systemInstruction")
    if key is not None and isinstance(body[key], str):
        text_at(body, key, "systemInstruction", fn)
    elif key is not None:
        _content_texts(body[key], "systemInstruction", fn)
    for i, content in enumerate(get(body, "contents") or []):
        _content_texts(content, f"contents[{i}]", fn)
    for i, tool in enumerate(get(body, "tools") or []):
        for j, declaration in enumerate(get(tool, "functionDeclarations") or []):
            if not isinstance(declaration, dict):
                continue
            at = f"tools[{i}].functionDeclarations[{j}]"
            if "description" in declaration:
                text_at(declaration, "description", f"{at}.description", fn)
            _schemas(declaration, ("parameters", "parametersJsonSchema", "response", "responseJsonSchema"), at, fn)
    config = get(body, "generationConfig")
    if isinstance(config, dict):
        stops = get(config, "stopSequences")
        for k in range(len(stops) if isinstance(stops, list) else 0):
            text_at(stops, k, f"generationConfig.stopSequences[{k}]", fn)
        _schemas(config, ("responseSchema", "responseJsonSchema"), "generationConfig", fn)


def _schemas(holder: dict[str, Any], names: tuple[str, ...], where: str, fn: TextFn) -> None:
    """What the schemas under ``names`` say in words (descriptions, enums...), never their structure."""
    for name in names:
        key = key_of(holder, name)
        if key is not None:
            schema_texts(holder[key], f"{where}.{name}", fn)


def _candidates(body: Any) -> list[dict[str, Any]]:
    candidates = body.get("candidates") if isinstance(body, dict) else None
    return [c for c in candidates if isinstance(c, dict)] if isinstance(candidates, list) else []


def _parts(candidate: dict[str, Any]) -> list[dict[str, Any]]:
    parts = get(get(candidate, "content"), "parts")
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


# --- the format -------------------------------------------------------------------------------------------------


class GeminiGenerate(WireFormat):
    """Gemini ``generateContent``, as clients send it (see the module contract)."""

    name = NAME
    routes = _routes()

    def credential(self, request: web.Request) -> str | None:
        """``x-goog-api-key``, else ``?key=``, else ``x-api-key`` / ``Authorization: Bearer``."""
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        return key.strip() if key and key.strip() else super().credential(request)

    def parse(self, ex: Exchange, body: dict[str, Any]) -> None:
        count_only = ex.endpoint == "count_tokens"
        alias = ex.route_params.get("model", "")
        validate_generate(body, alias, count_only=count_only)
        ex.client_body = body
        ex.alias = alias
        if count_only:
            return
        ex.include_usage = True
        try:
            ex.body, ex.translation_dropped = tr.gemini_request_to_openai(body, alias, stream=ex.stream)
        except InvalidRequest as error:
            ex.body = {"model": alias, "messages": []}
            ex.translation_error = error

    def output_cap(self, ex: Exchange) -> int | None:
        """``generationConfig.maxOutputTokens`` of the client's body (either spelling), translated or not."""
        value = get(get(ex.client_body, "generationConfig"), "maxOutputTokens")
        return value if is_int(value) else None

    def set_output_cap(self, ex: Exchange, tokens: int) -> None:
        """Write ``generationConfig.maxOutputTokens`` into the client's body, in the spelling it already uses."""
        body = ex.client_body
        key = key_of(body, "generationConfig") or "generationConfig"
        config = body.get(key)
        config = dict(config) if isinstance(config, dict) else {}
        config[key_of(config, "maxOutputTokens") or "maxOutputTokens"] = tokens
        body[key] = config

    def request_texts(self, endpoint: str, body: dict[str, Any], fn: TextFn) -> None:
        inner = get(body, "generateContentRequest") if endpoint == "count_tokens" else None
        _request_texts(inner if isinstance(inner, dict) else body, fn)

    def cache_params(self, ex: Exchange) -> dict[str, Any] | None:
        """Everything the canonical body does not carry (``safetySettings``, ``thinkingConfig``, ``topK``...)."""
        return {k: v for k, v in ex.client_body.items() if k not in _CARRIED}

    def estimate_input_tokens(self, body: Mapping[str, Any]) -> int:
        """About four characters a token (text parts by their text, other parts by their JSON), plus framing."""
        request = get(body, "generateContentRequest")
        if not isinstance(request, Mapping):
            request = body
        chars = 0
        system = get(request, "systemInstruction")
        contents = [*([system] if isinstance(system, dict) else []), *(get(request, "contents") or [])]
        for content in contents:
            for part in get(content, "parts") or []:
                text = get(part, "text")
                chars += len(text) if isinstance(text, str) else len(orjson.dumps(part))
            chars += 12
        if isinstance(system, str):
            chars += len(system)
        if get(request, "tools"):
            chars += len(orjson.dumps(get(request, "tools")))
        return max(1, math.ceil(chars / 4))

    def count_tokens_answer(self, input_tokens: int) -> dict[str, Any]:
        return {"totalTokens": input_tokens}

    def replay_call(self, body: dict[str, Any], alias: str) -> tuple[str, dict[str, Any]]:
        """The alias goes in the path (percent-encoded); the body is sent as it was."""
        return f"/v1beta/models/{quote(alias, safe='')}:generateContent", body

    # --- answers ---

    def answer_texts(self, body: dict[str, Any], fn: TextFn) -> None:
        for i, candidate in enumerate(_candidates(body)):
            _content_texts(get(candidate, "content"), f"candidates[{i}].content", fn)

    def canonical_answer(self, body: dict[str, Any]) -> dict[str, Any]:
        return gemini_to_openai(body, str(body.get("modelVersion") or ""))

    def answer_text(self, body: Any) -> str | None:
        if not isinstance(body, dict) or not isinstance(body.get("candidates"), list):
            return None
        candidates = _candidates(body)
        out = []
        for part in _parts(candidates[0]) if candidates else []:
            call = get(part, "functionCall")
            if isinstance(call, dict):
                out.append(f"{get(call, 'name') or ''}({orjson.dumps(get(call, 'args') or {}).decode()})")
            elif isinstance(get(part, "text"), str) and get(part, "thought") is not True:
                out.append(get(part, "text"))
        return "\n".join(p for p in out if p)

    def answer_usage(self, body: Any) -> Usage | None:
        meta = get(body, "usageMetadata")
        return usage_from_gemini(meta) if isinstance(meta, dict) else None

    # --- streams ---

    def event_delta(self, data: dict[str, Any]) -> tuple[str | None, str | None]:
        """The first candidate's visible text; the finish reason in canonical terms, ``tool_calls`` as soon as a
        chunk carries a function call (Gemini says ``STOP`` for those)."""
        candidates = _candidates(data)
        if not candidates:
            blocked = get(get(data, "promptFeedback"), "blockReason")
            return None, "content_filter" if blocked else None
        parts = _parts(candidates[0])
        text = "".join(p["text"] for p in parts if isinstance(p.get("text"), str) and p.get("thought") is not True)
        reason = get(candidates[0], "finishReason")
        if any(get(p, "functionCall") is not None for p in parts):
            return text or None, "tool_calls"
        return text or None, (FINISH_TO_OPENAI.get(reason, "stop") if isinstance(reason, str) else None)

    def guard_event(self, guard: StreamGuard, event: StreamEvent) -> list[StreamEvent]:
        data = event.data
        guard.context = {k: data[k] for k in ("modelVersion", "responseId") if k in data}
        changed = False
        candidates = _candidates(data)
        for candidate in candidates:
            index = candidate.get("index", 0)
            parts = _parts(candidate)
            for j, part in enumerate(parts):
                changed |= _guard_part(guard, part, index, f"candidates[{index}].content.parts[{j}]")
            if get(candidate, "finishReason"):
                held = guard.flush([k for k in guard.channels() if k[1] == index])
                changed |= _put_back(candidate, held)
        extra: list[StreamEvent] = []
        if not candidates and guard.channels():   # a prompt block or a usage-only chunk: everything out first
            held = guard.flush(guard.channels())
            extra = [self.held_text_event(guard, key, text, False) for key, text in held.items()]
        if changed:
            event.raw = None
        return [*extra, event]

    def held_text_event(self, guard: StreamGuard, key: tuple[Any, ...], text: str, flush: bool) -> StreamEvent:
        part: dict[str, Any] = {"text": text, "thought": True} if key[0] == "thought" else {"text": text}
        chunk = {"candidates": [{"content": {"role": "model", "parts": [part]}, "index": key[1]}], **guard.context}
        return StreamEvent(chunk, None, format=NAME, flush=flush)

    # --- rendering ---

    def render_reply(self, ex: Exchange, headers: dict[str, str]) -> web.Response:
        assert ex.reply is not None
        reply = ex.reply
        if reply.format == NAME:
            raw = reply.raw if reply.raw is not None else orjson.dumps(reply.body)
        else:
            raw = orjson.dumps(openai_response_to_gemini(reply.body, ex.usage))
        return web.Response(body=raw, status=200, content_type=JSON_TYPE, headers=headers)

    async def render_stream(self, request: web.Request, ex: Exchange, headers: dict[str, str],
                            record: Callable[[StreamEvent], None]) -> web.StreamResponse:
        """Native events as they came, canonical ones translated; SSE with ``alt=sse``, else a JSON array."""
        assert ex.first_event is not None
        frames = _Frames(array=request.query.get("alt") != "sse")
        converter = OpenAIStreamToGemini(ex.alias)
        native = ex.first_event.format == NAME

        def encode(event: StreamEvent) -> bytes | None:
            if event.format == NAME:
                return event.raw if event.raw and not frames.array else frames.item(event.data)
            return b"".join(frames.item(chunk) for chunk in converter.feed(event.data, event.usage))

        def finish() -> bytes:
            tail = b"" if native else b"".join(frames.item(chunk) for chunk in converter.finish())
            return tail + frames.end()

        def error(failed: GatewayError, failure: UpstreamFailure) -> bytes:
            return frames.item(self.error_body(failed)) + frames.end()

        return await forward_stream(request, ex, headers, encode, finish, error, record,
                                    content_type=JSON_TYPE if frames.array else None)

    def error_body(self, error: GatewayError) -> dict[str, Any]:
        """``{"error": {"code", "message", "status", "details"}}``: ``ErrorInfo`` with the gateway's code, a
        ``BadRequest`` field violation for a field, ``RetryInfo`` when the client should wait."""
        details: list[dict[str, Any]] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                          "reason": str(error.code or error.type).upper(), "domain": "llmgw"}]
        if error.param:
            details.append({"@type": "type.googleapis.com/google.rpc.BadRequest",
                            "fieldViolations": [{"field": error.param, "description": error.message}]})
        if error.retry_after is not None:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                            "retryDelay": f"{max(1, math.ceil(error.retry_after))}s"})
        return {"error": {"code": error.status, "message": error.message, "status": status_name(error.status),
                          "details": details}}

    def render_error(self, error: GatewayError, headers: Mapping[str, str] | None = None) -> web.Response:
        return web.Response(body=orjson.dumps(self.error_body(error)), status=error.status, content_type=JSON_TYPE,
                            headers={**(headers or {}), **error.headers()})


class _Frames:
    """How chunks are framed: SSE events, or the items of one JSON array (``[`` before the first, ``,`` between,
    ``]`` at the end)."""

    def __init__(self, *, array: bool) -> None:
        self.array = array
        self._started = False

    def item(self, chunk: dict[str, Any]) -> bytes:
        data = orjson.dumps(chunk)
        if not self.array:
            return encode_data(data)
        prefix = b",\r\n" if self._started else b"["
        self._started = True
        return prefix + data

    def end(self) -> bytes:
        return (b"]" if self._started else b"[]") if self.array else b""


def _guard_part(guard: StreamGuard, part: dict[str, Any], index: int, where: str) -> bool:
    """Put one streamed part's texts through the guard; whether anything changed."""
    changed = False
    key = key_of(part, "text")
    if key is not None and isinstance(part[key], str) and part[key]:
        channel = ("thought" if get(part, "thought") is True else "text", index)
        out = guard.pipe(channel, f"{where}.text", False).feed(part[key])
        changed, part[key] = out != part[key], out
    call = get(part, "functionCall")
    args_key = key_of(call, "args") if isinstance(call, dict) else None
    if args_key is not None and call[args_key]:
        # Gemini streams a call whole: its arguments go through a channel of their own, closed at once.
        channel = ("call", index)
        text = orjson.dumps(call[args_key]).decode()
        out = guard.pipe(channel, f"{where}.functionCall.args", True).feed(text)
        out += guard.flush([channel]).get(channel, "")
        if out != text:
            try:
                call[args_key] = orjson.loads(out)
                changed = True
            except orjson.JSONDecodeError:
                pass
    return changed


def _put_back(candidate: dict[str, Any], held: dict[tuple[Any, ...], str]) -> bool:
    """Put text held for a finishing candidate into its last chunk, before any function call."""
    if not held:
        return False
    content = candidate.setdefault("content", {"role": "model"})
    parts = content.setdefault("parts", [])
    calls = [i for i, p in enumerate(parts) if isinstance(p, dict) and get(p, "functionCall") is not None]
    at = calls[0] if calls else len(parts)
    for key, text in held.items():
        parts.insert(at, {"text": text, "thought": True} if key[0] == "thought" else {"text": text})
        at += 1
    return True
