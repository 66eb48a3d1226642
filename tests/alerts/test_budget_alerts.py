"""Budget alerts through the real app: each share of a budget is posted to the webhook once per period, while
traffic keeps flowing past it, and not again after a restart."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from llmgw.alerts import AlertEngine
from llmgw.proxy.app import ALERTS, make_app
from llmgw.store.log import write_rows

from .support import CI_KEY, OPS_KEY, Receiver, alert_profile, bearer, chat, ledger_rows, logged_row, until

BUDGET = {"search": {"budget_usd": {"daily": 0.2}}}   # a request costs $0.011: 50% after 10, 80% after 15


@pytest.fixture
async def receiver(monkeypatch: pytest.MonkeyPatch) -> Any:
    async with Receiver() as hook:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", hook.url)
        yield hook


def budget_alerts(**options: Any) -> list[dict[str, Any]]:
    return [{"kind": "budget", "webhook": "env:SLACK_WEBHOOK_URL", **options}]


async def send(client: TestClient, engine: AlertEngine, n: int, key: str = CI_KEY) -> list[int]:
    """``n`` requests, the engine checking after each (as its timer would, only sooner)."""
    statuses = []
    for _ in range(n):
        response = await client.post("/v1/chat/completions", json=chat(), headers=bearer(key))
        statuses.append(response.status)
        await engine.check()
    return statuses


async def test_each_share_fires_once_while_traffic_flows_past_it(tmp_path: Path, receiver: Receiver) -> None:
    profile = alert_profile(tmp_path, budget_alerts(), teams=BUDGET)
    async with TestClient(TestServer(make_app(profile))) as client:
        engine = client.app[ALERTS]
        await engine.check(sync=True)
        statuses = await send(client, engine, 30)
        assert 429 in statuses, "the budget never refused: the test did not reach 100%"
        await engine.check(sync=True)           # the log agrees: nothing new
        await send(client, engine, 3)           # refused traffic goes on: nothing new
        await engine.idle()
        texts = receiver.texts()
    assert len(texts) == 3, texts
    assert "team search has spent 50% of its daily budget" in texts[0]
    assert "team search has spent 80% of its daily budget" in texts[1]
    assert "team search has used up its daily budget" in texts[2] and "requests are being refused" in texts[2]
    assert all("of $0.20" in t for t in texts)
    post = receiver.posts[0]
    assert post["blocks"][0]["type"] == "section" and "50%" in post["blocks"][0]["text"]["text"]
    states = {r["facts"]["share"]: r["state"] for r in ledger_rows(tmp_path)}
    assert states == {0.5: "sent", 0.8: "sent", 1.0: "sent"}


async def test_a_restart_sends_nothing_twice(tmp_path: Path, receiver: Receiver) -> None:
    profile = alert_profile(tmp_path, budget_alerts(), teams=BUDGET)
    async with TestClient(TestServer(make_app(profile))) as client:   # the timer alone raises what it sees
        for _ in range(11):
            assert (await client.post("/v1/chat/completions", json=chat(), headers=bearer(CI_KEY))).status == 200
        await until(lambda: len(receiver.posts) == 1, what="the 50% alert")
    async with TestClient(TestServer(make_app(profile))) as client:   # the same state folder, a new process's app
        engine = client.app[ALERTS]
        await engine.check(sync=True)
        assert list(engine.raised) == []                             # 55% from the log: 50% was sent already
        await send(client, engine, 5)
        await engine.idle()
    texts = receiver.texts()
    assert len(texts) == 2, texts
    assert "50%" in texts[0] and "80%" in texts[1]


async def test_a_jump_past_several_shares_sends_the_highest(tmp_path: Path, receiver: Receiver) -> None:
    write_rows(tmp_path / "llmgw.db", [logged_row(1, time.time() - 60, 0.17, team="ads", key="ops")])
    profile = alert_profile(tmp_path, budget_alerts(keys=["ops"]),
                            keys={"ops": {"key": "env:LLMGW_ALERTS_OPS_KEY", "team": "ads",
                                          "budget_usd": {"daily": 0.2}}}, teams=BUDGET)
    async with TestClient(TestServer(make_app(profile))) as client:
        engine = client.app[ALERTS]
        await engine.check(sync=True)   # (the timer's first check may have been first)
        await send(client, engine, 1, OPS_KEY)
        await engine.idle()
        raised = list(engine.raised)
    assert [a.text.split(":")[0] for a in raised] == ["key ops has spent 80% of its daily budget"]
    assert len(receiver.posts) == 1
    states = {r["facts"]["share"]: r["state"] for r in ledger_rows(tmp_path)}
    assert states == {0.5: "covered", 0.8: "sent"}   # team search's budget is not watched: keys = ["ops"]


async def test_a_monthly_budget_has_its_own_period(tmp_path: Path, receiver: Receiver) -> None:
    teams = {"search": {"budget_usd": {"daily": 100.0, "monthly": 0.2}}}
    profile = alert_profile(tmp_path, budget_alerts(at=[0.5]), teams=teams)
    async with TestClient(TestServer(make_app(profile))) as client:
        engine = client.app[ALERTS]
        await send(client, engine, 10)
        await engine.idle()
    assert len(receiver.posts) == 1 and "monthly budget" in receiver.texts()[0]
    (row,) = ledger_rows(tmp_path)
    assert row["period"] == time.strftime("month:%Y-%m", time.gmtime())


async def test_without_a_webhook_alerts_are_logged_and_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    profile = alert_profile(tmp_path, [{"kind": "budget", "at": [0.5]}], teams=BUDGET)
    async with TestClient(TestServer(make_app(profile))) as client:
        engine = client.app[ALERTS]
        with caplog.at_level("WARNING", logger="llmgw.alerts"):
            await send(client, engine, 10)
    assert any("team search has spent 50%" in r.getMessage() for r in caplog.records)
    (row,) = ledger_rows(tmp_path)
    assert row["state"] == "logged" and row["kind"] == "budget"
