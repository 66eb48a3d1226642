"""`llmgw guard test`: run the profile's guardrail rules on a text, or on a file of test cases.

Contract: with TEXT (or stdin) it prints each finding (rule, entity, span, action, why) and the text as it would
leave, exit 0. With ``--cases FILE`` it runs every ``[[case]]`` and reports pass/fail per case: exit 0 when all
pass, 1 otherwise (and 1, with the key path, for an unreadable or invalid cases file or bad rules). A case judges a
``text``, or a whole request or answer (``body``: a table, or ``json``: its JSON text, in the client ``format``)
exactly as the proxy walks it; ``absent`` lists values that must not survive in what would leave. A profile without
``[[guardrails]]`` is tested with the default rule set: redact (and restore) every PII entity.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from ..errors import InvalidRequest
from ..formats import FORMATS, named
from ..formats.validate import check_duplicate_keys
from ..guardrails.body import scan_body
from ..guardrails.engine import Budget, BudgetExceeded, Scan, over_budget
from ..guardrails.redact import Placeholders, json_escaped
from ..guardrails.rules import Rule, default_rules, parse_rules
from ..profile import ProfileError
from .common import PROFILE_HELP, console, err_console, fail, load_or_exit, plural, print_json

app = typer.Typer(help="Try guardrail rules without starting the proxy.\n\n"
                       "Example: llmgw guard test \"mail jane@example.com\"", no_args_is_help=True,
                  rich_markup_mode=None)

OUTCOMES = ("allow", "flag", "redact", "block")


@app.callback()
def guard() -> None:
    """Try guardrail rules without starting the proxy."""


@dataclass(frozen=True)
class Result:
    """One text judged: the outcome, the findings (log form: no values) and the text as it would leave."""

    outcome: str
    findings: list[dict[str, Any]]
    text: str

    @property
    def entities(self) -> list[str]:
        return sorted({str(f["entity"]) for f in self.findings})


@dataclass(frozen=True)
class Case:
    name: str
    text: str | None
    expect: str | None
    expect_entities: list[str] | None
    body: dict[str, Any] | None = None      # a request (or answer) in ``format``
    raw: str | None = None                  # its JSON text (``json``), checked for repeated keys first
    format: str = "openai"
    phase: str | None = None
    absent: tuple[str, ...] = ()


def judge(rules: list[Rule], text: str, phase: str = "request") -> Result:
    """Run the rules that apply to ``phase`` on ``text`` as the proxy would."""
    scan = Scan(tuple(r for r in rules if r.applies(phase)), phase, Placeholders(), budget=Budget())
    with scan.budget.running():     # type: ignore[union-attr]
        try:
            out = scan.text(text, "text")
        except BudgetExceeded as exceeded:
            return _over_budget(scan, str(exceeded), text)
    outcome = scan.outcome()
    return Result(outcome, scan.drain(), "" if outcome == "block" else out)


def judge_body(rules: list[Rule], format: str, body: dict[str, Any], phase: str = "request",
               raw: str | None = None) -> Result:
    """Run the rules that apply to ``phase`` on every text of ``body`` (a request, or an answer for the response
    phase, in client format ``format``) as the proxy walks it; ``text`` is the body as it would leave (JSON)."""
    scan = Scan(tuple(r for r in rules if r.applies(phase)), phase, Placeholders(), budget=Budget())
    if raw is not None:
        try:
            check_duplicate_keys(raw.encode(), body)
        except InvalidRequest as refused:
            return Result("block", [{"rule": "request", "kind": "json", "entity": "duplicate_key", "action": "block",
                                     "phase": phase, "where": refused.param or "", "span": None,
                                     "why": refused.message}], "")
    wire = named(format)
    if phase == "request":
        def walk(fn: Any) -> None:
            wire.request_texts("chat", body, fn)
    else:
        def walk(fn: Any) -> None:
            wire.answer_texts(body, fn)
    with scan.budget.running():     # type: ignore[union-attr]
        try:
            scan_body(walk, scan, on_text=scan.table.reserve)
        except BudgetExceeded as exceeded:
            return _over_budget(scan, str(exceeded), orjson.dumps(body).decode())
    outcome = scan.outcome()
    return Result(outcome, scan.drain(), "" if outcome == "block" else orjson.dumps(body).decode())


def _over_budget(scan: Scan, spent: str, text: str) -> Result:
    error = over_budget(scan.rules, scan, "the text", spent)
    if error is not None:
        return Result("block", [{"rule": "budget", "kind": "budget", "entity": "scan_budget", "action": "block",
                                 "phase": scan.phase, "where": "", "span": None, "why": error.message}], "")
    return Result(scan.outcome(), scan.drain(), text)


def _rules(profile: Path | None) -> tuple[list[Rule], str]:
    prof = load_or_exit(profile)
    raw = prof.extra.get("guardrails")
    try:
        rules = parse_rules(raw)
    except ProfileError as exc:
        for problem in exc.problems:
            err_console.print("[bold red]error:[/] " + escape(f"{prof.source}: {problem}"), highlight=False,
                              soft_wrap=True)
        raise typer.Exit(1) from None
    if not rules:
        return default_rules(), f"{prof.source} has no [[guardrails]]: default rules (redact all PII)"
    return rules, f"{prof.source}: {len(rules)} rule(s)"


def load_cases(path: Path) -> list[Case]:
    """The ``[[case]]`` entries of a TOML file; exits 1 naming the first problem's key path."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"{path}: cannot read: {exc.strerror}")
    except tomllib.TOMLDecodeError as exc:
        fail(f"{path}: invalid TOML: {exc}")
    raw = data.get("case")
    if not isinstance(raw, list) or not raw:
        fail(f"{path}: no [[case]] entries (each: text = \"…\", expect = \"allow\"|\"redact\"|\"block\")")
    return [_case(entry, f"{path}: case[{i}]", i) for i, entry in enumerate(raw)]


