"""The lean Redis client under the shared state: URLs, the handshake, pipelining many callers over one
connection, error replies, and connections that fail with commands in flight."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import pytest

from llmgw.store.resp import RespClient, RespError, RespUrl, encode

from .conftest import RedisServer, free_port, ping, redis_binary


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://127.0.0.1:6380/2", ("127.0.0.1", 6380, None, None, None, 2, False)),
    ("redis://localhost", ("localhost", 6379, None, None, None, 0, False)),
    ("rediss://:s%40cret@cache.internal:6390/0", ("cache.internal", 6390, None, None, "s@cret", 0, True)),
    ("redis://app:pw@h/5", ("h", 6379, None, "app", "pw", 5, False)),
    ("unix:///run/redis.sock?db=3", ("localhost", 6379, "/run/redis.sock", None, None, 3, False)),
])
def test_urls(url: str, expected: tuple[object, ...]) -> None:
    parsed = RespUrl(url)
    assert (parsed.host, parsed.port, parsed.path, parsed.username, parsed.password, parsed.db,
            parsed.tls) == expected


def test_the_handshake_authenticates_and_selects_only_when_asked() -> None:
    assert RespUrl("redis://h/0").handshake() == []
    assert RespUrl("redis://:pw@h/3").handshake() == [("AUTH", "pw"), ("SELECT", 3)]
    assert RespUrl("redis://me:pw@h").handshake() == [("AUTH", "me", "pw")]
    with pytest.raises(ValueError, match="redis://"):
        RespUrl("http://h:6379")


def test_commands_are_resp_arrays_of_bulk_strings() -> None:
    assert encode(("SET", "k", 1.5, b"\r\n")) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n1.5\r\n$2\r\n\r\n\r\n"


async def test_many_callers_share_one_connection_and_each_gets_its_own_reply(redis_server: RedisServer) -> None:
    client = RespClient(redis_server.url)
    try:
        replies = await asyncio.gather(*(client.call("ECHO", f"caller {i}") for i in range(500)))
        assert replies == [f"caller {i}".encode() for i in range(500)]
        assert int((await client.call("CLIENT", "INFO")).split(b"id=")[1].split()[0]) > 0
        clients = await client.call("CLIENT", "LIST")
        assert clients.count(b"cmd=") == 1          # one connection carried them all
    finally:
        await client.close()


async def test_an_error_reply_fails_its_command_only(redis_server: RedisServer) -> None:
    client = RespClient(redis_server.url)
    try:
        await client.call("SET", "text", "not a number")
        results = await asyncio.gather(client.call("INCR", "text"), client.call("GET", "text"),
                                       client.call("EVALSHA", "0" * 40, 0), return_exceptions=True)
        assert isinstance(results[0], RespError) and "not an integer" in str(results[0])
        assert results[1] == b"not a number"
        assert isinstance(results[2], RespError) and str(results[2]).startswith("NOSCRIPT")
        assert await client.call("PING") == b"PONG"
    finally:
        await client.close()


async def test_a_server_going_away_fails_what_is_in_flight_and_the_next_call_reconnects(
        redis_server: RedisServer) -> None:
    client = RespClient(redis_server.url)
    try:
        assert await client.call("SET", "k", "v") == b"OK"
        blocked = asyncio.ensure_future(client.call("BLPOP", "nothing", 30))   # in flight until the server dies
        await asyncio.sleep(0.1)
        redis_server.stop()
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(blocked, 5)
        with pytest.raises(OSError):
            await client.call("PING")
        redis_server.start()
        assert await client.call("PING") == b"PONG"
    finally:
        await client.close()


async def test_a_peer_that_speaks_no_resp_fails_the_connection() -> None:
    held: list[asyncio.StreamWriter] = []

    async def babble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()

    server = await asyncio.start_server(babble, "127.0.0.1", 0)
    client = RespClient(f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0")
    try:
        with pytest.raises(ConnectionError, match="not RESP"):
            await asyncio.wait_for(client.call("PING"), 5)
    finally:
        await client.close()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_password_and_a_database_are_used(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--requirepass", "p@ss word", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            if ping(port):
                break
            await asyncio.sleep(0.01)
        refused = RespClient(f"redis://127.0.0.1:{port}/0")
        with pytest.raises(RespError, match="NOAUTH"):
            await refused.call("SET", "k", "v")
        await refused.close()
        client = RespClient(f"redis://:p%40ss%20word@127.0.0.1:{port}/4")
        assert await client.call("SET", "k", "in four") == b"OK"
        assert await client.call("SELECT", 4) == b"OK"
        assert await client.call("GET", "k") == b"in four"
        assert await client.call("SELECT", 0) == b"OK"
        assert await client.call("GET", "k") is None
        await client.close()
    finally:
        proc.kill()
        proc.wait(10)


def test_tls_verification_follows_the_url(tmp_path: Path) -> None:
    assert RespUrl("redis://h/0").tls_context() is None
    verified = RespUrl("rediss://h:6380/0").tls_context()
    assert verified is not None and verified.check_hostname and verified.verify_mode == ssl.CERT_REQUIRED
    unverified = RespUrl("rediss://h:6380/0?ssl_cert_reqs=none").tls_context()
    assert unverified is not None and not unverified.check_hostname and unverified.verify_mode == ssl.CERT_NONE
    with pytest.raises(OSError):     # a CA file that is not there is an error, not a silent default
        RespUrl(f"rediss://h/0?ssl_ca_certs={tmp_path / 'missing.pem'}").tls_context()
