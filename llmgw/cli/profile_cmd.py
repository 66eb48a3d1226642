"""`llmgw profile init`: write a commented starter profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w
import typer

from ..profile import parse_profile
from ..providers import spec as registry
from .common import console, fail

app = typer.Typer(help="Create and inspect profiles.", no_args_is_help=True, rich_markup_mode=None)

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


def starter(providers: list[str]) -> dict[str, Any]:
    """The starter profile as data, for ``providers`` (``--provider`` choices, from the registry)."""
    presets = registry.init_presets()
    chosen = [presets[name] for name in providers]
    targets = [f"{preset.name}/{preset.model}" for _, preset in chosen]
    data: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 4000, "max_body_mb": 8, "timeout_s": 600, "log_bodies": True},
        "state": {"url": "sqlite:///~/.llmgw/llmgw.db"},
        "providers": {preset.name: provider_entry(spec, preset) for spec, preset in chosen},
        "models": {"default": {"targets": targets, "strategy": "fallback", "retries": 1}},
    }
    free = [target for target, (_, preset) in zip(targets, chosen, strict=True) if preset.free]
    if free:
        data["prices"] = {target: {"input": 0.0, "output": 0.0} for target in free}
    return data


def render(data: dict[str, Any]) -> str:
    """TOML text with a comment above each section."""
    parts = ["# llmgw profile. Check it with `llmgw check --profile FILE`; reference: README.md#profile.\n"]
    for section, value in data.items():
        parts.append(f"# {_COMMENTS[section]}\n" + tomli_w.dumps({section: value}))
    return "\n".join(parts)


@app.command()
def init(
    out: Path = typer.Option(Path("llmgw.toml"), "--out", "-o", help="File to write."),
    provider: list[str] = typer.Option([], "--provider",
                                       help=f"One of: {', '.join(registry.init_presets())}. Repeatable."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented starter profile.

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
    console.print(f"wrote {out}; next: llmgw check --profile {out}", highlight=False)
