"""`llmgw reload` through Typer's CliRunner: it checks the profile before signalling, finds the server by the pid
file ``llmgw serve`` writes for this profile, and never signals a stale pid or a process that is not llmgw."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

from llmgw.cli.main import app
from llmgw.proxy import pidfile

# A stand-in server: counts the SIGHUPs it gets in a file (its command line names llmgw, as `llmgw serve`'s does).
STAND_IN = """
import signal, sys, time
count = 0
def hup(signum, frame):
    global count
    count += 1
    open(sys.argv[1], "w").write(str(count))
signal.signal(signal.SIGHUP, hup)
open(sys.argv[1], "w").write("ready")
while True:
    time.sleep(0.05)
"""


def profile(tmp_path: Path, **extra: object) -> Path:
    data = {"state": {"url": f"sqlite:///{tmp_path / 'state' / 'llmgw.db'}"}, "providers": {"mock": {"kind": "mock"}},
            "models": {"fast": {"targets": ["mock/mock-1"]}}, **extra}
    (tmp_path / "state").mkdir(exist_ok=True)
    path = tmp_path / "llmgw.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    counter = tmp_path / "hups"
    proc = subprocess.Popen([sys.executable, "-c", STAND_IN, str(counter), "llmgw-stand-in"])
    deadline = time.monotonic() + 10
    while not (counter.exists() and counter.read_text() == "ready"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    try:
        yield proc, counter
    finally:
        proc.kill()
        proc.wait()


def hups(counter: Path, wanted: int) -> int:
    deadline = time.monotonic() + 5
    while counter.read_text() != str(wanted) and time.monotonic() < deadline:
        time.sleep(0.02)
    return int(counter.read_text()) if counter.read_text().isdigit() else 0


def test_no_server_running_is_one_line_and_exit_1(tmp_path: Path) -> None:
    path = profile(tmp_path)
    result = CliRunner().invoke(app, ["reload", "--profile", str(path)])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: no llmgw serve is running {path}")


StandIn = tuple[subprocess.Popen[bytes], Path]


def test_a_bad_profile_is_refused_before_anything_is_signalled(tmp_path: Path, stand_in: StandIn,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    proc, counter = stand_in
    monkeypatch.delenv("RELOAD_CLI_MISSING", raising=False)
    path = profile(tmp_path, providers={"up": {"kind": "openai", "api_key": "env:RELOAD_CLI_MISSING"}},
                   models={"fast": {"targets": ["up/gpt-4o-mini"]}})
    pidfile.write(pidfile.pid_path(tmp_path / "state", 4321), 4321, str(path), pid=proc.pid)
    result = CliRunner().invoke(app, ["reload", "--profile", str(path)])
    assert result.exit_code == 1
    assert f"error: {path}: providers.up.api_key:" in result.stderr
    path.write_text("models = [", encoding="utf-8")
    result = CliRunner().invoke(app, ["reload", "--profile", str(path)])
    assert result.exit_code == 1 and f"error: {path}: invalid TOML" in result.stderr
    time.sleep(0.2)
    assert counter.read_text() == "ready"   # never signalled


def test_the_server_of_this_profile_gets_sighup(tmp_path: Path, stand_in: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, counter = stand_in
    path = profile(tmp_path)
    pidfile.write(pidfile.pid_path(tmp_path / "state", 4321), 4321, str(path.resolve()), pid=proc.pid)
    assert oct(pidfile.pid_path(tmp_path / "state", 4321).stat().st_mode & 0o777) == "0o600"
    result = CliRunner().invoke(app, ["reload", "--profile", str(path)])
    assert result.exit_code == 0, result.output
    assert f"pid {proc.pid}, port 4321" in result.stdout
    assert hups(counter, 1) == 1
    result = CliRunner().invoke(app, ["reload", "--profile", str(path), "--pid", str(proc.pid)])
    assert result.exit_code == 0, result.output
    assert hups(counter, 2) == 2


def test_a_server_of_another_profile_is_not_signalled(tmp_path: Path,
                                                      stand_in: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, counter = stand_in
    path = profile(tmp_path)
    pidfile.write(pidfile.pid_path(tmp_path / "state", 4321), 4321, str(tmp_path / "other.toml"), pid=proc.pid)
    result = CliRunner().invoke(app, ["reload", "--profile", str(path)])
    assert result.exit_code == 1
    assert f"running: port 4321 serves {tmp_path / 'other.toml'}" in result.stderr
    assert counter.read_text() == "ready"


def test_a_stale_pid_file_is_removed_and_never_signalled(tmp_path: Path) -> None:
    path = profile(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = pidfile.pid_path(tmp_path / "state", 4000)
    pidfile.write(stale, 4000, str(path.resolve()), pid=gone.pid)
    result = CliRunner().invoke(app, ["reload", "--profile", str(path)])
    assert result.exit_code == 1 and "removed 1 stale pid file" in result.stderr
    assert not stale.exists()


def test_a_reused_pid_is_stale() -> None:
    record = pidfile.ServerRecord(Path("x"), os.getpid(), 4000, "p.toml", started="1")
    assert pidfile.process_start(os.getpid()) not in (None, "1")
    assert not record.alive()
    assert pidfile.ServerRecord(Path("x"), os.getpid(), 4000, "p.toml", pidfile.process_start(os.getpid())).alive()


def test_pid_of_a_process_that_is_not_llmgw_is_refused(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "30"])
    try:
        result = CliRunner().invoke(app, ["reload", "--profile", str(profile(tmp_path)), "--pid", str(other.pid)])
        assert result.exit_code == 1 and "is not llmgw serve" in result.stderr
        time.sleep(0.1)
        assert other.poll() is None   # still alive: SIGHUP would have ended it
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()
