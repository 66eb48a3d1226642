"""The ``llmgw tail`` application: :func:`make_app` builds a :class:`TailApp` over any
:class:`~.source.RecordSource`.

Contract:
- The source is read by one asyncio worker; records go into a :class:`~.feed.Feed` at once (no UI work per
  record), and a timer every ``flush_s`` seconds moves what arrived into the table in one batch, so a burst of
  thousands of records costs a handful of table updates, and a record shows up within ``flush_s`` plus a frame.
- The table shows at most ``max_rows`` rows (the newest that match the filter); past that it is rebuilt with the
  newest ``trim_to`` of them, so at high rates the trimming cost is paid once every few thousand records.
- Paused, arriving records are held (the bar says "paused — N new") and shown on resume; the table does not move.
- The filter (see :func:`~.feed.matches`) applies to the stored records and to every new one, ``filter_delay_s``
  after the last keystroke; Enter in the filter box applies it at once and opens the newest match's details.
- The connection bar shows the source's latest :class:`~.source.Status`: "connecting …" until the first.
- An :class:`~.source.Alert` pops up as a warning notification and stays in the alert line above the table (the
  newest, with how many have come since the tail started, all of them counted); :attr:`TailApp.alerts` keeps the
  last :data:`ALERTS_KEPT`, :attr:`TailApp.alerts_seen` counts every one.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual.worker import Worker, WorkerState

from .detail import DetailPane
from .feed import Entry, Feed, matches
from .source import Alert, RecordSource, Status
from .table import RequestTable

ALERTS_KEPT = 100


class FilterInput(Input):
    """The filter box: Enter or Escape hand the keyboard back to the table."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.focus_table", "Back to table")]


