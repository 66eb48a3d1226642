"""The request table: a :class:`~textual.widgets.DataTable` of entries, newest at the top.

Contract:
- Row keys are the entries' ``seq`` (as strings); :meth:`RequestTable.entry` maps a row key back to its entry.
- :meth:`RequestTable.prepend` adds a batch in one go (one sort, one refresh) and keeps the cursor on the record
  it was on, unless the cursor was on the top row: then it stays on the top row, following the newest request.
- :meth:`RequestTable.replace` shows exactly the given entries (used for filtering and trimming), keeping the cursor
  on its record when that record is still shown. It adds the first ``chunk`` rows at once and the rest ``chunk``
  rows per timer tick (DataTable measures every new cell, about 50 µs each), so rebuilding thousands of rows never
  blocks input for long; a later :meth:`~RequestTable.replace` or :meth:`~RequestTable.prepend` stays correct
  while a rebuild is still filling in (:attr:`RequestTable.filling` is True until it is done).
- Enter on a row, or a click on one, posts :class:`DataTable.RowSelected` for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from .feed import Entry
from .render import COLUMNS, TimeCell, row_cells


def _newest_first(cell: object) -> int:
    """Sort key of a row's time cell: its arrival number (sorted in reverse, newest first)."""
    return cell.seq if isinstance(cell, TimeCell) else 0


class RequestTable(DataTable[object]):
    """One row per request (see the module docstring)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Details")]

    def __init__(self, *, id: str | None = None, chunk: int = 250, chunk_interval_s: float = 0.02) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.chunk = max(1, chunk)
        self.chunk_interval_s = chunk_interval_s
        self._entries: dict[str, Entry] = {}
        self._backlog: list[Entry] = []     # rows of the current rebuild still to add, newest first
        self._generation = 0                # bumped by each rebuild; stale chunks see a different number
        self._cursor_target: Entry | None = None

    def on_mount(self) -> None:
        for column in COLUMNS:
            self.add_column(column.label, key=column.key, width=column.width)

    def entry(self, key: RowKey | str | None) -> Entry | None:
        """The entry shown in the row with ``key`` (None when there is no such row)."""
        if key is None:
            return None
        value = key.value if isinstance(key, RowKey) else key
        return self._entries.get(value) if value is not None else None

    def cursor_entry(self) -> Entry | None:
        """The entry under the cursor, if any."""
        if not self.row_count:
            return None
        return self.entry(self.coordinate_to_cell_key(self.cursor_coordinate).row_key)

    @property
    def shown(self) -> list[Entry]:
        """The entries on screen, top row first."""
        return [e for row in self.ordered_rows if (e := self.entry(row.key)) is not None]

    def prepend(self, entries: Iterable[Entry]) -> None:
        """Add ``entries`` (any order) above the rows already shown, newest at the top."""
        before = self.cursor_entry() if self.cursor_row > 0 else None
        added = False
        for entry in entries:
            self._add(entry)
            added = True
        if not added:
            return
        self.sort("time", key=_newest_first, reverse=True)
        self._restore_cursor(before)

    @property
    def filling(self) -> bool:
        """True while a :meth:`replace` is still adding rows."""
        return bool(self._backlog)

    @property
    def planned_rows(self) -> int:
        """The rows shown plus those a :meth:`replace` has still to add."""
        return self.row_count + len(self._backlog)

    def replace(self, entries: Sequence[Entry]) -> None:
        """Show exactly ``entries`` (newest first, as given); see the module docstring."""
        target = self.cursor_entry() if self.cursor_row > 0 else self._cursor_target
        self._generation += 1
        self.clear()
        self._entries.clear()
        self._backlog = list(entries)
        self._cursor_target = target
        self._fill(self._generation)

    def _fill(self, generation: int) -> None:
        if generation != self._generation:
            return  # a newer rebuild took over
        chunk, self._backlog = self._backlog[:self.chunk], self._backlog[self.chunk:]
        for entry in chunk:  # older than every row shown: they belong at the bottom, where add_row puts them
            self._add(entry)
        target = self._cursor_target
        if target is not None and str(target.seq) in self._entries:
            self._cursor_target = None
            self._restore_cursor(target)
        if self._backlog:
            self.set_timer(self.chunk_interval_s, lambda: self._fill(generation))
        else:
            self._cursor_target = None

    def _add(self, entry: Entry) -> None:
        key = str(entry.seq)
        if key not in self._entries:
            self._entries[key] = entry
            self.add_row(*row_cells(entry), key=key)

    def _restore_cursor(self, entry: Entry | None) -> None:
        if entry is not None and str(entry.seq) in self._entries:
            self.move_cursor(row=self.get_row_index(str(entry.seq)), animate=False)
        else:
            self.move_cursor(row=0, animate=False)

    def on_click(self, event: events.Click) -> None:
        """A click on a row opens it (DataTable itself only opens a row clicked while already under the cursor)."""
        row = event.style.meta.get("row")
        if isinstance(row, int) and row >= 0:
            self.call_later(self.action_select_cursor)
