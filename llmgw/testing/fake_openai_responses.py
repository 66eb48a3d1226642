"""The OpenAI Responses API of the fake OpenAI upstream (:class:`~.fake_openai.FakeOpenAI` mixes this in).

* ``POST /v1/responses`` -- a whole ``response`` object, or (``stream: true``) its typed SSE events
  (``event: <type>`` lines, ``sequence_number`` s from 0): ``response.created``, ``response.in_progress``, per output
  item ``response.output_item.added`` … ``response.output_item.done`` (a ``reasoning`` item when reasoning tokens
  are set, a ``message`` with ``response.content_part.added``, ``response.output_text.delta`` per word,
  ``response.output_text.done``, ``response.content_part.done``; or ``function_call`` items with
  ``response.function_call_arguments.delta`` fragments and ``.done``), then ``response.completed`` -- or
  ``response.incomplete`` when ``max_output_tokens`` cut the text.
* ``POST /v1/responses/input_tokens`` -- ``{"object": "response.input_tokens", "input_tokens": N}``.

The answer is :func:`responses_answer_for` of the request (``"Echo: "`` and the last user message's text) unless
the fake's fixed answer or tool calls say otherwise (the same settings as chat completions); ``max_output_tokens``
(at least 16, as the API requires) caps the words. Usage: ``input_tokens`` is :func:`responses_input_tokens_for`,
with :meth:`ResponsesFake.set_usage`'s cached tokens among them; ``output_tokens`` the words sent (or the argument
fragments plus one per call) plus the reasoning tokens. Errors are OpenAI's body; a queued failure
(``fail_next``) answers before any event; :meth:`ResponsesFake.fail_mid_stream` breaks a stream after some events.
Unknown item types, roles and fields are accepted (the fake answers from the user messages it finds).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import orjson
from aiohttp import web

from .answers import content_text, cut_answer, json_fragments, last_user_text, message_tokens
from .wire import json_response, send_events, sse

MIN_OUTPUT_TOKENS = 16


def _item_text(item: dict[str, Any]) -> str:
    """The text of a message item: a string content, or its text parts (``input_text``/``output_text``) joined."""
    content = item.get("content")
    if isinstance(content, list):
        return " ".join(p["text"] for p in content
                        if isinstance(p, dict) and p.get("type") in ("input_text", "output_text", "text")
                        and isinstance(p.get("text"), str))
    return content_text(content)


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    source = body.get("input")
    if isinstance(source, str):
        return [{"role": "user", "content": source}]
    return [item for item in source or [] if isinstance(item, dict) and "role" in item]


def responses_answer_for(body: dict[str, Any]) -> str:
    """The fake's default answer: ``"Echo: "`` plus the text of the last user message of ``input`` (the string
    itself when ``input`` is one)."""
    return f"Echo: {last_user_text(_messages(body), _item_text)}"


def responses_input_tokens_for(body: dict[str, Any]) -> int:
    """The fake's ``input_tokens``: ``ceil(len(text) / 4) + 3`` for ``instructions`` and for each message item and
    each ``function_call_output`` of ``input``."""
    texts = [body["instructions"]] if isinstance(body.get("instructions"), str) else []
    source = body.get("input")
    if isinstance(source, str):
        texts.append(source)
    for item in source if isinstance(source, list) else []:
        if isinstance(item, dict) and "role" in item:
            texts.append(_item_text(item))
        elif isinstance(item, dict) and item.get("type") == "function_call_output":
            output = item.get("output")
            texts.append(output if isinstance(output, str) else orjson.dumps(output).decode())
    return message_tokens(texts)


def _error(status: int, message: str, *, param: str | None = None, code: str | None = None) -> web.Response:
    return json_response({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                    "code": code}}, status=status)


def _check(body: dict[str, Any]) -> web.Response | None:
    """The 400 the API answers a request it cannot read with, or None."""
    source = body.get("input")
    if source is None and not any(body.get(k) for k in ("previous_response_id", "conversation", "prompt")):
        return _error(400, "Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    if source is not None and not isinstance(source, str | list):
        return _error(400, "Invalid type for 'input': expected one of a string or array of input items.",
                      param="input", code="invalid_type")
    for i, item in enumerate(source if isinstance(source, list) else []):
        if not isinstance(item, dict):
            return _error(400, f"Invalid type for 'input[{i}]': expected an object.", param=f"input[{i}]",
                          code="invalid_type")
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
        return _error(400, "Invalid type for 'max_output_tokens': expected an integer.", param="max_output_tokens",
                      code="invalid_type")
    if isinstance(limit, int) and limit < MIN_OUTPUT_TOKENS:
        return _error(400, "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
                      f"{MIN_OUTPUT_TOKENS}, but got {limit} instead.", param="max_output_tokens",
                      code="integer_below_min_value")
    return None


class _Item:
    """One output item: its final form and the stream events that build it (numbered later)."""

    def __init__(self, final: dict[str, Any], events: list[dict[str, Any]]) -> None:
        self.final = final
        self.events = events


def _message_item(item_id: str, pieces: list[str], status: str) -> _Item:
    text = "".join(pieces)
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
    final = {"id": item_id, "type": "message", "status": status, "content": [part], "role": "assistant"}
    where = {"item_id": item_id, "content_index": 0}
    events = [{"type": "response.output_item.added", "item": {**final, "status": "in_progress", "content": []}},
              {"type": "response.content_part.added", **where, "part": {**part, "text": ""}},
              *({"type": "response.output_text.delta", **where, "delta": p, "logprobs": []} for p in pieces),
              {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
              {"type": "response.content_part.done", **where, "part": part},
              {"type": "response.output_item.done", "item": final}]
    return _Item(final, events)


def _call_item(item_id: str, call: dict[str, str]) -> _Item:
    final = {"id": item_id, "type": "function_call", "status": "completed", "arguments": call["arguments"],
             "call_id": call["id"], "name": call["name"]}
    events = [{"type": "response.output_item.added", "item": {**final, "status": "in_progress", "arguments": ""}},
              *({"type": "response.function_call_arguments.delta", "item_id": item_id, "delta": piece}
                for piece in json_fragments(call["arguments"])),
              {"type": "response.function_call_arguments.done", "item_id": item_id, "arguments": call["arguments"]},
              {"type": "response.output_item.done", "item": final}]
    return _Item(final, events)


def _reasoning_item(item_id: str, encrypted: bool) -> _Item:
    final = {"id": item_id, "type": "reasoning", "summary": [],
             "encrypted_content": "gAAAAB" + item_id[-12:] if encrypted else None}
    return _Item(final, [{"type": "response.output_item.added", "item": {**final, "encrypted_content": None}},
                         {"type": "response.output_item.done", "item": final}])


class ResponsesFake:
    """The Responses API endpoints and settings of the fake OpenAI upstream (a mixin of ``FakeServer``
    subclasses that have ``_tool_calls``, ``_answer`` and ``model_prefix``)."""

    _tool_calls: list[dict[str, str]] | None
    _answer: str | None
    model_prefix: str

    def __init__(self, **kwargs: Any) -> None:
        self._cached_tokens = 0
        self._reasoning_tokens = 0
        self._stream_failures: deque[tuple[int, str, str]] = deque()
        super().__init__(**kwargs)

    def set_usage(self, *, cached: int = 0, reasoning: int = 0) -> None:
        """From now on report ``cached`` input tokens as read from the prompt cache (at most the input tokens) and
        ``reasoning`` output tokens spent on reasoning (on top of the answer's; a Responses answer then starts with
        a ``reasoning`` item). Chat completions report them in ``prompt_tokens_details`` /
        ``completion_tokens_details``."""
        if cached < 0 or reasoning < 0:
            raise ValueError("token counts must not be negative")
        self._cached_tokens, self._reasoning_tokens = cached, reasoning

    def fail_mid_stream(self, *, after_events: int = 2, code: str = "server_error",
                        message: str = "The server had an error while processing your request.") -> None:
        """Make the next streamed ``/v1/responses`` call send ``after_events`` events of its stream, then an
        ``error`` event (``{"type": "error", "code", "message", "param", "sequence_number"}``), and close the
        connection: no ``response.completed``. Queued first in, first out."""
        if after_events < 0:
            raise ValueError("after_events must not be negative")
        self._stream_failures.append((after_events, code, message))

    def _chat_usage_details(self, usage: dict[str, Any]) -> None:
        """Put the :meth:`set_usage` counts into a chat completion's ``usage`` (in place)."""
        cached = min(self._cached_tokens, usage["prompt_tokens"])
        usage["prompt_tokens_details"]["cached_tokens"] = cached
        usage["completion_tokens"] += self._reasoning_tokens
        usage["total_tokens"] += self._reasoning_tokens
        usage["completion_tokens_details"]["reasoning_tokens"] = self._reasoning_tokens

    def _responses_routes(self) -> list[web.RouteDef]:
        endpoint = self._endpoint  # type: ignore[attr-defined]
        return [web.post("/v1/responses", endpoint(self._create_response)),
                web.post("/v1/responses/input_tokens", endpoint(self._input_tokens))]

    # -- the endpoints -------------------------------------------------------------------------------------------

    async def _input_tokens(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return json_response({"object": "response.input_tokens", "input_tokens": responses_input_tokens_for(body)})

    def _output(self, body: dict[str, Any]) -> tuple[list[_Item], int, bool]:
        """The output items, the output tokens and whether ``max_output_tokens`` cut the text."""
        next_id = self._next_id  # type: ignore[attr-defined]
        items: list[_Item] = []
        if self._reasoning_tokens:
            include = body.get("include") or []
            items.append(_reasoning_item(f"rs_{next_id()}", "reasoning.encrypted_content" in include))
        if self._tool_calls is not None:
            calls = [{**call, "id": call["id"] or f"call_{next_id()}{i}"} for i, call in enumerate(self._tool_calls)]
            if self._spend_calls():  # type: ignore[attr-defined]
                self._tool_calls = None
            items += [_call_item(f"fc_{next_id()}", call) for call in calls]
            tokens = sum(len(json_fragments(c["arguments"])) + 1 for c in calls)
            return items, tokens + self._reasoning_tokens, False
        text = self._answer if self._answer is not None else responses_answer_for(body)
        cut = cut_answer(text, limit=body.get("max_output_tokens"))
        items.append(_message_item(f"msg_{next_id()}", cut.pieces, "incomplete" if cut.capped else "completed"))
        return items, cut.words + self._reasoning_tokens, cut.capped

    def _response(self, body: dict[str, Any], response_id: str, status: str) -> dict[str, Any]:
        return {
            "id": response_id, "object": "response", "created_at": int(time.time()), "status": status,
            "background": False, "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": None, "model": self.model_prefix + body["model"], "output": [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": {"effort": None, "summary": None, **(body.get("reasoning") or {})},
            "safety_identifier": None, "service_tier": "default", "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0), "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [], "top_logprobs": 0,
            "top_p": body.get("top_p", 1.0), "truncation": "disabled", "usage": None, "user": None,
            "metadata": body.get("metadata") or {},
        }

    async def _create_response(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        refusal = _check(body)
        if refusal is not None:
            return refusal
        items, output_tokens, capped = self._output(body)
        input_tokens = responses_input_tokens_for(body)
        usage = {"input_tokens": input_tokens,
                 "input_tokens_details": {"cached_tokens": min(self._cached_tokens, input_tokens),
                                          "cache_write_tokens": 0},
                 "output_tokens": output_tokens,
                 "output_tokens_details": {"reasoning_tokens": self._reasoning_tokens},
                 "total_tokens": input_tokens + output_tokens}
        response_id = f"resp_{self._next_id()}"  # type: ignore[attr-defined]
        final = {**self._response(body, response_id, "incomplete" if capped else "completed"),
                 "output": [item.final for item in items], "usage": usage}
        if capped:
            final["incomplete_details"] = {"reason": "max_output_tokens"}
        headers = {"x-request-id": f"req_{self._next_id()}"}  # type: ignore[attr-defined]
        if body.get("stream") is not True:
            await self._pace(sum(len(item.events) for item in items) + 3)  # type: ignore[attr-defined]
            return json_response(final, headers=headers)
        start = self._response(body, response_id, "in_progress")
        events = [{"type": "response.created", "response": start}, {"type": "response.in_progress", "response": start}]
        for index, item in enumerate(items):
            events += [{**event, "output_index": index} for event in item.events]
        events.append({"type": "response.incomplete" if capped else "response.completed", "response": final})
        failure = self._stream_failures.popleft() if self._stream_failures else None
        if failure is not None:
            after, code, message = failure
            events = events[: min(after, len(events) - 1)]
            events.append({"type": "error", "code": code, "message": message, "param": None})
        frames = [sse(orjson.dumps({**event, "sequence_number": n}), event["type"]) for n, event in enumerate(events)]
        return await send_events(request, frames, delay=self.chunk_delay_s,  # type: ignore[attr-defined]
                                 headers=headers, close=failure is not None)
