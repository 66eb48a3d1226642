"""``POST /v1/messages/count_tokens`` through the whole pipeline: auth, data classes, guardrails, rate limits and
one log row (endpoint ``count_tokens``, cost 0), against a real fake Anthropic upstream and locally estimated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from llmgw.testing.fake_anthropic import FakeAnthropic

from .conftest import GatewayFactory, log_rows

KEY = "sk-llmgw-count-tokens-key-0001"
EMAIL = "jane.doe@example.com"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


@pytest.fixture
async def claude() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(autouse=True)
def key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COUNT_TOKENS_KEY", KEY)


def sections(claude: FakeAnthropic, **team: Any) -> dict[str, Any]:
    return {
        "providers": {"mock": {"kind": "mock"}, "claude": {"kind": "anthropic", "base_url": claude.base_url}},
        "models": {"sonnet": {"targets": ["claude/claude-sonnet-4-5"]}, "local": {"targets": ["mock/m"]},
                   "internal-only": {"targets": ["claude/claude-sonnet-4-5"], "data_classes": ["public"]}},
        "teams": {"eng": team},
        "keys": {"ci": {"key": "env:COUNT_TOKENS_KEY", "team": "eng"}},
        "guardrails": [{"name": "pii", "kind": "pii", "action": "redact"},
                       {"name": "codenames", "kind": "denylist", "terms": ["project zeus"], "action": "block"}],
    }


def count_body(text: str, model: str = "sonnet") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


async def test_counted_upstream_redacted_and_logged_at_no_cost(gateway: GatewayFactory, claude: FakeAnthropic,
                                                               tmp_path: Path) -> None:
    client = await gateway(**sections(claude))
    resp = await client.post("/v1/messages/count_tokens", json=count_body(f"mail {EMAIL} today"), headers=HEADERS)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["input_tokens"] > 0
    assert resp.headers["x-llmgw-target"] == "claude/claude-sonnet-4-5"
    sent = claude.requests[-1]
    assert sent["path"] == "/v1/messages/count_tokens"
    assert EMAIL not in str(sent["body"]) and "<EMAIL_1>" in str(sent["body"])   # redacted before it left
    local = await client.post("/v1/messages/count_tokens", json=count_body("hello there", "local"), headers=HEADERS)
    assert local.status == 200 and (await local.json())["input_tokens"] > 0
    await client.close()
    rows = log_rows(tmp_path)
    assert [(r["endpoint"], r["status"], r["alias"], r["key"], r["team"]) for r in rows] == [
        ("count_tokens", 200, "sonnet", "ci", "eng"), ("count_tokens", 200, "local", "ci", "eng")]
    assert all(r["cost_usd"] == 0 and r["input_tokens"] == 0 for r in rows)
    assert EMAIL not in str(rows) and "email" in rows[0]["findings"]


async def test_needs_a_key_and_an_allowed_alias(gateway: GatewayFactory, claude: FakeAnthropic,
                                                tmp_path: Path) -> None:
    client = await gateway(**sections(claude, models=["local"]))
    no_key = await client.post("/v1/messages/count_tokens", json=count_body("hi", "local"))
    assert no_key.status == 401 and (await no_key.json())["type"] == "error"
    hidden = await client.post("/v1/messages/count_tokens", json=count_body("hi"), headers=HEADERS)
    assert hidden.status == 404
    await client.close()
    assert claude.requests == []
    assert [(r["endpoint"], r["status"]) for r in log_rows(tmp_path)] == [("count_tokens", 401), ("count_tokens", 404)]


async def test_blocked_by_a_guardrail_and_by_the_team_data_class(gateway: GatewayFactory, claude: FakeAnthropic,
                                                                 tmp_path: Path) -> None:
    client = await gateway(**sections(claude, data_class="confidential"))
    blocked = await client.post("/v1/messages/count_tokens", json=count_body("status of Project Zeus"),
                                headers=HEADERS)
    assert blocked.status == 403 and "codenames" in (await blocked.json())["error"]["message"]
    refused = await client.post("/v1/messages/count_tokens", json=count_body("hi", "internal-only"), headers=HEADERS)
    assert refused.status == 403
    assert (await refused.json())["error"]["type"] in ("permission_error", "forbidden")
    await client.close()
    assert claude.requests == []
    rows = log_rows(tmp_path)
    assert [(r["endpoint"], r["status"], r["error"]) for r in rows] == [
        ("count_tokens", 403, "guardrail_blocked"), ("count_tokens", 403, "data_class_not_allowed")]


async def test_counts_against_rpm_but_spends_no_budget(gateway: GatewayFactory, claude: FakeAnthropic,
                                                       tmp_path: Path) -> None:
    client = await gateway(**sections(claude, rpm=3, tpm=10, budget_usd={"daily": 0.000001}))
    answers = await asyncio.gather(*(client.post("/v1/messages/count_tokens", json=count_body("x" * 400, "local"),
                                                 headers=HEADERS) for _ in range(5)))
    assert sorted(a.status for a in answers) == [200, 200, 200, 429, 429]   # rpm holds; tpm and budget untouched
    await client.close()
    assert sorted(r["status"] for r in log_rows(tmp_path)) == [200, 200, 200, 429, 429]
