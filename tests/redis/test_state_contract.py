"""RedisState and SQLiteState against the SharedState contract: every case runs on MemoryState (the reference),
RedisState and SQLiteState."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from llmgw.store.shared import Denial, Hold, MemoryState, SharedState, Window
from llmgw.store.shared_redis import KEY_TTL_S, RedisState
from llmgw.store.shared_sqlite import SQLiteState

from .conftest import RedisServer

RESETS = "2030-01-01T00:00:00Z"


def rpm(limit: int, owner: str = "key:ci") -> Window:
    return Window(f"llmgw:rpm:{owner}", "rpm", limit, 1, f"{owner} requests per minute ({limit})")


def tpm(limit: int, cost: int, owner: str = "key:ci") -> Window:
    return Window(f"llmgw:tpm:{owner}", "tpm", limit, cost, f"{owner} tokens per minute ({limit})")


def hold(limit: float, amount: float, owner: str = "team:search", ttl: int = 3600) -> Hold:
    return Hold(f"llmgw:budget:{owner}:day:2030-01-01", limit, amount, ttl, f"{owner} daily budget (${limit:.2f})",
                RESETS)


@pytest.fixture(params=["memory", "redis", "sqlite"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[SharedState]:
    if request.param == "memory":
        yield MemoryState()
        return
    if request.param == "sqlite":
        sqlite_state = SQLiteState(request.getfixturevalue("tmp_path") / "shared-state.db")
        try:
            yield sqlite_state
        finally:
            await sqlite_state.close()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    redis_state = RedisState(server.url)
    try:
        yield redis_state
    finally:
        await redis_state.close()


async def test_rpm_admits_exactly_the_limit_in_a_sliding_minute(state: SharedState) -> None:
    t = time.time()
    w = [rpm(3)]
    for i, at in enumerate((t, t + 10, t + 20)):
        assert await state.acquire(f"r{i}", w, [], at) is None
    denial = await state.acquire("r3", w, [], t + 30)
    assert denial == Denial("key:ci requests per minute (3)", pytest.approx(30.0), budget=False)
    late = await state.acquire("r3", w, [], t + 59.5)
    assert late is not None and late.retry_after == 1.0  # never less than a second
    assert await state.acquire("r3", w, [], t + 60) is None  # the first admission is exactly a minute old: gone
    again = await state.acquire("r4", w, [], t + 60.5)
    assert again is not None and again.retry_after == pytest.approx(9.5)  # waits for the one at t + 10


async def test_a_refused_request_records_nothing(state: SharedState) -> None:
    t = time.time()
    budget = hold(0.10, 0.06)
    assert await state.acquire("r1", [rpm(2)], [budget], t) is None
    denial = await state.acquire("r2", [rpm(2)], [budget], t + 1)  # the window has room, the budget has not
    assert denial == Denial("team:search daily budget ($0.10)", 0.0, budget=True, resets=RESETS)
    assert await state.acquire("r3", [rpm(2)], [], t + 2) is None  # r2 took no room in the window
    assert await state.spent(budget.key) == pytest.approx(0.06)
    other = hold(1.0, 0.5, owner="team:ads")
    refused = await state.acquire("r4", [rpm(2)], [other], t + 3)  # the window refuses: the budget is untouched
    assert refused is not None and not refused.budget
    assert await state.spent(other.key) == 0.0


async def test_the_first_refusing_limit_is_named_windows_before_budgets(state: SharedState) -> None:
    t = time.time()
    key_w, team_w = rpm(5), rpm(1, owner="team:search")
    assert await state.acquire("r1", [key_w, team_w], [], t) is None
    broke = hold(0.01, 0.02)
    denial = await state.acquire("r2", [key_w, team_w], [broke], t + 1)
    assert denial == Denial("team:search requests per minute (1)", pytest.approx(59.0), budget=False)
    first, second = hold(0.01, 0.02, owner="key:ci"), hold(0.01, 0.02)
    denial = await state.acquire("r3", [key_w], [first, second], t + 2)
    assert denial == Denial("key:ci daily budget ($0.01)", 0.0, budget=True, resets=RESETS)


async def test_tpm_reservations_are_corrected_by_settle(state: SharedState) -> None:
    t = time.time()
    assert await state.acquire("r1", [tpm(1000, 800)], [], t) is None
    denial = await state.acquire("r2", [tpm(1000, 300)], [], t + 1)
    assert denial is not None and denial.label == "key:ci tokens per minute (1000)"
    await state.settle("r1", [tpm(1000, 800)], [], 100, 0.0, t + 2)
    assert await state.acquire("r2", [tpm(1000, 300)], [], t + 3) is None  # 100 + 300
    assert await state.acquire("r3", [tpm(1000, 601)], [], t + 4) is not None
    assert await state.acquire("r3", [tpm(1000, 600)], [], t + 5) is None  # exactly 1000
    await state.settle("nobody", [tpm(1000, 600)], [], 0, 0.0, t + 6)  # unknown request: nothing changes
    assert await state.acquire("r4", [tpm(1000, 1)], [], t + 7) is not None


async def test_settle_leaves_request_counts_alone(state: SharedState) -> None:
    t = time.time()
    assert await state.acquire("r1", [rpm(1)], [], t) is None
    await state.settle("r1", [rpm(1)], [], 0, 0.0, t + 1)  # a request happened, whatever it used
    assert await state.acquire("r2", [rpm(1)], [], t + 2) is not None


async def test_a_request_larger_than_the_window_waits_a_whole_minute(state: SharedState) -> None:
    denial = await state.acquire("r1", [tpm(100, 500)], [], time.time())
    assert denial is not None and denial.retry_after == 60.0


async def test_budget_holds_are_settled_to_the_real_cost_or_released(state: SharedState) -> None:
    t = time.time()
    key = hold(0.10, 0.04).key
    assert await state.acquire("r1", [], [hold(0.10, 0.04)], t) is None
    assert await state.acquire("r2", [], [hold(0.10, 0.04)], t) is None
    assert await state.spent(key) == pytest.approx(0.08)
    assert await state.acquire("r3", [], [hold(0.10, 0.04)], t) is not None
    await state.settle("r1", [], [hold(0.10, 0.04)], 0, 0.01, t + 1)  # it cost one cent, not four
    assert await state.spent(key) == pytest.approx(0.05)
    assert await state.acquire("r3", [], [hold(0.10, 0.04)], t + 2) is None
    await state.settle("r2", [], [hold(0.10, 0.04)], 0, 0.0, t + 3)  # it failed: the hold is released
    assert await state.spent(key) == pytest.approx(0.05)


async def test_sums_are_the_same_doubles_as_in_python(state: SharedState) -> None:
    t = time.time()
    for i, amount in enumerate((0.1, 0.2)):
        assert await state.acquire(f"r{i}", [], [hold(5.0, amount)], t) is None
    assert await state.spent(hold(5.0, 0).key) == 0.1 + 0.2  # 0.30000000000000004, not 0.3


async def test_seed_starts_a_counter_only_when_it_is_empty(state: SharedState) -> None:
    await state.seed("llmgw:budget:a", 0.5, 60)
    await state.seed("llmgw:budget:a", 0.9, 60)
    assert await state.spent("llmgw:budget:a") == 0.5
    await state.seed("llmgw:budget:b", 0.0, 60)
    await state.seed("llmgw:budget:b", 0.3, 60)
    assert await state.spent("llmgw:budget:b") == 0.3
    assert await state.spent("llmgw:budget:none") == 0.0
    t = time.time()
    back_to_zero = hold(1.0, 0.2, owner="team:zero")
    assert await state.acquire("r1", [], [back_to_zero], t) is None
    await state.settle("r1", [], [back_to_zero], 0, 0.0, t)
    assert await state.spent(back_to_zero.key) == 0.0
    await state.seed(back_to_zero.key, 0.7, 60)  # a counter at zero is as good as none
    assert await state.spent(back_to_zero.key) == 0.7


async def test_budget_counters_expire_after_their_ttl(state: SharedState) -> None:
    await state.seed("llmgw:budget:seeded", 1.0, 1)
    short = hold(1.0, 0.9, owner="team:short", ttl=1)
    assert await state.acquire("r1", [], [short], time.time()) is None
    assert await state.acquire("r2", [], [short], time.time()) is not None
    await asyncio.sleep(1.1)
    assert await state.spent("llmgw:budget:seeded") == 0.0
    assert await state.spent(short.key) == 0.0
    assert await state.acquire("r2", [], [short], time.time()) is None


async def test_redis_keys_are_readable_and_expire(redis_server: RedisServer) -> None:
    state = RedisState(redis_server.url)
    client = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        t = time.time()
        budget = hold(1.0, 0.25, ttl=600)
        assert await state.acquire("req_1", [rpm(5), tpm(100, 40)], [budget], t) is None
        assert await client.zrange("llmgw:rpm:key:ci", 0, -1, withscores=True) == [("req_1", t)]
        assert await client.hgetall("llmgw:tpm:key:ci:c") == {"req_1": "40"}
        assert await client.get("llmgw:tpm:key:ci:n") == "40"
        assert await client.get(budget.key) == "0.25"
        assert 590 <= await client.ttl(budget.key) <= 600
        for key in ("llmgw:rpm:key:ci", "llmgw:tpm:key:ci", "llmgw:tpm:key:ci:c", "llmgw:tpm:key:ci:n"):
            assert 0 < await client.ttl(key) <= KEY_TTL_S
        await state.settle("req_1", [rpm(5), tpm(100, 40)], [budget], 7, 0.125, t + 1)
        assert await client.get("llmgw:tpm:key:ci:n") == "7"
        assert await client.get(budget.key) == "0.125"
        assert 590 <= await client.ttl(budget.key) <= 600  # settling keeps the counter's expiry
    finally:
        await client.aclose()
        await state.close()


# --- the same scenario on both: identical answers ---------------------------------------------------------------


async def run_scenario(state: SharedState, seed: int, start: float) -> list[Any]:
    """A random but reproducible mix of acquires and settles over overlapping keys; every answer, in order."""
    rng = random.Random(seed)
    now = start
    pending: list[tuple[str, list[Window], list[Hold]]] = []
    out: list[Any] = []
    for i in range(300):
        now += rng.choice((0.0, 0.001, 0.5, 1.0, 3.0, 7.5))
        if pending and rng.random() < 0.4:
            rid, windows, holds = pending.pop(rng.randrange(len(pending)))
            used_usd = rng.choice((0.0, 0.001, 0.0123, 0.02))
            await state.settle(rid, windows, holds, rng.randrange(0, 400), used_usd, now)
            out.append(("settle", rid))
        else:
            owner = rng.choice(("key:a", "key:b"))
            cost = rng.randrange(1, 300)
            windows = [rpm(12, owner), tpm(2000, cost, owner), rpm(20, "team:t"), tpm(3000, cost, "team:t")]
            windows = [w for w in windows if rng.random() < 0.8]
            holds = [h for h in (hold(0.5, rng.choice((0.01, 0.02, 0.05)), owner), hold(0.8, 0.03, "team:t"))
                     if rng.random() < 0.7]
            rid = f"req_{i}"
            denial = await state.acquire(rid, windows, holds, now)
            out.append(("acquire", rid, denial))
            if denial is None:
                pending.append((rid, windows, holds))
        if i % 25 == 0:
            out.append(("spent", [await state.spent(hold(0, 0, o).key) for o in ("key:a", "key:b", "team:t")]))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_memory_and_redis_answer_the_same_scenario_identically(redis_server: RedisServer, seed: int) -> None:
    start = time.time()
    redis_state = RedisState(redis_server.url)
    try:
        expected = await run_scenario(MemoryState(), seed, start)
        got = await run_scenario(redis_state, seed, start)
    finally:
        await redis_state.close()
    assert got == expected
    answers = [o[2] for o in expected if o[0] == "acquire"]
    assert any(a is None for a in answers) and any(a is not None and a.budget for a in answers) \
        and any(a is not None and not a.budget for a in answers), "the scenario should admit and refuse"
