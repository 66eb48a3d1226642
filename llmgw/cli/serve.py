"""`llmgw serve`: start the proxy.

Contract: every problem that would stop the server (unresolvable secrets, an open proxy on a public host, a port
outside 0-65535, a port in use, a PostgreSQL request log that cannot be reached or refuses the password) is one
line on stderr and exit 1, before or instead of a traceback. The banner
names the version, the URL, the aliases (each alias with a target that has no price is named in an ``unpriced:``
line), the request log and a command that works against this very server (with a key when the profile needs one).
Once it listens it writes its pid file for ``llmgw reload`` (:mod:`llmgw.proxy.pidfile`) and removes it on exit;
SIGHUP (and, with ``--watch``, a change of the file) reloads the profile without a restart (:mod:`llmgw.proxy.reload`).
"""

from __future__ import annotations

import dataclasses
import errno
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import typer
from rich.markup import escape

from .. import __version__
from ..pricing import unpriced_targets
from ..profile import Profile, host_problems, secret_problems
from ..proxy import pidfile
from ..proxy.reload import ProfileSource
from ..proxy.runner import serve as run_server
from ..store import log_backend
from ..store.log_backend import LogSource
from .common import PROFILE_HELP, console, err_console, fail, load_or_exit

MAX_PORT = 65535


def port_problem(port: int, where: str) -> str | None:
    """Why ``port`` cannot be listened on (``where`` names the option or profile key), or None. 0 picks one."""
    if 0 <= port <= MAX_PORT:
        return None
    return f"{where}: {port} is not a TCP port (1-{MAX_PORT}, or 0 to pick a free one)"


def try_commands(profile: Profile, url: str) -> list[str]:
    """Commands a reader can paste to see this server answer: ``/v1/models``, with a key when the profile needs
    one (a profile key's ``env:``/``file:`` reference); with minted keys only, ``/health`` and how to mint one."""
    models = shlex.quote(f"{url}/v1/models")
    if not profile.governed:
        return [f"curl {models}"]
    for key in profile.keys.values():
        ref = key.key.ref
        if ref.startswith("env:"):
            return [f'curl -H "Authorization: Bearer ${ref[4:]}" {models}']
        if ref.startswith("file:"):
            return [f'curl -H "Authorization: Bearer $(cat {shlex.quote(ref[5:])})" {models}']
    team = shlex.quote(next(iter(profile.teams), "TEAM"))
    return [f"curl {shlex.quote(url + '/health')}",
            f"llmgw keys create --team {team}, then: curl -H \"Authorization: Bearer sk-llmgw-...\" {models}"]


def _announce(prof: Profile, workers: int, url: str) -> None:
    console.print(f"llmgw {__version__} listening on {url}  (profile: {prof.source}, workers: {workers})",
                  highlight=False, soft_wrap=True, markup=False)
    for alias, model in prof.models.items():
        targets = ", ".join(t.name for t in model.targets)
        console.print(f"  model {alias} -> {targets}  [{model.strategy}]",
                      highlight=False, soft_wrap=True, markup=False)
    for alias, missing in unpriced_targets(prof).items():
        console.print(f"  unpriced: model {alias} -> {', '.join(t.name for t in missing)} has no price (logged as"
                      " unpriced, $0 in reports; a budget refuses it): add a [prices] entry",
                      highlight=False, soft_wrap=True, markup=False)
    console.print(f"  request log: {LogSource.of(prof.state).describe()}", highlight=False, soft_wrap=True,
                  markup=False)
    for command in try_commands(prof, url):
        console.print(f"  try: {command}", highlight=False, soft_wrap=True, markup=False)


def _write_pid_file(prof: Profile, port: int, watch: bool) -> list[Path]:
    """Write the pid file ``llmgw reload`` finds this server by and say how to reload; [] when it cannot be
    written (a reload then needs ``--pid``)."""
    path = pidfile.pid_path(prof.state.db_path.parent, port)
    try:
        pidfile.write(path, port, prof.source if prof.source.startswith("<") else str(Path(prof.source).resolve()))
    except OSError as exc:
        err_console.print(f"warning: could not write {path} ({exc.strerror}): `llmgw reload` needs --pid",
                          highlight=False, soft_wrap=True, markup=False)
        return []
    watching = " (and whenever the file changes: --watch)" if watch else ""
    command = "llmgw reload" if prof.source.startswith("<") else f"llmgw reload --profile {shlex.quote(prof.source)}"
    console.print(f"  reload: {command}{watching}", highlight=False, soft_wrap=True, markup=False)
    return [path]


def _listen_problem(exc: OSError, host: str, port: int) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {host}:{port}: the port is in use; stop what uses it or pick a free one with --port 0"
    if exc.errno == errno.EACCES:
        return f"cannot listen on {host}:{port}: permission denied (ports below 1024 need privileges; try --port 0)"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def serve(
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
    host: str | None = typer.Option(None, "--host", metavar="HOST",
                                    help="Interface to listen on (default: [server] host)."),
    port: int | None = typer.Option(None, "--port", metavar="N",
                                    help="TCP port, 1-65535 (default: [server] port; 0 picks a free one)."),
    workers: int | None = typer.Option(None, "--workers", metavar="N", min=1,
                                       help="Processes sharing the port, at least 1 (default: [server] workers)."),
    watch: bool = typer.Option(False, "--watch", help="Reload the profile whenever its file changes (SIGHUP and"
                                                      " `llmgw reload` reload it in any case)."),
) -> None:
    """Start the proxy from a TOML profile.

    Example: llmgw serve --profile profiles/openai.toml --port 4000
    """
    if port is not None and (problem := port_problem(port, "--port")):
        fail(problem)
    prof = load_or_exit(profile)
    source = ProfileSource.of(prof, workers=workers, host=host)
    if watch and source is None:
        fail(f"--watch: {prof.source} is not a file to watch; pass --profile FILE")
    host = host or prof.server.host
    port = prof.server.port if port is None else port
    workers = workers or prof.server.workers
    problems = [p for p in [port_problem(port, "server.port")] if p]
    problems += secret_problems(prof) + host_problems(prof, host)
    if workers != prof.server.workers:  # the workers share limits through a store chosen from this number
        prof = dataclasses.replace(prof, server=dataclasses.replace(prof.server, workers=workers))
    if workers > 1 and port == 0:
        problems.append("--workers: several workers need a fixed --port (0 would give each its own port)")
    if not problems and (problem := log_backend.check(prof.state)):   # a PostgreSQL log must be there at start
        problems.append(problem)
    if problems:
        for problem in problems:
            err_console.print("[bold red]error:[/] " + escape(f"{prof.source}: {problem}"), highlight=False,
                              soft_wrap=True)
        raise typer.Exit(1)
    written: list[Path] = []

    def ready(url: str) -> None:
        _announce(prof, workers, url)
        written.extend(_write_pid_file(prof, urlsplit(url).port or port, watch))

    try:
        run_server(prof, host, port, workers, on_ready=ready, source=source, watch=watch)
    except OSError as exc:
        err_console.print("[bold red]error:[/] " + escape(_listen_problem(exc, host, port)), highlight=False,
                          soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        for path in written:
            pidfile.remove(path)
    console.print("llmgw stopped; request log flushed.", highlight=False)
