"""SIGTERM mid-load: the server stops accepting, finishes every in-flight request, flushes every row, exits 0."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from typing import Any

import aiohttp
import pytest

from llmgw.testing import FakeOpenAI

pytestmark = pytest.mark.e2e

N = 120


def profile(upstream_url: str) -> dict[str, Any]:
    return {"server": {"log_bodies": True},
            "providers": {"slow": {"kind": "openai-compatible", "base_url": upstream_url}},
            "models": {"slow": {"targets": ["slow/model-slow"]}}}


async def _one(session: aiohttp.ClientSession, url: str, i: int) -> tuple[int, str, str]:
    body = {"model": "slow", "messages": [{"role": "user", "content": f"request number {i} of many"}],
            "stream": i % 2 == 0}
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        text = await resp.text()
        return resp.status, resp.headers["x-llmgw-request-id"], text


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_mid_load_drains_and_logs_every_request(serve: Any, sig: int) -> None:
    async with FakeOpenAI(chunk_delay_s=0.1) as upstream:  # each answer takes about half a second
        server = serve(profile(upstream.base_url))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            tasks = [asyncio.create_task(_one(session, server.url, i)) for i in range(N)]
            while len(upstream.requests) < N:  # every request is now in flight inside the gateway
                assert not any(t.done() for t in tasks), "a request finished before all were in flight"
                await asyncio.sleep(0.01)
            server.proc.send_signal(sig)
            results = await asyncio.gather(*tasks)
    code = await asyncio.to_thread(server.proc.wait, 30)
    server.close()
    assert code == 0, "".join(server.output)
    assert all(status == 200 for status, _, _ in results)
    assert all(text.rstrip().endswith("data: [DONE]") for (_, _, text), i in zip(results, range(N), strict=True)
               if i % 2 == 0), "a stream was cut during shutdown"
    conn = sqlite3.connect(server.db)
    logged = {row[0]: row[1] for row in conn.execute("SELECT id, status FROM requests")}
    conn.close()
    assert logged == {request_id: 200 for _, request_id, _ in results}
    assert any("request log flushed" in line for line in server.output)
