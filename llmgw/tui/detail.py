"""The detail pane: one request's summary, attempts and (redacted) bodies, hidden until a row is opened.

Contract: :meth:`DetailPane.show` renders an entry and makes the pane visible, scrolled to its top;
:meth:`DetailPane.close` hides it. :attr:`DetailPane.entry` is the entry shown (None while closed).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from .feed import Entry
from .render import detail


class DetailPane(VerticalScroll):
    """A scrollable view of one request (see the module docstring)."""

    DEFAULT_CSS = """
    DetailPane {
        display: none;
        height: 60%;
        border-top: heavy $accent;
        padding: 0 1;
    }
    DetailPane.open {
        display: block;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.entry: Entry | None = None
        self._body = Static(id="detail-body")

    def compose(self) -> ComposeResult:
        yield self._body

    @property
    def is_open(self) -> bool:
        return self.has_class("open")

    def show(self, entry: Entry) -> None:
        """Render ``entry`` and open the pane (a no-op when it already shows that entry)."""
        if self.is_open and self.entry is entry:
            return
        self.entry = entry
        self._body.update(detail(entry))
        self.add_class("open")
        self.scroll_home(animate=False)

    def close(self) -> None:
        """Hide the pane."""
        self.entry = None
        self.remove_class("open")
        self._body.update("")
