"""Spend reports over the request log: grouped totals, spend anomalies and budget usage. Pure functions of a
database connection and a time window; no printing, no profile loading (that is :mod:`llmgw.cli.cost`'s job).

Contracts:
- :func:`build_report` groups the ``requests`` table with one SQL ``GROUP BY``. Group values come back as text;
  an empty team/key/alias/target/provider is shown as ``"-"``, and so is "no tag".
- ``tag``: a request with several tags counts in each of its tags' groups (once per distinct tag), so with
  ``tag`` among the fields the groups' sum can exceed the total.
- ``token_type``: a request counts in the group of each token type of its logged ``cost_breakdown`` (``input``,
  ``cached_input``, ``cache_write``, ``cache_write_1h``, ``output``, ``reasoning``) with that part of its cost and
  the tokens of that type (input-side types in ``input_tokens``, output-side in ``output_tokens``; ``cache_write``
  counts the 1-hour writes' tokens too, as the log does not split them); a request without a breakdown is in
  group ``unpriced`` when its target had no price, else ``-`` (cache hits, failures, free targets). Costs and
  tokens add up to the total; request counts do not.
- ``unpriced``: every group counts the requests whose target had no price (their cost is unknown, logged as 0).
- :attr:`Report.total` always counts every request once and equals the sum of the logged per-request costs in the
  window.
- Anomalies (:class:`AnomalyRule`): a group is flagged when its spend in the last period (the last 24 h of the
  window; with ``day`` among the fields, the window's last UTC day) is at least ``ratio`` times its own daily
  average over the rest of the window *and* at least ``min_increase_usd`` above it. The baseline starts at the
  window start or at the window's first logged request, whichever is later, and must cover at least one full
  day; otherwise nothing is flagged.
- Budgets (:func:`budget_lines`): what teams and keys declared in the profile spent in the current UTC day and
  month, against their ``budget_usd = {daily, monthly}``. Keys are matched on the log's ``key`` column by the
  key's name in the profile (``[keys.NAME]``) or its ``id`` when one is given.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Any

FIELDS: tuple[str, ...] = ("team", "key", "model", "target", "provider", "day", "tag", "token_type")
DAY_S = 86400.0

# SQL for each --by field over the source rows (aliased ``s``).
_EXPR: Mapping[str, str] = MappingProxyType({
    "team": "CASE WHEN s.team = '' THEN '-' ELSE s.team END",
    "key": "CASE WHEN s.\"key\" = '' THEN '-' ELSE s.\"key\" END",
    "model": "CASE WHEN s.alias = '' THEN '-' ELSE s.alias END",
    "target": "CASE WHEN s.target = '' THEN '-' ELSE s.target END",
    "provider": "CASE WHEN s.provider = '' THEN '-' ELSE s.provider END",
    "day": "strftime('%Y-%m-%d', s.time, 'unixepoch')",
    "tag": "s.tag",
    "token_type": "s.token_type",
})
_COLUMNS = ("id, time, team, \"key\", alias, target, provider, input_tokens, output_tokens, cost_usd, saved_usd,"
            " unpriced")
# With token_type: one row per (request, breakdown entry); a request without a breakdown keeps one row.
_BY_TYPE = MappingProxyType({
    "input_tokens": "CASE WHEN b.key IS NULL THEN r.input_tokens WHEN b.key = 'input' THEN r.input_tokens"
                    " - r.cached_tokens - r.cache_write_tokens WHEN b.key = 'cached_input' THEN r.cached_tokens"
                    " WHEN b.key = 'cache_write' THEN r.cache_write_tokens ELSE 0 END",
    "output_tokens": "CASE WHEN b.key IS NULL THEN r.output_tokens WHEN b.key = 'output' THEN r.output_tokens"
                     " - r.reasoning_tokens WHEN b.key = 'reasoning' THEN r.reasoning_tokens ELSE 0 END",
    "cost_usd": "CASE WHEN b.key IS NULL THEN r.cost_usd ELSE b.value END",
    "saved_usd": "CASE WHEN b.key IS NULL THEN r.saved_usd ELSE 0 END",
})
_TOKEN_TYPE = ("CAST(COALESCE(b.key, CASE WHEN r.unpriced THEN 'unpriced' ELSE '-' END) AS TEXT) AS token_type")


@dataclass(frozen=True, slots=True)
class AnomalyRule:
    """When a group's recent spend counts as an anomaly (see the module docstring)."""

    ratio: float = 3.0
    min_increase_usd: float = 1.0
    min_baseline_days: float = 1.0

    def describe(self) -> str:
        return (f"spend in the last period ≥ {self.ratio:g}x the group's daily average over the rest of the"
                f" window and ≥ ${self.min_increase_usd:g} above it")

    def flags(self, recent: float, baseline_per_day: float) -> bool:
        """True when ``recent`` (one period's spend) is far above ``baseline_per_day``."""
        return recent >= self.ratio * baseline_per_day and recent - baseline_per_day >= self.min_increase_usd


