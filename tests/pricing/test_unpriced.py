"""An unpriced model is loud: the log row, the story, `cost report`, and budgets that refuse it until [prices]
prices it. Through the real app (aiohttp_client) with a fake OpenAI-compatible upstream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmgw.cli.main import app as cli
from llmgw.testing import FakeOpenAI

from ..proxy.conftest import GatewayFactory, log_rows

KEY = "sk-llmgw-pricing-test-key-0001"
HI = [{"role": "user", "content": "hello there"}]
runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LLMGW_PROFILE", raising=False)
    monkeypatch.setenv("LLMGW_PRICING_TEST_KEY", KEY)
    monkeypatch.setenv("COLUMNS", "250")


def sections(**extra: Any) -> dict[str, Any]:
    """``house`` → a model no price table knows; ``real`` → gpt-4o-mini (priced); ``fast`` → the mock (free)."""
    data: dict[str, Any] = {"models": {"house": {"targets": ["up/house-model"]}}}
    for name, value in extra.items():
        data[name] = {**data.get(name, {}), **value}
    return data


def governed(**extra: Any) -> dict[str, Any]:
    return sections(teams={"search": {"budget_usd": {"daily": 5.0}}},
                    keys={"ci": {"key": "env:LLMGW_PRICING_TEST_KEY", "team": "search"}}, **extra)


async def test_the_log_row_and_the_story_say_unpriced(gateway: GatewayFactory, upstream: FakeOpenAI,
                                                      tmp_path: Path) -> None:
    http = await gateway(upstream=upstream.base_url, **sections())
    for alias in ("house", "real", "fast"):
        resp = await http.post("/v1/chat/completions", json={"model": alias, "messages": HI})
        assert resp.status == 200, await resp.text()
        if alias == "house":
            assert float(resp.headers["x-llmgw-cost-usd"]) == 0.0
            assert resp.headers["x-llmgw-unpriced"] == "up/house-model"   # 0 here means unknown, not free
        else:
            assert "x-llmgw-unpriced" not in resp.headers
    await http.close()
    rows = {row["alias"]: row for row in log_rows(tmp_path)}
    house, real, fast = rows["house"], rows["real"], rows["fast"]
    assert house["unpriced"] == 1 and house["cost_usd"] == 0.0 and json.loads(house["cost_breakdown"]) == {}
    assert house["input_tokens"] > 0
    story = [step for step in json.loads(house["story"]) if step["stage"] == "meter"]
    assert story and story[0]["event"] == "unpriced" and story[0]["target"] == "up/house-model"
    assert '[prices] "up/house-model"' in story[0]["fix"]
    # A priced target: the breakdown adds up to the cost exactly. gpt-4o-mini: $0.15 in, $0.60 out per 1M.
    breakdown = json.loads(real["cost_breakdown"])
    assert real["unpriced"] == 0 and set(breakdown) == {"input", "output"}
    assert sum(breakdown.values()) == real["cost_usd"] > 0
    assert breakdown["input"] == pytest.approx(real["input_tokens"] * 0.15 / 1e6, rel=1e-12)
    assert breakdown["output"] == pytest.approx(real["output_tokens"] * 0.60 / 1e6, rel=1e-12)
    # The mock is free, not unpriced.
    assert fast["unpriced"] == 0 and fast["cost_usd"] == 0.0

    report = runner.invoke(cli, ["cost", "report", "--db", str(tmp_path / "llmgw.db"), "--format", "json"])
    assert report.exit_code == 0, report.output
    groups = {g["model"]: g for g in json.loads(report.stdout)}
    assert (groups["house"]["unpriced"], groups["real"]["unpriced"], groups["fast"]["unpriced"]) == (1, 0, 0)
    table = runner.invoke(cli, ["cost", "report", "--db", str(tmp_path / "llmgw.db")])
    assert table.exit_code == 0 and "unpriced: 1 request went to targets without a price" in table.stdout
    by_type = runner.invoke(cli, ["cost", "report", "--db", str(tmp_path / "llmgw.db"), "--by", "token_type",
                                  "--format", "json"])
    types = {g["token_type"]: g for g in json.loads(by_type.stdout)}
    assert types["unpriced"]["requests"] == 1 and types["unpriced"]["cost_usd"] == 0.0
    assert types["input"]["cost_usd"] == pytest.approx(breakdown["input"], rel=1e-9)
    assert types["output"]["cost_usd"] == pytest.approx(breakdown["output"], rel=1e-9)
    assert types["input"]["input_tokens"] == real["input_tokens"]
    assert sum(g["cost_usd"] for g in types.values()) == pytest.approx(real["cost_usd"], rel=1e-9)


@pytest.mark.parametrize("client", ["openai", "anthropic"])
async def test_a_budget_refuses_an_unpriced_model(gateway: GatewayFactory, upstream: FakeOpenAI, tmp_path: Path,
                                                  client: str) -> None:
    http = await gateway(upstream=upstream.base_url, **governed())
    headers = {"Authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"}
    path = "/v1/chat/completions" if client == "openai" else "/v1/messages"
    resp = await http.post(path, json={"model": "house", "messages": HI, "max_tokens": 20}, headers=headers)
    body = await resp.json()
    assert resp.status == 403, body
    error = body["error"]
    if client == "openai":
        assert error["code"] == "unpriced_model" and error["type"] == "permission_error"
    else:
        assert body["type"] == "error" and error["type"] == "permission_error"
    assert "up/house-model has no price" in error["message"] and "[prices]" in error["message"]
    assert "team search daily budget" in error["message"]
    assert upstream.requests == []     # never reached the provider
    priced = await http.post(path, json={"model": "real", "messages": HI, "max_tokens": 20}, headers=headers)
    assert priced.status == 200, await priced.text()
    await http.close()
    refused = next(r for r in log_rows(tmp_path) if r["alias"] == "house")
    assert refused["status"] == 403 and refused["error"] == "unpriced_model"


async def test_a_profile_price_lifts_the_refusal(gateway: GatewayFactory, upstream: FakeOpenAI,
                                                 tmp_path: Path) -> None:
    http = await gateway(upstream=upstream.base_url,
                         **governed(prices={"up/house-model": {"input": 2.0, "output": 8.0}}))
    resp = await http.post("/v1/chat/completions", json={"model": "house", "messages": HI, "max_tokens": 20},
                           headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status == 200, await resp.text()
    await http.close()
    [row] = log_rows(tmp_path)
    assert row["unpriced"] == 0
    assert row["cost_usd"] == pytest.approx((row["input_tokens"] * 2.0 + row["output_tokens"] * 8.0) / 1e6)


async def test_a_budget_on_a_free_mock_is_not_refused(gateway: GatewayFactory, tmp_path: Path) -> None:
    http = await gateway(teams={"search": {"budget_usd": {"daily": 1.0}}},
                         keys={"ci": {"key": "env:LLMGW_PRICING_TEST_KEY", "team": "search"}})
    resp = await http.post("/v1/chat/completions", json={"model": "fast", "messages": HI},
                           headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status == 200, await resp.text()
    await http.close()
