"""`llmgw cost report` and `llmgw cost budgets`: token spend from the request log (see :mod:`llmgw.tools.report`)."""

from __future__ import annotations

import csv
import io
import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..durations import parse_point
from ..store.keys import key_names
from ..store.log_backend import LogMissing, LogSource, LogUnavailable, open_reader
from ..tools import report as spend
from .common import PROFILE_HELP, console, err_console, fail, load_or_exit, plain, plural, print_json
from .log_access import DB_HELP

app = typer.Typer(help="Token spend reports and budgets, from the request log.\n\n"
                       "Example: llmgw cost report --since 7d --by team",
                  no_args_is_help=True, rich_markup_mode=None)

_BY_HELP = ("Group by FIELD: team, key, model (the alias), target, provider, day (UTC date; sorted by day to show"
            " the trend), tag or token_type (input, cached_input, cache_write, cache_write_1h, output, reasoning:"
            " each request's cost split by what it paid for; 'unpriced' for requests whose target has no price)."
            " Repeat for nested groups. A request with several tags counts in each tag's group (the total row"
            " counts it once); requests without tags are in group '-'. Default: model.")
_BAR_WIDTH = 24
_MARK = "▲"


def _point(option: str, value: str, now: float) -> float:
    try:
        return parse_point(value, now=now)
    except ValueError as exc:
        fail(f"{option}: {exc}")


def _source(profile: Path | None, db: Path | None) -> LogSource:
    """The log: the ``--db`` file, else the profile's ``[state]`` (a SQLite file or PostgreSQL)."""
    return LogSource.file(db) if db is not None else LogSource.of(load_or_exit(profile).state)


def _open(source: LogSource, since: float | None = None, until: float | None = None) -> sqlite3.Connection | None:
    """The log's rows in ``[since, until)`` to report on (the SQLite file itself, read-only; a PostgreSQL log's
    window copied: :meth:`~llmgw.store.log_backend.LogReader.report_db`), or None (with a note on stderr) when
    there is no log yet."""
    try:
        reader = open_reader(source)
    except LogMissing:
        err_console.print(f"note: no request log at {escape(source.describe())} yet; nothing has been spent",
                          highlight=False, soft_wrap=True)
        return None
    except LogUnavailable as exc:
        fail(str(exc))
    try:
        return reader.report_db(since, until)
    except (LogUnavailable, sqlite3.Error) as exc:
        fail(str(exc))
    finally:
        reader.close()


def _bar(share: float) -> str:
    """A horizontal bar of up to ``_BAR_WIDTH`` cells, in eighths of a cell, for a share of the total (0..1)."""
    if share <= 0:
        return ""
    eighths = max(1, round(_BAR_WIDTH * 8 * min(share, 1.0)))
    full, part = divmod(eighths, 8)
    return "█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")


def _money(value: float) -> str:
    return f"{value:,.4f}"


def _count(value: int) -> str:
    return f"{value:,}"


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M")


def share_basis(total: spend.Group) -> tuple[str, Callable[[spend.Group], float]]:
    """What the share column measures: cost, or — when nothing in the window cost anything (every price $0) —
    tokens, or requests; as (column title, the measure of a group)."""
    if total.cost_usd > 0:
        return "share of cost", lambda g: g.cost_usd
    if total.input_tokens + total.output_tokens > 0:
        return "share of tokens", lambda g: g.input_tokens + g.output_tokens
    return "share of requests", lambda g: g.requests


def _share(measure: float, whole: float) -> str:
    if whole <= 0:
        return ""
    share = measure / whole
    return f"{_bar(share):<{_BAR_WIDTH}} {100 * share:5.1f}%"


def _group_cells(result: spend.Report, values: tuple[str, ...], key_names: Mapping[str, str]) -> list[Text]:
    """A group's --by values as cells: a key shows as ``name (id)`` when it has a name."""
    cells = []
    for field, value in zip(result.fields or ("group",), values, strict=True):
        name = key_names.get(value) if field == "key" else None
        cells.append(plain(f"{name} ({value})" if name and name != value else value))
    return cells


def _print_table(result: spend.Report, key_names: Mapping[str, str]) -> None:
    fields = result.fields or ("group",)
    title = f"spend {_when(result.since)} → {_when(result.until)} UTC"
    table = Table(title=title, title_justify="left", pad_edge=False, show_footer=False)
    for field in fields:
        table.add_column(field, overflow="fold")
    saved = result.total.saved_usd > 0
    unpriced = result.total.unpriced > 0
    for name in ("requests", *(("unpriced",) if unpriced else ()), "input tokens", "output tokens", "cost $",
                 *(("saved by cache $",) if saved else ())):
        table.add_column(name, justify="right", no_wrap=True)
    basis, measure = share_basis(result.total)
    whole = measure(result.total)
    table.add_column(basis, no_wrap=True, min_width=_BAR_WIDTH + 7)
    table.add_column("anomaly", no_wrap=True, justify="center")
    for g in result.groups:
        table.add_row(*_group_cells(result, g.values or ("all",), key_names), _count(g.requests),
                      *((_count(g.unpriced) if g.unpriced else "",) if unpriced else ()),
                      _count(g.input_tokens), _count(g.output_tokens), _money(g.cost_usd),
                      *((_money(g.saved_usd),) if saved else ()), _share(measure(g), whole),
                      f"[bold red]{_MARK}[/]" if g.anomaly else "")
    t = result.total
    table.add_section()
    table.add_row("[bold]total[/]", *([""] * (len(fields) - 1)), _count(t.requests),
                  *((f"[bold red]{_count(t.unpriced)}[/]",) if unpriced else ()), _count(t.input_tokens),
                  _count(t.output_tokens), f"[bold]{_money(t.cost_usd)}[/]",
                  *((f"[bold]{_money(t.saved_usd)}[/]",) if saved else ()), "", "")
    notes = []
    if unpriced:
        notes.append(f"unpriced: {plural(t.unpriced, 'request')} went to targets without a price: their cost is"
                     " unknown and counted as $0 above; `llmgw check` names them, [prices] in the profile prices"
                     " them")
    if "token_type" in result.fields:
        notes.append("token_type: each request's cost split by token type; cache_write tokens include 1-hour"
                     " writes")
    if "tag" in result.fields:
        notes.append("a request with several tags counts in each tag's group; the total counts it once")
    if basis != "share of cost" and t.requests:
        notes.append(f"nothing in this window cost anything (every price is $0): the {basis}")
    if any(g.anomaly for g in result.groups):
        notes.append(f"{_MARK} anomaly: {result.rule.describe()}")
    if notes:
        table.caption = Text("\n".join(notes))
        table.caption_justify = "left"
    console.print(table)


