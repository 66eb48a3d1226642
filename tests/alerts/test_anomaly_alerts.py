"""Anomaly alerts: a team's or key's spend far above its own history fires once per period; steady spend, and a
log without enough history, do not."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from llmgw.alerts import AlertEngine
from llmgw.proxy.app import ALERTS, make_app
from llmgw.store.log import write_rows

from .support import CI_KEY, OPS_KEY, Receiver, alert_profile, bearer, chat, logged_count, logged_row, until

HOUR = 3600.0


def history(hours: int, per_hour: dict[tuple[str, str], float], now: float) -> list[dict[str, Any]]:
    """One row per (team, key) per hour for ``hours`` hours, ending an hour before ``now``."""
    rows = []
    for h in range(1, hours + 1):
        for n, ((team, key), cost) in enumerate(per_hour.items()):
            rows.append({**logged_row(h * 10 + n, now - h * HOUR, cost, team=team, key=key), "id": f"h{h}_{n}"})
    return rows


def anomaly(**options: Any) -> list[dict[str, Any]]:
    entry = {"kind": "anomaly", "webhook": "env:SLACK_WEBHOOK_URL", "window": "15m", "history": "3d",
             "loop_count": 0, **options}
    return [{k: v for k, v in entry.items() if v is not None}]


async def test_a_spike_fires_and_steady_spend_does_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time()
    # usual spend per 15 minutes: search $0.001, ads $0.0125
    write_rows(tmp_path / "llmgw.db", history(48, {("search", "ci"): 0.004, ("ads", "ops"): 0.05}, now))
    async with Receiver() as hook:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", hook.url)
        profile = alert_profile(tmp_path, anomaly(min_usd=0.0))
        async with TestClient(TestServer(make_app(profile))) as client:
            engine = client.app[ALERTS]
            for _ in range(15):   # $0.165 in minutes: 165x search's usual
                assert (await client.post("/v1/chat/completions", json=chat(), headers=bearer(CI_KEY))).status == 200
            assert (await client.post("/v1/chat/completions", json=chat(), headers=bearer(OPS_KEY))).status == 200
            await until(lambda: logged_count(tmp_path) == 2 * 48 + 16, what="the log writer")  # anomalies read the log
            await engine.check(sync=True)
            await engine.check(sync=True)   # still anomalous: once per period
            await engine.idle()
        texts = sorted(hook.texts())
    assert len(texts) == 2, texts
    assert texts[0].startswith("llmgw: key ci spent $0.17 in the last 15m, ")
    assert texts[1].startswith("llmgw: team search spent $0.17 in the last 15m, ")
    assert all("x its usual $0.0010 — spend anomaly" in t for t in texts)


async def test_min_usd_keeps_small_spikes_quiet(tmp_path: Path) -> None:
    now = time.time()
    write_rows(tmp_path / "llmgw.db", [
        *history(48, {("search", "ci"): 0.004}, now), {**logged_row(1, now - 60, 0.5), "id": "spike"}])
    engine = AlertEngine(alert_profile(tmp_path, anomaly(min_usd=1.0, webhook=None)), tick_s=3600)
    await engine.start()
    await engine.check(sync=True)
    await engine.stop()
    assert list(engine.raised) == []
    engine = AlertEngine(alert_profile(tmp_path, anomaly(min_usd=0.25, by=["team"], webhook=None)), tick_s=3600)
    await engine.start()
    await engine.check(sync=True)
    await engine.stop()
    assert [a.subject for a in engine.raised] == ["team search"]


async def test_no_alert_without_enough_history(tmp_path: Path) -> None:
    now = time.time()
    write_rows(tmp_path / "llmgw.db", [
        *history(5, {("search", "ci"): 0.004}, now), {**logged_row(1, now - 60, 5.0), "id": "spike"}])
    engine = AlertEngine(alert_profile(tmp_path, anomaly(webhook=None)), tick_s=3600)
    await engine.start()
    await engine.check(sync=True)
    await engine.stop()
    assert list(engine.raised) == []   # five hours of a 3-day history: nothing to compare with yet


async def test_filters_and_a_group_new_to_the_log(tmp_path: Path) -> None:
    now = time.time()
    write_rows(tmp_path / "llmgw.db", [
        *history(48, {("search", "ci"): 0.004}, now),
        {**logged_row(1, now - 60, 3.0, team="ads", key="ops"), "id": "new"},
        {**logged_row(2, now - 60, 3.0), "id": "spike"}])
    engine = AlertEngine(alert_profile(tmp_path, anomaly(teams=["ads"], webhook=None)), tick_s=3600)
    await engine.start()
    await engine.check(sync=True)
    await engine.stop()
    texts = sorted(a.text for a in engine.raised)
    assert len(texts) == 2 and all(t.startswith(("key ops spent $3.00", "team ads spent $3.00")) for t in texts)
    assert all("with nothing spent in the 3d before" in t for t in texts)
