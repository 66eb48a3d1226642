"""Two RedisState instances (two connection pools) hammering one Redis: limits hold exactly."""

from __future__ import annotations

import asyncio
import time

from llmgw.store.shared import MemoryState
from llmgw.store.shared_redis import RedisState

from .conftest import RedisServer
from .test_state_contract import hold, rpm, tpm


async def test_300_concurrent_acquires_from_two_instances_admit_exactly_60(redis_server: RedisServer) -> None:
    a, b = RedisState(redis_server.url), RedisState(redis_server.url)
    try:
        now = time.time()
        windows = [rpm(60), tpm(10**9, 50)]
        answers = await asyncio.gather(*[(a, b)[i % 2].acquire(f"req_{i}", windows, [], now) for i in range(300)])
    finally:
        await a.close()
        await b.close()
    assert sum(d is None for d in answers) == 60
    refused = [d for d in answers if d is not None]
    assert len(refused) == 240
    assert {d.label for d in refused} == {"key:ci requests per minute (60)"}
    assert all(not d.budget and d.retry_after == 60.0 for d in refused)


async def test_concurrent_budget_holds_never_overshoot(redis_server: RedisServer) -> None:
    a, b = RedisState(redis_server.url), RedisState(redis_server.url)
    memory = MemoryState()
    budget = hold(1.0, 0.03)
    try:
        now = time.time()
        answers = await asyncio.gather(*[(a, b)[i % 2].acquire(f"req_{i}", [], [budget], now) for i in range(300)])
        spent = await a.spent(budget.key)
    finally:
        await a.close()
        await b.close()
    expected = [await memory.acquire(f"req_{i}", [], [budget], now) for i in range(300)]
    assert sum(d is None for d in answers) == sum(d is None for d in expected) == 33
    assert spent == await memory.spent(budget.key) and spent <= 1.0
