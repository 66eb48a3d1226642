"""The tail as a new user meets it: it starts with the newest requests of the log (``--history``), has a tags
column, and Enter in the filter box opens the newest match."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiohttp
import orjson

from llmgw.proxy.app import make_app as make_gateway
from llmgw.tui.app import make_app
from llmgw.tui.http_source import HttpEventSource

from .support import ADMIN_KEY, free_port, record, serve, shown_ids, text_of, until
from .test_app import SIZE, fixture
from .test_end_to_end import gateway_profile


async def test_enter_in_the_filter_box_opens_the_newest_match() -> None:
    _source, app = fixture(record(1, alias="fast"), record(2, alias="smart"), record(3, alias="smart"),
                           record(4, alias="fast"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.table.row_count == 4)
        await pilot.press("slash", *"smart", "enter")
        await until(pilot, lambda: app.detail.is_open, what="the detail pane")
        assert shown_ids(app) == ["req_3", "req_2"]
        assert app.detail.entry is not None and app.detail.entry.record["id"] == "req_3"
        assert app.focused is app.table
        await pilot.press("escape", "slash", "ctrl+u", *"nothing-matches", "enter")
        await until(pilot, lambda: app.table.row_count == 0, what="no match")
        assert not app.detail.is_open


async def test_the_tags_column() -> None:
    _source, app = fixture(record(1, tags=["web", "batch"]), record(2))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.table.row_count == 2)
        header = [str(column.label) for column in app.table.columns.values()]
        assert header[-1] == "tags"
        assert app.table.get_row_at(1)[-1].plain == "web, batch"
        assert app.table.get_row_at(0)[-1].plain == ""


async def _chat(client: aiohttp.ClientSession, url: str, text: str, tags: str = "") -> str:
    reply = await client.post(f"{url}/v1/chat/completions", headers={"x-llmgw-tags": tags} if tags else {},
                              json={"model": "fast", "messages": [{"role": "user", "content": text}]})
    assert reply.status == 200, await reply.text()
    return reply.headers["x-llmgw-request-id"]


async def _flushed(path: Path, count: int) -> None:
    """Wait until the request log holds ``count`` rows (the writer commits every 50 ms)."""
    for _ in range(100):
        if path.exists():
            with sqlite3.connect(path) as db:
                if db.execute("SELECT COUNT(*) FROM requests").fetchone()[0] >= count:
                    return
        await asyncio.sleep(0.05)
    raise AssertionError("the log was not written")


async def test_admin_events_history_sends_the_newest_logged_requests_first(tmp_path: Path) -> None:
    async with serve(make_gateway(gateway_profile(tmp_path, admin_key=ADMIN_KEY))) as url, \
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        ids = [await _chat(client, url, f"q{n}", tags="early") for n in range(5)]
        await _flushed(tmp_path / "llmgw.db", 5)
        async with client.get(f"{url}/admin/events?history=3&bodies=1") as stream:
            lines: list[bytes] = []
            while len(lines) < 3:
                line = await stream.content.readline()
                if line.startswith(b"data: "):
                    lines.append(line[6:])
            records = [orjson.loads(line) for line in lines]
            assert [r["id"] for r in records] == ids[2:], "the newest three, oldest first"
            assert records[0]["tags"] == ["early"] and isinstance(records[0]["attempts"], list)
            assert records[0]["request"]["messages"][0]["content"] == "q2"
            assert isinstance(records[0]["time"], float)
            live = await _chat(client, url, "live")
            while not (line := await stream.content.readline()).startswith(b"data: "):
                pass
            assert orjson.loads(line[6:])["id"] == live


async def test_the_tail_starts_with_the_log_and_never_shows_a_request_twice(tmp_path: Path) -> None:
    port = free_port()
    async with serve(make_gateway(gateway_profile(tmp_path)), port) as url, aiohttp.ClientSession() as client:
        earlier = [await _chat(client, url, f"earlier {n}", tags="batch") for n in range(3)]
        await _flushed(tmp_path / "llmgw.db", 3)
        app = make_app(HttpEventSource(url, None, history=2, retry_initial_s=0.05, retry_max_s=0.2),
                       flush_s=0.05)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: shown_ids(app) == [earlier[2], earlier[1]], what="the last two requests")
            assert app.table.get_row_at(0)[-1].plain == "batch"
            new = await _chat(client, url, "new one")
            await until(pilot, lambda: shown_ids(app)[:1] == [new], what="the new request")
            assert shown_ids(app) == [new, earlier[2], earlier[1]]
            await pilot.press("enter")
            await until(pilot, lambda: app.detail.is_open)
            assert "new one" in text_of(app.query_one("#detail-body").content)
    # a restart of the proxy: the tail asks for its history again and shows nothing twice
    app = make_app(HttpEventSource(f"http://127.0.0.1:{port}", None, history=3, retry_initial_s=0.05,
                                   retry_max_s=0.2), flush_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(2):
            async with serve(make_gateway(gateway_profile(tmp_path)), port):
                await until(pilot, lambda: app.table.row_count == 3, what="the history")
                await until(pilot, lambda: "connected to" in app.connection_text, what="connected")
                await pilot.pause(0.2)
            await until(pilot, lambda: "cannot reach" in app.connection_text, what="the drop")
        assert shown_ids(app) == [new, earlier[2], earlier[1]]
