"""SQLiteState: several instances and several processes on one file enforce one limit exactly (no Redis needed).

The contract cases themselves run on SQLiteState in :mod:`tests.redis.test_state_contract`.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from llmgw.store import shared_sqlite
from llmgw.store.shared import MemoryState, StateUnavailable
from llmgw.store.shared_sqlite import SQLiteState

from .test_state_contract import hold, rpm, run_scenario, tpm


async def test_300_concurrent_acquires_from_two_instances_admit_exactly_60(tmp_path: Path) -> None:
    path = tmp_path / "shared-state.db"
    a, b = SQLiteState(path), SQLiteState(path)
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
    assert_totals_match(path)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT key, COUNT(*), SUM(cost) FROM admissions GROUP BY key ORDER BY key").fetchall() \
            == [("llmgw:rpm:key:ci", 60, 60), ("llmgw:tpm:key:ci", 60, 3000)]
    db.close()


async def test_concurrent_budget_holds_never_overshoot(tmp_path: Path) -> None:
    path = tmp_path / "shared-state.db"
    a, b = SQLiteState(path), SQLiteState(path)
    memory = MemoryState()
    budget = hold(1.0, 0.03)
    try:
        now = time.time()
        answers = await asyncio.gather(*[(a, b)[i % 2].acquire(f"req_{i}", [], [budget], now) for i in range(300)])
        spent = await b.spent(budget.key)
    finally:
        await a.close()
        await b.close()
    expected = [await memory.acquire(f"req_{i}", [], [budget], now) for i in range(300)]
    assert sum(d is None for d in answers) == sum(d is None for d in expected) == 33
    assert spent == await memory.spent(budget.key) and spent <= 1.0


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_memory_and_sqlite_answer_the_same_scenario_identically(tmp_path: Path, seed: int) -> None:
    start = time.time()
    path = tmp_path / "shared-state.db"
    state = SQLiteState(path)
    try:
        got = await run_scenario(state, seed, start)
    finally:
        await state.close()
    assert got == await run_scenario(MemoryState(), seed, start)
    assert_totals_match(path)


def assert_totals_match(path: Path) -> None:
    """Every window's running total is the sum of its admissions' costs."""
    with sqlite3.connect(path) as db:
        totals = dict(db.execute("SELECT key, total FROM totals WHERE total != 0").fetchall())
        sums = dict(db.execute("SELECT key, SUM(cost) FROM admissions GROUP BY key HAVING SUM(cost) != 0").fetchall())
    db.close()
    assert totals == sums


async def test_a_sweep_drops_what_has_been_stale_for_an_hour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared_sqlite, "SWEEP_EVERY", 1)
    path = tmp_path / "shared-state.db"
    state = SQLiteState(path)
    t = time.time()
    try:
        assert await state.acquire("r1", [rpm(5, "key:old"), tpm(100, 10, "key:old")], [hold(1.0, 0.1, ttl=1)],
                                   t - 2 * 3600) is None
        assert await state.acquire("r2", [rpm(5, "key:recent")], [hold(1.0, 0.1, owner="team:b", ttl=1)],
                                   t - 600) is None
        assert await state.acquire("r3", [rpm(5)], [], t) is None  # sweeps
    finally:
        await state.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT key FROM admissions ORDER BY key").fetchall() \
            == [("llmgw:rpm:key:ci",), ("llmgw:rpm:key:recent",)]
        assert db.execute("SELECT key FROM counters").fetchall() == [("llmgw:budget:team:b:day:2030-01-01",)]
    db.close()
    assert_totals_match(path)


def _acquire_in_a_process(path: str, owner: int, n: int, now: float, barrier: Any, results: Any) -> None:
    """The body of one spawned process: ``n`` concurrent acquires on its own SQLiteState; puts how many passed."""
    async def main() -> int:
        state = SQLiteState(Path(path))
        try:
            await state.spent("warm-up")  # open the file (and create the tables) before the race starts
            barrier.wait(30)
            answers = await asyncio.gather(*[state.acquire(f"req_{owner}_{i}", [rpm(60)], [], now)
                                             for i in range(n)])
        finally:
            await state.close()
        return sum(d is None for d in answers)

    results.put((owner, asyncio.run(main())))


def test_two_processes_admit_exactly_60_in_all(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    path, now = str(tmp_path / "shared-state.db"), time.time()  # the file does not exist yet: both create it
    procs = [ctx.Process(target=_acquire_in_a_process, args=(path, owner, 100, now, barrier, results))
             for owner in range(2)]
    for proc in procs:
        proc.start()
    try:
        admitted = dict(results.get(timeout=60) for _ in procs)
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join()
    assert [proc.exitcode for proc in procs] == [0, 0]
    assert sum(admitted.values()) == 60, admitted
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM admissions").fetchone() == (60,)
    db.close()


async def test_a_locked_file_is_unavailable_within_the_busy_timeout_and_the_loop_keeps_running(
        tmp_path: Path) -> None:
    path = tmp_path / "shared-state.db"
    state = SQLiteState(path, busy_timeout_s=0.3)
    await state.seed("llmgw:budget:x", 0.5, 60)  # creates the file and its tables
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        started = time.monotonic()
        with pytest.raises(StateUnavailable, match="locked"):
            await state.acquire("r1", [rpm(5)], [], time.time())
        assert 0.25 < time.monotonic() - started < 2.0
        assert ticks >= 10  # the event loop was never blocked while SQLite waited
        other.execute("ROLLBACK")
        assert await state.acquire("r1", [rpm(5)], [], time.time()) is None  # and it recovers at once
        assert await state.spent("llmgw:budget:x") == 0.5
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        other.close()
        await state.close()


async def test_a_released_write_lock_is_taken_within_milliseconds(tmp_path: Path) -> None:
    """Another process holds the write lock for 20 ms. SQLite's own busy handler would next look at 33 ms (it sleeps
    1, 2, 5, 10, 15 … ms), so two workers under load waited tens to hundreds of ms for transactions of well under
    one; the state retries in steps of at most 2 ms."""
    path = tmp_path / "shared-state.db"
    state = SQLiteState(path)
    await state.seed("llmgw:budget:x", 0.0, 60)
    other = sqlite3.connect(path, isolation_level=None)
    lags = []
    try:
        for i in range(5):
            other.execute("BEGIN IMMEDIATE")
            acquiring = asyncio.ensure_future(state.acquire(f"r{i}", [rpm(100)], [], time.time()))
            await asyncio.sleep(0.02)
            other.execute("COMMIT")
            released = time.monotonic()
            assert await acquiring is None
            lags.append(time.monotonic() - released)
    finally:
        other.close()
        await state.close()
    assert min(lags) < 0.010, lags


async def test_an_unusable_path_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-directory").mkdir()
    state = SQLiteState(tmp_path / "a-directory")
    try:
        with pytest.raises(StateUnavailable):
            await state.acquire("r1", [rpm(5)], [], time.time())
    finally:
        await state.close()
