"""The acceptance test: two `llmgw serve` processes sharing one Redis enforce one rate limit and one budget."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from llmgw.store.keys import KeyStore
from llmgw.store.log import connect
from tests.e2e.conftest import ServeProcess, serving_together, write_profile

from .conftest import RedisServer

RATED_KEY = "sk-llmgw-redis-e2e-rated-0001"
SPENDER_KEY = "sk-llmgw-redis-e2e-spender-0001"
ENV = {"LLMGW_REDIS_E2E_RATED": RATED_KEY, "LLMGW_REDIS_E2E_SPENDER": SPENDER_KEY}


@pytest.fixture
def pair(tmp_path: Path, redis_server: RedisServer) -> Iterator[list[ServeProcess]]:
    """Two gateways with one profile: one Redis for limits, one SQLite file for the request log."""
    db = tmp_path / "llmgw.db"
    profile = write_profile(tmp_path / "profile.toml", {
        "state": {"url": f"sqlite:///{db}", "shared": redis_server.url},
        "providers": {"mock": {"kind": "mock"}},
        "models": {"fast": {"targets": ["mock/m"]}},
        "prices": {"mock/m": {"input": 1000.0, "output": 1000.0}},  # a tenth of a cent a token
        "teams": {"free": {}, "paying": {"budget_usd": {"daily": 0.10}}},
        "keys": {"rated": {"key": "env:LLMGW_REDIS_E2E_RATED", "team": "free", "rpm": 60},
                 "spender": {"key": "env:LLMGW_REDIS_E2E_SPENDER", "team": "paying"}},
    })
    # both at once, on a state file that does not exist yet
    with serving_together([(profile, db, ENV)] * 2) as servers:
        yield servers


async def burst(servers: list[ServeProcess], key: str, n: int, body: dict) -> list[tuple[int, dict[str, str]]]:
    """``n`` concurrent requests, alternating between the servers: (status, headers) of each."""
    async def one(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str]]:
        async with session.post(url + "/v1/chat/completions", json=body,
                                headers={"Authorization": f"Bearer {key}"}) as resp:
            await resp.read()
            return resp.status, dict(resp.headers)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        return await asyncio.gather(*[one(session, servers[i % 2].url) for i in range(n)])


def logged(db: Path, key: str) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT status, cost_usd, key FROM requests WHERE key = ?", (key,)).fetchall()
    conn.close()
    return rows


@pytest.mark.e2e
async def test_rpm_is_exact_across_two_processes(pair: list[ServeProcess]) -> None:
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
    answers = await burst(pair, RATED_KEY, 300, body)
    statuses = [status for status, _ in answers]
    # 60 in all, not 60 per process (which of the two admitted them is a matter of timing)
    assert statuses.count(200) == 60 and statuses.count(429) == 240, sorted(set(statuses))
    assert all(int(headers["Retry-After"]) >= 1 for status, headers in answers if status == 429)
    for server in pair:
        assert server.stop() == 0


@pytest.mark.e2e
async def test_a_daily_budget_is_kept_across_two_processes(pair: list[ServeProcess]) -> None:
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    answers = await burst(pair, SPENDER_KEY, 200, body)
    statuses = [status for status, _ in answers]
    assert statuses.count(200) >= 3 and statuses.count(429) >= 100, sorted(set(statuses))
    assert set(statuses) == {200, 429}
    for server in pair:
        assert server.stop() == 0  # flushes its log rows
    rows = [r for r in logged(pair[0].db, "spender") if r["status"] == 200]
    assert len(rows) == statuses.count(200)
    costs = [r["cost_usd"] for r in rows]
    assert all(c > 0 for c in costs)
    assert sum(costs) <= 0.10 + max(costs) + 1e-9



@pytest.mark.parametrize("opener", [connect, KeyStore], ids=["request log", "key store"])
def test_a_gateway_starting_while_another_creates_the_state_file_waits_for_it(
        tmp_path: Path, opener: Callable[[Path], Any]) -> None:
    """Two gateways started together on a new ``[state] url``: the second must wait (``timeout=30``), not fail.

    The other process is modelled by a connection in the middle of a write transaction on the new file (as
    during its own ``PRAGMA journal_mode=WAL`` or first migration), released 0.2 s later.
    """
    path = tmp_path / "llmgw.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.2, other.execute, ("ROLLBACK",))
    release.start()
    try:
        opener(path).close()
    finally:
        release.join()
        other.close()
