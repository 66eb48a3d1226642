"""Budget alerts: every team's and key's spend in its current budget periods, and the shares of it crossed.

Contract:
- :class:`BudgetWatch` knows the teams and profile keys that declare a ``budget_usd`` and what each has spent in the
  current UTC day and month: the spend in the request log as of the last :meth:`BudgetWatch.sync` (the log is the
  ledger, shared by every worker and every restart) plus the finished requests this process has seen since
  (:meth:`BudgetWatch.observe`, fed from the log-row listener in batches). A row counts towards its owner's period by
  its own ``time``; rows of the batch being synced that the log does not hold yet are counted once, on top.
- A budget that refuses a request (a ``budget_exceeded`` row whose story names it) counts as used up for the rest of
  its period, whatever its spend: with reservations, sequential traffic stops just short of the limit, so "100%"
  would otherwise never come. Shares above 1 still need the spend.
- :meth:`BudgetWatch.crossings` yields, per watched owner and budget period, the highest share of ``at`` that its
  spend has reached (the alert to send) with the lower ones reached too (claimed with it, as ``covered``, so they are
  not sent late). A budget of 0 is never alerted on (it refuses everything anyway).
- Alert keys: ``budget:<entry>:<team|key>:<name>:<daily|monthly>:<share>``; the period is the counter's
  (``day:2026-12-03``, ``month:2026-12``): each share fires once per budget period.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..profile import AlertConfig, Budget, KeyConfig, TeamConfig
from ..stages.limits import periods
from .model import Alert, usd, watches

Owner = tuple[str, str]                 # ("team", "search") or ("key", "ci")
Counter = tuple[str, str, str]          # (kind, name, period suffix)


def period_starts(now: float) -> list[tuple[str, str, float, str]]:
    """``(period, suffix, start, resets)`` for the UTC day and month around ``now``."""
    out = []
    for period, suffix, resets, _ttl in periods(now):
        moment = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        if period == "monthly":
            moment = moment.replace(day=1)
        out.append((period, suffix, moment.timestamp(), resets))
    return out


class BudgetWatch:
    """Spend per budget owner and period (see the module contract)."""

    def __init__(self, teams: Mapping[str, TeamConfig], keys: Mapping[str, KeyConfig]) -> None:
        self.budgets: dict[Owner, Budget] = {}
        self.team_of: dict[Owner, str] = {}
        for name, team in teams.items():
            if team.budget.daily is not None or team.budget.monthly is not None:
                self.budgets[("team", name)] = team.budget
                self.team_of[("team", name)] = name
        for name, key in keys.items():
            if key.budget.daily is not None or key.budget.monthly is not None:
                self.budgets[("key", name)] = key.budget
                self.team_of[("key", name)] = key.team
        self._labels = {f"{kind} {name} {period} budget": (kind, name, period)
                        for kind, name in self.budgets for period in ("daily", "monthly")}
        self._refused: set[Counter] = set()
        self._baseline: dict[Counter, float] = {}
        self._local: dict[Counter, float] = {}
        self._suffixes: tuple[int, tuple[str, ...]] = (-1, ())

    def _suffixes_at(self, moment: float) -> tuple[str, ...]:
        second = int(moment)
        if self._suffixes[0] != second:
            self._suffixes = (second, tuple(suffix for _p, suffix, _r, _t in periods(second)))
        return self._suffixes[1]

    def observe(self, row: Mapping[str, Any]) -> None:
        """Count a finished request's cost for its team and key (a few dict updates; nothing for free rows)."""
        self._count(self._local, row)

    def _count(self, into: dict[Counter, float], row: Mapping[str, Any]) -> None:
        cost = row.get("cost_usd") or 0.0
        if cost <= 0:
            if row.get("error") == "budget_exceeded":
                self._note_refusal(row)
            return
        for owner in (("team", row.get("team") or ""), ("key", row.get("key") or "")):
            if owner in self.budgets:
                for suffix in self._suffixes_at(row.get("time") or 0.0):
                    counter = (owner[0], owner[1], suffix)
                    into[counter] = into.get(counter, 0.0) + cost

    def _note_refusal(self, row: Mapping[str, Any]) -> None:
        for note in row.get("story") or ():
            if note.get("stage") == "limits" and note.get("event") == "refused" and note.get("budget"):
                found = self._labels.get(str(note.get("limit") or "").rsplit(" (", 1)[0])
                if found is not None:
                    kind, name, period = found
                    suffix = dict(zip(("daily", "monthly"), self._suffixes_at(row.get("time") or 0.0),
                                      strict=True))[period]
                    self._refused.add((kind, name, suffix))

    def read_log(self, db: sqlite3.Connection, now: float, batch: Sequence[Mapping[str, Any]]) -> dict[Counter, float]:
        """The spend of every owner in the current periods as the log holds it, plus the rows of ``batch`` it does
        not hold yet (blocking: run it in a thread)."""
        out: dict[Counter, float] = {}
        if not self.budgets:
            return out
        db.execute("BEGIN")
        try:
            for _period, suffix, start, _resets in period_starts(now):
                for column in ("team", "key"):
                    sql = (f'SELECT "{column}", SUM(MAX(cost_usd, 0)) FROM requests WHERE time >= ?'
                           f' GROUP BY "{column}"')
                    for name, spent in db.execute(sql, (start,)):
                        if (column, name) in self.budgets:
                            out[(column, name, suffix)] = float(spent or 0.0)
            ids = [str(r.get("id")) for r in batch if (r.get("cost_usd") or 0) > 0]
            logged: set[str] = set()
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                marks = ", ".join("?" * len(chunk))
                logged.update(r[0] for r in db.execute(f"SELECT id FROM requests WHERE id IN ({marks})", chunk))
        finally:
            db.execute("COMMIT")
        for row in batch:
            if str(row.get("id")) not in logged:
                self._count(out, row)
        return out

    def synced(self, spend: dict[Counter, float]) -> None:
        """Take ``spend`` (from :meth:`read_log`) as the truth; rows observed from now on are added to it."""
        self._baseline = spend
        self._local = {}
        current = set(self._suffixes_at(time.time()))
        self._refused = {c for c in self._refused if c[2] in current}

    def spent(self, kind: str, name: str, suffix: str) -> float:
        counter = (kind, name, suffix)
        return self._baseline.get(counter, 0.0) + self._local.get(counter, 0.0)

    def watched(self, config: AlertConfig) -> Iterator[Owner]:
        """The owners ``config``'s ``teams``/``keys`` filters select (every budget owner without filters)."""
        for owner in self.budgets:
            if watches(config.teams, config.keys, owner[0], owner[1], self.team_of[owner]):
                yield owner

    def crossings(self, config: AlertConfig, now: float) -> Iterable[tuple[Alert, list[Alert]]]:
        """``(the alert for the highest share reached, the alerts for the lower shares reached)`` per owner and
        period (see the module contract)."""
        starts = period_starts(now)
        for owner in self.watched(config):
            kind, name = owner
            for period, suffix, _start, resets in starts:
                limit = getattr(self.budgets[owner], period)
                if not limit:
                    continue
                spent = self.spent(kind, name, suffix)
                refused = (kind, name, suffix) in self._refused
                reached = [share for share in config.at
                           if spent >= share * limit - 1e-12 or (refused and share <= 1)]
                if not reached:
                    continue
                alerts = [self._alert(config, owner, period, suffix, resets, share, spent, limit, now, refused)
                          for share in reached]
                yield alerts[-1], alerts[:-1]

    def _alert(self, config: AlertConfig, owner: Owner, period: str, suffix: str, resets: str, share: float,
               spent: float, limit: float, now: float, refused: bool) -> Alert:
        kind, name = owner
        subject = f"{kind} {name}"
        percent = f"{share * 100:g}%"
        what = "has used up" if share == 1 else f"has spent {percent} of"
        text = f"{subject} {what} its {period} budget: {usd(spent)} of {usd(limit)} (resets {resets})"
        if refused and share <= 1:
            text = (f"{subject} has used up its {period} budget: {usd(spent)} of {usd(limit)} spent and requests are"
                    f" being refused (resets {resets})")
        facts = {"owner": kind, "name": name, "team": self.team_of[owner], "period": period, "share": share,
                 "spent_usd": round(spent, 10), "limit_usd": limit, "resets_at": resets, "refusing": refused}
        return Alert("budget", f"budget:{config.label}:{kind}:{name}:{period}:{share:g}", suffix, subject, text,
                     config.label, now, facts)