@dataclass(frozen=True, slots=True)
class Group:
    """One row of a report: the values of the ``--by`` fields (in order) and what the group spent."""

    values: tuple[str, ...]
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    anomaly: bool = False
    recent_usd: float = 0.0     # spend in the window's last 24 h (used for the anomaly check)
    before_usd: float = 0.0     # spend before that
    saved_usd: float = 0.0      # what cache hits would have cost
    unpriced: int = 0           # requests whose target had no price (cost unknown, counted as 0)


@dataclass(frozen=True, slots=True)
class Report:
    """A grouped spend report over ``[since, until)`` (UNIX seconds)."""

    fields: tuple[str, ...]
    groups: tuple[Group, ...]
    total: Group
    since: float
    until: float
    rule: AnomalyRule

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per group: the ``--by`` fields, ``requests``, ``input_tokens``, ``output_tokens``,
        ``cost_usd``, ``saved_usd``, ``unpriced`` and ``anomaly`` (the stable machine-readable shape of
        ``llmgw cost report``)."""
        return [{**dict(zip(self.fields, g.values, strict=True)), "requests": g.requests,
                 "input_tokens": g.input_tokens, "output_tokens": g.output_tokens,
                 "cost_usd": round(g.cost_usd, 10), "saved_usd": round(g.saved_usd, 10), "unpriced": g.unpriced,
                 "anomaly": g.anomaly}
                for g in self.groups]

    def anomaly_flags(self) -> dict[str, bool]:
        """``{"team=search,model=fast": True, ...}`` for every group: the labels of ``llmgw_spend_anomaly``."""
        return {group_label(self.fields, g.values): g.anomaly for g in self.groups}


def group_label(fields: Sequence[str], values: Sequence[str]) -> str:
    """A group's name as one string: ``field=value`` pairs joined by commas (``"all"`` with no fields)."""
    return ",".join(f"{f}={v}" for f, v in zip(fields, values, strict=True)) or "all"


def parse_fields(values: Iterable[str]) -> tuple[str, ...]:
    """Normalise ``--by`` values (case-insensitive, duplicates dropped, order kept); ``ValueError`` names the
    accepted fields for an unknown one."""
    fields: list[str] = []
    for value in values:
        field = value.strip().lower()
        if field not in FIELDS:
            raise ValueError(f"unknown field {value!r}; expected one of {', '.join(FIELDS)}")
        if field not in fields:
            fields.append(field)
    return tuple(fields)


# --- grouping --------------------------------------------------------------------------------------------------


def _source(with_tags: bool, with_types: bool = False) -> str:
    """The rows in the window (two ``?`` parameters: since, until), one per request, or one per (request, tag)
    and/or per (request, token type) (see the module docstring)."""
    if not with_tags and not with_types:
        return f"(SELECT {_COLUMNS} FROM requests WHERE time >= ? AND time < ?)"
    names = [c.strip() for c in _COLUMNS.split(",")]
    cols = [f"{_BY_TYPE[c]} AS {c}" if with_types and c in _BY_TYPE else f"r.{c}" for c in names]
    joins = ""
    if with_types:
        cols.append(_TOKEN_TYPE)
        joins += " LEFT JOIN json_each(r.cost_breakdown) AS b"
    if with_tags:
        cols.append("CAST(COALESCE(j.value, '-') AS TEXT) AS tag")
        joins += " LEFT JOIN json_each(r.tags) AS j"
    return f"(SELECT DISTINCT {', '.join(cols)} FROM requests AS r{joins} WHERE r.time >= ? AND r.time < ?)"


