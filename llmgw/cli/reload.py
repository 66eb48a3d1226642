"""`llmgw reload`: make a running `llmgw serve` re-read its profile (SIGHUP), after checking the profile here.

Contract: the profile is loaded and checked first, as ``llmgw check`` does (every problem one ``source: key.path:
why`` line on stderr, exit 1, nothing signalled). The server is the one whose pid file
(:mod:`llmgw.proxy.pidfile`, in the profile's state folder) names this very profile file, or ``--pid N``; stale
pid files are removed and never signalled. No running server, several candidates, or a process that is not
``llmgw``: one line on stderr and exit 1. Success prints which process was signalled; the server's own log says
what changed, or why it refused the profile and kept the old one.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import typer
from rich.markup import escape

from ..profile import Profile
from ..proxy import pidfile
from ..proxy.reload import profile_problems
from .common import PROFILE_HELP, console, err_console, fail, load_or_exit


def _same_file(a: str, b: str) -> bool:
    return not a.startswith("<") and not b.startswith("<") and Path(a).resolve() == Path(b).resolve()


def _looks_like_llmgw(pid: int) -> bool:
    """Whether ``pid``'s command line mentions llmgw (True where it cannot be read)."""
    try:
        return b"llmgw" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def _find_server(prof: Profile) -> pidfile.ServerRecord:
    """The live server started from ``prof``'s file, or exit 1 saying why there is none (see the contract)."""
    folder = prof.state.db_path.parent
    alive, stale = pidfile.running(folder) if folder.is_dir() else ([], [])
    for record in stale:
        with contextlib.suppress(OSError):
            record.path.unlink()
    mine = [r for r in alive if _same_file(r.profile, prof.source) or prof.source == r.profile]
    if len(mine) > 1:
        mine = [r for r in mine if r.port == prof.server.port] or mine
    if len(mine) == 1:
        return mine[0]
    if len(mine) > 1:
        ports = ", ".join(str(r.port) for r in mine)
        fail(f"several llmgw serve processes run {prof.source} (ports {ports}); pass --pid N")
    others = "; ".join(f"port {r.port} serves {r.profile}" for r in alive)
    cleaned = f"; removed {len(stale)} stale pid file(s)" if stale else ""
    fail(f"no llmgw serve is running {prof.source} (no live pid file in {folder}{cleaned})"
         + (f"; running: {others}" if others else "; start one with `llmgw serve`"))


def reload(
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
    pid: int | None = typer.Option(None, "--pid", metavar="N", min=1,
                                   help="Signal this process (default: the server found by its pid file)."),
) -> None:
    """Make a running server re-read its profile without a restart, after checking the profile.

    Example: llmgw reload --profile prod.toml
    """
    prof = load_or_exit(profile)
    problems = profile_problems(prof)
    if problems:
        for problem in problems:
            err_console.print("[bold red]error:[/] " + escape(f"{prof.source}: {problem}"), highlight=False,
                              soft_wrap=True)
        raise typer.Exit(1)
    if pid is None:
        record = _find_server(prof)
        pid, where = record.pid, f"pid {record.pid}, port {record.port}"
    else:
        where = f"pid {pid}"
        if not _looks_like_llmgw(pid):
            fail(f"--pid: process {pid} is not llmgw serve; nothing was signalled")
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        fail(f"--pid: no process {pid} is running")
    except PermissionError:
        fail(f"not allowed to signal process {pid} (it belongs to another user)")
    console.print(f"asked llmgw serve ({where}) to reload {prof.source}; its log says what changed, or why it"
                  " kept the old profile", highlight=False, soft_wrap=True, markup=False)
