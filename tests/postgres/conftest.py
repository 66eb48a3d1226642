"""A real PostgreSQL server (Debian's binaries, ``scripts/ensure-postgres`` installs them) in a temporary folder,
on a free loopback port with its unix socket in that folder: one per test session (per pytest-xdist worker), with
a fresh database per test; ``postgres_server`` gives a test one of its own to stop and start.

Password authentication over TCP (scram-sha-256), so that the profile's ``[state] password`` is really used.
``initdb`` refuses to run as root: as root the server runs as the ``postgres`` user (``nobody`` without one) and
its folder belongs to that user. These tests are never skipped.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

PASSWORD_ENV = "LLMGW_TEST_PG_PASSWORD"
USER = "llmgw"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bin_dir() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not versions:
        pytest.fail("PostgreSQL is not installed (tests/postgres/ needs initdb and pg_ctl):"
                    " run scripts/ensure-postgres", pytrace=False)
    return Path(versions[-1]).parent


def _run_as() -> tuple[list[str], int | None, int | None]:
    """The prefix that runs a command as an unprivileged user when we are root, with that user's uid and gid."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return ["runuser", "-u", name, "--"], entry.pw_uid, entry.pw_gid
    pytest.fail("running as root without a 'postgres' or 'nobody' user to run PostgreSQL as", pytrace=False)


@dataclass
class PostgresServer:
    """A PostgreSQL cluster we made: ``url(db)``, ``stop()``, ``start()``, ``create_db()``."""

    base: Path
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.bin = bin_dir()
        self.prefix, uid, gid = _run_as()
        self.data = self.base / "data"
        self.sock = self.base / "sock"
        self.sock.mkdir()
        pwfile = self.base / "pw"
        pwfile.write_text(self.password)
        if uid is not None:
            for path in (self.base, self.sock, pwfile):
                os.chown(path, uid, gid or -1)
        self._pg([str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "-E", "UTF8", "--no-sync",
                  "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"])

    def _pg(self, argv: list[str], timeout: float = 60.0) -> None:
        done = subprocess.run([*self.prefix, *argv], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            log = self.base / "server.log"
            text = log.read_text(errors="replace") if log.exists() else ""
            raise AssertionError(f"{argv[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{text}")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off"
                   " -c full_page_writes=off -c max_connections=200")
        self._pg([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "server.log"), "-w",
                  "-t", "30", "-o", options, "start"])

    def stop(self, mode: str = "fast") -> None:
        self._pg([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop"])

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.url(), password=self.password, autocommit=True)

    def create_db(self) -> str:
        name = "t_" + secrets.token_hex(6)
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return name

    def drop_db(self, name: str) -> None:
        with contextlib.suppress(psycopg.Error), self.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def destroy(self) -> None:
        if self.running():
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


def make_server() -> PostgresServer:
    for attempt in range(3):   # the free port may be taken between finding it and binding it
        server = PostgresServer(Path(tempfile.mkdtemp(prefix="llmgw-pg-")))
        try:
            server.start()
            return server
        except AssertionError:
            server.destroy()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresServer]:
    """One server for this test session (each xdist worker has its own)."""
    server = make_server()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url(pg_cluster: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database on the session's server; its password is in ``$LLMGW_TEST_PG_PASSWORD``."""
    if not pg_cluster.running():
        pg_cluster.start()
    monkeypatch.setenv(PASSWORD_ENV, pg_cluster.password)
    name = pg_cluster.create_db()
    try:
        yield pg_cluster.url(name)
    finally:
        pg_cluster.drop_db(name)


@pytest.fixture
def postgres_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresServer]:
    """A server of this test's own (to stop and start), with an empty database ``llmgw``."""
    server = make_server()
    monkeypatch.setenv(PASSWORD_ENV, server.password)
    try:
        with server.admin() as conn:
            conn.execute("CREATE DATABASE llmgw")
        yield server
    finally:
        server.destroy()


def wait_for(check: object, timeout: float = 20.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():   # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(interval)
