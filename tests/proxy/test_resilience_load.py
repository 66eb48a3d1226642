"""Resilience under load, bounded and fast: thousands of requests at concurrency 100 through the real app, with a
real flaky upstream (seeded, so every run sees the same failures) and with every target down."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from .conftest import GatewayFactory, log_rows
from .test_routing import HELLO, ScriptedUpstream, openai_provider

CONCURRENCY = 100
RESERVE = 10


async def _fire(client: TestClient, alias: str, n: int, *, stream_every: int = 0) -> Counter[int]:
    """Send ``n`` requests at most CONCURRENCY at a time; the statuses the clients saw."""
    statuses: Counter[int] = Counter()
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            stream = bool(stream_every) and i % stream_every == 0
            body = {"model": alias, "messages": HELLO, "stream": stream}
            async with client.post("/v1/chat/completions", json=body) as resp:
                text = await resp.text()
                broken = resp.status == 200 and stream and not text.rstrip().endswith("data: [DONE]")
                statuses[-1 if broken else resp.status] += 1  # -1: a 200 stream that did not finish

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return statuses


def _flaky(seed: int, p500: float, preset: float) -> tuple[ScriptedUpstream, Counter[str]]:
    rng = random.Random(seed)
    drawn: Counter[str] = Counter()

    def script(n: int) -> str:
        r = rng.random()
        behaviour = "500" if r < p500 else "reset" if r < p500 + preset else "ok"
        drawn[behaviour] += 1
        return behaviour

    return ScriptedUpstream(script), drawn


@pytest.mark.parametrize("cooldowns", [False, True])
async def test_flaky_primary_with_fallback_gives_no_client_errors(gateway: GatewayFactory, tmp_path: Path,
                                                                  cooldowns: bool) -> None:
    n = 2000
    upstream, drawn = _flaky(seed=20240611, p500=0.05, preset=0.02)
    started = time.perf_counter()
    async with upstream as up:
        # cooldowns off: every request really goes through the flaky primary first
        routing = {"cooldown_failures": 3, "cooldown_s": 0.2} if cooldowns else {"cooldown_failures": 10**6}
        client = await gateway(routing=routing,
                               providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m", "mock/mock-1"], "retries": 0}})
        statuses = await _fire(client, "real", n, stream_every=4)
        await client.close()
    elapsed = time.perf_counter() - started
    assert statuses == Counter({200: n}), f"client-visible errors: {statuses}"
    assert drawn["500"] > 0 and drawn["reset"] > 0, "the upstream really failed"
    rows = log_rows(tmp_path)
    assert len(rows) == n
    assert all(r["status"] == 200 and r["outcome"] == "ok" for r in rows)
    by_target = Counter(r["target"] for r in rows)
    failed_primary = drawn["500"] + drawn["reset"]
    assert sum(r["attempts"] for r in rows) == up.count + by_target["mock/mock-1"]
    assert by_target["mock/mock-1"] == failed_primary + (n - up.count)
    if not cooldowns:
        assert up.count == n
        assert 0.04 * n < failed_primary < 0.10 * n
    assert elapsed < 30


async def test_every_target_down_attempts_stay_within_the_budget(gateway: GatewayFactory, tmp_path: Path) -> None:
    n = 2000
    upstream, drawn = _flaky(seed=7, p500=0.7, preset=0.3)  # never answers
    async with upstream as up:
        client = await gateway(routing={"retry_budget": 0.2, "retry_reserve": RESERVE, "cooldown_failures": 10**6},
                               providers={"up": openai_provider(up.base_url),
                                          "spare": {"kind": "mock", "fail_rate": 1.0, "fail_status": 503}},
                               models={"real": {"targets": ["up/m", "spare/m"], "retries": 2}})
        statuses = await _fire(client, "real", n)
        await client.close()
    assert set(statuses) == {502}
    assert drawn["ok"] == 0
    rows = log_rows(tmp_path)
    assert len(rows) == n
    total = sum(r["attempts"] for r in rows)
    assert total <= 1.2 * n + RESERVE, f"{total} upstream attempts for {n} requests"
    assert up.count <= total
    assert total > n, "some retries/fallbacks were allowed"


async def test_every_target_down_with_cooldowns_is_cheaper_still(gateway: GatewayFactory, tmp_path: Path) -> None:
    """With the breaker on (defaults) the dead primary stops being called; attempts stay within the budget."""
    n = 1000
    async with ScriptedUpstream("503") as up:
        client = await gateway(providers={"up": openai_provider(up.base_url),
                                          "spare": {"kind": "mock", "fail_rate": 1.0}},
                               models={"real": {"targets": ["up/m", "spare/m"], "retries": 1}})
        statuses = await _fire(client, "real", n)
        await client.close()
    assert set(statuses) == {502}
    rows = log_rows(tmp_path)
    total = sum(r["attempts"] for r in rows)
    assert total <= 1.2 * n + RESERVE
    assert up.count < n / 2, "a dead target in cooldown is not called by every request"
