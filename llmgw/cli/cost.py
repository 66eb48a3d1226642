"""`llmgw cost report` and `llmgw cost budgets`: token spend from the request log (see :mod:`llmgw.tools.report`)."""

from __future__ import annotations

import csv
import io
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from ..durations import parse_point
from ..store import log as request_log
from ..tools import report as spend
from .common import PROFILE_HELP, console, db_path, err_console, fail, load_or_exit, print_json

app = typer.Typer(help="Token spend: reports by team, key, model, day or tag, and budgets.",
                  no_args_is_help=True, rich_markup_mode=None)

_DB_HELP = "Request-log database (default: the profile's [state] url)."
_BY_HELP = ("Group by FIELD: team, key, model (the alias), target, provider, day (UTC date; sorted by day to show"
            " the trend) or tag. Repeat for nested groups. A request with several tags counts in each tag's group"
            " (the total row counts it once); requests without tags are in group '-'. Default: model.")
_BAR_WIDTH = 24
_MARK = "▲"


def _point(option: str, value: str, now: float) -> float:
    try:
        return parse_point(value, now=now)
    except ValueError as exc:
        fail(f"{option}: {exc}")


def _open(path: Path) -> sqlite3.Connection | None:
    """The log read-only, or None (with a note on stderr) when there is none yet."""
    if not path.exists():
        err_console.print(f"note: no request log at {escape(str(path))} yet; nothing has been spent",
                          highlight=False, soft_wrap=True)
        return None
    try:
        return request_log.connect(path, readonly=True)
    except sqlite3.Error as exc:
        fail(f"cannot open the request log at {path}: {exc}")


def _bar(cost: float, largest: float) -> str:
    """A horizontal bar of up to ``_BAR_WIDTH`` cells, in eighths of a cell, proportional to ``cost``."""
    if largest <= 0 or cost <= 0:
        return ""
    eighths = max(1, round(_BAR_WIDTH * 8 * cost / largest))
    full, part = divmod(eighths, 8)
    return "█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")


def _money(value: float) -> str:
    return f"{value:.4f}"


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M")


def _print_table(result: spend.Report) -> None:
    fields = result.fields or ("group",)
    title = f"spend {_when(result.since)} → {_when(result.until)} UTC"
    table = Table(title=title, title_justify="left", pad_edge=False, show_footer=False)
    for field in fields:
        table.add_column(field, overflow="fold")
    saved = result.total.saved_usd > 0
    for name in ("requests", "input tokens", "output tokens", "cost $", *(("saved by cache $",) if saved else ())):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("share", no_wrap=True, min_width=_BAR_WIDTH)
    table.add_column("!", no_wrap=True)
    largest = max((g.cost_usd for g in result.groups), default=0.0)
    for g in result.groups:
        values = g.values or ("all",)
        table.add_row(*(escape(v) for v in values), str(g.requests), str(g.input_tokens), str(g.output_tokens),
                      _money(g.cost_usd), *((_money(g.saved_usd),) if saved else ()), _bar(g.cost_usd, largest),
                      f"[bold red]{_MARK}[/]" if g.anomaly else "")
    t = result.total
    table.add_section()
    table.add_row("[bold]total[/]", *([""] * (len(fields) - 1)), str(t.requests), str(t.input_tokens),
                  str(t.output_tokens), f"[bold]{_money(t.cost_usd)}[/]",
                  *((f"[bold]{_money(t.saved_usd)}[/]",) if saved else ()), "", "")
    notes = []
    if "tag" in result.fields:
        notes.append("a request with several tags counts in each tag's group; the total counts it once")
    if any(g.anomaly for g in result.groups):
        notes.append(f"{_MARK} anomaly: {result.rule.describe()}")
    if notes:
        table.caption = "\n".join(notes)
        table.caption_justify = "left"
    console.print(table)


def _print_csv(result: spend.Report) -> None:
    out = io.StringIO()
    columns = [*result.fields, "requests", "input_tokens", "output_tokens", "cost_usd", "saved_usd", "anomaly"]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in result.records():
        writer.writerow({**record, "anomaly": "true" if record["anomaly"] else "false"})
    typer.echo(out.getvalue(), nl=False)


