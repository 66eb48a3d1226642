"""`llmgw cache stats/clear`: look at or empty the response cache a profile uses (on disk or in Redis)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from ..cache.config import CacheConfig
from ..cache.store import CacheUnavailable, IndexedStore, open_store
from .common import PROFILE_HELP, console, fail, load_or_exit, print_json

app = typer.Typer(
    help="Look at or empty the response cache.\n\nExample: llmgw cache stats --profile prod.toml",
    no_args_is_help=True, rich_markup_mode=None)


@contextmanager
def _store(profile: Path | None) -> Iterator[IndexedStore]:
    prof = load_or_exit(profile)
    config = CacheConfig.from_raw(prof.extra.get("cache"))
    if not config.enabled:
        fail(f"{prof.source}: the profile has no [cache] table")
    store = open_store(prof, config)
    try:
        yield store
    except CacheUnavailable as exc:
        fail(str(exc))
    finally:
        store.close()


@app.command(short_help="How many answers the cache holds, and their size.")
def stats(
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
    fmt: str = typer.Option("table", "--format", metavar="FORMAT", help="table or json."),
) -> None:
    """How many answers the cache holds (and how many can be found by a rephrased prompt), and their size.

    Example: llmgw cache stats --profile prod.toml
    """
    if fmt not in ("table", "json"):
        fail(f"--format: expected table or json, got {fmt!r}")
    with _store(profile) as store:
        numbers = store.stats()
    if fmt == "json":
        print_json(numbers)
        return
    console.print(f"cache at {numbers['where']}: {numbers['entries']} answers ({numbers['semantic']} with a prompt"
                  f" vector), {numbers['bytes'] / 1e6:.1f} MB", highlight=False, soft_wrap=True, markup=False)


@app.command(short_help="Remove every cached answer.")
def clear(
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove every cached answer (for every tenant). Running servers stop serving them at once.

    Example: llmgw cache clear --profile prod.toml --yes
    """
    with _store(profile) as store:
        if not yes:
            typer.confirm(f"Remove every cached answer at {store.stats()['where']}?", abort=True)
        count = store.clear()
    console.print(f"removed {count} cached answers", highlight=False, markup=False)
