"""End-to-end fixtures: `llmgw serve` as a real process on a free port, with a profile written to disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tomli_w


@dataclass
class ServeProcess:
    """A running `llmgw serve`; ``url`` is its root, ``output`` what it printed so far."""

    proc: subprocess.Popen[str]
    url: str
    db: Path
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def stop(self, timeout: float = 30.0, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` (SIGTERM), wait for the exit, and return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.close()
        return code

    def close(self) -> None:
        if self.reader is not None:
            self.reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def write_profile(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def start_serve(profile: Path, db: Path, *args: str, env: dict[str, str] | None = None,
                timeout: float = 20.0) -> ServeProcess:
    """Start `llmgw serve --port 0` and wait until it prints the URL it listens on."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "llmgw", "serve", "--profile", str(profile), "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env)
    assert proc.stdout is not None
    lines: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "listening on " in line and not url:
                url.append(line.split("listening on ", 1)[1].split()[0])
                found.set()
        found.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not found.wait(0.05):
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError("llmgw serve did not start:\n" + "".join(lines))
    if not url:
        proc.wait(5)
        reader.join(5)
        proc.stdout.close()
        raise AssertionError(f"llmgw serve exited with {proc.returncode}:\n" + "".join(lines))
    return ServeProcess(proc, url[0], db, lines, reader)


def stop_all(servers: Sequence[ServeProcess]) -> None:
    """Kill what is still running and close every server's output."""
    for server in servers:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
        server.close()


@contextmanager
def serving_together(starts: Sequence[tuple[Path, Path, dict[str, str] | None]]) -> Iterator[list[ServeProcess]]:
    """Start one server per ``(profile, db, env)`` at the same time; all are stopped on exit. A failed start fails
    the caller once the servers that did start are in the list to stop."""
    with ThreadPoolExecutor(len(starts)) as pool:
        futures = [pool.submit(start_serve, profile, db, env=env) for profile, db, env in starts]
    servers = [f.result() for f in futures if f.exception() is None]
    try:
        for f in futures:
            f.result()
        yield servers
    finally:
        stop_all(servers)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """``serve(profile_dict, *args, env=...)`` starts a server; every one started is stopped at teardown."""
    started: list[ServeProcess] = []

    def start(data: dict[str, Any], *args: str, env: dict[str, str] | None = None) -> ServeProcess:
        db = tmp_path / "llmgw.db"
        data = {**data, "state": {"url": f"sqlite:///{db}"}}
        server = start_serve(write_profile(tmp_path / "profile.toml", data), db, *args, env=env)
        started.append(server)
        return server

    yield start
    stop_all(started)