@app.command()
def report(
    since: str = typer.Option("30d", "--since", metavar="D", help="Window start: 30m, 24h, 7d or an ISO date."),
    until: str | None = typer.Option(None, "--until", metavar="D", help="Window end (exclusive); default now."),
    by: list[str] = typer.Option([], "--by", metavar="FIELD", help=_BY_HELP),
    format: str = typer.Option("table", "--format", metavar="FORMAT", help="table, csv or json."),
    profile: Path | None = typer.Option(None, "--profile", "-p", help=PROFILE_HELP),
    db: Path | None = typer.Option(None, "--db", help=_DB_HELP),
) -> None:
    """Token spend per group, with a total row and a bar per group; spend anomalies are marked.

    A group is marked (table: ▲; csv/json: anomaly=true) when its spend in the last 24 h (with --by day: on
    the window's last day) is at least 3x its own daily average over the rest of the window and at least $1
    above it.

    Example: llmgw cost report --since 7d --by team --by model --format csv
    """
    if format not in ("table", "csv", "json"):
        fail(f"--format: expected table, csv or json, got {format!r}")
    try:
        fields = spend.parse_fields(by or ["model"])
    except ValueError as exc:
        fail(f"--by: {exc}")
    now = time.time()
    start = _point("--since", since, now)
    end = now if until is None else _point("--until", until, now)
    if start >= end:
        fail(f"--since ({_when(start)}) must be before --until ({_when(end)})")
    conn = _open(db_path(profile, db))
    if conn is None:
        result = spend.Report(fields, (), spend.Group((), 0, 0, 0, 0.0), start, end, spend.AnomalyRule())
    else:
        with conn:
            result = spend.build_report(conn, fields, start, end)
        conn.close()
    if format == "json":
        print_json(result.records())
    elif format == "csv":
        _print_csv(result)
    else:
        _print_table(result)


def _percent(line: spend.BudgetLine) -> str:
    percent = line.percent_used
    if percent is None:
        return "-"
    colour = "red" if percent >= 100 else "yellow" if percent >= 80 else "green"
    return f"[{colour}]{percent:.1f}%[/]"


@app.command()
def budgets(
    format: str = typer.Option("table", "--format", help="table or json."),
    profile: Path | None = typer.Option(None, "--profile", "-p", help=PROFILE_HELP),
    db: Path | None = typer.Option(None, "--db", help=_DB_HELP),
) -> None:
    """Every team's and key's budget from the profile: spent today and this month (UTC), limit, % used and
    when the period resets. Reads the request log only; enforcement happens in the proxy.

    Example: llmgw cost budgets --profile llmgw.toml
    """
    if format not in ("table", "json"):
        fail(f"--format: expected table or json, got {format!r}")
    loaded = load_or_exit(profile)
    teams, keys = loaded.extra.get("teams") or {}, loaded.extra.get("keys") or {}
    path = db.expanduser() if db is not None else loaded.state.db_path
    conn = _open(path) if (teams or keys) else None
    try:
        lines = spend.budget_lines(conn, teams, keys, time.time())
    finally:
        if conn is not None:
            conn.close()
    if format == "json":
        print_json([line.record() for line in lines])
        return
    if not lines:
        console.print(f"no [teams] or [keys] in {escape(loaded.source)}; nothing to budget", highlight=False)
        return
    table = Table(title="budgets (UTC periods)", title_justify="left", pad_edge=False)
    for name in ("kind", "name", "team", "period"):
        table.add_column(name)
    for name in ("spent $", "limit $", "used"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("resets at (UTC)", no_wrap=True)
    for line in lines:
        limit = "-" if line.limit_usd is None else f"{line.limit_usd:.2f}"
        table.add_row(line.kind, escape(line.name), escape(line.team or "-"), line.period,
                      _money(line.spent_usd), limit, _percent(line), line.resets_at.strftime("%Y-%m-%d %H:%M"))
    console.print(table)
