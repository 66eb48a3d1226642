"""What every command shares: loading the profile, printing one-line errors, the consoles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import click
import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.text import Text

from ..durations import parse_point
from ..profile import Profile, ProfileError, load_profile


class _Console(Console):
    """A console that does not squeeze tables to 80 columns when its output goes to a pipe or a file."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        return size if self.is_terminal else ConsoleDimensions(max(size.width, 200), size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


def _argument_types_stay_hidden() -> None:
    """Typer's help prints an argument's Python type after its name (``ID <list[str]>``) even when the argument
    has a metavar; with this, an argument that has a metavar shows just the metavar, like an option does."""
    from typer.core import TyperArgument

    typer_display = TyperArgument.display_type_rich

    def display(self: TyperArgument, ctx: click.Context) -> str | None:
        return None if self.metavar else typer_display(self, ctx)

    TyperArgument.display_type_rich = display  # type: ignore[method-assign]


_argument_types_stay_hidden()

console = _Console()
err_console = _Console(stderr=True)

PROFILE_HELP = "Profile TOML (default: $LLMGW_PROFILE, ./llmgw.toml, else the built-in demo)."
FORMAT_HELP = "table or json."


def plain(value: object, style: str = "") -> Text:
    """A table cell or line holding ``value`` as it is: data and profile names are never read as rich markup
    (``[teams]`` stays ``[teams]``)."""
    return Text("-" if value is None else str(value), style=style)


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``1 model alias``, ``2 model aliases``: the count and the word that agrees with it (thousands separated)."""
    word = singular if count == 1 else (plural_form or singular + "s")
    return f"{count:,} {word}"


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear line to stderr and exit with ``code``."""
    err_console.print("[bold red]error:[/] " + escape(message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_or_exit(path: Path | None) -> Profile:
    """The profile, or exit 1 with each problem on its own line."""
    try:
        return load_profile(path)
    except ProfileError as exc:
        for problem in exc.problems:
            err_console.print("[bold red]error:[/] " + escape(f"{exc.source}: {problem}"), highlight=False,
                              soft_wrap=True)
        raise typer.Exit(1) from None


def print_json(value: Any) -> None:
    """Machine-readable output: plain JSON on stdout, no colour, no wrapping."""
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def db_path(profile: Path | None, db: Path | None) -> Path:
    """The request-log database: ``--db`` if given, else the profile's ``[state] url``."""
    if db is not None:
        return db.expanduser()
    return load_or_exit(profile).state.db_path


def since_option(value: str | None, option: str = "--since") -> float | None:
    """A ``--since``/``--until`` value (``30m``, ``7d``, an ISO date) as a UNIX time, or exit 1 naming it."""
    if value is None:
        return None
    try:
        return parse_point(value)
    except ValueError as exc:
        fail(f"{option}: {exc}")
