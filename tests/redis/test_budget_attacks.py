"""The budget attacks of tests/security, with two gateways sharing one real Redis: long answers without
max_tokens, and negative usage, overshoot a budget by at most one request's maximum cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmgw.proxy.app import make_app
from tests.security.attacks import DEFAULT_CAP, ENV, HI, attack_profile, burst, logged, most_one_request_costs
from tests.security.upstream import AttackUpstream

from .conftest import RedisServer

DAILY = 0.5


@pytest.fixture(autouse=True)
def attack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(("usage", "body", "cap"), [
    ("honest", {}, DEFAULT_CAP),
    ("negative", {"max_tokens": 2000}, 2000),
])
async def test_two_gateways_on_one_redis_cannot_overspend(aiohttp_client: Any, tmp_path: Path,
                                                          redis_server: RedisServer, usage: str,
                                                          body: dict[str, Any], cap: int) -> None:
    db = tmp_path / "llmgw.db"
    async with AttackUpstream(usage=usage) as upstream:
        clients = [await aiohttp_client(make_app(attack_profile(db, upstream.url, daily=DAILY,
                                                                shared=redis_server.url)))
                   for _ in range(2)]
        statuses = await burst(clients, 200, {"model": "long", "messages": HI, **body})
        for client in clients:
            await client.close()
        assert all(r.body.get("max_completion_tokens", r.body.get("max_tokens")) == cap for r in upstream.received)
    rows = logged(db)
    assert statuses.count(200) >= 5 and statuses.count(429) >= 100
    assert all(r["cost_usd"] >= 0 for r in rows)
    assert sum(r["cost_usd"] for r in rows) <= DAILY + most_one_request_costs(50, cap)
