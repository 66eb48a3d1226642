"""Canonical streams (OpenAI ``chat.completion.chunk`` events) as Responses API streams (typed SSE events).

Contract (:class:`OpenAIStreamToResponses`, a small state machine, no I/O): ``feed(chunk, usage)`` per canonical
chunk, then ``finish()`` once the upstream finished, or ``fail(code, message)`` when it broke; each returns the SSE
bytes to write. The events are the API's, in its order, numbered from 0 by ``sequence_number``:

- ``response.created`` and ``response.in_progress`` first (the response shell, no output yet);
- text: ``response.output_item.added`` (an assistant ``message``), ``response.content_part.added`` (an empty
  ``output_text``), one ``response.output_text.delta`` per piece, and when something else starts or the answer
  ends ``response.output_text.done``, ``response.content_part.done``, ``response.output_item.done``;
- each tool call: ``response.output_item.added`` (a ``function_call`` with its ``call_id``, name and namespace),
  one ``response.function_call_arguments.delta`` per fragment, and at the end
  ``response.function_call_arguments.done`` and ``response.output_item.done``; a custom tool's call is a
  ``custom_tool_call`` whose input comes whole at the end (``response.custom_tool_call_input.delta`` and
  ``.done``), unwrapped from its function's arguments;
- last ``response.completed`` — or ``response.incomplete`` when the finish reason was ``length`` /
  ``content_filter`` — carrying every output item and the usage; ``fail`` writes an ``error`` event and then
  ``response.failed`` instead.

Every item keeps the same ``id`` (and ``call_id``) from ``added`` to ``done`` to the final response, as the
official SDK's stream accumulator checks.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ..exchange import Usage
from ..sse import encode_data
from .responses import usage_to_responses
from .responses_answer import INCOMPLETE, finish_status, message_item, new_id, response_shell, text_part
from .responses_tools import ToolMap, custom_input


def sse_event(data: dict[str, Any]) -> bytes:
    """One Responses SSE event (its ``event`` line is its ``type``)."""
    return encode_data(orjson.dumps(data), data["type"])


class OpenAIStreamToResponses:
    """Canonical chunks in, Responses SSE event bytes out (see the module contract).

    ``request`` is the client's Responses request (its settings are echoed in the response objects); ``model``
    the model named when the upstream's chunks name none.
    """

    def __init__(self, request: dict[str, Any], model: str, response_id: str | None = None) -> None:
        self._request = request
        self._model = model
        self.response_id = response_id or new_id("resp")
        self.started = False
        self.sequence = 0
        self.usage = Usage()
        self.finish_reason: str | None = None
        self._items: list[dict[str, Any]] = []
        self._message: int | None = None          # output index of the open message item
        self._calls: dict[int, int] = {}           # canonical tool-call index -> output index
        self._arguments: dict[int, str] = {}       # output index -> the call's canonical arguments so far
        self._tools = ToolMap.of(request)
        self._closed: set[int] = set()
        self._created = int(time.time())

    # --- framing ---

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, **fields, "sequence_number": self.sequence}
        self.sequence += 1
        return sse_event(data)

    def _response(self, status: str, *, output: bool = False) -> dict[str, Any]:
        response = response_shell(self._request, self.response_id, self._model, status)
        response["created_at"] = self._created
        if output:
            response["output"] = self._items
            response["usage"] = usage_to_responses(self.usage)
        return response

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        self.started = True
        self._model = chunk.get("model") or self._model
        return [self._event("response.created", response=self._response("in_progress")),
                self._event("response.in_progress", response=self._response("in_progress"))]

    # --- items ---

    def _open_message(self) -> list[bytes]:
        index = len(self._items)
        self._items.append(message_item(new_id("msg"), [], "in_progress"))
        self._message = index
        item = self._items[index]
        return [self._event("response.output_item.added", output_index=index,
                            item={**item, "content": []}),
                self._event("response.content_part.added", item_id=item["id"], output_index=index, content_index=0,
                            part=text_part(""))]

    def _close_message(self) -> list[bytes]:
        index, self._message = self._message, None
        if index is None:
            return []
        item = self._items[index]
        text = item.pop("_text", "")
        part = text_part(text)
        item["content"] = [part]
        item["status"] = "completed"
        self._closed.add(index)
        return [self._event("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                            text=text, logprobs=[]),
                self._event("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                            part=part),
                self._event("response.output_item.done", output_index=index, item=dict(item))]

    def _text(self, text: str) -> list[bytes]:
        out = self._open_message() if self._message is None else []
        item = self._items[self._message]  # type: ignore[index]
        item["_text"] = item.get("_text", "") + text
        out.append(self._event("response.output_text.delta", item_id=item["id"], output_index=self._message,
                               content_index=0, delta=text, logprobs=[]))
        return out

    def _tool_delta(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        position = call.get("index", 0)
        function = call.get("function") or {}
        index = self._calls.get(position)
        if index is None:
            out += self._close_message()
            index = self._calls[position] = len(self._items)
            name = function.get("name")
            prefix = "ctc" if self._tools.is_custom(name) else "fc"
            self._items.append(self._tools.item(new_id(prefix), call.get("id") or new_id("call"), name, "",
                                                "in_progress"))
            out.append(self._event("response.output_item.added", output_index=index, item=dict(self._items[index])))
        item = self._items[index]
        arguments = function.get("arguments")
        if arguments:
            self._arguments[index] = self._arguments.get(index, "") + arguments
            if item["type"] == "function_call":   # a custom tool's input is unwrapped whole, at its end
                item["arguments"] += arguments
                out.append(self._event("response.function_call_arguments.delta", item_id=item["id"],
                                       output_index=index, delta=arguments))
        return out

    def _close_calls(self) -> list[bytes]:
        out: list[bytes] = []
        for index in sorted(self._calls.values()):
            if index in self._closed:
                continue
            item = self._items[index]
            item["status"] = "completed"
            self._closed.add(index)
            if item["type"] == "custom_tool_call":
                item["input"] = custom_input(self._arguments.get(index, ""))
                if item["input"]:
                    out.append(self._event("response.custom_tool_call_input.delta", item_id=item["id"],
                                           output_index=index, delta=item["input"]))
                out.append(self._event("response.custom_tool_call_input.done", item_id=item["id"],
                                       output_index=index, input=item["input"]))
            else:
                out.append(self._event("response.function_call_arguments.done", item_id=item["id"],
                                       output_index=index, arguments=item["arguments"]))
            out.append(self._event("response.output_item.done", output_index=index, item=dict(item)))
        return out

    # --- the contract ---

    def feed(self, chunk: dict[str, Any], usage: Usage | None = None) -> list[bytes]:
        """The events for one canonical chunk."""
        out = [] if self.started else self._start(chunk)
        if usage is not None:
            self.usage = usage
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                out += self._text(text)
            for call in delta.get("tool_calls") or []:
                out += self._tool_delta(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def finish(self) -> list[bytes]:
        """Close every item and end with ``response.completed`` (or ``response.incomplete``)."""
        out = [] if self.started else self._start({})
        out += self._close_message()
        out += self._close_calls()
        status, details = finish_status(self.finish_reason)
        response = self._response(status, output=True)
        response["incomplete_details"] = details
        kind = "response.incomplete" if self.finish_reason in INCOMPLETE else "response.completed"
        out.append(self._event(kind, response=response))
        return out

    def fail(self, code: str, message: str) -> list[bytes]:
        """An ``error`` event, then ``response.failed`` (the upstream broke mid-stream)."""
        response = None
        if self.started:
            response = self._response("failed")
            response["output"] = [item for i, item in enumerate(self._items) if i in self._closed]
        out = failure_events(code, message, self.sequence, response)
        self.sequence += 2 if response is not None else 1
        return [out]


def failure_events(code: str, message: str, sequence: int, response: dict[str, Any] | None) -> bytes:
    """An ``error`` event numbered ``sequence``, then — when the client has had a ``response`` (its last snapshot) —
    ``response.failed`` with that response failed."""
    out = [sse_event({"type": "error", "code": code, "message": message, "param": None,
                      "sequence_number": sequence})]
    if response is not None:
        failed = {**response, "status": "failed", "error": {"code": code, "message": message}}
        out.append(sse_event({"type": "response.failed", "response": failed, "sequence_number": sequence + 1}))
    return b"".join(out)
