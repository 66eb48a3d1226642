"""SIGTERM mid-load: the server stops accepting, finishes every in-flight request, flushes every row, exits 0."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from typing import Any

import aiohttp
import pytest

pytestmark = pytest.mark.e2e

PROFILE = {
    "server": {"log_bodies": True},
    "providers": {"slow": {"kind": "mock", "latency_ms": 400}},
    "models": {"slow": {"targets": ["slow/mock-slow"]}},
}


async def _one(session: aiohttp.ClientSession, url: str, i: int) -> tuple[int, str, str]:
    body = {"model": "slow", "messages": [{"role": "user", "content": f"request {i}"}], "stream": i % 2 == 0}
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        text = await resp.text()
        return resp.status, resp.headers["x-llmgw-request-id"], text


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_mid_load_drains_and_logs_every_request(serve: Any, sig: int) -> None:
    server = serve(PROFILE)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = [asyncio.create_task(_one(session, server.url, i)) for i in range(120)]
        await asyncio.sleep(0.2)  # all of them are now waiting on the upstream
        server.proc.send_signal(sig)
        results = await asyncio.gather(*tasks)
    code = await asyncio.to_thread(server.stop)
    assert code == 0, "".join(server.output)
    assert all(status == 200 for status, _, _ in results)
    assert all(text.rstrip().endswith("data: [DONE]") for (_, _, text), i in zip(results, range(120), strict=True)
               if i % 2 == 0), "a stream was cut during shutdown"
    conn = sqlite3.connect(server.db)
    logged = {row[0]: row[1] for row in conn.execute("SELECT id, status FROM requests")}
    conn.close()
    assert logged == {request_id: 200 for _, request_id, _ in results}
    assert any("request log flushed" in line for line in server.output)
