"""`llmgw replay`: re-send logged requests to other targets and compare the answers side by side."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..profile import Profile, secret_problems
from ..store.log_backend import LogMissing, LogSource, LogUnavailable, open_reader
from ..tools.replay import (
    Original,
    ReplayError,
    ReplayResult,
    ReplayTarget,
    Selection,
    resolve_targets,
    run_replay,
    select_by_ids,
    select_recent,
    served_profile,
    shorten,
)
from .common import PROFILE_HELP, console, err_console, fail, load_or_exit, plural, print_json, since_option

_AGAINST_HELP = "An alias of the profile or a provider/model of one of its providers. Repeatable."
_KEY_HELP = "A gateway key for profiles with [keys]/[teams] (default: $LLMGW_KEY)."


def _targets(prof: Profile, against: Sequence[str]) -> list[ReplayTarget]:
    """The ``--against`` targets, or exit 1 naming the first unknown one."""
    try:
        return resolve_targets(prof, against)
    except ReplayError as exc:
        fail(str(exc))


def _check_ready(prof: Profile, key: str | None) -> None:
    """Exit 1 when the profile cannot be served as it is: unresolvable secrets, or keys required and none given."""
    problems = secret_problems(prof)
    if problems:
        fail(problems[0])
    if prof.governed and not key:
        fail(f"{prof.source} has [keys]/[teams]: pass --key or set $LLMGW_KEY so the replays are let in")


def _select(source: LogSource, ids: Sequence[str], since: float | None, model: str | None,
            limit: int) -> Selection:
    """The requests to replay from the log (a SQLite file or PostgreSQL); exit 1 when there is no log."""
    try:
        reader = open_reader(source)
    except LogMissing:
        fail(f"no request log at {source.describe()}: no request matched")
    except LogUnavailable as exc:
        fail(str(exc))
    try:
        return select_by_ids(reader, ids) if ids else select_recent(reader, since=since, model=model, limit=limit)
    except LogUnavailable as exc:
        fail(str(exc))
    finally:
        reader.close()


def _replay_with_progress(served: Profile, originals: Sequence[Original], targets: Sequence[ReplayTarget],
                          key: str | None, concurrency: int) -> list[ReplayResult]:
    """Run the replays with a progress bar on stderr."""
    columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("replay", total=len(originals) * len(targets))
        return asyncio.run(run_replay(served, originals, targets, key=key, concurrency=concurrency,
                                      on_result=lambda _: progress.advance(task)))


def _status(status: int, error: str | None) -> Text:
    """The status cell: red for a failure."""
    if error is None and status < 400:
        return Text(str(status))
    return Text(str(status or "-"), style="red")


def _answer(output: str, error: str | None) -> Text:
    """The output cell: the answer shortened, or the error in red."""
    return Text(shorten(error or "", 80), style="red") if error is not None else Text(shorten(output, 80))


def _original_row(table: Table, original: Original) -> None:
    """The first row of a section: the request's id and prompt, and what it got the first time."""
    heading = Text(original.id, style="bold")
    heading.append("\n" + shorten(original.prompt, 40), style="dim")
    table.add_row(heading, Text(f"original: {original.target or original.alias}", style="bold"),
                  _status(original.status, None), Text(shorten(original.output)),
                  f"{original.input_tokens}/{original.output_tokens}", f"{original.cost_usd:.6f}",
                  f"{original.latency_ms:.0f}", "-")


def _result_row(table: Table, result: ReplayResult, last: bool) -> None:
    """One replay's row; ``last`` closes the section."""
    label = result.target if result.against in ("", result.target) else f"{result.against} → {result.target}"
    score = "-" if result.similarity is None else f"{result.similarity:.2f}"
    table.add_row("", Text(label), _status(result.status, result.error), _answer(result.output, result.error),
                  f"{result.input_tokens}/{result.output_tokens}", f"{result.cost_usd:.6f}",
                  f"{result.latency_ms:.0f}", score, end_section=last)


def _table(originals: Sequence[Original], results: Sequence[ReplayResult]) -> Table:
    """One section per original request: its own row first, then one row per target."""
    table = Table(title=f"{plural(len(originals), 'request')} replayed (similarity: 1 = same wording as the original)",
                  title_justify="left", pad_edge=False)
    for column in ("request", "target", "status", "output", "tokens", "cost $", "ms", "similarity"):
        numeric = column in ("tokens", "cost $", "ms", "similarity")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=column != "output",
                         overflow="fold")
    for original in originals:
        mine = [r for r in results if r.id == original.id]
        _original_row(table, original)
        for index, result in enumerate(mine):
            _result_row(table, result, last=index == len(mine) - 1)
    return table


def replay(
    ids: list[str] | None = typer.Argument(None, metavar="ID",
                                           help="Request ids or unique prefixes (default: the newest)."),
    since: str | None = typer.Option(None, "--since", metavar="D", help="30m, 24h, 7d or an ISO date (without IDs)."),
    model: str | None = typer.Option(None, "--model", metavar="ALIAS",
                                     help="Only requests to this alias or target (without IDs)."),
    limit: int = typer.Option(20, "--limit", metavar="N", min=1, help="At most this many requests (without IDs)."),
    against: list[str] = typer.Option(..., "--against", "-a", metavar="TARGET", help=_AGAINST_HELP),
    format: str = typer.Option("table", "--format", metavar="FORMAT", help="table or json."),
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
    db: Path | None = typer.Option(None, "--db", metavar="FILE",
                                   help="Request-log database (default: the profile's [state] url)."),
    key: str | None = typer.Option(None, "--key", metavar="KEY", envvar="LLMGW_KEY", help=_KEY_HELP,
                                   show_envvar=False),
    concurrency: int = typer.Option(4, "--concurrency", metavar="N", min=1, max=32,
                                    help="Replays in flight at once (1-32)."),
) -> None:
    """Re-send logged requests to other targets and compare the answers side by side.

    Each replay goes through the profile's own pipeline (keys, limits, guardrails, routing) and is logged with
    tag `replay`. Similarity is the character-trigram cosine between the original answer and the replayed one.
    Exit 0; 1 if no request matched.

    Example: llmgw replay --since 24h --model fast --against anthropic/claude-3-5-haiku-latest --against cheap
    """
    if format not in ("table", "json"):
        fail(f"--format: expected table or json, got {format!r}")
    start = since_option(since)
    prof = load_or_exit(profile)
    targets = _targets(prof, against)
    _check_ready(prof, key)
    path = db.expanduser() if db is not None else prof.state.db_path
    selection = _select(LogSource.file(path) if db is not None else LogSource.of(prof.state), ids or [], start,
                        model, limit)
    for note in selection.notes:
        err_console.print("[yellow]note:[/] " + escape(note), highlight=False, soft_wrap=True)
    if not selection.originals:
        fail("no logged request matched" + ("" if ids else "; `llmgw logs list` shows what is logged"))
    served = served_profile(prof, targets, db=path if db is not None else None)
    results = _replay_with_progress(served, selection.originals, targets, key, concurrency)
    if format == "json":
        print_json([r.as_dict() for r in results])
        return
    console.print(_table(selection.originals, results))
