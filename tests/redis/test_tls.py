"""Shared state over TLS (``rediss://``) against a real ``redis-server`` listening only on a TLS port, with a
certificate from a throwaway CA: the server is verified against ``ssl_ca_certs``, refused without it, trusted
blindly only with ``ssl_cert_reqs=none``, and a plain connection to it fails at once."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from llmgw.store.resp import RespClient
from llmgw.store.shared import StateUnavailable, Window
from llmgw.store.shared_redis import RedisState

from .conftest import free_port, redis_binary


class TlsRedis:
    def __init__(self, workdir: Path) -> None:
        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file, self.cert_file, self.key_file = (workdir / n for n in ("ca.pem", "cert.pem", "key.pem"))
        ca.cert_pem.write_to_path(str(self.ca_file))
        issued.cert_chain_pems[0].write_to_path(str(self.cert_file))
        issued.private_key_pem.write_to_path(str(self.key_file))
        self.context = ssl.create_default_context(cafile=str(self.ca_file))
        self.port = free_port()
        self.log = workdir / "redis.log"
        self.proc = subprocess.Popen(
            [redis_binary(), "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
             "--tls-cert-file", str(self.cert_file), "--tls-key-file", str(self.key_file),
             "--tls-ca-cert-file", str(self.ca_file), "--tls-auth-clients", "no", "--save", "", "--appendonly",
             "no", "--dir", str(workdir), "--logfile", str(self.log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw, \
                    self.context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def url(self, query: str = "") -> str:
        return f"rediss://127.0.0.1:{self.port}/0{query}"


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    server = TlsRedis(tmp_path)
    deadline = time.monotonic() + 10
    try:
        while not server.ping():
            if server.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not start with TLS:\n{server.log.read_text(errors='replace')}")
            time.sleep(0.02)
        yield server
    finally:
        server.proc.kill()
        server.proc.wait(10)


def rpm(limit: int) -> Window:
    return Window("llmgw:rpm:key:tls", "rpm", limit, 1, "key tls requests per minute")


async def test_limits_work_over_tls_with_the_servers_ca(tls_redis: TlsRedis) -> None:
    state = RedisState(tls_redis.url(f"?ssl_ca_certs={tls_redis.ca_file}"))
    try:
        now = time.time()
        assert await state.acquire("a", [rpm(2)], [], now) is None
        assert await state.acquire("b", [rpm(2)], [], now) is None
        denial = await state.acquire("c", [rpm(2)], [], now)
        assert denial is not None and denial.label == "key tls requests per minute"
    finally:
        await state.close()


async def test_a_server_the_client_cannot_verify_is_refused(tls_redis: TlsRedis) -> None:
    state = RedisState(tls_redis.url(), deadline_s=3.0)   # the system's CAs do not know this one
    try:
        started = time.monotonic()
        with pytest.raises(StateUnavailable, match="certificate verify failed"):
            await state.acquire("a", [rpm(2)], [], time.time())
        assert time.monotonic() - started < 3.5
    finally:
        await state.close()


async def test_verification_is_off_only_when_the_url_says_so(tls_redis: TlsRedis) -> None:
    state = RedisState(tls_redis.url("?ssl_cert_reqs=none"))
    try:
        assert await state.acquire("a", [rpm(1)], [], time.time()) is None
    finally:
        await state.close()


async def test_a_plain_connection_to_a_tls_port_fails_within_the_deadline(tls_redis: TlsRedis) -> None:
    state = RedisState(f"redis://127.0.0.1:{tls_redis.port}/0", deadline_s=1.0)
    try:
        started = time.monotonic()
        with pytest.raises(StateUnavailable):
            await state.acquire("a", [rpm(1)], [], time.time())
        assert time.monotonic() - started < 2.0
    finally:
        await state.close()


async def test_close_returns_once_the_tls_connection_is_gone(tls_redis: TlsRedis) -> None:
    """A TLS connection says goodbye before it closes: close() waits for that, so nothing is left open behind it
    (at shutdown, the loop may not run again)."""
    client = RespClient(tls_redis.url(f"?ssl_ca_certs={tls_redis.ca_file}"))
    assert await client.call("PING") == b"PONG"
    connection = client._connection
    assert connection is not None
    await client.close()
    assert connection.lost.is_set()
