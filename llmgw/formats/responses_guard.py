"""The stream guard's channels in native Responses API events, and the numbering of a forwarded Responses stream.

Contract (:func:`guard_event`, used by :meth:`llmgw.formats.openai_responses.OpenAIResponses.guard_event`):
- Channels are the texts the model writes piece by piece: an ``output_text`` part (``response.output_text.delta``,
  key ``("text", output_index, content_index)``), a function call's arguments
  (``response.function_call_arguments.delta``, JSON, key ``("args", output_index, 0)``) and a custom tool call's
  input (``response.custom_tool_call_input.delta``, key ``("input", output_index, 0)``). Each delta goes through its
  pipe (placeholders restored, response rules applied); what came out is kept per channel (``guard.context``).
- The events that repeat a whole text — ``*.done``, ``response.content_part.done``, ``response.output_item.done``,
  ``response.completed`` / ``response.incomplete`` / ``response.failed`` — first close their channels (held text
  goes out in one more delta event just before them), then carry exactly what the deltas carried. A text that
  arrives whole, without deltas, goes through a pipe of its own.
- A changed event gets ``raw = None``. Added events carry no meaningful ``sequence_number``: :class:`Numbering`
  renumbers the stream as it is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..exchange import StreamEvent

if TYPE_CHECKING:
    from ..guardrails.stream import StreamGuard

HeldEvent = Callable[["StreamGuard", tuple[Any, ...], str, bool], StreamEvent]

# delta event -> (channel kind, JSON text?); done event -> (channel kind, field with the whole text)
_DELTAS = {"response.output_text.delta": ("text", False), "response.function_call_arguments.delta": ("args", True),
           "response.custom_tool_call_input.delta": ("input", False)}
_DONES = {"response.output_text.done": ("text", "text"), "response.function_call_arguments.done": ("args", "arguments"),
          "response.custom_tool_call_input.done": ("input", "input")}
_DELTA_OF = {kind: event for event, (kind, _) in _DELTAS.items()}
_FIELD_OF = {"args": "arguments", "input": "input"}   # the item field a call channel fills
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


class Numbering:
    """Numbers a forwarded Responses stream: from the first event's own ``sequence_number``, one more per event.
    ``response`` is the last response snapshot sent (``response.created`` / ``response.in_progress``)."""

    def __init__(self) -> None:
        self.next: int = 0
        self.response: dict[str, Any] | None = None
        self._started = False

    def renumber(self, data: dict[str, Any]) -> bool:
        """Give ``data`` its number; True when that changed it."""
        number = data.get("sequence_number")
        if not self._started:
            self._started = True
            self.next = number if isinstance(number, int) else 0
        changed = number != self.next
        if changed:
            data["sequence_number"] = self.next
        self.next += 1
        if data.get("type") in ("response.created", "response.in_progress") and isinstance(data.get("response"),
                                                                                          dict):
            self.response = data["response"]
        return changed


def _key(kind: str, data: dict[str, Any]) -> tuple[Any, ...]:
    return kind, data.get("output_index", 0), data.get("content_index", 0) if kind == "text" else 0


def _where(key: tuple[Any, ...]) -> str:
    kind, index, part = key
    return f"output[{index}].content[{part}].text" if kind == "text" else f"output[{index}].{_FIELD_OF[kind]}"


def _state(guard: StreamGuard) -> tuple[dict[int, Any], dict[tuple[Any, ...], str]]:
    """The item ids by output index and the text each channel carried so far."""
    return guard.context.setdefault("items", {}), guard.context.setdefault("texts", {})


def _whole(guard: StreamGuard, key: tuple[Any, ...], text: str) -> str:
    """The text a channel carried, or ``text`` through a pipe of its own when no delta came for it."""
    texts = _state(guard)[1]
    if key not in texts:
        out = guard.pipe(key, _where(key), key[0] == "args").feed(text)
        texts[key] = out + guard.flush([key]).get(key, "")
    return texts[key]


def _close(guard: StreamGuard, keys: list[tuple[Any, ...]], held: HeldEvent) -> list[StreamEvent]:
    """Close those of ``keys`` that are open; one delta event for each that still held text."""
    open_ = set(guard.channels())
    return [held(guard, key, text, False) for key, text in guard.flush([k for k in keys if k in open_]).items()]


def _settle_item(guard: StreamGuard, index: int, item: Any) -> bool:
    """Put what the channels carried into a whole output item; True when that changed it."""
    if not isinstance(item, dict):
        return False
    changed = False
    if item.get("type") == "message":
        for j, part in enumerate(item.get("content") or []):
            if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str):
                text = _whole(guard, ("text", index, j), part["text"])
                changed |= text != part["text"]
                part["text"] = text
    else:
        kind = {"function_call": "args", "custom_tool_call": "input"}.get(item.get("type"))
        field = _FIELD_OF.get(kind or "")
        if kind is not None and field is not None and isinstance(item.get(field), str):
            text = _whole(guard, (kind, index, 0), item[field])
            changed |= text != item[field]
            item[field] = text
    return changed


def guard_event(guard: StreamGuard, event: StreamEvent, held: HeldEvent) -> list[StreamEvent]:
    """The events to send for one native Responses event (see the module contract)."""
    data = event.data
    kind = data.get("type")
    items, texts = _state(guard)
    extra: list[StreamEvent] = []
    changed = False
    if kind == "response.output_item.added" and isinstance(data.get("item"), dict):
        items[data.get("output_index", 0)] = data["item"].get("id")
    elif kind in _DELTAS:
        channel, json = _DELTAS[kind]
        key = _key(channel, data)
        text = data.get("delta")
        if isinstance(text, str) and text:
            out = guard.pipe(key, _where(key), json).feed(text)
            texts[key] = texts.get(key, "") + out
            changed = out != text
            data["delta"] = out
    elif kind in _DONES:
        channel, field = _DONES[kind]
        key = _key(channel, data)
        extra = _close(guard, [key], held)
        if isinstance(data.get(field), str):
            text = _whole(guard, key, data[field])
            changed = text != data[field]
            data[field] = text
    elif kind == "response.content_part.done":
        part = data.get("part")
        if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str):
            key = _key("text", data)
            extra = _close(guard, [key], held)
            text = _whole(guard, key, part["text"])
            changed = text != part["text"]
            part["text"] = text
    elif kind == "response.output_item.done":
        index = data.get("output_index", 0)
        extra = _close(guard, [k for k in guard.channels() if k[1] == index], held)
        changed = _settle_item(guard, index, data.get("item"))
    elif kind in _TERMINAL:
        extra = _close(guard, guard.channels(), held)
        response = data.get("response")
        output = response.get("output") if isinstance(response, dict) else None
        for index, item in enumerate(output if isinstance(output, list) else []):
            changed |= _settle_item(guard, index, item)
    if changed:
        event.raw = None
    return [*extra, event]


def held_delta(guard: StreamGuard, key: tuple[Any, ...], text: str) -> dict[str, Any]:
    """A delta event carrying text the guard held back for channel ``key`` (its ``sequence_number`` is set as
    the stream is written)."""
    items, texts = _state(guard)
    kind, index, part = key
    texts[key] = texts.get(key, "") + text
    data: dict[str, Any] = {"type": _DELTA_OF[kind], "item_id": items.get(index, ""), "output_index": index}
    if kind == "text":
        data.update(content_index=part, logprobs=[])
    data.update(delta=text, sequence_number=0)
    return data
