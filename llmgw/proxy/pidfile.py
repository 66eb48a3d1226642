"""The pid files of running servers, so that ``llmgw reload`` finds the process to signal.

Contract:
- ``llmgw serve`` writes ``serve-<port>.pid`` in its state folder (beside the request log) once it listens and
  handles SIGHUP: JSON with the pid (the parent's, with ``--workers``), the port, the profile file and the
  process's start time (Linux: ``/proc/<pid>/stat``), atomically and readable by its owner only (0600). It removes
  the file on a clean exit, only while the file still names this process.
- A pid file is stale when its process is gone, or when a process with that pid started at another time (the pid
  was reused): :func:`running` never returns one, so a reload cannot signal a stranger.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

PATTERN = "serve-*.pid"


def pid_path(state_folder: Path, port: int) -> Path:
    """Where the server listening on ``port`` writes its pid file."""
    return state_folder / f"serve-{port}.pid"


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``), or None where that is unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()   # the command name may hold spaces and parentheses
    return fields[19] if len(fields) > 19 else None


@dataclass(frozen=True)
class ServerRecord:
    """What a pid file says."""

    path: Path
    pid: int
    port: int
    profile: str
    started: str | None

    def alive(self) -> bool:
        """Whether the process is still the one that wrote the file (see the module contract)."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass   # it exists, under another user: the start time decides
        now = process_start(self.pid)
        return self.started is None or now is None or now == self.started


def write(path: Path, port: int, profile: str, pid: int | None = None) -> None:
    """Write the pid file of this process (or ``pid``) atomically, mode 0600."""
    pid = os.getpid() if pid is None else pid
    data = json.dumps({"pid": pid, "port": port, "profile": profile, "started": process_start(pid)})
    temporary = path.with_name(f".{path.name}.{pid}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data.encode())
    finally:
        os.close(fd)
    os.replace(temporary, path)


def read(path: Path) -> ServerRecord | None:
    """The record in ``path``; None when it is missing or not a pid file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ServerRecord(path, int(data["pid"]), int(data["port"]), str(data.get("profile", "")),
                            data.get("started"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove(path: Path, pid: int | None = None) -> None:
    """Remove ``path`` if it still names this process (or ``pid``)."""
    record = read(path)
    if record is not None and record.pid == (os.getpid() if pid is None else pid):
        with contextlib.suppress(OSError):
            path.unlink()


def running(state_folder: Path) -> tuple[list[ServerRecord], list[ServerRecord]]:
    """The servers whose pid files are in ``state_folder``: (alive, stale), by port."""
    alive: list[ServerRecord] = []
    stale: list[ServerRecord] = []
    for path in sorted(state_folder.glob(PATTERN)):
        record = read(path)
        if record is not None:
            (alive if record.alive() else stale).append(record)
    return alive, stale
