"""A fake Google Gemini upstream: a real aiohttp server speaking the Gemini API's REST (v1beta) wire format.

:class:`FakeGemini` serves, on a free port of 127.0.0.1:

* ``POST /v1beta/models/{model}:generateContent`` -- a whole ``GenerateContentResponse``;
* ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` -- several SSE events, each a whole
  ``GenerateContentResponse`` carrying the next piece of text, ``usageMetadata`` (running totals) on every one and
  ``finishReason`` on the last; without ``alt=sse`` Gemini's JSON-array form;
* ``POST /v1beta/models/{model}:batchEmbedContents`` -- deterministic unit vectors, no usage (as Gemini sends);
* ``POST /v1beta/models/{model}:countTokens`` -- ``{"totalTokens"}`` of ``contents`` or of a
  ``generateContentRequest`` (whose ``model`` must name the model of the path, as Gemini requires);
* every error in Gemini's body: ``{"error": {"code", "message", "status"}}`` (``details`` where Gemini adds them).

It checks requests as strictly as Gemini does where a translation could go wrong: unknown top-level or
``generationConfig`` fields, roles other than ``user``/``model``, empty ``contents`` or ``parts``, and JSON-schema
keywords in function ``parameters`` that Gemini's ``Schema`` does not know all get Gemini's 400.

Answers are deterministic: :func:`gemini_answer_for` and :func:`gemini_prompt_tokens_for` predict them.

The shapes it reproduces are recorded in :mod:`llmgw.testing.samples` (re-exported here).
"""

from __future__ import annotations

import functools
from collections import deque
from types import MappingProxyType
from typing import Any, Final

import orjson
from aiohttp import web

from .answers import (
    blake2b_bytes,
    count_words,
    cut_answer,
    embedding,
    last_user_text,
    message_tokens,
    part_texts,
    split_words,
)
from .samples import (
    GEMINI_EMBEDDINGS_SAMPLE,
    GEMINI_ERROR_SAMPLE,
    GEMINI_FUNCTION_CALL_SAMPLE,
    GEMINI_RESPONSE_SAMPLE,
    GEMINI_STREAM_SAMPLE,
)
from .server import FakeServer, call_name
from .wire import by_status, json_response, send_events, sse

__all__ = [
    "GEMINI_EMBEDDINGS_SAMPLE",
    "GEMINI_ERROR_SAMPLE",
    "GEMINI_FUNCTION_CALL_SAMPLE",
    "GEMINI_RESPONSE_SAMPLE",
    "GEMINI_STREAM_SAMPLE",
    "FakeGemini",
    "gemini_answer_for",
    "gemini_prompt_tokens_for",
    "make_fake_gemini_app",
]

# ----------------------------------------------------------------------------------------------------------
# Deterministic helpers
# ----------------------------------------------------------------------------------------------------------

# google.rpc.Code names for the HTTP statuses Gemini answers with.
STATUS_NAMES: Final = MappingProxyType({
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
})
_MISSING_KEY_MESSAGE: Final = ("Method doesn't allow unregistered callers (callers without established identity). "
                               "Please use API Key or other form of API consumer identity to call this API.")
_BAD_KEY_MESSAGE: Final = "API key not valid. Please pass a valid API key."
_DEFAULT_EMBEDDING_DIMENSIONS: Final = 8
_MODEL: Final = "/v1beta/models/{model:[^:/]+}"  # then ":" and the method

# Fields Gemini knows (both the JSON camelCase and the proto snake_case spelling are accepted, as by Gemini).
_REQUEST_FIELDS: Final = frozenset({
    "contents", "tools", "toolConfig", "tool_config", "safetySettings", "safety_settings", "systemInstruction",
    "system_instruction", "generationConfig", "generation_config", "cachedContent", "cached_content",
})
_GENERATION_FIELDS: Final = frozenset({
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities",
    "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty",
    "frequencyPenalty", "responseLogprobs", "logprobs", "enableEnhancedCivicAnswers", "speechConfig",
    "thinkingConfig", "imageConfig", "mediaResolution",
})
_SCHEMA_FIELDS: Final = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties", "required",
    "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf", "propertyOrdering",
    "default", "items", "minimum", "maximum",
})
_PART_FIELDS: Final = frozenset({
    "text", "inlineData", "fileData", "functionCall", "functionResponse", "thought", "thoughtSignature",
    "executableCode", "codeExecutionResult", "videoMetadata",
})



