"""Guarding a streamed answer: restoring placeholders and applying response rules as the events flow.

Contract (:class:`StreamGuard`):
- Each stream of text inside the events — a choice's ``delta.content`` and each tool call's argument text in
  canonical chunks; each content block's ``text_delta`` / ``input_json_delta`` in native Anthropic events — goes
  through its own :class:`TextPipe`: placeholders restored (JSON-escaped inside argument JSON), then the response
  rules, which hold back the last :data:`HOLD` characters so an entity is judged whole before any of it leaves.
- Events keep their order and number; a changed event gets ``raw = None`` so the renderer re-serialises it. Text
  still held when a channel ends (a finish reason, ``content_block_stop``, the usage chunk, the end of the stream)
  is put into the finishing event where the format allows, else into one extra event just before it.
- A response ``block`` raises :class:`Blocked`; :class:`GuardedEvents` turns it into an
  :class:`~llmgw.providers.base.UpstreamFailure` so the renderer ends the stream with an error event (the client
  already has its 200). Text that matched is never sent: it is still held back when the rule fires.
- :class:`GuardedEvents` always closes the upstream iterator when it is closed, started or not.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..exchange import StreamEvent
from ..providers.base import UpstreamFailure
from .engine import Scan
from .redact import Placeholders, Restorer

HOLD = 128      # characters of answer text held back for the response rules
_BATCH = 32     # extra characters gathered before scanning again


class Blocked(Exception):
    """A response rule blocked the stream; the message says why (no matched value)."""


class HoldbackScanner:
    """Response rules over streamed text: emits text only once nothing after it can change its verdict."""

    def __init__(self, scan: Scan, where: str) -> None:
        self._scan = scan
        self._where = where
        self._buf = ""

    def feed(self, text: str) -> str:
        self._buf += text
        if len(self._buf) <= HOLD + _BATCH:
            return ""
        return self._emit(len(self._buf) - HOLD)

    def flush(self) -> str:
        return self._emit(len(self._buf))

    def _emit(self, cut: int) -> str:
        buf = self._buf
        findings = self._scan.find(buf)
        blocking = [f for f in findings if f.action == "block"]
        if blocking:
            self._scan.note(blocking[:1], self._where)
            raise Blocked(str(self._scan.blocked))
        for f in findings:
            if f.start < cut < f.end:
                cut = f.start
        ready = [f for f in findings if f.end <= cut]
        self._scan.note(ready, self._where)
        self._buf = buf[cut:]
        return self._scan.apply(buf[:cut], ready)


class TextPipe:
    """One channel of streamed text: restore, then response rules."""

    def __init__(self, restorer: Restorer | None, scanner: HoldbackScanner | None) -> None:
        self._restorer = restorer
        self._scanner = scanner

    def feed(self, text: str) -> str:
        if self._restorer is not None:
            text = self._restorer.feed(text)
        if self._scanner is not None:
            text = self._scanner.feed(text)
        return text

    def flush(self) -> str:
        text = self._restorer.flush() if self._restorer is not None else ""
        if self._scanner is not None:
            text = self._scanner.feed(text) + self._scanner.flush()
        return text


PipeFactory = Callable[[str, bool], TextPipe]   # (where, json) -> pipe


def pipe_factory(table: Placeholders, scan: Scan | None) -> PipeFactory | None:
    """Pipes restoring ``table``'s placeholders and applying ``scan``'s rules; ``None`` when there is nothing to
    do."""
    restoring = bool(table.restorable)
    if not restoring and (scan is None or not scan.rules):
        return None

    def make(where: str, json: bool) -> TextPipe:
        restorer = table.restorer(json=json) if restoring else None
        scanner = HoldbackScanner(scan, where) if scan is not None and scan.rules else None
        return TextPipe(restorer, scanner)

    return make


class StreamGuard:
    """Rewrites a stream's events through per-channel :class:`TextPipe` s (see the module contract)."""

    def __init__(self, make_pipe: PipeFactory) -> None:
        self._make = make_pipe
        self._pipes: dict[tuple[Any, ...], TextPipe] = {}
        self._last: dict[str, Any] = {}

    def _pipe(self, key: tuple[Any, ...], where: str, json: bool) -> TextPipe:
        pipe = self._pipes.get(key)
        if pipe is None:
            pipe = self._pipes[key] = self._make(where, json)
        return pipe

    def _flush(self, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], str]:
        out = {}
        for key in keys:
            text = self._pipes.pop(key).flush()
            if text:
                out[key] = text
        return out

    def process(self, event: StreamEvent) -> list[StreamEvent]:
        """The events to send for one upstream event (the event itself, changed or not, last)."""
        if event.format == "anthropic":
            return self._anthropic(event)
        return self._openai(event)

    def finish(self) -> list[StreamEvent]:
        """Events carrying whatever is still held back when the upstream ends."""
        held = self._flush(list(self._pipes))
        return [self._synthetic(key, text, flush=True) for key, text in held.items()]

    # --- canonical (OpenAI) chunks ---

    def _openai(self, event: StreamEvent) -> list[StreamEvent]:
        data = event.data
        self._last = {k: data.get(k) for k in ("id", "object", "created", "model")}
        choices = data.get("choices") or []
        changed = False
        for choice in choices:
            index = choice.get("index", 0)
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                out = self._pipe(("text", index), f"choices[{index}].delta.content", False).feed(text)
                changed |= out != text
                delta["content"] = out
            for call in delta.get("tool_calls") or []:
                function = call.get("function") or {}
                args = function.get("arguments")
                if isinstance(args, str) and args:
                    key = ("tool", index, call.get("index", 0))
                    where = f"choices[{index}].delta.tool_calls[{key[2]}].function.arguments"
                    out = self._pipe(key, where, True).feed(args)
                    changed |= out != args
                    function["arguments"] = out
            if choice.get("finish_reason"):
                held = self._flush([k for k in self._pipes if k[1] == index])
                changed |= self._put_back(choice, delta, held)
        extra: list[StreamEvent] = []
        if not choices and self._pipes:   # the usage chunk: everything must be out before it
            held = self._flush(list(self._pipes))
            extra = [self._synthetic(key, text, flush=False) for key, text in held.items()]
        if changed:
            event.raw = None
        return [*extra, event]

    @staticmethod
    def _put_back(choice: dict[str, Any], delta: dict[str, Any], held: dict[tuple[Any, ...], str]) -> bool:
        """Put text held for a finishing choice into its last chunk."""
        for key, text in held.items():
            if key[0] == "text":
                delta["content"] = text + (delta.get("content") or "")
            else:
                delta.setdefault("tool_calls", []).append({"index": key[2], "function": {"arguments": text}})
        if held:
            choice["delta"] = delta
        return bool(held)

    # --- native Anthropic events ---

    def _anthropic(self, event: StreamEvent) -> list[StreamEvent]:
        data = event.data
        kind = data.get("type")
        if kind == "content_block_delta":
            index = data.get("index", 0)
            delta = data.get("delta") or {}
            field, key, where = (("text", ("block", index), f"content[{index}].text")
                                 if delta.get("type") == "text_delta"
                                 else ("partial_json", ("json", index), f"content[{index}].input"))
            text = delta.get(field)
            if delta.get("type") in ("text_delta", "input_json_delta") and isinstance(text, str) and text:
                out = self._pipe(key, where, key[0] == "json").feed(text)
                if out != text:
                    delta[field] = out
                    event.raw = None
            return [event]
        if kind == "content_block_stop":
            keys = [k for k in self._pipes if k[1] == data.get("index", 0)]
        elif kind in ("message_delta", "message_stop"):
            keys = list(self._pipes)
        else:
            return [event]
        held = self._flush(keys)
        return [*(self._synthetic(key, text, flush=False) for key, text in held.items()), event]

    def _synthetic(self, key: tuple[Any, ...], text: str, *, flush: bool) -> StreamEvent:
        """One event carrying held-back text for channel ``key``."""
        if key[0] == "block":
            data = {"type": "content_block_delta", "index": key[1], "delta": {"type": "text_delta", "text": text}}
            return StreamEvent(data, None, format="anthropic", flush=flush)
        if key[0] == "json":
            data = {"type": "content_block_delta", "index": key[1],
                    "delta": {"type": "input_json_delta", "partial_json": text}}
            return StreamEvent(data, None, format="anthropic", flush=flush)
        delta: dict[str, Any] = ({"content": text} if key[0] == "text"
                                 else {"tool_calls": [{"index": key[2], "function": {"arguments": text}}]})
        chunk = {**self._last, "object": "chat.completion.chunk",
                 "choices": [{"index": key[1], "delta": delta, "finish_reason": None}]}
        return StreamEvent(chunk, None, flush=flush)


class GuardedEvents:
    """The rest of a stream, through a :class:`StreamGuard`; ``pending`` events go out first."""

    def __init__(self, guard: StreamGuard, pending: list[StreamEvent], inner: AsyncIterator[StreamEvent],
                 on_block: Callable[[str], None]) -> None:
        self._guard = guard
        self._out: deque[StreamEvent] = deque(pending)
        self._inner = inner
        self._on_block = on_block
        self._done = False

    def __aiter__(self) -> GuardedEvents:
        return self

    async def __anext__(self) -> StreamEvent:
        while not self._out:
            if self._done:
                raise StopAsyncIteration
            try:
                try:
                    event = await anext(self._inner)
                except StopAsyncIteration:
                    self._done = True
                    self._out.extend(self._guard.finish())
                    continue
                self._out.extend(self._guard.process(event))
            except Blocked as blocked:
                self._done = True
                self._on_block(str(blocked))
                raise UpstreamFailure(403, f"answer blocked by guardrail {blocked}") from None
        return self._out.popleft()

    async def aclose(self) -> None:
        """Close the upstream stream."""
        await self._inner.aclose()  # type: ignore[attr-defined]
