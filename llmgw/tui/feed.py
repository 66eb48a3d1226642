"""The TUI's model: a bounded, ordered, pausable store of received records, and the filter that selects them.

Contract:
- :meth:`Feed.receive` never blocks and is O(1). Every record gets an :class:`Entry` with a ``seq`` (arrival
  order, from 1, never reused, not even after :meth:`Feed.clear`).
- Not paused, a received entry waits in the inbox until :meth:`Feed.take`, which moves the inbox into the store
  and returns what arrived since the last call, oldest first. Paused, received entries are held; :meth:`Feed.resume`
  moves them to the inbox, so the next :meth:`Feed.take` returns them. Nothing is lost except to the bounds:
- The store keeps the newest ``max_rows`` entries, the held list the newest ``max_rows`` held ones
  (:attr:`Feed.held_total` still counts every record that arrived while paused). Only the newest ``bodies_kept``
  stored entries keep their ``request``/``response`` bodies (older ones are marked ``bodies_dropped``).
- The feed copies each record (shallowly) on receipt and never mutates the caller's dict.
- The filter (:func:`matches`): every whitespace-separated term of the query, case-insensitively, is a substring
  of the entry's alias, target, provider, team, key, status, outcome, error code or message, id or tags.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from .source import Record

BODY_FIELDS = ("request", "response")
SEARCHED_FIELDS = ("alias", "target", "provider", "team", "key", "status", "outcome", "error", "error_message",
                   "id")


@dataclass(slots=True)
class Entry:
    """One received request: its arrival ``seq``, the ``record`` (the feed's own copy) and the ``haystack``
    (lowercased text the filter searches)."""

    seq: int
    record: Record
    haystack: str
    bodies_dropped: bool = False


def haystack(record: Record) -> str:
    """The lowercased text :func:`matches` searches for ``record``."""
    parts = [str(record.get(name) or "") for name in SEARCHED_FIELDS]
    tags: Any = record.get("tags") or ()
    if isinstance(tags, list | tuple):
        parts.extend(str(tag) for tag in tags)
    return "\n".join(parts).lower()


def matches(entry: Entry, query: str) -> bool:
    """True when every term of ``query`` occurs in ``entry``'s haystack (an empty query matches everything)."""
    return all(term in entry.haystack for term in query.lower().split())


class Feed:
    """The model behind the table (see the module docstring)."""

    def __init__(self, max_rows: int = 5000, bodies_kept: int = 1000) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self.max_rows = max_rows
        self.bodies_kept = max(0, bodies_kept)
        self._entries: deque[Entry] = deque(maxlen=max_rows)
        self._inbox: deque[Entry] = deque(maxlen=max_rows)
        self._held: deque[Entry] = deque(maxlen=max_rows)
        self._with_bodies: deque[Entry] = deque()
        self._seq = 0
        self._paused = False
        self.held_total = 0
        self.received = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def paused(self) -> bool:
        return self._paused

    def receive(self, record: Record) -> Entry:
        """Accept one record: into the inbox, or held while paused."""
        self._seq += 1
        self.received += 1
        entry = Entry(self._seq, dict(record), haystack(record))
        if self._paused:
            self._held.append(entry)
            self.held_total += 1
        else:
            self._inbox.append(entry)
        return entry

    def pause(self) -> None:
        """Hold what arrives from now on."""
        self._paused = True

    def resume(self) -> None:
        """Release the held entries to the inbox (the next :meth:`take` returns them) and stop holding."""
        self._paused = False
        self._inbox.extend(self._held)
        self._held.clear()
        self.held_total = 0

    def take(self) -> list[Entry]:
        """Store the inbox and return its entries, oldest first (at most the newest ``max_rows``)."""
        if not self._inbox:
            return []
        batch = list(self._inbox)
        self._inbox.clear()
        self._entries.extend(batch)
        self._drop_old_bodies(batch)
        return batch

    def _drop_old_bodies(self, batch: list[Entry]) -> None:
        self._with_bodies.extend(e for e in batch if any(e.record.get(f) is not None for f in BODY_FIELDS))
        while len(self._with_bodies) > self.bodies_kept:
            old = self._with_bodies.popleft()
            for name in BODY_FIELDS:
                old.record.pop(name, None)
            old.bodies_dropped = True

    def matching(self, query: str = "", limit: int | None = None) -> list[Entry]:
        """The stored entries that match ``query``, newest first, at most ``limit`` of them."""
        out: list[Entry] = []
        cap = self.max_rows if limit is None else limit
        for entry in reversed(self._entries):
            if len(out) >= cap:
                break
            if matches(entry, query):
                out.append(entry)
        return out

    def clear(self) -> None:
        """Forget everything stored, waiting or held (arrival numbers carry on)."""
        self._entries.clear()
        self._inbox.clear()
        self._held.clear()
        self._with_bodies.clear()
        self.held_total = 0
