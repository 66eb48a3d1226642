"""`llmgw why ID`: the story of one logged request in plain words (see :mod:`llmgw.tools.why`)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..store import log_read
from ..tools.why import as_json, render_text
from .common import PROFILE_HELP, fail, print_json
from .log_access import DB_HELP, one_request, open_log, profile_and_log


def why(
    request_id: str = typer.Argument(..., metavar="ID",
                                     help="Request id, or the start of one (the 'req_' may be left out)."),
    format: str = typer.Option("text", "--format", metavar="FORMAT", help="text (numbered lines) or json."),
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
    db: Path | None = typer.Option(None, "--db", metavar="FILE", help=DB_HELP),
) -> None:
    """Tell what happened to one request, step by step: the key and limits, guardrails, cache, routing and
    fallbacks, what was dropped in translation, the outcome and the cost. Reads the request log, like
    `llmgw logs show`; an id prefix works the same way.

    Example: llmgw why req_3f2a
    """
    if format not in ("text", "json"):
        fail(f"--format: expected text or json, got {format!r}")
    _, path = profile_and_log(profile, db)
    conn = open_log(path)
    with conn:
        row = one_request(conn, request_id.strip())
    record = log_read.record_from_row(row, bodies=True)
    if format == "json":
        print_json(as_json(record))
        return
    typer.echo(render_text(record))
