"""A provider kind's parameter table, end to end: a value the target cannot take is a 400 naming the field (never
clamped, never sent), unless the provider's drop_params lists it — then it is left out and named in the log."""

from __future__ import annotations

import json
from pathlib import Path

from llmgw.testing import FakeAnthropic

from .conftest import GatewayFactory, log_rows

HI = [{"role": "user", "content": "hi"}]


async def test_temperature_above_anthropics_range_is_a_400_naming_it(gateway: GatewayFactory,
                                                                     tmp_path: Path) -> None:
    async with FakeAnthropic() as up:
        client = await gateway(providers={"ant": {"kind": "anthropic", "base_url": up.base_url, "api_key": "k"}},
                               models={"claude": {"targets": ["ant/claude-x"]}})
        resp = await client.post("/v1/chat/completions",
                                 json={"model": "claude", "messages": HI, "temperature": 1.6})
        body = await resp.json()
        assert resp.status == 400, body
        assert body["error"]["param"] == "temperature"
        assert body["error"]["type"] == "invalid_request_error"
        assert "out of range for Anthropic targets, which accept 0 to 1" in body["error"]["message"]
        assert up.requests == [], "nothing reached the upstream"
        await client.close()
    [row] = log_rows(tmp_path)
    assert row["status"] == 400


async def test_temperature_listed_in_drop_params_is_left_out_and_logged(gateway: GatewayFactory,
                                                                        tmp_path: Path) -> None:
    async with FakeAnthropic() as up:
        provider = {"kind": "anthropic", "base_url": up.base_url, "api_key": "k", "drop_params": ["temperature"]}
        client = await gateway(providers={"ant": provider}, models={"claude": {"targets": ["ant/claude-x"]}})
        resp = await client.post("/v1/chat/completions",
                                 json={"model": "claude", "messages": HI, "temperature": 1.6})
        assert resp.status == 200, await resp.text()
        [request] = up.requests
        assert "temperature" not in request["body"]
        await client.close()
    [row] = log_rows(tmp_path)
    assert json.loads(row["dropped_params"]) == ["temperature"]