def _sums(cut: float) -> tuple[str, list[float]]:
    return ("COUNT(*), COALESCE(SUM(s.input_tokens), 0), COALESCE(SUM(s.output_tokens), 0),"
            " COALESCE(SUM(s.cost_usd), 0.0), COALESCE(SUM(CASE WHEN s.time >= ? THEN s.cost_usd ELSE 0 END), 0.0),"
            " COALESCE(SUM(CASE WHEN s.time < ? THEN s.cost_usd ELSE 0 END), 0.0), COALESCE(SUM(s.saved_usd), 0.0),"
            " COALESCE(SUM(s.unpriced), 0)",
            [cut, cut])


def spend_by(db: sqlite3.Connection, fields: Sequence[str], since: float, until: float,
             *, period_s: float = DAY_S) -> list[Group]:
    """Every group's spend in ``[since, until)``; ``recent_usd`` is its spend in the last ``period_s``."""
    exprs = [_EXPR[f] for f in fields]
    sums, sum_params = _sums(until - period_s)
    select = ", ".join([*exprs, sums])
    sql = f"SELECT {select} FROM {_source('tag' in fields, 'token_type' in fields)} AS s"
    if exprs:
        sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(exprs)))
    n = len(fields)
    groups = []
    for row in db.execute(sql, [*sum_params, since, until]).fetchall():
        if row[n] == 0:
            continue  # an aggregate over no rows
        groups.append(Group(values=tuple(str(v) for v in row[:n]), requests=row[n], input_tokens=row[n + 1],
                            output_tokens=row[n + 2], cost_usd=row[n + 3], recent_usd=row[n + 4],
                            before_usd=row[n + 5], saved_usd=row[n + 6], unpriced=row[n + 7]))
    return groups


def window_total(db: sqlite3.Connection, since: float, until: float) -> tuple[Group, float | None]:
    """Every request in the window counted once, and the time of the first one (None when there is none)."""
    row = db.execute("SELECT COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),"
                     " COALESCE(SUM(cost_usd), 0.0), MIN(time), COALESCE(SUM(saved_usd), 0.0),"
                     " COALESCE(SUM(unpriced), 0) FROM requests"
                     " WHERE time >= ? AND time < ?", (since, until)).fetchone()
    return Group(values=(), requests=row[0], input_tokens=row[1], output_tokens=row[2], cost_usd=row[3],
                 saved_usd=row[5], unpriced=row[6]), row[4]


def _sort(fields: Sequence[str], groups: list[Group]) -> list[Group]:
    """Biggest spend first; with ``day`` among the fields, by day first (the trend), then by spend."""
    if "day" in fields:
        at = fields.index("day")
        return sorted(groups, key=lambda g: (g.values[at], -g.cost_usd, g.values))
    return sorted(groups, key=lambda g: (-g.cost_usd, g.values))


# --- anomalies -------------------------------------------------------------------------------------------------


def flag_rolling(groups: list[Group], baseline_start: float, cut: float, rule: AnomalyRule) -> list[Group]:
    """Without ``day``: compare each group's last 24 h (``recent_usd``) with its daily average before ``cut``."""
    days = (cut - baseline_start) / DAY_S
    if days < rule.min_baseline_days:
        return groups
    return [replace(g, anomaly=rule.flags(g.recent_usd, g.before_usd / days)) for g in groups]


def _utc_day(moment: float) -> date:
    return datetime.fromtimestamp(moment, UTC).date()


def flag_last_day(fields: Sequence[str], groups: list[Group], baseline_start: float, until: float,
                  rule: AnomalyRule) -> list[Group]:
    """With ``day``: flag a group's row for the window's last UTC day when it is far above that group's average
    over the earlier days of the window (days without spend count as zero)."""
    at = fields.index("day")
    last_day = _utc_day(until - 1e-6)
    days = (last_day - _utc_day(baseline_start)).days
    if days < rule.min_baseline_days:
        return groups
    last = last_day.isoformat()
    earlier: dict[tuple[str, ...], float] = {}
    for g in groups:
        rest = g.values[:at] + g.values[at + 1:]
        if g.values[at] != last:
            earlier[rest] = earlier.get(rest, 0.0) + g.cost_usd
    flagged = []
    for g in groups:
        if g.values[at] == last:
            baseline = earlier.get(g.values[:at] + g.values[at + 1:], 0.0) / days
            g = replace(g, anomaly=rule.flags(g.cost_usd, baseline))
        flagged.append(g)
    return flagged


