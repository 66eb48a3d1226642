"""``llmgw tail`` against a real gateway: the aiohttp app from :func:`llmgw.proxy.app.make_app` on a free port, the
TUI reading its ``/admin/events`` with :class:`HttpEventSource`, and a chat request that must show up as a row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from llmgw.profile import parse_profile
from llmgw.proxy.app import make_app as make_gateway
from llmgw.tui.app import make_app
from llmgw.tui.http_source import HttpEventSource

from .support import ADMIN_KEY, free_port, serve, shown_ids, text_of, until


def gateway_profile(tmp_path: Path, **server: Any) -> Any:
    return parse_profile({
        "server": {"log_bodies": True, **server},
        "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
        "providers": {"mock": {"kind": "mock"}},
        "models": {"fast": {"targets": ["mock/mock-1"]}},
    })


async def test_a_chat_request_shows_up_in_the_tail(tmp_path: Path) -> None:
    async with serve(make_gateway(gateway_profile(tmp_path, admin_key=ADMIN_KEY))) as url:
        app = make_app(HttpEventSource(url, ADMIN_KEY, retry_initial_s=0.1))
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: f"connected to {url}" in app.connection_text, what="the connection")
            async with aiohttp.ClientSession() as client:
                reply = await client.post(f"{url}/v1/chat/completions", json={
                    "model": "fast", "messages": [{"role": "user", "content": "hello from the tail test"}]})
                assert reply.status == 200, await reply.text()
                request_id = reply.headers["x-llmgw-request-id"]
            await until(pilot, lambda: shown_ids(app) == [request_id], timeout=3.0, what="the request's row")
            cells = [c.plain for c in app.table.get_row_at(0)]
            assert cells[2] == "fast → mock/mock-1" and cells[3] == "200"
            await pilot.press("enter")
            await until(pilot, lambda: app.detail.is_open)
            text = text_of(app.query_one("#detail-body").content)
            assert "hello from the tail test" in text and "mock/mock-1" in text


async def test_the_tail_says_when_the_proxy_needs_the_admin_key(tmp_path: Path) -> None:
    async with serve(make_gateway(gateway_profile(tmp_path, admin_key=ADMIN_KEY))) as url:
        app = make_app(HttpEventSource(url, None, retry_initial_s=0.1))
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: "needs its admin key" in app.connection_text, what="the 401 explained")


async def test_the_tail_rides_out_a_proxy_restart(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = make_app(HttpEventSource(url, None, retry_initial_s=0.05, retry_max_s=0.2))
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: f"cannot reach the proxy at {url}" in app.connection_text, what="unreachable")
        assert "retrying" in app.connection_text
        for round_ in (1, 2):
            async with serve(make_gateway(gateway_profile(tmp_path)), port):
                await until(pilot, lambda: f"connected to {url}" in app.connection_text, what="connected")
                async with aiohttp.ClientSession() as client:
                    reply = await client.post(f"{url}/v1/chat/completions", json={
                        "model": "fast", "messages": [{"role": "user", "content": f"round {round_}"}]})
                    request_id = reply.headers["x-llmgw-request-id"]
                await until(pilot, lambda rid=request_id: shown_ids(app)[:1] == [rid], timeout=3.0, what="the row")
            await until(pilot, lambda: "connected to" not in app.connection_text, what="the drop")
            await until(pilot, lambda: f"cannot reach the proxy at {url}" in app.connection_text,
                        what="unreachable again")
        assert app.table.row_count == 2
