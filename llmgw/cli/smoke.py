"""`llmgw smoke`: prove in CI that every alias answers and that its fallbacks take over."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from ..profile import secret_problems
from ..tools.smoke import SmokeResult, junit_xml, run_smoke
from .common import FORMAT_HELP, PROFILE_HELP, console, fail, load_or_exit, plain, plural, print_json


def smoke(
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
    offline: bool = typer.Option(False, "--offline", help="Swap every provider for the mock: no network, no spend."),
    fail_target: list[str] = typer.Option([], "--fail", metavar="TARGET",
                                          help="Make this provider/model fail. Repeatable."),
    junit: Path | None = typer.Option(None, "--junit", metavar="FILE", help="Also write JUnit XML here."),
    format: str = typer.Option("table", "--format", metavar="FORMAT", help=FORMAT_HELP),
) -> None:
    """Send one small request through every model alias and report who answered, and who failed before.

    Exit 0 when every alias answered, 1 otherwise.

    Example: llmgw smoke --profile prod.toml --offline --fail openai/gpt-4o-mini --junit smoke.xml
    """
    if format not in ("table", "json"):
        fail(f"--format: expected table or json, got {format!r}")
    prof = load_or_exit(profile)
    targets = {t.name for model in prof.models.values() for t in model.targets}
    for name in fail_target:
        if name not in targets:
            fail(f"--fail: {name!r} is not a target of any alias (targets: {', '.join(sorted(targets)) or 'none'})")
    if not offline:
        problems = secret_problems(prof)
        if problems:
            fail(f"{problems[0]} (or run with --offline)")
    if not prof.models:
        fail(f"{prof.source}: no [models.*] aliases to test")
    results = asyncio.run(run_smoke(prof, offline=offline, fail_targets=fail_target))
    if junit is not None:
        junit.write_text(junit_xml(results), encoding="utf-8")
    if format == "json":
        print_json([r.as_dict() for r in results])
    else:
        console.print(_table(prof.source + (" (offline)" if offline else ""), results, set(fail_target)))
    failed = [r.alias for r in results if not r.ok]
    if failed:
        fail(f"{len(failed)} of {plural(len(results), 'alias', 'aliases')} failed: {', '.join(failed)}")
    console.print(f"{plural(len(results), 'alias', 'aliases')} answered.", highlight=False)


def _failed_cell(result: SmokeResult, forced: set[str]) -> Text:
    """The targets that failed before (or instead of) an answer, those made to fail marked."""
    names = [f"{t} (--fail)" if t in forced else t for t in result.failed]
    return plain(", ".join(names) or "-", "yellow" if names else "dim")


def _table(title: str, results: list[SmokeResult], forced: set[str]) -> Table:
    table = Table(title=plain(f"llmgw smoke — {title}"), title_justify="left")
    for column in ("alias", "result", "status", "answered by", "failed", "attempts", "ms", "note"):
        table.add_column(column, justify="right" if column in ("status", "attempts", "ms") else "left")
    for r in results:
        table.add_row(plain(r.alias), plain("pass", "green") if r.ok else plain("FAIL", "bold red"), str(r.status),
                      plain(r.target if r.ok else "nobody", "" if r.ok else "red"), _failed_cell(r, forced),
                      str(r.attempts), f"{r.latency_ms:,.0f}", plain(_note(r)))
    return table


def _note(result: SmokeResult) -> str:
    """Why an alias failed; for one that passed, whether a fallback had to take over."""
    if not result.ok:
        return result.message
    return "the fallback took over" if result.failed else ""
