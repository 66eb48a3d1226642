"""The stream guard's channels in native Responses API events, and the numbering of a forwarded Responses stream.

Contract (:func:`guard_event`, used by :meth:`llmgw.formats.openai_responses.OpenAIResponses.guard_event`):
- Channels are the texts the model writes piece by piece (:data:`CHANNELS`): an ``output_text`` part, a refusal
  part, a reasoning summary part, a reasoning text part, a function call's arguments (JSON) and a custom tool
  call's input, each keyed ``(kind, output_index, part index)`` (0 for the calls). Each delta goes through its pipe
  (placeholders restored, response rules applied); what came out is kept per channel (``guard.context``).
- The events that repeat a whole text — each channel's ``.done`` event, ``response.content_part.done``,
  ``response.reasoning_summary_part.done``, ``response.output_item.done``, ``response.completed`` /
  ``response.incomplete`` / ``response.failed`` — first close their channels (held text goes out in one more delta
  event just before them), then carry exactly what the deltas carried. A text that arrives whole, without deltas,
  goes through a pipe of its own.
- A changed event gets ``raw = None``. Added events carry no meaningful ``sequence_number``: :class:`Numbering`
  renumbers the stream as it is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..exchange import StreamEvent

if TYPE_CHECKING:
    from ..guardrails.stream import StreamGuard

HeldEvent = Callable[["StreamGuard", tuple[Any, ...], str, bool], StreamEvent]


@dataclass(frozen=True, slots=True)
class Channel:
    """One kind of streamed text: its events, the field the done event and the item repeat it in, the event field
    that indexes its part (None: one per item), and whether it is JSON."""

    kind: str
    delta: str
    done: str
    field: str            # the whole text's field in the done event, the part and the item
    index: str | None     # "content_index" / "summary_index"
    where: str            # the key path in an output item, {i} the part's index
    json: bool = False


CHANNELS = (
    Channel("text", "response.output_text.delta", "response.output_text.done", "text", "content_index",
            "content[{i}].text"),
    Channel("refusal", "response.refusal.delta", "response.refusal.done", "refusal", "content_index",
            "content[{i}].refusal"),
    Channel("summary", "response.reasoning_summary_text.delta", "response.reasoning_summary_text.done", "text",
            "summary_index", "summary[{i}].text"),
    Channel("reasoning", "response.reasoning_text.delta", "response.reasoning_text.done", "text", "content_index",
            "content[{i}].text"),
    Channel("args", "response.function_call_arguments.delta", "response.function_call_arguments.done", "arguments",
            None, "arguments", json=True),
    Channel("input", "response.custom_tool_call_input.delta", "response.custom_tool_call_input.done", "input", None,
            "input"),
)
_BY_DELTA = {c.delta: c for c in CHANNELS}
_BY_DONE = {c.done: c for c in CHANNELS}
_BY_KIND = {c.kind: c for c in CHANNELS}
# Where whole texts sit in an output item: (item type, list field or None, part type or None) -> channel
_IN_ITEMS = {("message", "content", "output_text"): _BY_KIND["text"],
             ("message", "content", "refusal"): _BY_KIND["refusal"],
             ("reasoning", "summary", "summary_text"): _BY_KIND["summary"],
             ("reasoning", "content", "reasoning_text"): _BY_KIND["reasoning"],
             ("function_call", None, None): _BY_KIND["args"],
             ("custom_tool_call", None, None): _BY_KIND["input"]}
_PART_DONE = {"response.content_part.done": ("content_index", {"output_text": "text", "refusal": "refusal"}),
              "response.reasoning_summary_part.done": ("summary_index", {"summary_text": "summary"})}
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


def _key(channel: Channel, data: dict[str, Any]) -> tuple[Any, ...]:
    return channel.kind, data.get("output_index", 0), data.get(channel.index, 0) if channel.index else 0


def _where(key: tuple[Any, ...]) -> str:
    kind, index, part = key
    return f"output[{index}]." + _BY_KIND[kind].where.format(i=part)


def _state(guard: StreamGuard) -> tuple[dict[int, Any], dict[tuple[Any, ...], str]]:
    """The item ids by output index and the text each channel carried so far."""
    return guard.context.setdefault("items", {}), guard.context.setdefault("texts", {})


def _whole(guard: StreamGuard, key: tuple[Any, ...], text: str) -> str:
    """The text a channel carried, or ``text`` through a pipe of its own when no delta came for it."""
    texts = _state(guard)[1]
    if key not in texts:
        out = guard.pipe(key, _where(key), _BY_KIND[key[0]].json).feed(text)
        texts[key] = out + guard.flush([key]).get(key, "")
    return texts[key]


def _settle(guard: StreamGuard, key: tuple[Any, ...], container: dict[str, Any], field: str) -> bool:
    """Put what channel ``key`` carried into ``container[field]``; True when that changed it."""
    text = container.get(field)
    if not isinstance(text, str):
        return False
    whole = _whole(guard, key, text)
    container[field] = whole
    return whole != text


def _close(guard: StreamGuard, keys: list[tuple[Any, ...]], held: HeldEvent) -> list[StreamEvent]:
    """Close those of ``keys`` that are open; one delta event for each that still held text."""
    open_ = set(guard.channels())
    return [held(guard, key, text, False) for key, text in guard.flush([k for k in keys if k in open_]).items()]


def _settle_item(guard: StreamGuard, index: int, item: Any) -> bool:
    """Put what the channels carried into a whole output item; True when that changed it."""
    if not isinstance(item, dict):
        return False
    changed = False
    for (kind, parts, part_type), channel in _IN_ITEMS.items():
        if item.get("type") != kind:
            continue
        if parts is None:
            changed |= _settle(guard, (channel.kind, index, 0), item, channel.field)
            continue
        for j, part in enumerate(item.get(parts) or []):
            if isinstance(part, dict) and part.get("type") == part_type:
                changed |= _settle(guard, (channel.kind, index, j), part, channel.field)
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
    elif kind in _BY_DELTA:
        channel = _BY_DELTA[kind]
        key = _key(channel, data)
        text = data.get("delta")
        if isinstance(text, str) and text:
            out = guard.pipe(key, _where(key), channel.json).feed(text)
            texts[key] = texts.get(key, "") + out
            changed = out != text
            data["delta"] = out
    elif kind in _BY_DONE:
        channel = _BY_DONE[kind]
        key = _key(channel, data)
        extra = _close(guard, [key], held)
        changed = _settle(guard, key, data, channel.field)
    elif kind in _PART_DONE:
        index_field, kinds = _PART_DONE[kind]
        part = data.get("part")
        channel_kind = kinds.get(part.get("type")) if isinstance(part, dict) else None
        if channel_kind is not None:
            channel = _BY_KIND[channel_kind]
            key = (channel.kind, data.get("output_index", 0), data.get(index_field, 0))
            extra = _close(guard, [key], held)
            changed = _settle(guard, key, part, channel.field)
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
    channel = _BY_KIND[kind]
    texts[key] = texts.get(key, "") + text
    data: dict[str, Any] = {"type": channel.delta, "item_id": items.get(index, ""), "output_index": index}
    if channel.index is not None:
        data[channel.index] = part
    if kind == "text":
        data["logprobs"] = []
    data.update(delta=text, sequence_number=0)
    return data
