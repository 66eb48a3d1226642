"""Delivering alerts: retries with backoff, a final 4xx, timeouts, one sender among several workers, and a webhook
URL (a credential) that never shows in a log line, a ledger record, an event or an error."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from typer.testing import CliRunner

from llmgw.alerts import AlertEngine
from llmgw.alerts.delivery import Webhook, WebhookError
from llmgw.cli.main import app as cli
from llmgw.proxy.app import ALERTS, make_app

from .support import CI_KEY, HOOK_PATH, Receiver, alert_profile, bearer, chat, ledger_rows, logged_row

SECRET = HOOK_PATH.rsplit("/", 1)[1]
FAST = {"attempts": 3, "backoff_s": 0.01, "timeout_s": 0.3}


def spend(n: int, cost: float, **who: str) -> dict[str, Any]:
    row = logged_row(n, time.time(), cost, **who)
    row["id"] = f"live_{n}"
    return row


def engine_for(tmp_path: Path, alerts: list[dict[str, Any]], **options: Any) -> AlertEngine:
    profile = alert_profile(tmp_path, alerts, teams={"search": {"budget_usd": {"daily": 1.0}}})
    return AlertEngine(profile, tick_s=3600, webhook_options=options.pop("webhook_options", FAST), **options)


async def test_a_receiver_failing_twice_gets_the_alert_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with Receiver(script=[500, 503]) as hook:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", hook.url)
        profile = alert_profile(tmp_path, [{"kind": "budget", "webhook": "env:SLACK_WEBHOOK_URL", "at": [0.5]}],
                                teams={"search": {"budget_usd": {"daily": 0.2}}})
        async with TestClient(TestServer(make_app(profile))) as client:   # the server's own retry settings
            engine = client.app[ALERTS]
            for _ in range(10):
                await client.post("/v1/chat/completions", json=chat(), headers=bearer(CI_KEY))
            await engine.check()
            await engine.idle()
        assert hook.statuses == [500, 503, 200]
        assert len(hook.posts) == 1 and "50%" in hook.posts[0]["text"]
    (row,) = ledger_rows(tmp_path)
    assert (row["state"], row["attempts"], row["problem"]) == ("sent", 3, None)


async def test_a_4xx_is_final_and_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with Receiver(script=[404]) as hook:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", hook.url)
        engine = engine_for(tmp_path, [{"kind": "budget", "webhook": "env:SLACK_WEBHOOK_URL", "at": [0.5]}])
        await engine.start()
        engine.observe(spend(1, 0.6))
        await engine.check()
        await engine.stop()
        assert hook.statuses == [404]
    (row,) = ledger_rows(tmp_path)
    assert (row["state"], row["attempts"], row["problem"]) == ("failed", 1, "the webhook answered HTTP 404")


async def test_a_slow_receiver_is_retried_after_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    async with Receiver(delays=[1.0]) as hook, aiohttp.ClientSession() as session:
        delivery = await Webhook("env:X", hook.url, **FAST).post(session, {"text": "hello"})
        assert delivery.delivered and delivery.attempts == 2
        assert [p["text"] for p in hook.posts] == ["hello"]


async def test_several_workers_send_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with Receiver() as hook:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", hook.url)
        alerts = [{"kind": "budget", "webhook": "env:SLACK_WEBHOOK_URL"}]
        workers = [engine_for(tmp_path, alerts) for _ in range(3)]
        for engine in workers:
            await engine.start()
        for n, engine in enumerate(workers):   # every worker sees 50% crossed, then 80%
            engine.observe(spend(n, 0.6))
            await engine.check()
        for n, engine in enumerate(workers):
            engine.observe(spend(10 + n, 0.25))
            await engine.check()
        for engine in workers:
            await engine.stop()
        assert sorted(p["text"].split(":")[1].strip() for p in hook.posts) == [
            "team search has spent 50% of its daily budget", "team search has spent 80% of its daily budget"]


async def test_the_webhook_url_never_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    async with Receiver() as closed:
        url = closed.url
    monkeypatch.setenv("SLACK_WEBHOOK_URL", url)   # nobody listens there any more: every attempt fails
    engine = engine_for(tmp_path, [{"kind": "budget", "webhook": "env:SLACK_WEBHOOK_URL", "at": [0.5]}])
    published: list[dict[str, Any]] = []
    engine.publish = published.append
    with caplog.at_level("DEBUG"):
        await engine.start()
        engine.observe(spend(1, 0.6))
        await engine.check()
        await engine.idle()
        await engine.stop()
    (row,) = ledger_rows(tmp_path)
    assert row["state"] == "failed" and row["attempts"] == 3 and row["problem"].startswith("cannot reach the webhook")
    assert "env:SLACK_WEBHOOK_URL" in caplog.text
    for text in (caplog.text, repr(row), repr(published), repr(engine.recent())):
        assert SECRET not in text and url not in text
    with pytest.raises(WebhookError) as error:
        Webhook("env:SLACK_WEBHOOK_URL", "ftp://example.invalid" + HOOK_PATH)
    assert SECRET not in str(error.value) and "env:SLACK_WEBHOOK_URL" in str(error.value)


def test_check_names_an_unset_webhook_by_its_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    profile = tmp_path / "llmgw.toml"
    profile.write_text('[providers.mock]\nkind = "mock"\n[models.fast]\ntargets = ["mock/m"]\n'
                       '[[alerts]]\nkind = "budget"\nwebhook = "env:SLACK_WEBHOOK_URL"\n')
    result = CliRunner().invoke(cli, ["check", "--profile", str(profile)])
    assert result.exit_code == 1
    assert "alerts[0].webhook: environment variable SLACK_WEBHOOK_URL is not set" in result.output


async def test_an_unusable_webhook_is_reported_once_and_alerts_still_logged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "hooks.example/" + SECRET)   # no scheme
    engine = engine_for(tmp_path, [{"kind": "budget", "webhook": "env:SLACK_WEBHOOK_URL", "at": [0.5]}])
    with caplog.at_level("WARNING", logger="llmgw.alerts"):
        await engine.start()
        engine.observe(spend(1, 0.6))
        await engine.check()
        await engine.stop()
    assert "alerts[0].webhook: env:SLACK_WEBHOOK_URL does not hold an http:// or https:// URL" in caplog.text
    assert SECRET not in caplog.text
    (row,) = ledger_rows(tmp_path)
    assert row["state"] == "logged"

