"""MemoryState's rate windows at scale: settling is exact, costs no search through the window, and admissions
that are never settled do not pile up."""

from __future__ import annotations

import asyncio
import time

from llmgw.store.shared import WINDOW_S, MemoryState, Window


def tpm(limit: int, cost: int) -> Window:
    return Window("llmgw:tpm:key:k", "tpm", limit, cost, "key k tokens per minute")


def test_settling_in_a_full_window_corrects_only_that_admission() -> None:
    state = MemoryState()
    now = 1_000_000.0

    async def run() -> None:
        for n in range(50_000):
            assert await state.acquire(f"r{n}", [tpm(10**9, 100)], [], now + n * 0.001) is None
        # the oldest admission used 10 tokens, not the 100 reserved; the newest used 300
        await state.settle("r0", [tpm(10**9, 100)], [], 10, 0.0, now + 50)
        await state.settle("r49999", [tpm(10**9, 100)], [], 300, 0.0, now + 50)

    asyncio.run(run())
    log = state._logs["llmgw:tpm:key:k"]
    assert log.total == 50_000 * 100 - 90 + 200
    assert not log.pending or set(log.pending) == {f"r{n}" for n in range(1, 49_999)}
    # once r0 leaves the window, its corrected cost (10) leaves with it, not the reserved 100
    log.trim(now + WINDOW_S + 0.0005)
    assert log.total == 49_999 * 100 + 200 and len(log.costs) == 49_999 and log.costs[-1] == 300


def test_settling_an_admission_that_left_the_window_changes_nothing() -> None:
    state = MemoryState()

    async def run() -> int:
        assert await state.acquire("old", [tpm(1000, 500)], [], 100.0) is None
        assert await state.acquire("new", [tpm(1000, 400)], [], 100.0 + WINDOW_S + 1) is None
        await state.settle("old", [tpm(1000, 500)], [], 900, 0.0, 100.0 + WINDOW_S + 2)
        return state._logs["llmgw:tpm:key:k"].total

    assert asyncio.run(run()) == 400


def test_unsettled_admissions_are_forgotten_once_out_of_the_window() -> None:
    state = MemoryState()
    start = time.time()

    async def run() -> None:  # a request per 10 ms for 10 minutes, none settled (e.g. a crashed worker)
        for n in range(60_000):
            await state.acquire(f"r{n}", [tpm(10**12, 1)], [], start + n * 0.01)

    asyncio.run(run())
    log = state._logs["llmgw:tpm:key:k"]
    assert len(log.times) == len(log.costs) <= 6001
    assert len(log.pending) <= 2 * len(log.times) + 1024 + 1


def test_refusal_retry_time_is_when_the_oldest_admission_leaves() -> None:
    state = MemoryState()

    async def run() -> float:
        assert await state.acquire("a", [tpm(100, 60)], [], 10.0) is None
        assert await state.acquire("b", [tpm(100, 30)], [], 20.0) is None
        denial = await state.acquire("c", [tpm(100, 20)], [], 25.0)
        assert denial is not None
        await state.settle("a", [tpm(100, 60)], [], 40, 0.0, 26.0)  # a used 40: now 70 of 100
        assert await state.acquire("d", [tpm(100, 20)], [], 27.0) is None
        return denial.retry_after

    assert asyncio.run(run()) == WINDOW_S - 15.0


def test_a_minute_of_busy_traffic_is_held_in_little_memory() -> None:
    """A window holds every admission of the last minute: at a few thousand requests a second, a key's rpm and tpm
    windows hold a hundred thousand or more. Each costs a time and a cost, not a tuple and a correction."""
    import tracemalloc

    state = MemoryState()
    rpm = Window("llmgw:rpm:key:k", "rpm", 10**9, 1, "key k requests per minute")

    async def run() -> None:
        for n in range(100_000):
            at = 1000.0 + n * 0.0005
            await state.acquire(f"r{n}", [rpm, tpm(10**12, 1000)], [], at)
            await state.settle(f"r{n}", [rpm, tpm(10**12, 1000)], [], 700 + n % 50, 0.0, at)

    tracemalloc.start()
    try:
        asyncio.run(run())
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 15_000_000, f"{held / 1e6:.1f} MB for 100,000 admissions in two windows"
    log = state._logs["llmgw:tpm:key:k"]
    assert log.total == sum(700 + n % 50 for n in range(100_000)) and not log.pending