_CASE_KEYS = ("absent", "body", "expect", "expect_entities", "format", "json", "name", "phase", "text")


def _case(entry: Any, where: str, i: int) -> Case:
    """One ``[[case]]`` entry; exits 1 naming the first problem's key path."""
    if not isinstance(entry, dict):
        fail(f"{where}: expected a table")
    given = [k for k in ("text", "body", "json") if k in entry]
    if len(given) != 1 or not isinstance(entry.get("text", ""), str):
        fail(f"{where}.text: required (a string), or a request as body (a table) or json (its JSON text)")
    unknown = set(entry) - set(_CASE_KEYS)
    if unknown:
        fail(f"{where}.{sorted(unknown)[0]}: unknown key (allowed: {', '.join(_CASE_KEYS)})")
    expect = entry.get("expect")
    if expect is not None and expect not in OUTCOMES:
        fail(f"{where}.expect: expected one of {', '.join(OUTCOMES)}, got {expect!r}")
    entities = entry.get("expect_entities")
    if entities is not None and not (isinstance(entities, list) and all(isinstance(e, str) for e in entities)):
        fail(f"{where}.expect_entities: expected an array of entity names")
    absent = entry.get("absent", [])
    if not (isinstance(absent, list) and all(isinstance(a, str) and a for a in absent)):
        fail(f"{where}.absent: expected an array of non-empty strings")
    format = entry.get("format", "openai")
    if format not in FORMATS:
        fail(f"{where}.format: expected one of {', '.join(FORMATS)}, got {format!r}")
    phase = entry.get("phase")
    if phase is not None and phase not in ("request", "response"):
        fail(f"{where}.phase: expected request or response, got {phase!r}")
    body, raw = entry.get("body"), entry.get("json")
    if raw is not None:
        try:
            body = orjson.loads(raw) if isinstance(raw, str) else None
        except orjson.JSONDecodeError as exc:
            fail(f"{where}.json: not valid JSON: {exc}")
    if "text" not in entry and not isinstance(body, dict):
        fail(f"{where}.{'json' if raw is not None else 'body'}: expected a JSON object")
    return Case(str(entry.get("name") or f"case {i + 1}"), entry.get("text"), expect, entities, body,
                raw if isinstance(raw, str) else None, format, phase, tuple(absent))


