"""Reading a profile's ``[teams.*]`` and ``[keys.*]``: their rate limits, budgets and model allow-lists (problems
recorded on the :class:`~llmgw.profile.checker.Checker` as ``"key.path: what is wrong"``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from .checker import NUMBER, Checker
from .schema import Budget, KeyConfig, TeamConfig


def _limits(c: Checker, raw: dict[str, Any], path: str) -> dict[str, Any]:
    """rpm, tpm, budget_usd and models, shared by teams and keys."""
    out: dict[str, Any] = {}
    for name in ("rpm", "tpm"):
        value = c.get(raw, name, path, int, None)
        c.check(value is None or value >= 0, f"{path}.{name}: must not be negative")
        out[name] = value
    budget = c.table(raw.get("budget_usd"), f"{path}.budget_usd") if "budget_usd" in raw else {}
    c.unknown(budget, f"{path}.budget_usd", {"daily", "monthly"})
    limits = {k: c.get(budget, k, f"{path}.budget_usd", NUMBER, None) for k in ("daily", "monthly")}
    for k, v in limits.items():
        c.check(v is None or v >= 0, f"{path}.budget_usd.{k}: must not be negative")
    out["budget"] = Budget(**{k: None if v is None else float(v) for k, v in limits.items()})
    models = c.get(raw, "models", path, list, None)
    if models is not None:
        c.check(all(isinstance(m, str) for m in models), f"{path}.models: expected an array of alias names")
        models = tuple(m for m in models if isinstance(m, str))
    out["models"] = models
    return out


def read_teams(c: Checker, raw: Any, aliases: Collection[str]) -> dict[str, TeamConfig]:
    teams = {}
    for name, entry in c.table(raw, "teams").items():
        path = f"teams.{name}"
        entry = c.table(entry, path)
        c.unknown(entry, path, {"rpm", "tpm", "budget_usd", "models", "data_class"})
        limits = _limits(c, entry, path)
        for alias in limits["models"] or ():
            c.check(alias in aliases, f"{path}.models: unknown alias {alias!r}")
        teams[name] = TeamConfig(name=name, data_class=c.get(entry, "data_class", path, str, None), **limits)
    return teams


def read_keys(c: Checker, raw: Any, teams: Mapping[str, TeamConfig], aliases: Collection[str]) -> dict[str, KeyConfig]:
    keys = {}
    for name, entry in c.table(raw, "keys").items():
        path = f"keys.{name}"
        entry = c.table(entry, path)
        c.unknown(entry, path, {"key", "team", "rpm", "tpm", "budget_usd", "models"})
        secret = c.secret(entry, "key", path)
        team = c.get(entry, "team", path, str, None)
        if secret is None:
            c.problems.append(f"{path}.key: missing (e.g. key = \"env:LLMGW_{name.upper()}_KEY\")")
        if team is None:
            c.problems.append(f"{path}.team: missing (the [teams.*] this key belongs to)")
        elif team not in teams:
            c.problems.append(f"{path}.team: unknown team {team!r} (declared: {', '.join(teams) or 'none'})")
        limits = _limits(c, entry, path)
        for alias in limits["models"] or ():
            c.check(alias in aliases, f"{path}.models: unknown alias {alias!r}")
        if secret is not None and team is not None:
            keys[name] = KeyConfig(name=name, key=secret, team=team, **limits)
    return keys