class TailApp(App[None]):
    """A live table of the requests a source reports (see the module docstring)."""

    TITLE = "llmgw tail"
    CSS = """
    #bar { height: 1; padding: 0 1; }
    #connection { width: 1fr; }
    #counts { width: auto; }
    #alert { height: 1; padding: 0 1; display: none; }
    #filter { height: 3; }
    #requests { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("p", "pause", "Pause"),
        Binding("p", "resume", "Resume"),
        Binding("slash", "focus_filter", "Filter"),
        Binding("escape", "close_details", "Close details"),
        Binding("c", "clear", "Clear"),
    ]

    def __init__(self, source: RecordSource, *, max_rows: int = 5000, trim_to: int | None = None,
                 bodies_kept: int = 1000, flush_s: float = 0.25, filter_delay_s: float = 0.15) -> None:
        super().__init__()
        self.source = source
        self.feed = Feed(max_rows, bodies_kept)
        self.trim_to = max(1, min(max_rows, trim_to if trim_to is not None else max_rows // 2))
        self.flush_s = flush_s
        self.filter_delay_s = filter_delay_s
        self.connection: Status | None = None
        self.query_text = ""
        self._filter_timer: Timer | None = None
        self._counts = ""
        # The widgets, made here once: the flush timer and the source's worker may still touch them while the app
        # shuts down, after the screen has let go of them.
        self._connection_bar = Static(id="connection")
        self._counts_bar = Static(id="counts")
        self._alert_line = Static(id="alert")
        self.alerts: deque[Alert] = deque(maxlen=ALERTS_KEPT)
        self.alerts_seen = 0
        self._filter = FilterInput(placeholder="filter: alias, target, team, key, status, error …", id="filter")
        self._table = RequestTable(id="requests")
        self._detail = DetailPane(id="detail")

    # --- layout and startup -------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="bar"):
            yield self._connection_bar
            yield self._counts_bar
        yield self._alert_line
        yield self._filter
        yield self._table
        yield self._detail
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.source.label
        self._show_connection()
        self._show_counts()
        self.table.focus()
        self.set_interval(self.flush_s, self.flush)
        self.run_worker(self._consume(), name="source", group="source", exclusive=True, exit_on_error=False)

    @property
    def table(self) -> RequestTable:
        return self._table

    @property
    def detail(self) -> DetailPane:
        return self._detail

    # --- the source ---------------------------------------------------------------------------------------------

    async def _consume(self) -> None:
        async with contextlib.aclosing(self.source.events()) as events:
            async for event in events:
                if isinstance(event, Status):
                    self.set_connection(event)
                elif isinstance(event, Alert):
                    self.show_alert(event)
                else:
                    self.feed.receive(event)
        self.set_connection(Status("disconnected", f"{self.source.label}: the source has ended"))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "source" and event.state == WorkerState.ERROR:
            self.set_connection(Status("disconnected", f"the source failed: {event.worker.error}"))

    def set_connection(self, status: Status) -> None:
        """Show ``status`` in the connection bar."""
        self.connection = status
        self._show_connection()

    def show_alert(self, alert: Alert) -> None:
        """Notify ``alert`` and put it in the alert line."""
        self.alerts.append(alert)
        self.alerts_seen += 1
        moment = alert.record.get("time")
        when = time.strftime("%H:%M:%S", time.localtime(moment)) if isinstance(moment, int | float) else ""
        more = f"  ({self.alerts_seen} alerts)" if self.alerts_seen > 1 else ""
        self._alert_line.update(Text(f"▲ {when} {alert.kind}: {alert.text}{more}", style="bold black on yellow"))
        self._alert_line.display = True
        self.notify(alert.text, title=f"llmgw {alert.kind} alert", severity="warning", timeout=10)

    @property
    def alert_text(self) -> str:
        """The alert line's text, as shown ("" before the first alert)."""
        return str(self._alert_line.render()) if self.alerts else ""

    def _show_connection(self) -> None:
        status = self.connection
        if status is None:
            text = Text(f"… connecting to {self.source.label}", style="yellow")
        elif status.connected:
            text = Text(f"● {status.detail or 'connected'}", style="green")
        else:
            text = Text(f"✕ {status.detail or 'disconnected'}", style="bold red")
        self._connection_bar.update(text)

    @property
    def connection_text(self) -> str:
        """The connection bar's text, as shown."""
        return str(self._connection_bar.render())

    @property
    def counts_text(self) -> str:
        """The counts bar's text (rows shown, records received, the pause indicator), as shown."""
        return self._counts

    def _show_counts(self) -> None:
        parts = [f"{self.table.row_count} shown", f"{self.feed.received} received"]
        if self.feed.paused:
            parts.insert(0, f"paused — {self.feed.held_total} new")
        counts = " · ".join(parts)
        if counts != self._counts:
            self._counts = counts
            style = "bold black on yellow" if self.feed.paused else "dim"
            self._counts_bar.update(Text(counts, style=style))

    # --- moving records into the table --------------------------------------------------------------------------

    def flush(self) -> None:
        """Move what arrived since the last flush into the table (called by the timer; tests may call it)."""
        batch = self.feed.take()
        if batch:
            self._show_batch(batch)
        self._show_counts()

    def _show_batch(self, batch: list[Entry]) -> None:
        query = self.query_text
        new = [e for e in batch if matches(e, query)] if query.strip() else batch
        if not new:
            return
        table = self.table
        if table.planned_rows + len(new) > self.feed.max_rows:
            table.replace(self.feed.matching(query, limit=self.trim_to))
        else:
            table.prepend(new)

    # --- filter -------------------------------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "filter":
            return
        self.query_text = event.value
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(self.filter_delay_s, self.apply_filter)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the filter box: apply it at once, and open the first (newest) match's details."""
        if event.input.id == "filter":
            self.apply_filter()
            self.table.focus()
            if self.table.row_count:
                self.table.move_cursor(row=0, animate=False)
                self._open(self.table.cursor_entry())

    def apply_filter(self) -> None:
        """Show the stored records that match the filter (now, rather than after the typing delay)."""
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
        self.table.replace(self.feed.matching(self.query_text))
        self._show_counts()

    # --- details ------------------------------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self._open(self.table.entry(event.row_key))

    def _open(self, entry: Entry | None) -> None:
        if entry is not None:
            self.detail.show(entry)
            self.refresh_bindings()

    # --- actions ------------------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pause":
            return not self.feed.paused
        if action == "resume":
            return self.feed.paused
        if action == "close_details":
            return self.detail.is_open
        return True

    def action_pause(self) -> None:
        """Hold arriving records until resumed."""
        self.feed.pause()
        self._show_counts()
        self.refresh_bindings()

    def action_resume(self) -> None:
        """Show the held records and carry on."""
        self.feed.resume()
        self.flush()
        self.refresh_bindings()

    def action_focus_filter(self) -> None:
        self._filter.focus()

    def action_focus_table(self) -> None:
        self.table.focus()

    def action_close_details(self) -> None:
        self.detail.close()
        self.table.focus()
        self.refresh_bindings()

    def action_clear(self) -> None:
        """Forget every record shown, stored or held."""
        self.feed.clear()
        self.table.replace([])
        self.detail.close()
        self._show_counts()
        self.refresh_bindings()


def make_app(source: RecordSource, *, max_rows: int = 5000, trim_to: int | None = None, bodies_kept: int = 1000,
             flush_s: float = 0.25, filter_delay_s: float = 0.15) -> TailApp:
    """The tail application over ``source``.

    ``max_rows``: most rows shown (and records kept); ``trim_to``: rows kept when trimming (default half);
    ``bodies_kept``: newest records whose bodies stay in memory; ``flush_s``: how often arrivals reach the table;
    ``filter_delay_s``: typing pause before the filter applies.
    """
    return TailApp(source, max_rows=max_rows, trim_to=trim_to, bodies_kept=bodies_kept, flush_s=flush_s,
                   filter_delay_s=filter_delay_s)