def build_report(db: sqlite3.Connection, fields: Sequence[str], since: float, until: float,
                 rule: AnomalyRule | None = None) -> Report:
    """The grouped report for ``[since, until)``, sorted, with anomalies flagged (see the module docstring)."""
    rule = rule or AnomalyRule()
    fields = tuple(fields)
    groups = spend_by(db, fields, since, until)
    total, first = window_total(db, since, until)
    if first is not None:
        baseline_start = max(since, first)
        if "day" in fields:
            groups = flag_last_day(fields, groups, baseline_start, until, rule)
        else:
            groups = flag_rolling(groups, baseline_start, until - DAY_S, rule)
    return Report(fields=fields, groups=tuple(_sort(fields, groups)), total=total, since=since, until=until,
                  rule=rule)


# --- budgets ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """One team's or key's spend in one budget period (``daily`` or ``monthly``)."""

    kind: str                   # "team" | "key"
    name: str
    team: str                   # the key's team; the team itself for a team line
    period: str                 # "daily" | "monthly"
    spent_usd: float
    limit_usd: float | None     # None: no budget declared for this period
    resets_at: datetime

    @property
    def percent_used(self) -> float | None:
        if self.limit_usd is None:
            return None
        if self.limit_usd <= 0:
            return 100.0 if self.spent_usd > 0 else 0.0
        return 100.0 * self.spent_usd / self.limit_usd

    def record(self) -> dict[str, Any]:
        """The JSON-ready shape of ``llmgw cost budgets --format json``."""
        percent = self.percent_used
        return {"kind": self.kind, "name": self.name, "team": self.team, "period": self.period,
                "spent_usd": round(self.spent_usd, 10), "limit_usd": self.limit_usd,
                "percent_used": None if percent is None else round(percent, 2),
                "resets_at": self.resets_at.isoformat()}


def period_bounds(now: float) -> dict[str, tuple[datetime, datetime]]:
    """``{"daily": (today 00:00 UTC, tomorrow 00:00), "monthly": (1st of this month, 1st of next)}``."""
    moment = datetime.fromtimestamp(now, UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    return {"daily": (day, day + timedelta(days=1)), "monthly": (month, next_month)}


def spent_since(db: sqlite3.Connection | None, column: str, since: float) -> dict[str, float]:
    """Spend per value of ``column`` (``team`` or ``key``) since ``since``; empty without a database."""
    if db is None:
        return {}
    if column not in ("team", "key"):
        raise ValueError(f"cannot total spend by {column!r}")
    sql = f'SELECT "{column}", SUM(cost_usd) FROM requests WHERE time >= ? GROUP BY "{column}"'
    return {row[0]: row[1] for row in db.execute(sql, (since,)).fetchall()}


def _limits(entry: Mapping[str, Any]) -> dict[str, float | None]:
    budget = entry.get("budget_usd")
    budget = budget if isinstance(budget, Mapping) else {}
    out: dict[str, float | None] = {}
    for period in ("daily", "monthly"):
        value = budget.get(period)
        out[period] = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    return out


def budget_lines(db: sqlite3.Connection | None, teams: Mapping[str, Any], keys: Mapping[str, Any],
                 now: float) -> list[BudgetLine]:
    """A line per (team, period) then per (key, period) for the profile's ``[teams.*]`` and ``[keys.*]``;
    entries that are not tables are skipped."""
    bounds = period_bounds(now)
    spent = {(column, period): spent_since(db, column, start.timestamp())
             for column in ("team", "key") for period, (start, _) in bounds.items()}
    lines = []
    for name, entry in teams.items():
        if isinstance(entry, Mapping):
            for period, limit in _limits(entry).items():
                lines.append(BudgetLine("team", name, name, period, spent[("team", period)].get(name, 0.0),
                                        limit, bounds[period][1]))
    for name, entry in keys.items():
        if isinstance(entry, Mapping):
            ident = str(entry.get("id") or name)
            team = str(entry.get("team") or "")
            for period, limit in _limits(entry).items():
                lines.append(BudgetLine("key", name, team, period, spent[("key", period)].get(ident, 0.0),
                                        limit, bounds[period][1]))
    return lines
