"""The `llmgw` command: one Typer app, one module per command group."""

from __future__ import annotations

import logging
import sys

import typer

from .. import __version__
from . import cache as cache_cmd
from . import check as check_cmd
from . import cost as cost_cmd
from . import db as db_cmd
from . import guard as guard_cmd
from . import import_cmd, profile_cmd
from . import keys as keys_cmd
from . import logs as logs_cmd
from . import models as models_cmd
from . import prices as prices_cmd
from . import reload as reload_cmd
from . import replay as replay_cmd
from . import serve as serve_cmd
from . import smoke as smoke_cmd
from . import tail as tail_cmd
from . import why as why_cmd

app = typer.Typer(
    name="llmgw",
    help="llmgw — a fast local AI gateway. Point OpenAI or Anthropic SDKs at `llmgw serve`.\n\n"
         "Example: llmgw serve   (then use base_url=http://127.0.0.1:4000/v1 in the OpenAI SDK)",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Each command's line in `llmgw --help` (short enough never to be cut off with "...").
app.command(short_help="Start the proxy from a profile.")(serve_cmd.serve)
app.command(short_help="Make a running server re-read its profile (SIGHUP).")(reload_cmd.reload)
app.command(short_help="Validate a profile without starting anything.")(check_cmd.check)
app.command(short_help="Send one request through every alias (CI smoke test).")(smoke_cmd.smoke)
app.command(short_help="Re-send logged requests to other targets and compare.")(replay_cmd.replay)
app.command(short_help="Watch live requests in a terminal UI.")(tail_cmd.tail)
app.command(short_help="List model aliases, targets and prices.")(models_cmd.models)
app.command(short_help="The price table, its dates and sources; `prices check`.")(prices_cmd.prices)
app.command(short_help="Tell the story of one logged request in plain words.")(why_cmd.why)
app.add_typer(logs_cmd.app, name="logs")
app.add_typer(profile_cmd.app, name="profile")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(cost_cmd.app, name="cost")
app.add_typer(guard_cmd.app, name="guard")
app.add_typer(cache_cmd.app, name="cache")
app.add_typer(import_cmd.app, name="import")
app.add_typer(db_cmd.app, name="db")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"llmgw {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logging."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """llmgw — a fast local AI gateway."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run() -> None:
    """Console-script entry point: one clear line instead of a traceback unless --debug."""
    debug = "--debug" in sys.argv
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug or an environment problem: say it in one line
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        sys.exit(1)
