"""Reading the request log: the queries behind ``llmgw logs``, ``llmgw why``, ``llmgw replay`` and
``GET /admin/events``, and the records they turn rows into.

Contract: every function takes a SQLite connection from :func:`llmgw.store.log.connect` or, where it says so, a
:class:`~llmgw.store.log_backend.LogReader` (SQLite or PostgreSQL); rows are ``sqlite3.Row`` or dicts, both indexed by
column name. :func:`record_from_row` gives the stable record of ``llmgw logs --format json`` (SPEC §1),
:func:`event_from_row` the shape :meth:`~llmgw.exchange.Exchange.log_row` gives a row. Nothing here writes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson

from .log import COLUMNS, connect

_JSON_COLUMNS = ("attempts_json", "tags", "dropped_params", "findings", "request", "response", "cost_breakdown",
                 "story")


def record_from_row(row: sqlite3.Row, *, bodies: bool = False) -> dict[str, Any]:
    """A stable, JSON-ready record for ``llmgw logs`` (the fields SPEC §1 lists, plus a few more)."""
    from datetime import UTC, datetime

    record = {
        "id": row["id"],
        "time": datetime.fromtimestamp(row["time"], UTC).isoformat(timespec="milliseconds"),
        "alias": row["alias"],
        "target": row["target"],
        "provider": row["provider"],
        "status": row["status"],
        "outcome": row["outcome"],
        "error": row["error"],
        "error_message": row["error_message"],
        "team": row["team"],
        "key": row["key"],
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "cached_tokens": row["cached_tokens"],
        "cost_usd": row["cost_usd"],
        "saved_usd": row["saved_usd"],
        "usage_estimated": bool(row["usage_estimated"]),
        "unpriced": bool(row["unpriced"]),
        "cost_breakdown": orjson.loads(row["cost_breakdown"] or "{}"),
        "latency_ms": row["latency_ms"],
        "overhead_ms": row["overhead_ms"],
        "ttft_ms": row["ttft_ms"],
        "attempts": row["attempts"],
        "cache": row["cache"],
        "tags": orjson.loads(row["tags"]),
        "stream": bool(row["stream"]),
        "client_format": row["client_format"],
        "endpoint": row["endpoint"],
    }
    if bodies:
        record["attempt_log"] = orjson.loads(row["attempts_json"])
        record["dropped_params"] = orjson.loads(row["dropped_params"])
        record["findings"] = orjson.loads(row["findings"])
        record["story"] = orjson.loads(row["story"] or "[]")
        record["request"] = orjson.loads(row["request"]) if row["request"] else None
        record["response"] = orjson.loads(row["response"]) if row["response"] else None
    return record


def where_clause(since: float | None, until: float | None, model: str | None, team: str | None,
           status: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause (``""`` for none) and its parameters for :func:`query` and :func:`count`."""
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append("time >= ?")
        params.append(since)
    if until is not None:
        where.append("time < ?")
        params.append(until)
    if model:
        where.append("(alias = ? OR target = ? OR target LIKE ?)")
        params += [model, model, f"%/{model}"]
    if team:
        where.append("team = ?")
        params.append(team)
    if status:
        clause, values = _status_clause(status)
        where.append(clause)
        params += values
    return (" WHERE " + " AND ".join(where)) if where else "", params


def query(
    db: sqlite3.Connection,
    *,
    since: float | None = None,
    until: float | None = None,
    model: str | None = None,
    team: str | None = None,
    status: str | None = None,
    limit: int | None = 50,
) -> list[sqlite3.Row]:
    """Rows newest first. ``model`` matches the alias or the target; ``status`` is a code (``429``),
    a class (``5xx``) or ``ok``/``error``. ``db`` may also be a :class:`~llmgw.store.log_backend.LogReader`
    (SQLite or PostgreSQL), as for :func:`count`, :func:`find` and :func:`find_all`."""
    if not isinstance(db, sqlite3.Connection):
        return db.query(since=since, until=until, model=model, team=team, status=status, limit=limit)
    where, params = where_clause(since, until, model, team, status)
    sql = f"SELECT * FROM requests{where} ORDER BY time DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return db.execute(sql, params).fetchall()


