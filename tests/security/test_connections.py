"""Connections cannot be hoarded: a real `llmgw serve` closes connections that do not finish their headers, idle
keep-alive connections and bodies that never finish, answers a clear 503 beyond its connection cap (so /health
says something instead of hanging), and runs with its open-file soft limit raised to the hard limit."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ServeProcess, start_serve, stop_all, write_profile

CAP = 60
PARTIAL = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"   # the blank line never comes


def address(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rpartition(":")
    return host, int(port)


def connect(url: str) -> socket.socket:
    sock = socket.create_connection(address(url), timeout=5)
    sock.settimeout(5)
    return sock


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or 5 s pass)."""
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def health(url: str) -> bytes:
    with connect(url) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return answer(sock)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One server for the module: every test leaves it with no connection open."""
    folder = tmp_path_factory.mktemp("connections")
    profile = write_profile(folder / "profile.toml", {
        "server": {"header_timeout_s": 1, "keepalive_timeout_s": 1, "body_timeout_s": 1, "max_connections": CAP},
        "state": {"url": f"sqlite:///{folder / 'llmgw.db'}"},
        "providers": {"mock": {"kind": "mock"}}, "models": {"fast": {"targets": ["mock/m"]}}})
    process = start_serve(profile, folder / "llmgw.db")
    yield process
    stop_all([process])


def settled(url: str) -> None:
    """Wait until the server has room again (connections closed by earlier tests are counted out)."""
    deadline = time.monotonic() + 5
    while not health(url).startswith(b"HTTP/1.1 200 ") and time.monotonic() < deadline:
        time.sleep(0.05)


def test_half_open_connections_are_capped_answered_and_reaped(server: Any) -> None:
    """Before: 3,000 half-open connections stayed open for 120 s and /health failed at the fd limit."""
    settled(server.url)
    held, refused = [], []
    try:
        for i in range(2 * CAP):
            sock = connect(server.url)
            sock.sendall(PARTIAL)
            (held if i < CAP else refused).append(sock)
        for sock in refused:   # beyond the cap: a clear 503 at once, and the connection closed
            reply = answer(sock)
            assert reply.startswith(b"HTTP/1.1 503 ") and b"too_many_connections" in reply, reply
        busy = health(server.url)
        assert busy.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in busy
        started = time.monotonic()
        for sock in held:      # within the header timeout: a 408 and the connection closed
            reply = answer(sock)
            assert reply.startswith(b"HTTP/1.1 408 ") and b"header_timeout" in reply, reply
        assert time.monotonic() - started < 4
        assert health(server.url).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in held + refused:
            sock.close()


def test_idle_keep_alive_connections_are_closed(server: Any) -> None:
    with connect(server.url) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        assert answer(sock) == b""   # closed by the server, not by the 5 s read timeout
        assert time.monotonic() - started < 4


def test_a_body_that_never_finishes_gets_408(server: Any) -> None:
    with connect(server.url) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100000\r\n\r\n{\"model\": \"fast\", ")
        started = time.monotonic()
        reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 408 ") and b"body_timeout" in reply, reply
        assert time.monotonic() - started < 4


def test_the_open_file_soft_limit_is_raised_to_the_hard_limit(server: Any) -> None:
    limits = Path(f"/proc/{server.proc.pid}/limits")
    if not limits.exists():
        pytest.skip("no /proc")
    line = next(x for x in limits.read_text().splitlines() if x.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    assert soft == hard or (hard == "unlimited" and int(soft) >= 10240), line


def test_the_cap_leaves_room_for_upstream_connections_and_files() -> None:
    from llmgw.proxy.connections import FD_RESERVE, connection_cap

    assert connection_cap(4096, 1 << 20) == 4096
    assert connection_cap(4096, 1024) == (1024 - FD_RESERVE) // 2
    assert connection_cap(4096, 100) == 16 and connection_cap(10, 0) == 10
