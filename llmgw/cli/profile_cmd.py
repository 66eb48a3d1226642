"""`llmgw profile init`: write a commented starter profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w
import typer

from ..profile import parse_profile
from .common import console, fail

app = typer.Typer(help="Create and inspect profiles.", no_args_is_help=True, rich_markup_mode=None)

_PROVIDERS: dict[str, dict[str, Any]] = {
    "openai": {"kind": "openai", "api_key": "env:OPENAI_API_KEY"},
    "anthropic": {"kind": "anthropic", "api_key": "env:ANTHROPIC_API_KEY"},
    "gemini": {"kind": "gemini", "api_key": "env:GEMINI_API_KEY"},
    "local": {"kind": "openai-compatible", "base_url": "http://127.0.0.1:8000/v1"},
    "ollama": {"kind": "openai-compatible", "base_url": "http://127.0.0.1:11434/v1"},
    "mock": {"kind": "mock"},
}
_DEFAULT_MODEL = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-3-5-haiku-latest",
    "gemini": "gemini-2.0-flash",
    "local": "meta-llama/Llama-3.1-8B-Instruct",
    "ollama": "llama3.1",
    "mock": "mock-model",
}

_COMMENTS = {
    "server": "Where the proxy listens. A non-loopback host needs [keys] or [teams] (no open proxies).",
    "state": "The request log (SQLite). `shared` (redis://...) shares limits and budgets across instances.",
    "providers": "Upstreams. api_key takes \"env:NAME\" or \"file:PATH\"; keys are never logged or echoed.",
    "models": "Aliases clients put in \"model\". Targets are \"provider/model\", tried per `strategy`.",
    "prices": "USD per 1M tokens, added to or overriding the shipped price table.",
}


def starter(providers: list[str]) -> dict[str, Any]:
    """The starter profile as data, for ``providers`` (names from the known list)."""
    targets = [f"{name}/{_DEFAULT_MODEL[name]}" for name in providers]
    data: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 4000, "max_body_mb": 8, "timeout_s": 600, "log_bodies": True},
        "state": {"url": "sqlite:///~/.llmgw/llmgw.db"},
        "providers": {name: dict(_PROVIDERS[name]) for name in providers},
        "models": {"default": {"targets": targets, "strategy": "fallback", "retries": 1}},
    }
    local = [t for t, name in zip(targets, providers, strict=True) if name in ("local", "ollama", "mock")]
    if local:
        data["prices"] = {t: {"input": 0.0, "output": 0.0} for t in local}
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
    provider: list[str] = typer.Option([], "--provider", help=f"One of: {', '.join(_PROVIDERS)}. Repeatable."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented starter profile.

    Example: llmgw profile init --out llmgw.toml --provider openai --provider anthropic
    """
    chosen = provider or ["openai", "mock"]
    unknown = [p for p in chosen if p not in _PROVIDERS]
    if unknown:
        fail(f"--provider: unknown provider {unknown[0]!r} (one of: {', '.join(_PROVIDERS)})")
    if out.exists() and not force:
        fail(f"{out} exists; use --force to overwrite it")
    data = starter(list(dict.fromkeys(chosen)))
    parse_profile(data)  # the starter must always be a valid profile
    out.write_text(render(data), encoding="utf-8")
    console.print(f"wrote {out}; next: llmgw check --profile {out}", highlight=False)
