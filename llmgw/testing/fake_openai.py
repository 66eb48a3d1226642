"""A fake OpenAI upstream: a real aiohttp server speaking OpenAI's wire format.

:class:`FakeOpenAI` is a real aiohttp server on 127.0.0.1 that speaks OpenAI's wire format closely enough for
the official ``openai`` SDK (and the gateway's provider code) to talk to it unchanged:

* ``POST /v1/chat/completions`` -- whole (``chat.completion``) or streamed (``chat.completion.chunk`` SSE
  events ending in ``data: [DONE]``), honouring ``max_tokens``/``max_completion_tokens``, ``stop`` and
  ``stream_options.include_usage``; text answers or tool calls.
* ``POST /v1/embeddings`` -- deterministic unit vectors, ``float`` or ``base64`` encoded.
* ``POST /v1/responses`` and ``/v1/responses/input_tokens`` -- the Responses API (:mod:`.fake_openai_responses`).
* ``GET /v1/models`` and ``GET /v1/models/{id}``.
* Every error in OpenAI's body: ``{"error": {"message", "type", "param", "code"}}``.

The answers are deterministic, so tests can predict them with :func:`answer_for` and
:func:`prompt_tokens_for`.

Run it as a process (for benchmarks)::

    python -m llmgw.testing --port 8001

The shapes it reproduces field for field are recorded in :mod:`llmgw.testing.samples` (re-exported here).
"""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

import orjson
from aiohttp import web

from .answers import cut_answer, embedding, json_fragments, text_tokens
from .fake_openai_responses import ResponsesFake
from .openai_answers import (
    DEFAULT_EMBEDDING_DIMENSIONS,
    DEFAULT_MODELS,
    ERROR_KINDS,
    SSE_DONE,
    SYSTEM_FINGERPRINT,
    answer_for,
    error_response,
    int_param,
    model_object,
    prompt_tokens_for,
    redact_key,
    stream_chunks,
    tool_call_deltas,
    usage_object,
)
from .samples import (
    CHAT_COMPLETION_CHUNK_SAMPLE,
    CHAT_COMPLETION_SAMPLE,
    EMBEDDINGS_SAMPLE,
    ERROR_SAMPLE,
    MODELS_SAMPLE,
    USAGE_CHUNK_SAMPLE,
)
from .server import FakeServer, call_name, run_cli
from .wire import bearer_token, by_status, json_response, send_events

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
# The fake
# ----------------------------------------------------------------------------------------------------------


