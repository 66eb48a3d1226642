"""The upstream HTTP client against real servers: aiohttp servers for well-formed HTTP, and raw asyncio servers
that send exactly the bytes a test needs (broken, hostile or slow answers)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web

from llmgw.providers import http_encoding
from llmgw.providers.http_address import Destination, Resolver
from llmgw.providers.http_client import MAX_HEADER_BYTES, READ_HIGH_WATER, USER_AGENT, UpstreamClient
from tests.security.upstream import free_port

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
BODY = b'{"ok": true}'


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    upstream = UpstreamClient()
    yield upstream
    await upstream.close()


class Seen:
    """What an aiohttp test server received."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes, Any]] = []   # headers, body, peer


async def aiohttp_server(handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                         **runner: Any) -> tuple[str, web.AppRunner]:
    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    started = web.AppRunner(app, access_log=None, **runner)
    await started.setup()
    site = web.TCPSite(started, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return f"http://127.0.0.1:{port}", started


@contextlib.asynccontextmanager
async def raw_server(handler: RawHandler) -> AsyncIterator[str]:
    """A server that runs ``handler`` on each connection; its URL. Handlers still running at the end are
    cancelled."""
    running: set[asyncio.Task[None]] = set()

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        try:
            await handler(reader, writer)
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(run, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's head and body (by its Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    return head + await reader.readexactly(length)


def recording(seen: Seen) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        seen.requests.append((dict(request.headers), await request.read(), peer))
        return web.Response(body=BODY, content_type="application/json")
    return handle


async def test_a_whole_answer_and_its_connection_kept_for_the_next(client: UpstreamClient) -> None:
    seen = Seen()
    url, runner = await aiohttp_server(recording(seen))
    try:
        for number in range(3):
            async with client.post(f"{url}/v1/chat?n={number}", data=b'{"a":1}',
                                   headers={"Content-Type": "application/json", "Authorization": "Bearer k",
                                            "Host": "evil.example", "Connection": "close"}) as resp:
                assert resp.status == 200
                assert resp.headers["content-type"] == "application/json"
                assert await resp.read() == BODY
                assert resp.content.at_eof()
    finally:
        await runner.cleanup()
    assert client.connections_made == 1
    assert len({peer for _, _, peer in seen.requests}) == 1     # one connection served all three
    headers, body, _ = seen.requests[0]
    assert body == b'{"a":1}'
    assert headers["Host"] == url.removeprefix("http://")          # the caller's Host is not sent
    assert headers["Content-Length"] == "7" and headers["User-Agent"] == USER_AGENT
    assert headers["Authorization"] == "Bearer k" and headers["Accept-Encoding"] == "gzip, deflate"
    assert headers.get("Connection", "keep-alive").lower() != "close"


async def test_a_chunked_stream_arrives_piece_by_piece(client: UpstreamClient) -> None:
    async def stream(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for number in range(3):
            await response.write(b"data: %d\n\n" % number)
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    url, runner = await aiohttp_server(stream)
    try:
        for _ in range(2):
            pieces = []
            async with client.post(url + "/s", data=b"{}", headers={}) as resp:
                assert not resp.content.at_eof()
                async for piece in resp.content.iter_any():
                    assert piece
                    pieces.append(piece)
                assert resp.content.at_eof()
            assert b"".join(pieces) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
            assert len(pieces) >= 3          # each write came as it was sent, not at the end
    finally:
        await runner.cleanup()
    assert client.connections_made == 1


async def test_an_answer_left_unread_closes_its_connection(client: UpstreamClient) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first")
        await asyncio.sleep(0.3)
        await response.write(b"second")
        return response

    url, runner = await aiohttp_server(slow)
    try:
        async with client.post(url, data=b"", headers={}) as resp:
            assert await anext(aiter(resp.content.iter_any())) == b"first"
        async with client.post(url, data=b"", headers={}) as resp:
            assert await resp.read() == b"firstsecond"
    finally:
        await runner.cleanup()
    assert client.connections_made == 2


async def test_a_connection_the_server_closed_while_idle_is_not_reused(client: UpstreamClient) -> None:
    seen = Seen()
    url, runner = await aiohttp_server(recording(seen), keepalive_timeout=0.05)
    try:
        for _ in range(2):
            async with client.post(url, data=b"{}", headers={}) as resp:
                assert await resp.read() == BODY
            await asyncio.sleep(0.3)     # the server closes the idle connection
    finally:
        await runner.cleanup()
    assert client.connections_made == 2


async def test_idle_connections_expire_after_keepalive() -> None:
    seen = Seen()
    url, runner = await aiohttp_server(recording(seen))
    client = UpstreamClient(keepalive_s=0.1)
    try:
        for _ in range(2):
            async with client.post(url, data=b"{}", headers={}) as resp:
                await resp.read()
            await asyncio.sleep(0.25)
    finally:
        await client.close()
        await runner.cleanup()
    assert client.connections_made == 2


async def test_concurrent_requests_each_get_their_own_answer(client: UpstreamClient) -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        await asyncio.sleep(0.01 * (int(body) % 3))
        return web.Response(body=body * 2)

    url, runner = await aiohttp_server(echo)

    async def one(number: int) -> bytes:
        async with client.post(url, data=str(number).encode(), headers={}) as resp:
            return await resp.read()

    try:
        for _ in range(3):
            answers = await asyncio.gather(*(one(n) for n in range(20)))
            assert answers == [str(n).encode() * 2 for n in range(20)]
    finally:
        await runner.cleanup()
    assert client.connections_made <= 20


async def test_an_answer_delimited_by_the_connection_closing(client: UpstreamClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    async with raw_server(handler) as url:
        for _ in range(2):
            async with client.post(url, data=b"x", headers={}) as resp:
                assert await resp.read() == b"all of it"
    assert client.connections_made == 2     # such a connection is never reused


@pytest.mark.parametrize("stream", [False, True])
async def test_a_connection_closed_mid_answer_is_an_error(client: UpstreamClient, stream: bool) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()

    pieces: list[bytes] = []
    async with raw_server(handler) as url, client.post(url, data=b"x", headers={}) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            if stream:
                async for piece in resp.content.iter_any():
                    pieces.append(piece)
            else:
                await resp.read()
    assert pieces == ([b"only ten b"] if stream else [])   # what came before the break is still given


async def test_a_connection_closed_before_any_answer(client: UpstreamClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    async with raw_server(handler) as url:
        for _ in range(3):
            with pytest.raises(aiohttp.ServerDisconnectedError):
                async with client.post(url, data=b"x", headers={}):
                    pass
    assert client.connections_made == 3 and client.open_connections == 0   # none kept after failing


@pytest.mark.parametrize("answer", [
    b"NOT HTTP AT ALL\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\n",
])
async def test_a_malformed_answer_is_a_payload_error(client: UpstreamClient, answer: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.close()

    async with raw_server(handler) as url:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with client.post(url, data=b"x", headers={}) as resp:
                await resp.read()


async def test_a_header_block_trickled_past_the_limit_is_a_payload_error(client: UpstreamClient) -> None:
    """Many headers, each in a read of its own: the block is bounded while it arrives, not once it is complete."""
    sent = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        with contextlib.suppress(ConnectionError):
            for number in range(4 * MAX_HEADER_BYTES // 1024):   # never ends its block
                line = b"X-Part-%d: " % number + b"a" * 1000 + b"\r\n"
                writer.write(line)
                await writer.drain()
                sent += len(line)
                await asyncio.sleep(0.001)
        writer.close()

    async with raw_server(handler) as url:
        with pytest.raises(aiohttp.ClientPayloadError, match="header block"):
            async with client.post(url, data=b"x", headers={}) as resp:
                await resp.read()
    assert MAX_HEADER_BYTES < sent < 3 * MAX_HEADER_BYTES   # refused soon after the limit, not at the block's end


async def test_informational_answers_are_skipped(client: UpstreamClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                     b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\nRetry-After: 7\r\n\r\ndone")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()

    async with raw_server(handler) as url, client.post(url, data=b"x", headers={}) as resp:
        assert resp.status == 201
        assert resp.headers.get("retry-after") == "7" and "Link" not in resp.headers
        assert await resp.read() == b"done"


async def test_bytes_nobody_asked_for_drop_the_connection(client: UpstreamClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil")   # unasked
            await writer.drain()

    async with raw_server(handler) as url:
        for _ in range(2):
            async with client.post(url, data=b"x", headers={}) as resp:
                assert await resp.read() == b"ok"
            await asyncio.sleep(0.2)
    assert client.connections_made == 2   # the unasked answer was never taken for the second request's


@pytest.mark.parametrize("stall_after_headers", [False, True])
async def test_a_stalled_upstream_times_out_per_read(stall_after_headers: bool) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if stall_after_headers:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            await writer.drain()
        await asyncio.sleep(5)
        writer.close()

    client = UpstreamClient()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=0.2)
    started = time.monotonic()
    try:
        async with raw_server(handler) as url:
            with pytest.raises(aiohttp.ServerTimeoutError) as caught:
                async with client.post(url, data=b"x", headers={}, timeout=timeout) as resp:
                    assert [p async for p in resp.content.iter_any()] == [b"first"]
    finally:
        await client.close()
    assert isinstance(caught.value, TimeoutError)
    assert time.monotonic() - started < 2


async def test_a_tls_handshake_that_never_comes_times_out(client: UpstreamClient) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)   # accepts the connection, never answers the TLS hello

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=0.3)
    started = time.monotonic()
    async with raw_server(silent) as url:
        with pytest.raises(TimeoutError):
            async with client.post(url.replace("http://", "https://"), data=b"x", headers={}, timeout=timeout):
                pass
    assert time.monotonic() - started < 3
    assert client.connections_made == 0


@pytest.mark.parametrize(("ttl_s", "lookups"), [(300.0, 1), (0.0, 3)])
async def test_a_host_is_looked_up_once_and_each_address_tried(ttl_s: float, lookups: int) -> None:
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    resolver = Resolver(ttl_s=ttl_s)
    client = UpstreamClient(resolver=resolver)
    try:
        async with raw_server(closing) as url:
            by_name = url.replace("127.0.0.1", "localhost")   # ::1 too, where nothing listens: the next address
            assert (socket.AF_INET, "127.0.0.1") in await Resolver().addresses("localhost", 80)
            for _ in range(3):
                async with client.post(by_name, data=b"x", headers={}) as resp:
                    assert await resp.read() == b"ok"
    finally:
        await client.close()
    assert client.connections_made == 3 and resolver.lookups == lookups


@pytest.mark.parametrize(("url", "head"), [
    ("https://api.example.com/v1/chat/completions", b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.example.com\r\n"),
    ("https://api.example.com:443/v1", b"POST /v1 HTTP/1.1\r\nHost: api.example.com\r\n"),
    ("http://[::1]:8080/v1?alt=sse&key=a b", b"POST /v1?alt=sse&key=a+b HTTP/1.1\r\nHost: [::1]:8080\r\n"),
    ("http://h/models/x y:generate\r\nX-Injected: 1",
     b"POST /models/x%20y:generateX-Injected:%201 HTTP/1.1\r\nHost: h\r\n"),
])
def test_a_destination_is_one_request_line_and_host(url: str, head: bytes) -> None:
    assert Destination(url).head == head


@pytest.mark.parametrize("url", ["ftp://h/x", "http:///nohost", "unix:/tmp/s"])
def test_a_destination_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(aiohttp.InvalidURL):
        Destination(url)


async def test_an_ip_literal_is_not_looked_up() -> None:
    resolver = Resolver()
    assert await resolver.addresses("127.0.0.1", 80) == [(0, "127.0.0.1")]
    assert await resolver.addresses("::1", 80) == [(0, "::1")]
    assert resolver.lookups == 0


async def test_a_host_that_does_not_resolve_is_a_client_error() -> None:
    class Nowhere(Resolver):
        async def addresses(self, host: str, port: int) -> list[tuple[int, str]]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    client = UpstreamClient(resolver=Nowhere())
    try:
        with pytest.raises(aiohttp.ClientOSError, match=r"cannot connect to upstream\.example:80"):
            async with client.post("http://upstream.example/v1", data=b"x", headers={}):
                pass
    finally:
        await client.close()


async def test_connecting_nowhere_is_a_client_error(client: UpstreamClient) -> None:
    with pytest.raises(aiohttp.ClientOSError):
        async with client.post(f"http://127.0.0.1:{free_port()}/v1", data=b"x", headers={}):
            pass


@pytest.mark.parametrize("headers", [{"X-Session": "a\r\nX-Injected: 1"}, {"X-Session": "a\nb"},
                                     {"X-Bad\r\nX-Injected": "1"}, {"X-Session": "a\x00b"}])
async def test_a_header_with_a_line_break_is_refused_before_sending(client: UpstreamClient,
                                                                   headers: dict[str, str]) -> None:
    seen = Seen()
    url, runner = await aiohttp_server(recording(seen))
    try:
        with pytest.raises(ValueError):
            async with client.post(url, data=b"x", headers=headers):
                pass
    finally:
        await runner.cleanup()
    assert seen.requests == [] and client.connections_made == 0


async def test_a_request_hook_adds_headers_to_a_copy() -> None:
    seen = Seen()
    url, runner = await aiohttp_server(recording(seen))
    client = UpstreamClient(on_request=lambda headers: headers.update({"traceparent": "00-abc-def-01"}))
    mine = {"Authorization": "Bearer k"}
    try:
        async with client.post(url, data=b"x", headers=mine) as resp:
            await resp.read()
    finally:
        await client.close()
        await runner.cleanup()
    assert seen.requests[0][0]["traceparent"] == "00-abc-def-01"
    assert mine == {"Authorization": "Bearer k"}


async def test_a_fast_upstream_and_a_slow_reader_buffer_a_bounded_amount(client: UpstreamClient) -> None:
    total = 8 * 1024 * 1024

    async def flood(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse()
        await response.prepare(request)
        piece = b"x" * 65536
        for _ in range(total // len(piece)):
            await response.write(piece)
        return response

    url, runner = await aiohttp_server(flood)
    try:
        async with client.post(url, data=b"x", headers={}) as resp:
            received = 0
            async for piece in resp.content.iter_any():
                assert len(piece) <= READ_HIGH_WATER + 256 * 1024   # never the whole flood at once
                received += len(piece)
                await asyncio.sleep(0.002)
    finally:
        await runner.cleanup()
    assert received == total


async def test_a_whole_answer_longer_than_the_read_buffer(client: UpstreamClient) -> None:
    body = bytes(range(256)) * (12 * READ_HIGH_WATER // 256)

    async def big(request: web.Request) -> web.StreamResponse:
        await request.read()
        return web.Response(body=body)

    url, runner = await aiohttp_server(big)
    try:
        for _ in range(2):
            async with client.post(url, data=b"x", headers={}) as resp:
                assert await asyncio.wait_for(resp.read(), 10) == body
    finally:
        await runner.cleanup()
    assert client.connections_made == 1


async def test_an_endless_whole_answer_is_cut_off() -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = b"10000\r\n" + b"x" * 65536 + b"\r\n"
        while True:
            writer.write(piece)
            await writer.drain()

    client = UpstreamClient(max_body_bytes=1024 * 1024)
    try:
        async with raw_server(endless) as url, client.post(url, data=b"x", headers={}) as resp:
            with pytest.raises(aiohttp.ClientPayloadError, match="over 1048576 bytes"):
                await asyncio.wait_for(resp.read(), 10)
    finally:
        await client.close()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_compressed_answer_is_inflated(client: UpstreamClient, stream: bool) -> None:
    body = b'{"choices": [{"message": {"content": "' + b"compressible " * 5000 + b'"}}]}'

    async def gzipped(request: web.Request) -> web.StreamResponse:
        await request.read()
        assert "gzip" in request.headers["Accept-Encoding"]
        if not stream:
            response = web.Response(body=body)
            response.enable_compression(web.ContentCoding.gzip)
            return response
        streamed = web.StreamResponse()
        streamed.enable_compression(web.ContentCoding.gzip)
        await streamed.prepare(request)
        for start in range(0, len(body), 10000):
            await streamed.write(body[start:start + 10000])
            await asyncio.sleep(0.01)
        await streamed.write_eof()
        return streamed

    url, runner = await aiohttp_server(gzipped)
    try:
        for _ in range(2):
            async with client.post(url, data=b"x", headers={"Accept-Encoding": "br"}) as resp:
                assert resp.headers["Content-Encoding"] == "gzip"
                if stream:
                    pieces = [piece async for piece in resp.content.iter_any()]
                    assert all(pieces) and b"".join(pieces) == body
                else:
                    assert await resp.read() == body
    finally:
        await runner.cleanup()
    assert client.connections_made == 1


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS])   # zlib data, and raw deflate
async def test_a_deflated_answer_either_way(client: UpstreamClient, wbits: int) -> None:
    body = b"deflated " * 1000
    packer = zlib.compressobj(wbits=wbits)
    packed = packer.compress(body) + packer.flush()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n" % len(packed)
                     + packed)
        await writer.drain()
        await asyncio.sleep(0.5)

    async with raw_server(handler) as url, client.post(url, data=b"x", headers={}) as resp:
        assert await resp.read() == body


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 4\r\n\r\nabcd",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 12\r\n\r\nnot gzip at all"[:-3],
])
async def test_a_body_that_does_not_inflate_is_a_payload_error(client: UpstreamClient, answer: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()
        await asyncio.sleep(0.5)

    async with raw_server(handler) as url, client.post(url, data=b"x", headers={}) as resp:
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_a_zip_bomb_is_refused(client: UpstreamClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_encoding, "MAX_INFLATE_PER_PIECE", 1024 * 1024)
    packer = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    bomb = packer.compress(b"\0" * 32 * 1024 * 1024) + packer.flush()     # 32 MiB of zeros in ~32 kB

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb) + bomb)
        await writer.drain()
        await asyncio.sleep(0.5)

    assert len(bomb) < 64 * 1024
    async with raw_server(handler) as url, client.post(url, data=b"x", headers={}) as resp:
        with pytest.raises(aiohttp.ClientPayloadError, match="inflates past"):
            await resp.read()


async def test_tls_verifies_the_upstream(tmp_path: Any) -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    seen = Seen()
    app = web.Application()
    app.router.add_post("/{tail:.*}", recording(seen))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "localhost", 0, ssl_context=server_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    trusted, default = UpstreamClient(ssl_context=trusting), UpstreamClient()
    try:
        for _ in range(2):
            async with trusted.post(f"https://localhost:{port}/v1", data=b"x", headers={}) as resp:
                assert await resp.read() == BODY
        with pytest.raises(aiohttp.ClientOSError, match="certificate verify failed"):
            async with default.post(f"https://localhost:{port}/v1", data=b"x", headers={}):
                pass
    finally:
        await trusted.close()
        await default.close()
        await runner.cleanup()
    assert trusted.connections_made == 1
    assert seen.requests[0][0]["Host"] == f"localhost:{port}"
