"""`llmgw serve`: start the proxy."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from rich.markup import escape

from ..profile import host_problems, secret_problems
from ..proxy.runner import serve as run_server
from .common import PROFILE_HELP, console, err_console, load_or_exit


def serve(
    profile: Path | None = typer.Option(None, "--profile", "-p", help=PROFILE_HELP),
    host: str | None = typer.Option(None, "--host", help="Interface to listen on (default: [server] host)."),
    port: int | None = typer.Option(None, "--port", help="TCP port (default: [server] port; 0 picks a free one)."),
    workers: int | None = typer.Option(None, "--workers", min=1,
                                       help="Processes sharing the port (default: [server] workers)."),
) -> None:
    """Start the proxy from a TOML profile.

    Example: llmgw serve --profile profiles/openai.toml --port 4000
    """
    prof = load_or_exit(profile)
    host = host or prof.server.host
    port = prof.server.port if port is None else port
    workers = workers or prof.server.workers
    problems = secret_problems(prof) + host_problems(prof, host)
    if workers != prof.server.workers:  # the workers share limits through a store chosen from this number
        prof = dataclasses.replace(prof, server=dataclasses.replace(prof.server, workers=workers))
    if workers > 1 and port == 0:
        problems.append("--workers: several workers need a fixed --port (0 would give each its own port)")
    if problems:
        for problem in problems:
            err_console.print("[bold red]error:[/] " + escape(f"{prof.source}: {problem}"), highlight=False,
                              soft_wrap=True)
        raise typer.Exit(1)

    def announce(url: str) -> None:
        console.print(f"llmgw listening on {url}  (profile: {prof.source}, workers: {workers})",
                      highlight=False, soft_wrap=True)
        for alias, model in prof.models.items():
            targets = ", ".join(t.name for t in model.targets)
            console.print(f"  model {alias} -> {targets}  [{model.strategy}]",
                          highlight=False, soft_wrap=True, markup=False)
        console.print(f"  request log: {prof.state.db_path}", highlight=False, soft_wrap=True)
        console.print(f"  try: curl {url}/v1/models", highlight=False, soft_wrap=True)

    try:
        run_server(prof, host, port, workers, on_ready=announce)
    except OSError as exc:
        err_console.print(f"[bold red]error:[/] cannot listen on {host}:{port}: {exc.strerror}", highlight=False)
        raise typer.Exit(1) from None
    console.print("llmgw stopped; request log flushed.", highlight=False)