class FakeOpenAI(ResponsesFake, FakeServer):
    """A fake OpenAI upstream served by aiohttp on a free port of 127.0.0.1.

    Use it as an async context manager::

        async with FakeOpenAI(api_key="sk-test") as up:
            client = AsyncOpenAI(base_url=up.base_url, api_key="sk-test")  # up.base_url: http://127.0.0.1:PORT/v1

    Contracts (besides :class:`~.server.FakeServer`'s: ``requests``, ``record_requests``, ``set_answer``):

    * ``api_key``: when set, every request whose ``Authorization`` header is not ``Bearer <api_key>`` gets 401
      with OpenAI's error body (``code`` ``"invalid_api_key"``); when None, any or no key is accepted.
    * ``model_prefix``: prepended to the request's ``model`` in responses and to the ids GET /v1/models
      lists; with the default ``""`` the response's ``model`` echoes the request's.
    * ``chunk_delay_s``: a stream sleeps this long before each chunk (content, finish and usage chunks); a
      whole answer sleeps as long as its stream would in total. With 0 a stream is written in one go.
      May be changed between requests.
    * The answer text is :func:`answer_for` of the messages unless :meth:`set_answer` fixed one;
      :meth:`set_tool_calls` makes every answer tool calls instead. Both stay in force until reset with None.
    * ``usage``: ``prompt_tokens`` is :func:`prompt_tokens_for` of the messages; ``completion_tokens`` is the
      number of words of the answer sent (after ``stop`` and ``max_tokens``), or for tool calls the number of
      argument fragments plus one per call.
    * Chat and embeddings answers carry an ``x-request-id`` header.
    """

    url_suffix = "/v1"

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
        self.model_prefix = model_prefix
        self._tool_calls: list[dict[str, str]] | None = None
        super().__init__(api_key=api_key, chunk_delay_s=chunk_delay_s, host=host, port=port,
                         record_requests=record_requests)

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

    def set_tool_calls(self, calls: list[dict[str, Any]] | None, *, times: int | None = None) -> None:
        """Answer every chat call with these tool calls (finish ``"tool_calls"``); None goes back to text. With
        ``times``, only the next ``times`` answers use them, then the fake answers with text again.

        Each call is ``{"name": str, "arguments": str}`` (``arguments`` a JSON string; a dict is serialised),
        with an optional ``"id"`` (default ``call_...``). Streamed as OpenAI does: per call a first delta with
        ``index``, ``id``, ``type`` and ``function.name`` with empty ``arguments``, then argument fragments.
        """
        if calls is None:
            self._tool_calls = None
            self._calls_for(None)
            return
        self._calls_for(times)
        normalised = []
        for i, call in enumerate(calls):
            name = call_name(call, i, "tool call")
            arguments = call.get("arguments", "{}")
            if not isinstance(arguments, str):
                arguments = orjson.dumps(arguments).decode()
            normalised.append({"id": str(call.get("id") or ""), "name": name, "arguments": arguments})
        self._tool_calls = normalised

    # -- the prologue's answers -----------------------------------------------------------------------------

    def _presented_key(self, request: web.Request) -> str | None:
        return bearer_token(request)

    def _refuse_key(self, key: str | None) -> web.Response:
        if key is None:
            return error_response(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        return error_response(
            401,
            f"Incorrect API key provided: {redact_key(key)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )

    def _failure_response(self, status: int, message: str, retry_after: float | None) -> web.Response:
        type_, code = by_status(
            ERROR_KINDS, status, client_error=("invalid_request_error", None), server_error=("server_error", None)
        )
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        return error_response(status, message, type_, code=code, headers=headers)

    def _invalid_json(self) -> web.Response:
        return error_response(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
            "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent "
            "was not valid JSON.)",
        )

    def _check_body(self, body: Any) -> web.Response | None:
        if not isinstance(body, dict):
            return error_response(400, "The request body must be a JSON object.")
        if not isinstance(body.get("model"), str) or not body["model"]:
            return error_response(400, "you must provide a model parameter")
        return None

    def _not_found(self, request: web.Request) -> web.Response:
        return error_response(404, f"Invalid URL ({request.method} {request.path})")

    # -- endpoints -------------------------------------------------------------------------------------------

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/chat/completions", self._endpoint(self._chat_completions)),
            web.post("/v1/embeddings", self._endpoint(self._embeddings)),
            *self._responses_routes(),
            web.get("/v1/models", self._endpoint(self._list_models, parse=False)),
            web.get("/v1/models/{model:.+}", self._endpoint(self._retrieve_model, parse=False)),
        ]

    def _request_id(self) -> dict[str, str]:
        return {"x-request-id": f"req_{self._next_id()}"}

    async def _chat_completions(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return error_response(400, "Invalid 'messages': expected an array of objects.", param="messages")
        if not messages:
            return error_response(
                400,
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty "
                "array instead.",
                param="messages",
                code="empty_array",
            )
        stream = body.get("stream") is True
        stream_options = body.get("stream_options")
        if stream_options is not None and not stream:
            return error_response(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        limit: int | None = None
        for name in ("max_tokens", "max_completion_tokens"):
            value = int_param(body, name)
            if isinstance(value, web.Response):
                return value
            if value is not None:
                limit = value  # max_completion_tokens wins when both are given
        stop = body.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        stops = [s for s in stop if isinstance(s, str) and s] if isinstance(stop, list) else []

        model = self.model_prefix + body["model"]
        prompt_tokens = prompt_tokens_for(messages)
        completion_id = f"chatcmpl-{self._next_id()}"
        created = int(time.time())
        include_usage = stream and isinstance(stream_options, dict) and stream_options.get("include_usage") is True

        message: dict[str, Any]
        if self._tool_calls is not None:
            calls = [
                {**call, "id": call["id"] or f"call_{self._next_id()}{i}"} for i, call in enumerate(self._tool_calls)
            ]
            if self._spend_calls():
                self._tool_calls = None
            fragments = [json_fragments(call["arguments"]) for call in calls]
            completion_tokens = sum(len(f) + 1 for f in fragments)
            deltas = list(tool_call_deltas(calls, fragments))
            finish_reason = "tool_calls"
            tool_calls = [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in calls
            ]
            message = {"role": "assistant", "content": None, "tool_calls": tool_calls, "refusal": None,
                       "annotations": []}
        else:
            text = self._answer if self._answer is not None else answer_for(messages)
            cut = cut_answer(text, stops=stops, limit=limit)
            finish_reason = "length" if cut.capped else "stop"
            completion_tokens = cut.words
            deltas = [{"role": "assistant", "content": "", "refusal": None}, *({"content": p} for p in cut.pieces)]
            message = {"role": "assistant", "content": "".join(cut.pieces), "refusal": None, "annotations": []}

        usage = usage_object(prompt_tokens, completion_tokens)
        self._chat_usage_details(usage)
        if stream:
            events = stream_chunks(completion_id, created, model, deltas, finish_reason,
                                   usage if include_usage else None)
            return await send_events(
                request, events, delay=self.chunk_delay_s, done=SSE_DONE, headers=self._request_id()
            )
        await self._pace(len(deltas) + 1)  # as long as the stream's chunks, the finish chunk included
        payload = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        return json_response(payload, headers=self._request_id())

    async def _embeddings(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
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
            return error_response(
                400, "'input' must be a string, an array of strings, or an array of token arrays.", param="input"
            )
        dimensions = int_param(body, "dimensions")
        if isinstance(dimensions, web.Response):
            return dimensions
        dimensions = dimensions or DEFAULT_EMBEDDING_DIMENSIONS
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            return error_response(400, "Invalid 'encoding_format': expected 'float' or 'base64'.",
                                  param="encoding_format")
        data = []
        for index, text in enumerate(texts):
            vector: Any = embedding(text, dimensions)
            if encoding == "base64":
                vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(map(text_tokens, texts))
        payload = {
            "object": "list",
            "data": data,
            "model": self.model_prefix + body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return json_response(payload, headers=self._request_id())

    async def _list_models(self, request: web.Request, body: None) -> web.StreamResponse:
        models = [model_object(self.model_prefix + m) for m in DEFAULT_MODELS]
        return json_response({"object": "list", "data": models})

    async def _retrieve_model(self, request: web.Request, body: None) -> web.StreamResponse:
        return json_response(model_object(request.match_info["model"]))


def make_fake_openai_app(state: FakeOpenAI) -> web.Application:
    """The fake's aiohttp application, serving ``/v1/...`` from ``state`` (its answers, failures, records).

    :class:`FakeOpenAI` serves it itself; tests can also mount it with ``aiohttp_client``.
    """
    return state.make_app()


# ----------------------------------------------------------------------------------------------------------
# CLI: python -m llmgw.testing --port N
# ----------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Serve :class:`FakeOpenAI` until SIGINT/SIGTERM: ``python -m llmgw.testing --port N`` (see :func:`run_cli`)."""
    run_cli(FakeOpenAI, "OpenAI", "python -m llmgw.testing", argv)


if __name__ == "__main__":
    main()
