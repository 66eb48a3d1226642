""":class:`HttpEventSource` against small aiohttp servers: parsing, the admin key, unreachable and dropped proxies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from llmgw.proxy.events import EventHub, events_handler
from llmgw.tui.http_source import HttpEventSource
from llmgw.tui.source import Event, Status

from .support import ADMIN_KEY, free_port, record, serve


def fast_source(url: str, key: str | None = None, **options: Any) -> HttpEventSource:
    return HttpEventSource(url, key, retry_initial_s=0.05, retry_max_s=0.2, **options)


async def take(events: AsyncIterator[Event], count: int, timeout: float = 5.0) -> list[Event]:
    """The next ``count`` events."""
    out: list[Event] = []
    async with asyncio.timeout(timeout):
        while len(out) < count:
            out.append(await anext(events))
    return out


async def next_status(events: AsyncIterator[Event], timeout: float = 5.0) -> Status:
    """The next :class:`Status`, skipping records."""
    async with asyncio.timeout(timeout):
        while not isinstance(event := await anext(events), Status):
            pass
    return event


async def test_records_are_parsed_across_chunks_comments_and_junk() -> None:
    first, second = orjson.dumps(record(1)), orjson.dumps(record(2, alias="smart"))

    async def events(request: web.Request) -> web.StreamResponse:
        assert request.query.get("bodies") == "1"
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b": connected\n\n")
        await response.write(b"data: " + first[:10])
        await asyncio.sleep(0.05)
        await response.write(first[10:] + b"\n\n: keep-alive\n\ndata: not json\n\ndata: [1, 2]\n\n")
        await response.write(b"data: " + second + b"\r\n\r\n")
        await asyncio.sleep(30)
        return response

    app = web.Application()
    app.router.add_get("/admin/events", events)
    async with serve(app) as url, contextlib.aclosing(fast_source(url + "/").events()) as stream:
        got = await take(stream, 3)
    assert got[0] == Status("connected", f"connected to {url}")
    assert got[1] == record(1) | {"time": got[1]["time"]}
    assert got[2]["alias"] == "smart"


async def test_the_admin_key_is_sent_and_a_missing_one_is_explained() -> None:
    hub = EventHub()
    app = web.Application()
    app.router.add_get("/admin/events", events_handler(hub, ADMIN_KEY))
    async with serve(app) as url:
        async with contextlib.aclosing(fast_source(url).events()) as stream:
            status = await next_status(stream)
        assert not status.connected
        assert "needs its admin key (HTTP 401)" in status.detail and "--key" in status.detail
        assert ADMIN_KEY not in status.detail
        async with contextlib.aclosing(fast_source(url, ADMIN_KEY).events()) as stream:
            assert (await next_status(stream)).connected
            hub.publish(record(7))
            assert (await take(stream, 1))[0]["id"] == "req_7"
        hub.close()


async def test_an_unreachable_proxy_is_retried_until_it_comes_up() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    hub = EventHub()
    app = web.Application()
    app.router.add_get("/admin/events", events_handler(hub, None))
    async with contextlib.aclosing(fast_source(url).events()) as stream:
        down = await next_status(stream)
        assert not down.connected
        assert down.detail.startswith(f"cannot reach the proxy at {url}") and "retrying" in down.detail
        assert not (await next_status(stream)).connected  # it keeps trying
        async with serve(app, port):
            while not (status := await next_status(stream)).connected:
                pass
            assert status.detail == f"connected to {url}"
            hub.publish(record(1))
            assert (await take(stream, 1))[0]["id"] == "req_1"
            hub.close()  # the proxy shutting down ends the stream
            dropped = await next_status(stream)
            assert not dropped.connected and "closed the stream" in dropped.detail


async def test_a_silent_stream_counts_as_dropped() -> None:
    async def silent(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await asyncio.sleep(30)
        return response

    app = web.Application()
    app.router.add_get("/admin/events", silent)
    async with serve(app) as url, contextlib.aclosing(fast_source(url, idle_timeout_s=0.2).events()) as stream:
        assert (await next_status(stream)).connected
        dropped = await next_status(stream)
    assert not dropped.connected and "timed out" in dropped.detail


@pytest.mark.parametrize(("status", "content_type", "expected"), [
    (404, "text/plain", "has no /admin/events (HTTP 404)"),
    (500, "text/plain", "answered HTTP 500"),
    (200, "application/json", "is not an event stream"),
])
async def test_other_answers_are_explained(status: int, content_type: str, expected: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text="{}", content_type=content_type)

    app = web.Application()
    app.router.add_get("/admin/events", handler)
    async with serve(app) as url, contextlib.aclosing(fast_source(url).events()) as stream:
        problem = await next_status(stream)
    assert not problem.connected and expected in problem.detail and "retrying" in problem.detail
