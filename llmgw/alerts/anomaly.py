"""Spend anomalies: a team's or key's spend over the last ``window`` far above what its own history spends in one.

Contract (for one ``kind = "anomaly"`` entry, :class:`~llmgw.profile.AlertConfig`):
- ``recent``: a group's spend in ``[now - window, now)``; ``history``: its spend in ``[now - history, now -
  window)``, over a span that starts at the history's start or the log's first request in it, whichever is later.
  Its usual spend per window is ``history / span * window`` (0 for a group that spent nothing in the history).
- A group is anomalous when ``recent >= factor * usual`` and ``recent - usual >= min_usd``. Nothing is flagged
  until the history span covers a full day (or the whole ``history - window`` when that is shorter): without a
  history there is nothing to compare with.
- Groups are read from the request log (:func:`read_spend`, blocking), so they count every worker's requests; rows
  without a team or key (an open proxy) form no group. ``teams``/``keys`` filters select groups as for budgets.
- Alert key ``anomaly:<entry>:<team|key>:<name>``, once per ``period`` (``hour``, ``day`` or ``week``, UTC).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from ..profile import AlertConfig
from .model import Alert, usd, watches

DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class GroupSpend:
    column: str          # "team" | "key"
    name: str
    team: str
    recent_usd: float
    usual_usd: float     # the history's spend per window


def period_label(period: str, now: float) -> str:
    """The UTC hour (``2026-12-03T14``), day (``2026-12-03``) or ISO week (``2026-W49``) around ``now``."""
    moment = datetime.fromtimestamp(now, UTC)
    if period == "hour":
        return moment.strftime("%Y-%m-%dT%H")
    if period == "week":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return moment.strftime("%Y-%m-%d")


def _grouped(db: sqlite3.Connection, column: str, since: float, until: float) -> dict[str, tuple[float, str]]:
    sql = (f'SELECT "{column}", SUM(MAX(cost_usd, 0)), MAX(team) FROM requests WHERE time >= ? AND time < ?'
           f' AND "{column}" != \'\' GROUP BY "{column}"')
    return {row[0]: (float(row[1] or 0.0), row[2] or "") for row in db.execute(sql, (since, until))}


@dataclass(frozen=True, slots=True)
class History:
    """Each group's spend before the window (``past[column][name]``) over ``span`` seconds, read at ``read_at``."""

    read_at: float
    span: float
    past: dict[str, dict[str, float]]


def read_history(db: sqlite3.Connection, config: AlertConfig, now: float) -> History | None:
    """The groups' spend in ``[now - history, now - window)`` (blocking); None while it is too short (see the module
    contract)."""
    cut = now - config.window_s
    start = now - config.history_s
    first = db.execute("SELECT MIN(time) FROM requests WHERE time >= ?", (start,)).fetchone()[0]
    if first is None:
        return None
    span = cut - max(start, float(first))
    if span < min(DAY_S, config.history_s - config.window_s) - 1e-6:
        return None
    past = {column: {name: spent for name, (spent, _team) in _grouped(db, column, start, cut).items()}
            for column in config.by}
    return History(now, span, past)


def read_spend(db: sqlite3.Connection, config: AlertConfig, history: History, now: float) -> list[GroupSpend]:
    """Every group's spend in the last window next to its usual spend per window from ``history`` (blocking)."""
    out = []
    for column in config.by:
        past = history.past.get(column, {})
        for name, (spent, team) in _grouped(db, column, now - config.window_s, now + 1.0).items():
            out.append(GroupSpend(column, name, team, spent, past.get(name, 0.0) / history.span * config.window_s))
    return out


def anomalies(config: AlertConfig, groups: list[GroupSpend], now: float) -> list[Alert]:
    """The alerts for the anomalous groups among ``groups`` (see the module contract)."""
    out = []
    window = _span(config.window_s)
    for g in groups:
        if not watches(config.teams, config.keys, g.column, g.name, g.team):
            continue
        if g.recent_usd < config.factor * g.usual_usd or g.recent_usd - g.usual_usd < config.min_usd:
            continue
        subject = f"{g.column} {g.name}"
        if g.usual_usd > 0:
            times = f"{g.recent_usd / g.usual_usd:.1f}x its usual {usd(g.usual_usd)}"
        else:
            times = f"with nothing spent in the {_span(config.history_s)} before"
        text = f"{subject} spent {usd(g.recent_usd)} in the last {window}, {times} — spend anomaly"
        facts = {"group": g.column, "name": g.name, "team": g.team, "recent_usd": round(g.recent_usd, 10),
                 "usual_usd": round(g.usual_usd, 10), "window_s": config.window_s, "history_s": config.history_s,
                 "factor": config.factor}
        out.append(Alert("anomaly", f"anomaly:{config.label}:{g.column}:{g.name}", period_label(config.period, now),
                         subject, text, config.label, now, facts))
    return out


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