def _case_failures(case: Case, result: Result) -> list[str]:
    problems = [f"{value!r} would leave" for value in case.absent
                if value in result.text or (case.text is None and json_escaped(value) in result.text)]
    if case.expect is not None and result.outcome != case.expect:
        problems.append(f"expected {case.expect}, got {result.outcome}")
    if case.expect_entities is not None and sorted(set(case.expect_entities)) != result.entities:
        problems.append(f"expected entities [{', '.join(sorted(set(case.expect_entities)))}], "
                        f"got [{', '.join(result.entities)}]")
    return problems


def _print_result(result: Result) -> None:
    table = Table(title=f"{plural(len(result.findings), 'finding')} — {result.outcome}", title_justify="left",
                  pad_edge=False)
    for column in ("rule", "entity", "span", "action", "why"):
        table.add_column(column, overflow="fold")
    for f in result.findings:
        table.add_row(escape(str(f["rule"])), escape(str(f["entity"])), f"{f['span'][0]}-{f['span'][1]}",
                      str(f["action"]), escape(str(f["why"])))
    if result.findings:
        console.print(table)
    else:
        console.print("no findings — allow", highlight=False)
    if result.outcome == "block":
        console.print("the request would be refused (403); nothing leaves", highlight=False)
    else:
        console.print("as it would leave:", style="bold", highlight=False)
        console.print(result.text, highlight=False, markup=False, soft_wrap=True)


def _run_cases(rules: list[Rule], cases: list[Case], phase: str, format: str) -> bool:
    rows = []
    for case in cases:
        at = case.phase or phase
        result = (judge(rules, case.text, at) if case.text is not None
                  else judge_body(rules, case.format, case.body or {}, at, case.raw))
        problems = _case_failures(case, result)
        rows.append({"name": case.name, "expect": case.expect, "outcome": result.outcome,
                     "entities": result.entities, "passed": not problems, "problems": problems})
    if format == "json":
        print_json(rows)
    else:
        table = Table(title=f"{sum(r['passed'] for r in rows)}/{len(rows)} cases passed", title_justify="left",
                      pad_edge=False)
        for column in ("case", "expected", "got", "entities", "result"):
            table.add_column(column, overflow="fold")
        for r in rows:
            verdict = "[green]pass[/]" if r["passed"] else "[red]FAIL[/] " + escape("; ".join(r["problems"]))
            table.add_row(escape(r["name"]), escape(r["expect"] or "-"), r["outcome"], escape(", ".join(r["entities"])),
                          verdict)
        console.print(table)
    return all(r["passed"] for r in rows)


@app.command("test", short_help="Run guardrail rules on a text or a case file.")
def guard_test(
    text: str | None = typer.Argument(None, metavar="TEXT", help="The text to check (default: read stdin)."),
    cases: Path | None = typer.Option(None, "--cases", metavar="FILE",
                                      help="TOML file of [[case]] text (or body/json)/expect/expect_entities."),
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
    phase: str = typer.Option("request", "--phase", metavar="PHASE",
                              help="Run the rules that apply to: request or response."),
    format: str = typer.Option("table", "--format", metavar="FORMAT", help="table or json."),
) -> None:
    """Run the profile's guardrail rules on TEXT (or stdin) and show each finding and the text as it would leave.

    Example: llmgw guard test "mail jane@example.com, card 4111 1111 1111 1111"
    Example: llmgw guard test --cases guard-cases.toml --profile prod.toml
    """
    if phase not in ("request", "response"):
        fail(f"--phase: expected request or response, got {phase!r}")
    if format not in ("table", "json"):
        fail(f"--format: expected table or json, got {format!r}")
    rules, about = _rules(profile)
    if cases is not None:
        if text is not None:
            fail("give either TEXT or --cases, not both")
        if format == "table":
            console.print(about, highlight=False, markup=False)
        if not _run_cases(rules, load_cases(cases), phase, format):
            raise typer.Exit(1)
        return
    if text is None:
        if sys.stdin.isatty():
            fail("give TEXT, pipe the text on stdin, or use --cases FILE")
        text = sys.stdin.read()
    result = judge(rules, text, phase)
    if format == "json":
        print_json([{"outcome": result.outcome, "findings": result.findings,
                     "text": None if result.outcome == "block" else result.text}])
        return
    console.print(about, highlight=False, markup=False)
    _print_result(result)
