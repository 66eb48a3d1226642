"""Where the TUI's records come from: the :class:`RecordSource` protocol, :class:`Status`, :class:`FixtureSource`.

Contract:
- A source's :meth:`RecordSource.events` is an async iterator yielding, in arrival order, either a record (one
  finished request, the dict :meth:`llmgw.exchange.Exchange.log_row` describes, as ``GET /admin/events`` sends it)
  or a :class:`Status` when the connection to the records changes. Consumers treat records as read-only.
- An alert the proxy raised (``event: alert`` on ``GET /admin/events``) is yielded as an :class:`Alert`.
- A source that can lose its connection yields ``Status("disconnected", why)`` when it does and
  ``Status("connected", where)`` when records can flow again; it never raises for a network problem.
- Iteration may be abandoned at any point; consumers close the iterator (``contextlib.aclosing``) so a source's
  resources are released.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias

Record: TypeAlias = dict[str, Any]
StatusState: TypeAlias = Literal["connected", "disconnected"]


@dataclass(frozen=True, slots=True)
class Status:
    """The connection changed: ``state`` is ``"connected"`` or ``"disconnected"``; ``detail`` says it in words."""

    state: StatusState
    detail: str = ""

    @property
    def connected(self) -> bool:
        return self.state == "connected"


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert the proxy raised: its record (:meth:`llmgw.alerts.Alert.record`: ``kind``, ``subject``, ``text``,
    ``time``, ``facts``…)."""

    record: Record

    @property
    def text(self) -> str:
        return str(self.record.get("text") or "alert")

    @property
    def kind(self) -> str:
        return str(self.record.get("kind") or "alert")


Event: TypeAlias = Record | Status | Alert


class RecordSource(Protocol):
    """Anything the TUI can watch: a ``label`` (shown in the title) and an async iterator of :data:`Event` s."""

    @property
    def label(self) -> str: ...

    def events(self) -> AsyncIterator[Event]: ...


class FixtureSource:
    """A source fed by hand, for tests and demos: the ``initial`` events first, then whatever is
    :meth:`push` ed, in order, until :meth:`close`. One consumer at a time."""

    def __init__(self, initial: Iterable[Event] = (), *, label: str = "fixture") -> None:
        self._label = label
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        for event in initial:
            self._queue.put_nowait(event)

    @property
    def label(self) -> str:
        return self._label

    def push(self, *events: Event) -> None:
        """Deliver ``events`` (records or :class:`Status`) after everything pushed before."""
        for event in events:
            self._queue.put_nowait(event)

    def close(self) -> None:
        """End the iteration once everything pushed so far has been delivered."""
        self._queue.put_nowait(None)

    async def events(self) -> AsyncIterator[Event]:
        while (event := await self._queue.get()) is not None:
            yield event
