"""`llmgw smoke`: prove in CI that every alias answers and that its fallbacks take over."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.table import Table

from ..profile import secret_problems
from ..tools.smoke import junit_xml, run_smoke
from .common import PROFILE_HELP, console, fail, load_or_exit, print_json


def smoke(
    profile: Path | None = typer.Option(None, "--profile", "-p", help=PROFILE_HELP),
    offline: bool = typer.Option(False, "--offline", help="Swap every provider for the mock: no network, no spend."),
    fail_target: list[str] = typer.Option([], "--fail", help="Make this provider/model fail. Repeatable."),
    junit: Path | None = typer.Option(None, "--junit", help="Also write JUnit XML here."),
    format: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Send one small request through every model alias and report who answered.

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
        table = Table(title=f"llmgw smoke — {prof.source}" + (" (offline)" if offline else ""), title_justify="left")
        for column in ("alias", "result", "status", "answered by", "attempts", "ms", "note"):
            table.add_column(column, justify="right" if column in ("status", "attempts", "ms") else "left")
        for r in results:
            table.add_row(r.alias, "[green]pass[/]" if r.ok else "[red]FAIL[/]", str(r.status), r.target or "-",
                          str(r.attempts), f"{r.latency_ms:.0f}", r.message)
        console.print(table)
    failed = [r.alias for r in results if not r.ok]
    if failed:
        fail(f"{len(failed)} of {len(results)} aliases failed: {', '.join(failed)}")
    console.print(f"{len(results)} aliases answered.", highlight=False)
