"""`llmgw logs list` and `llmgw logs show`: read the request log."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.table import Table
from rich.text import Text

from ..profile import Profile
from ..store import log as request_log
from ..store.log_backend import LogMissing, LogReader, LogSource, LogUnavailable, open_reader
from .common import FORMAT_HELP, PROFILE_HELP, console, fail, load_or_exit, plain, plural, print_json, since_option

app = typer.Typer(
    help="Read the request log.\n\nExample: llmgw logs list --since 24h --status 5xx",
    no_args_is_help=True, rich_markup_mode=None)

T = TypeVar("T")
_DB_HELP = "Request-log database (default: the profile's [state] url)."
_AMBIGUOUS_SHOWN = 10


def _profile_and_db(profile: Path | None, db: Path | None) -> tuple[Profile | None, LogSource]:
    """The profile (None with ``--db`` and no ``--profile``) and the log it names (or the ``--db`` file): a
    SQLite file or a PostgreSQL database."""
    prof = load_or_exit(profile) if db is None or profile is not None else None
    source = LogSource.file(db) if db is not None else LogSource.of(prof.state)  # type: ignore[union-attr]
    return prof, source


def _open(source: LogSource) -> LogReader:
    """A reader of the log (a context manager), or exit 1 with one line: no log yet, or it cannot be opened."""
    try:
        return open_reader(source)
    except LogMissing:
        fail(f"no request log at {source.describe()} yet; start the proxy with `llmgw serve` and send a request")
    except LogUnavailable as exc:
        fail(str(exc))


def _check_format(format: str) -> None:
    if format not in ("table", "json"):
        fail(f"--format: expected table or json, got {format!r}")


def _cache_cell(value: str, cache_configured: bool | None) -> Text:
    """``miss`` means something only when a cache was asked: without ``[cache]`` in the profile it shows ``-``."""
    if value == "miss" and cache_configured is False:
        return plain("-", "dim")
    return plain(value, "green" if value in ("hit", "semantic") else "")


def _status_cell(record: dict[str, Any]) -> Text:
    if record["status"] < 400:
        return plain(record["status"])
    return plain(f"{record['status']} {record['error'] or ''}".strip(), "red")


@app.command("list", short_help="List logged requests, newest first.")
def list_(
    since: str | None = typer.Option(None, "--since", metavar="D", help="30m, 24h, 7d or an ISO date."),
    model: str | None = typer.Option(None, "--model", metavar="ALIAS", help="Alias or target."),
    team: str | None = typer.Option(None, "--team", metavar="TEAM", help="Only requests made with this team's keys."),
    status: str | None = typer.Option(None, "--status", metavar="STATUS",
                                      help="A code (429), a class (5xx), ok or error."),
    limit: int = typer.Option(50, "--limit", metavar="N", min=1, help="Show at most N requests (the newest)."),
    format: str = typer.Option("table", "--format", metavar="FORMAT", help=FORMAT_HELP),
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
    db: Path | None = typer.Option(None, "--db", metavar="FILE", help=_DB_HELP),
) -> None:
    """List logged requests, newest first.

    Example: llmgw logs list --since 24h --status 5xx --format json
    """
    _check_format(format)
    start = since_option(since)
    prof, source = _profile_and_db(profile, db)
    filters: dict[str, Any] = {"since": start, "model": model, "team": team, "status": status}
    with _open(source) as reader:
        rows = _reading(lambda: reader.query(**filters, limit=limit))
        total = _reading(lambda: reader.count(**filters)) if len(rows) == limit else len(rows)
    records = [request_log.record_from_row(r) for r in rows]
    if format == "json":
        print_json(records)
        return
    shown = plural(total, "request") if total == len(records) else f"{len(records):,} of {plural(total, 'request')}"
    table = Table(title=f"{shown} (newest first)", title_justify="left", pad_edge=False)
    for column in ("time", "id", "team", "alias → target", "status", "tokens", "cost $", "ms", "cache"):
        table.add_column(column, justify="right" if column in ("tokens", "cost $", "ms") else "left",
                         no_wrap=column != "alias → target", overflow="fold")
    cache_configured = None if prof is None else prof.cache.enabled
    for r in records:
        table.add_row(r["time"][5:19].replace("T", " "), plain(r["id"]), plain(r["team"] or "-"),
                      plain(f"{r['alias']} → {r['target'] or '-'}"), _status_cell(r),
                      f"{r['input_tokens']:,}/{r['output_tokens']:,}", f"{r['cost_usd']:.6f}",
                      f"{r['latency_ms']:,.0f}", _cache_cell(r["cache"], cache_configured))
    console.print(table)


def _shown(value: Any) -> str:
    """A field's value for people: ``-`` for nothing (None, empty list or dict), lists of words joined by
    commas, other lists and dicts as indented JSON."""
    if value is None or value == [] or value == {} or value == "":
        return "-"
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2, ensure_ascii=False)
    return str(value)


def _reading(read: Callable[[], T]) -> T:
    """``read()``, or exit 1 with one line when the log stops answering mid-way (a PostgreSQL outage)."""
    try:
        return read()
    except LogUnavailable as exc:
        fail(str(exc))


def _one(reader: LogReader, request_id: str) -> Any:
    """The row ``request_id`` names, or exit 1: unknown, or ambiguous (listing the matches)."""
    rows = _reading(lambda: reader.find_all(request_id, limit=_AMBIGUOUS_SHOWN + 1))
    if not rows:
        fail(f"no logged request with id {request_id!r}; `llmgw logs list` shows recent ids")
    if len(rows) > 1:
        ids = ", ".join(r["id"] for r in rows[:_AMBIGUOUS_SHOWN]) + (", …" if len(rows) > _AMBIGUOUS_SHOWN else "")
        count = f"more than {_AMBIGUOUS_SHOWN}" if len(rows) > _AMBIGUOUS_SHOWN else str(len(rows))
        fail(f"{request_id!r} is ambiguous: {count} logged request ids start with it ({ids}); give more of the id")
    return rows[0]


@app.command(short_help="Show one logged request with its attempts and bodies.")
def show(
    request_id: str = typer.Argument(..., metavar="ID",
                                     help="Request id, or the start of one (the 'req_' may be left out)."),
    format: str = typer.Option("table", "--format", metavar="FORMAT", help=FORMAT_HELP),
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
    db: Path | None = typer.Option(None, "--db", metavar="FILE", help=_DB_HELP),
) -> None:
    """Show one logged request with its attempts and bodies. An ambiguous prefix lists the ids it matches.

    Example: llmgw logs show req_3f2a --format json
    """
    _check_format(format)
    _, source = _profile_and_db(profile, db)
    with _open(source) as reader:
        row = _one(reader, request_id.strip())
    record = request_log.record_from_row(row, bodies=True)
    if format == "json":
        print_json([record])
        return
    table = Table(show_header=False, title=plain(record["id"]), title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in record.items():
        table.add_row(key, plain(_shown(value)))
    console.print(table)
