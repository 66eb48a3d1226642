"""An alert as it is claimed, logged, streamed and posted: :class:`Alert`, its JSON record and its Slack message.

Contract:
- ``key`` and ``period`` identify an alert: the same condition in the same period (``2026-12-03`` for a daily
  budget or an anomaly with ``period = "day"``, ``2026-12`` for a monthly budget) is one alert, sent once however
  often it is seen and by however many workers (see :mod:`.ledger`).
- :meth:`Alert.record` is what ``/admin/events`` sends as ``event: alert`` and what the ledger keeps; it holds names,
  amounts and times, never a secret and never a request body.
- :meth:`Alert.slack` is a Slack-compatible incoming-webhook payload: ``text`` (the fallback every receiver reads)
  and ``blocks`` (a section with the message and a context line), with ``&``, ``<`` and ``>`` escaped as Slack asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: ``kind`` is ``budget``, ``anomaly`` or ``loop``; ``subject`` who it is about (``team search``);
    ``text`` one line for people; ``source`` the ``[[alerts]]`` entry that raised it; ``facts`` the numbers."""

    kind: str
    key: str
    period: str
    subject: str
    text: str
    source: str
    time: float
    facts: Mapping[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The JSON-ready record (see the module contract)."""
        return {"type": "alert", "kind": self.kind, "alert": self.key, "period": self.period,
                "subject": self.subject, "text": self.text, "source": self.source, "time": self.time,
                "facts": dict(self.facts)}

    def slack(self) -> dict[str, Any]:
        """The webhook payload (see the module contract)."""
        when = datetime.fromtimestamp(self.time, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        context = f"llmgw {self.kind} alert · {self.source} · {when}"
        return {"text": f"llmgw: {self.text}",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"*llmgw* {_escape(self.text)}"}},
                           {"type": "context", "elements": [{"type": "mrkdwn", "text": _escape(context)}]}]}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def usd(amount: float) -> str:
    """Dollars for a message: cents from $0.10 up, four decimals below (the record keeps the exact figure)."""
    return f"${amount:,.2f}" if abs(amount) >= 0.1 or amount == 0 else f"${amount:.4f}"


def watches(teams: tuple[str, ...] | None, keys: tuple[str, ...] | None, kind: str, name: str, team: str) -> bool:
    """Whether an entry's ``teams``/``keys`` filters select a group: everyone without filters; a team named in
    ``teams``; a key named in ``keys`` or belonging to a team named in ``teams``."""
    if teams is None and keys is None:
        return True
    if kind == "key" and keys is not None and name in keys:
        return True
    return teams is not None and (name if kind == "team" else team) in teams
