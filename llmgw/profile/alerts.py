"""Reading a profile's ``[[alerts]]``: each entry's kind, its webhook (a secret reference, never shown), its filters
and the thresholds of its kind (problems recorded on the :class:`~llmgw.profile.checker.Checker` as
``"alerts[i].key: what is wrong"``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .checker import NUMBER, Checker, type_name
from .schema import ALERT_KINDS, ALERT_PERIODS, AlertConfig, Secret, TeamConfig

_ALERT_COMMON = {"kind", "name", "webhook", "teams", "keys"}
_ALERT_KEYS = {"budget": _ALERT_COMMON | {"at"},
               "anomaly": _ALERT_COMMON | {"period", "factor", "window", "history", "min_usd", "by", "loop_count",
                                           "loop_window"}}


def _alert_duration(c: Checker, raw: Mapping[str, Any], key: str, path: str, default: float) -> float:
    from ..durations import parse_duration

    text = c.get(raw, key, path, str, None)
    if text is None:
        return default
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        c.problems.append(f"{path}.{key}: {exc}")
        return default
    c.check(seconds > 0, f"{path}.{key}: must be longer than 0")
    return seconds


def _alert_names(c: Checker, raw: Mapping[str, Any], key: str, path: str) -> tuple[str, ...] | None:
    names = c.get(raw, key, path, list, None)
    if names is None:
        return None
    if not all(isinstance(n, str) and n for n in names):
        c.problems.append(f"{path}.{key}: expected an array of names")
        return None
    return tuple(names)


def read_alerts(c: Checker, raw: Any, teams: Mapping[str, TeamConfig]) -> tuple[AlertConfig, ...]:
    """``[[alerts]]``: each entry's kind, its webhook (a secret reference, never shown), its filters, and the
    thresholds of its kind; problems named ``alerts[i].key``."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        c.problems.append(f"alerts: expected an array of tables ([[alerts]]), got {type_name(raw)}")
        return ()
    out = []
    for i, entry in enumerate(raw):
        path = f"alerts[{i}]"
        if not isinstance(entry, dict):
            c.problems.append(f"{path}: expected a table, got {type_name(entry)}")
            continue
        kind = c.get(entry, "kind", path, str, None)
        if kind not in ALERT_KINDS:
            c.problems.append(f"{path}.kind: " + ("missing" if kind is None else f"unknown kind {kind!r}")
                              + f" (expected {' or '.join(repr(k) for k in ALERT_KINDS)})")
            continue
        before = len(c.problems)
        c.unknown(entry, path, _ALERT_KEYS[kind])
        d = AlertConfig(index=i, kind=kind)
        webhook = c.get(entry, "webhook", path, str, None)
        c.check(webhook != "", f'{path}.webhook: must not be empty (e.g. webhook = "env:SLACK_WEBHOOK_URL")')
        team_names = _alert_names(c, entry, "teams", path)
        for team in team_names or ():
            c.check(team in teams, f"{path}.teams: unknown team {team!r} (declared: {', '.join(teams) or 'none'})")
        options: dict[str, Any] = {
            "name": c.get(entry, "name", path, str, ""), "webhook": Secret(webhook) if webhook else None,
            "teams": team_names, "keys": _alert_names(c, entry, "keys", path)}
        if kind == "budget":
            at = c.get(entry, "at", path, list, list(d.at))
            if not at or not all(isinstance(x, NUMBER) and not isinstance(x, bool) for x in at):
                c.problems.append(f"{path}.at: expected a non-empty array of budget shares (e.g. [0.5, 0.8, 1.0])")
            elif not all(0 < x <= 10 for x in at):
                c.problems.append(f"{path}.at: every share must be above 0 and at most 10 (1.0 = the whole budget)")
            else:
                options["at"] = tuple(sorted({float(x) for x in at}))
        else:
            period = c.get(entry, "period", path, str, d.period)
            c.check(period in ALERT_PERIODS,
                    f"{path}.period: expected {', '.join(repr(p) for p in ALERT_PERIODS)}, got {period!r}")
            factor = float(c.get(entry, "factor", path, NUMBER, d.factor))
            c.check(factor > 1, f"{path}.factor: must be above 1 (how many times the usual spend), got {factor:g}")
            min_usd = float(c.get(entry, "min_usd", path, NUMBER, d.min_usd))
            c.check(min_usd >= 0, f"{path}.min_usd: must not be negative")
            window = _alert_duration(c, entry, "window", path, d.window_s)
            history = _alert_duration(c, entry, "history", path, d.history_s)
            c.check(history >= 2 * window, f"{path}.history: must be at least twice the window")
            by = _alert_names(c, entry, "by", path) or d.by
            c.check(bool(by) and all(b in ("team", "key") for b in by),
                    f'{path}.by: expected an array of "team" and/or "key"')
            loop_count = c.get(entry, "loop_count", path, int, d.loop_count)
            c.check(loop_count == 0 or loop_count >= 2, f"{path}.loop_count: must be 0 (off) or at least 2")
            options.update(period=period, factor=factor, min_usd=min_usd, window_s=window, history_s=history,
                           by=tuple(dict.fromkeys(by)), loop_count=loop_count,
                           loop_window_s=_alert_duration(c, entry, "loop_window", path, d.loop_window_s))
        if len(c.problems) == before:
            out.append(AlertConfig(index=i, kind=kind, **options))
    return tuple(out)
