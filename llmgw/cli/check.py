"""`llmgw check`: validate a profile without starting anything."""

from __future__ import annotations

from pathlib import Path

import typer

from ..profile import ProfileError, host_problems, load_profile, secret_problems
from .common import PROFILE_HELP, console, err_console


def check(profile: Path | None = typer.Option(None, "--profile", "-p", help=PROFILE_HELP)) -> None:
    """Validate a profile: schema, unknown keys, types, secrets, targets and alias cycles.

    Example: llmgw check --profile prod.toml
    """
    try:
        prof = load_profile(profile)
    except ProfileError as exc:
        for problem in exc.problems:
            err_console.print(f"{exc.source}: {problem}", highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(1) from None
    problems = secret_problems(prof) + host_problems(prof)
    if problems:
        for problem in problems:
            err_console.print(f"{prof.source}: {problem}", highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(1)
    console.print(f"{prof.source}: ok — {len(prof.providers)} providers, {len(prof.models)} model aliases",
                  highlight=False, soft_wrap=True, markup=False)
