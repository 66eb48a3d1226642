"""`llmgw logs list` and `llmgw logs show`: read the request log."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import typer
from rich.table import Table

from ..store import log as request_log
from .common import PROFILE_HELP, console, db_path, fail, print_json, since_option

app = typer.Typer(help="Read the request log.", no_args_is_help=True, rich_markup_mode=None)

_DB_HELP = "Request-log database (default: the profile's [state] url)."


def _open(profile: Path | None, db: Path | None) -> sqlite3.Connection:
    path = db_path(profile, db)
    if not path.exists():
        fail(f"no request log at {path} yet; start the proxy with `llmgw serve` and send a request")
    try:
        return request_log.connect(path, readonly=True)
    except sqlite3.Error as exc:
        fail(f"cannot open the request log at {path}: {exc}")


def _check_format(format: str) -> None:
    if format not in ("table", "json"):
        fail(f"--format: expected table or json, got {format!r}")


@app.command("list")
def list_(
    since: str | None = typer.Option(None, "--since", help="30m, 24h, 7d or an ISO date."),
    model: str | None = typer.Option(None, "--model", help="Alias or target."),
    team: str | None = typer.Option(None, "--team"),
    status: str | None = typer.Option(None, "--status", help="A code (429), a class (5xx), ok or error."),
    limit: int = typer.Option(50, "--limit", min=1),
    format: str = typer.Option("table", "--format", help="table or json."),
    profile: Path | None = typer.Option(None, "--profile", "-p", help=PROFILE_HELP),
    db: Path | None = typer.Option(None, "--db", help=_DB_HELP),
) -> None:
    """List logged requests, newest first.

    Example: llmgw logs list --since 24h --status 5xx --format json
    """
    _check_format(format)
    start = since_option(since)
    conn = _open(profile, db)
    with conn:
        rows = request_log.query(conn, since=start, model=model, team=team, status=status, limit=limit)
    records = [request_log.record_from_row(r) for r in rows]
    if format == "json":
        print_json(records)
        return
    table = Table(title=f"{len(records)} requests (newest first)", title_justify="left", pad_edge=False)
    table.add_column("time", no_wrap=True)
    table.add_column("id", no_wrap=True)
    table.add_column("team")
    table.add_column("alias → target", overflow="fold")
    table.add_column("status")
    table.add_column("tokens", justify="right", no_wrap=True)
    table.add_column("cost $", justify="right", no_wrap=True)
    table.add_column("ms", justify="right", no_wrap=True)
    table.add_column("cache")
    for r in records:
        status_text = str(r["status"]) if r["status"] < 400 else f"[red]{r['status']} {r['error'] or ''}[/]"
        table.add_row(r["time"][5:19].replace("T", " "), r["id"], r["team"] or "-",
                      f"{r['alias']} → {r['target'] or '-'}", status_text,
                      f"{r['input_tokens']}/{r['output_tokens']}", f"{r['cost_usd']:.6f}",
                      f"{r['latency_ms']:.0f}", r["cache"])
    console.print(table)


@app.command()
def show(
    request_id: str = typer.Argument(..., help="Request id (or a unique prefix)."),
    format: str = typer.Option("table", "--format", help="table or json."),
    profile: Path | None = typer.Option(None, "--profile", "-p", help=PROFILE_HELP),
    db: Path | None = typer.Option(None, "--db", help=_DB_HELP),
) -> None:
    """Show one logged request with its attempts and bodies.

    Example: llmgw logs show req_3f2a --format json
    """
    _check_format(format)
    conn = _open(profile, db)
    with conn:
        row = request_log.find(conn, request_id)
    if row is None:
        fail(f"no logged request with id {request_id!r}; `llmgw logs list` shows recent ids")
    record = request_log.record_from_row(row, bodies=True)
    if format == "json":
        print_json([record])
        return
    table = Table(show_header=False, title=record["id"], title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    import json

    for key, value in record.items():
        shown = json.dumps(value, indent=2, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
        table.add_row(key, shown)
    console.print(table)
