"""`llmgw db migrate`: copy a request log and its minted keys between SQLite and PostgreSQL
(see :mod:`llmgw.store.log_copy`)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..profile import Secret
from ..store.log_backend import LogMissing, LogSource, LogUnavailable
from ..store.log_copy import CopyError, copy_log
from .common import PROFILE_HELP, console, err_console, fail, load_or_exit

app = typer.Typer(help="Move the request log between databases.\n\n"
                       "Example: llmgw db migrate --from sqlite:///~/.llmgw/llmgw.db --to postgresql://llmgw@db/llmgw",
                  no_args_is_help=True, rich_markup_mode=None)

_URL_HELP = ("sqlite:///PATH or postgresql://USER@HOST:PORT/DB (a PostgreSQL password: --{side}-password, or"
             " libpq's PGPASSWORD / ~/.pgpass).")
_PASSWORD_HELP = "The {side} database's password as env:NAME or file:PATH (never the password itself)."


def _source(url: str, password: str | None, option: str) -> LogSource:
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        fail(f"{option}: expected sqlite:///PATH or postgresql://USER@HOST:PORT/DB, got {url.split('@')[-1]!r}")
    if password is None:
        return LogSource(url)
    if not password.startswith(("env:", "file:")):
        fail(f"{option}-password: expected env:NAME or file:PATH")
    return LogSource(url, Secret(password), f"{option}-password")


@app.command(short_help="Copy a request log and its minted keys into another database.")
def migrate(
    from_: str = typer.Option(..., "--from", metavar="URL", help="The log to copy. " + _URL_HELP.format(side="from")),
    to: str | None = typer.Option(None, "--to", metavar="URL",
                                  help="Where to copy it (default: the profile's [state] url). "
                                       + _URL_HELP.format(side="to")),
    from_password: str | None = typer.Option(None, "--from-password", metavar="REF",
                                             help=_PASSWORD_HELP.format(side="source")),
    to_password: str | None = typer.Option(None, "--to-password", metavar="REF",
                                           help=_PASSWORD_HELP.format(side="target")),
    batch: int = typer.Option(5000, "--batch", metavar="N", min=1, max=100_000, help="Rows per transaction."),
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
) -> None:
    """Copy every logged request (all columns, attempts and bodies included) and the minted keys from one
    database into another, in batches, printing counts. Rows are matched by request id, so running it again copies
    nothing twice. The target's tables are created when missing.

    Example: llmgw db migrate --from sqlite:///~/.llmgw/llmgw.db --to postgresql://llmgw@db.internal:5432/llmgw
    --to-password env:LLMGW_DB_PASSWORD
    """
    source = _source(from_, from_password, "--from")
    if to is None:
        state = load_or_exit(profile).state
        target = LogSource(state.url, state.password) if to_password is None else _source(state.url, to_password,
                                                                                             "--to")
    else:
        target = _source(to, to_password, "--to")
    err_console.print(f"copying {source.describe()} → {target.describe()}", highlight=False, soft_wrap=True,
                      markup=False)
    try:
        counts = copy_log(source, target, batch=batch,
                          progress=lambda n: err_console.print(f"  {n:,} requests copied", highlight=False,
                                                               markup=False))
    except LogMissing as exc:
        fail(str(exc))
    except (LogUnavailable, CopyError) as exc:
        fail(str(exc))
    console.print(f"copied {counts.requests:,} requests ({counts.new_requests:,} new; {counts.target_total:,} in"
                  f" the target now) and {counts.keys:,} minted keys into {target.describe()}", highlight=False,
                  soft_wrap=True, markup=False)