def _records(result: spend.Report, key_names: Mapping[str, str]) -> list[dict[str, Any]]:
    """The report's records; with ``key`` among the fields, each also has ``key_name`` (``""`` without one)."""
    records = result.records()
    if "key" in result.fields:
        for record in records:
            record["key_name"] = key_names.get(record["key"], "")
    return records


def _print_csv(result: spend.Report, key_names: Mapping[str, str]) -> None:
    out = io.StringIO()
    names = ["key_name"] if "key" in result.fields else []
    columns = [*result.fields, *names, "requests", "input_tokens", "output_tokens", "cost_usd", "saved_usd",
               "unpriced", "anomaly"]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in _records(result, key_names):
        writer.writerow({**record, "anomaly": "true" if record["anomaly"] else "false"})
    typer.echo(out.getvalue(), nl=False)


@app.command(short_help="Token spend per group, with shares, a total and anomalies.")
def report(
    since: str = typer.Option("30d", "--since", metavar="D", help="Window start: 30m, 24h, 7d or an ISO date."),
    until: str | None = typer.Option(None, "--until", metavar="D", help="Window end (exclusive); default now."),
    by: list[str] = typer.Option([], "--by", metavar="FIELD", help=_BY_HELP),
    format: str = typer.Option("table", "--format", metavar="FORMAT", help="table, csv or json."),
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
    db: Path | None = typer.Option(None, "--db", metavar="FILE", help=DB_HELP),
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
    conn = _open(_source(profile, db), start, end)
    names: dict[str, str] = {}
    if conn is None:
        result = spend.Report(fields, (), spend.Group((), 0, 0, 0, 0.0), start, end, spend.AnomalyRule())
    else:
        with conn:
            result = spend.build_report(conn, fields, start, end)
            names = key_names(conn) if "key" in fields else {}
        conn.close()
    if format == "json":
        print_json(_records(result, names))
    elif format == "csv":
        _print_csv(result, names)
    else:
        _print_table(result, names)


def _percent(line: spend.BudgetLine) -> str:
    percent = line.percent_used
    if percent is None:
        return "-"
    colour = "red" if percent >= 100 else "yellow" if percent >= 80 else "green"
    return f"[{colour}]{percent:.1f}%[/]"


@app.command(short_help="Every team's and key's budget: spent, limit, % used.")
def budgets(
    format: str = typer.Option("table", "--format", metavar="FORMAT", help="table or json."),
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
    db: Path | None = typer.Option(None, "--db", metavar="FILE", help=DB_HELP),
) -> None:
    """Every team's and key's budget from the profile: spent today and this month (UTC), limit, % used and
    when the period resets. Reads the request log only; enforcement happens in the proxy.

    Example: llmgw cost budgets --profile llmgw.toml
    """
    if format not in ("table", "json"):
        fail(f"--format: expected table or json, got {format!r}")
    loaded = load_or_exit(profile)
    teams, keys = loaded.extra.get("teams") or {}, loaded.extra.get("keys") or {}
    source = LogSource.file(db) if db is not None else LogSource.of(loaded.state)
    month = min(start for start, _ in spend.period_bounds(time.time()).values()).timestamp()
    conn = _open(source, month) if (teams or keys) else None
    try:
        lines = spend.budget_lines(conn, teams, keys, time.time())
    finally:
        if conn is not None:
            conn.close()
    if format == "json":
        print_json([line.record() for line in lines])
        return
    if not lines:
        console.print(f"no [teams] or [keys] in {loaded.source}; nothing to budget", highlight=False, markup=False)
        return
    table = Table(title="budgets (UTC periods)", title_justify="left", pad_edge=False)
    for name in ("kind", "name", "team", "period"):
        table.add_column(name)
    for name in ("spent $", "limit $", "used"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("resets at (UTC)", no_wrap=True)
    for line in lines:
        limit = "-" if line.limit_usd is None else f"{line.limit_usd:.2f}"
        table.add_row(line.kind, plain(line.name), plain(line.team or "-"), line.period,
                      _money(line.spent_usd), limit, _percent(line), line.resets_at.strftime("%Y-%m-%d %H:%M"))
    console.print(table)
