"""`llmgw profile init` (write a commented starter profile) and `llmgw profile show` (the effective profile).

Contract: a starter profile never answers a real alias with fake answers: the mock is in it only when asked for
(``--provider mock``), and then under its own alias (``mock``), never as a fallback of real providers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w
import typer

from ..profile import parse_profile
from ..providers import spec as registry
from .common import PROFILE_HELP, console, fail, load_or_exit, print_json
from .profile_show import effective

app = typer.Typer(
    help="Create profiles, and show the effective one.\n\nExample: llmgw profile show --profile llmgw.toml",
    no_args_is_help=True, rich_markup_mode=None)

_COMMENTS = {
    "server": "Where the proxy listens. A non-loopback host needs [keys] or [teams] (no open proxies).",
    "state": "The request log (SQLite). `shared` (redis://...) shares limits and budgets across instances.",
    "providers": "Upstreams. api_key takes \"env:NAME\" or \"file:PATH\"; keys are never logged or echoed.",
    "models": "Aliases clients put in \"model\". Targets are \"provider/model\", tried per `strategy`.",
    "prices": "USD per 1M tokens, added to or overriding the shipped price table.",
}


def provider_entry(spec: registry.ProviderSpec, preset: registry.Preset) -> dict[str, Any]:
    """The ``[providers.NAME]`` table the starter writes for one ``--provider`` choice."""
    entry: dict[str, Any] = {"kind": spec.kind}
    if spec.api_key:
        entry["api_key"] = spec.api_key
    if preset.base_url:
        entry["base_url"] = preset.base_url
    return entry


def _aliases(chosen: list[tuple[registry.ProviderSpec, registry.Preset]]) -> dict[str, dict[str, Any]]:
    """``default`` routes to the chosen real providers in order (falling back from one to the next); the mock,
    when chosen, answers its own alias (``mock``, or ``default`` when it is all there is)."""
    real = [f"{preset.name}/{preset.model}" for spec, preset in chosen if spec.kind != registry.OFFLINE_KIND]
    fake = [f"{preset.name}/{preset.model}" for spec, preset in chosen if spec.kind == registry.OFFLINE_KIND]
    models: dict[str, dict[str, Any]] = {}
    if real:
        models["default"] = {"targets": real, "strategy": "fallback", "retries": 1}
    if fake:
        models["mock" if real else "default"] = {"targets": fake}
    return models


def starter(providers: list[str]) -> dict[str, Any]:
    """The starter profile as data, for ``providers`` (``--provider`` choices, from the registry)."""
    presets = registry.init_presets()
    chosen = [presets[name] for name in providers]
    data: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 4000, "max_body_mb": 8, "timeout_s": 600, "log_bodies": True},
        "state": {"url": "sqlite:///~/.llmgw/llmgw.db"},
        "providers": {preset.name: provider_entry(spec, preset) for spec, preset in chosen},
        "models": _aliases(chosen),
    }
    free = [f"{preset.name}/{preset.model}" for _, preset in chosen if preset.free]
    if free:
        data["prices"] = {target: {"input": 0.0, "output": 0.0} for target in free}
    return data


def render(data: dict[str, Any]) -> str:
    """TOML text with a comment above each section."""
    parts = ["# llmgw profile. Check it: `llmgw check --profile FILE`; every default filled in:"
             " `llmgw profile show --profile FILE`.\n# Every key is described in README.md#profile-reference.\n"]
    for section, value in data.items():
        parts.append(f"# {_COMMENTS[section]}\n" + tomli_w.dumps({section: value}))
    return "\n".join(parts)


@app.command(short_help="Write a commented starter profile.")
def init(
    out: Path = typer.Option(Path("llmgw.toml"), "--out", "-o", metavar="FILE", help="File to write."),
    provider: list[str] = typer.Option([], "--provider", metavar="NAME",
                                       help=f"One of: {', '.join(registry.init_presets())}. Repeatable"
                                            " (default: openai)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented starter profile. Real providers share the alias `default`, falling back in the order
    given; the mock (fake answers) is added only with --provider mock, under its own alias.

    Example: llmgw profile init --out llmgw.toml --provider openai --provider anthropic
    """
    presets = registry.init_presets()
    chosen = provider or [name for name, (_, preset) in presets.items() if preset.default]
    unknown = [p for p in chosen if p not in presets]
    if unknown:
        fail(f"--provider: unknown provider {unknown[0]!r} (one of: {', '.join(presets)})")
    if out.exists() and not force:
        fail(f"{out} exists; use --force to overwrite it")
    data = starter(list(dict.fromkeys(chosen)))
    parse_profile(data)  # the starter must always be a valid profile
    out.write_text(render(data), encoding="utf-8")
    console.print(f"wrote {out}; next: llmgw check --profile {out}", highlight=False, markup=False)


@app.command(short_help="Print the effective profile (defaults filled, secrets masked).")
def show(
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
    format: str = typer.Option("toml", "--format", metavar="FORMAT", help="toml or json."),
) -> None:
    """Print the profile as the server would use it: every default filled in, alias references expanded to their
    targets, secrets shown as their env:/file: reference (a literal secret as ***).

    Example: llmgw profile show --profile llmgw.toml --format json
    """
    if format not in ("toml", "json"):
        fail(f"--format: expected toml or json, got {format!r}")
    prof = load_or_exit(profile)
    data = effective(prof)
    if format == "json":
        print_json(data)
        return
    typer.echo(f"# the effective profile of {prof.source} (defaults filled in, secrets masked)")
    typer.echo(tomli_w.dumps(data), nl=False)
