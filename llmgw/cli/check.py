"""`llmgw check`: validate a profile without starting anything.

Contract: problems (exit 1) are every reason the server would refuse the profile, or would refuse every request
of a team or key to an alias (a budget on an alias with an unpriced target: a budget cannot be kept on an unknown
price), one ``key.path: why`` line each; warnings (exit 0) are what would work but surprise, such as an alias that
falls back from a real provider to the mock's fake answers, or an alias with a target that has no price (its
requests are logged as unpriced). ``--format json`` prints one object per problem or warning (``[]`` for a clean
profile).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import typer

from ..cache.embed import EmbedderError, resolve_model_path
from ..pricing import budget_problems, unpriced_targets, unpriced_warnings
from ..profile import Profile, ProfileError, host_problems, load_profile, secret_problems
from ..providers.spec import OFFLINE_KIND
from .common import FORMAT_HELP, PROFILE_HELP, console, err_console, fail, plural, print_json
from .serve import port_problem


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


def mock_fallback_warnings(profile: Profile) -> list[str]:
    """An alias whose real targets fall back to the mock would answer with fake text when they fail."""
    warnings = []
    for alias, model in profile.models.items():
        kinds = [profile.providers[t.provider].kind for t in model.targets]
        fake = [t.name for t, kind in zip(model.targets, kinds, strict=True) if kind == OFFLINE_KIND]
        if fake and len(fake) < len(kinds):
            warnings.append(f"models.{alias}.targets: {', '.join(fake)} is a mock (fake answers) among real"
                            f" targets: when they fail, clients get mock text with status 200; give the mock"
                            f" its own alias")
    return warnings


def _split(line: str) -> tuple[str, str]:
    """``"providers.x.api_key: why"`` → (key path, why); a line without a key path has an empty one."""
    key, sep, message = line.partition(": ")
    return (key, message) if sep and " " not in key else ("", line)


def _json(source: str, problems: list[str], warnings: list[str]) -> list[dict[str, str]]:
    return [{"source": source, "level": level, "key": key, "message": message}
            for level, lines in (("error", problems), ("warning", warnings)) for key, message in map(_split, lines)]


def check(
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
    junit: Path | None = typer.Option(None, "--junit", metavar="FILE", help="Also write JUnit XML here."),
    format: str = typer.Option("table", "--format", metavar="FORMAT",
                               help=f"{FORMAT_HELP} json: one object per problem or warning"
                                    " (source, level, key, message)."),
) -> None:
    """Validate a profile: schema, unknown keys, types, secrets, targets, alias cycles, the port and the cache's
    model, budgets on aliases without a price. Warns (exit 0) about aliases that fall back from real providers
    to the mock, and about targets without a price.

    Example: llmgw check --profile prod.toml --junit check.xml
    """
    if format not in ("table", "json"):
        fail(f"--format: expected table or json, got {format!r}")
    prof: Profile | None = None
    warnings: list[str] = []
    try:
        prof = load_profile(profile)
        source = prof.source
        problems = [p for p in [port_problem(prof.server.port, "server.port")] if p]
        problems += secret_problems(prof) + host_problems(prof) + cache_problems(prof)
        unpriced = unpriced_targets(prof)
        problems += budget_problems(prof, unpriced)
        warnings = mock_fallback_warnings(prof) + unpriced_warnings(unpriced)
    except ProfileError as exc:
        source, problems = exc.source, exc.problems
    if junit is not None:
        junit.write_text(check_junit(source, problems), encoding="utf-8")
    if format == "json":
        print_json(_json(source, problems, warnings))
    else:
        for line in [*problems, *(f"warning: {w}" for w in warnings)]:
            err_console.print(f"{source}: {line}", highlight=False, soft_wrap=True, markup=False)
    if problems:
        raise typer.Exit(1)
    if format == "table" and prof is not None:
        console.print(f"{source}: ok — {plural(len(prof.providers), 'provider')},"
                      f" {plural(len(prof.models), 'model alias', 'model aliases')}", highlight=False,
                      soft_wrap=True, markup=False)
