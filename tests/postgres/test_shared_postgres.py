"""PostgresState against the SharedState contract (the same cases as MemoryState, RedisState and SQLiteState),
the same answers as MemoryState on a random scenario, atomic across instances, and unavailable as one error."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest

from llmgw.store.shared import MemoryState, SharedState, StateUnavailable
from llmgw.store.shared_postgres import PostgresState
from tests.postgres.conftest import PASSWORD_ENV, free_port
from tests.redis.test_state_contract import (  # noqa: F401  (the contract's cases run here on PostgresState)
    hold,
    rpm,
    run_scenario,
    test_a_refused_request_records_nothing,
    test_a_request_larger_than_the_window_waits_a_whole_minute,
    test_budget_counters_expire_after_their_ttl,
    test_budget_holds_are_settled_to_the_real_cost_or_released,
    test_rpm_admits_exactly_the_limit_in_a_sliding_minute,
    test_seed_starts_a_counter_only_when_it_is_empty,
    test_settle_leaves_request_counts_alone,
    test_sums_are_the_same_doubles_as_in_python,
    test_the_first_refusing_limit_is_named_windows_before_budgets,
    test_tpm_reservations_are_corrected_by_settle,
)


@pytest.fixture
async def state(pg_url: str) -> AsyncIterator[SharedState]:
    shared = PostgresState(pg_url, os.environ[PASSWORD_ENV])
    try:
        yield shared
    finally:
        await shared.close()


@pytest.mark.parametrize("seed", [1, 2])
async def test_memory_and_postgres_answer_the_same_scenario_identically(pg_url: str, seed: int) -> None:
    start = time.time()
    shared = PostgresState(pg_url, os.environ[PASSWORD_ENV])
    try:
        got = await run_scenario(shared, seed, start)
    finally:
        await shared.close()
    assert got == await run_scenario(MemoryState(), seed, start)


async def test_instances_racing_for_one_budget_never_overspend_it(pg_url: str) -> None:
    instances = [PostgresState(pg_url, os.environ[PASSWORD_ENV]) for _ in range(4)]
    now = time.time()
    budget = hold(1.0, 0.03)
    try:
        answers = await asyncio.gather(*(instances[i % 4].acquire(f"r{i}", [rpm(1000)], [budget], now)
                                         for i in range(80)))
        assert sum(a is None for a in answers) == 33          # floor(1.0 / 0.03): exactly, not one more
        assert await instances[1].spent(budget.key) == pytest.approx(0.99)
    finally:
        for shared in instances:
            await shared.close()


async def test_an_unreachable_database_is_state_unavailable() -> None:
    shared = PostgresState(f"postgresql://u:pw-in-url@127.0.0.1:{free_port()}/db", timeout_s=1)
    try:
        with pytest.raises(StateUnavailable) as raised:
            await shared.acquire("r1", [rpm(5)], [], time.time())
        assert "pw-in-url" not in str(raised.value) and "\n" not in str(raised.value)
    finally:
        await shared.close()
