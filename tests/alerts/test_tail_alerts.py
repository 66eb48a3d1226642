"""Alerts in ``llmgw tail``: ``/admin/events`` sends them as ``event: alert``, the live source yields them apart
from requests, and the TUI pops them up and keeps them in its alert line."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from llmgw.proxy.app import ALERTS, make_app
from llmgw.sse import SSEDecoder
from llmgw.tui.app import ALERTS_KEPT
from llmgw.tui.app import make_app as make_tail
from llmgw.tui.http_source import HttpEventSource
from llmgw.tui.source import Alert, FixtureSource, Status
from tests.tui.support import record
from tests.tui.support import until as pilot_until

from .support import CI_KEY, alert_profile, bearer, chat

BUDGET = {"search": {"budget_usd": {"daily": 0.2}}}
HALF = [{"kind": "budget", "at": [0.5]}]
ADMIN_KEY = "sk-llmgw-alerts-admin-key-0000000003"
ADMIN = {"log_bodies": True, "admin_key": "env:LLMGW_ALERTS_ADMIN_KEY"}


@pytest.fixture(autouse=True)
def admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGW_ALERTS_ADMIN_KEY", ADMIN_KEY)


async def test_admin_events_sends_alerts_as_their_own_event(tmp_path: Path) -> None:
    async with TestClient(TestServer(make_app(alert_profile(tmp_path, HALF, teams=BUDGET, server=ADMIN)))) as client:
        engine = client.app[ALERTS]
        stream = await client.get("/admin/events", headers=bearer(ADMIN_KEY))
        assert stream.status == 200
        for _ in range(10):
            await client.post("/v1/chat/completions", json=chat(), headers=bearer(CI_KEY))
        await engine.check()
        decoder = SSEDecoder()
        messages = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3):
                while not any(m.event == "alert" for m in messages):
                    chunk = await stream.content.readany()
                    assert chunk, "the event stream ended before the alert"
                    messages += decoder.feed(chunk)
        stream.close()
    requests = [m for m in messages if m.event is None]
    (alert,) = [orjson.loads(m.data) for m in messages if m.event == "alert"]
    assert len(requests) == 10 and all("input_tokens" in orjson.loads(m.data) for m in requests)
    assert alert["type"] == "alert" and alert["kind"] == "budget" and alert["subject"] == "team search"
    assert alert["text"].startswith("team search has spent 50% of its daily budget")
    assert alert["facts"]["limit_usd"] == 0.2


async def test_tail_shows_an_alert_from_a_running_proxy(tmp_path: Path) -> None:
    async with TestClient(TestServer(make_app(alert_profile(tmp_path, HALF, teams=BUDGET, server=ADMIN)))) as client:
        engine = client.app[ALERTS]
        source = HttpEventSource(str(client.make_url("")), ADMIN_KEY, retry_initial_s=0.05)
        tail = make_tail(source, flush_s=0.05)
        async with tail.run_test(size=(160, 40)) as pilot:
            await pilot_until(pilot, lambda: tail.connection is not None and tail.connection.connected)
            for _ in range(10):
                await client.post("/v1/chat/completions", json=chat(), headers=bearer(CI_KEY))
            await engine.check()
            await pilot_until(pilot, lambda: bool(tail.alerts), what="the alert")
            await pilot_until(pilot, lambda: tail.table.row_count == 10, what="the requests")
            assert "budget: team search has spent 50% of its daily budget" in tail.alert_text
            assert [n.title for n in tail._notifications] == ["llmgw budget alert"]


async def test_alert_line_keeps_the_newest_and_counts() -> None:
    source = FixtureSource([Status("connected", "fixture"), record(1)])
    tail = make_tail(source, flush_s=0.05)
    async with tail.run_test(size=(160, 40)) as pilot:
        await pilot_until(pilot, lambda: tail.table.row_count == 1)
        assert tail.alert_text == ""
        source.push(Alert({"kind": "loop", "text": "key ci sent the same prompt 20 times", "time": 0}),
                    Alert({"kind": "anomaly", "text": "team search spent $9.00 in the last 15m", "time": 0}))
        await pilot_until(pilot, lambda: len(tail.alerts) == 2)
        assert "anomaly: team search spent $9.00 in the last 15m  (2 alerts)" in tail.alert_text
        assert tail.table.row_count == 1   # alerts are not request rows
        assert len(tail._notifications) == 2


async def test_the_alert_line_counts_past_the_alerts_kept() -> None:
    source = FixtureSource([Status("connected", "fixture")])
    tail = make_tail(source, flush_s=0.05)
    async with tail.run_test(size=(160, 40)) as pilot:
        source.push(*(Alert({"kind": "loop", "text": f"key ci looped {n}", "time": 0}) for n in range(ALERTS_KEPT + 5)))
        await pilot_until(pilot, lambda: tail.alerts_seen == ALERTS_KEPT + 5, what="every alert")
        assert len(tail.alerts) == ALERTS_KEPT
        assert f"loop: key ci looped {ALERTS_KEPT + 4}  ({ALERTS_KEPT + 5} alerts)" in tail.alert_text