def _content_text(content: Any) -> str:
    """The text parts of one Gemini content, joined by single spaces."""
    parts = content.get("parts") if isinstance(content, dict) else None
    return " ".join(part_texts(parts or [], kind=None))


def gemini_answer_for(contents: list[dict[str, Any]]) -> str:
    """The fake's answer when none is fixed: ``"Echo: " + <text parts of the last user content, space-joined>``
    (``"Echo: "`` when there is no user content or it has no text)."""
    return f"Echo: {last_user_text(contents, _content_text, default_role='user')}"


def gemini_prompt_tokens_for(contents: list[dict[str, Any]], system_instruction: dict[str, Any] | None = None) -> int:
    """The fake's ``promptTokenCount``: ``ceil(len(text) / 4) + 3`` summed over the contents and the system
    instruction (text as in :func:`gemini_answer_for`)."""
    every = [*([system_instruction] if system_instruction else []), *contents]
    return message_tokens(map(_content_text, every))


def error_body(status: int, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Gemini's error body for ``status``."""
    name = by_status(STATUS_NAMES, status, client_error="FAILED_PRECONDITION", server_error="INTERNAL")
    error: dict[str, Any] = {"code": status, "message": message, "status": name}
    if details:
        error["details"] = details
    return {"error": error}


def _error(status: int, message: str, details: list[dict[str, Any]] | None = None) -> web.Response:
    return json_response(error_body(status, message, details), status=status)


def _bad_request(message: str) -> web.Response:
    return _error(400, message)


def _unknown_field(name: str, at: str = "") -> web.Response:
    where = f" at '{at}'" if at else ""
    return _bad_request(f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.')


def _check_schema(schema: Any, at: str) -> web.Response | None:
    if not isinstance(schema, dict):
        return _bad_request(f"Invalid value at '{at}': expected an object")
    for key, value in schema.items():
        if key not in _SCHEMA_FIELDS:
            return _unknown_field(key, at)
        if key == "properties" and isinstance(value, dict):
            for name, sub in value.items():
                problem = _check_schema(sub, f"{at}.properties[{name}].value")
                if problem is not None:
                    return problem
        elif key == "items":
            problem = _check_schema(value, f"{at}.items")
            if problem is not None:
                return problem
        elif key == "anyOf" and isinstance(value, list):
            for i, sub in enumerate(value):
                problem = _check_schema(sub, f"{at}.any_of[{i}]")
                if problem is not None:
                    return problem
    if schema.get("type") in ("object", "OBJECT") and "properties" in schema and not schema["properties"]:
        return _bad_request(f"* GenerateContentRequest.{at}.properties: should be non-empty for OBJECT type")
    return None


def _check_request(body: Any) -> web.Response | None:
    """Gemini's 400 for a request it would refuse, or None."""
    if not isinstance(body, dict):
        return _bad_request("Invalid JSON payload received. Expected an object.")
    for key in body:
        if key not in _REQUEST_FIELDS:
            return _unknown_field(key)
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return _bad_request("* GenerateContentRequest.contents: contents is not specified")
    for i, content in enumerate(contents):
        if not isinstance(content, dict):
            return _bad_request(f"Invalid value at 'contents[{i}]': expected an object")
        if content.get("role", "user") not in ("user", "model"):
            return _bad_request("Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            return _bad_request(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
        for j, part in enumerate(parts):
            for key in part if isinstance(part, dict) else ():
                if key not in _PART_FIELDS:
                    return _unknown_field(key, f"contents[{i}].parts[{j}]")
    config = body.get("generationConfig", body.get("generation_config")) or {}
    for key in config:
        if key not in _GENERATION_FIELDS:
            return _unknown_field(key, "generation_config")
    for i, tool in enumerate(body.get("tools") or []):
        for j, declaration in enumerate((tool or {}).get("functionDeclarations") or []):
            if "parameters" in declaration:
                problem = _check_schema(declaration["parameters"],
                                        f"tools[{i}].function_declarations[{j}].parameters")
                if problem is not None:
                    return problem
    return None


def _usage(prompt: int, candidates: int | None) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": prompt}
    if candidates is not None:
        usage["candidatesTokenCount"] = candidates
    usage["totalTokenCount"] = prompt + (candidates or 0)
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    return usage


# ----------------------------------------------------------------------------------------------------------
# The fake
# ----------------------------------------------------------------------------------------------------------


class FakeGemini(FakeServer):
    """A fake Gemini API served by aiohttp on a free port of 127.0.0.1.

    Use it as an async context manager::

        async with FakeGemini(api_key="AIza-test") as up:
            ...  # up.base_url == "http://127.0.0.1:PORT"; POST {base_url}/v1beta/models/M:generateContent

    Contracts (besides :class:`~.server.FakeServer`'s: ``requests``, ``record_requests``, ``set_answer``):

    * ``api_key``: when set, a request without a key (``x-goog-api-key`` header or ``key`` query parameter, as
      Gemini accepts both) gets 403 ``PERMISSION_DENIED``, a wrong key 400 ``INVALID_ARGUMENT`` with reason
      ``API_KEY_INVALID`` -- Gemini's answers. None accepts anything.
    * An unknown path or method gets 404 ``NOT_FOUND`` whatever the key (it is recorded, and takes no failure).
    * The answer text is :func:`gemini_answer_for` of the contents unless :meth:`set_answer` fixed one;
      :meth:`set_function_calls` answers with function calls instead. ``stopSequences`` cut the text (finish
      ``STOP``); ``maxOutputTokens`` cuts it to that many words (finish ``MAX_TOKENS``).
    * Usage: ``promptTokenCount`` is :func:`gemini_prompt_tokens_for`; ``candidatesTokenCount`` the number of
      words sent, or for function calls 5 per call.
    * Streams send ``words_per_chunk`` words per event (function calls: one event holding all of them); every event
      carries ``usageMetadata`` with the running totals, the last one ``finishReason``. ``chunk_delay_s`` sleeps
      before each event (a whole answer as long as its stream would in total); with 0 a stream is written in one go.
    * ``modelVersion`` is the model named in the path; ``responseId`` a fresh id per answer.
    """

    accepts_empty_body = True
    id_random_bytes = 4
    id_digits = 12

    def __init__(self, *, api_key: str | None = None, words_per_chunk: int = 2, chunk_delay_s: float = 0.0,
                 host: str = "127.0.0.1", port: int = 0, record_requests: bool = True) -> None:
        if words_per_chunk < 1:
            raise ValueError("words_per_chunk must be at least 1")
        self.words_per_chunk = words_per_chunk
        self._calls: list[dict[str, Any]] | None = None
        self._stream_breaks: deque[tuple[int, int, str]] = deque()
        super().__init__(api_key=api_key, chunk_delay_s=chunk_delay_s, host=host, port=port,
                         record_requests=record_requests)

    # -- configuration --------------------------------------------------------------------------------------

    def fail_next(self, status: int, *, times: int = 1, message: str = "fake failure",
                  retry_after: float | None = None) -> None:
        """Make the next ``times`` generate/stream/embed calls answer ``status`` with Gemini's error body.

        The body's ``status`` is the google.rpc code name (429 ``RESOURCE_EXHAUSTED``, 500 ``INTERNAL``, 503
        ``UNAVAILABLE``, 400 ``INVALID_ARGUMENT``, ...). ``retry_after`` adds a ``RetryInfo`` detail with that
        ``retryDelay`` (as Gemini's 429s carry). Streams fail before any event. Taken after the key check.
        """
        self.queue_failures(status, times, message, retry_after)

    def break_next_stream(self, *, after_events: int = 1, status: int = 503,
                          message: str = "The model is overloaded. Please try again later.") -> None:
        """Make the next stream send ``after_events`` events, then ``data: {"error": ...}`` and end."""
        self._stream_breaks.append((after_events, status, message))

    def set_function_calls(self, calls: list[dict[str, Any]] | None, *, times: int | None = None) -> None:
        """Answer every call with these function calls (``{"name", "args"}`` each, ``args`` an object; an optional
        ``"thoughtSignature"`` is put on the part); None goes back to text. With ``times``, only the next ``times``
        answers use them, then the fake answers with text again."""
        if calls is None:
            self._calls = None
            self._calls_for(None)
            return
        self._calls_for(times)
        for i, call in enumerate(calls):
            call_name(call, i, "function call")
            if not isinstance(call.get("args", {}), dict):
                raise ValueError(f"function call {i}: args must be an object")
        self._calls = [dict(call) for call in calls]

    # -- the prologue's answers -----------------------------------------------------------------------------

    def _presented_key(self, request: web.Request) -> str | None:
        return request.headers.get("x-goog-api-key") or request.query.get("key")

    def _refuse_key(self, key: str | None) -> web.Response:
        if key is None:
            return _error(403, _MISSING_KEY_MESSAGE)
        return _error(400, _BAD_KEY_MESSAGE, [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
             "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}])

    def _failure_response(self, status: int, message: str, retry_after: float | None) -> web.Response:
        details = None
        if retry_after is not None:
            details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}]
        return _error(status, message, details)

    def _invalid_json(self) -> web.Response:
        return _bad_request("Invalid JSON payload received. Unexpected token.")

    def _not_found(self, request: web.Request) -> web.Response:
        return _error(404, f"Not found: {request.method} {request.path}")

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        await self._receive(request, parse=True)
        return self._not_found(request)

    # -- endpoints -------------------------------------------------------------------------------------------

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{_MODEL}:generateContent", self._endpoint(functools.partial(self._generate, stream=False))),
            web.post(f"{_MODEL}:streamGenerateContent", self._endpoint(functools.partial(self._generate, stream=True))),
            web.post(f"{_MODEL}:batchEmbedContents", self._endpoint(self._embed)),
            web.post(f"{_MODEL}:countTokens", self._endpoint(self._count)),
            web.route("*", "/v1beta/models/{target}", self._unsupported),
        ]

    async def _unsupported(self, request: web.Request) -> web.StreamResponse:
        """Another method, or another HTTP method than POST, on a model: recorded, then 404."""
        model, _, method = request.match_info["target"].partition(":")
        await self._receive(request, parse=True)
        return _error(404, f"models/{model} is not found for API version v1beta, or is not supported"
                           f" for {method or 'this method'}.")

    def _answer_events(self, body: dict[str, Any]) -> tuple[list[list[dict[str, Any]]], str, int]:
        """(parts of each stream event, finish reason, candidates tokens)"""
        if self._calls is not None:
            parts = []
            calls = self._calls
            if self._spend_calls():
                self._calls = None
            for call in calls:
                part: dict[str, Any] = {"functionCall": {"name": call["name"], "args": call.get("args", {})}}
                if call.get("thoughtSignature"):
                    part["thoughtSignature"] = call["thoughtSignature"]
                parts.append(part)
            return [parts], "STOP", 5 * len(parts)
        config = body.get("generationConfig") or {}
        text = self._answer if self._answer is not None else gemini_answer_for(body["contents"])
        limit = config.get("maxOutputTokens")
        cut = cut_answer(text, stops=config.get("stopSequences") or [], limit=limit if isinstance(limit, int) else None)
        step = self.words_per_chunk
        words = cut.pieces
        events = [[{"text": "".join(words[i:i + step])}] for i in range(0, len(words), step)] or [[{"text": ""}]]
        return events, "MAX_TOKENS" if cut.capped else "STOP", cut.words

    async def _generate(self, request: web.Request, body: Any, *, stream: bool) -> web.StreamResponse:
        problem = _check_request(body)
        if problem is not None:
            return problem
        model = request.match_info["model"]
        events, finish, tokens = self._answer_events(body)
        prompt = gemini_prompt_tokens_for(body["contents"], body.get("systemInstruction"))
        response_id = self._next_id()

        def response(parts: list[dict[str, Any]], last: bool, sent: int) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
            if last:
                candidate["finishReason"] = finish
            candidate["index"] = 0
            return {"candidates": [candidate], "usageMetadata": _usage(prompt, sent if sent or last else None),
                    "modelVersion": model, "responseId": response_id}

        if not stream:
            await self._pace(len(events))
            whole = [part for parts in events for part in parts]
            if all("text" in p for p in whole):
                whole = [{"text": "".join(p["text"] for p in whole)}]
            return json_response(response(whole, True, tokens))

        chunks: list[dict[str, Any]] = []
        sent = 0
        for i, parts in enumerate(events):
            sent += sum(count_words(split_words(p.get("text", ""))) for p in parts)
            last = i == len(events) - 1
            chunks.append(response(parts, last, tokens if last else sent))
        broken = self._stream_breaks.popleft() if self._stream_breaks else None
        if broken is not None:
            after, status, message = broken
            chunks = [*chunks[:after], error_body(status, message)]
        if request.query.get("alt") != "sse":  # Gemini's JSON-array form
            return json_response(chunks)
        return await send_events(request, [sse(orjson.dumps(c), crlf=True) for c in chunks],
                                 delay=self.chunk_delay_s, content_type="text/event-stream")

    async def _count(self, request: web.Request, body: Any) -> web.StreamResponse:
        """``countTokens``: the prompt tokens :func:`gemini_prompt_tokens_for` predicts."""
        model = request.match_info["model"]
        inner = body.get("generateContentRequest") if isinstance(body, dict) else None
        if isinstance(inner, dict):
            if inner.get("model") != f"models/{model}":
                return _bad_request("* CountTokensRequest.generate_content_request.model: the model must match the"
                                    " request's model")
            problem = _check_request({k: v for k, v in inner.items() if k != "model"})
            request_body = inner
        else:
            problem = _check_request(body)
            request_body = body
        if problem is not None:
            return problem
        tokens = gemini_prompt_tokens_for(request_body["contents"], request_body.get("systemInstruction"))
        return json_response({"totalTokens": tokens, "promptTokensDetails": [{"modality": "TEXT",
                                                                              "tokenCount": tokens}]})

    async def _embed(self, request: web.Request, body: Any) -> web.StreamResponse:
        model = request.match_info["model"]
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return _bad_request("* BatchEmbedContentsRequest.requests: requests is not specified")
        embeddings = []
        for i, item in enumerate(requests):
            if not isinstance(item, dict):
                return _bad_request(f"Invalid value at 'requests[{i}]': expected an object")
            if item.get("model") != f"models/{model}":
                return _bad_request(f"* BatchEmbedContentsRequest.requests[{i}].model: Model names should match"
                                    " the batch request's model.")
            text = _content_text(item.get("content"))
            if not text:
                return _bad_request(f"* BatchEmbedContentsRequest.requests[{i}].content: contents must not be"
                                    " empty")
            dimensions = item.get("outputDimensionality") or _DEFAULT_EMBEDDING_DIMENSIONS
            embeddings.append({"values": embedding(text, int(dimensions), draw=blake2b_bytes)})
        return json_response({"embeddings": embeddings})


def make_fake_gemini_app(state: FakeGemini) -> web.Application:
    """The fake's aiohttp application, serving ``/v1beta/models/{model}:{method}`` from ``state``."""
    return state.make_app()
