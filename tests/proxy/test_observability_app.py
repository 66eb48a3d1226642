"""/metrics and /admin/events wired into the real app: they move with traffic through the pipeline."""

from __future__ import annotations

import asyncio
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import GatewayFactory

HI = [{"role": "user", "content": "hi"}]


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


async def test_metrics_counters_move_with_traffic(gateway: GatewayFactory) -> None:
    client = await gateway()
    before = await (await client.get("/metrics")).text()
    for _ in range(3):
        assert (await client.post("/v1/chat/completions", json={"model": "fast", "messages": HI})).status == 200
    await client.post("/v1/chat/completions", json={"model": "nope", "messages": HI})
    after = await (await client.get("/metrics")).text()
    assert sample(after, "llmgw_requests_total", alias="fast", status="200") - \
        sample(before, "llmgw_requests_total", alias="fast", status="200") == 3
    assert sample(after, "llmgw_request_latency_seconds_count", alias="fast") >= 3
    assert sample(after, "llmgw_tokens_total", alias="fast", kind="output") > 0


async def test_admin_events_stream_finished_requests(gateway: GatewayFactory) -> None:
    client = await gateway()
    resp = await client.get("/admin/events")
    assert resp.status == 200

    async def read_one() -> dict:
        while True:
            line = (await resp.content.readline()).decode()
            if line.startswith("data: "):
                return json.loads(line[6:])

    reader = asyncio.create_task(read_one())
    await asyncio.sleep(0.05)
    answer = await client.post("/v1/chat/completions", json={"model": "fast", "messages": HI})
    record = await asyncio.wait_for(reader, 5)
    assert record["id"] == answer.headers["x-llmgw-request-id"] and record["alias"] == "fast"
    assert "request" not in record or record["request"] is None
    resp.close()


@pytest.mark.parametrize("admin", [None, "env:LLMGW_TEST_ADMIN"])
async def test_admin_events_need_the_admin_key_once_keys_exist(
        gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch, admin: str | None) -> None:
    monkeypatch.setenv("LLMGW_TEST_ADMIN", "admin-secret-1")
    monkeypatch.setenv("LLMGW_TEST_CI_KEY", "sk-llmgw-ci")
    server = {"admin_key": admin} if admin else {}
    client = await gateway(server=server, teams={"t": {}}, keys={"ci": {"key": "env:LLMGW_TEST_CI_KEY", "team": "t"}})
    assert (await client.get("/admin/events")).status == 401
    assert (await client.get("/admin/events", headers={"Authorization": "Bearer sk-llmgw-ci"})).status == 401
    if admin:
        ok = await client.get("/admin/events", headers={"Authorization": "Bearer admin-secret-1"})
        assert ok.status == 200
        ok.close()
