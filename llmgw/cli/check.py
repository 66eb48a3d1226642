"""`llmgw check`: validate a profile without starting anything."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import typer

from ..cache.embed import EmbedderError, resolve_model_path
from ..profile import Profile, ProfileError, host_problems, load_profile, secret_problems
from .common import PROFILE_HELP, console, err_console


def check_junit(source: str, problems: list[str]) -> str:
    """JUnit XML for CI: one test case per profile, failing with one line per problem."""
    root = ET.Element("testsuite", name="llmgw check", tests="1", failures=str(int(bool(problems))), errors="0")
    case = ET.SubElement(root, "testcase", classname="llmgw.check", name=source)
    if problems:
        failure = ET.SubElement(case, "failure", message=f"{len(problems)} problem(s)", type="invalid profile")
        failure.text = "\n".join(problems)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def cache_problems(profile: Profile) -> list[str]:
    """The semantic cache's model must be found (a folder with a model2vec model's files, or a cached hub id)."""
    config = profile.cache
    if not (config.enabled and config.semantic):
        return []
    try:
        resolve_model_path(config.model, allow_download=False)
    except EmbedderError as exc:
        return [f"cache.model: {exc}"]
    return []


def check(
    profile: Path | None = typer.Option(None, "--profile", "-p", help=PROFILE_HELP),
    junit: Path | None = typer.Option(None, "--junit", help="Also write JUnit XML here."),
) -> None:
    """Validate a profile: schema, unknown keys, types, secrets, targets, alias cycles and the cache's model.

    Example: llmgw check --profile prod.toml --junit check.xml
    """
    try:
        prof = load_profile(profile)
        source = prof.source
        problems = secret_problems(prof) + host_problems(prof) + cache_problems(prof)
    except ProfileError as exc:
        source, problems = exc.source, exc.problems
    if junit is not None:
        junit.write_text(check_junit(source, problems), encoding="utf-8")
    if problems:
        for problem in problems:
            err_console.print(f"{source}: {problem}", highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(1)
    console.print(f"{source}: ok — {len(prof.providers)} providers, {len(prof.models)} model aliases",
                  highlight=False, soft_wrap=True, markup=False)
