"""A fake Anthropic upstream: a real aiohttp server speaking Anthropic's Messages API wire format.

:class:`FakeAnthropic` is a real aiohttp server on 127.0.0.1 that speaks Anthropic's wire format closely enough
for the official ``anthropic`` SDK (and the gateway's provider code) to talk to it unchanged:

* ``POST /v1/messages`` -- a whole ``message`` object or a stream of named SSE events (``message_start``,
  ``ping``, ``content_block_start`` / ``content_block_delta`` / ``content_block_stop`` per block,
  ``message_delta``, ``message_stop``), honouring ``max_tokens``, ``stop_sequences``, ``system`` and
  ``thinking``; text answers, ``thinking`` blocks and ``tool_use`` blocks. ``messages`` may hold ``system``-role
  messages at any position (as the Messages API accepts them); the first other message must be a ``user`` one.
* ``POST /v1/messages/count_tokens`` -- ``{"input_tokens": N}``.
* ``GET /v1/models`` (paginated with ``limit``/``after_id``/``before_id``) and ``GET /v1/models/{id}``.
* Every error in Anthropic's body, ``{"type": "error", "error": {"type", "message"}, "request_id"}``, and in a
  stream as an ``event: error``; every response carries a ``request-id`` header.

The answers are deterministic, so tests can predict them with :func:`anthropic_answer_for` and
:func:`anthropic_input_tokens_for`.

Run it as a process (for benchmarks)::

    python -m llmgw.testing.fake_anthropic --port 8002

The shapes it reproduces field for field are recorded in :mod:`llmgw.testing.samples` (re-exported here).
"""

from __future__ import annotations

from collections import deque
from types import MappingProxyType
from typing import Any, Final

import orjson
from aiohttp import web

from .answers import (
    count_words,
    cut_answer,
    json_fragments,
    split_words,
)
from .anthropic_answers import (
    DEFAULT_MODELS,
    Answer,
    Block,
    anthropic_answer_for,
    anthropic_input_tokens_for,
    event_bytes,
    model_object,
    signature_for,
    stream_events,
    text_block,
    thinking_for,
    validate_request,
)
from .samples import (
    ANTHROPIC_COUNT_TOKENS_SAMPLE,
    ANTHROPIC_ERROR_SAMPLE,
    ANTHROPIC_MESSAGE_SAMPLE,
    ANTHROPIC_MODELS_SAMPLE,
    ANTHROPIC_STREAM_ERROR_SAMPLE,
    ANTHROPIC_STREAM_SAMPLE,
)
from .server import FakeServer, call_name, run_cli
from .wire import bearer_token, by_status, json_response, send_events

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



