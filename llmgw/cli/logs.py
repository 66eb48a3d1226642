"""`llmgw logs list` and `llmgw logs show`: read the request log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from ..store import log_read
from .common import FORMAT_HELP, PROFILE_HELP, console, fail, plain, plural, print_json, since_option
from .log_access import DB_HELP, one_request, open_log, profile_and_log, reading

app = typer.Typer(
    help="Read the request log.\n\nExample: llmgw logs list --since 24h --status 5xx",
    no_args_is_help=True, rich_markup_mode=None)


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
    db: Path | None = typer.Option(None, "--db", metavar="FILE", help=DB_HELP),
) -> None:
    """List logged requests, newest first.

    Example: llmgw logs list --since 24h --status 5xx --format json
    """
    _check_format(format)
    start = since_option(since)
    prof, source = profile_and_log(profile, db)
    filters: dict[str, Any] = {"since": start, "model": model, "team": team, "status": status}
    with open_log(source) as reader:
        rows = reading(lambda: reader.query(**filters, limit=limit))
        total = reading(lambda: reader.count(**filters)) if len(rows) == limit else len(rows)
    records = [log_read.record_from_row(r) for r in rows]
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


@app.command(short_help="Show one logged request with its attempts and bodies.")
def show(
    request_id: str = typer.Argument(..., metavar="ID",
                                     help="Request id, or the start of one (the 'req_' may be left out)."),
    format: str = typer.Option("table", "--format", metavar="FORMAT", help=FORMAT_HELP),
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
    db: Path | None = typer.Option(None, "--db", metavar="FILE", help=DB_HELP),
) -> None:
    """Show one logged request with its attempts and bodies. An ambiguous prefix lists the ids it matches.

    Example: llmgw logs show req_3f2a --format json
    """
    _check_format(format)
    _, source = profile_and_log(profile, db)
    with open_log(source) as reader:
        row = one_request(reader, request_id.strip())
    record = log_read.record_from_row(row, bodies=True)
    if format == "json":
        print_json([record])
        return
    table = Table(show_header=False, title=plain(record["id"]), title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in record.items():
        table.add_row(key, plain(_shown(value)))
    console.print(table)
