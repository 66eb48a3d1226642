"""Guarding a streamed answer: restoring placeholders and applying response rules as the events flow.

Contract (:class:`StreamGuard`):
- Each stream of text inside the events — a choice's ``delta.content``, ``delta.reasoning_content`` and each tool
  call's argument text in canonical chunks; each content block's ``text_delta`` / ``thinking_delta`` /
  ``input_json_delta`` in native Anthropic events — goes through its own :class:`TextPipe`: placeholders restored
  (JSON-escaped inside argument JSON), then the response rules (:class:`HoldbackScanner`).
- The scanner sends text only once nothing after it can change its verdict: it holds back what each rule says
  more text could still change (:meth:`~llmgw.guardrails.rules.Detector.hold`: the longest value a rule can match,
  read in the normalised view, and from the start of an unfinished PEM block or JWT). No part of a value a rule
  would find is ever sent before the value is judged whole. The text already sent stays readable as context
  (phone or order wording before a number). The buffer is re-read when it has grown by a quarter, so the work is
  linear in the length of the answer.
- Events keep their order and number; a changed event gets ``raw = None``. Text still held when a channel ends (a
  finish reason, ``content_block_stop``, the usage chunk, the end of the stream) is put into the finishing event
  where the format allows, else into one extra event just before it.
- A response ``block`` (or a scan past its budget under a rule with ``over_budget = "block"``) raises
  :class:`Blocked`; :class:`GuardedEvents` turns it into an :class:`~llmgw.providers.base.UpstreamFailure` so the
  renderer ends the stream with an error event (the client already has its 200). Text that matched is never sent:
  it is still held back when the rule fires.
- :class:`GuardedEvents` always closes the upstream iterator when it is closed, started or not.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import nullcontext
from typing import Any

from ..errors import GatewayError, PermissionDenied
from ..exchange import StreamEvent
from ..formats import WireFormat, named
from ..providers.base import UpstreamFailure
from .engine import BudgetExceeded, Scan, over_budget
from .normalize import normalize
from .redact import Placeholders, Restorer

CONTEXT = 64    # characters already sent that are read again as context
_BATCH = 32     # characters gathered beyond the hold before reading again


class Blocked(Exception):
    """A response rule blocked the stream; the message says why (no matched value)."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self._error = error

    def error(self) -> GatewayError:
        """The error the exchange fails with."""
        return self._error


class HoldbackScanner:
    """Response rules over streamed text (see the module contract)."""

    def __init__(self, scan: Scan, where: str) -> None:
        self._scan = scan
        self._where = where
        self._buf = ""          # received, not sent
        self._ctx = ""          # the end of what was sent, read as context only
        self._next = 0          # buffer length at which to read again
        self._passing = False   # past the budget under over_budget = "allow": the rest passes unscanned

    def feed(self, text: str) -> str:
        self._buf += text
        if self._passing:
            return self._pass()
        if len(self._buf) < self._next:
            return ""
        return self._emit(final=False)

    def flush(self) -> str:
        if self._passing:
            return self._pass()
        return self._emit(final=True) if self._buf else ""

    def _pass(self) -> str:
        out, self._buf = self._buf, ""
        return out

    def _emit(self, *, final: bool) -> str:
        scan = self._scan
        text = self._ctx + self._buf
        base = len(self._ctx)
        try:
            with scan.budget.running() if scan.budget is not None else nullcontext():
                findings = [f for f in scan.find(text) if f.end > base]
                cut = len(text) if final else self._hold(text)
        except BudgetExceeded as exceeded:
            return self._over_budget(str(exceeded))
        blocking = [f for f in findings if f.action == "block"]
        if blocking:
            scan.note(blocking[:1], self._where)
            raise Blocked(PermissionDenied(f"answer blocked by guardrail {scan.blocked}", code="guardrail_blocked"))
        cut = max(cut, base)
        for f in findings:
            if f.start < cut < f.end:
                cut = max(f.start, base)
        ready = [f for f in findings if f.start >= base and f.end <= cut]
        scan.note(ready, self._where)
        out = scan.apply(text[:cut], ready)[base:] if ready else text[base:cut]
        self._ctx = text[max(0, cut - CONTEXT):cut]
        self._buf = text[cut:]
        held = len(self._buf)
        self._next = held + max(_BATCH, held // 4)
        return out

    def _hold(self, text: str) -> int:
        """Where the text that must stay held begins (see the module contract)."""
        view = normalize(text)
        cut = min(rule.detector.hold(view.text) for rule in self._scan.rules)
        return view.start(cut)

    def _over_budget(self, spent: str) -> str:
        error = over_budget(self._scan.rules, self._scan, "the answer", spent)
        if error is not None:
            raise Blocked(error)
        self._passing = True
        return self._pass()


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
    """Rewrites a stream's events through per-channel :class:`TextPipe` s (see the module contract).

    Which texts of an event are channels is the event's format's business
    (:meth:`~llmgw.formats.base.WireFormat.guard_event`); it uses :meth:`pipe`, :meth:`flush`, :meth:`channels` and
    ``context`` (what the format keeps between events, e.g. the chunk id for synthetic chunks)."""

    def __init__(self, make_pipe: PipeFactory) -> None:
        self._make = make_pipe
        self._pipes: dict[tuple[Any, ...], TextPipe] = {}
        self._format: WireFormat | None = None
        self.context: dict[str, Any] = {}

    def pipe(self, key: tuple[Any, ...], where: str, json: bool) -> TextPipe:
        """The pipe of channel ``key`` (opened on first use; ``json``: the text is JSON, e.g. tool arguments)."""
        pipe = self._pipes.get(key)
        if pipe is None:
            pipe = self._pipes[key] = self._make(where, json)
        return pipe

    def channels(self) -> list[tuple[Any, ...]]:
        """The channels open now."""
        return list(self._pipes)

    def flush(self, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], str]:
        """Close these channels; the text each still held (only the non-empty ones)."""
        out = {}
        for key in keys:
            text = self._pipes.pop(key).flush()
            if text:
                out[key] = text
        return out

    def process(self, event: StreamEvent) -> list[StreamEvent]:
        """The events to send for one upstream event (the event itself, changed or not, last)."""
        if self._format is None or self._format.name != event.format:
            self._format = named(event.format)
        return self._format.guard_event(self, event)

    def finish(self) -> list[StreamEvent]:
        """Events carrying whatever is still held back when the upstream ends."""
        held = self.flush(list(self._pipes))
        if not held:
            return []
        assert self._format is not None
        return [self._format.held_text_event(self, key, text, True) for key, text in held.items()]


class GuardedEvents:
    """The rest of a stream, through a :class:`StreamGuard`; ``pending`` events go out first."""

    def __init__(self, guard: StreamGuard, pending: list[StreamEvent], inner: AsyncIterator[StreamEvent],
                 on_block: Callable[[GatewayError], None]) -> None:
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
                error = blocked.error()
                self._on_block(error)
                raise UpstreamFailure(error.status, error.message) from None
        return self._out.popleft()

    async def aclose(self) -> None:
        """Close the upstream stream."""
        await self._inner.aclose()  # type: ignore[attr-defined]