class FakeAnthropic(FakeServer):
    """A fake Anthropic upstream served by aiohttp on a free port of 127.0.0.1.

    Use it as an async context manager::

        async with FakeAnthropic(api_key="sk-ant-test") as up:
            client = AsyncAnthropic(base_url=up.base_url, api_key="sk-ant-test")  # http://127.0.0.1:PORT

    Contracts (besides :class:`~.server.FakeServer`'s: ``requests``, ``record_requests``, ``set_answer``):

    * ``base_url`` is the API root, ``http://HOST:PORT`` (no ``/v1``: Anthropic's SDKs append ``/v1/...``).
    * ``api_key``: when set, a request must carry ``x-api-key: <api_key>`` or ``Authorization: Bearer <api_key>``
      or it gets 401 ``authentication_error`` (the key is never echoed); when None, any or no key is accepted.
    * Every ``/v1`` request must carry an ``anthropic-version`` header, else 400 ``invalid_request_error``
      (checked after the key). A body over 32 MiB gets 413 ``request_too_large`` (before the key).
    * ``chunk_delay_s``: a stream sleeps this long before each event; a whole answer sleeps as long as its
      stream would in total. With 0 a stream is written in one go. May be changed between requests.
    * The answer is a text block with :func:`anthropic_answer_for` of the messages unless :meth:`set_answer`
      fixed the text; :meth:`set_tool_uses` makes every answer tool_use blocks instead (after a text block with
      the fixed text, when one is set). Both stay in force until reset with None. A request with ``thinking``
      of type ``enabled`` or ``adaptive`` gets a ``thinking`` block (with a signature) before the other blocks.
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
    * Every response carries a ``request-id`` header; errors repeat it in the body's ``request_id``.
    """

    max_request_bytes = 32 * 1024 * 1024  # the Messages API's documented request size limit
    id_prefix = "01"  # ids are 24 characters, like the part after msg_/toolu_/req_ in Anthropic's
    id_digits = 12

    def __init__(
        self,
        *,
        api_key: str | None = None,
        chunk_delay_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        record_requests: bool = True,
    ) -> None:
        self._tool_uses: list[dict[str, Any]] | None = None
        self._cache_read = 0
        self._cache_write = 0
        self._stream_failures: deque[tuple[str, str, int]] = deque()
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

    def set_tool_uses(self, uses: list[dict[str, Any]] | None, *, times: int | None = None) -> None:
        """Answer every messages call with one ``tool_use`` block per use (``stop_reason`` ``"tool_use"``); None
        goes back to text. With ``times``, only the next ``times`` answers use them, then the fake answers with text
        again (an agent's round trip: a tool call first, then text once the tool result comes back).

        Each use is ``{"name": str, "input": dict}`` (``input`` defaults to ``{}``) with an optional ``"id"``
        (default ``toolu_...``, generated per response). Streamed as Anthropic does: ``content_block_start`` with
        ``"input": {}``, an ``input_json_delta`` with an empty ``partial_json``, then the compact JSON of the
        input in several ``partial_json`` fragments, then ``content_block_stop``. A non-empty fixed text
        (:meth:`set_answer`) is sent as a text block before the tool_use blocks, as Claude often does.
        ``stop_sequences`` and ``max_tokens`` do not apply to tool uses or that text.
        """
        if uses is None:
            self._tool_uses = None
            self._calls_for(None)
            return
        self._calls_for(times)
        normalised = []
        for i, use in enumerate(uses):
            name = call_name(use, i, "tool use")
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

    # -- responses ---------------------------------------------------------------------------------------------

    def _request_id(self) -> str:
        return f"req_{self._next_id()}"

    def _error(self, status: int, message: str, *, retry_after: float | None = None) -> web.Response:
        """Anthropic's error body for ``status`` (the status's error type), with ``request-id``."""
        type_ = by_status(_ERROR_TYPES, status, client_error="invalid_request_error", server_error="api_error")
        request_id = self._request_id()
        headers = {"request-id": request_id}
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        body = {"type": "error", "error": {"type": type_, "message": message}, "request_id": request_id}
        return json_response(body, status=status, headers=headers)

    def _json(self, payload: Any) -> web.Response:
        return json_response(payload, headers={"request-id": self._request_id()})

    def _usage(self, input_tokens: int, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": self._cache_write,
            "cache_read_input_tokens": self._cache_read,
            "cache_creation": {"ephemeral_5m_input_tokens": self._cache_write, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    # -- the prologue's answers ---------------------------------------------------------------------------------

    def _presented_key(self, request: web.Request) -> str | None:
        key = request.headers.get("x-api-key")
        return key if key is not None else bearer_token(request)

    def _refuse_key(self, key: str | None) -> web.Response:
        return self._error(401, "x-api-key header is required" if key is None else "invalid x-api-key")

    def _check_headers(self, request: web.Request) -> web.Response | None:
        if not request.headers.get("anthropic-version"):
            return self._error(400, "anthropic-version: header is required")
        return None

    def _failure_response(self, status: int, message: str, retry_after: float | None) -> web.Response:
        return self._error(status, message, retry_after=retry_after)

    def _invalid_json(self) -> web.Response:
        return self._error(400, "There was an issue with the format of your request: invalid JSON")

    def _too_large(self) -> web.Response | None:
        return self._error(413, "Request exceeds the maximum allowed number of bytes.")

    def _not_found(self, request: web.Request) -> web.Response:
        return self._error(404, "Not Found")

    # -- endpoints -------------------------------------------------------------------------------------------

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/messages", self._endpoint(self._create_message)),
            web.post("/v1/messages/count_tokens", self._endpoint(self._count_tokens)),
            web.get("/v1/models", self._endpoint(self._list_models, parse=False)),
            web.get("/v1/models/{model:.+}", self._endpoint(self._retrieve_model, parse=False)),
        ]

    def _compose(self, body: dict[str, Any]) -> Answer:
        """The answer to a (valid) messages body under the fake's current settings."""
        messages = body["messages"]
        budget: int = body["max_tokens"]
        blocks: list[Block] = []
        output_tokens = 0

        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
            cut = cut_answer(thinking_for(messages), limit=budget)
            text = "".join(cut.pieces)
            signature = signature_for(text)
            deltas: list[dict[str, Any]] = [{"type": "thinking_delta", "thinking": p} for p in cut.pieces]
            deltas.append({"type": "signature_delta", "signature": signature})
            blocks.append(
                Block(
                    {"type": "thinking", "thinking": "", "signature": ""},
                    deltas,
                    {"type": "thinking", "thinking": text, "signature": signature},
                )
            )
            output_tokens += cut.words
            budget -= cut.words
            if cut.capped:
                return Answer(blocks, "max_tokens", None, output_tokens)

        if self._tool_uses is not None:
            uses = self._tool_uses
            if self._spend_calls():
                self._tool_uses = None
            if self._answer:
                pieces = split_words(self._answer)
                blocks.append(text_block(pieces))
                output_tokens += count_words(pieces)
            for use in uses:
                use_id = use["id"] or f"toolu_{self._next_id()}"
                fragments = json_fragments(orjson.dumps(use["input"]).decode())
                blocks.append(
                    Block(
                        {"type": "tool_use", "id": use_id, "name": use["name"], "input": {}},
                        [{"type": "input_json_delta", "partial_json": f} for f in ["", *fragments]],
                        {"type": "tool_use", "id": use_id, "name": use["name"], "input": use["input"]},
                    )
                )
                output_tokens += len(fragments)
            return Answer(blocks, "tool_use", None, output_tokens)

        text = self._answer if self._answer is not None else anthropic_answer_for(messages, body.get("system"))
        cut = cut_answer(text, stops=body.get("stop_sequences") or [], limit=budget, first_completed=True)
        stop_reason = "max_tokens" if cut.capped else "end_turn" if cut.stop is None else "stop_sequence"
        if cut.pieces:
            blocks.append(text_block(cut.pieces))
        return Answer(blocks, stop_reason, cut.stop, output_tokens + cut.words)

    async def _create_message(self, request: web.Request, body: Any) -> web.StreamResponse:
        problem = validate_request(body, generation=True)
        if problem is not None:
            return self._error(400, problem)
        answer = self._compose(body)
        input_tokens = anthropic_input_tokens_for(body)
        usage = self._usage(input_tokens, answer.output_tokens)
        head = {"id": f"msg_{self._next_id()}", "type": "message", "role": "assistant", "model": body["model"]}
        if body.get("stream") is True:
            # message_start: empty content, no stop reason yet, a placeholder output count (as the API sends).
            start = {**head, "content": [], "stop_reason": None, "stop_sequence": None,
                     "usage": self._usage(input_tokens, 1)}
            events = stream_events(start, answer, usage)
            failure = self._stream_failures.popleft() if self._stream_failures else None
            if failure is not None:  # the first events, then the error, and the connection closes
                error_type, message, after = failure
                events = events[: min(after, len(events) - 1)]
                events.append(event_bytes("error", {"type": "error",
                                                    "error": {"type": error_type, "message": message}}))
            return await send_events(request, events, delay=self.chunk_delay_s,
                                     headers={"request-id": self._request_id()}, close=failure is not None)
        await self._pace(4 + sum(len(b.deltas) + 2 for b in answer.blocks))  # the stream's events
        payload = {
            **head,
            "content": [b.final for b in answer.blocks],
            "stop_reason": answer.stop_reason,
            "stop_sequence": answer.stop_sequence,
            "usage": usage,
        }
        return self._json(payload)

    async def _count_tokens(self, request: web.Request, body: Any) -> web.StreamResponse:
        problem = validate_request(body, generation=False)
        if problem is not None:
            return self._error(400, problem)
        return self._json({"input_tokens": anthropic_input_tokens_for(body)})

    async def _list_models(self, request: web.Request, body: None) -> web.StreamResponse:
        ids = [m[0] for m in DEFAULT_MODELS]
        raw_limit = request.query.get("limit", "20")
        try:
            limit = int(raw_limit)
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            return self._error(400, "limit: Input should be an integer between 1 and 1000")
        after_id, before_id = request.query.get("after_id"), request.query.get("before_id")
        for cursor in (after_id, before_id):
            if cursor is not None and cursor not in ids:
                return self._error(400, f"Invalid cursor: {cursor}")
        if before_id is not None:
            end = ids.index(before_id)
            page = ids[max(end - limit, 0) : end]
            has_more = end - limit > 0
        else:
            begin = ids.index(after_id) + 1 if after_id is not None else 0
            page = ids[begin : begin + limit]
            has_more = begin + limit < len(ids)
        payload = {
            "data": [model_object(m) for m in page],
            "has_more": has_more,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        }
        return self._json(payload)

    async def _retrieve_model(self, request: web.Request, body: None) -> web.StreamResponse:
        return self._json(model_object(request.match_info["model"]))


def make_fake_anthropic_app(state: FakeAnthropic) -> web.Application:
    """The fake's aiohttp application, serving ``/v1/...`` from ``state`` (its answers, failures, records).

    :class:`FakeAnthropic` serves it itself; tests can also mount it with ``aiohttp_client``.
    """
    return state.make_app()


# ----------------------------------------------------------------------------------------------------------
# CLI: python -m llmgw.testing.fake_anthropic --port N
# ----------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Serve :class:`FakeAnthropic` until SIGINT/SIGTERM: ``python -m llmgw.testing.fake_anthropic --port N``."""
    run_cli(FakeAnthropic, "Anthropic", "python -m llmgw.testing.fake_anthropic", argv)


if __name__ == "__main__":
    main()