def count(
    db: sqlite3.Connection,
    *,
    since: float | None = None,
    until: float | None = None,
    model: str | None = None,
    team: str | None = None,
    status: str | None = None,
) -> int:
    """How many rows :func:`query` would return without a limit."""
    if not isinstance(db, sqlite3.Connection):
        return int(db.count(since=since, until=until, model=model, team=team, status=status))
    where, params = where_clause(since, until, model, team, status)
    return int(db.execute(f"SELECT COUNT(*) FROM requests{where}", params).fetchone()[0])


def _status_clause(status: str) -> tuple[str, list[Any]]:
    s = status.lower()
    if s == "ok":
        return "status < 400", []
    if s == "error":
        return "status >= 400", []
    if len(s) == 3 and s[0].isdigit() and s[1:] == "xx":
        low = int(s[0]) * 100
        return "status >= ? AND status < ?", [low, low + 100]
    if s.isdigit():
        return "status = ?", [int(s)]
    return "outcome = ?", [s]


def event_from_row(row: sqlite3.Row, *, bodies: bool = False) -> dict[str, Any]:
    """A logged row in the shape :meth:`Exchange.log_row` gives it (``time`` in UNIX seconds, ``attempts`` a list),
    as ``GET /admin/events`` sends finished requests; the bodies only with ``bodies``."""
    record: dict[str, Any] = {name: row[name] for name in COLUMNS if name not in _JSON_COLUMNS}
    record["stream"] = bool(row["stream"])
    record["usage_estimated"] = bool(row["usage_estimated"])
    record["unpriced"] = bool(row["unpriced"])
    record["cost_breakdown"] = orjson.loads(row["cost_breakdown"] or "{}")
    record["attempts"] = orjson.loads(row["attempts_json"] or "[]")
    for name in ("tags", "dropped_params", "findings"):
        record[name] = orjson.loads(row[name] or "[]")
    if bodies:
        for name in ("request", "response"):
            record[name] = orjson.loads(row[name]) if row[name] else None
    return record


def latest_events(path: Path, limit: int, *, bodies: bool = False) -> list[dict[str, Any]]:
    """The newest ``limit`` logged requests as events (:func:`event_from_row`), oldest first; none without a log
    yet. Blocking: call it in a thread. (For either backend: :func:`llmgw.store.log_backend.latest_events`.)"""
    if limit <= 0 or not path.exists():
        return []
    db = connect(path, readonly=True)
    try:
        rows = db.execute("SELECT * FROM requests ORDER BY time DESC LIMIT ?", (limit,)).fetchall()
    finally:
        db.close()
    return [event_from_row(row, bodies=bodies) for row in reversed(rows)]


ID_PREFIX = "req_"


def find(db: sqlite3.Connection, request_id: str) -> sqlite3.Row | None:
    """The row whose id is ``request_id`` or, if unique, starts with it (see :func:`find_all`)."""
    if not isinstance(db, sqlite3.Connection):
        return db.find(request_id)
    rows = find_all(db, request_id, limit=2)
    return rows[0] if len(rows) == 1 else None


def find_all(db: sqlite3.Connection, request_id: str, *, limit: int = 10) -> list[sqlite3.Row]:
    """The row whose id is ``request_id`` exactly, else the rows (newest first, at most ``limit``) whose id starts
    with it. The ``req_`` of an id may be left out: ``3f2a`` finds ``req_3f2a…``."""
    if not isinstance(db, sqlite3.Connection):
        return db.find_all(request_id, limit=limit)
    candidates = [request_id] if request_id.startswith(ID_PREFIX) else [request_id, ID_PREFIX + request_id]
    for candidate in candidates:
        row = db.execute("SELECT * FROM requests WHERE id = ?", (candidate,)).fetchone()
        if row is not None:
            return [row]
    if not request_id:
        return []
    # a range on the primary key (ids are ASCII, all below \x7f): no LIKE, so % and _ in the input mean themselves
    clauses = " OR ".join("(id >= ? AND id < ?)" for _ in candidates)
    params: list[Any] = [v for c in candidates for v in (c, c + "\x7f")]
    sql = f"SELECT * FROM requests WHERE {clauses} ORDER BY time DESC LIMIT ?"
    return db.execute(sql, [*params, limit]).fetchall()
