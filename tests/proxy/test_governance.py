"""Keys, teams, allow-lists, rate limits and budgets through the real app (in-process shared state)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from llmgw.store.keys import KeyStore

from .conftest import GatewayFactory, log_rows

CI_KEY = "sk-llmgw-profile-key-for-tests-0001"
HI = [{"role": "user", "content": "hi"}]


def governed(**overrides: Any) -> dict[str, Any]:
    sections: dict[str, Any] = {
        "providers": {"mock": {"kind": "mock"}},
        "models": {"fast": {"targets": ["mock/m"]}, "secret-model": {"targets": ["mock/s"]},
                   "priced": {"targets": ["mock/priced"]}},
        "teams": {"search": {"models": ["fast", "priced"]}, "ads": {}},
        "keys": {"ci": {"key": "env:LLMGW_TEST_CI_KEY", "team": "search"}},
        "prices": {"mock/priced": {"input": 1000.0, "output": 1000.0}},
    }
    for name, value in overrides.items():
        sections[name] = {**sections.get(name, {}), **value}
    return sections


@pytest.fixture(autouse=True)
def ci_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGW_TEST_CI_KEY", CI_KEY)


def mint(tmp_path: Path, team: str, expires: float | None = None, revoked: bool = False) -> str:
    store = KeyStore(tmp_path / "llmgw.db")
    key_id, secret = store.create(team, "t", expires)
    if revoked:
        store.revoke(key_id)
    store.close()
    return secret


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_open_proxy_without_keys_or_teams(gateway: GatewayFactory) -> None:
    client = await gateway()
    resp = await client.post("/v1/chat/completions", json={"model": "fast", "messages": HI})
    assert resp.status == 200


async def test_every_bad_key_gets_the_same_401(gateway: GatewayFactory, tmp_path: Path) -> None:
    revoked = mint(tmp_path, "search", revoked=True)
    expired = mint(tmp_path, "search", expires=time.time() - 1)
    client = await gateway(**governed())
    bodies = []
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}, bearer("sk-llmgw-nope"),
                    bearer(revoked), bearer(expired), {"x-api-key": "wrong"}):
        resp = await client.post("/v1/chat/completions", json={"model": "fast", "messages": HI}, headers=headers)
        assert resp.status == 401, headers
        bodies.append(await resp.json())
    assert all(b == bodies[0] for b in bodies) and bodies[0]["error"]["type"] == "authentication_error"
    resp = await client.post("/v1/messages", json={"model": "fast", "max_tokens": 5, "messages": HI})
    assert resp.status == 401 and (await resp.json())["error"]["type"] == "authentication_error"
    await client.close()
    assert {r["status"] for r in log_rows(tmp_path)} == {401}


async def test_both_headers_and_minted_keys_work_and_rows_carry_key_and_team(
        gateway: GatewayFactory, tmp_path: Path) -> None:
    minted = mint(tmp_path, "ads")
    client = await gateway(**governed())
    for headers in (bearer(CI_KEY), {"x-api-key": CI_KEY}, bearer(minted)):
        resp = await client.post("/v1/chat/completions", json={"model": "fast", "messages": HI}, headers=headers)
        assert resp.status == 200
    resp = await client.post("/v1/messages", json={"model": "fast", "max_tokens": 5, "messages": HI},
                             headers={"x-api-key": CI_KEY})
    assert resp.status == 200
    await client.close()
    rows = log_rows(tmp_path)
    assert [(r["key"], r["team"]) for r in rows][:2] == [("ci", "search"), ("ci", "search")]
    assert rows[2]["team"] == "ads" and rows[2]["key"].startswith("key_")
    assert all(minted not in json.dumps(r) and CI_KEY not in json.dumps(r) for r in rows)


async def test_alias_outside_the_allow_list_looks_unknown(gateway: GatewayFactory) -> None:
    client = await gateway(**governed())
    hidden = await client.post("/v1/chat/completions", json={"model": "secret-model", "messages": HI},
                               headers=bearer(CI_KEY))
    missing = await client.post("/v1/chat/completions", json={"model": "no-such-model", "messages": HI},
                                headers=bearer(CI_KEY))
    assert hidden.status == missing.status == 404
    hidden_body, missing_body = await hidden.json(), await missing.json()
    assert hidden_body["error"]["message"].replace("secret-model", "X") == \
        missing_body["error"]["message"].replace("no-such-model", "X")
    listed = await (await client.get("/v1/models", headers=bearer(CI_KEY))).json()
    assert [m["id"] for m in listed["data"]] == ["fast", "priced"]
    assert (await client.get("/v1/models")).status == 401


async def test_key_rpm_is_exact_under_concurrency_and_answers_429(gateway: GatewayFactory) -> None:
    client = await gateway(**governed(keys={"ci": {"key": "env:LLMGW_TEST_CI_KEY", "team": "search", "rpm": 7}}))
    responses = await asyncio.gather(*[
        client.post("/v1/chat/completions", json={"model": "fast", "messages": HI}, headers=bearer(CI_KEY))
        for _ in range(30)])
    statuses = sorted(r.status for r in responses)
    assert statuses.count(200) == 7 and statuses.count(429) == 23
    refused = next(r for r in responses if r.status == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert "key ci requests per minute (7)" in (await refused.json())["error"]["message"]
    resp = await client.post("/v1/messages", json={"model": "fast", "max_tokens": 5, "messages": HI},
                             headers={"x-api-key": CI_KEY})
    assert resp.status == 429 and (await resp.json())["error"]["type"] == "rate_limit_error"


async def test_team_tpm_counts_tokens(gateway: GatewayFactory) -> None:
    client = await gateway(**governed(teams={"search": {"tpm": 300, "models": ["fast"]}}))
    ok = await client.post("/v1/chat/completions", json={"model": "fast", "messages": HI, "max_tokens": 100},
                           headers=bearer(CI_KEY))
    assert ok.status == 200
    big = await client.post("/v1/chat/completions", json={"model": "fast", "messages": HI, "max_tokens": 290},
                            headers=bearer(CI_KEY))
    assert big.status == 429 and "team search tokens per minute (300)" in (await big.json())["error"]["message"]


async def test_budget_overshoots_by_at_most_one_request(gateway: GatewayFactory, tmp_path: Path) -> None:
    client = await gateway(**governed(teams={"search": {"budget_usd": {"daily": 0.10}, "models": ["priced"]}}))
    body = {"model": "priced", "messages": HI, "max_tokens": 8}
    responses = await asyncio.gather(*[client.post("/v1/chat/completions", json=body, headers=bearer(CI_KEY))
                                       for _ in range(60)])
    refused = [r for r in responses if r.status == 429]
    assert refused, "the budget never refused anything"
    message = (await refused[0].json())["error"]["message"]
    assert message.startswith("team search daily budget ($0.10) ") and "resets at " in message
    assert "is spent" in message or "is left" in message
    await client.close()
    costs = [r["cost_usd"] for r in log_rows(tmp_path) if r["status"] == 200]
    assert sum(costs) <= 0.10 + max(costs) + 1e-9


async def test_failed_requests_release_their_budget_hold(gateway: GatewayFactory) -> None:
    sections = governed(teams={"search": {"budget_usd": {"daily": 0.05}, "models": ["flaky"]}},
                        providers={"down": {"kind": "mock", "fail_rate": 1.0, "fail_status": 503}},
                        models={"flaky": {"targets": ["down/priced"]}},
                        prices={"down/priced": {"input": 1000.0, "output": 1000.0}})
    client = await gateway(**sections)
    for _ in range(10):  # each would hold most of the budget; failures must give it back
        resp = await client.post("/v1/chat/completions", json={"model": "flaky", "messages": HI, "max_tokens": 4},
                                 headers=bearer(CI_KEY))
        assert resp.status == 502
